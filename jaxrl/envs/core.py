"""The jaxrl environment protocol and the base class that implements time limits and auto-reset.

Every environment is a single, unbatched instance (agents ``jax.vmap`` over ``num_envs``)::

    obs, state = env.reset(key, params)
    obs, state, reward, terminated, truncated, info = env.step(key, state, action, params)

``step`` auto-resets: when the episode ends, ``obs``/``state`` are those of a fresh episode and
``info["final_obs"]`` is the observation the episode ended on (equal to ``obs`` when it did not
end), so a truncated episode can bootstrap from its last state. ``terminated`` means a true
terminal state (no bootstrap); ``truncated`` means the time limit cut the episode
(``params.max_steps_in_episode``); when both fire on one step, termination wins.
"""

from __future__ import annotations

from typing import Any, Protocol, runtime_checkable

import jax
import jax.numpy as jnp
from flax import struct

from jaxrl.envs.spaces import Space

__all__ = ["Environment", "EnvState", "StepResult", "TimeLimitState", "TimeLimitedEnv"]

StepResult = tuple[jax.Array, Any, jax.Array, jax.Array, jax.Array, dict[str, jax.Array]]
EnvState = Any


@runtime_checkable
class Environment(Protocol):
    """What ``jaxrl.envs.make`` returns and every agent consumes."""

    def reset(self, key: jax.Array, params: Any) -> tuple[jax.Array, EnvState]:
        """Start an episode: ``(obs, state)``."""

    def step(self, key: jax.Array, state: EnvState, action: jax.Array, params: Any) -> StepResult:
        """One transition with auto-reset: ``(obs, state, reward, terminated, truncated, info)``."""

    def observation_space(self, params: Any) -> Space:
        """Space of one observation."""

    def action_space(self, params: Any) -> Space:
        """Space of one action."""


class TimeLimitState(struct.PyTreeNode):
    """Inner environment state plus the step count within the current episode."""

    env_state: Any
    time: jax.Array


def select_tree(condition: jax.Array, on_true: Any, on_false: Any) -> Any:
    """Element-wise ``where`` over two pytrees of identical structure (scalar ``condition``)."""
    return jax.tree.map(lambda a, b: jnp.where(condition, a, b), on_true, on_false)


class TimeLimitedEnv:
    """Base class: subclasses implement ``reset_env`` / ``step_env`` without resets or time limits.

    ``step_env(key, state, action, params) -> (obs, state, reward, terminated, info)`` reports
    only true termination. This class counts steps, truncates at ``params.max_steps_in_episode``
    (no limit when ``params`` has no such field), auto-resets and fills ``info["final_obs"]``.
    """

    def reset_env(self, key: jax.Array, params: Any) -> tuple[jax.Array, Any]:
        raise NotImplementedError

    def step_env(self, key: jax.Array, state: Any, action: jax.Array, params: Any):
        raise NotImplementedError

    def observation_space(self, params: Any) -> Space:
        raise NotImplementedError

    def action_space(self, params: Any) -> Space:
        raise NotImplementedError

    def max_truncations(self, params: Any, num_steps: int) -> int | None:
        """The most truncations one env can report in ``num_steps`` consecutive steps.

        Two time-limit cuts are at least ``L = params.max_steps_in_episode`` steps apart, so the
        bound is ``⌈num_steps / L⌉``; 0 without a limit. None where it is not known when tracing
        (a traced or batched limit, or a subclass that overrides ``step``). On-policy agents use
        it to evaluate ``V(final_obs)`` only on the steps where an episode was cut
        (``jaxrl.rollout.bootstrap_values``). A wrapper that adds truncations must override it.
        """
        if type(self).step is not TimeLimitedEnv.step:
            return None
        limit = getattr(params, "max_steps_in_episode", None)
        if limit is None:
            return 0
        if isinstance(limit, jax.core.Tracer) or jnp.ndim(limit) != 0:
            return None
        return -(-num_steps // max(int(limit), 1))

    def reset(self, key: jax.Array, params: Any) -> tuple[jax.Array, TimeLimitState]:
        obs, env_state = self.reset_env(key, params)
        return obs, TimeLimitState(env_state=env_state, time=jnp.zeros((), jnp.int32))

    def step(self, key: jax.Array, state: TimeLimitState, action: jax.Array,
             params: Any) -> StepResult:
        step_key, reset_key = jax.random.split(key)
        final_obs, env_state, reward, terminated, info = self.step_env(
            step_key, state.env_state, action, params)
        terminated = jnp.asarray(terminated, dtype=bool)
        time = state.time + 1
        max_steps = getattr(params, "max_steps_in_episode", None)
        if max_steps is None:
            truncated = jnp.zeros((), bool)
        else:
            truncated = (time >= max_steps) & ~terminated
        done = terminated | truncated
        reset_obs, reset_state = self.reset_env(reset_key, params)
        obs = jnp.where(done, reset_obs, final_obs)
        env_state = select_tree(done, reset_state, env_state)
        time = jnp.where(done, 0, time)
        info = dict(info)
        info["final_obs"] = final_obs
        return (obs, TimeLimitState(env_state=env_state, time=time),
                jnp.asarray(reward, jnp.float32), terminated, truncated, info)
