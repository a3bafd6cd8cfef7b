"""The Tune dashboard on real Tune experiments, served by real Serve, looked at by a real headless Chromium.

The browser test needs `chromium` and `chromium-driver` (Debian packages) and selenium; without them it fails
under CI=true and is skipped elsewhere.
"""

from __future__ import annotations

import http.client
import json
import os
import shutil
import threading
import time
from pathlib import Path
from urllib.parse import urlparse

import httpx
import pytest

from serving.browser import headless_chromium

ROOT = Path(__file__).resolve().parents[2]


def scored(config):
    """A trial that reports a score three times (a learning curve of sorts), sleeping `sleep` s before the last."""
    from ray import tune

    for step in range(1, 4):
        if step == 3:
            time.sleep(config["sleep"])
        tune.report({"score": config["x"] * step - (config["kind"] == "b"), "fit_time": 0.01 * step})


def run_search(storage: Path, name: str, samples: int, sleep: float, concurrency: int = 2):
    """A tiny real Tune search with Tune's default random search, results under storage/name."""
    from ray import tune

    tuner = tune.Tuner(
        scored,
        param_space={"x": tune.uniform(0.0, 1.0), "kind": tune.choice(["a", "b"]), "sleep": sleep},
        tune_config=tune.TuneConfig(
            metric="score",
            mode="max",
            num_samples=samples,
            reuse_actors=True,
            max_concurrent_trials=concurrency,
            search_alg=tune.search.BasicVariantGenerator(random_state=0),
        ),
        run_config=tune.RunConfig(storage_path=str(storage), name=name, verbose=0),
    )
    return tuner.fit()


@pytest.fixture(scope="module")
def storage(ray_session, tmp_path_factory):
    """A run storage holding one finished search (`first`, with dlwild.json metadata) and a folder outside it."""
    base = tmp_path_factory.mktemp("tune-dashboard")
    runs = base / "runs"
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("TUNE_GLOBAL_CHECKPOINT_S", "1")  # sync the experiment state every second, not every 10 s
        grid = run_search(runs, "first", samples=4, sleep=0.0)
    assert grid.num_errors == 0
    (runs / "first" / "dlwild.json").write_text(
        json.dumps({"workload": "automl", "searcher": "random", "dataset": "toy", "budget_s": 60})
    )
    # A real experiment outside the storage: no name may reach it.
    shutil.copytree(runs / "first", base / "secret")
    return runs


@pytest.fixture(scope="module")
def dashboard(serve_http, storage):
    """The dashboard app on the test storage at /tune, and one on a storage that does not exist at /tune-empty."""
    from ray import serve

    from serving.tune_dashboard.app import build_app

    serve.run(build_app({"storage": str(storage)}), name="tune", route_prefix="/tune")
    serve.run(
        build_app({"storage": str(storage.parent / "nothing-here")}), name="tune-empty", route_prefix="/tune-empty"
    )
    yield serve_http
    serve.delete("tune")
    serve.delete("tune-empty")


def raw_get(base: str, path: str) -> int:
    """GET with the path sent exactly as written (httpx and browsers would normalise `..` away)."""
    url = urlparse(base)
    conn = http.client.HTTPConnection(url.hostname, url.port, timeout=30)
    try:
        conn.request("GET", path)
        response = conn.getresponse()
        response.read()
        return response.status
    finally:
        conn.close()


def test_api_lists_experiments_and_their_trials(dashboard):
    listing = httpx.get(f"{dashboard}/tune/api/experiments", timeout=30)
    assert listing.status_code == 200
    (first,) = [e for e in listing.json() if e["name"] == "first"]
    assert (first["workload"], first["searcher"], first["dataset"], first["metric"]) == (
        "automl",
        "random",
        "toy",
        "score",
    )
    assert first["status"] == "finished" and first["trials_done"] == first["trials_total"] == 4
    assert first["budget_s"] == 60 and first["elapsed_s"] >= 0

    detail = httpx.get(f"{dashboard}/tune/api/experiments/first", timeout=30).json()
    assert len(detail["trials"]) == 4
    scores = [t["score"] for t in detail["trials"]]
    for t in detail["trials"]:  # the score is the last reported one: 3 x - (kind == b)
        assert t["score"] == pytest.approx(3 * t["config"]["x"] - (t["config"]["kind"] == "b"))
        assert t["status"] == "TERMINATED" and t["fit_time"] == pytest.approx(0.03)
    assert first["best_score"] == pytest.approx(max(scores))
    (series,) = detail["anytime"]
    assert series["label"] == "random" and len(series["points"]) == 4
    best_so_far = [p[1] for p in series["points"]]
    assert best_so_far == sorted(best_so_far) and best_so_far[-1] == pytest.approx(max(scores))
    assert "x" in {p["name"] for p in detail["params"]}


def flaky(config):
    """Fails until the marker file exists: the first session errors, the restored one finishes."""
    from ray import tune

    if not Path(config["marker"]).exists():
        raise RuntimeError("interrupted")
    tune.report({"score": config["x"]})


def test_restored_experiment_keeps_its_trials_and_time_axis(ray_session, tmp_path):
    """An experiment resumed with Tuner.restore: one more session file, the trials finished, one time axis."""
    from ray import tune

    from serving.tune_dashboard.experiments import ExperimentStore

    marker = tmp_path / "marker"
    space = {"x": tune.grid_search([0.25, 0.5, 0.75]), "marker": str(marker)}
    tune.Tuner(
        flaky,
        param_space=space,
        tune_config=tune.TuneConfig(metric="score", mode="max"),
        run_config=tune.RunConfig(storage_path=str(tmp_path / "runs"), name="flaky", verbose=0),
    ).fit()
    store = ExperimentStore(str(tmp_path / "runs"))
    (before,) = store.list_experiments()
    assert before["trials_done"] == 3 and before["best_score"] is None  # all errored, nothing scored
    marker.touch()
    time.sleep(1.1)  # the restored session gets a new state file name (its timestamp has 1 s resolution)
    tune.Tuner.restore(str(tmp_path / "runs" / "flaky"), trainable=flaky, resume_errored=True).fit()
    store.listing_ttl_s = 0
    (after,) = store.list_experiments()
    assert after["sessions"] == 2 and after["started"] == pytest.approx(before["started"])
    assert after["status"] == "finished" and after["best_score"] == pytest.approx(0.75)
    detail = store.experiment("flaky")
    assert sorted(t["score"] for t in detail["trials"]) == pytest.approx([0.25, 0.5, 0.75])
    assert all(t["status"] == "TERMINATED" and t["end_s"] > 1 for t in detail["trials"])


def rl_like(config):
    """Reports what workloads.rl.compare reports per iteration: env steps and the mean episode return."""
    from ray import tune

    for it in range(1, 5):
        tune.report({"env_steps": 1000.0 * it, "episode_return": config["cell"]["gain"] * it})


def test_rl_grid_has_learning_curves_per_algorithm(ray_session, tmp_path):
    from ray import tune

    from serving.tune_dashboard.experiments import ExperimentStore

    cells = [{"algo": "ppo", "gain": 2.0}, {"algo": "dqn", "gain": 1.0}]
    tune.Tuner(
        rl_like,
        param_space={"cell": tune.grid_search(cells)},
        run_config=tune.RunConfig(storage_path=str(tmp_path), name="grid", verbose=0),
    ).fit()
    detail = ExperimentStore(str(tmp_path)).experiment("grid")
    curves = {c["algorithm"]: c["points"] for c in detail["curves"]}
    assert curves == {
        "ppo": [[1000.0 * i, 2.0 * i] for i in range(1, 5)],
        "dqn": [[1000.0 * i, 1.0 * i] for i in range(1, 5)],
    }
    assert detail["metric"] == "episode_return" and detail["best_score"] == 8.0  # no Tune metric: the return


def test_empty_storage_is_an_empty_list(dashboard):
    response = httpx.get(f"{dashboard}/tune-empty/api/experiments", timeout=30)
    assert response.status_code == 200 and response.json() == []


@pytest.mark.parametrize(
    "path",
    [
        "/tune/api/experiments/nope",
        "/tune/api/experiments/secret",
        "/tune/api/experiments/../..",
        "/tune/api/experiments/..%2F..",
        "/tune/api/experiments/..%2Fsecret",
        "/tune/api/experiments/%2E%2E",
        "/tune/api/experiments/%2E%2E%2F%2E%2E%2Fsecret",
        "/tune/api/experiments/first%2F..%2F..%2Fsecret",
        "/tune/api/experiments/.first",
    ],
)
def test_unknown_and_path_like_names_are_404(dashboard, path):
    assert raw_get(dashboard, path) == 404


def _wait(predicate, timeout_s: float, what: str):
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.25)
    raise AssertionError(f"timed out after {timeout_s:.0f} s waiting for {what}")


def test_page_shows_experiments_and_new_trials_without_reload(dashboard, storage, tmp_path):
    driver, reason = headless_chromium(tmp_path / "chromium-profile")
    if driver is None:
        if os.environ.get("CI") == "true":
            pytest.fail(reason)
        pytest.skip(reason)
    from selenium.webdriver.common.by import By

    def rows(table: str) -> list[list[str]]:
        return driver.execute_script(
            f"return [...document.querySelectorAll('#{table} tbody tr')].map(r => [...r.cells].map(c => c.innerText))"
        )

    done = {}
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("TUNE_GLOBAL_CHECKPOINT_S", "1")
        # Started before the page loads and still running while it polls: one trial at a time, ~2 s each.
        search = threading.Thread(
            target=lambda: done.setdefault("grid", run_search(storage, "live", samples=5, sleep=2.0, concurrency=1))
        )
        search.start()
        try:
            driver.get(f"{dashboard}/tune#first")
            _wait(lambda: any(r[0] == "first" for r in rows("experiments")), 20, "experiment `first` in the list")
            _wait(lambda: len(rows("trials")) == 4, 20, "the 4 trials of `first`")
            assert driver.find_element(By.ID, "detail-title").text == "first"
            anytime = driver.find_element(By.CSS_SELECTOR, "#anytime svg")
            assert anytime.find_elements(By.CSS_SELECTOR, "path.series"), "anytime plot has no best-so-far line"
            assert driver.find_elements(By.CSS_SELECTOR, "#params svg.param"), "no score-vs-hyperparameter panel"

            # The running experiment: pick it by clicking, then watch a later trial finish, with no reload.
            _wait(lambda: any(r[0] == "live" for r in rows("experiments")), 60, "experiment `live` in the list")
            driver.execute_script("window.__sameDocument = true")
            driver.find_element(By.CSS_SELECTOR, '#experiments tr[data-name="live"]').click()
            _wait(lambda: driver.find_element(By.ID, "detail-title").text == "live", 10, "the `live` detail")
            finished_first = {r[0] for r in rows("trials") if r[1] == "TERMINATED"}
            assert len(finished_first) < 5, "the search ended before the page could watch it"
            _wait(
                lambda: {r[0] for r in rows("trials") if r[1] == "TERMINATED"} - finished_first,
                90,
                "a trial finishing after the page was loaded",
            )
            assert driver.execute_script("return window.__sameDocument === true"), "the page was reloaded"
            out = ROOT / "test-output"
            out.mkdir(exist_ok=True)
            driver.save_screenshot(str(tmp_path / "tune-dashboard.png"))
            shutil.copy(tmp_path / "tune-dashboard.png", out / "tune-dashboard.png")
        finally:
            driver.quit()
            search.join(timeout=120)
    assert done["grid"].num_errors == 0 and len(done["grid"]) == 5
