"""Batch-level running statistics for observation and reward normalisation.

The statistics are shared by the whole env batch and live in the agent's train state (not in
each env's state), so every env sees the same normalisation and checkpoints carry it.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import struct

__all__ = ["RunningMeanStd", "discounted_return_trace"]


class RunningMeanStd(struct.PyTreeNode):
    """Running mean and variance (Chan et al. parallel update) over a stream of batches."""

    mean: jax.Array
    var: jax.Array
    count: jax.Array

    @classmethod
    def create(cls, shape: tuple[int, ...] = ()) -> RunningMeanStd:
        """Fresh statistics: mean 0, variance 1, a tiny count (as gym's ``RunningMeanStd``)."""
        return cls(jnp.zeros(shape, jnp.float32), jnp.ones(shape, jnp.float32),
                   jnp.asarray(1e-4, jnp.float32))

    def update(self, batch: jax.Array) -> RunningMeanStd:
        """Fold in ``batch`` of shape ``[..., *shape]`` (all leading axes are samples)."""
        batch = batch.reshape((-1, *self.mean.shape)).astype(jnp.float32)
        batch_mean, batch_var = batch.mean(0), batch.var(0)
        batch_count = jnp.asarray(batch.shape[0], jnp.float32)
        delta = batch_mean - self.mean
        total = self.count + batch_count
        mean = self.mean + delta * batch_count / total
        m2 = (self.var * self.count + batch_var * batch_count
              + delta**2 * self.count * batch_count / total)
        return RunningMeanStd(mean, m2 / total, total)

    def normalize(self, x: jax.Array, clip: float = 10.0, epsilon: float = 1e-8) -> jax.Array:
        """``clip((x - mean) / sqrt(var + ε), -clip, clip)``."""
        return jnp.clip((x - self.mean) / jnp.sqrt(self.var + epsilon), -clip, clip)

    def scale(self, x: jax.Array, epsilon: float = 1e-8) -> jax.Array:
        """``x / sqrt(var + ε)`` without centring (used for rewards)."""
        return x / jnp.sqrt(self.var + epsilon)


def discounted_return_trace(rewards: jax.Array, dones: jax.Array, gamma: jax.Array | float,
                            initial: jax.Array) -> tuple[jax.Array, jax.Array]:
    """Forward discounted sums ``R_t = γ (1 - d_{t-1}) R_{t-1} + r_t`` over time-major arrays.

    This is the quantity whose variance scales rewards in reward normalisation (as gym's
    ``NormalizeReward``). Returns ``(R [T, ...], R_T to carry into the next rollout)``; the
    carried value is already reset where the last step ended an episode.
    """

    def step(carry, inputs):
        reward, done = inputs
        value = carry * gamma + reward
        return jnp.where(done, 0.0, value), value

    final, trace = jax.lax.scan(step, initial, (rewards, dones))
    return trace, final
