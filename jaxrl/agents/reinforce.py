"""REINFORCE (Williams, 1992): Monte-Carlo policy gradient on the reward-to-go, with a baseline.

Course notes (CS 285, §5 "Policy Gradients": "REINFORCE", "Reducing variance: Causality" and
"Normalization"; §6 "Critics as baselines")::

    ∇J(θ) ≈ 1/N Σ_i Σ_t ∇ log π(a_it|s_it) (Ĝ_it - b(s_it)),   Ĝ_t = Σ_{t'≥t} γ^{t'-t} r_t'

Implemented: the reward-to-go ``Ĝ_t`` (``losses.discounted_returns``), an optional learned value
baseline ``b = V_φ`` fitted by ``½ (V_φ(s_t) - Ĝ_t)²``, optional standardisation of the weights
``Ĝ_t - b(s_t)`` over the batch, an optional entropy bonus, one full-batch Adam step per rollout
(``update_epochs`` > 1 re-uses the batch, which plain REINFORCE does not; ``num_minibatches`` > 1
splits each pass), global-norm clipping.

Whole episodes: rollouts are fixed ``num_steps`` windows of a continuing env batch, so a window
may end mid-episode and a time limit may cut one. Termination never bootstraps. With the baseline,
the other cuts (truncation, end of the window) bootstrap from ``V(final_obs)``:
``Ĝ_t = r_t + γ_t [(1 - d_t) Ĝ_{t+1} + d_t V(s_{t+1})]``. Without it they bootstrap from 0, so
the returns of the last, unfinished episode of each window are cut short: use ``num_steps`` ≥ the
episode limit (the default 500 = CartPole's) to keep that bias small.
"""

from __future__ import annotations

from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

from jaxrl import losses
from jaxrl.training import on_policy
from jaxrl.training.agent import Agent, train_from_agent
from jaxrl.training.config import check_config, hyper, static
from jaxrl.training.extensions import RewardTransform

__all__ = ["Config", "TrainState", "advantages_and_targets", "make_agent", "make_train"]

TrainState = on_policy.TrainState


class Config(on_policy.GradientConfig):
    """REINFORCE hyperparameters (CleanRL names). Static fields decide shapes.

    Defaults (4 envs × 500-step windows, one Adam step of lr 3e-3 annealed per rollout, baseline,
    standardised weights) solve CartPole-v1 in 1M steps. `vf_coef` weighs the baseline's
    loss (unused without a baseline).
    """

    total_timesteps: int = static(1_000_000, ">= 1")
    num_envs: int = static(4, ">= 1")
    num_steps: int = static(500, ">= 1")
    """steps per environment per rollout; keep it >= the episode limit without a baseline"""
    update_epochs: int = static(1, ">= 1")
    """full-batch gradient steps per rollout (plain REINFORCE: 1)"""
    use_baseline: bool = static(True)
    """subtract a learned V(s) from the reward-to-go (and bootstrap cut segments from it)"""
    normalize_returns: bool = static(True)
    """standardise the policy-gradient weights G - b over each batch"""
    learning_rate: float = hyper(3e-3, "> 0")
    """Adam step size (eps 1e-5)"""

    def validate(self) -> None:
        """The rollout rules; standardised weights need a batch of at least 2."""
        super().validate()
        if self.normalize_returns and self.batch_size < 2:
            raise ValueError("normalize_returns standardises over the batch, which needs "
                             "num_envs * num_steps >= 2; raise one or turn it off")


def advantages_and_targets(batch: on_policy.Batch, config: Config) -> tuple[jax.Array, jax.Array]:
    """``(Ĝ_t - b(s_t), Ĝ_t)``: policy-gradient weights and the baseline's regression targets.

    ``Ĝ_t = r_t + γ_t [(1 - d_t) Ĝ_{t+1} + d_t v_{t+1}]`` with ``γ_t = γ (1 - terminated_t)``,
    ``d_t = done_t`` (and the window's last step), ``v_{t+1} = V(final_obs)`` with the baseline,
    else 0; ``b = V(s_t)`` or 0. With ``normalize_returns`` the weights are standardised.
    """
    if config.use_baseline:
        next_values, baseline = batch.next_value, batch.value
    else:
        next_values, baseline = jnp.zeros_like(batch.next_value), 0.0
    returns = losses.discounted_returns(batch.reward, batch.discounts(config.gamma), batch.done,
                                        next_values)
    advantages = returns - baseline
    if config.normalize_returns:
        advantages = (advantages - advantages.mean()) / (advantages.std() + 1e-8)
    return advantages, returns


def make_agent(config: Config, env: Any, env_params: Any,
               reward_transform: RewardTransform | None = None,
               network: nn.Module | None = None) -> Agent:
    """Build REINFORCE's ``init`` / ``update`` / ``act`` (see ``jaxrl.training.agent``);
    ``reward_transform`` and a ``network`` (with memory or not) as in ``training.on_policy``."""
    check_config(config)
    parts = on_policy.setup(config, env, env_params, "REINFORCE", network, reward_transform)
    optimizer = on_policy.make_optimizer(config, config.num_updates,
                                         config.update_epochs * config.num_minibatches)
    # Without a baseline the value head is left untouched: zero gradient, so Adam never moves it.
    vf_coef = config.vf_coef if config.use_baseline else 0.0

    def loss_fn(params: Any, samples: on_policy.Samples):
        return on_policy.actor_critic_loss(parts.network, params, samples, vf_coef,
                                           config.ent_coef)

    return on_policy.make_gradient_agent(
        config, parts, env_params, optimizer, loss_fn,
        lambda batch: advantages_and_targets(batch, config), config.update_epochs,
        config.num_minibatches)


def make_train(config: Config, env: Any, env_params: Any,
               reward_transform: RewardTransform | None = None,
               network: nn.Module | None = None):
    """``train(key) -> (TrainState, metrics)``: the whole REINFORCE run as one pure function.

    Every metric has a leading ``[num_updates]`` axis (``[seeds, num_updates]`` under vmap).
    """
    return train_from_agent(make_agent(config, env, env_params, reward_transform, network))
