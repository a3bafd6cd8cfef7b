"""Evaluate a bizsim checkpoint without a Ray cluster: win rates with Wilson intervals and an OpenSkill rating.

How to run
----------
`python -m workloads.rl.evaluate --checkpoint runs/rl/<ts>/checkpoint --opponents L1,L2,L3 --episodes 200 \
    --json runs/rl/<ts>/eval.json`
Opponents are level names (L0..L4, switching, drifting, pool), import paths `package.module:ClassName` or
snapshot folders. The game is the one saved with the checkpoint (bizsim.json).

Results to expect
-----------------
Per opponent: the learner (deterministic policy) against three copies of the opponent, its seat rotated over
the episodes; a win is the strictly highest final score, a shared top score counts half; win rate and its
Wilson 95% interval. Then a round-robin free-for-all over the learner, L0..L4, the given opponents and the
run's league snapshots (every 4-player combination, seats rotated), rated with OpenSkill (Plackett-Luce);
`ordinal` = mu - 3 sigma.
"""

from __future__ import annotations

import dataclasses
import itertools
import sys
from pathlib import Path

from envs.bizsim.opponents import parse_specs
from envs.bizsim.play import play_episode, seat_share, wilson
from workloads.contract import UsageError, fail, field, parse_config, write_json

SCRIPTED = ("L0", "L1", "L2", "L3", "L4")


@dataclasses.dataclass
class EvalConfig:
    """Win rates of a checkpoint against scripted opponents, with a round-robin OpenSkill rating."""

    checkpoint: str = field("", help="Algorithm checkpoint (<out>/checkpoint) or RLModule snapshot folder")
    opponents: str = field("L1,L2,L3", help="comma-separated opponent names, import paths or snapshot folders")
    episodes: int = field(100, help="episodes per opponent (the learner's seat rotates)", minimum=1)
    json: str = field("", help="write the result here (JSON)")
    seed: int = field(0, help="seed of the first episode (episode k uses seed + k)")
    rating_games: int = field(4, help="games per 4-player combination in the round robin (0 = no rating)", minimum=0)
    stochastic: bool = field(False, help="sample from the policy instead of its greedy action")

    def validate(self):
        from workloads.rl.policy import checked_specs

        if not self.checkpoint or not Path(self.checkpoint).is_dir():
            raise UsageError(f"--checkpoint {self.checkpoint!r} is not a folder")
        checked_specs(self.opponents, "--opponents")


def evaluate_against(policy, game: dict, spec: str, episodes: int, seed: int = 0) -> dict:
    """The learner against copies of `spec` in the saved game, seat rotated every episode."""
    from workloads.rl.policy import PolicyOpponent, make_opponent

    n = game.get("n_firms", 4)
    others = [make_opponent(spec) for _ in range(n - 1)]
    learner = PolicyOpponent(policy)
    wins, steps, invalid = 0.0, 0, 0.0
    for k in range(episodes):
        seat = k % n
        result = play_episode(others[:seat] + [learner] + others[seat:], seed + k, **game)
        wins += seat_share(result, seat)
        steps += result["steps"]
        invalid += result["invalid"][seat]
    lo, hi = wilson(wins, episodes)
    return {
        "opponent": spec,
        "episodes": episodes,
        "wins": wins,
        "win_rate": wins / episodes,
        "wilson_low": lo,
        "wilson_high": hi,
        "mean_steps": steps / episodes,
        "invalid_rate": invalid / max(1, steps),
    }


def round_robin(policy, game: dict, entrants: dict, games: int, seed: int = 0) -> list[dict]:
    """Free-for-all games over every combination of n_firms entrants (seats rotated), rated with OpenSkill."""
    from openskill.models import PlackettLuce

    from workloads.rl.policy import PolicyOpponent, make_opponent

    n = game.get("n_firms", 4)
    model = PlackettLuce()
    ratings = {name: model.rating(name=name) for name in entrants}
    played = dict.fromkeys(entrants, 0)
    seats = {name: PolicyOpponent(policy) if spec is None else make_opponent(spec) for name, spec in entrants.items()}
    k = 0
    for combo in itertools.combinations(sorted(entrants), n):
        for g in range(games):
            names = list(combo[g % n :] + combo[: g % n])
            result = play_episode([seats[name] for name in names], seed + 100_000 + k, **game)
            k += 1
            new = model.rate([[ratings[name]] for name in names], ranks=result["ranks"])
            for name, team in zip(names, new):
                ratings[name] = team[0]
                played[name] += 1
    table = [
        {"player": name, "mu": r.mu, "sigma": r.sigma, "ordinal": r.ordinal(), "games": played[name]}
        for name, r in ratings.items()
    ]
    return sorted(table, key=lambda row: -row["ordinal"])


def evaluate(
    checkpoint, opponents, episodes: int = 100, seed: int = 0, rating_games: int = 4, deterministic: bool = True
) -> dict:
    """Win rates per opponent and (rating_games > 0) the round-robin rating; see the module docstring."""
    from workloads.rl.policy import policy_from_checkpoint

    policy = policy_from_checkpoint(checkpoint, deterministic=deterministic)
    game = policy.game
    specs = parse_specs(opponents)
    result = {
        "checkpoint": str(checkpoint),
        "game": game,
        "episodes": episodes,
        "seed": seed,
        "deterministic": deterministic,
        "opponents": [evaluate_against(policy, game, spec, episodes, seed) for spec in specs],
    }
    if rating_games > 0:
        entrants = {"learner": None, **{name: name for name in SCRIPTED}}
        for spec in specs:
            entrants.setdefault(Path(spec).name if Path(spec).is_dir() else spec, spec)
        run = Path(checkpoint).resolve().parent
        for snap in sorted((run / "snapshots").glob("iter_*"))[-4:]:
            entrants[f"snapshot_{snap.name}"] = str(snap)
        result["rating"] = round_robin(policy, game, entrants, rating_games, seed)
    return result


def table(result: dict) -> str:
    lines = ["| opponent | episodes | win rate | Wilson 95% |", "|---|---|---|---|"]
    lines += [
        f"| {r['opponent']} | {r['episodes']} | {r['win_rate']:.3f} | [{r['wilson_low']:.3f}, {r['wilson_high']:.3f}] |"
        for r in result["opponents"]
    ]
    if result.get("rating"):
        lines += ["", "| player | ordinal | mu | sigma | games |", "|---|---|---|---|---|"]
        lines += [
            f"| {r['player']} | {r['ordinal']:.2f} | {r['mu']:.2f} | {r['sigma']:.2f} | {r['games']} |"
            for r in result["rating"]
        ]
    return "\n".join(lines)


def main(argv=None) -> int:
    cfg = parse_config(EvalConfig, argv, prog="python -m workloads.rl.evaluate")
    import torch

    torch.set_num_threads(1)
    try:
        result = evaluate(cfg.checkpoint, cfg.opponents, cfg.episodes, cfg.seed, cfg.rating_games, not cfg.stochastic)
    except (FileNotFoundError, ValueError) as exc:
        fail(str(exc))
    print(table(result))
    if cfg.json:
        write_json(cfg.json, result)
        print(f"wrote {cfg.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
