"""The bizsim game of a training run and the file that carries it next to every checkpoint (no Ray, no torch)."""

from __future__ import annotations

import json
from pathlib import Path

from envs.bizsim import validate_config

LEARNER = "learner"  # the one trained module; agents learner_0 ... map to it
GAME_FILE = "bizsim.json"


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
