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
import math
import sys
from pathlib import Path

import numpy as np

from workloads.contract import UsageError, fail, field, parse_config, write_json

SCRIPTED = ("L0", "L1", "L2", "L3", "L4")


@dataclasses.dataclass
class EvalConfig:
    """Win rates of a checkpoint against scripted opponents, with a round-robin OpenSkill rating."""

    checkpoint: str = field("", help="Algorithm checkpoint (<out>/checkpoint) or RLModule snapshot folder")
    opponents: str = field("L1,L2,L3", help="comma-separated opponent names, import paths or snapshot folders")
    episodes: int = field(100, help="episodes per opponent (the learner's seat rotates)")
    json: str = field("", help="write the result here (JSON)")
    seed: int = field(0, help="seed of the first episode (episode k uses seed + k)")
    rating_games: int = field(4, help="games per 4-player combination in the round robin (0 = no rating)")
    stochastic: bool = field(False, help="sample from the policy instead of its greedy action")

    def validate(self):
        if not self.checkpoint or not Path(self.checkpoint).is_dir():
            raise UsageError(f"--checkpoint {self.checkpoint!r} is not a folder")
        if self.episodes < 1:
            raise UsageError("--episodes must be >= 1")
        from workloads.rl.env import check_spec

        for spec in [s.strip() for s in self.opponents.split(",") if s.strip()] or [""]:
            try:
                check_spec(spec)
            except ValueError as exc:
                raise UsageError(str(exc)) from None


class PolicyPlayer:
    """A checkpointed policy as a seat: acts in the game's own encoding."""

    native = True

    def __init__(self, policy):
        self.policy = policy

    def reset(self, seed=None):
        pass

    def act(self, observation):
        return self.policy(observation)


def wilson(wins: float, n: int, z: float = 1.96) -> tuple[float, float]:
    """Wilson score interval for a win rate (draws count half)."""
    if n == 0:
        return 0.0, 1.0
    p = wins / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return max(0.0, centre - half), min(1.0, centre + half)


def play_game(game: dict, players: list, seed: int) -> dict:
    """One game to its end with one player per seat; returns bizsim's final infos of seat 0's view + steps."""
    from envs.bizsim import BizSimEnv
    from envs.bizsim.play import opponent_seed

    env = BizSimEnv(**{**game, "n_firms": len(players)})
    obs, _ = env.reset(seed=seed)
    for seat, player in enumerate(players):
        player.reset(seed=opponent_seed(seed, seat))
    final, invalid, steps = {}, np.zeros(len(players)), 0
    while env.agents:
        actions = {}
        for agent in env.agents:
            i = env.agent_index[agent]
            player = players[i]
            actions[agent] = (player.act(obs[agent]) if getattr(player, "native", False)
                              else env.encode_flat(i, player.act(env.flat_observation(i))))
        obs, _, _, _, infos = env.step(actions)
        steps += 1
        for agent, info in infos.items():
            invalid[env.agent_index[agent]] = info["invalid_action"]
            if "rank" in info:
                final = info
    ranks = [0] * len(players)
    key = final["final_scores"]
    for i, a in enumerate(env.possible_agents):
        ranks[i] = sum(1 for b in env.possible_agents if key[b] > key[a])
    winner = final["winner"]
    return {"ranks": ranks, "winner": None if winner is None else env.agent_index[winner], "steps": steps,
            "scores": [key[a] for a in env.possible_agents], "invalid": invalid.tolist()}


def learner_outcome(result: dict, seat: int) -> float:
    if result["ranks"][seat] > 0:
        return 0.0
    return 1.0 if result["winner"] == seat else 0.5


def evaluate_against(policy, game: dict, spec: str, episodes: int, seed: int = 0) -> dict:
    """The learner against copies of `spec` in the saved game, seat rotated every episode."""
    from workloads.rl.env import make_opponent

    n = game.get("n_firms", 4)
    others = [make_opponent(spec) for _ in range(n - 1)]
    wins, steps, invalid = 0.0, 0, 0.0
    for k in range(episodes):
        seat = k % n
        players = others[:seat] + [PolicyPlayer(policy)] + others[seat:]
        result = play_game(game, players, seed + k)
        wins += learner_outcome(result, seat)
        steps += result["steps"]
        invalid += result["invalid"][seat]
    lo, hi = wilson(wins, episodes)
    return {"opponent": spec, "episodes": episodes, "wins": wins, "win_rate": wins / episodes,
            "wilson_low": lo, "wilson_high": hi, "mean_steps": steps / episodes,
            "invalid_rate": invalid / max(1, steps)}


def round_robin(policy, game: dict, entrants: dict, games: int, seed: int = 0) -> list[dict]:
    """Free-for-all games over every combination of n_firms entrants (seats rotated), rated with OpenSkill."""
    from openskill.models import PlackettLuce

    from workloads.rl.env import make_opponent

    n = game.get("n_firms", 4)
    model = PlackettLuce()
    ratings = {name: model.rating(name=name) for name in entrants}
    played = dict.fromkeys(entrants, 0)
    seats = {name: PolicyPlayer(policy) if spec is None else make_opponent(spec) for name, spec in entrants.items()}
    k = 0
    for combo in itertools.combinations(sorted(entrants), n):
        for g in range(games):
            names = list(combo[g % n:] + combo[:g % n])
            result = play_game(game, [seats[name] for name in names], seed + 100_000 + k)
            k += 1
            new = model.rate([[ratings[name]] for name in names], ranks=result["ranks"])
            for name, team in zip(names, new):
                ratings[name] = team[0]
                played[name] += 1
    table = [{"player": name, "mu": r.mu, "sigma": r.sigma, "ordinal": r.ordinal(), "games": played[name]}
             for name, r in ratings.items()]
    return sorted(table, key=lambda row: -row["ordinal"])


def evaluate(checkpoint, opponents, episodes: int = 100, seed: int = 0, rating_games: int = 4,
             deterministic: bool = True) -> dict:
    """Win rates per opponent and (rating_games > 0) the round-robin rating; see the module docstring."""
    from workloads.rl.policy import policy_from_checkpoint

    policy = policy_from_checkpoint(checkpoint, deterministic=deterministic)
    game = policy.game
    specs = [s.strip() for s in (opponents.split(",") if isinstance(opponents, str) else opponents) if s.strip()]
    result = {"checkpoint": str(checkpoint), "game": game, "episodes": episodes, "seed": seed,
              "deterministic": deterministic,
              "opponents": [evaluate_against(policy, game, spec, episodes, seed) for spec in specs]}
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
    lines += [f"| {r['opponent']} | {r['episodes']} | {r['win_rate']:.3f} | [{r['wilson_low']:.3f}, "
              f"{r['wilson_high']:.3f}] |" for r in result["opponents"]]
    if result.get("rating"):
        lines += ["", "| player | ordinal | mu | sigma | games |", "|---|---|---|---|---|"]
        lines += [f"| {r['player']} | {r['ordinal']:.2f} | {r['mu']:.2f} | {r['sigma']:.2f} | {r['games']} |"
                  for r in result["rating"]]
    return "\n".join(lines)


def main(argv=None) -> int:
    cfg = parse_config(EvalConfig, argv, prog="python -m workloads.rl.evaluate")
    import torch

    torch.set_num_threads(1)
    try:
        result = evaluate(cfg.checkpoint, cfg.opponents, cfg.episodes, cfg.seed, cfg.rating_games,
                          not cfg.stochastic)
    except (FileNotFoundError, ValueError) as exc:
        fail(str(exc))
    print(table(result))
    if cfg.json:
        write_json(cfg.json, result)
        print(f"wrote {cfg.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
