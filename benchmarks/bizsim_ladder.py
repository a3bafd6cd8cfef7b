"""The bizsim strategy ladder: OpenSkill ratings of the scripted levels L0..L4 in 2-firm and 4-firm mixed tables.

Two round robins per complexity level (`envs.bizsim.play.round_robin`, Plackett-Luce ratings from the final ranks):
every pair of levels in 2-firm games and every 4-level combination of L0..L4 in 4-firm tables, `--games` games per
table with the seats rotated. The ladder holds when L0 < L1 < L2 < L3 < L4 with non-overlapping 95% intervals
(`strictly_ordered`). With `--rungs N`, also each level against the one below in N seat-swapped 2-firm games
(win rate and Wilson lower bound, the older head-to-head view).

How to run:  .venv/bin/python benchmarks/bizsim_ladder.py [--complexity 1 2 3 4] [--games 40] [--seed 0] [--rungs 0]
Results to expect: the tables in envs/bizsim/README.md ("The ladder").
"""

from __future__ import annotations

import argparse
import sys
import time

from envs.bizsim import LEVELS, ladder, ladder_table
from envs.bizsim.play import rating_table, round_robin, strictly_ordered

ORDER = list(LEVELS)  # L0 .. L4, weakest first


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--complexity", type=int, nargs="+", default=[1], choices=[1, 2, 3, 4], help="levels 1..4")
    parser.add_argument("--games", type=int, default=40, help="games per table (seats rotated)")
    parser.add_argument("--seed", type=int, default=0, help="first game seed")
    parser.add_argument("--tables", type=int, nargs="+", default=[2, 4], choices=[2, 4], help="table sizes")
    parser.add_argument("--rungs", type=int, default=0, help="also N head-to-head games per rung (0: skip)")
    args = parser.parse_args(argv)
    if args.games < 1 or args.rungs < 0:
        parser.error("--games must be >= 1 and --rungs >= 0")
    held = True
    for complexity in args.complexity:
        for size in args.tables:
            start = time.perf_counter()
            rows = round_robin({name: name for name in ORDER}, size, args.games, args.seed, complexity=complexity)
            ok = strictly_ordered(rows, ORDER)
            held &= ok
            print(f"\n{size}-firm tables, complexity {complexity}, {args.games} games per table, seed {args.seed}:")
            print(rating_table(rows))
            print(f"{time.perf_counter() - start:.0f} s; ladder {'holds' if ok else 'DOES NOT hold'}", flush=True)
        if args.rungs:
            start = time.perf_counter()
            rows = ladder(episodes=args.rungs, seed=args.seed, complexity=complexity)
            print(f"\nrungs, complexity {complexity}, {args.rungs} games per pair:")
            print(ladder_table(rows))
            print(f"{time.perf_counter() - start:.0f} s", flush=True)
    print(f"\nladder {'holds' if held else 'DOES NOT hold'} everywhere measured")
    return 0


if __name__ == "__main__":
    sys.exit(main())
