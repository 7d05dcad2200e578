"""REINFORCE (Williams, 1992): Monte-Carlo policy gradient on the reward-to-go, with a baseline.

Course notes (CS 285, §5 "Policy Gradients": "REINFORCE", "Reducing variance: Causality" and
"Normalization"; §6 "Critics as baselines")::

    ∇J(θ) ≈ 1/N Σ_i Σ_t ∇ log π(a_it|s_it) (Ĝ_it - b(s_it)),   Ĝ_t = Σ_{t'≥t} γ^{t'-t} r_t'

Implemented: the reward-to-go ``Ĝ_t`` (``losses.discounted_returns``), an optional learned value
baseline ``b = V_φ`` fitted by ``½ (V_φ(s_t) - Ĝ_t)²``, optional standardisation of the weights
``Ĝ_t - b(s_t)`` over the batch, an optional entropy bonus, one full-batch Adam step per rollout
(``update_epochs`` > 1 re-uses the batch, which plain REINFORCE does not), global-norm clipping.

Whole episodes: rollouts are fixed ``num_steps`` windows of a continuing env batch, so a window
may end mid-episode and a time limit may cut one. Termination never bootstraps. With the baseline,
the other cuts (truncation, end of the window) bootstrap from ``V(final_obs)``:
``Ĝ_t = r_t + γ_t [(1 - d_t) Ĝ_{t+1} + d_t V(s_{t+1})]``. Without it they bootstrap from 0, so
the returns of the last, unfinished episode of each window are cut short: use ``num_steps`` ≥ the
episode limit (the default 500 = CartPole's) to keep that bias small.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
from flax import struct

from jaxrl import losses
from jaxrl.training import on_policy
from jaxrl.training.agent import Agent, train_from_agent
from jaxrl.training.config import check_ranges

__all__ = ["Config", "TrainState", "advantages_and_targets", "check_config", "make_agent",
           "make_train", "validate"]

TrainState = on_policy.TrainState


class Config(struct.PyTreeNode):
    """REINFORCE hyperparameters (CleanRL names). Static fields decide shapes.

    Defaults (4 envs × 500-step windows, one Adam step of lr 3e-3 annealed per rollout, baseline,
    standardised weights) solve CartPole-v1 in 1M steps: last-5-update return ≈ 490 on 4 seeds.
    """

    total_timesteps: int = struct.field(pytree_node=False, default=1_000_000)
    """environment steps per seed (rounded down to whole rollouts)"""
    num_envs: int = struct.field(pytree_node=False, default=4)
    """parallel environments"""
    num_steps: int = struct.field(pytree_node=False, default=500)
    """steps per environment per rollout; keep it >= the episode limit without a baseline"""
    update_epochs: int = struct.field(pytree_node=False, default=1)
    """full-batch gradient steps per rollout (plain REINFORCE: 1)"""
    use_baseline: bool = struct.field(pytree_node=False, default=True)
    """subtract a learned V(s) from the reward-to-go (and bootstrap cut segments from it)"""
    normalize_returns: bool = struct.field(pytree_node=False, default=True)
    """standardise the policy-gradient weights G - b over each batch"""
    hidden_sizes: tuple[int, ...] = struct.field(pytree_node=False, default=(64, 64))
    """hidden layer widths of the actor and critic MLPs"""
    activation: str = struct.field(pytree_node=False, default="tanh")
    """tanh, relu, swish, gelu or elu"""
    anneal_lr: bool = struct.field(pytree_node=False, default=True)
    """decay the learning rate linearly to 0"""
    normalize_obs: bool = struct.field(pytree_node=False, default=False)
    """normalise observations with batch-level running statistics"""
    normalize_reward: bool = struct.field(pytree_node=False, default=False)
    """scale rewards by the std of the discounted return"""
    learning_rate: float = 3e-3
    """Adam step size (eps 1e-5)"""
    gamma: float = 0.99
    """discount factor"""
    ent_coef: float = 0.0
    """entropy bonus coefficient"""
    vf_coef: float = 0.5
    """baseline (value) loss coefficient; unused without a baseline"""
    max_grad_norm: float = 0.5
    """global gradient-norm clip"""

    @property
    def batch_size(self) -> int:
        return self.num_envs * self.num_steps

    @property
    def num_updates(self) -> int:
        return self.total_timesteps // self.batch_size


def validate(config: Config) -> None:
    """Check the static (shape-deciding) fields; raise ``ValueError`` saying what to change."""
    on_policy.validate_rollout(config)
    if config.update_epochs < 1:
        raise ValueError(f"update_epochs must be >= 1, got {config.update_epochs}")
    if config.normalize_returns and config.batch_size < 2:
        raise ValueError("normalize_returns standardises over the batch, which needs "
                         "num_envs * num_steps >= 2; raise one or turn it off")


def check_config(config: Config) -> None:
    """Range checks of the numeric hyperparameters of one concrete config (CLI / ``runner.run``).

    ``make_agent`` never reads numeric fields in Python (they may be traced in a sweep).
    """
    validate(config)
    check_ranges(config, learning_rate="> 0", gamma="[0, 1]", ent_coef=">= 0", vf_coef=">= 0",
                 max_grad_norm="> 0")


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


def make_agent(config: Config, env: Any, env_params: Any) -> Agent:
    """Build REINFORCE's ``init`` / ``update`` / ``act`` (see ``jaxrl.training.agent``)."""
    validate(config)
    parts = on_policy.setup(config, env, env_params, "REINFORCE")
    optimizer = on_policy.make_optimizer(config, config.num_updates, config.update_epochs)
    # Without a baseline the value head is left untouched: zero gradient, so Adam never moves it.
    vf_coef = config.vf_coef if config.use_baseline else 0.0

    def loss_fn(params: Any, samples: on_policy.Samples):
        return on_policy.actor_critic_loss(parts.network, params, samples, vf_coef,
                                           config.ent_coef)

    return on_policy.make_gradient_agent(
        config, parts, env_params, optimizer, loss_fn,
        lambda batch: advantages_and_targets(batch, config), update_epochs=config.update_epochs)


def make_train(config: Config, env: Any, env_params: Any):
    """``train(key) -> (TrainState, metrics)``: the whole REINFORCE run as one pure function.

    Every metric has a leading ``[num_updates]`` axis (``[seeds, num_updates]`` under vmap).
    """
    return train_from_agent(make_agent(config, env, env_params))
