"""Analytic policy gradients: backpropagate the return through the differentiable simulator.

Course notes §12 (Model-based RL with policies, "backprop into the policy", Figure 9): with a
known differentiable model ``s_{t+1} = f(s_t, a_t)`` the return of a deterministic policy
``a_t = π_θ(s_t)`` is a differentiable function of ``θ``, and its gradient is exact::

    J(θ) = (1/H) Σ_{t<H} γ^t r(s_t, π_θ(s_t)),    s_{t+1} = f(s_t, π_θ(s_t)),
    ∇_θ J  by backpropagation through the H steps (reverse-mode through the env's step).

As the notes warn, the chained Jacobians of a long rollout explode or vanish (like a vanilla
RNN's), so the rollout is truncated (truncated BPTT): each update differentiates ``horizon``
steps of ``num_envs`` envs in parallel from where the previous update left them (no gradient
flows into that start state), clips the gradient's global norm (``max_grad_norm``) and takes
one Adam step (``optax``). The envs step with auto-reset, so the windows run across episode
boundaries (the gradient does not flow into a fresh episode's start).

The policy is an MLP whose ``tanh`` output is mapped affinely onto the action box (a linear
output where a bound is infinite). The env must be differentiable (an env providing
``"differentiable"``); ``train`` is pure, so ``jax.vmap`` over keys trains seeds in parallel.
"""

from __future__ import annotations

from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
from flax import struct

from jaxrl.backend import ONE_OFF_UNROLL
from jaxrl.envs import EpisodeStatistics
from jaxrl.envs.spaces import Box
from jaxrl.evaluation import evaluate
from jaxrl.models.actor_critic import make_torso
from jaxrl.models.torsos import orthogonal
from jaxrl.rollout import episode_return_metric, reset_envs, rollout
from jaxrl.training.agent import Agent, as_typed_key, train_from_agent
from jaxrl.training.config import ACTIVATIONS, BaseConfig, check_config, hyper, static
from jaxrl.training.optim import apply_gradients, flat_adam, grad_norm

__all__ = ["Config", "DeterministicPolicy", "TrainState", "make_agent", "make_train",
           "rollout_objective"]


class Config(BaseConfig):
    """Analytic policy gradients through the simulator."""

    num_envs: int = static(16, ">= 1")
    """envs rolled out (and differentiated through) in parallel"""
    horizon: int = static(50, ">= 1")
    """steps of each differentiated rollout (truncated BPTT): one gradient step per rollout"""
    total_timesteps: int = static(240_000, ">= 1")
    """env steps in all"""
    learning_rate: float = hyper(1e-2, "> 0")
    """Adam step size"""
    max_grad_norm: float = hyper(1.0, "> 0")
    """the gradient's global norm is clipped to this"""
    gamma: float = hyper(0.99, "[0, 1]")
    """discount of the rewards within one rollout"""
    hidden_sizes: tuple[int, ...] = static((64, 64))
    """policy MLP widths"""
    activation: str = static("tanh", ACTIVATIONS)
    """policy MLP activation"""
    eval_episodes: int = static(0, ">= 0")
    """fresh episodes evaluated after each update (0: none)"""

    def validate(self) -> None:
        """One update must fit in ``total_timesteps``."""
        if self.total_timesteps < self.num_envs * self.horizon:
            raise ValueError(
                f"total_timesteps = {self.total_timesteps} is smaller than one update "
                f"(num_envs * horizon = {self.num_envs * self.horizon}); raise total_timesteps")


class DeterministicPolicy(nn.Module):
    """``a = low + (tanh(W · torso(s) + b) + 1) (high - low) / 2`` (``W · torso(s) + b`` where a
    bound is infinite)."""

    torso: nn.Module
    low: np.ndarray
    high: np.ndarray

    @nn.compact
    def __call__(self, obs: jax.Array) -> jax.Array:
        out = nn.Dense(self.low.shape[-1], kernel_init=orthogonal(0.01))(self.torso(obs))
        finite = np.isfinite(self.low) & np.isfinite(self.high)
        low, high = np.where(finite, self.low, -1.0), np.where(finite, self.high, 1.0)
        squashed = low + (jnp.tanh(out) + 1) * (high - low) / 2
        return jnp.where(finite, squashed, out)


class TrainState(struct.PyTreeNode):
    """The policy and its optimiser, the envs where the next rollout starts, the key and the
    last finished episodes' mean return."""

    params: Any
    opt_state: Any
    env_state: Any
    obs: jax.Array
    key: jax.Array
    last_episode_return: jax.Array


def rollout_objective(network: nn.Module, params: Any, key: jax.Array, env: Any,
                      env_params: Any, env_state: Any, obs: jax.Array, horizon: int,
                      gamma: float | jax.Array) -> tuple[jax.Array, tuple[Any, jax.Array, Any]]:
    """``J(θ) = mean_envs (1/H) Σ_{t<H} γ^t r_t`` of ``horizon`` steps of the batched ``env``
    from ``(env_state, obs)`` under ``a = network.apply(params, obs)``, differentiable in
    ``params``; also ``(env_state, obs, info)`` after the last step."""
    def policy(key, obs):
        return network.apply(params, obs), {}

    env_state, obs, transitions = rollout(key, env, env_params, env_state, obs, policy, horizon)
    discounts = gamma ** jnp.arange(horizon, dtype=transitions.reward.dtype)
    objective = (discounts[:, None] * transitions.reward).sum(0).mean() / horizon
    return objective, (env_state, obs, transitions.info)


def make_agent(config: Config, env: Any, env_params: Any) -> Agent:
    """APG on ``env`` (continuous actions, a differentiable ``step``)."""
    check_config(config)
    space = env.action_space(env_params)
    if not isinstance(space, Box) or len(space.shape) != 1:
        raise TypeError(f"apg needs a vector Box action space, got {space}")
    low, high = (np.broadcast_to(np.asarray(b, np.float32), space.shape)
                 for b in (space.low, space.high))
    network = DeterministicPolicy(make_torso(env.observation_space(env_params),
                                             config.hidden_sizes, config.activation), low, high)
    optimizer = flat_adam(config.learning_rate, max_grad_norm=config.max_grad_norm)
    stats_env = EpisodeStatistics(env)
    eval_steps = int(getattr(env_params, "max_steps_in_episode", 1_000))

    def act(state, obs, key, deterministic=False):
        return network.apply(state.params, obs)

    def loss_fn(params, key, env_state, obs):
        objective, after = rollout_objective(network, params, key, stats_env, env_params,
                                             env_state, obs, config.horizon, config.gamma)
        return -objective, after

    def init(key):
        key, reset_key, init_key = jax.random.split(as_typed_key(key), 3)
        obs, env_state = reset_envs(reset_key, stats_env, env_params, config.num_envs)
        params = network.init(init_key, obs[:1])
        return TrainState(params, optimizer.init(params), env_state, obs, key,
                          jnp.full((), jnp.nan))

    def update(state):
        key, rollout_key, eval_key = jax.random.split(state.key, 3)
        (loss, (env_state, obs, info)), grads = jax.value_and_grad(loss_fn, has_aux=True)(
            state.params, rollout_key, state.env_state, state.obs)
        params, opt_state = apply_gradients(optimizer, grads, state.opt_state, state.params)
        episode_return = episode_return_metric(info, state.last_episode_return)
        metrics = {"episode_return": episode_return, "loss": loss, "grad_norm": grad_norm(grads)}
        if config.eval_episodes > 0:
            metrics["eval_return"] = evaluate(
                eval_key, env, env_params, lambda key, obs: network.apply(params, obs),
                config.eval_episodes, eval_steps, ONE_OFF_UNROLL)
        return TrainState(params, opt_state, env_state, obs, key, episode_return), metrics

    steps = config.num_envs * config.horizon
    return Agent(init=init, update=update, act=act, num_updates=config.total_timesteps // steps,
                 steps_per_update=steps)


def make_train(config: Config, env: Any, env_params: Any):
    """``train(key) -> (train_state, metrics)``: ``init`` and a scan of ``update``."""
    return train_from_agent(make_agent(config, env, env_params))
