"""Scripted bizsim opponents, a strategy ladder L0 < L1 < L2 < L3 < L4, and non-stationary mixes of them.

An opponent is any object with a no-argument constructor, `reset(seed=None)` (called at the start of each
episode) and `act(observation) -> int`, a flat action index, where `observation` is the agent's observation
dict with the flat action mask (`BizSimEnv.flat_observation(i)` gives it whatever the learner's encoding).
Opponents read the game only through `rules.decode_observation`, so they work inside the env, in wrappers or
anywhere else, and each is deterministic given the seeds passed to `reset`.
"""

from __future__ import annotations

import importlib
from pathlib import Path

import numpy as np

from envs.bizsim import rules as R
from envs.bizsim.rules import (
    BID,
    BUILD,
    MARKETING,
    POACH,
    PRICE,
    PRODUCE,
    RESEARCH,
    UPGRADE,
    action_index,
    decode_observation,
    infer_layout,
)


class Opponent:
    """Base class: keeps a seeded RNG and decodes observations; subclasses implement `choose`."""

    def __init__(self):
        self.rng = np.random.default_rng()

    def reset(self, seed=None):
        self.rng = np.random.default_rng(seed)

    def act(self, observation) -> int:
        lo = infer_layout(observation)
        mask = np.asarray(observation["action_mask"])
        action = self.choose(lo, decode_observation(observation["observations"], lo), mask, action_index(lo))
        return int(action) if mask[action] else 0

    def choose(self, lo, d, mask, index) -> int:
        raise NotImplementedError


class Passive(Opponent):
    """L0: never acts (always the no-op)."""

    def choose(self, lo, d, mask, index):
        return 0


class RandomValid(Opponent):
    """L1: a random valid action: first a verb uniformly among those with a valid action, then one of its valid
    actions uniformly (uniform over all actions would be mostly price changes, which outnumber the rest)."""

    def choose(self, lo, d, mask, index):
        valid = np.flatnonzero(mask)
        verbs = lo.verb[valid]
        verb = self.rng.choice(np.unique(verbs))
        return int(self.rng.choice(valid[verbs == verb]))


def _valid(mask, index, key):
    a = index.get(key, -1)
    return a if a >= 0 and mask[a] else -1


def marketing_value(lo, d, horizon=100):
    """Money a marketing campaign is expected to bring, per product-market, from what the observation shows: the
    extra units sold (demand x the derivative of its share brand * price^-2 / (all firms' + the outside option's
    attractiveness) in its brand) over the brand gain, which drifts back 2% a step, summed over the steps left
    (`horizon` is a guess: the observation holds time as a fraction), times the margin at its current price."""
    attract = d["price"] ** -R.ELASTICITY
    alive = d["rival_alive"][:, None] > 0.5
    others = np.where(alive, d["rival_brand"] * d["rival_price"] ** -R.ELASTICITY, 0.0).sum(0)
    others += R.OUTSIDE_OPTION * lo.n_firms
    brand = d["brand"]
    share_slope = attract * others / (brand * attract + others) ** 2
    left = horizon * (1.0 - d["time"])
    brand_steps = np.minimum(R.MARKETING_GAIN, R.BRAND_MAX - brand) * (1 - (1 - R.BRAND_DRIFT) ** left) / R.BRAND_DRIFT
    base = np.repeat(R.BASE_PRICE * (1 + 0.15 * np.arange(lo.P)), lo.M)
    margin = base * d["price"] - np.repeat(d["unit_cost"], lo.M)
    return d["demand"] * share_slope * brand_steps * margin


def _price_level(mult, L):
    low, high = R.PRICE_RANGE
    return int(round((mult - low) / (high - low) * (L - 1)))


class GreedyProducer(Opponent):
    """L2: keeps its stock topped up (about two batches), prices at the middle level (one lower when stock piles
    up), markets its own brand when goods wait, researches cheaper production and expands while cash allows;
    never attacks rivals."""

    expand_until = 0.6  # share of the episode during which it builds and upgrades

    def produce(self, lo, d, mask, index):
        """Start a batch of the product with the least stock, unless stock already covers two batches."""
        cap = 2 * self.batch(d)
        options = [
            (d["inventory"][p], p)
            for p in range(lo.P)
            if d["inventory"][p] < cap and _valid(mask, index, (PRODUCE, p, -1, -1, -1)) >= 0
        ]
        return index[(PRODUCE, min(options)[1], -1, -1, -1)] if options else -1

    def batch(self, d):
        built = d["slot_product"] >= 0
        return R.CAPACITY * (1 + d["slot_level"][built]).sum() / max(1, built.sum())

    def target_levels(self, lo, d):
        """Price level wanted per product-market: middle, one lower where stock of that product piles up."""
        piled = np.repeat(d["inventory"] > 1.5 * self.batch(d), lo.M)
        return np.where(piled, lo.L // 2 - 1, lo.L // 2)

    def set_price(self, lo, d, mask, index):
        current = np.array([_price_level(x, lo.L) for x in d["price"]])
        for pm in np.flatnonzero(current != self.target_levels(lo, d)):
            a = _valid(mask, index, (PRICE, pm // lo.M, pm % lo.M, int(self.target_levels(lo, d)[pm]), -1))
            if a >= 0:
                return a
        return -1

    def expand(self, lo, d, mask, index):
        if d["time"] > self.expand_until or d["inventory"].sum() > 2 * self.batch(d):
            return -1
        up = _valid(mask, index, (UPGRADE, -1, -1, -1, -1))
        if up >= 0:
            return up
        counts = np.bincount(d["slot_product"][d["slot_product"] >= 0], minlength=lo.P)
        demand = d["demand"].reshape(lo.P, lo.M).sum(1)
        for p in np.argsort(-demand / (1 + counts)):
            a = _valid(mask, index, (BUILD, int(p), -1, -1, -1))
            if a >= 0:
                return a
        return -1

    def promote(self, lo, d, mask, index):
        """Marketing where its own brand is weakest, when goods wait to be sold and cash is plentiful."""
        if d["cash"] < 3 * R.MARKETING_COST + R.RESERVE:
            return -1
        for pm in np.argsort(d["brand"], kind="stable"):
            p = int(pm) // lo.M
            a = _valid(mask, index, (MARKETING, p, int(pm) % lo.M, -1, -1))
            if a >= 0 and d["brand"][pm] < 2.0 and d["inventory"][p] > self.batch(d):
                return a
        return -1

    def research(self, lo, d, mask, index):
        """Cheaper production: research the product it makes with the lowest tech, while cash allows."""
        if d["time"] > self.expand_until or d["cash"] < 2 * R.RESEARCH_COST:
            return -1
        made = set(d["slot_product"][d["slot_product"] >= 0].tolist())
        for p in np.argsort(d["tech"], kind="stable"):
            a = _valid(mask, index, (RESEARCH, int(p), -1, -1, -1))
            if a >= 0 and int(p) in made:
                return a
        return -1

    def choose(self, lo, d, mask, index):
        for step in (self.produce, self.set_price, self.promote, self.research, self.expand):
            a = step(lo, d, mask, index)
            if a >= 0:
                return a
        return 0


class Trader(GreedyProducer):
    """L3: the greedy producer with demand- and stock-aware pricing, brand building and attacks only where they
    pay: prices at the top level while its stock is under one batch (it sells out anyway), the middle one up to 1.5
    batches and the lowest above; markets its brand up to 4 (not 2) where goods wait; poaches only head-to-head
    (one live rival, so the swing is all its own) and only where that moves more brand than marketing would."""

    brand_below = 4.0  # markets its brand while it is below this
    payback = 1.5  # a campaign must be expected to bring this many times its cost
    aggression = 1.0  # probability of attacking on a free step (DriftingOpponent varies it)
    head_to_head_only = True  # with several rivals, an attack helps the firms not attacked as much as the attacker

    def reset(self, seed=None):
        super().reset(seed)
        self.regime = None  # price level per product, kept between steps (hysteresis)

    def target_levels(self, lo, d):
        """Per product, in its largest market (market 0): top level when stock falls under half a batch, lowest
        above two batches, back to the middle once stock has recovered (1.5 batches) or cleared (one batch); its
        other markets stay at the middle (re-pricing all of them would eat the one action a step at complexity 2+).
        """
        batch, inv = self.batch(d), d["inventory"]
        if self.regime is None or len(self.regime) != lo.P:
            self.regime = np.full(lo.P, lo.L // 2)
        top, mid, regime = lo.L - 1, lo.L // 2, self.regime
        regime[inv < 0.5 * batch] = top
        regime[inv > 2.0 * batch] = 0
        regime[(regime == top) & (inv > 1.5 * batch)] = mid
        regime[(regime == 0) & (inv < batch)] = mid
        levels = np.full((lo.P, lo.M), mid)
        levels[:, 0] = regime
        return levels.reshape(-1)

    def promote(self, lo, d, mask, index):
        """Marketing where it pays: the product-market whose campaign brings the most (`marketing_value`), if that
        is at least `payback` times its cost, goods of that product wait and its brand is under `brand_below`."""
        if d["cash"] < 3 * R.MARKETING_COST + R.RESERVE:
            return -1
        waiting = np.repeat(d["inventory"], lo.M) > self.batch(d)
        value = np.where(waiting & (d["brand"] < self.brand_below), marketing_value(lo, d), 0.0)
        for pm in np.argsort(-value, kind="stable"):
            if value[pm] < self.payback * R.MARKETING_COST:
                return -1
            a = _valid(mask, index, (MARKETING, int(pm) // lo.M, int(pm) % lo.M, -1, -1))
            if a >= 0:
                return a
        return -1

    def attack(self, lo, d, mask, index):
        """Poach where the strongest rival brand gives more than 1.2 x a marketing campaign's gain."""
        if self.head_to_head_only and (d["rival_alive"] > 0.5).sum() != 1:
            return -1
        if d["cash"] < 3 * R.POACH_COST + R.RESERVE or self.rng.random() >= self.aggression:
            return -1
        rival_brand = np.where(d["rival_alive"][:, None] > 0.5, d["rival_brand"], 0.0).max(0)
        batch = self.batch(d)
        for pm in np.argsort(-rival_brand, kind="stable"):
            p, m = divmod(int(pm), lo.M)
            a = _valid(mask, index, (POACH, p, m, -1, -1))
            gain = R.POACH_FRACTION * (rival_brand[pm] - R.BRAND_MIN)
            if a >= 0 and gain > 1.2 * R.MARKETING_GAIN and d["inventory"][p] > batch:
                return a
        return -1

    def steps(self, lo, d):
        return (self.produce, self.research, self.expand, self.set_price, self.attack, self.promote)

    def choose(self, lo, d, mask, index):
        for step in self.steps(lo, d):
            a = step(lo, d, mask, index)
            if a >= 0:
                return a
        return 0


class Adaptive(Trader):
    """L4: L3 plus cost advantages with payback reasoning: bids for the contested resources of what it makes (20%
    off the unit cost) when the saving over the rest of the episode exceeds the price and expansion is paid for,
    and does so before it researches, expands, prices or markets. It keeps state within the episode: attacked
    head-to-head (`was_attacked`: a price war in its markets, or its brand below where the drift alone would take
    it), it strikes back first for 5 steps; among several rivals it does not (a counter-attack would help the firms
    not attacked as much), and it never attacks where L3 would not.
    """

    bid_cash = 100.0  # bids only with this much cash (expansion and research come first)

    def reset(self, seed=None):
        super().reset(seed)
        self.last_brand = None
        self.attacked = 0

    def was_attacked(self, d) -> bool:
        """A rival wages a price war in one of its markets, or its brand fell below where the drift back toward 1
        alone would take it (own actions only raise its brand, so only a rival's poaching explains that)."""
        if (d["rival_war"] > 0).any():
            return True
        if self.last_brand is None:
            return False
        drifted = self.last_brand * (1.0 - R.BRAND_DRIFT) + R.BRAND_DRIFT
        return bool((d["brand"] < drifted - 1e-4).any())

    def bid(self, lo, d, mask, index):
        """Outbid for a resource of a product it makes when the saving pays back the price: 20% of the tech-0 unit
        cost on what its factories of that product can make in the rest of the episode (taken as 100 steps), more
        than what the bid costs now; only once expansion and research are paid for (cash >= 100)."""
        if d["cash"] < self.bid_cash:
            return -1
        built = d["slot_product"] >= 0
        rate = np.zeros(lo.P)
        np.add.at(rate, d["slot_product"][built], R.CAPACITY * (1 + d["slot_level"][built]) / R.BATCH_STEPS)
        unit_cost0 = R.BASE_PRICE * (1 + 0.15 * np.arange(lo.P)) * R.UNIT_COST_FRAC
        saving = R.RESOURCE_DISCOUNT * unit_cost0 * rate * 100 * (1 - d["time"])
        for r in range(lo.R):
            a = _valid(mask, index, (BID, -1, -1, -1, r))
            price = d["resource_price"][r] * R.OUTBID if d["resource_held"][r] > 0.5 else R.BID_RESERVE
            if a >= 0 and saving[r % lo.P] > price:
                return a
        return -1

    def steps(self, lo, d):
        steps = (self.produce, self.bid, self.research, self.expand, self.set_price, self.attack, self.promote)
        if self.attacked > 0 and (d["rival_alive"] > 0.5).sum() == 1:
            return (self.produce, self.attack, *steps[1:])  # attacked head-to-head: strike back first
        return steps  # among several rivals a counter-attack would help the others as much

    def choose(self, lo, d, mask, index):
        if self.was_attacked(d):
            self.attacked = 5  # on guard for a few steps
        self.last_brand = d["brand"].copy()
        action = super().choose(lo, d, mask, index)
        self.attacked = max(0, self.attacked - 1)
        return action


class Hoarder(GreedyProducer):
    """Not a level: the regression check of the scoring rule. Produces whenever a factory is idle, prices at the
    top level (so little sells) and cuts its unit cost (research, resources): it would top the table if unsold
    stock counted for more than it cost to make."""

    def set_price(self, lo, d, mask, index):
        for pm in range(lo.P * lo.M):
            a = _valid(mask, index, (PRICE, pm // lo.M, pm % lo.M, lo.L - 1, -1))
            if a >= 0:
                return a
        return -1

    def produce(self, lo, d, mask, index):
        options = [index[(PRODUCE, p, -1, -1, -1)] for p in range(lo.P)]
        return next((a for a in options if mask[a]), -1)

    def bid(self, lo, d, mask, index):
        made = set(d["slot_product"][d["slot_product"] >= 0].tolist())
        return next(
            (
                index[(BID, -1, -1, -1, r)]
                for r in range(lo.R)
                if mask[index[(BID, -1, -1, -1, r)]] and r % lo.P in made
            ),
            -1,
        )

    def choose(self, lo, d, mask, index):
        for step in (self.bid, self.produce, self.set_price, self.research, self.expand):
            a = step(lo, d, mask, index)
            if a >= 0:
                return a
        return 0


LEVELS = {"L0": Passive, "L1": RandomValid, "L2": GreedyProducer, "L3": Trader, "L4": Adaptive}


class SwitchingOpponent(Opponent):
    """Non-stationary: plays one style for `every` episodes, then moves on to the next in `styles` (cyclic)."""

    styles = ("L2", "L3", "L4", "L1")
    every = 5

    def __init__(self):
        super().__init__()
        self.episodes = -1
        self.current = None

    @property
    def style(self) -> str:
        return self.styles[(max(self.episodes, 0) // self.every) % len(self.styles)]

    def reset(self, seed=None):
        super().reset(seed)
        self.episodes += 1
        self.current = LEVELS[self.style]()
        self.current.reset(seed)

    def act(self, observation):
        if self.current is None:
            self.reset()
        return self.current.act(observation)


class DriftingOpponent(Trader):
    """Non-stationary: L3 that also attacks with several rivals, its aggression (chance to poach on a free step)
    drifting by a bounded random walk each episode."""

    drift = 0.15
    head_to_head_only = False

    def __init__(self):
        super().__init__()
        self.aggression = 0.5

    def reset(self, seed=None):
        super().reset(seed)  # the walk's step comes from this episode's seed: instances seeded apart drift apart
        self.aggression = float(np.clip(self.aggression + self.rng.normal(0.0, self.drift), 0.0, 1.0))


class OpponentPool(Opponent):
    """Draws one level per episode with the given weights (a dict name -> weight), seeded by `reset`."""

    def __init__(self, weights=None):
        super().__init__()
        weights = weights or {name: 1.0 for name in LEVELS}
        unknown = [k for k in weights if k not in NAMED]
        if unknown:
            raise ValueError(f"unknown opponent {unknown[0]!r} in OpponentPool weights; known: {sorted(NAMED)}")
        total = float(sum(weights.values()))
        if total <= 0 or any(w < 0 for w in weights.values()):
            raise ValueError("OpponentPool weights must be non-negative with a positive sum")
        self.names = list(weights)
        self.p = np.array([weights[k] for k in self.names], float) / total
        self.members = {k: load_opponent(k) for k in self.names}
        self.current = None

    def reset(self, seed=None):
        super().reset(seed)
        self.current = self.members[self.names[int(self.rng.choice(len(self.names), p=self.p))]]
        self.current.reset(seed)

    def act(self, observation):
        if self.current is None:
            self.reset()
        return self.current.act(observation)


NAMED = {
    **LEVELS,
    "hoarder": Hoarder,
    "switching": SwitchingOpponent,
    "drifting": DriftingOpponent,
    "pool": OpponentPool,
}


def parse_specs(specs) -> list[str]:
    """THE parser of opponent specs: a comma-separated string ("L1,L2,package.module:ClassName,runs/x/snap") or a
    list of specs -> the list of specs, stripped, empty ones dropped, order and repeats kept."""
    if isinstance(specs, str):
        specs = specs.split(",")
    return [s for s in (str(s).strip() for s in specs) if s]


def parse_mix(opponents) -> dict:
    """An opponent mix {spec: weight}: a dict is taken as it is (weights <= 0 dropped); specs as `parse_specs`
    reads them get equal weights."""
    if isinstance(opponents, dict):
        return {str(k): float(v) for k, v in opponents.items() if v > 0}
    return dict.fromkeys(parse_specs(opponents), 1.0)


def load_opponent(spec, folder=None):
    """An opponent instance from a name in NAMED (L0..L4, switching, drifting, pool), an import path
    `package.module:ClassName`, an object that already has `reset` and `act`, or, when `folder` is given, a folder
    that `folder(path)` turns into an opponent (workloads.rl passes its loader of saved policies).

    Every bad spec raises ValueError with a one-line message that says what is accepted."""
    if hasattr(spec, "act") and hasattr(spec, "reset"):
        return spec
    accepted = f"use one of {', '.join(sorted(NAMED))}, 'package.module:ClassName'" + (
        " or a snapshot folder" if folder is not None else ""
    )
    if not isinstance(spec, str):
        raise ValueError(f"opponent spec must be a name or 'package.module:ClassName', got {spec!r}")
    if spec in NAMED:
        return NAMED[spec]()
    if folder is not None and Path(spec).is_dir():
        try:
            return folder(spec)
        except (OSError, ValueError) as exc:
            raise ValueError(f"cannot load opponent {spec!r}: {exc}") from None
    if ":" not in spec:
        raise ValueError(f"unknown opponent {spec!r}; {accepted}")
    module_name, _, class_name = spec.partition(":")
    try:
        opponent = getattr(importlib.import_module(module_name), class_name)()
    except Exception as exc:  # noqa: BLE001 - any failure to import or build it is the user's bad spec
        raise ValueError(f"cannot load opponent {spec!r}: {exc}") from None
    if not (callable(getattr(opponent, "act", None)) and callable(getattr(opponent, "reset", None))):
        raise ValueError(f"opponent {spec!r} lacks reset(seed) and act(observation)")
    return opponent
