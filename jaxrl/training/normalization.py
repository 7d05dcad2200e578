"""The observation normaliser of the dataset-trained agents (BC, the offline family, is_pg)
and of the policies started from their runs (``training.pretrain``): one small module, so the
replay and pre-training code can use it without importing the offline family."""

from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import struct

from jaxrl.datasets import Transitions

__all__ = ["ObsNormalizer"]


class ObsNormalizer(struct.PyTreeNode):
    """``(obs - mean) / std`` with the dataset's statistics (identity when disabled)."""

    mean: jax.Array
    std: jax.Array

    @classmethod
    def from_data(cls, data: Transitions, enabled: bool) -> ObsNormalizer:
        """Per-feature mean and std (floored at 1e-3) of the dataset's observations."""
        if not enabled:
            shape = data.obs.shape[1:]
            return cls(jnp.zeros(shape, jnp.float32), jnp.ones(shape, jnp.float32))
        return cls(data.obs.mean(0), jnp.maximum(data.obs.std(0), 1e-3))

    def __call__(self, obs: jax.Array) -> jax.Array:
        return (obs - self.mean) / self.std
