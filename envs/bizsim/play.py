"""The one play loop of bizsim: players in seats, their actions each step, the win rule, Wilson intervals, ladder.

A player is an opponent (see envs.bizsim.opponents: `reset(seed)`, `act(flat observation) -> flat action`) or,
with `native = True`, a policy that reads the observation in the env's own encoding and answers in it (a trained
learner, see workloads.rl.policy). `play_episode` plays whole games; `play_step` is the step of that loop for
envs that seat players next to a learner (`SingleAgentBizSim`, workloads.rl's multi-agent env).
"""

from __future__ import annotations

import itertools
import math

import numpy as np
from openskill.models import PlackettLuce

from envs.bizsim.env import BizSimEnv
from envs.bizsim.opponents import load_opponent


def opponent_seed(seed, seat):
    """The seed an opponent in `seat` gets for the episode seeded `seed` (None stays None)."""
    return None if seed is None else int(np.random.SeedSequence([int(seed), seat + 1]).generate_state(1)[0])


def reset_players(players: dict, seed, rng=None) -> None:
    """Reset each seated player (`players`: seat -> player) for the episode seeded `seed`: seat i gets
    `opponent_seed(seed, i)`; without a seed, a draw from `rng` when given (else None)."""
    for seat, player in players.items():
        if seed is None and rng is not None:
            player.reset(seed=int(rng.integers(2**31)))
        else:
            player.reset(seed=opponent_seed(seed, seat))


def player_action(env: BizSimEnv, seat: int, player):
    """`player`'s action for `seat` in the env's encoding: a native player reads the seat's observation in that
    encoding; an opponent reads the flat observation and its flat action is encoded."""
    if getattr(player, "native", False):
        return player.act(env.observation(seat))
    return env.encode_flat(seat, player.act(env.flat_observation(seat)))


def play_step(env: BizSimEnv, players: dict, actions: dict | None = None, players_first: bool = True):
    """One step of the game: each live seat in `players` (seat -> player) acts, `actions` (agent -> action in the
    env's encoding) are the other seats' moves (a learner's). The env carries out actions in the order given (bids
    and poaching depend on it): the players' first unless `players_first` is False. Returns `env.step`'s dicts."""
    moves = {
        a: player_action(env, env.agent_index[a], players[env.agent_index[a]])
        for a in env.agents
        if env.agent_index[a] in players
    }
    given = actions or {}
    return env.step({**moves, **given} if players_first else {**given, **moves})


def win_share(rank: int, winner, me) -> float:
    """The win rule: 1 for the sole highest final score, 0.5 for a share of the highest, 0 below it.
    `rank` counts the players ahead of `me`; `winner` is the sole winner (None on a shared top)."""
    if rank > 0:
        return 0.0
    return 1.0 if winner == me else 0.5


def play_episode(opponents, seed=None, **config) -> dict:
    """Play one game to its end with one player (object or spec, see load_opponent) per seat.

    Returns {"scores": final score per seat, "parts": its breakdown per seat ({"cash", "assets", "stock"}, which sum
    to the score), "ranks": players with a higher final score, per seat, "winner": seat
    or None on a tie, "outcome": sparse outcome per seat, "invalid": invalid actions per seat, "steps": env steps}.
    """
    players = dict(enumerate(load_opponent(o) for o in opponents))
    env = BizSimEnv(**{**config, "n_firms": len(players)})
    env.reset(seed=seed)
    reset_players(players, seed)
    outcome = np.zeros(len(players))
    infos = {}
    while env.agents:
        _, _, _, _, infos = play_step(env, players)
        for a, info in infos.items():
            outcome[env.agent_index[a]] += info["reward_terms"]["outcome"]
    final = next(iter(infos.values()))
    scores = [final["final_scores"][a] for a in env.possible_agents]
    winner = final["winner"]
    return {
        "scores": scores,
        "parts": [final["score_parts"][a] for a in env.possible_agents],
        "ranks": [sum(other > mine for other in scores) for mine in scores],
        "winner": None if winner is None else env.agent_index[winner],
        "outcome": outcome.tolist(),
        "invalid": env.invalid.tolist(),
        "steps": env.t,
    }


def seat_share(result: dict, seat: int) -> float:
    """The win rule (`win_share`) for `seat` in a `play_episode` result."""
    return win_share(result["ranks"][seat], result["winner"], seat)


def wilson(wins: float, n: int, z: float = 1.96) -> tuple[float, float]:
    """Wilson score interval (low, high) for a win rate of `wins` in `n` games (draws counted as half wins)."""
    if n == 0:
        return 0.0, 1.0
    p = wins / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return max(0.0, centre - half), min(1.0, centre + half)


def head_to_head(a, b, episodes=200, seed=0, **config) -> dict:
    """`a` against `b` in 2-firm games, seats alternating; a win is the higher final score, a draw counts half."""
    wins = 0.0
    for k in range(episodes):
        seats = (a, b) if k % 2 == 0 else (b, a)
        wins += seat_share(play_episode(list(seats), seed=seed + k // 2, **config), k % 2)
    return {
        "a": a,
        "b": b,
        "episodes": episodes,
        "win_rate": wins / episodes,
        "wilson_lower": wilson(wins, episodes)[0],
    }


LADDER_PAIRS = (("L1", "L0"), ("L2", "L1"), ("L3", "L2"), ("L4", "L3"))


def ladder(episodes=200, seed=0, pairs=LADDER_PAIRS, **config) -> list:
    """Each rung of the ladder as a head_to_head row (the stronger level first)."""
    return [head_to_head(a, b, episodes, seed, **config) for a, b in pairs]


def ladder_table(rows) -> str:
    """The ladder as a Markdown table."""
    lines = ["| pair | episodes | win rate | Wilson 95% lower |", "|---|---|---|---|"]
    lines += [
        f"| {r['a']} vs {r['b']} | {r['episodes']} | {r['win_rate']:.3f} | {r['wilson_lower']:.3f} |" for r in rows
    ]
    return "\n".join(lines)


def round_robin(entrants: dict, table_size: int, games: int, seed: int = 0, **config) -> list[dict]:
    """Every combination of `table_size` entrants (name -> spec or player) plays `games` games, seats rotated, and
    OpenSkill (Plackett-Luce) rates them from the final ranks. Rows best first: mu, sigma, the 95% interval
    `mu -/+ 1.96 sigma`, ordinal (mu - 3 sigma), games, win share and mean score parts (cash, assets, stock)."""
    model = PlackettLuce()
    names = sorted(entrants)
    players = {name: load_opponent(spec) for name, spec in entrants.items()}
    ratings = {name: model.rating(name=name) for name in names}
    played, wins = dict.fromkeys(names, 0), dict.fromkeys(names, 0.0)
    parts = {name: dict.fromkeys(("cash", "assets", "stock"), 0.0) for name in names}
    k = 0
    for combo in itertools.combinations(names, table_size):
        for g in range(games):
            seated = list(combo[g % table_size :] + combo[: g % table_size])
            result = play_episode([players[name] for name in seated], seed + k, **config)
            k += 1
            new = model.rate([[ratings[name]] for name in seated], ranks=result["ranks"])
            for seat, (name, team) in enumerate(zip(seated, new)):
                ratings[name] = team[0]
                played[name] += 1
                wins[name] += seat_share(result, seat)
                for key, value in result["parts"][seat].items():
                    parts[name][key] += value
    rows = [
        {
            "player": name,
            "mu": r.mu,
            "sigma": r.sigma,
            "low": r.mu - 1.96 * r.sigma,
            "high": r.mu + 1.96 * r.sigma,
            "ordinal": r.ordinal(),
            "games": played[name],
            "win_share": wins[name] / max(1, played[name]),
            **{key: value / max(1, played[name]) for key, value in parts[name].items()},
        }
        for name, r in ratings.items()
    ]
    return sorted(rows, key=lambda row: -row["mu"])


def strictly_ordered(rows: list[dict], order) -> bool:
    """True when the rating intervals of `order` (weakest first) do not overlap and rise in that order."""
    by_name = {row["player"]: row for row in rows}
    return all(by_name[a]["high"] < by_name[b]["low"] for a, b in zip(order, order[1:]))


def rating_table(rows: list[dict]) -> str:
    """Round-robin ratings as a Markdown table."""
    lines = [
        "| player | mu | 95% interval | games | win share | cash | assets | stock |",
        "|---|---|---|---|---|---|---|---|",
    ]
    lines += [
        f"| {r['player']} | {r['mu']:.2f} | [{r['low']:.2f}, {r['high']:.2f}] | {r['games']} | {r['win_share']:.3f} | "
        f"{r['cash']:.0f} | {r['assets']:.0f} | {r['stock']:.0f} |"
        for r in rows
    ]
    return "\n".join(lines)
