"""Bellman targets and losses for value-based and off-policy actor-critic agents.

Shapes are batch-major ``[B, ...]`` (one sampled transition per row). ``discounts`` always
means ``γ^m · (1 - terminated)`` for an ``m``-step transition: termination is the only thing
that stops bootstrapping; a time-limit truncation bootstraps from the stored ``final_obs``.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

__all__ = ["bellman_target", "double_q_next_value", "n_step_transition", "sac_alpha_loss",
           "soft_value"]


def bellman_target(rewards: jax.Array, discounts: jax.Array, next_values: jax.Array) -> jax.Array:
    """``y = r + γ_m (1 - terminated) · v(s')``, with the target held constant (stop-gradient)."""
    if jnp.shape(rewards) != jnp.shape(discounts) or jnp.shape(rewards) != jnp.shape(next_values):
        raise ValueError(f"rewards, discounts and next_values must share one shape, got "
                         f"{jnp.shape(rewards)}, {jnp.shape(discounts)}, {jnp.shape(next_values)}")
    return jax.lax.stop_gradient(rewards + discounts * next_values)


def double_q_next_value(next_q_online: jax.Array, next_q_target: jax.Array) -> jax.Array:
    """Double Q-learning (van Hasselt et al., 2016): ``Q_target(s', argmax_a Q_online(s', a))``.

    ``[B, A]`` each; the online network picks the action, the target network evaluates it.
    """
    if next_q_online.shape != next_q_target.shape:
        raise ValueError(f"online and target Q-values must share one shape, got "
                         f"{next_q_online.shape} and {next_q_target.shape}")
    best = jnp.argmax(next_q_online, axis=-1)
    return jnp.take_along_axis(next_q_target, best[..., None], axis=-1).squeeze(-1)


def soft_value(q_values: jax.Array, alpha: float | jax.Array) -> jax.Array:
    """Soft state value ``V(s) = α log Σ_a exp(Q(s, a) / α)`` (soft Q-learning, Haarnoja 2017).

    Tends to ``max_a Q`` as ``α → 0``; computed with a stable log-sum-exp over the last axis.
    """
    return alpha * jax.nn.logsumexp(q_values / alpha, axis=-1)


def n_step_transition(rewards: jax.Array, terminated: jax.Array, truncated: jax.Array,
                      gamma: float | jax.Array) -> tuple[jax.Array, jax.Array, jax.Array]:
    """Collapse an ``n``-step window ``[n, ...]`` of consecutive steps into one transition.

    The window stops at the first step ``m-1`` whose episode ended (terminated or truncated),
    else ``m = n``. Returns ``(G, γ_m, last)``: ``G = Σ_{k<m} γ^k r_k``,
    ``γ_m = γ^m (1 - terminated_{m-1})`` (a truncated end keeps its discount and bootstraps) and
    ``last = m - 1``, the index whose ``next_obs`` to bootstrap from.
    """
    n = rewards.shape[0]
    done = (terminated | truncated).astype(jnp.float32)
    # alive[k] = 1 while no episode ended strictly before step k.
    alive = jnp.cumprod(jnp.concatenate([jnp.ones_like(done[:1]), 1.0 - done[:-1]]), axis=0)
    powers = jnp.asarray(gamma, jnp.float32) ** jnp.arange(n, dtype=jnp.float32)
    powers = powers.reshape((n,) + (1,) * (rewards.ndim - 1))
    returns = (alive * powers * rewards).sum(0)
    last = (alive.sum(0) - 1).astype(jnp.int32)
    steps = last + 1
    ended_by_termination = jnp.take_along_axis(terminated.astype(jnp.float32), last[None], 0)[0]
    discounts = jnp.asarray(gamma, jnp.float32) ** steps * (1.0 - ended_by_termination)
    return returns, discounts, last


def sac_alpha_loss(log_alpha: jax.Array, log_probs: jax.Array,
                   target_entropy: float | jax.Array) -> jax.Array:
    """Temperature loss ``J(α) = -E[log α · (log π(a|s) + H̄)]`` (SAC, Haarnoja et al. 2018b).

    Its gradient ``-E[log π + H̄]`` raises ``log α`` when the entropy ``-E[log π]`` is below the
    target ``H̄`` and lowers it when above. ``log_probs`` are constants here.
    """
    return -(log_alpha * jax.lax.stop_gradient(log_probs + target_entropy)).mean()
