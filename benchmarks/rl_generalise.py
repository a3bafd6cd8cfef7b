"""What a trained bizsim policy does, and whether it holds against opponents it never trained with.

Prints the learner's action shares by verb over `--games` mixed-table games (learner, L2, L4, L3), then its win
rate, Wilson lower bound and every player's mean final cash against each `--opponents` entry at mixed tables
and against three copies (workloads.rl.evaluate's `evaluate_against`, seats rotated). Use it when a win rate
looks too good: a policy that only exploits a weakness of its training opponents loses to one without it.

How to run:  .venv/bin/python benchmarks/rl_generalise.py --checkpoint runs/rl/default/checkpoint
Results to expect: workloads/rl/README.md ("The default training").
"""

from __future__ import annotations

import argparse
import collections
import sys

from envs.bizsim import play, rules
from workloads.rl.evaluate import evaluate_against
from workloads.rl.policy import PolicyOpponent, policy_from_checkpoint


def action_shares(act, games: int, seed: int) -> dict[str, float]:
    """Share of each verb among the learner's actions in `games` mixed-table games (learner in seat 0)."""
    game = act.game
    lo = rules.layout(game.get("n_firms", 4), game["complexity"])
    if game.get("encoding", "flat") != "flat":
        raise SystemExit("error: --checkpoint: action shares need a flat-action policy")
    counts = collections.Counter()

    def recording(observation):
        action = act(observation)
        counts[rules.VERB_NAMES[int(lo.verb[int(action)])]] += 1
        return action

    for k in range(games):
        play.play_episode([PolicyOpponent(recording), "L2", "L4", "L3"], seed=seed + k, **game)
    total = sum(counts.values())
    return {verb: n / total for verb, n in counts.most_common()}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoint", required=True, help="a workloads.rl checkpoint folder")
    parser.add_argument("--opponents", default="drifting,switching,hoarder", help="comma-separated opponent specs")
    parser.add_argument("--episodes", type=int, default=40, help="games per opponent and table kind")
    parser.add_argument("--games", type=int, default=10, help="games for the action shares")
    parser.add_argument("--seed", type=int, default=9000, help="first game seed of the opponent games")
    args = parser.parse_args(argv)
    act = policy_from_checkpoint(args.checkpoint)
    shares = action_shares(act, args.games, seed=500)
    print("action shares:", ", ".join(f"{verb} {share:.0%}" for verb, share in shares.items()))
    print("| opponent | table | episodes | win rate | Wilson low | mean cash per player |")
    print("|---|---|---|---|---|---|")
    for spec in [s.strip() for s in args.opponents.split(",") if s.strip()]:
        for kind in ("mixed", "copies"):
            r = evaluate_against(act, act.game, spec, args.episodes, seed=args.seed, kind=kind)
            cash = ", ".join(f"{name} {part['cash']:.0f}" for name, part in r["parts"].items())
            print(f"| {spec} | {kind} | {args.episodes} | {r['win_rate']:.3f} | {r['wilson_low']:.3f} | {cash} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
