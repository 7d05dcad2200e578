"""Adapter from gymnax environments to the jaxrl protocol, with termination and truncation apart."""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp

from jaxrl.envs.core import TimeLimitedEnv
from jaxrl.envs.spaces import Space, from_gymnax

__all__ = ["GymnaxEnv"]

# gymnax folds its time limit into `done`; asking `is_terminal` with this limit instead
# reports true termination only, while observations still see the real params.
_NO_TIME_LIMIT = 2**30


class GymnaxEnv(TimeLimitedEnv):
    """Wraps a gymnax environment: its ``done`` is split into ``terminated`` and ``truncated``.

    gymnax reports ``done = terminal | (time >= max_steps_in_episode)``. This adapter asks the
    environment's own ``is_terminal`` with the time limit lifted, so a time-limit end is
    ``truncated`` (bootstrap) and a true terminal state is ``terminated`` (no bootstrap).
    """

    def __init__(self, gymnax_env: Any, env_id: str):
        # gymnax detaches (stop_gradient) each transition unless asked not to; where an env
        # supports it, keep the gradients: the forward pass is the same, and planners and
        # analytic policy gradients can differentiate through step (registry: "differentiable").
        if getattr(gymnax_env, "supports_transition_gradients", False):
            gymnax_env = gymnax_env.with_transition_gradients()
        self.gymnax_env = gymnax_env
        self.env_id = env_id

    def __repr__(self) -> str:
        return f"GymnaxEnv({self.env_id!r})"

    def reset_env(self, key: jax.Array, params: Any):
        return self.gymnax_env.reset_env(key, params)

    def step_env(self, key: jax.Array, state: Any, action: jax.Array, params: Any):
        obs, next_state, reward, _, _ = self.gymnax_env.step_env(key, state, action, params)
        # gymnax's stop_gradient also turns Python scalars (an eager step's counter) into
        # arrays; keep that where the gradients are on, so the state has the same types.
        next_state = jax.tree.map(jnp.asarray, next_state)
        if hasattr(params, "max_steps_in_episode"):
            unlimited = params.replace(max_steps_in_episode=_NO_TIME_LIMIT)
        else:
            unlimited = params
        terminated = jnp.asarray(self.gymnax_env.is_terminal(next_state, unlimited), bool)
        return obs, next_state, reward, terminated, {}

    # gymnax builds some bounds with jnp ops: evaluate them eagerly, so a space asked for inside
    # a trace (a vmapped sweep building its agent) stays concrete.
    def observation_space(self, params: Any) -> Space:
        with jax.ensure_compile_time_eval():
            return from_gymnax(self.gymnax_env.observation_space(params))

    def action_space(self, params: Any) -> Space:
        with jax.ensure_compile_time_eval():
            return from_gymnax(self.gymnax_env.action_space(params))
