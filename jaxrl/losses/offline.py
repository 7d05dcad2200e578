"""Losses of the offline RL and imitation agents: BC, CQL's penalty, IQL's expectile, advantage
weights, TD3+BC.

Course notes (CS 285 notes, §16 "Offline RL": "Implicit Policy Constraints" and "Conservative
Q-Learning"). Shapes are batch-major ``[B, ...]``; each function returns per-row values (the agent
averages them) unless it says otherwise.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import optax

__all__ = ["advantage_weights", "bc_loss", "cql_penalty", "cql_sampled_penalty", "expectile_loss",
           "td3_bc_actor_loss"]


def bc_loss(outputs: jax.Array, actions: jax.Array, discrete: bool) -> jax.Array:
    """Behaviour cloning, a scalar: cross-entropy ``-mean_i log softmax(logits_i)[a_i]`` for
    discrete actions (``outputs [B, n]`` logits, ``actions [B]`` int), else the squared error
    ``mean_i ‖μ_i - a_i‖²`` (``outputs`` and ``actions [B, d]``; not a likelihood: BC's mode is
    what gets evaluated, and the squared error needs no variance)."""
    if discrete:
        return optax.softmax_cross_entropy_with_integer_labels(outputs, actions).mean()
    return jnp.square(outputs - actions).sum(-1).mean()


def cql_penalty(q_values: jax.Array, actions: jax.Array) -> jax.Array:
    """CQL(H) for discrete actions (Kumar et al., 2020): ``log Σ_a exp Q(s, a) - Q(s, a_D)``.

    ``q_values [B, A]``, dataset ``actions [B]`` (int). The log-sum-exp is ``max_μ E_μ[Q] + H(μ)``,
    so minimising the penalty pushes Q down everywhere and back up on the dataset's actions.
    """
    if q_values.ndim != actions.ndim + 1 or q_values.shape[:-1] != actions.shape:
        raise ValueError(f"q_values [B, A] and actions [B] expected, got {q_values.shape} and "
                         f"{actions.shape}")
    q_data = jnp.take_along_axis(q_values, actions[..., None].astype(jnp.int32), -1)[..., 0]
    return jax.nn.logsumexp(q_values, axis=-1) - q_data


def cql_sampled_penalty(q_sampled: jax.Array, log_densities: jax.Array,
                        q_data: jax.Array) -> jax.Array:
    """CQL(H) for continuous actions with an importance-sampled log-sum-exp:

    ``log ∫ exp Q(s, a) da ≈ log (1/K) Σ_k exp(Q(s, a_k) - log μ(a_k|s))``, ``a_k ~ μ(·|s)``,
    minus ``Q(s, a_D)``. ``q_sampled [B, K]`` and ``log_densities [B, K]`` (each sample's proposal
    log-density, held constant: uniform ``-d log 2`` on ``[-1, 1]^d``, or the policy's
    ``log π``); ``q_data [B]``. The ``- log K`` makes the estimate consistent; it does not change
    the gradient.
    """
    if q_sampled.shape != log_densities.shape or q_sampled.shape[:-1] != q_data.shape:
        raise ValueError(f"q_sampled and log_densities [B, K] and q_data [B] expected, got "
                         f"{q_sampled.shape}, {log_densities.shape} and {q_data.shape}")
    weighted = q_sampled - jax.lax.stop_gradient(log_densities)
    return jax.nn.logsumexp(weighted, axis=-1) - math.log(q_sampled.shape[-1]) - q_data


def expectile_loss(differences: jax.Array, expectile: float | jax.Array) -> jax.Array:
    """IQL's asymmetric square (Kostrikov et al., 2021): ``L_τ(u) = |τ - 1(u < 0)| u²``.

    ``u = Q(s, a) - V(s)``; with ``τ > 1/2`` positive errors weigh more, so ``V`` tends to an
    upper expectile of ``Q`` over the dataset's actions (``max`` over the support as ``τ → 1``).
    """
    weight = jnp.abs(expectile - (differences < 0).astype(differences.dtype))
    return weight * differences**2


def advantage_weights(advantages: jax.Array, temperature: float | jax.Array,
                      max_weight: float | jax.Array) -> jax.Array:
    """AWR / AWAC / IQL policy weights ``w = min(exp(A / λ), w_max)``, held constant.

    The weighted log-likelihood ``-E[w log π(a|s)]`` projects ``π ∝ π_β exp(A / λ)`` (the KL-
    constrained improvement) onto the policy class; clipping at ``w_max`` bounds the variance.
    """
    weights = jnp.minimum(jnp.exp(advantages / temperature), max_weight)
    return jax.lax.stop_gradient(weights)


def td3_bc_actor_loss(q_values: jax.Array, policy_actions: jax.Array, data_actions: jax.Array,
                      alpha: float | jax.Array) -> jax.Array:
    """TD3+BC (Fujimoto & Gu, 2021): ``-λ mean Q(s, π(s)) + mean (π(s) - a)²``, ``λ = α / mean|Q|``.

    ``q_values [B]``, actions ``[B, d]``; ``λ`` is held constant so the BC term's weight does not
    depend on the scale of the rewards. The squared error averages over rows and action
    dimensions. Returns the scalar loss.
    """
    if policy_actions.shape != data_actions.shape or q_values.shape != policy_actions.shape[:1]:
        raise ValueError(f"q_values [B] and actions [B, d] expected, got {q_values.shape}, "
                         f"{policy_actions.shape} and {data_actions.shape}")
    scale = jax.lax.stop_gradient(alpha / jnp.abs(q_values).mean())
    return -scale * q_values.mean() + jnp.square(policy_actions - data_actions).mean()
