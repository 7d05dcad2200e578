"""Feature extractors: an MLP for vector observations and a small CNN for MinAtar-style images."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from jaxrl import backend

__all__ = ["ACTIVATIONS", "CNN", "MLP", "activation_fn", "orthogonal"]

ACTIVATIONS: dict[str, Callable[[jax.Array], jax.Array]] = {
    "tanh": nn.tanh, "relu": nn.relu, "swish": nn.swish, "gelu": nn.gelu, "elu": nn.elu,
}


def activation_fn(name: str) -> Callable[[jax.Array], jax.Array]:
    """Look up an activation by name (``tanh``, ``relu``, ``swish``, ``gelu``, ``elu``)."""
    if name not in ACTIVATIONS:
        raise ValueError(f"unknown activation {name!r}; choose one of {sorted(ACTIVATIONS)}")
    return ACTIVATIONS[name]


def orthogonal(scale: float = float(np.sqrt(2))) -> nn.initializers.Initializer:
    """Orthogonal kernel initialiser with gain ``scale`` (√2 hidden, 0.01 policy, 1 value).

    Flax's, except where jaxlib's batched QR can deadlock (``backend.lapack_qr_hangs``: the
    CPU with jaxlib 0.10 or newer), where the same matrices come from Gram–Schmidt
    (``backend.orthogonal_gram_schmidt``)."""
    if backend.lapack_qr_hangs():
        return backend.orthogonal_gram_schmidt(scale)
    return nn.initializers.orthogonal(scale)


class MLP(nn.Module):
    """Dense layers with orthogonal(√2) kernels and zero biases. ``obs_ndim`` is the number of
    trailing axes of one observation: they are flattened into one feature axis first (a
    scalar observation becomes one feature), so grid observations ``[H, W]`` work too."""

    hidden_sizes: Sequence[int] = (64, 64)
    activation: str = "tanh"
    obs_ndim: int = 1

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        act = activation_fn(self.activation)
        x = x.astype(jnp.float32)
        if self.obs_ndim != 1:
            x = x.reshape((*x.shape[:x.ndim - self.obs_ndim], -1))
        for size in self.hidden_sizes:
            x = act(nn.Dense(size, kernel_init=orthogonal(), bias_init=nn.initializers.zeros)(x))
        return x


class CNN(nn.Module):
    """MinAtar torso: one 3×3 conv (16 channels, stride 1), flatten, then an MLP."""

    channels: int = 16
    hidden_sizes: Sequence[int] = (128,)
    activation: str = "relu"

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        act = activation_fn(self.activation)
        x = x.astype(jnp.float32)
        x = act(nn.Conv(self.channels, (3, 3), padding="VALID", kernel_init=orthogonal())(x))
        x = x.reshape((*x.shape[:-3], -1))
        return MLP(self.hidden_sizes, self.activation)(x)
