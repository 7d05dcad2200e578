"""Small pytree-preserving wrappers; each is jit- and vmap-safe and keeps the jaxrl protocol."""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
from flax import struct

from jaxrl.envs.core import StepResult
from jaxrl.envs.spaces import Box, Space

__all__ = ["ClipAction", "EpisodeStatistics", "EpisodeStatisticsState", "RescaleAction",
           "ScaleReward", "Wrapper"]


class Wrapper:
    """Forwards everything to the wrapped environment; subclasses override what they change."""

    def __init__(self, env: Any):
        self.env = env

    def __getattr__(self, name: str) -> Any:
        if name == "env":
            raise AttributeError(name)
        return getattr(self.env, name)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.env!r})"

    def reset(self, key: jax.Array, params: Any):
        return self.env.reset(key, params)

    def step(self, key: jax.Array, state: Any, action: jax.Array, params: Any) -> StepResult:
        return self.env.step(key, state, action, params)

    def observation_space(self, params: Any) -> Space:
        return self.env.observation_space(params)

    def action_space(self, params: Any) -> Space:
        return self.env.action_space(params)


class EpisodeStatisticsState(struct.PyTreeNode):
    """The wrapped env's state, the running return and length of the current episode, and
    those of the last finished one."""

    env_state: Any
    episode_return: jax.Array
    episode_length: jax.Array
    returned_episode_return: jax.Array
    returned_episode_length: jax.Array


class EpisodeStatistics(Wrapper):
    """Tracks undiscounted episode return and length.

    Adds to ``info``: ``episode_done`` (an episode ended on this step, by termination or
    truncation), ``episode_return`` and ``episode_length`` (of the most recently finished
    episode; meaningful where ``episode_done`` or after the first finished episode).
    """

    def reset(self, key: jax.Array, params: Any):
        obs, env_state = self.env.reset(key, params)
        zero_f, zero_i = jnp.zeros((), jnp.float32), jnp.zeros((), jnp.int32)
        return obs, EpisodeStatisticsState(env_state, zero_f, zero_i, zero_f, zero_i)

    def step(self, key: jax.Array, state: EpisodeStatisticsState, action: jax.Array,
             params: Any) -> StepResult:
        obs, env_state, reward, terminated, truncated, info = self.env.step(
            key, state.env_state, action, params)
        done = terminated | truncated
        episode_return = state.episode_return + reward
        episode_length = state.episode_length + 1
        new_state = EpisodeStatisticsState(
            env_state=env_state,
            episode_return=jnp.where(done, 0.0, episode_return),
            episode_length=jnp.where(done, 0, episode_length),
            returned_episode_return=jnp.where(done, episode_return,
                                              state.returned_episode_return),
            returned_episode_length=jnp.where(done, episode_length,
                                              state.returned_episode_length),
        )
        info = dict(info)
        info["episode_done"] = done
        info["episode_return"] = new_state.returned_episode_return
        info["episode_length"] = new_state.returned_episode_length
        return obs, new_state, reward, terminated, truncated, info


def _box(space: Space, wrapper: str) -> Box:
    if not isinstance(space, Box):
        raise TypeError(f"{wrapper} needs a continuous (Box) action space, got {space}")
    return space


class ClipAction(Wrapper):
    """Clips continuous actions to the action space bounds before stepping."""

    def step(self, key, state, action, params) -> StepResult:
        space = _box(self.env.action_space(params), "ClipAction")
        return self.env.step(key, state, jnp.clip(action, space.low, space.high), params)


class RescaleAction(Wrapper):
    """Actions in ``[low, high]`` (default ``[-1, 1]``), mapped affinely to the env's bounds.

    ``a_env = env_low + (a - low) (env_high - env_low) / (high - low)``, after clipping ``a`` to
    ``[low, high]``. The env's bounds must be finite.
    """

    def __init__(self, env: Any, low: float = -1.0, high: float = 1.0):
        super().__init__(env)
        self.low, self.high = low, high

    def action_space(self, params: Any) -> Box:
        space = _box(self.env.action_space(params), "RescaleAction")
        return Box(self.low, self.high, space.shape, space.dtype)

    def step(self, key, state, action, params) -> StepResult:
        space = _box(self.env.action_space(params), "RescaleAction")
        fraction = (jnp.clip(action, self.low, self.high) - self.low) / (self.high - self.low)
        env_action = space.low + fraction * (jnp.asarray(space.high) - space.low)
        return self.env.step(key, state, env_action, params)


class ScaleReward(Wrapper):
    """Multiplies every reward by a constant ``scale`` (episode statistics outside see the scaled
    reward; wrap ``EpisodeStatistics`` inside to log the raw return)."""

    def __init__(self, env: Any, scale: float):
        super().__init__(env)
        self.scale = scale

    def step(self, key, state, action, params) -> StepResult:
        obs, state, reward, terminated, truncated, info = self.env.step(key, state, action, params)
        return obs, state, reward * self.scale, terminated, truncated, info
