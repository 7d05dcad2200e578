"""Proximal Policy Optimisation (Schulman et al., 2017) with the details that make it work.

Course notes, actor-critic chapter: the clipped surrogate
``L^CLIP = E[min(ρ_t A_t, clip(ρ_t, 1-ε, 1+ε) A_t)]`` with ``A_t`` from GAE, a value loss and an
entropy bonus. The rest follows the "37 implementation details" list: orthogonal init
(√2 / 0.01 / 1), Adam with eps 1e-5, linear learning-rate annealing, advantage normalisation per
minibatch, optional value clipping, global gradient-norm clipping, and batch-level
observation / reward normalisation for continuous control. Time-limit truncation bootstraps from
``V(final_obs)``; only termination stops bootstrapping.

With ``--bonus rnd --intrinsic-head`` (course notes §17 "Exploration"; Burda et al., 2019, RND,
§2.3) the critic has a second value head ``V_I`` for the intrinsic reward ``i`` alone, learned
with its own discount ``γ_I`` (``intrinsic_gamma``) and NON-episodic returns: the intrinsic GAE
``A^I_t = δ^I_t + γ_I λ A^I_{t+1}``, ``δ^I_t = i_t + γ_I V_I(s'_t) - V_I(s_t)``, runs through
episode ends (novelty is not reset by the env, so it should not stop the agent from seeking it
across episodes), while the extrinsic GAE keeps the episodic rules. The policy's advantage is
``A^E + β A^I`` (``β`` = ``bonus_scale``); each head regresses onto its own target ``A + V``
(the value loss averages their squared errors).
"""

from __future__ import annotations

from functools import partial
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

from jaxrl import losses
from jaxrl.training import on_policy, proximal
from jaxrl.training.agent import Agent, train_from_agent
from jaxrl.training.config import check_config, hyper, static
from jaxrl.training.extensions import RewardTransform

__all__ = ["Config", "TrainState", "make_agent", "make_train", "policy_change", "ppo_loss",
           "two_head_gae"]


class Config(proximal.ProximalConfig):
    """PPO hyperparameters (CleanRL / PureJaxRL names; fields in training.proximal, with
    --recurrent for a GRU / LSTM policy). Static fields decide shapes.

    Defaults are rl-zoo's classic-control settings (8 envs × 32 steps, 20 full-batch epochs,
    γ 0.98, λ 0.8, lr 1e-3 annealed, no entropy bonus): they solve CartPole-v1 on every seed we
    tried. For continuous control see `benchmarks/learning.py` (normalisation, more envs).
    """

    intrinsic_head: bool = static(False)
    """with --bonus rnd: learn the intrinsic reward with a second value head, its own discount
    (intrinsic_gamma) and non-episodic returns; advantage A_E + bonus_scale · A_I"""
    intrinsic_gamma: float = hyper(0.99, "[0, 1]")
    """γ_I of the intrinsic returns (with intrinsic_head) and of RND's reward normaliser"""

    def validate(self) -> None:
        """``ProximalConfig``'s rules; ``intrinsic_head`` needs ``bonus = "rnd"``, a
        feed-forward policy and no reward normalisation (RND scales its own reward)."""
        super().validate()
        if not self.intrinsic_head:
            return
        if self.bonus != "rnd":
            raise ValueError(f"intrinsic_head learns RND's intrinsic reward: add --bonus rnd "
                             f"(got bonus = {self.bonus!r}) or drop --intrinsic-head")
        if self.recurrent != "none":
            raise ValueError(f"intrinsic_head takes a feed-forward policy: drop --recurrent "
                             f"{self.recurrent} or --intrinsic-head")
        if self.normalize_reward:
            raise ValueError("intrinsic_head: RND already scales the intrinsic reward and the "
                             "extrinsic one is kept as is; drop --normalize-reward")


TrainState = on_policy.TrainState
ppo_loss = proximal.ppo_loss
policy_change = proximal.policy_change


def two_head_gae(batch: on_policy.Batch, gamma: float | jax.Array,
                 intrinsic_gamma: float | jax.Array, gae_lambda: float | jax.Array,
                 intrinsic_coef: float | jax.Array) -> tuple[jax.Array, jax.Array]:
    """``(A^E + c · A^I [T, N], targets [T, N, 2])`` of a batch whose rewards, values and next
    values are ``[T, N, 2]`` (extrinsic, intrinsic): the extrinsic GAE with ``γ (1 -
    terminated)`` and λ-traces cut at episode ends, the intrinsic GAE with ``γ_I`` everywhere
    and no cut (non-episodic; module docstring); targets ``A + V`` per head."""
    shape = batch.terminated.shape
    discounts = jnp.stack([batch.discounts(gamma),
                           jnp.broadcast_to(jnp.asarray(intrinsic_gamma, jnp.float32), shape)],
                          -1)
    dones = jnp.stack([batch.done, jnp.zeros(shape, bool)], -1)
    advantages = losses.gae(batch.reward, batch.value, batch.next_value, discounts, dones,
                            gae_lambda)
    return (advantages[..., 0] + intrinsic_coef * advantages[..., 1],
            advantages + batch.value)


def _two_head_agent(config: Config, parts: on_policy.OnPolicySetup, env_params: Any) -> Agent:
    """``proximal.make_agent`` with ``two_head_gae`` as the estimate."""
    optimizer = on_policy.make_optimizer(config, config.num_updates,
                                         config.update_epochs * config.num_minibatches)

    def estimate(batch: on_policy.Batch) -> tuple[jax.Array, jax.Array]:
        return two_head_gae(batch, config.gamma, config.intrinsic_gamma, config.gae_lambda,
                            config.bonus_scale)

    return on_policy.make_gradient_agent(
        config, parts, env_params, optimizer, partial(ppo_loss, parts.network, config), estimate,
        config.update_epochs, config.num_minibatches,
        update_metrics=partial(policy_change, parts.network, config))


def make_agent(config: Config, env: Any, env_params: Any,
               reward_transform: RewardTransform | None = None,
               network: nn.Module | None = None) -> Agent:
    """Build PPO's ``init`` / ``update`` / ``act`` (see ``jaxrl.training.agent``);
    ``reward_transform`` and a ``network`` (with memory or not) as in ``training.on_policy``;
    ``config.recurrent`` builds a GRU / LSTM actor-critic (``models.recurrent``)."""
    check_config(config)
    parts = on_policy.setup(config, env, env_params, "PPO", network, reward_transform)
    if config.intrinsic_head:
        return _two_head_agent(config, parts, env_params)
    return proximal.make_agent(config, parts, env_params)


def make_train(config: Config, env: Any, env_params: Any,
               reward_transform: RewardTransform | None = None,
               network: nn.Module | None = None):
    """``train(key) -> (TrainState, metrics)``: the whole PPO run as one pure function.

    Every metric has a leading ``[num_updates]`` axis (``[seeds, num_updates]`` under vmap).
    """
    return train_from_agent(make_agent(config, env, env_params, reward_transform, network))
