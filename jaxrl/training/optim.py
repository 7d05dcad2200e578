"""Optimiser pieces every family uses: flattened Adam, the gradient norm, target networks."""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import optax

__all__ = ["adam", "apply_gradients", "every", "flat_adam", "grad_norm", "masked",
           "polyak_update"]


def flat_adam(learning_rate: float | jax.Array | optax.Schedule, *, eps: float = 1e-8,
              max_grad_norm: float | jax.Array | None = None) -> optax.GradientTransformation:
    """Adam (after global-norm clipping at ``max_grad_norm`` if given) on the parameters raveled
    into one vector (``optax.flatten``): the same element-wise update as per-leaf Adam, but a
    handful of kernels instead of several per parameter leaf, which cuts XLA's compile (and the
    run time of small, overhead-bound updates). The agents' Adam optimizers all use it."""
    scale = optax.adam(learning_rate, eps=eps)
    if max_grad_norm is not None:
        scale = optax.chain(optax.clip_by_global_norm(max_grad_norm), scale)
    return optax.flatten(scale)


def adam(learning_rate: float | jax.Array, max_grad_norm: float | jax.Array | None = None,
         anneal_steps: int | None = None) -> optax.GradientTransformation:
    """``flat_adam`` at ``learning_rate`` (may be traced); with ``anneal_steps`` the rate decays
    linearly to 0 over that many gradient updates."""
    if anneal_steps:
        learning_rate = optax.linear_schedule(learning_rate, 0.0, anneal_steps)
    return flat_adam(learning_rate, max_grad_norm=max_grad_norm)


def grad_norm(grads: Any) -> jax.Array:
    """``‖g‖₂`` of a gradient pytree, over its leaves raveled and concatenated exactly as
    ``optax.flatten`` does: with a flattened optimizer that clips the global norm, XLA computes
    the norm once for both the clipping and this metric."""
    flat = jnp.concatenate([jnp.reshape(g, [-1]) for g in jax.tree.leaves(grads)])
    return optax.tree.norm(flat)


def apply_gradients(optimizer: optax.GradientTransformation, grads: Any, opt_state: Any,
                    params: Any) -> tuple[Any, Any]:
    """One optimiser step: ``(new_params, new_opt_state)``."""
    updates, opt_state = optimizer.update(grads, opt_state, params)
    return optax.apply_updates(params, updates), opt_state


def polyak_update(online: Any, target: Any, tau: float | jax.Array, update_count: jax.Array,
                  frequency: int | jax.Array = 1) -> Any:
    """``θ' ← τ θ + (1 - τ) θ'`` when ``update_count % frequency == 0``, else ``θ'`` unchanged.

    τ = 1 copies (DQN's hard update every ``frequency`` steps); τ = 0 keeps the target.
    """
    return masked(every(update_count, frequency), optax.incremental_update(online, target, tau),
                  target)


def every(count: jax.Array, frequency: int | jax.Array) -> jax.Array | bool:
    """``count % frequency == 0``, or the constant ``True`` where ``frequency`` is the Python int
    1: then ``masked`` returns the new values with no per-leaf select."""
    if isinstance(frequency, int) and frequency == 1:
        return True
    return (count % frequency) == 0


def masked(condition: jax.Array | bool, new: Any, old: Any) -> Any:
    """``new`` where ``condition`` (a scalar) holds, else ``old``, leaf by leaf; ``new`` itself
    when ``condition`` is the constant ``True`` (``every``)."""
    if condition is True:
        return new
    return jax.tree.map(lambda n, o: jnp.where(condition, n, o), new, old)
