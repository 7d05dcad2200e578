"""Policy, value and entropy losses. Each returns a scalar to minimise (means over all axes)."""

from __future__ import annotations

import jax
import jax.numpy as jnp

__all__ = ["approx_kl", "clip_fraction", "entropy_loss", "policy_gradient_loss",
           "ppo_clip_loss", "value_loss"]


def _check_same_shape(**arrays: jax.Array | None) -> None:
    # Silent broadcasting of [B] against [B, 1] is the classic RL loss bug: refuse it.
    shapes = {name: jnp.shape(a) for name, a in arrays.items() if a is not None}
    if len(set(shapes.values())) > 1:
        raise ValueError(f"loss inputs must share one shape, got {shapes}")


def policy_gradient_loss(log_probs: jax.Array, advantages: jax.Array) -> jax.Array:
    """Vanilla policy gradient (REINFORCE) surrogate ``L = -E[log π(a|s) · sg(A)]``.

    Its gradient is ``-E[∇ log π(a|s) A]``; ``advantages`` are treated as constants.
    """
    _check_same_shape(log_probs=log_probs, advantages=advantages)
    return -jnp.mean(log_probs * jax.lax.stop_gradient(advantages))


def ppo_clip_loss(log_probs: jax.Array, old_log_probs: jax.Array, advantages: jax.Array,
                  clip_eps: float | jax.Array) -> jax.Array:
    """PPO clipped surrogate ``L = -E[min(ρ A, clip(ρ, 1-ε, 1+ε) A)]``, ``ρ = π/π_old``."""
    _check_same_shape(log_probs=log_probs, old_log_probs=old_log_probs, advantages=advantages)
    ratio = jnp.exp(log_probs - old_log_probs)
    advantages = jax.lax.stop_gradient(advantages)
    unclipped = ratio * advantages
    clipped = jnp.clip(ratio, 1.0 - clip_eps, 1.0 + clip_eps) * advantages
    return -jnp.mean(jnp.minimum(unclipped, clipped))


def value_loss(values: jax.Array, targets: jax.Array, old_values: jax.Array | None = None,
               clip_eps: float | jax.Array | None = None) -> jax.Array:
    """Squared error ``½ E[(V - G)²]``; with ``old_values`` and ``clip_eps``, PPO's clipped form
    ``½ E[max((V - G)², (V_old + clip(V - V_old, -ε, ε) - G)²)]``."""
    _check_same_shape(values=values, targets=targets, old_values=old_values)
    targets = jax.lax.stop_gradient(targets)
    squared = jnp.square(values - targets)
    if old_values is not None and clip_eps is not None:
        clipped = old_values + jnp.clip(values - old_values, -clip_eps, clip_eps)
        squared = jnp.maximum(squared, jnp.square(clipped - targets))
    return 0.5 * jnp.mean(squared)


def entropy_loss(entropy: jax.Array) -> jax.Array:
    """``-E[H(π(·|s))]``: minimising it raises entropy (scale by the entropy coefficient)."""
    return -jnp.mean(entropy)


def approx_kl(log_probs: jax.Array, old_log_probs: jax.Array) -> jax.Array:
    """Low-variance estimator of KL(π_old ‖ π): ``E[(ρ - 1) - log ρ]`` (Schulman's k3)."""
    _check_same_shape(log_probs=log_probs, old_log_probs=old_log_probs)
    log_ratio = log_probs - old_log_probs
    return jnp.mean(jnp.exp(log_ratio) - 1.0 - log_ratio)


def clip_fraction(log_probs: jax.Array, old_log_probs: jax.Array,
                  clip_eps: float | jax.Array) -> jax.Array:
    """Fraction of samples whose ratio lies outside ``[1-ε, 1+ε]``."""
    _check_same_shape(log_probs=log_probs, old_log_probs=old_log_probs)
    ratio = jnp.exp(log_probs - old_log_probs)
    return jnp.mean((jnp.abs(ratio - 1.0) > clip_eps).astype(jnp.float32))
