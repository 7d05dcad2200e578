"""A fixed-capacity replay buffer that lives in the train state: jit-, vmap- and scan-safe.

Storage is time-major per environment, ``[capacity // num_envs, num_envs, ...]``: every
vectorised env step writes one row, so an ``n``-step window of one env is ``n`` consecutive rows
(modulo the capacity). ``next_obs`` is ``info["final_obs"]`` (the real last observation of an
episode, never the auto-reset one) and ``terminated`` alone stops bootstrapping; ``truncated``
only ends an ``n``-step window. Image observations in ``[0, 1]`` or ``[0, 255]`` (MinAtar,
Atari) are stored as ``uint8``, a quarter of float32, so large buffers for many vmapped seeds fit.

Demonstrations (DQfD, Hester et al. 2018; course notes 004, data initialisation) are a second,
full buffer of one env axis that nothing writes to (``demo_buffer``): a partition that is never
overwritten. ``mixed_sample`` draws a fixed share of each batch from it and marks those rows in
``Sample.demo``.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from flax import struct

from jaxrl.envs.spaces import Box, Space
from jaxrl.losses.q import n_step_transition

__all__ = ["ReplayBuffer", "Sample", "buffer_for", "demo_buffer", "mixed_sample",
           "storage_dtype"]


class Sample(struct.PyTreeNode):
    """A batch of (``n``-step) transitions ``[batch_size, ...]``.

    ``reward`` is the discounted ``n``-step return and ``discount`` is ``γ^m (1 - terminated)``,
    so the target is ``reward + discount · V(next_obs)``. ``demo`` is 1.0 on the rows drawn from
    the demonstrations, 0.0 elsewhere (``mixed_sample``); ``None`` (no leaf) without them.
    """

    obs: jax.Array
    action: jax.Array
    reward: jax.Array
    discount: jax.Array
    next_obs: jax.Array
    demo: jax.Array | None = None


def storage_dtype(space: Space) -> jnp.dtype:
    """``uint8`` for image-like Box observations with integer bounds within ``[0, 255]``,
    float32 otherwise."""
    if isinstance(space, Box) and len(space.shape) == 3:
        low, high = np.asarray(space.low), np.asarray(space.high)
        if low.min() >= 0 and high.max() <= 255 and np.all(np.mod(high, 1) == 0):
            return jnp.uint8
    return jnp.float32


class ReplayBuffer(struct.PyTreeNode):
    """Circular buffer of ``[rows, num_envs, ...]`` arrays; ``pointer`` is the next row to write,
    ``size`` the number of rows written so far (at most ``rows``)."""

    obs: jax.Array
    action: jax.Array
    reward: jax.Array
    terminated: jax.Array
    truncated: jax.Array
    next_obs: jax.Array
    pointer: jax.Array
    size: jax.Array

    @classmethod
    def create(cls, capacity: int, num_envs: int, obs_shape: tuple[int, ...],
               action_shape: tuple[int, ...], action_dtype: jnp.dtype,
               obs_dtype: jnp.dtype = jnp.float32) -> ReplayBuffer:
        """An empty buffer of ``capacity`` transitions (a multiple of ``num_envs``)."""
        if capacity % num_envs:
            raise ValueError(f"buffer_size = {capacity} must be a multiple of num_envs = "
                             f"{num_envs}; change one of them")
        rows = capacity // num_envs

        def zeros(shape, dtype):
            return jnp.zeros((rows, num_envs, *shape), dtype)

        return cls(obs=zeros(obs_shape, obs_dtype), action=zeros(action_shape, action_dtype),
                   reward=zeros((), jnp.float32), terminated=zeros((), bool),
                   truncated=zeros((), bool), next_obs=zeros(obs_shape, obs_dtype),
                   pointer=jnp.zeros((), jnp.int32), size=jnp.zeros((), jnp.int32))

    @property
    def rows(self) -> int:
        return self.reward.shape[0]

    def extend(self, obs: jax.Array, action: jax.Array, reward: jax.Array,
               terminated: jax.Array, truncated: jax.Array, next_obs: jax.Array) -> ReplayBuffer:
        """Write ``T`` consecutive vectorised steps (leaves ``[T, num_envs, ...]``, ``T <= rows``)
        over the oldest rows."""
        steps = reward.shape[0]
        if steps > self.rows:
            raise ValueError(f"cannot write {steps} steps into a buffer of {self.rows} rows per "
                             "env; raise buffer_size or lower train_frequency")
        rows = (self.pointer + jnp.arange(steps)) % self.rows
        new = {"obs": obs, "action": action, "reward": reward, "terminated": terminated,
               "truncated": truncated, "next_obs": next_obs}
        written = {name: getattr(self, name).at[rows].set(value.astype(getattr(self, name).dtype))
                   for name, value in new.items()}
        return self.replace(**written, pointer=(self.pointer + steps) % self.rows,
                            size=jnp.minimum(self.size + steps, self.rows))

    def sample(self, key: jax.Array, batch_size: int, n_step: int = 1,
               gamma: float | jax.Array = 0.99) -> Sample:
        """``batch_size`` uniform (``n``-step) transitions; needs ``size >= n_step`` rows.

        A window starts at any written row whose ``n_step - 1`` successors are written too; it
        stops early where an episode ended (``losses.n_step_transition``).
        """
        num_envs = self.reward.shape[1]
        starts = jnp.maximum(self.size - n_step + 1, 1)
        # One draw of 32-bit words for both indices (one threefry call: cheaper on CPU than a
        # split and two randint calls). ``bits % n`` favours small values by < n / 2³², far
        # below sampling noise for any buffer that fits in memory.
        bits = jax.random.bits(key, (2, batch_size))
        offset = (bits[0] % starts.astype(jnp.uint32)).astype(jnp.int32)
        oldest = jnp.where(self.size < self.rows, 0, self.pointer)
        rows = (oldest + offset[None] + jnp.arange(n_step)[:, None]) % self.rows  # [n, B]
        envs = (bits[1] % jnp.uint32(num_envs)).astype(jnp.int32)
        reward, discount, last = n_step_transition(
            self.reward[rows, envs], self.terminated[rows, envs], self.truncated[rows, envs],
            gamma)
        last_rows = jnp.take_along_axis(rows, last[None], 0)[0]
        return Sample(obs=self.obs[rows[0], envs].astype(jnp.float32),
                      action=self.action[rows[0], envs], reward=reward, discount=discount,
                      next_obs=self.next_obs[last_rows, envs].astype(jnp.float32))


def buffer_for(capacity: int, num_envs: int, observation_space: Space, action_space: Space,
               action_dtype: Any) -> ReplayBuffer:
    """An empty buffer shaped for ``observation_space`` / ``action_space``."""
    return ReplayBuffer.create(capacity, num_envs, tuple(observation_space.shape),
                               tuple(action_space.shape), action_dtype,
                               storage_dtype(observation_space))


def demo_buffer(obs: jax.Array, action: jax.Array, reward: jax.Array, terminated: jax.Array,
                truncated: jax.Array, next_obs: jax.Array) -> ReplayBuffer:
    """A full buffer of one env axis holding ``N`` demonstration transitions in file order.

    Nothing extends it, so no transition is ever overwritten; an ``n``-step window runs along
    the file and stops at ``terminated | truncated`` (dataset files end every env's segment so).
    """
    def column(x, dtype):
        return jnp.asarray(x, dtype)[:, None]

    rows = reward.shape[0]
    return ReplayBuffer(obs=column(obs, jnp.float32), action=column(action, action.dtype),
                        reward=column(reward, jnp.float32),
                        terminated=column(terminated, bool), truncated=column(truncated, bool),
                        next_obs=column(next_obs, jnp.float32),
                        pointer=jnp.zeros((), jnp.int32), size=jnp.asarray(rows, jnp.int32))


def mixed_sample(key: jax.Array, buffer: ReplayBuffer, demos: ReplayBuffer, batch_size: int,
                 demo_batch: int, n_step: int = 1, gamma: float | jax.Array = 0.99) -> Sample:
    """``batch_size - demo_batch`` samples of ``buffer``, then ``demo_batch`` of ``demos``
    (each ``n``-step), with ``demo`` marking the latter. With ``demo_batch = 0`` the draw is
    ``buffer.sample(key, ...)``'s, key included."""
    if not 0 <= demo_batch <= batch_size:
        raise ValueError(f"demo_batch = {demo_batch} must lie in [0, batch_size = {batch_size}]")
    mask = (jnp.arange(batch_size) >= batch_size - demo_batch).astype(jnp.float32)
    if demo_batch == 0:
        return buffer.sample(key, batch_size, n_step, gamma).replace(demo=mask)
    if demo_batch == batch_size:
        return demos.sample(key, batch_size, n_step, gamma).replace(demo=mask)
    key, demo_key = jax.random.split(key)
    online = buffer.sample(key, batch_size - demo_batch, n_step, gamma)
    demonstrated = demos.sample(demo_key, demo_batch, n_step, gamma)
    return jax.tree.map(lambda a, b: jnp.concatenate([a, b]), online,
                        demonstrated).replace(demo=mask)
