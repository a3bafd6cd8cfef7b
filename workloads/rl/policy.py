"""Inference without a Ray cluster: `policy_from_checkpoint(dir)` -> `act(observation) -> action` on CPU torch.

Accepts an Algorithm checkpoint (`<out>/checkpoint/`) or an RLModule folder (a league snapshot). The module is
rebuilt with `RLModule.from_checkpoint`, which unpickles the module's class and constructor arguments: load
only checkpoints you made yourself.

A policy plays a bizsim seat as a `PolicyOpponent` (a frozen league snapshot, or the learner under evaluation);
`make_opponent` is `envs.bizsim.opponents.load_opponent` with checkpoint folders loaded that way.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from envs.bizsim.opponents import load_opponent, parse_specs
from workloads.contract import UsageError
from workloads.rl.game import LEARNER, TABLE_SEP, load_game

MODULE_IN_ALGO = Path("learner_group") / "learner" / "rl_module" / LEARNER


def module_dir(path) -> Path:
    """The RLModule folder inside an Algorithm checkpoint, or `path` itself when it is a module folder."""
    path = Path(path)
    for candidate in (path / MODULE_IN_ALGO, path):
        if (candidate / "class_and_ctor_args.pkl").is_file():
            return candidate
    raise FileNotFoundError(f"{path} holds no RLModule checkpoint (expected {MODULE_IN_ALGO}/ or a module folder)")


def load_module(path):
    from ray.rllib.core.rl_module.rl_module import RLModule

    module = RLModule.from_checkpoint(str(module_dir(path).resolve()))  # RLlib wants an absolute path or URI
    module.eval()
    return module


def policy_from_checkpoint(path, deterministic: bool = True):
    """A callable `act(obs) -> action` for one bizsim observation dict; `act.game` is the saved game config.

    Deterministic by default (argmax of the masked logits / Q-values); flat actions come back as `int`,
    factorised ones as an int64 array [WHAT, unit, rival].
    """
    import torch
    from ray.rllib.core.columns import Columns

    module = load_module(path)
    game = load_game(path)
    factorised = game.get("encoding") == "factorised"

    def act(observation):
        batch = {Columns.OBS: {k: torch.as_tensor(np.asarray(v))[None] for k, v in observation.items()}}
        with torch.no_grad():
            out = module.forward_inference(batch) if deterministic else module.forward_exploration(batch)
        if Columns.ACTIONS in out:
            action = out[Columns.ACTIONS][0]
        else:
            logits = out[Columns.ACTION_DIST_INPUTS]
            dist = module.get_inference_action_dist_cls().from_logits(logits)
            action = (dist.to_deterministic() if deterministic else dist).sample()[0]
        action = action.cpu().numpy()
        return action.astype(np.int64) if factorised else int(action)

    act.game = game
    act.module = module
    return act


class PolicyOpponent:
    """A trained policy in a seat: `policy` is an `act` callable or a checkpoint folder (loaded on CPU).

    `native`: it reads the observation in the game's own encoding and answers in it (see envs.bizsim.play).
    """

    native = True

    def __init__(self, policy):
        self.path = None if callable(policy) else str(policy)
        self.policy = policy if callable(policy) else policy_from_checkpoint(policy)

    def reset(self, seed=None):
        pass

    def act(self, observation):
        return self.policy(observation)


def make_opponent(spec):
    """An opponent from a spec: a level name or import path (see load_opponent) or a checkpoint folder."""
    return load_opponent(spec, folder=PolicyOpponent)


def checked_specs(specs, flag: str) -> list[str]:
    """The opponent specs of a flag (see parse_specs; "A+B+C" is a table of those players), each loaded once: a bad
    one is a UsageError naming `flag`."""
    names = parse_specs(specs)
    for spec in names or [""]:
        for member in spec.split(TABLE_SEP):
            try:
                make_opponent(member)
            except ValueError as exc:
                raise UsageError(f"{flag}: {exc}") from None
    return names
