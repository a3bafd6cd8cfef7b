"""The bizsim game of a training run and the file that carries it next to every checkpoint (no Ray, no torch)."""

from __future__ import annotations

import json
from pathlib import Path

from envs.bizsim import validate_config

LEARNER = "learner"  # the main trained module; agents learner_0 ... map to it
EXPLOITER = "exploiter"  # the league's main exploiter (--exploiter): a second trained module, agent exploiter_0
GAME_FILE = "bizsim.json"
TABLES = ("mixed", "copies")
MIXED_COMPANY = ("L2", "L4")  # who sits with the learner and the opponent under test at a mixed table
TABLE_SEP = "+"  # "L2+L4+L1" as an opponent spec: a table of different players (seats rotated)


def table_for(spec: str, kind: str, n_others: int) -> list[str]:
    """The specs of the learner's `n_others` companions at a `kind` table for the opponent under test: `copies`
    of it, or `mixed` (L2, L4 and it; fewer seats keep the last ones, more repeat it)."""
    if kind == "copies":
        return [spec] * n_others
    company = [*MIXED_COMPANY, spec]
    return company[-n_others:] if n_others <= len(company) else company + [spec] * (n_others - len(company))


def table_members(spec: str, n_others: int) -> list[str]:
    """The companions a mix entry seats: a table spec "A+B+C" in that order (cycled to fill the seats), else copies."""
    parts = spec.split(TABLE_SEP)
    return [parts[k % len(parts)] for k in range(n_others)]


def game_config(complexity=1, encoding="flat", mask=True, shaping=0.1, n_firms=4, horizon=100) -> dict:
    """The bizsim keywords of a training run; `shaping` weighs the dense net-worth term next to the outcome."""
    weights = {
        "outcome": 1.0,
        "profit": 0.0,
        "net_worth": float(shaping),
        "production": 0.0,
        "builds": 0.0,
        "share": 0.0,
    }
    game = dict(
        n_firms=n_firms, complexity=complexity, encoding=encoding, mask=mask, horizon=horizon, reward_weights=weights
    )
    validate_config(game)
    return game


def save_game(directory, game: dict) -> Path:
    """Write the game config next to a checkpoint, so evaluation rebuilds the same env without Ray."""
    path = Path(directory) / GAME_FILE
    path.write_text(json.dumps(game, indent=2))
    return path


def load_game(directory) -> dict:
    """The game config saved with a checkpoint (the folder itself or one of its parents)."""
    for folder in [Path(directory), *Path(directory).parents][:6]:
        if (folder / GAME_FILE).is_file():
            return json.loads((folder / GAME_FILE).read_text())
    raise FileNotFoundError(f"no {GAME_FILE} in {directory} or its parents: not a workloads.rl checkpoint")
