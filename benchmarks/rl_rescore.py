"""Re-score a trained bizsim policy's games with the fixed scoring rule: the same games, two scores.

The games are played under the rule the policy may have been trained on (`stock_value="tech0"`: unsold stock at
the tech-0 unit cost, the exploitable rule before 2026-12-07); at the end each firm's score is computed both ways
from the same final state: the old one, and the fixed one (stock at what it cost that firm to make). A policy
that won by hoarding loses its wins under the fixed rule; one that won by selling keeps them.

How to run:  .venv/bin/python benchmarks/rl_rescore.py --checkpoint runs/rl/x/checkpoint [--opponents L3,L4]
    [--tables copies,mixed] [--episodes 100] [--seed 0]
Results to expect: a table per (table, opponent): win rate under each rule and the learner's and the opponent's
mean cash / assets / stock (stock both ways). Figures in workloads/rl/README.md ("Re-scored").
"""

from __future__ import annotations

import argparse

import numpy as np

from envs.bizsim.env import BizSimEnv
from envs.bizsim.opponents import parse_specs
from envs.bizsim.play import play_step, reset_players, win_share
from workloads.rl.evaluate import table_for
from workloads.rl.policy import PolicyOpponent, make_opponent, policy_from_checkpoint


def top_share(scores: np.ndarray, seat: int) -> float:
    best = scores.max()
    winners = np.flatnonzero(scores == best)
    return win_share(0 if scores[seat] == best else 1, seat if len(winners) == 1 else None, seat)


def rescore(policy, spec: str, kind: str, episodes: int, seed: int) -> dict:
    game = {**policy.game, "stock_value": "tech0"}
    n = game.get("n_firms", 4)
    names = table_for(spec, kind, n)
    learner = PolicyOpponent(policy)
    others = [make_opponent(name) for name in names]
    wins = {"tech0": 0.0, "cost": 0.0}
    sums = {who: np.zeros(4) for who in ("learner", "opponent")}
    for k in range(episodes):
        seat = k % n
        players = dict(enumerate(others[:seat] + [learner] + others[seat:]))
        env = BizSimEnv(**game)
        env.reset(seed=seed + k)
        reset_players(players, seed + k)
        while env.agents:
            play_step(env, players)
        alive = env.dropout < 0
        old = env.final_score.copy()
        fixed = np.where(alive, env.cash + env.book + env.stock_cost.sum(1), env.final_score)
        # bankrupt firms rank below every survivor under both rules
        for rule, scores in (("tech0", old), ("cost", fixed)):
            wins[rule] += top_share(np.where(alive, scores, -1e9 + env.dropout), seat)
        opponent_seat = next(i for i in range(n) if i != seat and names[(i if i < seat else i - 1)] == spec)
        for who, i in (("learner", seat), ("opponent", opponent_seat)):
            sums[who] += [env.cash[i], env.book[i], env.inv[i] @ env._uc0, env.stock_cost[i].sum()]
    means = {who: (s / episodes).round(1).tolist() for who, s in sums.items()}
    return {
        "table": kind,
        "opponent": spec,
        "episodes": episodes,
        **{f"win_{r}": w / episodes for r, w in wins.items()},
        **means,
    }


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoint", required=True)
    parser.add_argument("--opponents", default="L3,L4")
    parser.add_argument("--tables", default="copies,mixed")
    parser.add_argument("--episodes", type=int, default=100)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    policy = policy_from_checkpoint(args.checkpoint)
    print(
        "| table | opponent | episodes | win rate, old rule | win rate, fixed rule | learner cash / assets / stock "
        "(old) / stock (cost) | opponent's |"
    )
    print("|---|---|---|---|---|---|---|")
    for kind in parse_specs(args.tables):
        for spec in parse_specs(args.opponents):
            r = rescore(policy, spec, kind, args.episodes, args.seed)
            cells = [" / ".join(f"{x:.0f}" for x in r[who]) for who in ("learner", "opponent")]
            print(
                f"| {kind} | {spec} | {r['episodes']} | {r['win_tech0']:.3f} | {r['win_cost']:.3f} | {cells[0]} | "
                f"{cells[1]} |"
            )


if __name__ == "__main__":
    main()
