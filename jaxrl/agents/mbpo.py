"""MBPO: model-based policy optimisation (Janner et al., 2019).

Course notes 004 §11.1.4 (Algorithm 22, "MBA – MVE – MBPO") and §11.1.3 (general Dyna-style
model-based RL): SAC (``training.actor_critic``) on the replay loop, with a probabilistic
bootstrap ensemble (``jaxrl.models.dynamics``) beside it. Each iteration, after collecting
real transitions into the replay buffer ``D_env``:

1. every ``model_frequency`` env steps, refit the ensemble on ``D_env`` (each member its own
   bootstrap resample, Gaussian negative log-likelihood);
2. branch ``rollout_batch_size`` rollouts of ``k`` model steps from states drawn uniformly from
   ``D_env``, acting with the current policy ``a ~ π(·|s)``, each step by a member drawn at
   random, ``s' ~ N(μ_m(s, a), σ²_m(s, a))``; write them to the model buffer ``D_model``
   (a rollout the model terminates restarts from a fresh replay state);
3. SAC's gradient steps on batches mixing ``real_ratio`` of ``D_env`` with ``1 − real_ratio``
   of ``D_model``.

Short branched rollouts keep the model's compounding error small while the many model samples
allow a high update-to-data ratio (``updates_per_step``). The rollout length follows a linear
schedule ``k = clip(k_min + (k_max − k_min)(t − t_0)/(t_1 − t_0), k_min, k_max)`` in env steps.
The reward (and termination) is the env's known function where ``jaxrl.envs.rewards`` has one
(``reward="auto"``), otherwise a model head. With ``real_ratio = 1`` the model's samples would
never be drawn: no model is fitted and the run is SAC's.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp

from jaxrl.envs.spaces import Box
from jaxrl.training import off_policy
from jaxrl.training.actor_critic import SACConfig, sac_hooks
from jaxrl.training.agent import Agent, train_from_agent
from jaxrl.training.config import check_config, hyper, static
from jaxrl.training.extensions import RewardTransform
from jaxrl.training.model_based import (
    LearnedModelFields,
    init_model_phase,
    make_policy_model,
    model_transition,
    refit_model,
)
from jaxrl.training.off_policy import ReplayExtensions, TrainState

__all__ = ["Config", "TrainState", "make_agent", "make_train"]


class Config(SACConfig, LearnedModelFields):
    """MBPO: SAC's fields, the ensemble's, and the branched rollouts'; sized for Pendulum-v1."""

    total_timesteps: int = static(4_000, ">= 1")
    learning_starts: int = static(500, ">= 0")
    log_frequency: int = static(250, ">= 1")
    buffer_size: int = static(20_000, ">= 1")
    batch_size: int = static(128, ">= 1")
    hidden_sizes: tuple[int, ...] = static((64, 64))
    updates_per_step: int = static(10, ">= 1")
    real_ratio: float = static(0.05, "[0, 1]")
    """fraction of each batch drawn from the real replay buffer (the rest from the model's)"""
    rollout_batch_size: int = static(50, ">= 1")
    """replay states branched from per iteration"""
    rollout_length: int = static(1, ">= 1")
    """model steps per branched rollout at the end of the schedule (k_max)"""
    rollout_min_length: int = static(1, ">= 1")
    """model steps per branched rollout at the start of the schedule (k_min)"""
    rollout_schedule_start: float = hyper(0.0, ">= 0")
    """env step t_0 where the rollout length starts to grow"""
    rollout_schedule_end: float = hyper(1.0, "> 0")
    """env step t_1 where it reaches rollout_length"""
    model_buffer_size: int = static(10_000, ">= 1")
    """imagined transitions kept (a multiple of rollout_batch_size)"""

    def validate(self) -> None:
        """The replay family's rules; the schedule's lengths in order; the model buffer holds
        whole rollouts."""
        super().validate()
        if self.rollout_min_length > self.rollout_length:
            raise ValueError(f"rollout_min_length = {self.rollout_min_length} exceeds "
                             f"rollout_length = {self.rollout_length}; lower it")
        if (self.model_buffer_size % self.rollout_batch_size
                or self.model_buffer_size < self.rollout_batch_size):
            raise ValueError(f"model_buffer_size = {self.model_buffer_size} must be a positive "
                             f"multiple of rollout_batch_size = {self.rollout_batch_size}")


def make_agent(config: Config, env: Any, env_params: Any,
               reward_transform: RewardTransform | None = None) -> Agent:
    """MBPO's ``init`` / ``update`` / ``act`` (module docstring). ``TypeError`` for discrete
    actions or non-vector observations."""
    check_config(config)
    parts = off_policy.setup(env, env_params, "mbpo", Box)
    model = make_policy_model(config, env, env_params, parts)
    hooks = sac_hooks(config, parts)
    if config.real_ratio == 1.0:
        return off_policy.make_off_policy_agent(config, parts, env_params, hooks,
                                                reward_transform)
    width = config.rollout_batch_size

    def rollout_length(env_steps: jax.Array) -> jax.Array:
        progress = ((env_steps - config.rollout_schedule_start)
                    / (config.rollout_schedule_end - config.rollout_schedule_start))
        length = config.rollout_min_length + progress * (config.rollout_length
                                                         - config.rollout_min_length)
        return jnp.clip(jnp.floor(length), config.rollout_min_length, config.rollout_length)

    def init(key, obs, parts):
        return init_model_phase(model, key)

    def phase(key, state: TrainState):
        fit_key, start_key, rollout_key = jax.random.split(key, 3)
        extension = refit_model(config, model, state.extension_state, state.buffer, fit_key,
                                config.steps_per_iteration)
        env_steps = state.vector_steps.astype(jnp.float32) * config.num_envs
        length = rollout_length(env_steps)
        starts = state.buffer.sample(start_key, config.rollout_length * width, 1,
                                     config.gamma).obs
        starts = starts.reshape(config.rollout_length, width, -1)
        no_truncation = jnp.zeros((1, width), bool)

        def step(carry, inputs):
            obs, buffer = carry
            t, restart, key = inputs
            policy_key, model_key = jax.random.split(key)
            action = hooks.explore(policy_key, state.params, obs, env_steps)
            next_obs, reward, terminated = model_transition(model, extension.model, model_key,
                                                            obs, action)
            buffer = jax.lax.cond(t < length, lambda buffer: buffer.extend(
                obs[None], action[None], reward[None], terminated[None], no_truncation,
                next_obs[None]), lambda buffer: buffer, buffer)
            return (jnp.where(terminated[:, None], restart, next_obs), buffer), reward.mean()

        steps = jnp.arange(config.rollout_length)
        restarts = jnp.roll(starts, -1, axis=0)
        (_, model_buffer), rewards = jax.lax.scan(
            step, (starts[0], state.model_buffer),
            (steps, restarts, jax.random.split(rollout_key, config.rollout_length)))
        metrics = {**extension.last_fit, "rollout_length": length,
                   "model_reward": rewards[0]}
        return state.replace(extension_state=extension, model_buffer=model_buffer), metrics

    extensions = ReplayExtensions(init=init, phase=phase, model_capacity=config.model_buffer_size,
                                  model_width=width, real_ratio=config.real_ratio)
    return off_policy.make_off_policy_agent(config, parts, env_params, hooks, reward_transform,
                                            extensions)


def make_train(config: Config, env: Any, env_params: Any,
               reward_transform: RewardTransform | None = None):
    """``train(key) -> (TrainState, metrics)``: the whole MBPO run as one pure function."""
    return train_from_agent(make_agent(config, env, env_params, reward_transform))
