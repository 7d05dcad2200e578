"""Estimators for gradient-based meta-RL: the DiCE objective and its baseline.

Course notes §22 "Gradient-based meta RL" (MAML): ``θ ← θ + β Σ_i ∇_θ J_i(θ + α ∇_θ J_i(θ))``.
The meta-gradient ``(I + α ∇²J_i(θ)) ∇J_i(θ')`` needs the Hessian of an expected return, whose
trajectories are sampled from ``π_θ`` itself: ``∇²J = E[R (∇log π ∇log πᵀ + ∇²log π)]``. A
plain surrogate ``Σ log π · sg(R)`` has the right first derivative, but ``jax.grad`` of its
gradient gives ``E[R ∇²log π]`` only: the sampling term ``E[R ∇log π ∇log πᵀ]`` is missing.

We use DiCE (Foerster et al., 2018, "DiCE: The Infinitely Differentiable Monte-Carlo
Estimator") rather than LVC (Rothfuss et al., 2019): DiCE's derivatives of *every* order are
unbiased estimators of the expected return's, so the second-order meta-gradient is unbiased and a
test can compare it with the exact one; LVC trades a bias in the Hessian for lower variance.
The baseline term is Mao et al.'s (2019), which keeps the estimator unbiased.

Distillation (course notes §11.2 / §15 "model distillation"; §11.1.5 "Divide and Conquer RL"):
``distillation_kl`` is the supervised loss of a student mimicking teachers on their states, and
``kl_augmented_rewards`` DnC's reward ``r̃ = r + λ log π_θ(a|s)`` of a local policy.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp

__all__ = ["dice_objective", "distillation_kl", "kl_augmented_rewards", "leave_one_out_mean",
           "magic_box"]


def magic_box(x: jax.Array) -> jax.Array:
    """DiCE's ``□(x) = exp(x - sg(x))``: equals 1 in value, ``∇□(x) = □(x) ∇x``."""
    return jnp.exp(x - jax.lax.stop_gradient(x))


def dice_objective(log_probs: jax.Array, rewards: jax.Array,
                   baselines: jax.Array | None = None) -> jax.Array:
    """The DiCE objective of one trajectory, time-major ``[T, ...]`` (trailing batch axes kept)::

        L = Σ_t □(Σ_{t' ≤ t} log π(a_t'|s_t')) r_t  +  Σ_t (1 - □(log π(a_t|s_t))) b_t

    Its value is the return ``Σ_t r_t``; ``∇L = Σ_t ∇log π_t (Σ_{t' ≥ t} r_t' - b_t)`` (the
    reward-to-go policy gradient), and ``∇²L`` is an unbiased estimate of the return's Hessian
    including the sampling term (module docstring). ``b_t`` must not depend on ``a_t`` or later
    actions (it is treated as a constant); ``None`` means no baseline.
    """
    if log_probs.shape != rewards.shape:
        raise ValueError(f"log_probs {log_probs.shape} and rewards {rewards.shape} must share "
                         "a shape")
    objective = (magic_box(jnp.cumsum(log_probs, axis=0)) * rewards).sum(0)
    if baselines is None:
        return objective
    baselines = jax.lax.stop_gradient(baselines)
    return objective + ((1.0 - magic_box(log_probs)) * baselines).sum(0)


def leave_one_out_mean(x: jax.Array, axis: int = -1) -> jax.Array:
    """``b_i = (Σ_j x_j - x_i) / (n - 1)`` along ``axis``: each sample's baseline from the others,
    so it is independent of that sample (and the estimator stays unbiased); needs ``n >= 2``."""
    n = x.shape[axis]
    if n < 2:
        raise ValueError(f"a leave-one-out mean needs at least 2 samples, got {n}")
    return (x.sum(axis, keepdims=True) - x) / (n - 1)


def distillation_kl(teacher: Any, student: Any, weights: jax.Array) -> jax.Array:
    """``Σ_s w_s KL(π_T(·|s) ‖ π_S(·|s)) / Σ_s w_s``: the weighted mean over states of the
    teachers' KL to the student (distrax distributions of one batch shape, ``weights`` of that
    shape, e.g. 0 after an episode ended). The forward KL is the supervised loss
    ``E_{a ~ π_T}[-log π_S(a|s)]`` up to the teacher's entropy, so the student covers every
    action the teacher takes; no gradient reaches the teacher."""
    teacher = jax.tree.map(jax.lax.stop_gradient, teacher)
    kl = teacher.kl_divergence(student)
    if kl.shape != weights.shape:
        raise ValueError(f"KL {kl.shape} and weights {weights.shape} must share a shape")
    return (kl * weights).sum() / jnp.maximum(weights.sum(), 1.0)


def kl_augmented_rewards(rewards: jax.Array, global_log_probs: jax.Array,
                         lambda_: jax.Array | float) -> jax.Array:
    """Divide-and-Conquer RL's local reward ``r̃_t = r_t + λ log π_θ(a_t|s_t)`` (``π_θ`` the
    global policy, held fixed): its expected sum is the return minus ``λ`` times the local
    policy's cross-entropy to ``π_θ`` (``KL(π_i ‖ π_θ) + H(π_i)``), so a larger ``λ`` keeps the
    local policy near what the global one can mimic. ``lambda_`` broadcasts against the rest."""
    if rewards.shape != global_log_probs.shape:
        raise ValueError(f"rewards {rewards.shape} and log-probs {global_log_probs.shape} must "
                         "share a shape")
    return rewards + lambda_ * jax.lax.stop_gradient(global_log_probs)
