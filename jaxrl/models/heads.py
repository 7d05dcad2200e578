"""Output heads. Policy heads return distrax distributions; value heads return arrays."""

from __future__ import annotations

import distrax
import flax.linen as nn
import jax
import jax.numpy as jnp

from jaxrl.models.distributions import TanhNormal
from jaxrl.models.torsos import orthogonal

__all__ = ["CategoricalHead", "GaussianHead", "QHead", "TanhGaussianHead", "ValueHead"]


class CategoricalHead(nn.Module):
    """Logits from a Dense layer (orthogonal gain 0.01: a near-uniform initial policy)."""

    num_actions: int
    init_scale: float = 0.01

    @nn.compact
    def __call__(self, features: jax.Array) -> distrax.Categorical:
        logits = nn.Dense(self.num_actions, kernel_init=orthogonal(self.init_scale))(features)
        return distrax.Categorical(logits=logits)


class GaussianHead(nn.Module):
    """Diagonal Gaussian with a state-independent, learned log-std (as in PPO).

    Actions are unbounded; the environment wrapper clips them to the action space.
    """

    action_dim: int
    init_scale: float = 0.01
    init_log_std: float = 0.0

    @nn.compact
    def __call__(self, features: jax.Array) -> distrax.MultivariateNormalDiag:
        mean = nn.Dense(self.action_dim, kernel_init=orthogonal(self.init_scale))(features)
        log_std = self.param("log_std", nn.initializers.constant(self.init_log_std),
                             (self.action_dim,))
        return distrax.MultivariateNormalDiag(mean, jnp.broadcast_to(jnp.exp(log_std), mean.shape))


class TanhGaussianHead(nn.Module):
    """Tanh-squashed Gaussian with state-dependent log-std clipped to ``[min, max]`` (SAC style).

    Actions lie in ``(-1, 1)``; rescale to the env's bounds with ``jaxrl.envs.RescaleAction``.
    """

    action_dim: int
    log_std_min: float = -5.0
    log_std_max: float = 2.0

    @nn.compact
    def __call__(self, features: jax.Array) -> TanhNormal:
        mean = nn.Dense(self.action_dim)(features)
        log_std = nn.Dense(self.action_dim)(features)
        log_std = jnp.clip(log_std, self.log_std_min, self.log_std_max)
        return TanhNormal(mean, jnp.exp(log_std))


class ValueHead(nn.Module):
    """Scalar state value ``V(s)`` (orthogonal gain 1), trailing unit axis squeezed."""

    init_scale: float = 1.0

    @nn.compact
    def __call__(self, features: jax.Array) -> jax.Array:
        return nn.Dense(1, kernel_init=orthogonal(self.init_scale))(features).squeeze(-1)


class QHead(nn.Module):
    """``Q(s, ·)`` for every discrete action, optionally dueling: ``V(s) + A(s,a) - mean_a A``."""

    num_actions: int
    dueling: bool = False

    @nn.compact
    def __call__(self, features: jax.Array) -> jax.Array:
        advantages = nn.Dense(self.num_actions)(features)
        if not self.dueling:
            return advantages
        value = nn.Dense(1)(features)
        return value + advantages - advantages.mean(-1, keepdims=True)
