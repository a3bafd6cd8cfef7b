"""bizsim_v0: a multi-agent business simulation (PettingZoo ParallelEnv, pure numpy).

2 to 8 firms act at once.  Each step every firm takes one action: produce a batch in a factory, build or upgrade
a factory, research cheaper production, set a price, run marketing, start a price war on a market, poach a
rival's customers, or outbid rivals for a contested resource.  Demand answers price and brand; cash, capacity
and costs constrain what a firm can do; a firm whose cash goes below zero is bankrupt and drops out.  The
episode ends at the horizon, when one firm is left, or when one firm holds `dominance` of all net worth.

| Import             | `from envs.bizsim import parallel_env` (AEC: `from envs.bizsim import env`)             |
|--------------------|------------------------------------------------------------------------------------------|
| Agents             | `firm_0` ... `firm_{n_firms-1}` (2..8, default 4)                                        |
| Action (flat)      | `Discrete(N)`: N = 18 / 58 / 210 / 1486 at complexity 1 / 2 / 3 / 4; 0 = no-op             |
| Action (factorised)| `MultiDiscrete([N, slots, n_firms - 1])` = [WHAT, WHICH unit, WHICH rival]                |
| Observation        | `Dict(observations=Box(float32, obs_size), action_mask=Box(int8, mask_size))`             |
| Observation values | own state, market state, time, then each rival's public state (seat order after own)      |
| Action mask (flat) | 1 where the action is valid now; action 0 always 1                                        |
| Action mask (fact.)| [WHAT (N)] + [unit rows (P+2) x slots] + [rival row (n_firms-1)], see README.md           |
| Reward             | sum of weight * term over `outcome` (sparse, at the end or at bankruptcy: +1 first ...    |
|                    | -1 last, linear in rank), `profit`, `net_worth`, `production`, `builds`, `share`          |
| Infos              | `reward_terms` (every term, unweighted), `invalid_action` (count this episode);           |
|                    | at the end `score`, `final_scores`, `winner`, `rank` (`score` also at bankruptcy)          |
| Termination        | bankruptcy (that firm), one firm left or dominance (all); truncation at `horizon`          |
"""

from __future__ import annotations

import functools

import numpy as np
from gymnasium import spaces
from pettingzoo import ParallelEnv
from pettingzoo.utils import conversions

from envs.bizsim import rules as R
from envs.bizsim.rules import BID, BUILD, MARKETING, POACH, PRICE, PRODUCE, RESEARCH, UPGRADE, WAR, layout

_CONFIG_DEFAULTS = dict(
    n_firms=4,
    complexity=1,
    encoding="flat",
    mask=True,
    horizon=100,
    dominance=0.9,
    reward_weights=None,
    stock_value="cost",
    render_mode=None,
)


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
        "stock_value": lambda v: v in ("cost", "tech0"),
        "render_mode": lambda v: v is None,
    }
    hints = {
        "n_firms": "an int in 2..8",
        "complexity": "an int in 1..4",
        "encoding": "'flat' or 'factorised'",
        "mask": "a bool",
        "horizon": "an int >= 1",
        "dominance": "a number in (0.5, 1]",
        "stock_value": "'cost' or 'tech0'",
        "render_mode": "None (bizsim has no rendering)",
    }
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
        units = mask[W : W + self.n_unit_rows * U].reshape(self.n_unit_rows, U)
        targets = mask[W + self.n_unit_rows * U :].reshape(self.n_target_rows, T)
        w = int(self.np_random.choice(np.flatnonzero(what)))
        ur, tr = self.unit_row[w], self.target_row[w]
        u = int(self.np_random.choice(np.flatnonzero(units[ur]))) if ur >= 0 else int(self.np_random.integers(U))
        t = int(self.np_random.choice(np.flatnonzero(targets[tr]))) if tr >= 0 else int(self.np_random.integers(T))
        return np.array([w, u, t], dtype=self.dtype)


class BizSimEnv(ParallelEnv):
    """The bizsim game; see the module docstring for spaces and rewards and README.md for the rules.

    Speed: the whole firm state lives in one float matrix `S` (one row per firm, columns in observation order),
    so an observation is one scaled copy of it; what only actions change (prices, levels, costs, the cash each
    action needs) is updated by scalar writes when an action happens, and only what changes every step (market,
    timers, masks) is recomputed, vectorised over firms.
    """

    metadata = {"name": "bizsim_v0", "render_modes": [], "is_parallelizable": True}

    def __init__(self, **config):
        cfg = validate_config(config)
        self.config = cfg
        self.render_mode = None
        self.n_firms, self.complexity, self.horizon = cfg["n_firms"], cfg["complexity"], cfg["horizon"]
        self.encoding, self.masked = cfg["encoding"], bool(cfg["mask"])
        self.dominance = float(cfg["dominance"])
        self.stock_at_cost = cfg["stock_value"] == "cost"
        self.reward_weights = cfg["reward_weights"]
        self._w = np.array([self.reward_weights[k] for k in R.REWARD_TERMS])
        self.layout = lo = layout(self.n_firms, self.complexity)
        self.n_actions, self.obs_size = lo.n_actions, lo.obs_size
        self.possible_agents = [f"firm_{i}" for i in range(self.n_firms)]
        self.agent_index = {a: i for i, a in enumerate(self.possible_agents)}
        self.agents = []
        self._precompute()
        self._rng = np.random.default_rng()
        self._seeded = False

    # ---- spaces -------------------------------------------------------------------------------------------
    @property
    def mask_size(self) -> int:
        lo = self.layout
        if self.encoding == "flat":
            return lo.n_actions
        return lo.n_actions + (lo.P + 2) * lo.U + (self.n_firms - 1)

    @functools.cache  # noqa: B019 - spaces cached per env, as PettingZoo recommends
    def observation_space(self, agent):
        return spaces.Dict(
            {
                "observations": spaces.Box(-1e6, 1e6, (self.obs_size,), np.float32),
                "action_mask": spaces.Box(0, 1, (self.mask_size,), np.int8),
            }
        )

    @functools.cache  # noqa: B019 - spaces cached per env, as PettingZoo recommends
    def action_space(self, agent):
        lo = self.layout
        if self.encoding == "flat":
            return spaces.Discrete(lo.n_actions)
        return MaskedMultiDiscrete(
            [lo.n_actions, lo.U, self.n_firms - 1], self._unit_row, np.where(lo.verb == POACH, 0, -1), lo.P + 2, 1
        )

    # ---- static tables --------------------------------------------------------------------------------------
    def _precompute(self):
        lo, F = self.layout, self.n_firms
        P, M, U, Rn, L = lo.P, lo.M, lo.U, lo.R, lo.L
        PM = P * M
        sizes = [
            ("cash", 1),
            ("nw", 1),
            ("inv", P),
            ("built", U),
            ("sprod", U),
            ("level", U),
            ("busy", U),
            ("tech", P),
            ("uc", P),
            ("price", PM),
            ("brand", PM),
            ("war", PM),
            ("res", Rn),
            ("alive", 1),
            ("nfac", 1),
        ]
        self._cols, start = {}, 0
        for name, n in sizes:
            self._cols[name] = (start, start + n)
            start += n
        self._width = start
        self._d_own = self._cols["nfac"][1]
        self._own_scale = np.concatenate(
            [
                [1 / R.CASH0, 1 / R.CASH0],
                np.full(P, 1 / 20),
                np.ones(U),
                np.full(U, 1 / P),
                np.full(U, 1 / R.MAX_LEVEL),
                np.full(U, 1 / R.BATCH_STEPS),
                np.full(P, 1 / R.MAX_TECH),
                np.full(P, 1 / R.BASE_PRICE),
                np.ones(PM),
                np.full(PM, 1 / R.BRAND_MAX),
                np.full(PM, 1 / R.WAR_STEPS),
                np.ones(Rn),
                [1.0, 1 / U],
            ]
        )
        # a rival's public part is a subset of its own (scaled) block: alive, net worth, factories, price, brand, war
        pub = np.concatenate([np.arange(*self._cols[k]) for k in ("alive", "nw", "nfac", "price", "brand", "war")])
        self._perm = np.array([[(i + k) % F for k in range(1, F)] for i in range(F)])
        self._pub_index = (self._perm[:, :, None], pub[None, None, :])
        self._d_mkt = PM + 2 * Rn + 1
        self._rows = np.arange(F)
        self._single_market = P == 1 and M == 1
        self._bp = R.BASE_PRICE * (1 + 0.15 * np.arange(P))
        self._uc0 = self._bp * R.UNIT_COST_FRAC
        self._holding_rate = R.HOLDING * self._uc0
        self._bp_pm = np.repeat(self._bp, M)
        self._pm_p = np.repeat(np.arange(P), M)  # product of each product-market
        self._mult = R.price_multipliers(L)
        self._attract = self._mult**-R.ELASTICITY
        self._boost = R.WAR_DISCOUNT**-R.ELASTICITY
        self._res_product = np.arange(Rn) % P
        self._market_size = np.tile(1.0 / (1.0 + 0.3 * np.arange(M)), P) / P
        v = lo.verb
        self._verb = v.tolist()
        self._a_prod = np.maximum(lo.prod, 0).tolist()
        self._a_pm = (np.maximum(lo.prod, 0) * M + np.maximum(lo.mkt, 0)).tolist()
        self._a_level = lo.level.tolist()
        self._a_res = lo.res.tolist()
        index = {
            (int(a), int(b), int(c), int(d), int(e)): i
            for i, (a, b, c, d, e) in enumerate(zip(v, lo.prod, lo.mkt, lo.level, lo.res))
        }
        self._produce_a = [index[(PRODUCE, p, -1, -1, -1)] for p in range(P)]
        self._build_a = np.array([index[(BUILD, p, -1, -1, -1)] for p in range(P)])
        self._upgrade_a = index[(UPGRADE, -1, -1, -1, -1)]
        self._research_a = [index[(RESEARCH, p, -1, -1, -1)] for p in range(P)]
        self._price_a = [[index[(PRICE, pm // M, pm % M, lv, -1)] for lv in range(L)] for pm in range(PM)]
        self._bid_a = [index[(BID, -1, -1, -1, r)] for r in range(Rn)]
        # dynamic mask columns: 0 always | 1+p an idle factory of product p | 1+P+p goods of product p in stock
        didx = np.zeros(lo.n_actions, np.int64)
        didx[v == PRODUCE] = 1 + lo.prod[v == PRODUCE]
        campaign = (v == MARKETING) | (v == WAR) | (v == POACH)
        didx[campaign] = 1 + P + lo.prod[campaign]
        self._didx = didx
        base = np.zeros(lo.n_actions)
        base[v == BUILD] = R.BUILD_COST + R.RESERVE
        base[v == MARKETING] = R.MARKETING_COST + R.RESERVE
        base[v == WAR] = R.WAR_COST + R.RESERVE
        base[v == POACH] = R.POACH_COST + R.RESERVE
        self._need_base = base
        self._unit_row = np.full(lo.n_actions, -1)
        self._unit_row[v == PRODUCE] = lo.prod[v == PRODUCE]
        self._unit_row[v == BUILD] = P
        self._unit_row[v == UPGRADE] = P + 1
        self._cost_col = [0] * 10
        for verb, col in R.VERB_LEDGER.items():
            self._cost_col[verb] = col

    # ---- episode ----------------------------------------------------------------------------------------------
    def reset(self, seed=None, options=None):
        if seed is not None or not self._seeded:
            self._rng = np.random.default_rng(seed)
            self._seeded = True
        lo, F = self.layout, self.n_firms
        P, U, Rn, PM = lo.P, lo.U, lo.R, lo.P * lo.M
        self.agents = list(self.possible_agents)
        self.t = 0
        self.S = np.zeros((F, self._width))
        self._bind_views()
        self.cash[:] = R.CASH0
        self.built[:, 0] = 1.0
        self.sprod[:, 0] = 1.0  # product + 1 (0 = empty slot)
        self.uc[:] = self._uc0
        mid = lo.L // 2
        self.price[:] = self._mult[mid]
        self.brand[:] = 1.0
        self.alive[:] = 1.0
        self.nfac[:] = 1.0
        # integer mirrors and action-driven derived arrays
        self.alive_b = np.ones(F, bool)
        self.built_b = self.built > 0
        self.sprod_i = np.where(self.built_b, 0, -1)
        self.level_i = np.zeros((F, U), np.int64)
        self.tech_i = np.zeros((F, P), np.int64)
        self.pl = np.full((F, PM), mid, np.int64)
        self.of_product = self.sprod_i[:, None, :] == np.arange(P)[None, :, None]  # (F, P, U)
        self.attr0 = np.full((F, PM), self._attract[mid])
        self.price_abs = np.tile(self._bp_pm * self._mult[mid], (F, 1))
        self.book = np.full(F, R.BOOK_VALUE * R.BUILD_COST)
        self.overhead = np.full(F, R.OVERHEAD_BASE + R.OVERHEAD_FACTORY)
        self.res_holder = np.full(Rn, -1)
        self.res_price = np.zeros(Rn)
        self.held = np.zeros((F, P))
        self.ledger_t = np.zeros((len(R.LEDGER), F))  # money flows by kind (rows) and firm
        self.n_alive = F
        self.invalid = np.zeros(F, np.int64)
        self.dropout = np.full(F, -1)
        self.final_score = np.zeros(F)
        self.final_parts = np.zeros((F, len(R.SCORE_PARTS)))
        self.avg_cost = np.zeros((F, P))  # average cost of the goods in stock to their firm (the score counts it)
        need = np.tile(self._need_base, (F, 1))
        need[:, 0] = -np.inf  # the no-op is always allowed
        need[:, self._produce_a] = self.uc
        need[:, self._upgrade_a] = R.UPGRADE_COST + R.RESERVE
        need[:, self._research_a] = R.RESEARCH_COST + R.RESERVE
        need[:, self._bid_a] = R.BID_RESERVE + R.RESERVE
        for pm in range(PM):
            need[:, self._price_a[pm][mid]] = np.inf
        self.need = need
        self.mvec = np.zeros(self._d_mkt)
        self._dyn = np.ones((F, 1 + 2 * P), bool)  # always | idle factory of p | goods of p in stock
        self.demand = self._draw_demand()
        self.nw[:] = self.cash + self.book
        self._finish_step()
        infos = {a: {"reward_terms": dict.fromkeys(R.REWARD_TERMS, 0.0), "invalid_action": 0} for a in self.agents}
        return dict(zip(self.agents, self._observe())), infos

    def _bind_views(self):
        """Named views into S (cash, inv, brand, ...): writing through them updates the observation matrix."""
        for name, (a, b) in self._cols.items():
            setattr(self, name, self.S[:, a] if name in ("cash", "nw", "alive", "nfac") else self.S[:, a:b])

    def __getstate__(self):
        # copies and pickles must rebuild the views into their own S, not carry detached arrays
        return {k: v for k, v in self.__dict__.items() if k not in self._cols}

    def __setstate__(self, state):
        self.__dict__.update(state)
        if "S" in state:
            self._bind_views()

    def _draw_demand(self):
        """Demand per product-market this step: market size times noise drawn for the whole episode at reset."""
        if self.t == 0:
            noise = 0.8 + 0.4 * self._rng.random((self.horizon + 1, len(self._market_size)))
            self._demand_path = (R.DEMAND_PER_FIRM * self.n_firms) * self._market_size * noise
        demand = self._demand_path[self.t]
        self.mvec[: len(demand)] = demand * (1.0 / (R.DEMAND_PER_FIRM * self.n_firms))
        return demand

    def _finish_step(self):
        """The flat mask for the state now (vectorised over firms)."""
        idle = self.busy == 0  # empty slots are never of a product, so need no check
        dyn = self._dyn
        np.logical_or.reduce(self.of_product & idle[:, None, :], 2, out=dyn[:, 1 : 1 + self.layout.P])
        np.greater(self.inv, 0, out=dyn[:, 1 + self.layout.P :])
        mask = dyn[:, self._didx]
        mask &= self.cash[:, None] >= self.need
        self._flat_mask = mask.view(np.int8)
        self.mvec[-1] = self.t / self.horizon

    def _factorised_masks(self):
        """[WHAT] + [unit rows (P+2) x U] + [rival row (F-1)], one row per firm."""
        F = self.n_firms
        cash = self.cash[:, None]
        idle = (self.busy == 0) & self.built_b
        prod_rows = (idle & (self.uc[self._rows[:, None], np.maximum(self.sprod_i, 0)] <= cash))[
            :, None, :
        ] & self.of_product
        build_row = ~self.built_b & (cash >= R.BUILD_COST + R.RESERVE)
        up_row = self.built_b & (self.level_i < R.MAX_LEVEL) & (R.UPGRADE_COST * (self.level_i + 1) + R.RESERVE <= cash)
        units = np.concatenate([prod_rows, build_row[:, None], up_row[:, None]], axis=1).reshape(F, -1)
        return np.concatenate([self._flat_mask, units, self.alive_b[self._perm]], axis=1).astype(np.int8)

    def _observe(self):
        F, d0 = self.n_firms, self._d_own
        obs = np.empty((F, self.obs_size), np.float32)
        np.multiply(self.S[:, :d0], self._own_scale, out=obs[:, :d0])
        obs[:, d0 : d0 + self._d_mkt] = self.mvec
        obs[:, d0 + self._d_mkt :] = obs[self._pub_index].reshape(F, -1)
        if not self.masked:
            mask = np.ones((F, self.mask_size), np.int8)
        elif self.encoding == "flat":
            mask = self._flat_mask
        else:
            mask = self._factorised_masks()
        self._obs = obs
        self._observations = [{"observations": obs[i], "action_mask": mask[i]} for i in range(F)]
        return self._observations

    def observation(self, i: int) -> dict:
        """Firm i's observation in this env's encoding, as the last reset/step returned it (what policies read)."""
        return self._observations[i]

    def flat_observation(self, i: int) -> dict:
        """Firm i's observation with the flat mask, whatever the encoding (what scripted opponents read)."""
        return {"observations": self._obs[i], "action_mask": self._flat_mask[i]}

    def encode_flat(self, i: int, action: int):
        """Firm i's flat action in this env's encoding (the factorised triple uses the flat rules' unit and rival)."""
        if self.encoding == "flat":
            return int(action)
        v = self._verb[action]
        p, pm = self._a_prod[action], self._a_pm[action]
        unit = {PRODUCE: self._rule_produce, BUILD: self._rule_build, UPGRADE: self._rule_upgrade}.get(v)
        unit = unit(i, p) if unit else 0
        target = (self._rule_poach(i, pm) - i - 1) % self.n_firms if v == POACH else 0
        return np.array([action, max(unit, 0), target], dtype=np.int64)

    # ---- rules that pick WHICH unit / target for a flat action ---------------------------------------------------
    def _rule_produce(self, i, p):
        """The highest-level idle factory of product p (ties: lowest slot), -1 if none."""
        best, best_level = -1, -1
        busy, sprod, level = self.busy[i].tolist(), self.sprod_i[i].tolist(), self.level_i[i].tolist()
        for u in range(len(busy)):
            if sprod[u] == p and busy[u] == 0 and level[u] > best_level:
                best, best_level = u, level[u]
        return best

    def _rule_build(self, i, p=0):
        """The first empty slot, -1 if none."""
        empty = np.flatnonzero(~self.built_b[i])
        return int(empty[0]) if len(empty) else -1

    def _rule_upgrade(self, i, p=0):
        """The lowest-level factory below the top level (ties: lowest slot), -1 if none."""
        best, best_level = -1, R.MAX_LEVEL
        for u, (b, lv) in enumerate(zip(self.built_b[i].tolist(), self.level_i[i].tolist())):
            if b and lv < best_level:
                best, best_level = u, lv
        return best

    def _rule_poach(self, i, pm):
        """The alive rival with the strongest brand in product-market pm (ties: next seat first)."""
        brand = self.brand[:, pm]
        return max((j for j in self._perm[i].tolist() if self.alive_b[j]), key=lambda j: brand[j])

    # ---- action-driven updates of the derived arrays ----------------------------------------------------------------
    def _refresh_upgrade_need(self, i):
        u = self._rule_upgrade(i)
        self.need[i, self._upgrade_a] = np.inf if u < 0 else R.UPGRADE_COST * (self.level_i[i, u] + 1) + R.RESERVE

    def _refresh_unit_cost(self, i, p):
        self.uc[i, p] = self._uc0[p] * (
            1.0 - R.TECH_STEP * self.tech_i[i, p] - R.RESOURCE_DISCOUNT * min(self.held[i, p], 2)
        )
        self.need[i, self._produce_a[p]] = self.uc[i, p]

    # ---- step ---------------------------------------------------------------------------------------------------
    def _decode(self, actions):
        """Per acting firm: (firm, what, unit, target); invalid ones are counted and dropped (no-op)."""
        plan = []
        idx = self.agent_index
        if not idx.keys() >= actions.keys():
            raise ValueError(f"actions for unknown agents {sorted(set(actions) - set(idx))}")
        if self.encoding == "flat":
            mask, n = self._flat_mask, self.n_actions
            for a, x in actions.items():
                i = idx[a]
                if x and self.alive_b[i]:
                    if not 0 <= x < n:
                        raise ValueError(f"action {x!r} of {a} is outside Discrete({n})")
                    if mask[i, x]:
                        plan.append((i, int(x), -1, -1))
                    else:
                        self.invalid[i] += 1
            return plan
        fm = self._factorised_masks()
        lo, U = self.layout, self.layout.U
        for a, x in actions.items():
            i = idx[a]
            w, u, t = int(x[0]), int(x[1]), int(x[2])
            if not w or not self.alive_b[i]:
                continue
            if not (0 <= w < lo.n_actions and 0 <= u < U and 0 <= t < self.n_firms - 1):
                nvec = [int(v) for v in self.action_space(a).nvec]
                raise ValueError(f"action {[w, u, t]} of {a} is outside MultiDiscrete({nvec})")
            ur = self._unit_row[w]
            ok = fm[i, w] and (ur < 0 or fm[i, lo.n_actions + ur * U + u])
            if self._verb[w] == POACH:
                ok = ok and fm[i, lo.n_actions + (lo.P + 2) * U + t]
            if ok:
                plan.append((i, w, u if ur >= 0 else -1, int(self._perm[i, t])))
            else:
                self.invalid[i] += 1
        return plan

    def step(self, actions):
        F, M = self.n_firms, self.layout.M
        cash_before = self.cash.copy()
        nw_before = self.nw.copy()
        terms = np.zeros((len(R.REWARD_TERMS), F))  # rows as in R.REWARD_TERMS
        produced, builds = terms[3], terms[4]  # filled by _apply
        bids = []
        for i, a, unit, target in self._decode(actions):
            self._apply(i, a, unit, target, produced, builds, bids)
        if bids:
            self._resolve_bids(bids)
        # --- market: demand shared by attractiveness (brand x price^-elasticity), limited by stock
        add = np.add.reduce
        any_war = np.count_nonzero(self.war)
        if any_war:
            at_war = self.war > 0
            attract = self.brand * self.attr0 * np.where(at_war, self._boost, 1.0)
            price = self.price_abs * np.where(at_war, R.WAR_DISCOUNT, 1.0)
        else:
            attract, price = self.brand * self.attr0, self.price_abs
        stocked = np.sign(self.inv)  # 1.0 where goods are in stock (inventory is never < 0)
        if self.n_alive < F:
            stocked *= self.alive[:, None]
        attract *= stocked if self._single_market else stocked[:, self._pm_p]
        denom = add(attract, 0)
        denom += R.OUTSIDE_OPTION * F
        qty = attract * (self.demand / denom)
        want = add(qty, 1)[:, None] if self.layout.P == 1 else add(qty.reshape(F, -1, M), 2)
        sold = np.minimum(self.inv, want)
        want += 1e-12
        scale = sold / want
        qty *= scale if self._single_market else scale[:, self._pm_p]
        self.inv -= sold
        sales = add(qty * price, 1)
        holding = self.inv @ self._holding_rate
        flows = sales - self.overhead
        flows -= holding
        self.cash += flows
        ledger = self.ledger_t
        ledger[0] += sales
        ledger[10] -= self.overhead
        ledger[11] -= holding
        # --- dynamics: rivals' brands erode where a firm wages a price war, brands drift back, timers run down.
        # Brands stay within [BRAND_MIN, BRAND_MAX] without clipping: every change is capped or shrinks toward it.
        brand = self.brand
        if any_war:
            brand *= R.WAR_PRESSURE ** (add(at_war, 0) - at_war)
            self.war -= at_war
        brand *= 1.0 - R.BRAND_DRIFT
        brand += R.BRAND_DRIFT
        busy = self.busy
        busy -= 1.0
        np.maximum(busy, 0.0, out=busy)
        np.add(self.cash, self.book, out=self.nw)
        if self.stock_at_cost:  # goods leave the stock at their average cost, so what is left is worth inv x avg
            self.nw += self.inv[:, 0] * self.avg_cost[:, 0] if self.layout.P == 1 else add(self.stock_cost, 1)
        else:  # the old, exploitable rule (see README): kept to re-score games of policies trained on it
            self.nw += self.inv @ self._uc0
        self.t += 1
        self.demand = self._draw_demand()
        any_broke = min(self.cash.tolist()) < 0 and bool(np.count_nonzero(self.alive_b & (self.cash < 0)))
        broke = self.alive_b & (self.cash < 0) if any_broke else None
        if any_broke:
            self._bankrupt(broke)
        self._finish_step()
        # --- rewards and ending
        np.subtract(self.cash, cash_before, out=terms[1])
        np.subtract(self.nw, nw_before, out=terms[2])
        terms[1:3] *= 1.0 / R.CASH0
        sold_firm = sold[:, 0] if self.layout.P == 1 else add(sold, 1)
        total = sum(sold_firm.tolist())
        if total > 0:
            np.divide(sold_firm, total, out=terms[5])
        n_alive = self.n_alive
        done = n_alive <= 1 or (self.t >= self.horizon // 4 and self._dominated())
        truncated = self.t >= self.horizon and not done
        end = done or truncated
        if any_broke:
            terms[0, broke] = self._outcome_for_dropouts(broke)
            terms[2, broke] = 0.0
        if end:
            self.final_score[self.alive_b] = self.nw[self.alive_b]
            self.final_parts[self.alive_b] = self.score_parts()[self.alive_b]
            outcome = self._outcomes()
            terms[0, self.alive_b] = outcome[self.alive_b]
        rewards_arr = (self._w @ terms).tolist()
        obs = self._observe()
        agents, names = self.agents, R.REWARD_TERMS
        if len(agents) == F:  # everyone alive: seat order = firm order
            observations, rewards = dict(zip(agents, obs)), dict(zip(agents, rewards_arr))
            infos = {
                a: {"reward_terms": dict(zip(names, t)), "invalid_action": n}
                for a, t, n in zip(agents, terms.T.tolist(), self.invalid.tolist())
            }
        else:
            idx, tlist, inv_list = self.agent_index, terms.T.tolist(), self.invalid.tolist()
            observations = {a: obs[idx[a]] for a in agents}
            rewards = {a: rewards_arr[idx[a]] for a in agents}
            infos = {
                a: {"reward_terms": dict(zip(names, tlist[idx[a]])), "invalid_action": inv_list[idx[a]]} for a in agents
            }
        terminations = dict.fromkeys(agents, done)
        truncations = dict.fromkeys(agents, truncated)
        if any_broke:
            for a in agents:
                terminations[a] = done or bool(broke[self.agent_index[a]])
        if end or any_broke:
            self._final_infos(infos, broke, end)
        if end:
            self.agents = []
        elif any_broke:
            self.agents = [a for a in self.agents if self.alive_b[self.agent_index[a]]]
        return observations, rewards, terminations, truncations, infos

    def _apply(self, i, a, unit, target, produced, builds, bids):
        """Carry out firm i's valid action a (scalar updates of the action-driven state)."""
        v = self._verb[a]
        p, pm = self._a_prod[a], self._a_pm[a]
        cost = 0.0
        if v == PRODUCE:
            u = unit if unit >= 0 else self._rule_produce(i, p)
            uc = self.uc[i, p]
            out = min(R.CAPACITY * (1 + self.level_i[i, u]), self.cash[i] / uc)
            cost = out * uc
            held = self.inv[i, p]
            self.avg_cost[i, p] = (held * self.avg_cost[i, p] + cost) / (held + out)
            self.inv[i, p] = held + out
            self.busy[i, u] = R.BATCH_STEPS
            produced[i] = out * (1.0 / (R.CAPACITY * (1 + R.MAX_LEVEL)))
        elif v == BUILD:
            u = unit if unit >= 0 else self._rule_build(i)
            cost = R.BUILD_COST
            self.built[i, u], self.built_b[i, u] = 1.0, True
            self.sprod[i, u], self.sprod_i[i, u], self.of_product[i, p, u] = p + 1, p, True
            self.book[i] += R.BOOK_VALUE * cost
            self.overhead[i] += R.OVERHEAD_FACTORY
            self.nfac[i] += 1
            if self.built_b[i].all():
                self.need[i, self._build_a] = np.inf
            self._refresh_upgrade_need(i)
            builds[i] = 1
        elif v == UPGRADE:
            u = unit if unit >= 0 else self._rule_upgrade(i)
            cost = R.UPGRADE_COST * (self.level_i[i, u] + 1)
            self.level_i[i, u] += 1
            self.level[i, u] += 1
            self.book[i] += R.BOOK_VALUE * cost
            self._refresh_upgrade_need(i)
            builds[i] = 1
        elif v == RESEARCH:
            cost = R.RESEARCH_COST * (self.tech_i[i, p] + 1)
            self.tech_i[i, p] += 1
            self.tech[i, p] += 1
            self._refresh_unit_cost(i, p)
            self.need[i, self._research_a[p]] = (
                np.inf if self.tech_i[i, p] >= R.MAX_TECH else R.RESEARCH_COST * (self.tech_i[i, p] + 1) + R.RESERVE
            )
            builds[i] = 1
        elif v == PRICE:
            level = self._a_level[a]
            self.need[i, self._price_a[pm][self.pl[i, pm]]] = 0.0
            self.need[i, a] = np.inf
            self.pl[i, pm] = level
            self.price[i, pm] = self._mult[level]
            self.attr0[i, pm] = self._attract[level]
            self.price_abs[i, pm] = self._bp_pm[pm] * self._mult[level]
        elif v == MARKETING:
            cost = R.MARKETING_COST
            self.brand[i, pm] = min(self.brand[i, pm] + R.MARKETING_GAIN, R.BRAND_MAX)
        elif v == WAR:
            cost = R.WAR_COST
            self.war[i, pm] = R.WAR_STEPS
        elif v == POACH:
            cost = R.POACH_COST
            t = target if target >= 0 else self._rule_poach(i, pm)
            amount = R.POACH_FRACTION * (self.brand[t, pm] - R.BRAND_MIN)
            self.brand[t, pm] -= amount
            self.brand[i, pm] = min(self.brand[i, pm] + amount, R.BRAND_MAX)
        elif v == BID:
            bids.append((i, self._a_res[a]))
        if cost:
            self.cash[i] -= cost
            self.ledger_t[self._cost_col[v], i] -= cost

    def _resolve_bids(self, bids):
        """Simultaneous bids: per resource the richest bidder wins (ties by the seeded RNG) and pays; a holder
        that is outbid is paid back what it paid (a transfer between firms), the rest goes to the bank."""
        for r in sorted({r for _, r in bids}):
            bidders = [i for i, rr in bids if rr == r]
            if len(bidders) > 1:
                self._rng.shuffle(bidders)
            winner = max(bidders, key=self.cash.__getitem__)
            holder, held = int(self.res_holder[r]), float(self.res_price[r])
            need = R.BID_RESERVE if holder < 0 else held * R.OUTBID
            self.cash[winner] -= need
            self.ledger_t[8, winner] -= need - held if holder >= 0 else need
            if holder >= 0:
                self.ledger_t[9, winner] -= held
                self.cash[holder] += held
                self.ledger_t[9, holder] += held
            self._set_resource(r, winner, need)

    def _set_resource(self, r, holder, paid):
        p = self._res_product[r]
        old = int(self.res_holder[r])
        self.res_holder[r], self.res_price[r] = holder, paid
        for firm, delta in ((old, -1.0), (holder, 1.0)):
            if firm >= 0:
                self.held[firm, p] += delta
                self.res[firm, r] = 1.0 if delta > 0 else 0.0
                self._refresh_unit_cost(firm, p)
        self.need[:, self._bid_a[r]] = (R.BID_RESERVE if holder < 0 else paid * R.OUTBID) + R.RESERVE
        if holder >= 0:
            self.need[holder, self._bid_a[r]] = np.inf
        Rn = self.layout.R
        self.mvec[-1 - 2 * Rn + r] = paid / R.CASH0
        self.mvec[-1 - Rn + r] = 1.0 if holder >= 0 else 0.0

    def _bankrupt(self, broke):
        """Firms out of cash leave: their score is their (negative) cash, their resources go back on the market."""
        self.alive_b &= ~broke
        self.n_alive = int(self.alive_b.sum())
        self.alive[broke] = 0.0
        self.dropout[broke] = self.t
        self.final_score[broke] = self.cash[broke]
        self.final_parts[broke] = 0.0
        self.final_parts[broke, 0] = self.cash[broke]
        self.overhead[broke] = 0.0
        for r in np.flatnonzero(np.isin(self.res_holder, np.flatnonzero(broke))).tolist():
            self._set_resource(r, -1, 0.0)

    def _dominated(self):
        positive = [max(x, 0.0) for x, a in zip(self.nw.tolist(), self.alive_b.tolist()) if a]
        total = sum(positive)
        return total > 0 and max(positive) >= self.dominance * total

    def _outcome_for_dropouts(self, broke):
        """Firms that go bankrupt now rank below every firm still alive: outcome from their (shared) rank."""
        n = self.n_firms
        below = int(((self.dropout >= 0) & (self.dropout < self.t)).sum())
        rank = n - below - (int(broke.sum()) + 1) / 2.0
        return 1.0 - 2.0 * rank / (n - 1)

    def _rank_key(self):
        return np.where(self.alive_b, self.final_score, -1e9 + 1e6 * self.dropout + self.final_score)

    def _outcomes(self):
        """Rank-based outcome at the end: +1 first ... -1 last, ties split; bankrupt firms rank last."""
        key = self._rank_key()
        order = (key[None, :] > key[:, None]).sum(1) + ((key[None, :] == key[:, None]).sum(1) - 1) / 2.0
        return 1.0 - 2.0 * order / (self.n_firms - 1)

    def _final_infos(self, infos, broke, end):
        for a in infos:
            i = self.agent_index[a]
            if end or broke[i]:
                infos[a]["score"] = float(self.final_score[i])
        if end:
            key = self._rank_key()
            best = np.flatnonzero(key == key.max())
            winner = self.possible_agents[int(best[0])] if len(best) == 1 else None
            ranks = (key[None, :] > key[:, None]).sum(1)
            scores = dict(zip(self.possible_agents, self.final_score.tolist()))
            rows = self.final_parts.tolist()
            parts = {a: dict(zip(R.SCORE_PARTS, row)) for a, row in zip(self.possible_agents, rows)}
            for a in infos:
                infos[a].update(
                    final_scores=scores, score_parts=parts, winner=winner, rank=int(ranks[self.agent_index[a]])
                )

    def score_parts(self) -> np.ndarray:
        """Net worth by part, one row per firm, columns `rules.SCORE_PARTS`: cash, assets (book value of the
        factories) and stock at what it cost that firm to make, so producing unsold goods never raises a score
        (with `stock_value="tech0"`, the old rule, stock at the tech-0 unit cost instead)."""
        stock = self.stock_cost.sum(1) if self.stock_at_cost else self.inv @ self._uc0
        return np.stack([self.cash, self.book, stock], axis=1)

    @property
    def stock_cost(self) -> np.ndarray:
        """What the goods in stock cost their firm to make, per firm and product."""
        return self.inv * self.avg_cost

    # ---- PettingZoo niceties ----------------------------------------------------------------------------------
    def render(self):
        return None

    def close(self):
        pass

    def money_check(self):
        """(cash, initial cash + ledger sum, transfer column sum): equal / zero when money is conserved."""
        return self.cash.copy(), R.CASH0 + self.ledger_t.sum(0), float(self.ledger_t[9].sum())

    @property
    def ledger(self):
        """Money flows so far, one row per firm, columns named by rules.LEDGER."""
        return self.ledger_t.T.copy()


def parallel_env(**config) -> BizSimEnv:
    """bizsim_v0 as a PettingZoo ParallelEnv; keywords in README.md (defaults: 4 firms, complexity 1, flat, masks)."""
    return BizSimEnv(**config)


def raw_env(**config):
    """bizsim_v0 as an AEC env, through PettingZoo's converter."""
    return conversions.parallel_to_aec(BizSimEnv(**config))


env = raw_env
