"""Known reward and termination functions of observations, for model-based agents.

A model-based agent learns ``s' = f(s, a)``; where the env's reward ``r(s, a, s')`` or its
termination rule is a known function of the observations it need not learn it too (course
notes §11, Model-Based RL: PETS plans with the task's reward and a learned transition model).
Each entry mirrors the env's own ``step`` (gymnax's ``step_env``), written on observations:

- ``Pendulum-v1``: ``r = −(θ² + 0.1 θ̇² + 0.001 u²)`` of the state *before* the step, with
  ``θ = atan2(sin θ, cos θ)`` normalised to ``[−π, π]`` and ``u`` clipped to ``max_torque``;
  it never terminates.
- ``CartPole-v1``: terminates when ``|x| > 2.4`` or ``|θ| > 12°`` in the next observation
  (``x_threshold``, ``theta_threshold_radians`` of the env params); reward 1 per step, 0 from
  a state already out of bounds (gymnax's ``1 − prev_terminal``).

``known_functions(env, env_params)`` looks the env up by its id; it returns nothing for an env
under a wrapper that changes actions or rewards (the functions see the actions and rewards of
the bare env).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

__all__ = ["KNOWN_FUNCTIONS", "KnownFunctions", "RewardFn", "TerminationFn", "known_functions"]

RewardFn = Callable[[jax.Array, jax.Array, jax.Array, Any], jax.Array]
"""``reward(obs, action, next_obs, env_params) -> r`` for one transition (a float scalar)."""
TerminationFn = Callable[[jax.Array, jax.Array, jax.Array, Any], jax.Array]
"""``terminated(obs, action, next_obs, env_params) -> bool`` for one transition."""


class KnownFunctions(NamedTuple):
    """What an env's rules give away: its reward and termination (``None``: learn it)."""

    reward: RewardFn | None
    termination: TerminationFn | None


def _pendulum_reward(obs, action, next_obs, env_params):
    theta = jnp.arctan2(obs[1], obs[0])
    torque = jnp.clip(action, -env_params.max_torque, env_params.max_torque)
    return -(theta ** 2 + 0.1 * obs[2] ** 2 + 0.001 * jnp.sum(torque ** 2))


def _never(obs, action, next_obs, env_params):
    return jnp.zeros((), bool)


def _cartpole_out(obs, env_params):
    return ((jnp.abs(obs[0]) > env_params.x_threshold)
            | (jnp.abs(obs[2]) > env_params.theta_threshold_radians))


def _cartpole_reward(obs, action, next_obs, env_params):
    return 1.0 - _cartpole_out(obs, env_params).astype(jnp.float32)


def _cartpole_termination(obs, action, next_obs, env_params):
    return _cartpole_out(next_obs, env_params)


KNOWN_FUNCTIONS: dict[str, KnownFunctions] = {
    "Pendulum-v1": KnownFunctions(_pendulum_reward, _never),
    "CartPole-v1": KnownFunctions(_cartpole_reward, _cartpole_termination),
}
"""Env id → its known reward and termination functions (module docstring)."""


def known_functions(env: Any, env_params: Any) -> KnownFunctions:
    """The known functions of ``env`` (both ``None`` where the env is not in
    ``KNOWN_FUNCTIONS`` or a wrapper changes its actions or rewards)."""
    from jaxrl.envs.wrappers import EpisodeStatistics, Wrapper

    layer = env
    while isinstance(layer, Wrapper):
        if type(layer).step is not Wrapper.step and not isinstance(layer, EpisodeStatistics):
            return KnownFunctions(None, None)
        layer = layer.env
    return KNOWN_FUNCTIONS.get(getattr(layer, "env_id", None), KnownFunctions(None, None))
