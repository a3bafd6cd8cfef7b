"""bizsim_v0: a multi-agent business simulation (PettingZoo ParallelEnv, pure numpy).

2 to 8 firms act at once.  Each step every firm takes one action: produce a batch in a factory, build or upgrade
a factory, research cheaper production, set a price, run marketing, start a price war on a market, poach a
rival's customers, or outbid rivals for a contested resource.  Demand answers price and brand; cash, capacity
and costs constrain what a firm can do; a firm whose cash goes below zero is bankrupt and drops out.  The
episode ends at the horizon, when one firm is left, or when one firm holds `dominance` of all net worth.

| Import             | `from envs.bizsim import parallel_env` (AEC: `from envs.bizsim import env`)          |
|--------------------|---------------------------------------------------------------------------------------|
| Agents             | `firm_0` ... `firm_{n_firms-1}` (2..8, default 4)                                     |
| Action (flat)      | `Discrete(N)`: N = 22 / 70 / 257 / 1550 at complexity 1 / 2 / 3 / 4; 0 = no-op         |
| Action (factorised)| `MultiDiscrete([N, slots, n_firms - 1])` = [WHAT, WHICH unit, WHICH rival]             |
| Observation        | `Dict(observations=Box(float32, obs_size), action_mask=Box(int8, mask_size))`          |
| Observation values | own state, market state, time, then each rival's public state (seat order after own)   |
| Action mask (flat) | 1 where the action is valid now; action 0 always 1                                     |
| Action mask (fact.)| [WHAT (N)] + [unit rows (P+2) x slots] + [target rows (P*M) x (n_firms-1)], see README |
| Reward             | sum of weight * term over `outcome` (sparse, end of episode or bankruptcy: +1 first    |
|                    | ... -1 last, linear in rank), `profit`, `net_worth`, `production`, `builds`, `share`   |
| Infos              | `reward_terms` (every term, unweighted), `invalid_action` (count this episode),        |
|                    | at the end `final_scores`, `winner`, `rank`                                             |
| Termination        | bankruptcy (that firm), one firm left or dominance (all); truncation at `horizon`       |
"""

from __future__ import annotations

import functools

import numpy as np
from gymnasium import spaces
from pettingzoo import ParallelEnv
from pettingzoo.utils import conversions

from envs.bizsim import rules as R
from envs.bizsim.rules import (BID, BUILD, MARKETING, NOOP, POACH, PRICE, PRODUCE, RESEARCH, UPGRADE, WAR,
                               layout)

_CONFIG_DEFAULTS = dict(n_firms=4, complexity=1, encoding="flat", mask=True, horizon=100, dominance=0.9,
                        reward_weights=None, render_mode=None)


def validate_config(config: dict) -> dict:
    """Fill defaults and check every key; a bad key or value raises ValueError naming the key."""
    unknown = sorted(set(config) - set(_CONFIG_DEFAULTS))
    if unknown:
        raise ValueError(f"unknown bizsim config key {unknown[0]!r}; known keys: {sorted(_CONFIG_DEFAULTS)}")
    cfg = {**_CONFIG_DEFAULTS, **config}
    checks = {
        "n_firms": lambda v: isinstance(v, (int, np.integer)) and not isinstance(v, bool) and 2 <= v <= 8,
        "complexity": lambda v: isinstance(v, (int, np.integer)) and not isinstance(v, bool) and v in R.COMPLEXITY,
        "encoding": lambda v: v in ("flat", "factorised"),
        "mask": lambda v: isinstance(v, (bool, np.bool_)),
        "horizon": lambda v: isinstance(v, (int, np.integer)) and not isinstance(v, bool) and v >= 1,
        "dominance": lambda v: isinstance(v, (int, float)) and 0.5 < v <= 1.0,
        "render_mode": lambda v: v is None,
    }
    hints = {"n_firms": "an int in 2..8", "complexity": "an int in 1..4", "encoding": "'flat' or 'factorised'",
             "mask": "a bool", "horizon": "an int >= 1", "dominance": "a number in (0.5, 1]",
             "render_mode": "None (bizsim has no rendering)"}
    for key, ok in checks.items():
        if not ok(cfg[key]):
            raise ValueError(f"bizsim config key {key!r} must be {hints[key]}, got {cfg[key]!r}")
    weights = dict(R.DEFAULT_REWARD_WEIGHTS)
    for key, value in (cfg["reward_weights"] or {}).items():
        if key not in weights:
            raise ValueError(f"bizsim config key 'reward_weights' has unknown term {key!r}; terms: {R.REWARD_TERMS}")
        if not isinstance(value, (int, float)) or not np.isfinite(value):
            raise ValueError(f"bizsim config key 'reward_weights' term {key!r} must be a finite number")
        weights[key] = float(value)
    cfg["reward_weights"] = weights
    cfg["n_firms"], cfg["complexity"], cfg["horizon"] = int(cfg["n_firms"]), int(cfg["complexity"]), int(cfg["horizon"])
    return cfg


class MaskedMultiDiscrete(spaces.MultiDiscrete):
    """The factorised action space; `sample(mask)` also accepts bizsim's flattened conditional mask.

    The flattened mask is [WHAT] + [unit rows] + [target rows]: a WHAT is drawn among its valid entries, then the
    unit from that WHAT's unit row and the rival from its target row (any value where a WHAT has no such row).
    """

    def __init__(self, nvec, unit_row, target_row, n_unit_rows, n_target_rows, seed=None):
        super().__init__(nvec, seed=seed)
        self.unit_row, self.target_row = np.asarray(unit_row), np.asarray(target_row)
        self.n_unit_rows, self.n_target_rows = n_unit_rows, n_target_rows

    def sample(self, mask=None, probability=None):
        if mask is None or isinstance(mask, tuple) or probability is not None:
            return super().sample(mask=mask, probability=probability)
        W, U, T = (int(n) for n in self.nvec)
        mask = np.asarray(mask)
        what = mask[:W]
        units = mask[W:W + self.n_unit_rows * U].reshape(self.n_unit_rows, U)
        targets = mask[W + self.n_unit_rows * U:].reshape(self.n_target_rows, T)
        w = int(self.np_random.choice(np.flatnonzero(what)))
        ur, tr = self.unit_row[w], self.target_row[w]
        u = int(self.np_random.choice(np.flatnonzero(units[ur]))) if ur >= 0 else int(self.np_random.integers(U))
        t = int(self.np_random.choice(np.flatnonzero(targets[tr]))) if tr >= 0 else int(self.np_random.integers(T))
        return np.array([w, u, t], dtype=self.dtype)


class BizSimEnv(ParallelEnv):
    """The bizsim game; see the module docstring for spaces and rewards and README.md for the rules."""

    metadata = {"name": "bizsim_v0", "render_modes": [], "is_parallelizable": True}

    def __init__(self, **config):
        cfg = validate_config(config)
        self.config = cfg
        self.render_mode = None
        self.n_firms, self.complexity, self.horizon = cfg["n_firms"], cfg["complexity"], cfg["horizon"]
        self.encoding, self.masked = cfg["encoding"], bool(cfg["mask"])
        self.reward_weights = cfg["reward_weights"]
        self._w = np.array([self.reward_weights[k] for k in R.REWARD_TERMS])
        self.layout = lo = layout(self.n_firms, self.complexity)
        self.n_actions, self.obs_size = lo.n_actions, lo.obs_size
        self.possible_agents = [f"firm_{i}" for i in range(self.n_firms)]
        self.agent_index = {a: i for i, a in enumerate(self.possible_agents)}
        self.agents = []
        self._precompute()
        self._rng = np.random.default_rng()
        self._episode_seeded = False

    # ---- spaces -------------------------------------------------------------------------------------------
    @property
    def mask_size(self) -> int:
        lo = self.layout
        if self.encoding == "flat":
            return lo.n_actions
        return lo.n_actions + (lo.P + 2) * lo.U + lo.P * lo.M * (self.n_firms - 1)

    @functools.lru_cache(maxsize=None)
    def observation_space(self, agent):
        space = {"observations": spaces.Box(-1e6, 1e6, (self.obs_size,), np.float32)}
        space["action_mask"] = spaces.Box(0, 1, (self.mask_size,), np.int8)
        return spaces.Dict(space)

    @functools.lru_cache(maxsize=None)
    def action_space(self, agent):
        lo = self.layout
        if self.encoding == "flat":
            return spaces.Discrete(lo.n_actions)
        return MaskedMultiDiscrete([lo.n_actions, lo.U, self.n_firms - 1], self._unit_row, self._target_row,
                                   lo.P + 2, lo.P * lo.M)

    # ---- static tables --------------------------------------------------------------------------------------
    def _precompute(self):
        lo, F = self.layout, self.n_firms
        P, M, U, Rn, L = lo.P, lo.M, lo.U, lo.R, lo.L
        PM = P * M
        self._uc0 = R.BASE_PRICE * (1 + 0.15 * np.arange(P)) * R.UNIT_COST_FRAC
        self._bp = R.BASE_PRICE * (1 + 0.15 * np.arange(P))
        self._bp_pm = np.repeat(self._bp, M)                       # base price per (p, m)
        self._mult = R.price_multipliers(L)
        self._attract = self._mult ** -R.ELASTICITY
        self._res_product = np.arange(Rn) % P
        self._market_size = np.tile(1.0 / (1.0 + 0.3 * np.arange(M)), P) / P
        self._perm = np.array([[(i + k) % F for k in range(1, F)] for i in range(F)])
        self._rival_offset = {}  # not used in hot path
        pm = np.where(lo.prod >= 0, lo.prod, 0) * M + np.where(lo.mkt >= 0, lo.mkt, 0)
        self._a_pm = pm
        self._a_prod = np.where(lo.prod >= 0, lo.prod, 0)
        self._a_res = np.where(lo.res >= 0, lo.res, 0)
        # condition columns: 0 always | produce p (P) | build | upgrade | research p (P) | price (via level) |
        # marketing pm (PM) | war pm (PM) | poach pm (PM) | bid r (R)
        c_prod, c_build, c_up, c_res = 1, 1 + P, 2 + P, 3 + P
        c_mkt, c_war, c_poach, c_bid = 3 + 2 * P, 3 + 2 * P + PM, 3 + 2 * P + 2 * PM, 3 + 2 * P + 3 * PM
        v = lo.verb
        cidx = np.zeros(lo.n_actions, np.int64)
        cidx[v == PRODUCE] = c_prod + lo.prod[v == PRODUCE]
        cidx[v == BUILD] = c_build
        cidx[v == UPGRADE] = c_up
        cidx[v == RESEARCH] = c_res + lo.prod[v == RESEARCH]
        cidx[v == MARKETING] = c_mkt + pm[v == MARKETING]
        cidx[v == WAR] = c_war + pm[v == WAR]
        cidx[v == POACH] = c_poach + pm[v == POACH]
        cidx[v == BID] = c_bid + lo.res[v == BID]
        self._cidx = cidx
        # cost columns: 0 zero | produce p (P) | build | upgrade | research p (P) | marketing | war | poach | bid r
        k_mkt = 3 + 2 * P
        kidx = np.zeros(lo.n_actions, np.int64)
        kidx[v == PRODUCE] = 1 + lo.prod[v == PRODUCE]
        kidx[v == BUILD] = 1 + P
        kidx[v == UPGRADE] = 2 + P
        kidx[v == RESEARCH] = 3 + P + lo.prod[v == RESEARCH]
        kidx[v == MARKETING] = k_mkt
        kidx[v == WAR] = k_mkt + 1
        kidx[v == POACH] = k_mkt + 2
        kidx[v == BID] = k_mkt + 3 + lo.res[v == BID]
        self._kidx = kidx
        self._fixed_costs = np.array([R.MARKETING_COST, R.WAR_COST, R.POACH_COST])
        self._level_of = np.where(v == PRICE, lo.level, -1)
        self._ledger_col = np.zeros(10, np.int64)
        for verb, col in R.VERB_LEDGER.items():
            self._ledger_col[verb] = col
        # factorised conditional rows
        self._unit_row = np.full(lo.n_actions, -1)
        self._unit_row[v == PRODUCE] = lo.prod[v == PRODUCE]
        self._unit_row[v == BUILD] = P
        self._unit_row[v == UPGRADE] = P + 1
        self._target_row = np.where(v == POACH, pm, -1)
        # observation scales
        self._own_scale = np.concatenate([
            [1 / R.CASH0, 1 / R.CASH0], np.full(P, 1 / 20), np.ones(U), np.full(U, 1 / P), np.full(U, 1 / R.MAX_LEVEL),
            np.full(U, 1 / R.BATCH_STEPS), np.full(P, 1 / R.MAX_TECH), np.full(P, 1 / R.BASE_PRICE), np.ones(PM),
            np.full(PM, 1 / R.BRAND_MAX), np.full(PM, 1 / R.WAR_STEPS), np.ones(Rn)])
        self._pub_scale = np.concatenate([[1, 1 / R.CASH0, 1 / U], np.ones(PM), np.full(PM, 1 / R.BRAND_MAX), np.ones(PM)])
        self._d_own = len(self._own_scale)
        self._d_mkt = PM + 2 * Rn + 1
        self._rows = np.arange(F)

    # ---- episode ----------------------------------------------------------------------------------------------
    def reset(self, seed=None, options=None):
        if seed is not None or not self._episode_seeded:
            self._rng = np.random.default_rng(seed)
            self._episode_seeded = True
        lo, F = self.layout, self.n_firms
        P, M, U, Rn, PM = lo.P, lo.M, lo.U, lo.R, lo.P * lo.M
        self.agents = list(self.possible_agents)
        self.t = 0
        self.alive = np.ones(F, bool)
        self.cash = np.full(F, R.CASH0)
        self.inv = np.zeros((F, P))
        self.built = np.zeros((F, U), bool)
        self.slot_prod = np.zeros((F, U), np.int64)
        self.level = np.zeros((F, U), np.int64)
        self.busy = np.zeros((F, U), np.int64)
        self.slot_value = np.zeros((F, U))
        self.built[:, 0] = True
        self.slot_value[:, 0] = R.BUILD_COST
        self.tech = np.zeros((F, P), np.int64)
        self.pl = np.full((F, PM), lo.L // 2, np.int64)
        self.brand = np.ones((F, PM))
        self.war = np.zeros((F, PM), np.int64)
        self.res_holder = np.full(Rn, -1)
        self.res_price = np.zeros(Rn)
        self.ledger = np.zeros((F, len(R.LEDGER)))
        self.invalid = np.zeros(F, np.int64)
        self.dropout = np.full(F, -1)              # step at which a firm went bankrupt
        self.final_score = np.zeros(F)
        self.demand = self._draw_demand()
        self._update_derived()
        self.net_worth_prev = self.net_worth.copy()
        obs = self._observe()
        infos = {a: {"reward_terms": dict.fromkeys(R.REWARD_TERMS, 0.0), "invalid_action": 0} for a in self.agents}
        return {a: obs[i] for i, a in enumerate(self.agents)}, infos

    def _draw_demand(self):
        noise = 0.8 + 0.4 * self._rng.random(self._market_size.shape)
        return R.DEMAND_PER_FIRM * self.n_firms * self._market_size * noise

    def _update_derived(self):
        """Unit costs, net worth, rule-picked units and targets, costs and the flat mask for the current state."""
        lo, F = self.layout, self.n_firms
        P, U = lo.P, lo.U
        held = np.zeros((F, P))
        hold = self.res_holder >= 0
        if hold.any():
            np.add.at(held, (self.res_holder[hold], self._res_product[hold]), 1.0)
        self.uc = self._uc0 * (1.0 - R.TECH_STEP * self.tech - R.RESOURCE_DISCOUNT * np.minimum(held, 2))
        self.net_worth = self.cash + R.BOOK_VALUE * self.slot_value.sum(1) + self.inv @ self._uc0
        cash = self.cash[:, None]
        idle = self.built & (self.busy == 0)
        lvl = self.level
        # a batch is as large as the factory allows and cash pays for, at least one unit
        slot_uc = self.uc[self._rows[:, None], self.slot_prod]                                  # (F, U)
        self._batch = np.minimum(R.CAPACITY * (1 + lvl), self.cash[:, None] / slot_uc)
        uidx = np.arange(U)
        # produce: the highest-level idle factory of that product that can pay one unit (ties: lowest slot)
        ok = idle & (slot_uc <= cash)
        self._prod_ok = ok
        score = np.where(ok, lvl * U + (U - 1 - uidx), -1)                                         # (F, U)
        sp = np.where(self.slot_prod[:, None, :] == np.arange(P)[None, :, None], score[:, None, :], -1)  # (F,P,U)
        self._ru_prod = sp.argmax(2)
        has_prod = sp.max(2) >= 0
        # build: the first empty slot
        empty = ~self.built
        self._ru_build = empty.argmax(1)
        has_build = empty.any(1) & (self.cash >= R.BUILD_COST + R.RESERVE)
        # upgrade: the cheapest (lowest-level) affordable idle factory below the top level
        up_cost = R.UPGRADE_COST * (lvl + 1)
        up_ok = idle & (lvl < R.MAX_LEVEL) & (up_cost + R.RESERVE <= cash)
        score = np.where(up_ok, (R.MAX_LEVEL - lvl) * U + (U - 1 - uidx), -1)
        self._ru_up = score.argmax(1)
        has_up = score.max(1) >= 0
        res_cost = R.RESEARCH_COST * (self.tech + 1)
        has_res = (self.tech < R.MAX_TECH) & (res_cost + R.RESERVE <= cash)
        # poach: the alive rival with the strongest brand in that product-market
        others = np.where(self.alive[None, :, None] & ~np.eye(F, dtype=bool)[:, :, None], self.brand[None], -1.0)
        self._rt_poach = others.argmax(1)                                                          # (F, PM)
        stocked = np.repeat(self.inv > 0, lo.M, axis=1)          # campaigns need goods to sell
        has_poach = (others.max(1) > R.POACH_MIN_BRAND) & (cash >= R.POACH_COST + R.RESERVE) & stocked
        has_mkt = (self.brand < R.BRAND_MAX) & (cash >= R.MARKETING_COST + R.RESERVE) & stocked
        has_war = (self.war == 0) & (cash >= R.WAR_COST + R.RESERVE) & stocked
        self._bid_need = np.where(self.res_holder >= 0, self.res_price * R.OUTBID, R.BID_RESERVE)
        has_bid = (self.res_holder[None, :] != self._rows[:, None]) & (cash >= self._bid_need[None, :] + R.RESERVE)
        cond = np.concatenate([np.ones((F, 1), bool), has_prod, has_build[:, None], has_up[:, None], has_res,
                               has_mkt, has_war, has_poach, has_bid], axis=1)
        mask = cond[:, self._cidx] & (self.pl[:, self._a_pm] != self._level_of)
        self._flat_mask = mask.astype(np.int8)

    def _factorised_masks(self):
        """[WHAT] + [unit rows (P+2) x U] + [target rows (P*M) x (F-1)], one row per firm."""
        lo, F = self.layout, self.n_firms
        cash = self.cash[:, None]
        idle = self.built & (self.busy == 0)
        prod_rows = self._prod_ok[:, None, :] & (
            self.slot_prod[:, None, :] == np.arange(lo.P)[None, :, None])
        build_row = ~self.built & (cash >= R.BUILD_COST + R.RESERVE)
        up_row = idle & (self.level < R.MAX_LEVEL) & (R.UPGRADE_COST * (self.level + 1) + R.RESERVE <= cash)
        units = np.concatenate([prod_rows, build_row[:, None], up_row[:, None]], axis=1).reshape(F, -1)
        rival_ok = self.alive[self._perm][:, :, None] & (self.brand[self._perm] > R.POACH_MIN_BRAND)  # (F,F-1,PM)
        targets = rival_ok.transpose(0, 2, 1).reshape(F, -1)
        return np.concatenate([self._flat_mask, units, targets], axis=1).astype(np.int8)

    def _observe(self):
        lo, F = self.layout, self.n_firms
        own = np.concatenate([
            self.cash[:, None], self.net_worth[:, None], self.inv, self.built,
            np.where(self.built, self.slot_prod + 1, 0), self.level, self.busy, self.tech, self.uc,
            self._mult[self.pl], self.brand, self.war, self.res_holder[None, :] == self._rows[:, None]], axis=1)
        own *= self._own_scale
        pub = np.concatenate([self.alive[:, None], self.net_worth[:, None] / R.CASH0,
                              self.built.sum(1, keepdims=True) / lo.U, self._mult[self.pl],
                              self.brand / R.BRAND_MAX, self.war > 0], axis=1)
        market = np.concatenate([self.demand / (R.DEMAND_PER_FIRM * F), self.res_price / R.CASH0,
                                 self.res_holder >= 0, [self.t / self.horizon]])
        obs = np.empty((F, lo.obs_size), np.float32)
        d0, d1 = self._d_own, self._d_own + self._d_mkt
        obs[:, :d0] = own
        obs[:, d0:d1] = market
        obs[:, d1:] = pub[self._perm].reshape(F, -1)
        if not self.masked:
            mask = np.ones((F, self.mask_size), np.int8)
        elif self.encoding == "flat":
            mask = self._flat_mask
        else:
            mask = self._factorised_masks()
        self._obs, self._mask = obs, mask
        return [{"observations": obs[i], "action_mask": mask[i]} for i in range(F)]

    def flat_observation(self, i: int) -> dict:
        """Firm i's observation with the flat mask, whatever the encoding (what scripted opponents read)."""
        return {"observations": self._obs[i], "action_mask": self._flat_mask[i]}

    def encode_flat(self, i: int, action: int):
        """Firm i's flat action in this env's encoding (the factorised triple uses the flat rules' unit and rival)."""
        if self.encoding == "flat":
            return int(action)
        v = self.layout.verb[action]
        unit = {PRODUCE: self._ru_prod[i, self._a_prod[action]], BUILD: self._ru_build[i],
                UPGRADE: self._ru_up[i]}.get(v, 0)
        target = (self._rt_poach[i, self._a_pm[action]] - i - 1) % self.n_firms if v == POACH else 0
        return np.array([action, unit, target], dtype=np.int64)

    # ---- step ---------------------------------------------------------------------------------------------------
    def _decode_actions(self, actions):
        """Per firm: (what, unit, absolute target firm, valid) from the agents' actions."""
        F = self.n_firms
        what = np.zeros(F, np.int64)
        unit = np.zeros(F, np.int64)
        target = np.zeros(F, np.int64)
        act = np.zeros(F, bool)
        for a, x in actions.items():
            i = self.agent_index[a]
            if self.encoding == "flat":
                what[i] = x
            else:
                what[i], unit[i], target[i] = x[0], x[1], x[2]
            act[i] = True
        act &= self.alive
        if self.encoding == "flat":
            valid = self._flat_mask[self._rows, what].astype(bool)
            v = self.layout.verb[what]
            unit = np.select([v == PRODUCE, v == BUILD, v == UPGRADE],
                             [self._ru_prod[self._rows, self._a_prod[what]], self._ru_build, self._ru_up], 0)
            target = self._rt_poach[self._rows, self._a_pm[what]]
        else:
            fm = self._mask if self.masked else self._factorised_masks()
            lo = self.layout
            U, T = lo.U, F - 1
            ur, tr = self._unit_row[what], self._target_row[what]
            unit_ok = np.where(ur >= 0, fm[self._rows, lo.n_actions + np.maximum(ur, 0) * U + unit], 1)
            t_ok = np.where(tr >= 0, fm[self._rows, lo.n_actions + (lo.P + 2) * U + np.maximum(tr, 0) * T + target], 1)
            valid = fm[self._rows, what].astype(bool) & unit_ok.astype(bool) & t_ok.astype(bool)
            target = self._perm[self._rows, target]
        invalid = act & ~valid
        what = np.where(act & valid, what, NOOP)
        return what, unit, target, invalid

    def step(self, actions):
        lo, F = self.layout, self.n_firms
        P, M, PM = lo.P, lo.M, lo.P * lo.M
        rows = self._rows
        what, unit, target, invalid = self._decode_actions(actions)
        self.invalid += invalid
        verb = lo.verb[what]
        flows = np.zeros((F, len(R.LEDGER)))
        # --- costs, decided on the state the firms saw
        lev_u = self.level[rows, unit]
        cost = np.select(
            [verb == PRODUCE, verb == UPGRADE, verb == BUILD, verb == RESEARCH, verb == MARKETING, verb == WAR,
             verb == POACH],
            [self._batch[rows, unit] * self.uc[rows, self._a_prod[what]], R.UPGRADE_COST * (lev_u + 1), R.BUILD_COST,
             R.RESEARCH_COST * (self.tech[rows, self._a_prod[what]] + 1), R.MARKETING_COST, R.WAR_COST,
             R.POACH_COST], 0.0)
        produced = np.zeros(F)
        builds = np.zeros(F)
        for v in set(verb.tolist()) - {NOOP}:
            idx = np.flatnonzero(verb == v)
            w = what[idx]
            p, pm = self._a_prod[w], self._a_pm[w]
            u = unit[idx]
            if v == PRODUCE:
                out = self._batch[idx, u]
                self.inv[idx, p] += out
                self.busy[idx, u] = R.BATCH_STEPS
                produced[idx] = out
            elif v == BUILD:
                self.built[idx, u] = True
                self.slot_prod[idx, u] = p
                self.level[idx, u] = 0
                self.slot_value[idx, u] = R.BUILD_COST
                builds[idx] = 1
            elif v == UPGRADE:
                self.level[idx, u] += 1
                self.slot_value[idx, u] += cost[idx]
                builds[idx] = 1
            elif v == RESEARCH:
                self.tech[idx, p] += 1
                builds[idx] = 1
            elif v == PRICE:
                self.pl[idx, pm] = lo.level[w]
            elif v == MARKETING:
                self.brand[idx, pm] = np.minimum(self.brand[idx, pm] + R.MARKETING_GAIN, R.BRAND_MAX)
            elif v == WAR:
                self.war[idx, pm] = R.WAR_STEPS
            elif v == POACH:
                tg = target[idx]
                amount = R.POACH_FRACTION * self.brand[tg, pm]
                np.subtract.at(self.brand, (tg, pm), amount)
                np.add.at(self.brand, (idx, pm), amount)
            elif v == BID:
                cost[idx] = 0.0
                self._resolve_bids(idx, lo.res[w], cost, flows)
        flows[rows, self._ledger_col[verb]] -= cost
        # --- market: demand shared by attractiveness (brand x price^-elasticity), limited by stock
        price = self._bp_pm * self._mult[self.pl] * np.where(self.war > 0, R.WAR_DISCOUNT, 1.0)
        attract = self.brand * self._attract[self.pl] * np.where(self.war > 0, R.WAR_DISCOUNT ** -R.ELASTICITY, 1.0)
        stocked = (self.inv > 0) & self.alive[:, None]
        attract *= np.repeat(stocked, M, axis=1)
        share = attract / (attract.sum(0) + R.OUTSIDE_OPTION * F)
        qty = share * self.demand                                                              # (F, PM)
        want = qty.reshape(F, P, M).sum(2)
        scale = np.minimum(1.0, self.inv / np.maximum(want, 1e-9))
        qty *= np.repeat(scale, M, axis=1)
        sold = want * scale
        self.inv -= sold
        np.maximum(self.inv, 0.0, out=self.inv)
        flows[:, 0] = (qty * price).sum(1)
        flows[:, 10] = -(R.OVERHEAD_BASE + R.OVERHEAD_FACTORY * self.built.sum(1))
        flows[:, 11] = -R.HOLDING * (self.inv @ self._uc0)
        flows[~self.alive] = 0.0
        self.cash += flows.sum(1)
        self.ledger += flows
        # --- dynamics: war pressure on rivals' brands, brand drift, timers
        at_war = self.war > 0
        pressure = at_war.sum(0)[None, :] - at_war
        self.brand *= R.WAR_PRESSURE ** pressure
        self.brand += R.BRAND_DRIFT * (1.0 - self.brand)
        np.clip(self.brand, R.BRAND_MIN, R.BRAND_MAX, out=self.brand)
        np.maximum(self.war - 1, 0, out=self.war)
        np.maximum(self.busy - 1, 0, out=self.busy)
        self.t += 1
        self.demand = self._draw_demand()
        # --- bankruptcy, ending
        broke = self.alive & (self.cash < 0)
        if broke.any():
            self.alive &= ~broke
            self.dropout[broke] = self.t
            self.final_score[broke] = self.cash[broke]
            gone = np.isin(self.res_holder, np.flatnonzero(broke))
            self.res_holder[gone], self.res_price[gone] = -1, 0.0
        self._update_derived()
        total = sold.sum()
        terms = np.zeros((F, len(R.REWARD_TERMS)))
        terms[:, 1] = flows.sum(1) / R.CASH0
        terms[:, 2] = (self.net_worth - self.net_worth_prev) / R.CASH0
        terms[:, 3] = produced / (R.CAPACITY * (1 + R.MAX_LEVEL))
        terms[:, 4] = builds
        terms[:, 5] = sold.sum(1) / total if total > 0 else 0.0
        terms[broke, 2] = 0.0
        self.net_worth_prev = self.net_worth.copy()
        n_alive = int(self.alive.sum())
        positive = np.maximum(self.net_worth, 0) * self.alive
        dominated = (self.t >= self.horizon // 4 and n_alive >= 2
                     and positive.max() >= self.config["dominance"] * positive.sum() > 0)
        done = n_alive <= 1 or dominated
        truncated = self.t >= self.horizon and not done
        terms[broke, 0] = self._outcome_for_dropouts(broke)
        if done or truncated:
            self.final_score[self.alive] = self.net_worth[self.alive]
            outcome = self._outcomes()
            terms[self.alive, 0] = outcome[self.alive]
        rewards_arr = terms @ self._w
        obs = self._observe()
        agents = self.agents
        rlist, tlist, inv_list = rewards_arr.tolist(), terms.tolist(), self.invalid.tolist()
        end = done or truncated
        observations, rewards, terminations, truncations, infos = {}, {}, {}, {}, {}
        for a in agents:
            i = self.agent_index[a]
            observations[a] = obs[i]
            rewards[a] = rlist[i]
            terminations[a] = bool(broke[i]) or done
            truncations[a] = truncated
            infos[a] = {"reward_terms": dict(zip(R.REWARD_TERMS, tlist[i])), "invalid_action": inv_list[i]}
        if end or broke.any():
            self._final_infos(infos, broke, end)
        self.agents = [] if end else [a for a in agents if self.alive[self.agent_index[a]]]
        return observations, rewards, terminations, truncations, infos

    def _resolve_bids(self, idx, res, cost, flows):
        """Simultaneous bids: per resource the richest bidder wins (ties by the seeded RNG) and pays."""
        order = self._rng.permutation(len(idx))
        for r in np.unique(res):
            bidders = idx[order][res[order] == r]
            winner = int(bidders[np.argmax(self.cash[bidders])])
            need, holder, held = float(self._bid_need[r]), int(self.res_holder[r]), float(self.res_price[r])
            cost[winner] = need - held if holder >= 0 else need
            if holder >= 0:
                flows[winner, 9] -= held
                flows[holder, 9] += held
            self.res_holder[r], self.res_price[r] = winner, need

    def _outcome_for_dropouts(self, broke):
        """Firms that go bankrupt now rank below every firm still alive: outcome from their rank."""
        n = self.n_firms
        below = int((~self.alive & (self.dropout >= 0) & (self.dropout < self.t)).sum())
        k = int(broke.sum())
        rank = n - below - (k + 1) / 2.0                      # mean 0-based rank of this group, ties split
        return 1.0 - 2.0 * rank / (n - 1)

    def _outcomes(self):
        """Rank-based outcome at the end: +1 first ... -1 last, ties split; bankrupt firms rank last."""
        key = np.where(self.alive, self.final_score, -1e9 + 1e6 * self.dropout + self.final_score)
        order = (key[None, :] > key[:, None]).sum(1) + ((key[None, :] == key[:, None]).sum(1) - 1) / 2.0
        return 1.0 - 2.0 * order / (self.n_firms - 1)

    def _final_infos(self, infos, broke, end):
        scores = {a: float(self.final_score[i]) for i, a in enumerate(self.possible_agents)}
        for a in infos:
            i = self.agent_index[a]
            if end or broke[i]:
                infos[a]["score"] = float(self.final_score[i])
        if end:
            key = np.where(self.alive, self.final_score, -1e9 + 1e6 * self.dropout + self.final_score)
            best = np.flatnonzero(key == key.max())
            winner = self.possible_agents[int(best[0])] if len(best) == 1 else None
            ranks = (key[None, :] > key[:, None]).sum(1)
            for a in infos:
                infos[a].update(final_scores=scores, winner=winner, rank=int(ranks[self.agent_index[a]]))

    # ---- PettingZoo niceties ----------------------------------------------------------------------------------
    def render(self):
        return None

    def close(self):
        pass

    def money_check(self):
        """(cash, initial cash + ledger sum, transfer column sum): equal / zero when money is conserved."""
        return self.cash.copy(), R.CASH0 + self.ledger.sum(1), float(self.ledger[:, 9].sum())


def parallel_env(**config) -> BizSimEnv:
    """bizsim_v0 as a PettingZoo ParallelEnv; keywords in README.md (defaults: 4 firms, complexity 1, flat, masks)."""
    return BizSimEnv(**config)


def raw_env(**config):
    """bizsim_v0 as an AEC env, through PettingZoo's converter."""
    return conversions.parallel_to_aec(BizSimEnv(**config))


env = raw_env
