"""Games between scripted opponents (or any objects with reset/act) and the strategy-ladder table."""

from __future__ import annotations

import math

import numpy as np

from envs.bizsim.env import BizSimEnv
from envs.bizsim.opponents import load_opponent


def opponent_seed(seed, seat):
    """The seed an opponent in `seat` gets for the episode seeded `seed` (None stays None)."""
    return None if seed is None else int(np.random.SeedSequence([int(seed), seat + 1]).generate_state(1)[0])


def play_episode(opponents, seed=None, **config) -> dict:
    """Play one episode with one opponent (object or spec, see load_opponent) per seat.

    Returns {"scores": final score per seat, "winner": seat or None on a tie, "outcome": sparse outcome per seat,
    "steps": env steps}.
    """
    players = [load_opponent(o) for o in opponents]
    env = BizSimEnv(n_firms=len(players), **config)
    env.reset(seed=seed)
    for seat, player in enumerate(players):
        player.reset(seed=opponent_seed(seed, seat))
    outcome = np.zeros(len(players))
    infos = {}
    while env.agents:
        actions = {}
        for a in env.agents:
            i = env.agent_index[a]
            actions[a] = env.encode_flat(i, players[i].act(env.flat_observation(i)))
        _, _, _, _, infos = env.step(actions)
        for a, info in infos.items():
            outcome[env.agent_index[a]] += info["reward_terms"]["outcome"]
    final = next(iter(infos.values()))
    scores = [final["final_scores"][a] for a in env.possible_agents]
    winner = final["winner"]
    return {"scores": scores, "winner": None if winner is None else env.agent_index[winner],
            "outcome": outcome.tolist(), "steps": env.t}


def wilson_lower(wins: float, n: int, z: float = 1.96) -> float:
    """Wilson score interval lower bound for a win rate (draws counted as half wins)."""
    if n == 0:
        return 0.0
    p = wins / n
    centre = p + z * z / (2 * n)
    margin = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
    return (centre - margin) / (1 + z * z / n)


def head_to_head(a, b, episodes=200, seed=0, **config) -> dict:
    """`a` against `b` in 2-firm games, seats alternating; a win is the higher final score, a draw counts half."""
    wins = 0.0
    for k in range(episodes):
        seats = (a, b) if k % 2 == 0 else (b, a)
        scores = play_episode(list(seats), seed=seed + k // 2, **config)["scores"]
        mine, theirs = (scores[0], scores[1]) if k % 2 == 0 else (scores[1], scores[0])
        wins += 1.0 if mine > theirs else 0.5 if mine == theirs else 0.0
    return {"a": a, "b": b, "episodes": episodes, "win_rate": wins / episodes,
            "wilson_lower": wilson_lower(wins, episodes)}


LADDER_PAIRS = (("L1", "L0"), ("L2", "L1"), ("L3", "L2"), ("L4", "L3"))


def ladder(episodes=200, seed=0, pairs=LADDER_PAIRS, **config) -> list:
    """Each rung of the ladder as a head_to_head row (the stronger level first)."""
    return [head_to_head(a, b, episodes, seed, **config) for a, b in pairs]


def ladder_table(rows) -> str:
    """The ladder as a Markdown table."""
    lines = ["| pair | episodes | win rate | Wilson 95% lower |", "|---|---|---|---|"]
    lines += [f"| {r['a']} vs {r['b']} | {r['episodes']} | {r['win_rate']:.3f} | {r['wilson_lower']:.3f} |"
              for r in rows]
    return "\n".join(lines)
