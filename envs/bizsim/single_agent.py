"""bizsim as a single-agent Gymnasium env: the learner takes one seat, scripted opponents play the others."""

from __future__ import annotations

import gymnasium as gym
import numpy as np

from envs.bizsim.env import BizSimEnv
from envs.bizsim.opponents import load_opponent
from envs.bizsim.play import play_step, reset_players


class SingleAgentBizSim(gym.Env):
    """The learner against scripted opponents (one per other seat) inside the env.

    `opponents`: a list of n_firms - 1 specs (names like "L3", import paths `package.module:ClassName`, or
    opponent objects), or one spec used for every other seat (default "L2"); n_firms defaults to
    len(opponents) + 1 when a list is given.  `seat`: the learner's seat, or None for a random seat each episode
    (drawn from the reset seed).  Other keywords go to `BizSimEnv` (complexity, encoding, mask, horizon, ...).

    Spaces are those of the learner's seat in `BizSimEnv`; the reward is the learner's reward; `info` carries its
    `reward_terms`, `invalid_action`, `seat`, and at the end `score`, `final_scores`, `winner`, `rank`.  The
    episode ends when the learner goes bankrupt or the game ends.
    """

    metadata = {"render_modes": []}

    def __init__(self, opponents="L2", seat=None, **config):
        if isinstance(opponents, (list, tuple)):
            config.setdefault("n_firms", len(opponents) + 1)
        self.game = BizSimEnv(**config)
        n = self.game.n_firms
        specs = list(opponents) if isinstance(opponents, (list, tuple)) else [opponents] * (n - 1)
        if len(specs) != n - 1:
            raise ValueError(f"opponents: need {n - 1} for n_firms={n}, got {len(specs)}")
        if seat is not None and not (isinstance(seat, (int, np.integer)) and 0 <= seat < n):
            raise ValueError(f"seat must be None or an int in 0..{n - 1}, got {seat!r}")
        self.opponents = [load_opponent(s) for s in specs]
        if len({id(o) for o in self.opponents}) < len(self.opponents):
            raise ValueError("opponents: give one object per seat (or names), not the same object twice")
        self.fixed_seat = seat
        self.seat = 0 if seat is None else int(seat)
        agent = self.game.possible_agents[0]
        self.observation_space = self.game.observation_space(agent)
        self.action_space = self.game.action_space(agent)
        self.n_actions, self.obs_size = self.game.n_actions, self.game.obs_size
        self._players = {}

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        if self.fixed_seat is None:
            self.seat = int(self.np_random.integers(self.game.n_firms))
        game_seed = None if seed is None else int(self.np_random.integers(2**31))
        obs, infos = self.game.reset(seed=game_seed)
        others = [i for i in range(self.game.n_firms) if i != self.seat]
        self._players = dict(zip(others, self.opponents))
        reset_players(self._players, game_seed, rng=self.np_random)
        me = self.game.possible_agents[self.seat]
        return obs[me], {**infos[me], "seat": self.seat}

    def step(self, action):
        me = self.game.possible_agents[self.seat]
        obs, rewards, terms, truncs, infos = play_step(self.game, self._players, {me: action}, players_first=False)
        info = {**infos[me], "seat": self.seat}
        return obs[me], float(rewards[me]), bool(terms[me]), bool(truncs[me]), info
