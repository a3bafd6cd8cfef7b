"""The bizsim strategy ladder: each scripted level against the one below, 2-firm games, seats swapped.

A win is the higher final score (net worth; a bankrupt firm scores its negative cash), a draw counts half; the
Wilson 95% lower bound of the win rate must be above 0.5 for every rung.

How to run:  .venv/bin/python benchmarks/bizsim_ladder.py [--episodes 200] [--seed 0] [--complexity 1]
Results to expect: the table in envs/bizsim/README.md (every lower bound well above 0.5).
"""

from __future__ import annotations

import argparse
import time

from envs.bizsim import ladder, ladder_table


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--episodes", type=int, default=200, help="episodes per pair (half in each seat)")
    parser.add_argument("--seed", type=int, default=0, help="first episode seed")
    parser.add_argument("--complexity", type=int, default=1, help="bizsim complexity level 1..4")
    args = parser.parse_args()
    start = time.perf_counter()
    rows = ladder(episodes=args.episodes, seed=args.seed, complexity=args.complexity)
    print(ladder_table(rows))
    print(
        f"\ncomplexity {args.complexity}, {args.episodes} episodes per pair, {time.perf_counter() - start:.0f} s; "
        f"ladder {'holds' if all(r['wilson_lower'] > 0.5 for r in rows) else 'BROKEN'}"
    )


if __name__ == "__main__":
    main()
