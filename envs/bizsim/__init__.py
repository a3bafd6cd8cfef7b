"""bizsim_v0: a multi-agent business simulation for PettingZoo (pure numpy, no Ray). See README.md."""

from envs.bizsim.env import BizSimEnv, env, parallel_env, raw_env, validate_config
from envs.bizsim.rules import flat_action_counts, layout

__all__ = ["BizSimEnv", "env", "parallel_env", "raw_env", "validate_config", "layout", "flat_action_counts"]
