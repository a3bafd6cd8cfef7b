"""Evaluate a bizsim checkpoint without a Ray cluster: win rates with Wilson intervals, every player's score
breakdown, and an OpenSkill rating.

How to run
----------
`python -m workloads.rl.evaluate --checkpoint runs/rl/<ts>/checkpoint --opponents L1,L2,L3,L4 --episodes 200 \
    --json runs/rl/<ts>/eval.json`
Opponents are level names (L0..L4, hoarder, switching, drifting, pool), import paths `package.module:ClassName` or
snapshot folders. The game is the one saved with the checkpoint (bizsim.json).

Results to expect
-----------------
Per opponent X and table kind (`--tables`): `mixed` seats the learner with L2, L4 and X (a 4-firm game; fewer or
more seats keep the last ones / repeat X), `copies` with copies of X; seats rotate over the episodes, the policy is
deterministic. A win is the strictly highest final score, a shared top counts half; win rate, its Wilson 95%
interval, and the mean score parts (cash, assets, stock) of the learner and of each opponent. Then a round robin
over the learner, L0..L4, the hoarder, the given opponents and the run's league snapshots (every n-firm
combination, seats rotated), rated with OpenSkill (Plackett-Luce): mu, sigma and the 95% interval.
"""

from __future__ import annotations

import dataclasses
import sys
from pathlib import Path

from envs.bizsim.opponents import parse_specs
from envs.bizsim.play import play_episode, round_robin, seat_share, wilson
from workloads.contract import UsageError, fail, field, parse_config, write_json
from workloads.rl.game import TABLES, table_for

SCRIPTED = ("L0", "L1", "L2", "L3", "L4", "hoarder")


@dataclasses.dataclass
class EvalConfig:
    """Win rates of a checkpoint against scripted opponents, with a round-robin OpenSkill rating."""

    checkpoint: str = field("", help="Algorithm checkpoint (<out>/checkpoint) or RLModule snapshot folder")
    opponents: str = field("L1,L2,L3,L4", help="comma-separated opponent names, import paths or snapshot folders")
    tables: str = field("mixed,copies", help="table kinds: mixed (learner, L2, L4, opponent), copies (of opponent)")
    episodes: int = field(100, help="episodes per opponent and table kind (the learner's seat rotates)", minimum=1)
    json: str = field("", help="write the result here (JSON)")
    seed: int = field(0, help="seed of the first episode (episode k uses seed + k)")
    rating_games: int = field(4, help="games per n-firm combination in the round robin (0 = no rating)", minimum=0)
    stochastic: bool = field(False, help="sample from the policy instead of its greedy action")

    def validate(self):
        from workloads.rl.policy import checked_specs

        if not self.checkpoint or not Path(self.checkpoint).is_dir():
            raise UsageError(f"--checkpoint {self.checkpoint!r} is not a folder")
        checked_specs(self.opponents, "--opponents")
        table_kinds(self.tables)


def table_kinds(text: str) -> list[str]:
    kinds = parse_specs(text)
    bad = [k for k in kinds if k not in TABLES]
    if bad or not kinds:
        raise UsageError(f"--tables: {bad[0] if bad else text!r} is not one of {', '.join(TABLES)}")
    return kinds


def evaluate_against(policy, game: dict, spec: str, episodes: int, seed: int = 0, kind: str = "copies") -> dict:
    """The learner at `kind` tables for `spec` in the saved game; every seat rotates each episode."""
    from workloads.rl.policy import PolicyOpponent, make_opponent

    n = game.get("n_firms", 4)
    names = table_for(spec, kind, n - 1)
    others = [make_opponent(name) for name in names]
    learner = PolicyOpponent(policy)
    wins, steps, invalid = 0.0, 0, 0.0
    parts: dict[str, dict] = {}
    for k in range(episodes):
        seat = k % n
        turn = (k // n) % len(others)  # the companions' order rotates too, once per round of learner seats
        ring, ring_names = others[turn:] + others[:turn], names[turn:] + names[:turn]
        result = play_episode(ring[:seat] + [learner] + ring[seat:], seed + k, **game)
        wins += seat_share(result, seat)
        steps += result["steps"]
        invalid += result["invalid"][seat]
        seated = ring_names[:seat] + ["learner"] + ring_names[seat:]
        for name, score, part in zip(seated, result["scores"], result["parts"]):
            total = parts.setdefault(name, {"games": 0, "score": 0.0, **dict.fromkeys(part, 0.0)})
            total["games"] += 1
            total["score"] += score
            for key, value in part.items():
                total[key] += value
    lo, hi = wilson(wins, episodes)
    return {
        "opponent": spec,
        "table": kind,
        "players": ["learner", *names],
        "episodes": episodes,
        "wins": wins,
        "win_rate": wins / episodes,
        "wilson_low": lo,
        "wilson_high": hi,
        "mean_steps": steps / episodes,
        "invalid_rate": invalid / max(1, steps),
        "parts": {
            name: {key: value / total["games"] for key, value in total.items() if key != "games"}
            for name, total in parts.items()
        },
    }


def evaluate(
    checkpoint,
    opponents,
    episodes: int = 100,
    seed: int = 0,
    rating_games: int = 4,
    deterministic: bool = True,
    tables: str = "mixed,copies",
) -> dict:
    """Win rates per table kind and opponent and (rating_games > 0) the round-robin rating (module docstring)."""
    from workloads.rl.policy import PolicyOpponent, make_opponent, policy_from_checkpoint

    policy = policy_from_checkpoint(checkpoint, deterministic=deterministic)
    game = policy.game
    specs = parse_specs(opponents)
    result = {
        "checkpoint": str(checkpoint),
        "game": game,
        "episodes": episodes,
        "seed": seed,
        "deterministic": deterministic,
        "opponents": [
            evaluate_against(policy, game, spec, episodes, seed, kind) for kind in table_kinds(tables) for spec in specs
        ],
    }
    if rating_games > 0:
        entrants = {"learner": PolicyOpponent(policy), **{name: make_opponent(name) for name in SCRIPTED}}
        for spec in specs:
            entrants.setdefault(Path(spec).name if Path(spec).is_dir() else spec, make_opponent(spec))
        run = Path(checkpoint).resolve().parent
        for snap in sorted((run / "snapshots").glob("iter_*"))[-4:]:
            entrants[f"snapshot_{snap.name}"] = make_opponent(str(snap))
        result["rating"] = round_robin(entrants, game.get("n_firms", 4), rating_games, seed + 100_000, **game)
    return result


def table(result: dict) -> str:
    """Win rates with the learner's and its opponents' mean score parts, then the rating, as Markdown."""
    lines = [
        "| table | opponent | episodes | win rate | Wilson 95% | learner cash / assets / stock | opponent's |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in result["opponents"]:
        mine, theirs = r["parts"]["learner"], r["parts"].get(r["opponent"], {})
        cells = [" / ".join(f"{p.get(k, 0):.0f}" for k in ("cash", "assets", "stock")) for p in (mine, theirs)]
        lines.append(
            f"| {r['table']} | {r['opponent']} | {r['episodes']} | {r['win_rate']:.3f} | "
            f"[{r['wilson_low']:.3f}, {r['wilson_high']:.3f}] | {cells[0]} | {cells[1]} |"
        )
    if result.get("rating"):
        from envs.bizsim.play import rating_table

        lines += ["", rating_table(result["rating"])]
    return "\n".join(lines)


def main(argv=None) -> int:
    cfg = parse_config(EvalConfig, argv, prog="python -m workloads.rl.evaluate")
    import torch

    torch.set_num_threads(1)
    try:
        result = evaluate(
            cfg.checkpoint, cfg.opponents, cfg.episodes, cfg.seed, cfg.rating_games, not cfg.stochastic, cfg.tables
        )
    except (FileNotFoundError, ValueError) as exc:
        fail(str(exc))
    print(table(result))
    if cfg.json:
        write_json(cfg.json, result)
        print(f"wrote {cfg.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
