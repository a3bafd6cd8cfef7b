"""Static rules of bizsim: sizes per complexity level, economic constants, action and observation layouts.

Everything here is pure data computed once per (n_firms, complexity); the env and the scripted opponents both
read it, so an opponent can decode an observation without touching the env object.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache

import numpy as np

# Sizes that the `complexity` knob grows: products, markets, unit slots (factories), contested resources and price
# levels. The strategic axes grow (products x markets is what campaigns target, slots what the WHICH-unit part of a
# factorised action picks); the price grid stays at three levels (low, middle, high), so price actions stay about
# half of the flat actions instead of swamping them.
COMPLEXITY = {
    1: dict(products=1, markets=2, slots=3, resources=1, price_levels=3),
    2: dict(products=2, markets=4, slots=6, resources=2, price_levels=3),
    3: dict(products=4, markets=8, slots=10, resources=4, price_levels=3),
    4: dict(products=12, markets=20, slots=16, resources=8, price_levels=3),
}

# Verbs (the WHAT of an action).  Which unit / target a flat action uses is picked by rules (see env.py).
NOOP, PRODUCE, BUILD, UPGRADE, RESEARCH, PRICE, MARKETING, WAR, POACH, BID = range(10)
VERB_NAMES = ("noop", "produce", "build", "upgrade", "research", "price", "marketing", "price_war", "poach", "bid")

# Economy (money in units where a firm starts with CASH0).
CASH0 = 100.0
BASE_PRICE = 10.0  # product p sells around BASE_PRICE * (1 + 0.15 p)
UNIT_COST_FRAC = 0.4  # unit cost at tech 0, as a fraction of the base price
TECH_STEP = 0.12  # each research level cuts unit cost by this fraction of the tech-0 cost
MAX_TECH = 3
RESOURCE_DISCOUNT = 0.2  # holding resource r cuts the unit cost of product r % P by this fraction
CAPACITY = 8.0  # units per batch at factory level 0; level k makes CAPACITY * (1 + k)
MAX_LEVEL = 3
BATCH_STEPS = 6  # a factory is busy this many steps after starting a batch
BUILD_COST = 30.0
UPGRADE_COST = 15.0  # times (level + 1)
RESEARCH_COST = 20.0  # times (tech + 1)
BOOK_VALUE = 0.5  # factories count at this fraction of what was invested in them
MARKETING_COST, MARKETING_GAIN = 10.0, 0.4
WAR_COST, WAR_STEPS, WAR_DISCOUNT, WAR_PRESSURE = 10.0, 6, 0.8, 0.96
POACH_COST, POACH_FRACTION = 12.0, 0.25
BRAND_MIN, BRAND_MAX, BRAND_DRIFT = 0.1, 5.0, 0.02
BID_RESERVE, OUTBID = 15.0, 1.3
OVERHEAD_BASE, OVERHEAD_FACTORY = 0.5, 0.3
RESERVE = 20.0  # investments and campaigns need this much cash left after paying (production does not)
HOLDING = 0.005  # per step, fraction of inventory value (at tech-0 unit cost: storage, whatever the goods cost)
SCORE_PARTS = ("cash", "assets", "stock")  # net worth = cash + factories at book value + stock at its own cost
ELASTICITY = 2.0
DEMAND_PER_FIRM = 3.0  # units per step per market (before size and noise), times n_firms
OUTSIDE_OPTION = 0.5  # attractiveness of not buying, times n_firms

# Columns of the money ledger: sources (+), sinks (-), and transfers between firms (sum to zero over firms).
LEDGER = (
    "sales",
    "production",
    "build",
    "upgrade",
    "research",
    "marketing",
    "price_war",
    "poach",
    "bid",
    "bid_transfer",
    "overhead",
    "holding",
)
VERB_LEDGER = {PRODUCE: 1, BUILD: 2, UPGRADE: 3, RESEARCH: 4, MARKETING: 5, WAR: 6, POACH: 7, BID: 8}

REWARD_TERMS = ("outcome", "profit", "net_worth", "production", "builds", "share")
DEFAULT_REWARD_WEIGHTS = {
    "outcome": 1.0,
    "profit": 0.0,
    "net_worth": 0.1,
    "production": 0.0,
    "builds": 0.0,
    "share": 0.0,
}


@dataclass(frozen=True, eq=False)
class Layout:
    """Every size and index table of one (n_firms, complexity) game."""

    n_firms: int
    complexity: int
    P: int
    M: int
    U: int
    R: int
    L: int
    n_actions: int
    # per flat action: verb, product, market, price level, resource (-1 where unused)
    verb: np.ndarray
    prod: np.ndarray
    mkt: np.ndarray
    level: np.ndarray
    res: np.ndarray
    obs_slices: dict  # name -> (start, stop, shape) inside the observation vector
    obs_size: int

    @property
    def n_rivals(self) -> int:
        return self.n_firms - 1

    def describe(self, action: int) -> str:
        """Human-readable name of a flat action, e.g. 'price(p0,m1,L3)'."""
        v = int(self.verb[action])
        parts = []
        if self.prod[action] >= 0:
            parts.append(f"p{self.prod[action]}")
        if self.mkt[action] >= 0:
            parts.append(f"m{self.mkt[action]}")
        if self.level[action] >= 0:
            parts.append(f"L{self.level[action]}")
        if self.res[action] >= 0:
            parts.append(f"r{self.res[action]}")
        return VERB_NAMES[v] + (f"({','.join(parts)})" if parts else "")


PRICE_RANGE = (0.6, 1.4)  # lowest and highest price level, as multipliers of the base price


def price_multipliers(L: int) -> np.ndarray:
    """Price level l sells at base price times this multiplier (middle level = 1.0)."""
    return np.linspace(*PRICE_RANGE, L)


@cache
def layout(n_firms: int, complexity: int) -> Layout:
    c = COMPLEXITY[complexity]
    P, M, U, R, L = c["products"], c["markets"], c["slots"], c["resources"], c["price_levels"]
    rows = [(NOOP, -1, -1, -1, -1)]
    rows += [(PRODUCE, p, -1, -1, -1) for p in range(P)]
    rows += [(BUILD, p, -1, -1, -1) for p in range(P)]
    rows += [(UPGRADE, -1, -1, -1, -1)]
    rows += [(RESEARCH, p, -1, -1, -1) for p in range(P)]
    rows += [(PRICE, p, m, lv, -1) for p in range(P) for m in range(M) for lv in range(L)]
    for verb in (MARKETING, WAR, POACH):
        rows += [(verb, p, m, -1, -1) for p in range(P) for m in range(M)]
    rows += [(BID, -1, -1, -1, r) for r in range(R)]
    table = np.array(rows, dtype=np.int64)

    F, PM = n_firms, P * M
    own = [
        ("cash", (1,)),
        ("net_worth", (1,)),
        ("inventory", (P,)),
        ("slot_built", (U,)),
        ("slot_product", (U,)),
        ("slot_level", (U,)),
        ("slot_busy", (U,)),
        ("tech", (P,)),
        ("unit_cost", (P,)),
        ("price", (PM,)),
        ("brand", (PM,)),
        ("war", (PM,)),
        ("resources", (R,)),
        ("alive", (1,)),
        ("factories", (1,)),
    ]
    rival = [
        ("rival_alive", (F - 1, 1)),
        ("rival_net_worth", (F - 1, 1)),
        ("rival_factories", (F - 1, 1)),
        ("rival_price", (F - 1, PM)),
        ("rival_brand", (F - 1, PM)),
        ("rival_war", (F - 1, PM)),
    ]
    market = [("demand", (PM,)), ("resource_price", (R,)), ("resource_held", (R,)), ("time", (1,))]
    slices, start = {}, 0
    for name, shape in own + market:
        n = int(np.prod(shape))
        slices[name] = (start, start + n, shape)
        start += n
    # rival block is stored rival-major: for each rival all its public fields (see env._observe)
    rival_width = sum(int(np.prod(s[1:])) for _, s in rival)
    offset = 0
    for name, shape in rival:
        w = int(np.prod(shape[1:]))
        slices[name] = ("rival", start, offset, w, shape)
        offset += w
    slices["_rival_block"] = (start, start + (F - 1) * rival_width, (F - 1, rival_width))
    obs_size = start + (F - 1) * rival_width
    return Layout(
        n_firms,
        complexity,
        P,
        M,
        U,
        R,
        L,
        len(table),
        table[:, 0],
        table[:, 1],
        table[:, 2],
        table[:, 3],
        table[:, 4],
        slices,
        obs_size,
    )


def flat_action_counts() -> dict:
    """Flat action count per complexity level (independent of n_firms)."""
    return {c: layout(2, c).n_actions for c in COMPLEXITY}


def action_counts_by_verb(complexity: int) -> dict:
    """Flat actions per verb name at one complexity level (the README's table per axis)."""
    lo = layout(2, complexity)
    return {name: int((lo.verb == v).sum()) for v, name in enumerate(VERB_NAMES)}


@cache
def _sizes_to_layout() -> dict:
    return {(layout(n, c).obs_size, layout(n, c).n_actions): (n, c) for c in COMPLEXITY for n in range(2, 9)}


def infer_layout(observation: dict) -> Layout:
    """The Layout of the game an observation dict (with the flat mask) comes from, from its sizes alone."""
    key = (len(observation["observations"]), len(observation["action_mask"]))
    if key not in _sizes_to_layout():
        raise ValueError(f"observation sizes {key} match no bizsim game with the flat encoding")
    return layout(*_sizes_to_layout()[key])


def decode_observation(vector: np.ndarray, lo: Layout) -> dict:
    """Split an observation vector into named arrays in game units (cash in money, prices as multipliers ...).

    Own and market fields keep the shapes of `lo.obs_slices`; rival fields get a leading rival axis in seat
    order after the observing firm (rival 0 sits next).  Product-market fields are flat over p * M + m.
    """
    vector = np.asarray(vector, dtype=np.float64)
    P, U, F = lo.P, lo.U, lo.n_firms
    scale = {
        "cash": CASH0,
        "net_worth": CASH0,
        "inventory": 20.0,
        "slot_product": P,
        "slot_level": MAX_LEVEL,
        "slot_busy": BATCH_STEPS,
        "tech": MAX_TECH,
        "unit_cost": BASE_PRICE,
        "brand": BRAND_MAX,
        "war": WAR_STEPS,
        "factories": U,
        "demand": DEMAND_PER_FIRM * F,
        "resource_price": CASH0,
        "rival_net_worth": CASH0,
        "rival_factories": U,
        "rival_brand": BRAND_MAX,
        "rival_war": WAR_STEPS,
    }
    start, stop, shape = lo.obs_slices["_rival_block"]
    rivals = vector[start:stop].reshape(shape)
    out = {}
    for name, spec in lo.obs_slices.items():
        if name == "_rival_block":
            continue
        if spec[0] == "rival":
            _, _, offset, width, _ = spec
            part = rivals[:, offset : offset + width]
            out[name] = part[:, 0] if width == 1 else part
        else:
            a, b, _ = spec
            out[name] = vector[a:b]
        out[name] = out[name] * scale.get(name, 1.0)
    for name in ("cash", "net_worth", "time"):
        out[name] = float(out[name][0])
    out["slot_product"] = np.rint(out["slot_product"]).astype(int) - 1  # -1 = empty slot
    out["slot_level"] = np.rint(out["slot_level"]).astype(int)
    out["slot_busy"] = np.rint(out["slot_busy"]).astype(int)
    out["tech"] = np.rint(out["tech"]).astype(int)
    return out


@cache
def action_index(lo: Layout) -> dict:
    """(verb, product, market, level, resource) -> flat action index, -1 for unused parts."""
    return {
        (int(v), int(p), int(m), int(lv), int(r)): i
        for i, (v, p, m, lv, r) in enumerate(zip(lo.verb, lo.prod, lo.mkt, lo.level, lo.res))
    }
