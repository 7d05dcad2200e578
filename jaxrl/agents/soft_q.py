"""Soft Q-learning (Haarnoja et al., 2017) for discrete actions.

Course notes, maximum-entropy RL: the soft Bellman backup replaces ``max`` by a log-sum-exp at
temperature α, ``y = r + γ_m (1 - terminated) · α log Σ_a' exp(Q_target(s', a') / α)``, and the
policy is the Boltzmann distribution ``π(a|s) ∝ exp(Q(s, a) / α)``, which both explores (it is
the behaviour policy; no ε) and is optimal for the entropy-regularised objective. α → 0
recovers Q-learning. Everything else (replay, n-step windows, Huber loss, target network) is
DQN's (``dqn.make_q_agent``).
"""

from __future__ import annotations

from typing import Any

import distrax
import jax
import jax.numpy as jnp

from jaxrl import losses
from jaxrl.agents import dqn
from jaxrl.training.agent import Agent, train_from_agent
from jaxrl.training.config import check_ranges

__all__ = ["Config", "TrainState", "check_config", "make_agent", "make_train", "validate"]

TrainState = dqn.TrainState


class Config(dqn.QConfig):
    """Soft Q-learning hyperparameters: DQN's, with the temperature ``alpha`` instead of ε."""

    alpha: float = 0.05
    """entropy temperature α of the soft backup and the Boltzmann policy"""


def validate(config: Config) -> None:
    """Check the static (shape-deciding) fields; raise ``ValueError`` saying what to change."""
    dqn.validate(config)


def check_config(config: Config) -> None:
    """Range checks of one concrete config's numeric hyperparameters (CLI / ``runner.run``)."""
    validate(config)
    dqn.check_q_ranges(config)
    check_ranges(config, alpha="> 0")


def make_agent(config: Config, env: Any, env_params: Any) -> Agent:
    """Build soft Q-learning's ``init`` / ``update`` / ``act`` (see ``jaxrl.training.agent``)."""
    validate(config)

    def boltzmann(key, q_values, env_steps):
        return distrax.Categorical(logits=q_values / config.alpha).sample(seed=key).astype(
            jnp.int32)

    def soft_next_value(next_q_online: jax.Array, next_q_target: jax.Array) -> jax.Array:
        return losses.soft_value(next_q_target, config.alpha)

    return dqn.make_q_agent(config, env, env_params, "soft_q", soft_next_value, boltzmann)


def make_train(config: Config, env: Any, env_params: Any):
    """``train(key) -> (TrainState, metrics)``: the whole soft Q-learning run as one function."""
    return train_from_agent(make_agent(config, env, env_params))
