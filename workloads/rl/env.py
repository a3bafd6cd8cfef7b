"""bizsim as an RLlib MultiAgentEnv: the learner's seats are agents, scripted opponents play the rest inside.

Why scripted seats inside the env (not non-trained RLModules): an opponent keeps state within an episode (L4) or
across episodes (switching, drifting), and each seat's opponent must be `reset(seed)` at every episode. Inside
the env that is a plain method call; RLModules would need the state carried through connectors. Frozen
snapshots of the learner (league play) are scripted seats too: `PolicyOpponent` runs a saved RLModule on CPU.

Agents are `learner_0 ... learner_{k-1}` (k = `learner_seats`, 1 by default), placed on random seats every
episode; all map to the one trained module "learner". The observation is bizsim's own dict
`{"observations", "action_mask"}` in the configured encoding.
"""

from __future__ import annotations

import numpy as np
from ray.rllib.env.multi_agent_env import MultiAgentEnv

from envs.bizsim import BizSimEnv
from envs.bizsim.opponents import parse_mix
from envs.bizsim.play import play_step, reset_players, win_share
from workloads.rl.game import EXPLOITER, LEARNER, TABLE_SEP, game_config, table_members
from workloads.rl.policy import make_opponent

EXPLOITER_SHARE = 0.5  # share of games in which the exploiter (when on) takes one of the opponents' seats


class BizSimMultiAgentEnv(MultiAgentEnv):
    """bizsim for RLlib: config keys `game` (bizsim keywords), `opponents` (mix), `learner_seats`, `seed`.

    Each episode draws one opponent spec from the mix and seats a copy of it in every non-learner seat (the
    learner against three copies of one opponent in the default game), or, for a table spec "L2+L4+L1", those
    players in a rotated order; instances are kept per seat and spec.

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
        self.exploiter = bool(config.get("exploiter")) and self.n_learners < self.env.n_firms
        if self.exploiter:
            self.possible_agents.append(f"{EXPLOITER}_0")
        self.agents = list(self.possible_agents)
        obs_space, act_space = self.env.observation_space("firm_0"), self.env.action_space("firm_0")
        self.observation_spaces = {a: obs_space for a in self.possible_agents}
        self.action_spaces = {a: act_space for a in self.possible_agents}
        self._rng = np.random.default_rng(config.get("seed"))
        self._instances = {}  # (seat, spec) -> opponent, kept so cross-episode state survives
        self.set_opponents(config.get("opponents") or {"L0": 1.0})
        self.episode_result = None

    # ---- opponents --------------------------------------------------------------------------------------------
    def set_opponents(self, opponents):
        """Change the opponent mix from the next episode on (curriculum and non-stationary schedules call this)."""
        mix = parse_mix(opponents)
        if not mix:
            raise ValueError("the opponent mix is empty")
        for spec in mix:  # fail early on a bad spec, not in the middle of training
            for member in table_members(spec, 1 + spec.count(TABLE_SEP)):
                self._opponent(0, member)
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
        env.reset(seed=episode_seed)
        seats = self._rng.permutation(env.n_firms)
        trained = self.n_learners + int(self.exploiter and self._rng.random() < EXPLOITER_SHARE)
        self.seat_of = {a: int(s) for a, s in zip(self.possible_agents, seats[:trained])}
        self.spec = self._specs[int(self._rng.choice(len(self._specs), p=self._p))]
        others = sorted(int(s) for s in seats[trained:])
        members = table_members(self.spec, len(others))
        turn = int(self._rng.integers(len(members))) if members else 0
        self.players = {seat: self._opponent(seat, spec) for seat, spec in zip(others, members[turn:] + members[:turn])}
        reset_players(self.players, episode_seed)
        self.agents = list(self.seat_of)
        self.episode_result = None
        self._steps = 0
        obs = {a: self._observation(s) for a, s in self.seat_of.items()}
        return obs, {a: {} for a in obs}

    def _observation(self, seat):
        return self.env.observation(seat)

    def step(self, action_dict):
        env = self.env
        learners = {f"firm_{self.seat_of[agent]}": action for agent, action in action_dict.items()}
        _, rewards, terminations, truncations, infos = play_step(env, self.players, learners)
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
            win = win_share(info["rank"], info["winner"], f"firm_{seat}") if "rank" in info else 0.0
            result[agent] = {
                "win": win,
                "score": float(info.get("score", float("nan"))),
                "invalid": int(info.get("invalid_action", 0)),
                "steps": self._steps,
            }
        result["opponents"] = [self.spec] if self.players else []
        return result


def make_env(config):
    """Env creator for `register_env` / `config.environment(env=...)`."""
    return BizSimMultiAgentEnv(config)
