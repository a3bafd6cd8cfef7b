"""End-to-end env steps per second of workloads.rl training (sampling + learning) on this machine.

How to run: `flock /tmp/dlwild-ray.lock python -m benchmarks.bench_rl [--seconds 40] [--only ppo_tuned,...]`

Each variant builds the Algorithm, trains one warm-up iteration, then trains for about `--seconds` and reports
env steps sampled / wall time of those iterations (the env steps RLlib counts: one per bizsim step, whatever
the number of learner seats). `raw_env` is the bizsim adapter alone with random valid learner actions: the
ceiling. Ratios are measured within one run.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path

os.environ.setdefault("RAY_AUTH_MODE", "disabled")

VARIANTS = {
    # RLlib's own defaults for this multi-agent setup: 2 remote runners, 1 env each, 30 epochs of 128-minibatches.
    "ppo_rllib_defaults": dict(
        algo="ppo",
        num_env_runners=2,
        num_envs_per_env_runner=1,
        train_batch_size=4000,
        minibatch_size=128,
        num_epochs=30,
    ),
    "ppo_tuned": dict(algo="ppo"),  # workloads.rl defaults
    "ppo_tuned_separate_vf_2_threads": dict(algo="ppo", vf_share_layers=False, torch_threads=2),
    "ppo_tuned_2_runners": dict(algo="ppo", num_env_runners=2, num_envs_per_env_runner=8),
    "ppo_tuned_4_envs": dict(algo="ppo", num_envs_per_env_runner=4),
    "dqn_tuned": dict(algo="dqn"),
    "dqn_replay_ratio_4": dict(algo="dqn", rollout_fragment_length=64),  # 4x more sampling per update
}


def raw_env(seconds: float) -> float:
    from workloads.rl.env import BizSimMultiAgentEnv

    env = BizSimMultiAgentEnv({"opponents": "L1,L2,L3", "seed": 0})
    space = env.action_spaces["learner_0"]
    steps, start = 0, time.perf_counter()
    obs, _ = env.reset()
    while time.perf_counter() - start < seconds:
        obs, _, term, trunc, _ = env.step({a: space.sample(o["action_mask"]) for a, o in obs.items()})
        steps += 1
        if term["__all__"] or trunc["__all__"]:
            obs, _ = env.reset()
    return steps / (time.perf_counter() - start)


def measure(name: str, overrides: dict, seconds: float) -> dict:
    import torch

    from workloads.rl.train import RLConfig, build_algo_config

    cfg = RLConfig(**{"eval_interval": 0, "opponents": "L1,L2,L3", "stop_timesteps": 10**9, **overrides})
    torch.set_num_threads(cfg.torch_threads)
    algo = build_algo_config(cfg, Path(tempfile.mkdtemp(prefix="bench-rl-"))).build_algo()
    try:
        result = algo.train()  # warm-up (and DQN's first samples)
        steps0 = result["env_runners"]["num_env_steps_sampled_lifetime"]
        start, iters = time.perf_counter(), 0
        while time.perf_counter() - start < seconds or iters < 2:
            result = algo.train()
            iters += 1
        wall = time.perf_counter() - start
        steps = result["env_runners"]["num_env_steps_sampled_lifetime"] - steps0
    finally:
        algo.stop()
    return {
        "variant": name,
        "env_steps_per_s": round(steps / wall, 1),
        "iterations": iters,
        "env_steps": int(steps),
        "wall_s": round(wall, 1),
        "config": overrides,
    }


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=40.0, help="timed training per variant")
    parser.add_argument("--only", default="", help="comma-separated variants (default: all)")
    parser.add_argument("--json", default="", help="also write the figures here")
    args = parser.parse_args(argv)
    names = [n for n in args.only.split(",") if n] or list(VARIANTS)
    unknown = sorted(set(names) - set(VARIANTS))
    if unknown:
        parser.error(f"unknown variant(s) {unknown}; known: {sorted(VARIANTS)}")

    from workloads.contract import init_ray

    init_ray(num_cpus=2, log_to_driver=False)
    rows = [{"variant": "raw_env", "env_steps_per_s": round(raw_env(min(10.0, args.seconds)), 1)}]
    print(
        f"{'raw_env':24s} {rows[0]['env_steps_per_s']:9.1f} env-steps/s (adapter + L1-L3 seats, random learner)",
        flush=True,
    )
    for name in names:
        row = measure(name, VARIANTS[name], args.seconds)
        rows.append(row)
        print(
            f"{name:24s} {row['env_steps_per_s']:9.1f} env-steps/s  ({row['iterations']} iterations, "
            f"{row['wall_s']} s)",
            flush=True,
        )
    base = {r["variant"]: r["env_steps_per_s"] for r in rows}
    if "ppo_rllib_defaults" in base and "ppo_tuned" in base:
        print(f"ppo_tuned / ppo_rllib_defaults = {base['ppo_tuned'] / base['ppo_rllib_defaults']:.2f}x")
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=2))


if __name__ == "__main__":
    main()
