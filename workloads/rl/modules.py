"""Masked RLModules for bizsim: PPO with masked logits (flat and factorised), DQN with masked Q-values.

Both take the env's dict observation `{"observations", "action_mask"}`, build their networks on the inner
`observations` box and apply the mask on the way out:

- PPO, flat `Discrete(N)`: invalid logits get FLOAT_MIN (as in RLlib's action-masking example).
- PPO, factorised `MultiDiscrete([WHAT, unit, rival])`: the mask is conditional (which units and rivals are
  valid depends on WHAT; layout [WHAT] + [unit rows x U] + [target rows x T]). The module samples WHAT first,
  then masks the unit and rival logits with that WHAT's rows, and returns actions and their log-probability
  itself; in training the same rows are taken from the WHAT in the batch, so old and new log-probabilities
  agree. A WHAT without a unit (rival) row always uses unit (rival) 0, which the env ignores.
- DQN: Q-values of invalid actions get FLOAT_MIN in the online and target networks, so the greedy action,
  the double-Q argmax and the target's next-state maximum only see valid actions; epsilon exploration draws
  uniformly among the valid actions. RLlib ships masking for PPO only; this DQN module is ours.
"""

from __future__ import annotations

import gymnasium as gym
import torch
from ray.rllib.algorithms.dqn.default_dqn_rl_module import QF_PREDS
from ray.rllib.algorithms.dqn.torch.default_dqn_torch_rl_module import DefaultDQNTorchRLModule
from ray.rllib.algorithms.ppo.torch.default_ppo_torch_rl_module import DefaultPPOTorchRLModule
from ray.rllib.core.columns import Columns
from ray.rllib.utils.torch_utils import FLOAT_MIN


def split_obs(batch):
    """(mask as bool tensor, shallow copy of the batch whose OBS is the inner observation tensor)."""
    obs = batch[Columns.OBS]
    if not isinstance(obs, dict):
        return None, batch
    inner = dict(batch)
    inner[Columns.OBS] = obs["observations"]
    return obs["action_mask"] > 0, inner


def apply_mask(values, mask):
    return values if mask is None else values.masked_fill(~mask, FLOAT_MIN)


class _InnerObsSpace:
    """Networks are built on the `observations` box; the module keeps the full dict space as its own."""

    def __init__(self, *, observation_space=None, **kwargs):
        if not isinstance(observation_space, gym.spaces.Dict) or "action_mask" not in observation_space.spaces:
            raise ValueError("masked modules need a Dict observation space with 'observations' and 'action_mask'")
        self.observation_space_with_mask = observation_space
        super().__init__(observation_space=observation_space["observations"], **kwargs)

    def setup(self):
        super().setup()
        self.observation_space = self.observation_space_with_mask


class MaskedPPOTorchRLModule(_InnerObsSpace, DefaultPPOTorchRLModule):
    """PPO with action masking for the flat and the factorised encoding (see the module docstring).

    For the factorised encoding `model_config["factorised"]` holds `unit_row`, `target_row` (per WHAT, -1 for
    none), `n_unit_rows` and `n_target_rows`, copied from bizsim's action space.
    """

    def setup(self):
        super().setup()
        fact = self.model_config.get("factorised")
        self.factorised = fact is not None
        if self.factorised:
            self.nvec = [int(n) for n in self.action_space.nvec]
            self.register_buffer("unit_row", torch.as_tensor(fact["unit_row"], dtype=torch.long), persistent=False)
            self.register_buffer("target_row", torch.as_tensor(fact["target_row"], dtype=torch.long), persistent=False)
            self.n_unit_rows = int(fact["n_unit_rows"])

    def _masked_logits(self, logits, mask, what=None):
        if mask is None:
            return logits
        if not self.factorised:
            return apply_mask(logits, mask)
        W, U, T = self.nvec
        units = mask[:, W : W + self.n_unit_rows * U].reshape(-1, self.n_unit_rows, U)
        targets = mask[:, W + self.n_unit_rows * U :].reshape(-1, (mask.shape[1] - W - self.n_unit_rows * U) // T, T)
        rows = torch.arange(len(mask), device=mask.device)

        def row_mask(table, row_masks):
            r = table[what]
            picked = row_masks[rows, r.clamp(min=0)]
            only_first = torch.zeros_like(picked)
            only_first[:, 0] = True
            return torch.where((r >= 0)[:, None], picked, only_first)

        full = torch.cat([mask[:, :W], row_mask(self.unit_row, units), row_mask(self.target_row, targets)], 1)
        return apply_mask(logits, full)

    def _act(self, batch, explore):
        mask, inner = split_obs(batch)
        outs = self._forward(inner)
        logits = outs[Columns.ACTION_DIST_INPUTS]
        if not self.factorised or mask is None:
            outs[Columns.ACTION_DIST_INPUTS] = self._masked_logits(logits, mask)
            return outs
        W = self.nvec[0]
        what_logits = apply_mask(logits[:, :W], mask[:, :W])
        what = torch.distributions.Categorical(logits=what_logits).sample() if explore else what_logits.argmax(-1)
        full = self._masked_logits(logits, mask, what)
        dist = self.get_exploration_action_dist_cls().from_logits(full)
        if not explore:
            dist = dist.to_deterministic()
        actions = dist.sample()
        actions[:, 0] = what
        outs[Columns.ACTION_DIST_INPUTS] = full
        outs[Columns.ACTIONS] = actions
        if explore:
            outs[Columns.ACTION_LOGP] = dist.logp(actions)
        return outs

    def _forward_inference(self, batch, **kwargs):
        return self._act(batch, explore=False)

    def _forward_exploration(self, batch, **kwargs):
        return self._act(batch, explore=True)

    def _forward_train(self, batch, **kwargs):
        mask, inner = split_obs(batch)
        outs = super()._forward_train(inner, **kwargs)
        what = batch[Columns.ACTIONS][:, 0].long() if self.factorised else None
        outs[Columns.ACTION_DIST_INPUTS] = self._masked_logits(outs[Columns.ACTION_DIST_INPUTS], mask, what)
        return outs

    def compute_values(self, batch, embeddings=None):
        return super().compute_values(split_obs(batch)[1], embeddings)


class MaskedDQNTorchRLModule(_InnerObsSpace, DefaultDQNTorchRLModule):
    """DQN whose Q-values, target Q-values and exploration respect the action mask (flat encoding only)."""

    def compute_q_values(self, batch):
        mask, inner = split_obs(batch)
        out = super().compute_q_values(inner)
        out[QF_PREDS] = apply_mask(out[QF_PREDS], mask)
        return out

    def forward_target(self, batch):
        mask, inner = split_obs(batch)
        out = super().forward_target(inner)
        out[QF_PREDS] = apply_mask(out[QF_PREDS], mask)
        return out

    def _forward_exploration(self, batch, t=0, **kwargs):
        mask, _ = split_obs(batch)
        q = self.compute_q_values(batch)[QF_PREDS]
        greedy = q.argmax(-1)
        self.epsilon_schedule.update(t)
        epsilon = self.epsilon_schedule.get_current_value()
        allowed = mask.float() if mask is not None else torch.ones_like(q)
        random = torch.multinomial(allowed, 1).squeeze(1)
        explore = torch.rand(q.shape[0], device=q.device) < epsilon
        return {Columns.ACTIONS: torch.where(explore, random, greedy)}
