"""bizsim as an RLlib MultiAgentEnv: the learner's seats are agents, scripted opponents play the rest inside.

Why scripted seats inside the env (not non-trained RLModules): an opponent keeps state within an episode (L4) or
across episodes (switching, drifting), and each seat's opponent must be `reset(seed)` at every episode. Inside
the env that is a plain method call; RLModules would need the state carried through connectors. Frozen
snapshots of the learner (league play) are scripted seats too: `SnapshotOpponent` runs a saved RLModule on CPU.

Agents are `learner_0 ... learner_{k-1}` (k = `learner_seats`, 1 by default), placed on random seats every
episode; all map to the one trained module "learner". The observation is bizsim's own dict
`{"observations", "action_mask"}` in the configured encoding.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from ray.rllib.env.multi_agent_env import MultiAgentEnv

from envs.bizsim import BizSimEnv, validate_config
from envs.bizsim.opponents import load_opponent
from envs.bizsim.play import opponent_seed

LEARNER = "learner"
GAME_FILE = "bizsim.json"
SHAPING_TERM = "net_worth"


def game_config(complexity=1, encoding="flat", mask=True, shaping=0.1, n_firms=4, horizon=100) -> dict:
    """The bizsim keywords of a training run; `shaping` weighs the dense net-worth term next to the outcome."""
    weights = {"outcome": 1.0, "profit": 0.0, "net_worth": float(shaping), "production": 0.0, "builds": 0.0,
               "share": 0.0}
    game = dict(n_firms=n_firms, complexity=complexity, encoding=encoding, mask=mask, horizon=horizon,
                reward_weights=weights)
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


class SnapshotOpponent:
    """A frozen learner from a checkpoint, playing a seat on CPU (league play); acts in the env's own encoding."""

    native = True   # gets the observation in the game's encoding and returns an action in it

    def __init__(self, path):
        from workloads.rl.policy import policy_from_checkpoint

        self.path = str(path)
        self.policy = policy_from_checkpoint(path)

    def reset(self, seed=None):
        pass

    def act(self, observation):
        return self.policy(observation)


def make_opponent(spec):
    """A level name / import path (see envs.bizsim.opponents.load_opponent) or a checkpoint folder (snapshot)."""
    if isinstance(spec, str) and Path(spec).is_dir():
        return SnapshotOpponent(spec)
    return load_opponent(spec)


def check_spec(spec: str) -> None:
    """Raise ValueError (one line, saying what is accepted) unless `spec` names a loadable opponent."""
    from envs.bizsim.opponents import NAMED

    if spec in NAMED or Path(spec).is_dir():
        return
    if ":" not in spec:
        raise ValueError(f"unknown opponent {spec!r}; use one of {', '.join(sorted(NAMED))}, "
                         "'package.module:ClassName' or a snapshot folder")
    try:
        load_opponent(spec)
    except Exception as exc:  # noqa: BLE001 - any failure to build it is the user's bad spec
        raise ValueError(f"cannot load opponent {spec!r}: {exc}") from None


def parse_mix(opponents) -> dict:
    """{spec: weight} from a dict, a list of specs or a comma-separated string (uniform weights)."""
    if isinstance(opponents, dict):
        return {str(k): float(v) for k, v in opponents.items() if v > 0}
    if isinstance(opponents, str):
        opponents = [s for s in opponents.split(",") if s.strip()]
    return {s.strip(): 1.0 for s in opponents}


class BizSimMultiAgentEnv(MultiAgentEnv):
    """bizsim for RLlib: config keys `game` (bizsim keywords), `opponents` (mix), `learner_seats`, `seed`.

    Each episode draws one opponent spec from the mix and seats a copy of it in every non-learner seat (the
    default game: the learner against three copies of one opponent); instances are kept per seat and spec.

    At the end of each episode `episode_result` holds, per learner agent, the outcome against the table:
    `win` (1 strictly highest final score, 0.5 shared top, 0 otherwise), `score`, `invalid` (count),
    `steps`, and the opponents that played.
    """

    def __init__(self, config=None):
        super().__init__()
        config = dict(config or {})
        self.game = dict(config.get("game") or game_config())
        self.env = BizSimEnv(**self.game)
        self.n_learners = int(config.get("learner_seats", 1))
        if not 1 <= self.n_learners <= self.env.n_firms:
            raise ValueError(f"learner_seats must be in 1..{self.env.n_firms}")
        self.possible_agents = [f"{LEARNER}_{k}" for k in range(self.n_learners)]
        self.agents = list(self.possible_agents)
        obs_space, act_space = self.env.observation_space("firm_0"), self.env.action_space("firm_0")
        self.observation_spaces = {a: obs_space for a in self.possible_agents}
        self.action_spaces = {a: act_space for a in self.possible_agents}
        self._rng = np.random.default_rng(config.get("seed"))
        self._instances = {}                  # (seat, spec) -> opponent, kept so cross-episode state survives
        self.set_opponents(config.get("opponents") or {"L0": 1.0})
        self.episode_result = None

    # ---- opponents --------------------------------------------------------------------------------------------
    def set_opponents(self, opponents):
        """Change the opponent mix from the next episode on (curriculum and non-stationary schedules call this)."""
        mix = parse_mix(opponents)
        if not mix:
            raise ValueError("the opponent mix is empty")
        for spec in mix:                      # fail early on a bad spec, not in the middle of training
            self._opponent(0, spec)
        self.mix = mix
        self._specs = list(mix)
        self._p = np.array([mix[s] for s in self._specs]) / sum(mix.values())

    def _opponent(self, seat, spec):
        key = (seat, spec)
        if key not in self._instances:
            self._instances[key] = make_opponent(spec)
        return self._instances[key]

    # ---- episode ----------------------------------------------------------------------------------------------
    def reset(self, *, seed=None, options=None):
        if seed is not None:
            self._rng = np.random.default_rng(seed)
        episode_seed = int(self._rng.integers(2**31 - 1))
        env = self.env
        self._firm_obs, _ = env.reset(seed=episode_seed)
        seats = self._rng.permutation(env.n_firms)
        self.seat_of = {a: int(s) for a, s in zip(self.possible_agents, seats[:self.n_learners])}
        self.agent_of = {s: a for a, s in self.seat_of.items()}
        self.opponents = {}
        spec = self._specs[int(self._rng.choice(len(self._specs), p=self._p))]
        for seat in sorted(int(s) for s in seats[self.n_learners:]):
            opponent = self._opponent(seat, spec)
            opponent.reset(seed=opponent_seed(episode_seed, seat))
            self.opponents[seat] = (spec, opponent)
        self.agents = list(self.possible_agents)
        self.episode_result = None
        self._steps = 0
        obs = {a: self._observation(s) for a, s in self.seat_of.items()}
        return obs, {a: {} for a in obs}

    def _observation(self, seat):
        return self._firm_obs[f"firm_{seat}"]

    def step(self, action_dict):
        env = self.env
        actions = {}
        for seat, (_, opponent) in self.opponents.items():
            if env.alive[seat]:
                if getattr(opponent, "native", False):
                    actions[f"firm_{seat}"] = opponent.act(self._observation(seat))
                else:
                    actions[f"firm_{seat}"] = env.encode_flat(seat, opponent.act(env.flat_observation(seat)))
        for agent, action in action_dict.items():
            actions[f"firm_{self.seat_of[agent]}"] = action
        firm_obs, rewards, terminations, truncations, infos = env.step(actions)
        self._firm_obs = firm_obs
        self._steps += 1
        obs, rew, term, trunc, info = {}, {}, {}, {}, {}
        for agent in self.agents:
            firm = f"firm_{self.seat_of[agent]}"
            obs[agent] = self._observation(self.seat_of[agent])
            rew[agent] = rewards[firm]
            term[agent] = terminations[firm]
            trunc[agent] = truncations[firm]
            info[agent] = infos[firm]
        self.agents = [a for a in self.agents if not (term[a] or trunc[a])]
        game_over = not env.agents
        done = game_over or not self.agents
        term["__all__"] = done and not any(trunc.values())
        trunc["__all__"] = done and any(trunc.values())
        if done:
            self.episode_result = self._result(infos)
        return obs, rew, term, trunc, info

    def _result(self, infos):
        """Win / score / invalid actions per learner from bizsim's final infos; bankrupt while rivals live = loss."""
        result = {}
        for agent, seat in self.seat_of.items():
            info = infos.get(f"firm_{seat}", {})
            if "rank" in info:
                win = 0.0 if info["rank"] > 0 else 1.0 if info["winner"] == f"firm_{seat}" else 0.5
            else:
                win = 0.0
            result[agent] = {"win": win, "score": float(info.get("score", float("nan"))),
                             "invalid": int(info.get("invalid_action", 0)), "steps": self._steps}
        result["opponents"] = sorted({spec for spec, _ in self.opponents.values()})
        return result


def make_env(config):
    """Env creator for `register_env` / `config.environment(env=...)`."""
    return BizSimMultiAgentEnv(config)
