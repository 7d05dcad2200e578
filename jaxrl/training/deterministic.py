"""Deterministic actor-critic on the replay loop (DDPG, TD3): shared config and update.

A deterministic actor ``μ(s)`` ascends ``Q_1(s, μ(s))`` (the deterministic policy gradient);
``num_critics`` critics regress to ``y = r + γ_m (1 - terminated) · min_i Q_target,i(s', ã')``
with ``ã' = clip(μ_target(s') + clip(ε, -c, c), -1, 1)``, ``ε ~ N(0, σ²)`` (target policy
smoothing, σ = ``policy_noise``, c = ``noise_clip``). The actor and the targets update every
``policy_frequency`` critic updates. Exploration adds ``N(0, exploration_noise²)`` to ``μ(s)``.
Actions live in ``[-1, 1]`` and are rescaled to the env's bounds by ``RescaleAction``.
With ``critic_warmup`` (a config field, default 0) the first that many gradient steps update
the critics alone, so they evaluate the initial (e.g. pretrained) ``μ`` — their targets take
``μ_target(s')`` — before its first update (course notes 004, pre-train & finetune).
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp

from jaxrl import losses
from jaxrl.envs.spaces import Box
from jaxrl.models import CriticEnsemble, make_deterministic_actor
from jaxrl.replay import Sample
from jaxrl.training import off_policy, optim
from jaxrl.training.agent import Agent, Metrics
from jaxrl.training.config import hyper, static
from jaxrl.training.extensions import RewardTransform
from jaxrl.training.off_policy import ReplayExtensions, TrainState

__all__ = ["DeterministicConfig", "make_deterministic_agent"]


class DeterministicConfig(off_policy.OffPolicyConfig):
    """Fields shared by DDPG and TD3 (CleanRL names); defaults sized for Pendulum-v1."""

    total_timesteps: int = static(30_000, ">= 1")
    learning_rate: float = hyper(1e-3, "> 0")
    """Adam step size of the actor and the critic"""
    exploration_noise: float = hyper(0.1, ">= 0")
    """std of the Gaussian exploration noise on actions in [-1, 1]"""


def make_deterministic_agent(config: DeterministicConfig, env: Any, env_params: Any, algo: str,
                             num_critics: int, policy_noise: float | jax.Array,
                             noise_clip: float | jax.Array, policy_frequency: int | jax.Array,
                             reward_transform: RewardTransform | None = None,
                             extensions: ReplayExtensions | None = None) -> Agent:
    """The deterministic-actor agent: TD3 with ``num_critics=2``; DDPG with one critic, zero
    smoothing noise and ``policy_frequency=1``. Targets update with the actor."""
    parts = off_policy.setup(env, env_params, algo.upper(), Box)
    actor = make_deterministic_actor(parts.observation_space, parts.action_space,
                                     config.hidden_sizes, config.activation)
    critic = CriticEnsemble(num_critics, config.hidden_sizes, config.activation)
    optimizer = optim.adam(config.learning_rate)
    warmup = getattr(config, "critic_warmup", 0)

    def init(key, obs):
        actor_key, critic_key = jax.random.split(key)
        action = jnp.zeros((1, *parts.action_space.shape), jnp.float32)
        params = {"actor": actor.init(actor_key, obs[:1]),
                  "critic": critic.init(critic_key, obs[:1], action)}
        return params, params, {name: optimizer.init(p) for name, p in params.items()}

    def noisy(key, action, std, clip=None):
        noise = std * jax.random.normal(key, action.shape)
        if clip is not None:
            noise = jnp.clip(noise, -clip, clip)
        return jnp.clip(action + noise, -1.0, 1.0)

    def explore(key, params, obs, env_steps):
        return noisy(key, actor.apply(params["actor"], obs), config.exploration_noise)

    def critic_loss(critic_params, target_params, sample: Sample, key) -> tuple[jax.Array, Metrics]:
        next_action = noisy(key, actor.apply(target_params["actor"], sample.next_obs),
                            policy_noise, noise_clip)
        next_q = critic.apply(target_params["critic"], sample.next_obs, next_action).min(0)
        targets = losses.bellman_target(sample.reward, sample.discount, next_q)
        q_values = critic.apply(critic_params, sample.obs, sample.action)
        loss = ((q_values - targets) ** 2).mean(-1).sum()
        return loss, {"critic_loss": loss, "q_values": q_values.mean()}

    def actor_loss(actor_params, critic_params, obs) -> jax.Array:
        return -critic.apply(critic_params, obs, actor.apply(actor_params, obs))[0].mean()

    def gradient_step(key, state: TrainState, sample: Sample) -> tuple[TrainState, Metrics]:
        params, opt_state = dict(state.params), dict(state.opt_state)
        critic_grads, metrics = jax.grad(critic_loss, has_aux=True)(
            params["critic"], state.target_params, sample, key)
        params["critic"], opt_state["critic"] = optim.apply_gradients(
            optimizer, critic_grads, opt_state["critic"], params["critic"])

        delayed = optim.every(state.update_count, policy_frequency)
        if warmup:  # critic_warmup: the first gradient steps fit the critics alone
            delayed = jnp.logical_and(delayed, state.update_count > warmup)
        loss, actor_grads = jax.value_and_grad(actor_loss)(params["actor"], params["critic"],
                                                           sample.obs)
        new_actor = optim.apply_gradients(optimizer, actor_grads, opt_state["actor"],
                                          params["actor"])
        params["actor"], opt_state["actor"] = optim.masked(
            delayed, new_actor, (params["actor"], opt_state["actor"]))
        target = optim.polyak_update(params, state.target_params, config.tau,
                                     state.update_count,
                                     policy_frequency * config.target_network_frequency)
        metrics["actor_loss"] = loss
        return state.replace(params=params, target_params=target, opt_state=opt_state), metrics

    def act(params, obs, key, deterministic=False):
        action = actor.apply(params["actor"], obs)
        return action if deterministic else noisy(key, action, config.exploration_noise)

    hooks = off_policy.OffPolicyHooks(init=init, explore=explore, gradient_step=gradient_step,
                                      act=act)
    return off_policy.make_off_policy_agent(config, parts, env_params, hooks, reward_transform,
                                            extensions)
