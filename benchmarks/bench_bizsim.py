"""bizsim raw speed: env steps per second on one core, 4 firms, random valid actions.

One env step is one parallel step of all firms.  Figures per complexity level: the whole loop (random valid
actions drawn from the masks with numpy, plus `env.step`, resets included) and `env.step` alone, each per second of
wall time and per second of this process's CPU time (the per-core figure, robust to other load on the machine).

How to run:  .venv/bin/python benchmarks/bench_bizsim.py [--seconds 3] [--firms 4]
Results to expect: see envs/bizsim/README.md (target >= 20,000 steps/s at complexity 1).
"""

from __future__ import annotations

import argparse
import os
import time

import numpy as np

from envs.bizsim import parallel_env


def bench(complexity: int, firms: int, seconds: float, seed: int = 0) -> dict:
    env = parallel_env(n_firms=firms, complexity=complexity)
    rng = np.random.default_rng(seed)
    obs, _ = env.reset(seed=seed)
    steps, episodes, in_step, in_step_cpu = 0, 0, 0.0, 0.0
    start, start_cpu = time.perf_counter(), time.process_time()
    while time.perf_counter() - start < seconds:
        agents = env.agents
        masks = np.stack([obs[a]["action_mask"] for a in agents])
        choice = (rng.random(masks.shape) * masks).argmax(1)  # uniform over each firm's valid actions
        actions = dict(zip(agents, choice.tolist()))
        t0, c0 = time.perf_counter(), time.process_time()
        obs, _, _, _, _ = env.step(actions)
        in_step += time.perf_counter() - t0
        in_step_cpu += time.process_time() - c0
        steps += 1
        if not env.agents:
            episodes += 1
            obs, _ = env.reset(seed=seed + episodes)
    total, total_cpu = time.perf_counter() - start, time.process_time() - start_cpu
    return {
        "complexity": complexity,
        "firms": firms,
        "steps": steps,
        "episodes": episodes,
        "loop_steps_per_s": steps / total,
        "env_steps_per_s": steps / in_step,
        "loop_steps_per_cpu_s": steps / total_cpu,
        "env_steps_per_cpu_s": steps / in_step_cpu,
        "n_actions": env.n_actions,
        "obs_size": env.obs_size,
    }


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=3.0, help="measuring time per complexity level")
    parser.add_argument("--firms", type=int, default=4, help="firms per game")
    parser.add_argument("--complexity", type=int, nargs="+", default=[1, 4], help="levels to measure")
    args = parser.parse_args()
    print(f"load average before: {os.getloadavg()[0]:.2f} (1 min)")
    print("| complexity | firms | actions | obs size | loop steps/s (wall / CPU) | env.step steps/s (wall / CPU) |")
    print("|---|---|---|---|---|---|")
    for c in args.complexity:
        r = bench(c, args.firms, args.seconds)
        print(
            f"| {c} | {r['firms']} | {r['n_actions']} | {r['obs_size']} | {r['loop_steps_per_s']:,.0f} / "
            f"{r['loop_steps_per_cpu_s']:,.0f} | {r['env_steps_per_s']:,.0f} / {r['env_steps_per_cpu_s']:,.0f} |"
        )
    print(f"load average after: {os.getloadavg()[0]:.2f} (1 min)")


if __name__ == "__main__":
    main()
