"""bizsim raw speed: env steps per second on one core, 4 firms, random valid actions.

One env step is one parallel step of all firms.  Figures per complexity level: the whole loop (random valid
actions drawn from the masks with numpy, plus `env.step`, resets included) and `env.step` alone, each per second of
wall time and per second of this process's CPU time (the per-core figure, robust to other load on the machine).

How to run:  .venv/bin/python benchmarks/bench_bizsim.py [--seconds 3] [--firms 4]
             .venv/bin/python benchmarks/bench_bizsim.py --against HEAD~1 --complexity 1 --rounds 5
(`--against REV`: the env of git revision REV and this checkout's, in alternating subprocesses on the same
machine in one run; prints each round and the ratio of the medians, CPU time per step being the fair figure.)
Results to expect: see envs/bizsim/README.md (target >= 20,000 steps/s at complexity 1).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

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


ROOT = Path(__file__).resolve().parents[1]


def against(rev: str, complexity: int, firms: int, seconds: float, rounds: int) -> None:
    """This checkout's env against revision `rev`'s, alternating subprocesses, one table and the median ratio."""
    with tempfile.TemporaryDirectory() as old_root:
        archive = subprocess.run(["git", "archive", rev, "envs"], cwd=ROOT, capture_output=True, check=True).stdout
        subprocess.run(["tar", "-x", "-C", old_root], input=archive, check=True)
        runs = {"this checkout": [], rev: []}
        for k in range(rounds):
            for name, root in (("this checkout", str(ROOT)), (rev, old_root))[:: 1 if k % 2 == 0 else -1]:
                cmd = [sys.executable, __file__, "--json", "--complexity", str(complexity), "--seconds", str(seconds)]
                cmd += ["--firms", str(firms)]
                out = subprocess.run(cmd, env={**os.environ, "PYTHONPATH": root}, capture_output=True, text=True)
                runs[name].append(json.loads(out.stdout.splitlines()[-1])["env_steps_per_cpu_s"])
    print(f"| env | env.step steps per CPU s, complexity {complexity}, {rounds} rounds | median |")
    print("|---|---|---|")
    for name, values in runs.items():
        print(f"| {name} | {', '.join(f'{v:,.0f}' for v in values)} | {statistics.median(values):,.0f} |")
    ratio = statistics.median(runs["this checkout"]) / statistics.median(runs[rev])
    print(f"\nratio this checkout / {rev}: {ratio:.3f}; load average {os.getloadavg()[0]:.2f} (1 min)")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=3.0, help="measuring time per complexity level")
    parser.add_argument("--firms", type=int, default=4, help="firms per game")
    parser.add_argument("--complexity", type=int, nargs="+", default=[1, 4], help="levels to measure")
    parser.add_argument("--against", default="", help="a git revision whose env to time against this one")
    parser.add_argument("--rounds", type=int, default=5, help="alternating rounds with --against")
    parser.add_argument("--json", action="store_true", help=argparse.SUPPRESS)  # one result line, for --against
    args = parser.parse_args()
    if args.json:
        print(json.dumps(bench(args.complexity[0], args.firms, args.seconds)))
        return
    if args.against:
        against(args.against, args.complexity[0], args.firms, args.seconds, args.rounds)
        return
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
