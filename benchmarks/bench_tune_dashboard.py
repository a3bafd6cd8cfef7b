"""How long the Tune dashboard takes to show an experiment of 500 trials (target: under 1 s on 2 cores).

    python -m benchmarks.bench_tune_dashboard [--trials 500] [--out runs/bench/tune-dashboard]

The experiment is a real Tune search (500 trivial trials, Tune's random search, three results each), written
once to --out and reused by later runs. Figures: the reader alone (cold parse, then a warm poll), the JSON API
through Serve's proxy, and the page in headless Chromium (navigation start to all 500 table rows and the anytime
plot drawn), first load with a cold cache and then reloads.
"""

import argparse
import os
import shutil
import socket
import statistics
import tempfile
import time
from pathlib import Path

import httpx

from cluster import private_ray
from serving.browser import headless_chromium
from serving.tune_dashboard.experiments import ExperimentStore

NAME = "search"


def trivial(config):
    from ray import tune

    for step in range(1, 4):
        tune.report({"score": config["x"] * step - 0.1 * (config["model"] == "svm"), "fit_time": 0.001 * step})


def make_experiment(storage: Path, trials: int) -> float:
    """Run the real search unless storage already holds one of `trials` trials; returns seconds spent."""
    store = ExperimentStore(str(storage))
    existing = [e for e in store.list_experiments() if e["name"] == NAME]
    if existing and existing[0]["trials_done"] == trials:
        return 0.0
    shutil.rmtree(storage / NAME, ignore_errors=True)
    from ray import tune

    start = time.perf_counter()
    tune.Tuner(
        trivial,
        param_space={
            "x": tune.uniform(0, 1),
            "C": tune.loguniform(1e-3, 1e3),
            "depth": tune.randint(1, 12),
            "model": tune.choice(["svm", "forest", "boosting"]),
        },
        tune_config=tune.TuneConfig(
            metric="score",
            mode="max",
            num_samples=trials,
            reuse_actors=True,
            max_concurrent_trials=2,
            search_alg=tune.search.BasicVariantGenerator(random_state=0),
        ),
        run_config=tune.RunConfig(storage_path=str(storage), name=NAME, verbose=0),
    ).fit()
    return time.perf_counter() - start


def timed(fn, repeat: int = 5) -> list[float]:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return times


def browser_times(urls: list[str], trials: int) -> list[float] | str:
    """Seconds from navigation start until the page shows every trial row and the anytime line, per URL."""
    driver, missing = headless_chromium(tempfile.mkdtemp(prefix="dlwild-chromium-"))
    if driver is None:
        return missing
    ready = (
        f"return document.querySelectorAll('#trials tbody tr').length === {trials} && "
        "document.querySelector('#anytime path.series') ? performance.now() : null"
    )
    times = []
    try:
        for url in urls:
            driver.get("about:blank")
            driver.get(url)
            deadline = time.monotonic() + 30
            shown = None
            while shown is None and time.monotonic() < deadline:
                shown = driver.execute_script(ready)
                time.sleep(0.005)
            if shown is None:
                return "the page did not show the experiment within 30 s"
            times.append(shown / 1000)
    finally:
        driver.quit()
    return times


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--trials", type=int, default=500)
    parser.add_argument("--out", default=os.path.join(os.environ.get("DLWILD_RUNS", "runs"), "bench", "tune-dashboard"))
    parser.add_argument("--loads", type=int, default=5, help="page loads in the browser")
    args = parser.parse_args()
    storage = Path(args.out).resolve()

    import ray
    from ray import serve

    private_ray.start("dlwild-bench-dashboard-", object_store_mb=300)
    spent = make_experiment(storage, args.trials)
    print(
        f"experiment: {args.trials} trials in {storage / NAME}"
        + (f" (made now by a real Tune search in {spent:.0f} s)" if spent else " (reused)")
    )
    size = sum(f.stat().st_size for f in (storage / NAME).rglob("*") if f.is_file())
    print(f"  {size / 2**20:.1f} MiB on disk")

    cold = timed(lambda: ExperimentStore(str(storage)).experiment(NAME), repeat=3)
    store = ExperimentStore(str(storage))
    store.experiment(NAME)
    warm = timed(lambda: (store.list_experiments(), store.experiment(NAME)), repeat=10)
    print(f"reader, cold (parse everything): median {statistics.median(cold) * 1000:.0f} ms")
    print(f"reader, warm poll (list + experiment, cached): median {statistics.median(warm) * 1000:.1f} ms")

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    serve.start(http_options={"host": "127.0.0.1", "port": port})
    try:
        from serving.tune_dashboard.app import build_app

        serve.run(build_app({"storage": str(storage)}), name="tune", route_prefix="/tune")
        base = f"http://127.0.0.1:{port}/tune"
        with httpx.Client(timeout=60) as client:
            api = timed(lambda: client.get(f"{base}/api/experiments/{NAME}").raise_for_status(), repeat=10)
            body = client.get(f"{base}/api/experiments/{NAME}").content
        print(
            f"API through Serve, /api/experiments/{NAME}: median {statistics.median(api) * 1000:.0f} ms, "
            f"first (cold cache) {api[0] * 1000:.0f} ms, {len(body) / 1024:.0f} KiB of JSON"
        )
        # A second, fresh app, so that the first page load finds a cold cache.
        serve.run(build_app({"storage": str(storage)}), name="tune-page", route_prefix="/tune-page")
        # Load 0: a fresh browser (its own first-navigation start) on the warm app; load 1: the fresh app's
        # cold cache in a warmed browser; then reloads, as a user polling the page sees it.
        page = browser_times([f"{base}#{NAME}"] + [f"{base}-page#{NAME}"] * args.loads, args.trials)
        if isinstance(page, str):
            print(f"page in Chromium: not measured ({page})")
        else:
            print(
                f"page in Chromium, navigation start to {args.trials} table rows + anytime plot drawn: "
                f"fresh browser {page[0]:.2f} s, cold dashboard cache {page[1]:.2f} s, "
                f"median of {len(page) - 2} more loads {statistics.median(page[2:]):.2f} s "
                f"(target < 1 s: {'met' if max(page[1:]) < 1 else 'NOT met'})"
            )
    finally:
        serve.shutdown()
        ray.shutdown()


if __name__ == "__main__":
    main()
