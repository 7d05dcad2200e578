"""Action and observation spaces in gymnax style: ``Discrete(n)`` and ``Box(low, high, shape)``."""

from __future__ import annotations

from dataclasses import dataclass, field

import jax
import jax.numpy as jnp
import numpy as np

__all__ = ["Box", "Discrete", "Space"]


@dataclass(frozen=True)
class Discrete:
    """Integer actions ``{0, …, n-1}``."""

    n: int
    shape: tuple[int, ...] = ()
    dtype: jnp.dtype = jnp.int32

    def sample(self, key: jax.Array) -> jax.Array:
        """Uniform random element."""
        return jax.random.randint(key, self.shape, 0, self.n, dtype=self.dtype)

    def contains(self, x: jax.Array) -> jax.Array:
        """Whether ``x`` is a valid element."""
        return jnp.logical_and(x >= 0, x < self.n).all()


@dataclass(frozen=True)
class Box:
    """Real vectors with element-wise bounds ``low <= x <= high`` (bounds may be infinite)."""

    low: np.ndarray | float
    high: np.ndarray | float
    shape: tuple[int, ...]
    dtype: jnp.dtype = field(default=jnp.float32)

    def sample(self, key: jax.Array) -> jax.Array:
        """Uniform sample where both bounds are finite, standard normal elsewhere."""
        low = jnp.broadcast_to(jnp.asarray(self.low, jnp.float32), self.shape)
        high = jnp.broadcast_to(jnp.asarray(self.high, jnp.float32), self.shape)
        finite = jnp.isfinite(low) & jnp.isfinite(high)
        uniform_key, normal_key = jax.random.split(key)
        uniform = jax.random.uniform(uniform_key, self.shape,
                                     minval=jnp.where(finite, low, 0.0),
                                     maxval=jnp.where(finite, high, 1.0))
        normal = jax.random.normal(normal_key, self.shape)
        return jnp.where(finite, uniform, normal).astype(self.dtype)

    def contains(self, x: jax.Array) -> jax.Array:
        """Whether ``x`` lies inside the bounds."""
        return jnp.logical_and(x >= self.low, x <= self.high).all()


Space = Discrete | Box


def _bound(value):
    return value if isinstance(value, jax.core.Tracer) else np.asarray(value)


def from_gymnax(space) -> Space:
    """Convert a gymnax space (Discrete or Box) to a jaxrl space."""
    name = type(space).__name__
    if name == "Discrete":
        return Discrete(int(space.n))
    if name == "Box":
        # Bounds may be traced (gymnax derives them from params, which can be jit arguments).
        return Box(_bound(space.low), _bound(space.high), tuple(space.shape), space.dtype)
    raise TypeError(f"unsupported gymnax space {name}; jaxrl supports Discrete and Box")
