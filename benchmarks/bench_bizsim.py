"""bizsim raw speed: env steps per second on one core, 4 firms, random valid actions.

One env step is one parallel step of all firms.  Two figures per complexity level: the whole loop (random valid
actions drawn from the masks with numpy, plus `env.step`) and `env.step` alone.

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
    steps, episodes, in_step = 0, 0, 0.0
    start = time.perf_counter()
    while time.perf_counter() - start < seconds:
        agents = env.agents
        masks = np.stack([obs[a]["action_mask"] for a in agents])
        choice = (rng.random(masks.shape) * masks).argmax(1)       # uniform over each firm's valid actions
        actions = dict(zip(agents, choice.tolist()))
        t0 = time.perf_counter()
        obs, _, _, _, _ = env.step(actions)
        in_step += time.perf_counter() - t0
        steps += 1
        if not env.agents:
            episodes += 1
            obs, _ = env.reset(seed=seed + episodes)
    total = time.perf_counter() - start
    return {"complexity": complexity, "firms": firms, "steps": steps, "episodes": episodes,
            "loop_steps_per_s": steps / total, "env_steps_per_s": steps / in_step,
            "n_actions": env.n_actions, "obs_size": env.obs_size}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=3.0, help="measuring time per complexity level")
    parser.add_argument("--firms", type=int, default=4, help="firms per game")
    parser.add_argument("--complexity", type=int, nargs="+", default=[1, 4], help="levels to measure")
    args = parser.parse_args()
    print(f"load average before: {os.getloadavg()[0]:.2f} (1 min)")
    print("| complexity | firms | actions | obs size | loop steps/s | env.step steps/s |")
    print("|---|---|---|---|---|---|")
    for c in args.complexity:
        r = bench(c, args.firms, args.seconds)
        print(f"| {c} | {r['firms']} | {r['n_actions']} | {r['obs_size']} | {r['loop_steps_per_s']:,.0f} "
              f"| {r['env_steps_per_s']:,.0f} |")


if __name__ == "__main__":
    main()
