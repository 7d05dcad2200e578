"""Vanilla policy gradient with GAE advantages: the example of docs/writing-an-algorithm.md.

Course notes, §6 "Actor-Critic": ``∇J(θ) ≈ E[∇ log π(a|s) Â]`` with ``Â`` from GAE(γ, λ) and a
value function fitted to ``Â + V(s)``; one full-batch gradient step per rollout.
"""

from __future__ import annotations

from typing import Any

import jax

from jaxrl import losses
from jaxrl.training import on_policy
from jaxrl.training.agent import Agent, train_from_agent
from jaxrl.training.config import check_config, hyper, static


class Config(on_policy.GradientConfig):
    """GAE policy gradient: the on-policy family's fields plus λ."""

    num_steps: int = static(64, ">= 1")
    gae_lambda: float = hyper(0.95, "[0, 1]")
    """GAE λ (0: one-step TD advantages, 1: Monte-Carlo)"""


def make_agent(config: Config, env: Any, env_params: Any) -> Agent:
    """The family loop does the rollout, the epochs and the reporting; this adds the estimate
    and the loss."""
    check_config(config)
    parts = on_policy.setup(config, env, env_params, "gae_pg")
    optimizer = on_policy.make_optimizer(config, config.num_updates, 1)

    def estimate(batch: on_policy.Batch) -> tuple[jax.Array, jax.Array]:
        advantages = losses.gae(batch.reward, batch.value, batch.next_value,
                                batch.discounts(config.gamma), batch.done, config.gae_lambda)
        return advantages, advantages + batch.value

    def loss_fn(params: Any, samples: on_policy.Samples):
        return on_policy.actor_critic_loss(parts.network, params, samples, config.vf_coef,
                                           config.ent_coef)

    return on_policy.make_gradient_agent(config, parts, env_params, optimizer, loss_fn, estimate)


def make_train(config: Config, env: Any, env_params: Any):
    """``train(key) -> (train_state, metrics)``: the whole run as one pure function."""
    return train_from_agent(make_agent(config, env, env_params))
