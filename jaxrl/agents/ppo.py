"""Proximal Policy Optimisation (Schulman et al., 2017) with the details that make it work.

Course notes, actor-critic chapter: the clipped surrogate
``L^CLIP = E[min(ρ_t A_t, clip(ρ_t, 1-ε, 1+ε) A_t)]`` with ``A_t`` from GAE, a value loss and an
entropy bonus. The rest follows the "37 implementation details" list: orthogonal init
(√2 / 0.01 / 1), Adam with eps 1e-5, linear learning-rate annealing, advantage normalisation per
minibatch, optional value clipping, global gradient-norm clipping, and batch-level
observation / reward normalisation for continuous control. Time-limit truncation bootstraps from
``V(final_obs)``; only termination stops bootstrapping.
"""

from __future__ import annotations

from typing import Any

import flax.linen as nn

from jaxrl.training import on_policy, proximal
from jaxrl.training.agent import Agent, train_from_agent
from jaxrl.training.config import check_config
from jaxrl.training.extensions import RewardTransform

__all__ = ["Config", "TrainState", "make_agent", "make_train", "policy_change", "ppo_loss"]


class Config(proximal.ProximalConfig):
    """PPO hyperparameters (CleanRL / PureJaxRL names; fields in training.proximal, with
    --recurrent for a GRU / LSTM policy). Static fields decide shapes.

    Defaults are rl-zoo's classic-control settings (8 envs × 32 steps, 20 full-batch epochs,
    γ 0.98, λ 0.8, lr 1e-3 annealed, no entropy bonus): they solve CartPole-v1 on every seed we
    tried. For continuous control see `benchmarks/learning.py` (normalisation, more envs).
    """


TrainState = on_policy.TrainState
ppo_loss = proximal.ppo_loss
policy_change = proximal.policy_change


def make_agent(config: Config, env: Any, env_params: Any,
               reward_transform: RewardTransform | None = None,
               network: nn.Module | None = None) -> Agent:
    """Build PPO's ``init`` / ``update`` / ``act`` (see ``jaxrl.training.agent``);
    ``reward_transform`` and a ``network`` (with memory or not) as in ``training.on_policy``;
    ``config.recurrent`` builds a GRU / LSTM actor-critic (``models.recurrent``)."""
    check_config(config)
    parts = on_policy.setup(config, env, env_params, "PPO", network, reward_transform)
    return proximal.make_agent(config, parts, env_params)


def make_train(config: Config, env: Any, env_params: Any,
               reward_transform: RewardTransform | None = None,
               network: nn.Module | None = None):
    """``train(key) -> (TrainState, metrics)``: the whole PPO run as one pure function.

    Every metric has a leading ``[num_updates]`` axis (``[seeds, num_updates]`` under vmap).
    """
    return train_from_agent(make_agent(config, env, env_params, reward_transform, network))
