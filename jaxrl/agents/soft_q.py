"""Soft Q-learning (Haarnoja et al., 2017) for discrete actions.

Course notes, maximum-entropy RL: the soft Bellman backup replaces ``max`` by a log-sum-exp at
temperature α, ``y = r + γ_m (1 - terminated) · α log Σ_a' exp(Q_target(s', a') / α)``, and the
policy is the Boltzmann distribution ``π(a|s) ∝ exp(Q(s, a) / α)``, which both explores (it is
the behaviour policy; no ε) and is optimal for the entropy-regularised objective. α → 0
recovers Q-learning. Everything else (replay, n-step windows, Huber loss, target network) is
shared with DQN (``training.q_learning``).
"""

from __future__ import annotations

from typing import Any

import distrax
import jax
import jax.numpy as jnp

from jaxrl import losses
from jaxrl.training.agent import Agent, train_from_agent
from jaxrl.training.config import check_config, hyper
from jaxrl.training.extensions import RewardTransform
from jaxrl.training.off_policy import ReplayExtensions, TrainState
from jaxrl.training.q_learning import QConfig, make_q_agent

__all__ = ["Config", "TrainState", "make_agent", "make_train"]


class Config(QConfig):
    """Soft Q-learning hyperparameters: DQN's, with the temperature `alpha` instead of ε."""

    alpha: float = hyper(0.05, "> 0")
    """entropy temperature α of the soft backup and the Boltzmann policy"""


def make_agent(config: Config, env: Any, env_params: Any,
               reward_transform: RewardTransform | None = None,
               extensions: ReplayExtensions | None = None) -> Agent:
    """Build soft Q-learning's ``init`` / ``update`` / ``act`` (see ``jaxrl.training.agent``)."""
    check_config(config)

    def boltzmann(key, q_values, env_steps):
        return distrax.Categorical(logits=q_values / config.alpha).sample(seed=key).astype(
            jnp.int32)

    def soft_next_value(next_q_online: jax.Array, next_q_target: jax.Array) -> jax.Array:
        return losses.soft_value(next_q_target, config.alpha)

    return make_q_agent(config, env, env_params, "soft_q", soft_next_value, boltzmann,
                        reward_transform, extensions)


def make_train(config: Config, env: Any, env_params: Any,
               reward_transform: RewardTransform | None = None,
               extensions: ReplayExtensions | None = None):
    """``train(key) -> (TrainState, metrics)``: the whole soft Q-learning run as one function."""
    return train_from_agent(make_agent(config, env, env_params, reward_transform, extensions))
