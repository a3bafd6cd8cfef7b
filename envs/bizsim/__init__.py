"""bizsim_v0: a multi-agent business simulation for PettingZoo (pure numpy, no Ray). See README.md."""

from envs.bizsim.env import BizSimEnv, MaskedMultiDiscrete, env, parallel_env, raw_env, validate_config
from envs.bizsim.opponents import LEVELS, NAMED, OpponentPool, load_opponent, parse_mix, parse_specs
from envs.bizsim.play import (
    head_to_head,
    ladder,
    ladder_table,
    play_episode,
    play_step,
    player_action,
    reset_players,
    seat_share,
    wilson,
    win_share,
)
from envs.bizsim.rules import decode_observation, flat_action_counts, infer_layout, layout
from envs.bizsim.single_agent import SingleAgentBizSim

__all__ = [
    "BizSimEnv",
    "MaskedMultiDiscrete",
    "env",
    "parallel_env",
    "raw_env",
    "validate_config",
    "LEVELS",
    "NAMED",
    "OpponentPool",
    "load_opponent",
    "parse_mix",
    "parse_specs",
    "head_to_head",
    "ladder",
    "ladder_table",
    "play_episode",
    "play_step",
    "player_action",
    "reset_players",
    "seat_share",
    "wilson",
    "win_share",
    "decode_observation",
    "flat_action_counts",
    "infer_layout",
    "layout",
    "SingleAgentBizSim",
]
