"""Optimal control with derivatives: LQR (finite and infinite horizon) and iLQR.

Course notes §10 (Optimal Control and Planning, "trajectory optimization with derivatives"):
minimise ``Σ_t c(x_t, u_t)`` subject to ``x_{t+1} = f(x_t, u_t)``. Rewards here are negative
costs, ``c = -r``, so every function below speaks of the cost it minimises.

**LQR** (the linear case, Figure 6): ``f(x, u) = A x + B u``, ``c(x, u) = xᵀQx + uᵀRu``.
Dynamic programming from the last step backwards keeps the cost-to-go quadratic,
``V_t(x) = xᵀ P_t x``, and the optimal action linear, ``u_t = -K_t x_t``::

    K_t = (R + Bᵀ P_{t+1} B)⁻¹ Bᵀ P_{t+1} A
    P_t = Q + K_tᵀ R K_t + (A - B K_t)ᵀ P_{t+1} (A - B K_t),      P_T = Q_f

(the backward Riccati recursion, ``lqr_finite_horizon``). As ``T → ∞`` the recursion reaches
the fixed point of the discrete algebraic Riccati equation (DARE)
``P = Q + Aᵀ P A - Aᵀ P B (R + Bᵀ P B)⁻¹ Bᵀ P A`` and one stationary gain ``K``
(``lqr_infinite_horizon``, the recursion iterated to a tolerance under ``lax.while_loop``).
Gaussian noise on ``x_{t+1}`` changes neither gain (the notes' remark on stochastic dynamics).

**iLQR** (the nonlinear case, Figure 7): around a nominal trajectory ``(x̂_t, û_t)`` take the
first-order expansion of the dynamics and the second-order expansion of the cost (``jax.jacfwd``
and ``jax.hessian`` of the ``Dynamics`` function, states raveled with ``jax.flatten_util``),
solve that LQR problem for a step ``δu_t = k_t + K_t δx_t`` (backward pass)::

    Q_x = c_x + f_xᵀ V'_x          Q_u = c_u + f_uᵀ V'_x
    Q_xx = c_xx + f_xᵀ V'_xx f_x   Q_ux = c_ux + f_uᵀ V'_xx f_x   Q_uu = c_uu + f_uᵀ V'_xx f_u
    k = -(Q_uu + μI)⁻¹ Q_u         K = -(Q_uu + μI)⁻¹ Q_ux
    V_x = Q_x + Kᵀ Q_uu k + Kᵀ Q_u + Q_uxᵀ k
    V_xx = Q_xx + Kᵀ Q_uu K + Kᵀ Q_ux + Q_uxᵀ K

and roll the true dynamics forward with ``u_t = û_t + α k_t + K_t (x_t - x̂_t)`` (forward
pass). Repeat from the new trajectory. Three safeguards make it robust (Tassa, Erez & Todorov
2012): **Levenberg–Marquardt regularisation** ``μ`` (a failed backward pass, ``Q_uu + μI`` not
positive definite, or a rejected step multiplies ``μ`` by ``regularization_factor``; an accepted
step divides it), a **backtracking line search** on ``α ∈ {1, ½, ¼, …}`` (all tried at once,
the largest one with a sufficient decrease, ``ΔJ ≥ 10⁻⁴ · expected``, is taken), and **control
limits** by projection: the open-loop step is clamped into the box, ``û + k ∈ [low, high]``,
the feedback of a clamped action dimension is dropped (``K`` row zero) and every forward-pass
action is clipped to the box. On a linear system with quadratic cost, ``μ = 0`` and inactive
limits, one iteration is exactly LQR. A terminal state (``terminated``) is not modelled: iLQR
sums the rewards of the whole horizon, which suits the continuous-control envs it is for.

**Receding horizon** (§11, MPC): ``make_ilqr_planner`` has the ``jaxrl.planning.Planner``
signature: it optimises the carried plan (the previous plan shifted by one, the warm start)
for a few iterations, acts on its first action and returns the shifted plan.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
from jax.flatten_util import ravel_pytree

from jaxrl.envs.dynamics import Dynamics
from jaxrl.envs.spaces import Box, Space
from jaxrl.planning import Planner, shift_plan

__all__ = ["ILQRResult", "ilqr", "lqr_finite_horizon", "lqr_infinite_horizon",
           "make_ilqr_planner"]


def _riccati_step(A: jax.Array, B: jax.Array, Q: jax.Array, R: jax.Array,
                  P_next: jax.Array) -> tuple[jax.Array, jax.Array]:
    """One backward step: ``(K_t, P_t)`` from ``P_{t+1}`` (the symmetric, Joseph form)."""
    K = jnp.linalg.solve(R + B.T @ P_next @ B, B.T @ P_next @ A)
    closed = A - B @ K
    P = Q + K.T @ R @ K + closed.T @ P_next @ closed
    return K, (P + P.T) / 2


def lqr_finite_horizon(A: jax.Array, B: jax.Array, Q: jax.Array, R: jax.Array, horizon: int,
                       Q_final: jax.Array | None = None) -> tuple[jax.Array, jax.Array]:
    """Time-varying LQR gains ``K [T, m, n]`` and cost-to-go matrices ``P [T + 1, n, n]``.

    Minimises ``Σ_{t<T} (x_tᵀQx_t + u_tᵀRu_t) + x_Tᵀ Q_final x_T`` (``Q_final`` zero by
    default) with ``u_t = -K_t x_t`` (module docstring); ``x_tᵀ P_t x_t`` is the optimal cost
    from step ``t``. ``ValueError`` for ``horizon < 1``.
    """
    if int(horizon) < 1:
        raise ValueError(f"horizon must be >= 1, got {horizon}")
    P_final = jnp.zeros_like(Q) if Q_final is None else jnp.asarray(Q_final, Q.dtype)

    def step(P_next, _):
        K, P = _riccati_step(A, B, Q, R, P_next)
        return P, (K, P)

    _, (gains, costs) = jax.lax.scan(step, P_final, None, length=int(horizon), reverse=True)
    return gains, jnp.concatenate([costs, P_final[None]])


def lqr_infinite_horizon(A: jax.Array, B: jax.Array, Q: jax.Array, R: jax.Array,
                         tolerance: float | jax.Array = 1e-6,
                         max_iterations: int = 10_000) -> tuple[jax.Array, jax.Array]:
    """The stationary LQR gain ``K [m, n]`` and the DARE solution ``P [n, n]``.

    The Riccati recursion from ``P = Q`` until ``max |P_new - P| ≤ tolerance · (1 + max |P|)``
    (or ``max_iterations``), under ``lax.while_loop``; ``u = -K x``. It converges when
    ``(A, B)`` is stabilisable and ``(A, Q^½)`` detectable; ``A - B K`` is then stable.
    """
    def riccati(P):
        return _riccati_step(A, B, Q, R, P)[1]

    def not_converged(carry):
        P, change, iteration = carry
        return (change > tolerance * (1 + jnp.abs(P).max())) & (iteration < max_iterations)

    def body(carry):
        P, _, iteration = carry
        P_new = riccati(P)
        return P_new, jnp.abs(P_new - P).max(), iteration + 1

    P, _, _ = jax.lax.while_loop(not_converged, body,
                                 (Q, jnp.asarray(jnp.inf, Q.dtype), jnp.zeros((), jnp.int32)))
    K, _ = _riccati_step(A, B, Q, R, P)
    return K, P


class ILQRResult(NamedTuple):
    """What ``ilqr`` returns."""

    actions: jax.Array
    """the optimised plan ``[T, m]``"""
    states: jax.Array
    """its raveled states ``[T + 1, n]`` (``x_0`` first)"""
    feedback: jax.Array
    """the last backward pass's gains ``K [T, m, n]`` (``u = û + K (x - x̂)``)"""
    total_reward: jax.Array
    """``Σ_t r_t`` of the plan"""
    regularization: jax.Array
    """``μ`` after the last iteration"""


def _bounds(space: Space | None, shape: tuple[int, ...]) -> tuple[jax.Array, jax.Array]:
    if space is None:
        return jnp.full(shape, -jnp.inf), jnp.full(shape, jnp.inf)
    if not isinstance(space, Box):
        raise TypeError(f"iLQR needs continuous (Box) actions, got {space}")
    return tuple(jnp.broadcast_to(jnp.asarray(b, jnp.float32), shape)
                 for b in (space.low, space.high))


def ilqr(key: jax.Array, dynamics: Dynamics, state: Any, actions: jax.Array, *,
         iterations: int, space: Space | None = None,
         regularization: float | jax.Array = 1.0,
         regularization_factor: float | jax.Array = 4.0,
         max_regularization: float | jax.Array = 1e8,
         line_search_steps: int = 8) -> ILQRResult:
    """Improve the plan ``actions [T, m]`` from ``state`` by ``iterations`` iLQR iterations.

    ``dynamics(key, state, action) -> (next_state, reward, terminated)`` must be differentiable
    in the float leaves of the state and in the action; ``space`` (a ``Box``) gives the control
    limits (none if ``None``); ``regularization`` is the initial ``μ`` (0 allowed). Each step
    ``t`` uses the same key in every rollout (common random numbers). See the module docstring
    for the backward pass, the line search and the limits.
    """
    if int(iterations) < 1 or int(line_search_steps) < 1:
        raise ValueError(f"iterations and line_search_steps must be >= 1, got {iterations} and "
                         f"{line_search_steps}")
    horizon, action_dim = actions.shape
    low, high = _bounds(space, (action_dim,))
    x0, unravel = ravel_pytree(state)
    n = x0.shape[0]
    # Raw key data, wrapped where used: one key per step, reused by every rollout on purpose
    # (jaxrl.planning._raw_keys says why the key-reuse checker needs raw data here).
    impl = jax.random.key_impl(key)
    step_keys = jax.random.key_data(jax.random.split(key, horizon))

    def transition(x, u, key_data):
        next_state, reward, _ = dynamics(jax.random.wrap_key_data(key_data, impl=impl),
                                         unravel(x), u)
        return ravel_pytree(next_state)[0].astype(x.dtype), reward

    def cost(x, u, key_data):
        return -transition(x, u, key_data)[1]

    def forward(nominal_x, nominal_u, k, K, alpha):
        def body(x, inputs):
            x_hat, u_hat, k_t, K_t, key_data = inputs
            u = jnp.clip(u_hat + alpha * k_t + K_t @ (x - x_hat), low, high)
            next_x, reward = transition(x, u, key_data)
            return next_x, (x, u, reward)

        x_last, (xs, us, rewards) = jax.lax.scan(body, x0, (nominal_x[:-1], nominal_u, k, K,
                                                            step_keys))
        total = rewards.sum()
        return jnp.concatenate([xs, x_last[None]]), us, jnp.where(jnp.isnan(total), -jnp.inf,
                                                                   total)

    def backward(xs, us, mu):
        fx, fu = jax.vmap(jax.jacfwd(lambda x, u, k: transition(x, u, k)[0], argnums=(0, 1)))(
            xs[:-1], us, step_keys)
        cx, cu = jax.vmap(jax.grad(cost, argnums=(0, 1)))(xs[:-1], us, step_keys)
        (cxx, cxu), (_, cuu) = jax.vmap(jax.hessian(cost, argnums=(0, 1)))(xs[:-1], us,
                                                                            step_keys)

        def step(carry, inputs):
            V_x, V_xx = carry
            fx_t, fu_t, cx_t, cu_t, cxx_t, cxu_t, cuu_t, u_hat = inputs
            Q_x = cx_t + fx_t.T @ V_x
            Q_u = cu_t + fu_t.T @ V_x
            Q_xx = cxx_t + fx_t.T @ V_xx @ fx_t
            Q_ux = cxu_t.T + fu_t.T @ V_xx @ fx_t
            Q_uu = cuu_t + fu_t.T @ V_xx @ fu_t
            regularised = Q_uu + mu * jnp.eye(action_dim)
            positive = jnp.isfinite(jnp.linalg.cholesky(regularised)).all()
            k = -jnp.linalg.solve(regularised, Q_u)
            K = -jnp.linalg.solve(regularised, Q_ux)
            target = u_hat + k
            clamped = (target <= low) | (target >= high)
            k = jnp.clip(target, low, high) - u_hat
            K = jnp.where(clamped[:, None], 0.0, K)
            V_x = Q_x + K.T @ Q_uu @ k + K.T @ Q_u + Q_ux.T @ k
            V_xx = Q_xx + K.T @ Q_uu @ K + K.T @ Q_ux + Q_ux.T @ K
            expected = jnp.stack([k @ Q_u, 0.5 * k @ Q_uu @ k])
            return (V_x, (V_xx + V_xx.T) / 2), (k, K, positive, expected)

        init = (jnp.zeros((n,), x0.dtype), jnp.zeros((n, n), x0.dtype))
        _, (k, K, positive, expected) = jax.lax.scan(
            step, init, (fx, fu, cx, cu, cxx, cxu, cuu, us), reverse=True)
        return k, K, positive.all(), expected.sum(0)

    alphas = 0.5 ** jnp.arange(line_search_steps, dtype=jnp.float32)
    no_feedback = jnp.zeros((horizon, action_dim, n), x0.dtype)

    def iteration(carry, _):
        xs, us, total, K_last, mu = carry
        k, K, positive, (linear, quadratic) = backward(xs, us, mu)
        new_xs, new_us, new_totals = jax.vmap(forward, in_axes=(None, None, None, None, 0))(
            xs, us, k, K, alphas)
        expected = -(alphas * linear + alphas**2 * quadratic)   # expected reward gain
        gain = new_totals - total
        accepted = positive & (gain > 0) & (gain >= 1e-4 * expected)
        best = jnp.argmax(accepted)
        success = accepted.any()
        xs = jnp.where(success, new_xs[best], xs)
        us = jnp.where(success, new_us[best], us)
        total = jnp.where(success, new_totals[best], total)
        K_last = jnp.where(success, K, K_last)
        mu = jnp.where(success, mu / regularization_factor,
                       jnp.minimum(jnp.maximum(mu * regularization_factor, 1e-6),
                                   max_regularization))
        return (xs, us, total, K_last, mu), None

    actions = jnp.clip(actions, low, high)
    xs, us, total = forward(jnp.zeros((horizon + 1, n), x0.dtype), actions,
                            jnp.zeros_like(actions), no_feedback, 1.0)
    init = (xs, us, total, no_feedback, jnp.asarray(regularization, jnp.float32))
    (xs, us, total, K, mu), _ = jax.lax.scan(iteration, init, None, length=int(iterations))
    return ILQRResult(us, xs, K, total, mu)


def make_ilqr_planner(space: Box, *, iterations: int, regularization: float | jax.Array = 1.0,
                      regularization_factor: float | jax.Array = 4.0,
                      line_search_steps: int = 8) -> Planner:
    """Receding-horizon iLQR as a ``jaxrl.planning.Planner``: ``planner(key, dynamics, state,
    plan [H, m]) -> (action, next_plan)``; the plan is optimised by ``ilqr`` (``iterations``
    per call), its first action taken, and the rest returned shifted by one (the next call's
    warm start, refilled with the middle of the bounds)."""
    if not isinstance(space, Box):
        raise TypeError(f"iLQR needs continuous (Box) actions, got {space}")

    def planner(key, dynamics, state, plan):
        result = ilqr(key, dynamics, state, plan.reshape(plan.shape[0], -1),
                      iterations=iterations, space=space, regularization=regularization,
                      regularization_factor=regularization_factor,
                      line_search_steps=line_search_steps)
        actions = result.actions.reshape(plan.shape)
        return actions[0], shift_plan(actions, space)

    return planner
