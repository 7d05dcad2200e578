"""Natural-gradient building blocks for NPG and TRPO, on flat parameter vectors.

Course notes: CS 285 (Preston Fu), §9 "Advanced Policy Gradients", *Natural gradient*; CS 234 /
224R / 285 notes, §1.10 "TRPO and PPO". The policy step solves

    max_θ' gᵀ(θ' - θ)  subject to  KL(π_θ ‖ π_θ') ≈ ½ (θ' - θ)ᵀ F (θ' - θ) ≤ δ,

whose solution is ``θ' = θ + sqrt(2δ / sᵀFs) · s`` with ``s = F⁻¹ g`` (Kakade, 2001; Schulman et
al., 2015). ``F`` is the Fisher information matrix, which equals the Hessian of the mean KL at
``θ' = θ``; it is never formed: ``conjugate_gradient`` solves ``F s = g`` from Fisher-vector
products ``F v = ∇(∇KL · v)`` (``fisher_vector_product``, a forward-over-reverse ``jax.jvp`` of
``jax.grad``). TRPO then backtracks along the step until the surrogate improves and the exact
mean KL is within δ (``backtracking_line_search``).

Everything here is pure and uses only ``lax`` control flow with static iteration counts, so it
is safe under ``jax.jit`` and ``jax.vmap`` (numeric arguments such as ``max_kl`` may be tracers).
Parameters are flat vectors; use ``jax.flatten_util.ravel_pytree`` for a network's pytree.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

import jax
import jax.numpy as jnp

__all__ = ["StepResult", "backtracking_line_search", "conjugate_gradient",
           "fisher_vector_product", "max_kl_step"]

MatVec = Callable[[jax.Array], jax.Array]


class StepResult(NamedTuple):
    """Outcome of one policy step (all scalars except ``params``)."""

    params: jax.Array
    """the new flat parameters (the old ones where the step was rejected)"""
    step_fraction: jax.Array
    """fraction of the full step taken; 0 when rejected"""
    num_backtracks: jax.Array
    """candidates rejected before the accepted one (all of them when rejected)"""
    improvement: jax.Array
    """surrogate improvement ``L(θ_new) - L(θ_old)``"""
    kl: jax.Array
    """mean ``KL(π_old ‖ π_new)``"""


def conjugate_gradient(matvec: MatVec, b: jax.Array, iters: int,
                       residual_tol: float = 1e-10) -> jax.Array:
    """Approximately solve ``A x = b`` for symmetric positive-definite ``A``, given ``v ↦ A v``.

    Runs exactly ``iters`` (static) iterations from ``x = 0``; once ``rᵀr ≤ residual_tol`` the
    remaining iterations leave ``x`` unchanged (no division by a vanishing residual). In exact
    arithmetic an ``n × n`` system is solved in at most ``n`` iterations.
    """

    def step(carry, _):
        x, residual, direction, residual_sq = carry
        product = matvec(direction)
        active = residual_sq > residual_tol
        curvature = jnp.vdot(direction, product)
        alpha = jnp.where(active, residual_sq / jnp.where(active, curvature, 1.0), 0.0)
        x = x + alpha * direction
        residual = residual - alpha * product
        new_residual_sq = jnp.vdot(residual, residual)
        beta = jnp.where(active, new_residual_sq / jnp.where(active, residual_sq, 1.0), 0.0)
        direction = residual + beta * direction
        return (x, residual, direction, jnp.where(active, new_residual_sq, residual_sq)), None

    init = (jnp.zeros_like(b), b, b, jnp.vdot(b, b))
    (x, *_), _ = jax.lax.scan(step, init, None, length=iters)
    return x


def fisher_vector_product(mean_kl: Callable[[jax.Array], jax.Array], params: jax.Array,
                          damping: float | jax.Array = 0.0) -> MatVec:
    """``v ↦ (F + damping·I) v`` with ``F = ∇²_θ' mean_kl(θ')`` at ``θ' = params``.

    ``mean_kl(θ')`` must be the mean ``KL(π_old ‖ π_θ')`` with ``π_old`` held fixed (computed
    from ``params`` outside the function); its Hessian at ``params`` is the Fisher matrix.
    Each product is one forward-over-reverse pass: ``jax.jvp(jax.grad(mean_kl), (params,), (v,))``.
    """
    kl_gradient = jax.grad(mean_kl)

    def product(vector: jax.Array) -> jax.Array:
        return jax.jvp(kl_gradient, (params,), (vector,))[1] + damping * vector

    return product


def max_kl_step(direction: jax.Array, fisher_direction: jax.Array,
                max_kl: float | jax.Array) -> jax.Array:
    """The step ``sqrt(2δ / sᵀFs) · s`` whose quadratic KL estimate ``½ sᵀFs`` equals δ.

    ``fisher_direction`` is ``F s``. A non-positive ``sᵀFs`` (a zero gradient) gives a zero step.
    """
    curvature = jnp.vdot(direction, fisher_direction)
    scale = jnp.where(curvature > 0, jnp.sqrt(2.0 * max_kl / jnp.where(curvature > 0,
                                                                       curvature, 1.0)), 0.0)
    return scale * direction


def backtracking_line_search(evaluate: Callable[[jax.Array], tuple[jax.Array, jax.Array]],
                             params: jax.Array, full_step: jax.Array,
                             max_kl: float | jax.Array, backtrack_coef: float | jax.Array,
                             backtrack_iters: int) -> StepResult:
    """TRPO's line search: the first ``θ + c^k · full_step``, ``k = 0 … backtrack_iters - 1``,
    with surrogate improvement ``> 0`` and mean KL ``≤ max_kl``; ``θ`` itself if none is.

    ``evaluate(θ') -> (L(θ') - L(θ), mean KL(π_θ ‖ π_θ'))``. A ``lax.while_loop`` stops at the
    first accepted candidate (under ``vmap`` it runs until every member has stopped).
    """

    def candidate(k):
        return params + backtrack_coef ** k * full_step

    def searching(carry):
        k, accepted, _, _ = carry
        return ~accepted & (k < backtrack_iters)

    def try_candidate(carry):
        k, _, _, _ = carry
        improvement, kl = evaluate(candidate(k))
        accepted = (improvement > 0) & (kl <= max_kl)
        return k + jnp.where(accepted, 0, 1), accepted, improvement, kl

    zero = jnp.zeros((), params.dtype)
    k, accepted, improvement, kl = jax.lax.while_loop(
        searching, try_candidate, (jnp.zeros((), jnp.int32), jnp.bool_(False), zero, zero))
    return StepResult(
        params=jnp.where(accepted, candidate(k), params),
        step_fraction=jnp.where(accepted, backtrack_coef ** k, 0.0).astype(params.dtype),
        num_backtracks=k,
        improvement=jnp.where(accepted, improvement, 0.0),
        kl=jnp.where(accepted, kl, 0.0))
