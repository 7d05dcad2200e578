"""MAML for policy gradients (Finn et al., 2017), first-order MAML and Reptile.

Course notes §22 "Transfer Learning and Meta-Learning" ("Gradient-based meta RL")::

    θ ← θ + β Σ_i ∇_θ J_i(θ'_i),     θ'_i = θ + α ∇_θ J_i(θ)   (inner_steps such steps)

Each update draws ``meta_batch_size`` tasks (env params of a task family, vmapped like seeds),
samples ``num_envs`` episodes of ``horizon`` steps per inner step and once more after adapting,
and takes one Adam step (rate β = ``learning_rate``) on the mean over tasks of the variant's
direction (``training.meta.meta_gradient``): ``maml`` differentiates the DiCE estimate
through the inner updates (second order, sampling term included; ``losses.meta`` says why DiCE),
``fomaml`` drops the Jacobian of the inner updates, ``reptile`` moves towards the adapted
params. Task families: ``PointNav-v0``, ``KArmedBandit-v0`` and ``Pendulum-v1`` with randomised
mass and length (``training.meta.TASK_SAMPLERS``); Brax envs are not supported.

Metrics: ``pre_adaptation_return`` / ``post_adaptation_return`` (mean episode return of the
tasks' episodes before / after the inner steps) and ``episode_return`` (all episodes). ``act``
is the meta-policy ``π_θ`` before adaptation.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import jax
import jax.numpy as jnp
from flax import struct

from jaxrl.training import meta
from jaxrl.training.agent import Agent, as_typed_key, train_from_agent
from jaxrl.training.config import ACTIVATIONS, BaseConfig, check_config, hyper, static
from jaxrl.training.optim import apply_gradients, flat_adam, grad_norm

__all__ = ["Config", "TrainState", "make_agent", "make_train"]


class Config(BaseConfig):
    """MAML / FOMAML / Reptile with policy-gradient inner steps. Defaults: PointNav-v0 goals."""

    variant: str = static("maml", meta.VARIANTS)
    """maml (second order), fomaml (first order) or reptile"""
    total_timesteps: int = static(2_000_000, ">= 1")
    """env steps in all (each update takes meta_batch_size · num_envs · horizon ·
    (inner_steps + 1))"""
    meta_batch_size: int = static(20, ">= 1")
    """tasks per meta-update"""
    num_envs: int = static(10, ">= 1")
    """episodes per task per inner step (and after adapting); the baseline needs 2"""
    horizon: int = static(20, ">= 1")
    """steps of each episode (at most the env's time limit)"""
    inner_steps: int = static(1, ">= 1")
    """policy-gradient steps of the inner loop"""
    inner_lr: float = hyper(0.01, "> 0")
    """inner step size α (on the normalised DiCE objective)"""
    learning_rate: float = hyper(1e-3, "> 0")
    """outer Adam step size β"""
    max_grad_norm: float = hyper(1.0, "> 0")
    """the meta-gradient's global norm is clipped to this"""
    normalize_advantages: bool = static(True)
    """scale each batch's rewards by the std of its advantages (a reward-scale-free step)"""
    hidden_sizes: tuple[int, ...] = static((64, 64))
    """policy MLP widths"""
    activation: str = static("tanh", ACTIVATIONS)
    """policy MLP activation"""

    @property
    def steps_per_update(self) -> int:
        """Env steps of one meta-update."""
        return self.meta_batch_size * self.num_envs * self.horizon * (self.inner_steps + 1)

    def validate(self) -> None:
        """Two episodes per batch at least (the baseline); one update fits the run."""
        if self.num_envs < 2:
            raise ValueError(f"num_envs must be >= 2 (the leave-one-out baseline needs two "
                             f"episodes per batch), got {self.num_envs}")
        if self.total_timesteps < self.steps_per_update:
            raise ValueError(f"total_timesteps = {self.total_timesteps} is smaller than one "
                             f"update (meta_batch_size · num_envs · horizon · (inner_steps + 1)"
                             f" = {self.steps_per_update}); raise total_timesteps")


class TrainState(struct.PyTreeNode):
    """The meta-policy's params, its optimiser and the key."""

    params: Any
    opt_state: Any
    key: jax.Array


def make_agent(config: Config, env: Any, env_params: Any,
               tasks: Sequence[Any] | None = None) -> Agent:
    """MAML on the task family of ``env`` (``tasks``: train on these env params instead, drawn
    uniformly; they must share the env's shapes)."""
    check_config(config)
    sample_task = (meta.task_sampler(env, env_params) if tasks is None
                   else meta.fixed_tasks(env_params, tasks))
    limit = getattr(env_params, "max_steps_in_episode", None)
    if isinstance(limit, int) and config.horizon > limit:
        raise ValueError(f"horizon = {config.horizon} exceeds the env's time limit "
                         f"max_steps_in_episode = {limit}; lower horizon")
    policy = meta.make_policy(env, env_params, config.hidden_sizes, config.activation)
    optimizer = flat_adam(config.learning_rate, max_grad_norm=config.max_grad_norm)

    def init(key):
        key, init_key = jax.random.split(as_typed_key(key))
        obs = jnp.zeros((1, *env.observation_space(env_params).shape), jnp.float32)
        params = policy.init(init_key, obs)
        return TrainState(params, optimizer.init(params), key)

    def update(state):
        key, task_key, rollout_key = jax.random.split(state.key, 3)
        batch = jax.vmap(sample_task)(jax.random.split(task_key, config.meta_batch_size))
        ascent, returns = meta.meta_gradient(
            policy, state.params, rollout_key, env, batch, variant=config.variant,
            inner_steps=config.inner_steps, inner_lr=config.inner_lr, num_envs=config.num_envs,
            horizon=config.horizon, normalize=config.normalize_advantages)
        descent = jax.tree.map(jnp.negative, ascent)
        params, opt_state = apply_gradients(optimizer, descent, state.opt_state, state.params)
        curve = returns.mean(0)
        metrics = {"pre_adaptation_return": curve[0], "post_adaptation_return": curve[-1],
                   "episode_return": curve.mean(), "grad_norm": grad_norm(ascent)}
        return TrainState(params, opt_state, key), metrics

    def act(state, obs, key, deterministic=False):
        distribution = policy.apply(state.params, obs)
        return distribution.mode() if deterministic else distribution.sample(seed=key)

    steps = config.steps_per_update
    return Agent(init=init, update=update, act=act, num_updates=config.total_timesteps // steps,
                 steps_per_update=steps)


def make_train(config: Config, env: Any, env_params: Any):
    """``train(key) -> (train_state, metrics)``: ``init`` and a scan of ``update``."""
    return train_from_agent(make_agent(config, env, env_params))
