"""Synchronous advantage actor-critic (A2C; Mnih et al., 2016, without the asynchrony).

Course notes (CS 285, §6 "Actor-Critic Algorithms": "From evaluation to actor-critic",
Algorithm 2 "Batch Actor-Critic" and Algorithm 3 "Online Actor-Critic"; "Critics as baselines"
for n-step returns and GAE)::

    ∇J(θ) ≈ 1/N Σ_i ∇ log π(a_i|s_i) Â(s_i, a_i),   V_φ fitted to the targets Â + V_φ(s)

Implemented: the batch actor-critic over ``num_envs`` parallel envs and ``num_steps``-step
windows, with advantages from GAE (``gae_lambda``; λ = 1 is the Monte-Carlo return bootstrapped
at the window's end) or from n-step returns ``Â = G^n_t - V(s_t)`` (``n_steps_return``); one
gradient step per rollout (or ``num_minibatches``) on ``-log π · Â + c_v ½(V - G)² - c_e H``,
RMSprop (SB3's A2C) or Adam, global-norm clipping, linear learning-rate annealing.
``online=True`` is the one-step online actor-critic (Algorithm 3 without replay): every env step
is an update on the TD error ``δ = r + γ (1 - terminated) V(s') - V(s)``, actor loss
``-log π(a|s) · δ``, critic ``½ δ²``. Time-limit truncation bootstraps from ``V(final_obs)``;
only termination stops bootstrapping.
"""

from __future__ import annotations

from typing import Any

import flax.linen as nn
import jax

from jaxrl import losses
from jaxrl.training import on_policy
from jaxrl.training.agent import Agent, train_from_agent
from jaxrl.training.config import check_config, hyper, static
from jaxrl.training.extensions import RewardTransform

__all__ = ["Config", "TrainState", "advantages_and_targets", "make_agent", "make_train"]

TrainState = on_policy.TrainState


class Config(on_policy.GradientConfig):
    """A2C hyperparameters (CleanRL / SB3 names). Static fields decide shapes.

    Defaults are rl-zoo's CartPole A2C (8 envs × 5 steps, RMSprop lr 7e-4, λ = 1, no entropy
    bonus) plus linear lr annealing: they solve CartPole-v1 in 500k steps (return 500 on the 12
    seeds we tried).
    """

    num_steps: int = static(5, ">= 1")
    """steps per environment per rollout (1 with online)"""
    n_steps_return: int = static(0, ">= 0")
    """n of the n-step return targets; 0 uses GAE"""
    online: bool = static(False)
    """one-step online actor-critic on TD(0) errors; needs num_steps = 1"""
    optimizer: str = static("rmsprop", ("rmsprop", "adam"))
    """rmsprop (decay 0.99, eps 1e-5) or adam (eps 1e-5)"""
    learning_rate: float = hyper(7e-4, "> 0")
    gae_lambda: float = hyper(1.0, "[0, 1]")
    """GAE λ (1: Monte-Carlo within the window; unused with n_steps_return or online)"""

    def validate(self) -> None:
        """The rollout rules, and the online actor-critic's one-step TD(0) shape."""
        super().validate()
        if self.online and (self.num_steps != 1 or self.n_steps_return):
            raise ValueError(
                f"online actor-critic updates after every env step on TD(0) errors: set "
                f"num_steps=1 and n_steps_return=0, got num_steps={self.num_steps}, "
                f"n_steps_return={self.n_steps_return}")


def advantages_and_targets(batch: on_policy.Batch, config: Config) -> tuple[jax.Array, jax.Array]:
    """``(Â_t, G_t)``: advantages for the actor and regression targets ``G_t = Â_t + V(s_t)``.

    online: ``Â_t = δ_t = r_t + γ_t V(s_{t+1}) - V(s_t)``; ``n_steps_return = n > 0``:
    ``G_t = G^n_t`` (``losses.n_step_returns``), ``Â_t = G_t - V(s_t)``; otherwise GAE(γ, λ).
    ``γ_t = γ (1 - terminated_t)``; ``V(s_{t+1})`` is ``V(final_obs)`` where an episode ended.
    """
    discounts = batch.discounts(config.gamma)
    if config.online:
        advantages = losses.td_errors(batch.reward, batch.value, batch.next_value, discounts)
        return advantages, advantages + batch.value
    if config.n_steps_return:
        targets = losses.n_step_returns(batch.reward, batch.next_value, discounts, batch.done,
                                        config.n_steps_return)
        return targets - batch.value, targets
    advantages = losses.gae(batch.reward, batch.value, batch.next_value, discounts, batch.done,
                            config.gae_lambda)
    return advantages, advantages + batch.value


def make_agent(config: Config, env: Any, env_params: Any,
               reward_transform: RewardTransform | None = None,
               network: nn.Module | None = None) -> Agent:
    """Build A2C's ``init`` / ``update`` / ``act`` (see ``jaxrl.training.agent``);
    ``reward_transform`` and a ``network`` (with memory or not) as in ``training.on_policy``;
    ``config.recurrent`` builds a GRU / LSTM actor-critic (``models.recurrent``)."""
    check_config(config)
    parts = on_policy.setup(config, env, env_params, "A2C", network, reward_transform)
    optimizer = on_policy.make_optimizer(config, config.num_updates, config.num_minibatches,
                                         config.optimizer)

    def loss_fn(params: Any, samples: on_policy.Samples):
        return on_policy.actor_critic_loss(parts.network, params, samples, config.vf_coef,
                                           config.ent_coef)

    return on_policy.make_gradient_agent(
        config, parts, env_params, optimizer, loss_fn,
        lambda batch: advantages_and_targets(batch, config),
        num_minibatches=config.num_minibatches)


def make_train(config: Config, env: Any, env_params: Any,
               reward_transform: RewardTransform | None = None,
               network: nn.Module | None = None):
    """``train(key) -> (TrainState, metrics)``: the whole A2C run as one pure function.

    Every metric has a leading ``[num_updates]`` axis (``[seeds, num_updates]`` under vmap).
    """
    return train_from_agent(make_agent(config, env, env_params, reward_transform, network))
