"""workloads.rl: real RLlib runs at tiny sizes (multi-agent, masked), checkpoints, curriculum, evaluation, CLI."""

from __future__ import annotations

import csv
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from workloads.rl.train import RLConfig, build_algo_config, save_checkpoint

ROOT = Path(__file__).resolve().parents[2]
TINY = dict(
    num_envs_per_env_runner=2,
    train_batch_size=256,
    minibatch_size=128,
    num_epochs=1,
    eval_interval=0,
    eval_episodes=2,
    stop_timesteps=5000,
    opponents="L1,L2",
)


def tiny(tmp_path, **kwargs) -> tuple:
    cfg = RLConfig(**{**TINY, **kwargs})
    cfg.validate()
    return cfg, build_algo_config(cfg, tmp_path)


def _cli(*args):
    return subprocess.run([sys.executable, "-m", *args], cwd=ROOT, capture_output=True, text=True, timeout=120)


@pytest.mark.parametrize(
    "args, reason",
    [
        (["workloads.rl", "--algo", "a2c"], "--algo: invalid choice: 'a2c'"),
        (["workloads.rl", "--eval-episodes", "0"], "--eval-episodes must be at least 1"),
        (["workloads.rl", "--resume", "--out", "/nonexistent/run"], "--resume: no checkpoint in /nonexistent/run"),
        (["workloads.rl", "--opponents", "L1,no_such_pkg.mod:Bot"], "cannot load opponent 'no_such_pkg.mod:Bot'"),
        (["workloads.rl.evaluate", "--checkpoint", ".", "--opponents", "nope"], "unknown opponent 'nope'"),
        (["workloads.rl.evaluate", "--checkpoint", ".", "--episodes", "0"], "--episodes must be at least 1"),
        (["workloads.rl.evaluate", "--checkpoint", ".", "--tables", "mixed,round"], "--tables: 'round' is not one of"),
        (["workloads.rl", "--curriculum", "--eval-interval", "0"], "--curriculum advances on the periodic evaluation"),
        (["workloads.rl", "--eval-tables", "pairs"], "--eval-tables: invalid choice: 'pairs'"),
        (["workloads.rl.compare", "--algos", "ppo,a2c"], "--algos: unknown algorithm 'a2c'"),
        (["workloads.rl.compare", "--seeds", "0"], "--seeds must be at least 1"),
        (["workloads.rl.compare", "--encodings", "flat,tree"], "--encodings: unknown encoding 'tree'"),
        (["workloads.rl.compare", "--algos", "dqn", "--encodings", "factorised"], "leaves no cell"),
        (["workloads.rl.compare", "--resume"], "--resume needs the --out folder"),
    ],
)
def test_bad_flags_fail_with_one_line_before_ray(args, reason):
    proc = _cli(*args)
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error:") and reason in lines[0], proc.stderr
    assert "Ray instance" not in proc.stdout + proc.stderr


def test_masked_dqn_module_never_picks_a_masked_action():
    from ray.rllib.algorithms.dqn.default_dqn_rl_module import QF_PREDS
    from ray.rllib.core.columns import Columns

    from workloads.rl.env import BizSimMultiAgentEnv
    from workloads.rl.modules import MaskedDQNTorchRLModule

    env = BizSimMultiAgentEnv({})
    obs_space, act_space = env.observation_spaces["learner_0"], env.action_spaces["learner_0"]
    module = MaskedDQNTorchRLModule(
        observation_space=obs_space,
        action_space=act_space,
        model_config={
            "fcnet_hiddens": [16],
            "double_q": True,
            "dueling": True,
            "num_atoms": 1,
            "epsilon": [(0, 1.0), (100, 0.0)],
        },
    )
    rng = np.random.default_rng(0)
    n, B = act_space.n, 512
    mask = (rng.random((B, n)) < 0.15).astype(np.int8)
    mask[:, 0] = 1
    batch = {
        Columns.OBS: {
            "observations": torch.randn(B, obs_space["observations"].shape[0]),
            "action_mask": torch.as_tensor(mask),
        }
    }
    allowed = torch.as_tensor(mask).bool()
    for t in (0, 50, 1000):  # epsilon 1.0 (all random), 0.5, 0.0 (all greedy)
        actions = module.forward_exploration(batch, t=t)[Columns.ACTIONS]
        assert allowed[torch.arange(B), actions].all()
    assert allowed[torch.arange(B), module.forward_inference(batch)[Columns.ACTIONS]].all()
    module.make_target_networks()
    target_q = module.forward_target(batch)[QF_PREDS]  # the next-state max only sees valid actions
    assert allowed[torch.arange(B), target_q.argmax(-1)].all()
    assert (target_q[~allowed] < -1e30).all()


def test_factorised_ppo_module_samples_only_valid_triples():
    from ray.rllib.core.columns import Columns

    from envs.bizsim import BizSimEnv
    from workloads.rl.game import game_config
    from workloads.rl.modules import MaskedPPOTorchRLModule

    game = game_config(complexity=2, encoding="factorised")
    env = BizSimEnv(**game)
    space = env.action_space("firm_0")
    module = MaskedPPOTorchRLModule(
        observation_space=env.observation_space("firm_0"),
        action_space=space,
        model_config={
            "fcnet_hiddens": [16],
            "factorised": {
                "unit_row": space.unit_row.tolist(),
                "target_row": space.target_row.tolist(),
                "n_unit_rows": space.n_unit_rows,
                "n_target_rows": space.n_target_rows,
            },
        },
    )
    obs, _ = env.reset(seed=3)
    invalid = 0
    for _ in range(30):
        batch = {
            Columns.OBS: {
                k: torch.as_tensor(np.stack([o[k] for o in obs.values()])) for k in ("observations", "action_mask")
            }
        }
        actions = module.forward_exploration(batch)[Columns.ACTIONS].numpy()
        obs, _, _, _, infos = env.step(dict(zip(obs, actions)))
        if not env.agents:
            break
        invalid = max(info["invalid_action"] for info in infos.values())
    assert invalid == 0


@pytest.fixture(scope="module")
def ppo_checkpoint(ray_session, tmp_path_factory):
    """PPO trained 2 iterations multi-agent with masks; checkpointed and restored."""
    from ray.rllib.algorithms.algorithm import Algorithm

    out = tmp_path_factory.mktemp("ppo")
    cfg, config = tiny(out, algo="ppo", learner_seats=2)
    algo = config.build_algo()
    try:
        for _ in range(2):
            result = algo.train()
        runners = result["env_runners"]
        assert runners["num_env_steps_sampled_lifetime"] >= 2 * 256
        assert 0.0 <= runners["win_rate"] <= 1.0 and runners["invalid_rate"] == 0.0
        assert set(result["env_runners"]["agent_episode_returns_mean"]) == {"learner_0", "learner_1"}
        checkpoint = save_checkpoint(algo, out, config.env_config["game"])
        weights = algo.get_module("learner").get_state()
    finally:
        algo.stop()
    restored = Algorithm.from_checkpoint(str(checkpoint))
    try:
        again = restored.get_module("learner").get_state()
        for key, value in weights.items():
            assert np.allclose(np.asarray(value), np.asarray(again[key])), key
        assert restored.iteration == 2
        assert restored.train()["training_iteration"] == 3  # training goes on from the checkpoint
    finally:
        restored.stop()
    return checkpoint


def test_ppo_trains_restores_and_serves(ppo_checkpoint):
    from workloads.rl.env import BizSimMultiAgentEnv
    from workloads.rl.game import load_game
    from workloads.rl.policy import policy_from_checkpoint

    act = policy_from_checkpoint(ppo_checkpoint)
    env = BizSimMultiAgentEnv({"game": load_game(ppo_checkpoint)})
    obs, _ = env.reset(seed=1)
    action = act(obs["learner_0"])
    assert isinstance(action, int) and obs["learner_0"]["action_mask"][action] == 1


def test_policy_loads_from_a_relative_checkpoint_path(ppo_checkpoint, monkeypatch):
    """`evaluate --checkpoint runs/...` passes a relative path; RLlib's loader wants an absolute one."""
    from workloads.rl.policy import policy_from_checkpoint

    monkeypatch.chdir(ppo_checkpoint.parent)
    act = policy_from_checkpoint(ppo_checkpoint.name)
    assert callable(act)


def test_dqn_trains_two_iterations_multi_agent_with_masks(ray_session, tmp_path):
    cfg, config = tiny(tmp_path, algo="dqn", learner_seats=2, train_batch_size=64)
    config.training(num_steps_sampled_before_learning_starts=64)
    algo = config.build_algo()
    try:
        for _ in range(2):
            result = algo.train()
        assert result["env_runners"]["num_env_steps_sampled_lifetime"] > 0
        assert result["env_runners"]["invalid_rate"] == 0.0
        assert "learner" in result["learners"] and "qf_loss" in result["learners"]["learner"]
    finally:
        algo.stop()


def test_curriculum_advances_when_threshold_is_forced(ray_session, tmp_path):
    cfg, config = tiny(tmp_path, curriculum=True, curriculum_threshold=0.0, eval_interval=1)
    algo = config.build_algo()
    try:
        mixes = algo.env_runner_group.foreach_env_runner(lambda r: [e.unwrapped.mix for e in r.env.envs])
        assert mixes[0][0] == {"L0": 1.0}
        result = algo.train()
        assert result["schedule"]["stage"] == 1
        mixes = algo.env_runner_group.foreach_env_runner(lambda r: [e.unwrapped.mix for e in r.env.envs])
        assert all(m == {"L1": 1.0} for m in mixes[0])
        assert json.loads((tmp_path / "schedule_state.json").read_text())["stage"] == 1
    finally:
        algo.stop()


def test_evaluate_against_an_import_path(ppo_checkpoint, tmp_path):
    from workloads.rl.evaluate import main

    out = tmp_path / "eval.json"
    assert (
        main(
            [
                "--checkpoint",
                str(ppo_checkpoint),
                "--opponents",
                "envs.bizsim.opponents:GreedyProducer,L1",
                "--episodes",
                "4",
                "--rating-games",
                "1",
                "--json",
                str(out),
            ]
        )
        == 0
    )
    result = json.loads(out.read_text())
    first = result["opponents"][0]
    assert first["opponent"] == "envs.bizsim.opponents:GreedyProducer" and first["episodes"] == 4
    assert [(r["table"], r["opponent"]) for r in result["opponents"]][1:3] == [
        ("mixed", "L1"),
        ("copies", first["opponent"]),
    ]
    assert first["players"] == ["learner", "L2", "L4", first["opponent"]]
    for name in first["players"]:  # every player's score breakdown, and its parts add up to its score
        part = first["parts"][name]
        assert part["cash"] + part["assets"] + part["stock"] == pytest.approx(part["score"])
    assert 0.0 <= first["wilson_low"] <= first["win_rate"] <= first["wilson_high"] <= 1.0
    assert {r["player"] for r in result["rating"]} >= {"learner", "L0", "L4", "envs.bizsim.opponents:GreedyProducer"}
    assert result["game"]["complexity"] == 1


def test_evaluation_plays_only_the_evaluation_opponents(tmp_path):
    """RLlib merges evaluation_config dicts into the training config: the eval mix must replace, not extend."""
    from envs.bizsim.opponents import parse_mix

    for tables, mix in (("copies", {"L2": 1.0}), ("mixed", {"L2+L4+L2": 1.0})):
        cfg = RLConfig(opponents="L1,L3", eval_opponents="L2", eval_tables=tables)
        cfg.validate()
        evaluation = build_algo_config(cfg, tmp_path).get_evaluation_config_object()
        assert parse_mix(evaluation.env_config["opponents"]) == mix


def test_a_table_spec_seats_its_players_in_rotated_order():
    from envs.bizsim.opponents import Adaptive, GreedyProducer, RandomValid
    from workloads.rl.env import BizSimMultiAgentEnv

    env = BizSimMultiAgentEnv({"opponents": ["L2+L4+L1"], "seed": 3})
    orders = set()
    for _ in range(12):
        env.reset()
        seated = [type(env.players[s]) for s in sorted(env.players)]
        assert sorted(c.__name__ for c in seated) == sorted(c.__name__ for c in (Adaptive, GreedyProducer, RandomValid))
        orders.add(tuple(seated))
    assert len(orders) > 1


RESUMABLE = [
    "--opponents",
    "L1",
    "--eval-opponents",
    "L1",
    "--num-envs-per-env-runner",
    "2",
    "--train-batch-size",
    "256",
    "--minibatch-size",
    "128",
    "--num-epochs",
    "1",
    "--eval-interval",
    "0",
    "--eval-episodes",
    "2",
    "--checkpoint-every",
    "2",
]


def _checkpointed_iteration(out: Path) -> int:
    try:
        return json.loads((out / "checkpoint" / "run_state.json").read_text())["iteration"]
    except (OSError, ValueError, KeyError):  # not written yet, or being swapped in
        return 0


def _logged_iterations(out: Path) -> list[int]:
    try:
        lines = (out / "progress.jsonl").read_text().splitlines()
    except OSError:
        return []
    return [json.loads(line)["iteration"] for line in lines if line.strip().endswith("}")]


def test_training_resumes_after_sigkill_without_losing_or_repeating_iterations(tmp_path):
    """A real `python -m workloads.rl` is killed (SIGKILL, the whole process group with its Ray) after its first
    checkpoint, once it has logged an iteration past it; `--resume` then goes on from the checkpoint: every
    iteration is in the progress files exactly once, the env-step counter continues, the summary is complete."""
    import os
    import signal
    import time

    out = tmp_path / "run"
    env = dict(os.environ, RAY_AUTH_MODE="disabled")
    env.pop("RAY_ADDRESS", None)
    cmd = [sys.executable, "-m", "workloads.rl", "--out", str(out), *RESUMABLE]
    proc = subprocess.Popen(
        [*cmd, "--stop-iters", "40"],
        cwd=ROOT,
        env=env,
        start_new_session=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.time() + 90
    try:
        while time.time() < deadline and proc.poll() is None:
            done = _checkpointed_iteration(out)
            if done and any(i > done for i in _logged_iterations(out)):
                break
            time.sleep(0.05)
        assert proc.poll() is None, f"the run ended before it could be killed: {proc.stderr.read()[-2000:]}"
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    killed_at = _checkpointed_iteration(out)
    assert killed_at >= 2 and not (out / "summary.json").exists()
    assert max(_logged_iterations(out)) > killed_at  # the killed run got past its checkpoint

    stop = killed_at + 3
    resumed = subprocess.run(
        [sys.executable, "-m", "workloads.rl", "--out", str(out), "--resume", "--stop-iters", str(stop)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    summary = json.loads((out / "summary.json").read_text())
    assert summary["status"] == "ok" and summary["resumed_from_iteration"] == killed_at
    assert summary["iterations"] == stop and summary["config"]["resume"] is True
    assert summary["config"]["train_batch_size"] == 256 and summary["config"]["opponents"] == "L1"  # saved settings
    rows = [json.loads(line) for line in (out / "progress.jsonl").read_text().splitlines()]
    train, final = rows[:-1], rows[-1]
    assert [r["iteration"] for r in train] == list(range(1, stop + 1))  # none lost, none twice
    steps = [r["env_steps"] for r in train]
    assert all(b > a for a, b in zip(steps, steps[1:]))  # the counter goes on from the checkpoint
    assert final["iteration"] == stop and "eval_win_rate" in final and final["env_steps"] == steps[-1]
    assert summary["env_steps"] == steps[-1]
    with (out / "progress.csv").open() as f:
        assert [float(r["iteration"]) for r in csv.DictReader(f)] == [float(r["iteration"]) for r in rows]
    for path in summary["outputs"].values():
        assert Path(path).exists(), path
    assert json.loads((out / "checkpoint" / "run_state.json").read_text())["iteration"] == stop


def test_a_short_ppo_run_learns_to_beat_random_play(tmp_path):
    """The learning test: a few minutes of the default PPO against L1 must win at least 80% of the final
    evaluation's games against three copies of L1 (`--as-test` exits 1 otherwise). It fails when learning breaks
    (a module, mask, reward or evaluation bug), which the plumbing tests above would not notice."""
    out = tmp_path / "learn"
    args = ["workloads.rl", "--opponents", "L1", "--eval-opponents", "L1", "--eval-tables", "copies"]
    args += ["--stop-timesteps", "80000", "--eval-interval", "0", "--eval-episodes", "60", "--as-test"]
    proc = subprocess.run(
        [sys.executable, "-m", *args, "--out", str(out)], cwd=ROOT, capture_output=True, text=True, timeout=900
    )
    summary = json.loads((out / "summary.json").read_text())
    assert proc.returncode == 0, (summary.get("final_eval"), proc.stderr[-2000:])
    assert summary["as_test_passed"] and summary["final_eval"]["eval_win_rate_vs/L1"] >= 0.8
    assert summary["final_eval_tables"][0]["players"] == ["learner", "L1", "L1", "L1"]


def test_the_grid_has_the_encoding_dimension():
    from workloads.rl.compare import CompareConfig, cells

    grid = cells(CompareConfig(complexities="1,4", seeds=1))
    kinds = {(c["algo"], c["encoding"]) for c in grid}
    assert kinds == {("ppo", "flat"), ("ppo", "factorised"), ("dqn", "flat")}  # DQN takes Discrete actions only
    assert {c["complexity"] for c in grid} == {1, 4} and len(grid) == 3 * 2 * 2 * 2


def test_league_draws_snapshots_by_payoff():
    """Prioritised fictitious self-play: a snapshot the learner still loses to is drawn more than one it beats."""
    from workloads.rl.callbacks import BizSimCallbacks

    cb = BizSimCallbacks()
    cb.schedule = {"mode": "curriculum", "stages": [{"L0": 1.0}, {"L2": 1.0}, "league"]}
    cb.state = {"stage": 2, "snapshots": ["/r/snapshots/iter_000010", "/r/snapshots/iter_000020"], "payoff": {}}
    even = cb.current_mix()
    assert even["/r/snapshots/iter_000010"] == pytest.approx(even["/r/snapshots/iter_000020"])
    cb.state["payoff"] = {"iter_000010": 0.9, "iter_000020": 0.2}
    mix = cb.current_mix()
    assert mix["/r/snapshots/iter_000020"] > 10 * mix["/r/snapshots/iter_000010"]
    assert mix["L2"] == pytest.approx(0.5) and sum(mix.values()) == pytest.approx(1.0)


def test_league_with_self_play_seats_and_an_exploiter(ray_session, tmp_path):
    """The league stage on the curriculum mechanism: snapshots join when the learner beats the pool (threshold
    forced to 0 here), two live learner seats share the policy, and the main exploiter is a second trained module
    that plays some of the games."""
    cfg, config = tiny(
        tmp_path,
        opponents="L1",
        curriculum=True,
        curriculum_threshold=0.0,
        eval_interval=1,
        learner_seats=2,
        exploiter=True,
    )
    algo = config.build_algo()
    try:
        before = {k: np.asarray(v).copy() for k, v in algo.get_module("exploiter").get_state().items()}
        for _ in range(3):
            result = algo.train()
        assert result["schedule"]["stage"] == 2  # L0 -> L1 -> league
        state = json.loads((tmp_path / "schedule_state.json").read_text())
        assert len(state["snapshots"]) == 2 and all(Path(p).is_dir() for p in state["snapshots"])
        mixes = algo.env_runner_group.foreach_env_runner(lambda r: [e.unwrapped.mix for e in r.env.envs])
        assert all(set(state["snapshots"]) <= set(m) for m in mixes[0])
        after = algo.get_module("exploiter").get_state()
        assert any(not np.allclose(before[k], np.asarray(after[k])) for k in before)  # the exploiter is trained
        assert 0.0 <= result["env_runners"]["exploiter_win_rate"] <= 1.0
        assert set(result["env_runners"]["agent_episode_returns_mean"]) >= {"learner_0", "learner_1", "exploiter_0"}
    finally:
        algo.stop()
