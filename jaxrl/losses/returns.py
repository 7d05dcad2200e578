"""Return and advantage estimators over time-major arrays ``[T, ...]`` (trailing batch axes).

Conventions shared by every function here:

- ``discounts[t] = γ · (1 - terminated[t])``: the one way termination enters a target.
- ``dones[t] = terminated[t] | truncated[t]``: the one way an episode boundary cuts a trace.
  Truncation never zeroes the discount: a truncated step bootstraps from ``next_values[t]``.
- ``next_values[t]`` is V of the observation after step t, that is of ``info["final_obs"]``
  where the episode ended; the last step always bootstraps from ``next_values[T-1]``.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

__all__ = ["discounted_returns", "gae", "lambda_returns", "n_step_returns",
           "reverse_linear_recurrence", "td_errors"]


def _check_time_major(**arrays: jax.Array) -> None:
    shapes = {name: jnp.shape(a) for name, a in arrays.items() if a is not None}
    first = next(iter(shapes.values()))
    if len(first) < 1 or first[0] == 0:
        raise ValueError(f"expected non-empty time-major arrays [T, ...], got shapes {shapes}")
    if any(s != first for s in shapes.values()):
        raise ValueError(f"time-major inputs must share one shape, got {shapes}")


def _as_float(x: jax.Array) -> jax.Array:
    """Floating inputs keep their dtype; integer and boolean ones become float32."""
    x = jnp.asarray(x)
    return x if jnp.issubdtype(x.dtype, jnp.floating) else x.astype(jnp.float32)


def td_errors(rewards: jax.Array, values: jax.Array, next_values: jax.Array,
              discounts: jax.Array) -> jax.Array:
    """One-step TD errors ``δ_t = r_t + γ_t V(s_{t+1}) - V(s_t)``."""
    _check_time_major(rewards=rewards, values=values, next_values=next_values,
                      discounts=discounts)
    return rewards + discounts * next_values - values


def reverse_linear_recurrence(bias: jax.Array, coef: jax.Array,
                              method: str = "auto") -> jax.Array:
    """``x_t = bias_t + coef_t x_{t+1}`` over the leading (time) axis, ``x_T = 0``.

    ``method``: ``"scan"``, a T-step ``lax.scan``; ``"associative"``, a log-depth
    ``lax.associative_scan`` of the affine maps ``x ↦ bias_t + coef_t x`` (composition
    ``(k₁, b₁) ∘ (k₂, b₂) = (k₁ k₂, b₁ + k₁ b₂)``), ⌈log₂ T⌉ rounds of elementwise work and no
    loop; ``"auto"``, the scan on a CPU and the associative form elsewhere. On a GPU every trip
    of a loop is launched from the host, so a long loop of tiny steps is slow; on a CPU a loop
    trip is cheap and the scan runs and compiles faster (measurements:
    ``benchmarks/RESULTS.md``). Both equal the sequential recursion up to float rounding.
    """
    if method == "auto":
        method = "scan" if jax.default_backend() == "cpu" else "associative"
    if method == "scan":
        def step(following: jax.Array, inputs: tuple[jax.Array, jax.Array]
                 ) -> tuple[jax.Array, jax.Array]:
            b, k = inputs
            value = b + k * following
            return value, value

        _, x = jax.lax.scan(step, jnp.zeros(bias.shape[1:], bias.dtype), (bias, coef),
                            reverse=True)
        return x
    if method != "associative":
        raise ValueError(f"method must be 'auto', 'scan' or 'associative', got {method!r}")

    def compose(later: tuple[jax.Array, jax.Array], earlier: tuple[jax.Array, jax.Array]
                ) -> tuple[jax.Array, jax.Array]:
        coef_later, bias_later = later
        coef_earlier, bias_earlier = earlier
        return coef_earlier * coef_later, bias_earlier + coef_earlier * bias_later

    _, x = jax.lax.associative_scan(compose, (coef, bias), reverse=True, axis=0)
    return x


def lambda_returns(rewards: jax.Array, next_values: jax.Array, discounts: jax.Array,
                   dones: jax.Array, lambda_: float | jax.Array) -> jax.Array:
    """λ-returns ``G_t = r_t + γ_t [(1-λ) v_{t+1} + λ (1 - d_t) G_{t+1} + λ d_t v_{t+1}]``.

    ``v_{t+1}`` is ``next_values[t]``; the recursion starts from ``G_T = next_values[T-1]``
    (that is, the last step is treated as cut). λ=1 gives the Monte-Carlo return bootstrapped at
    cuts; λ=0 gives the one-step TD target ``r_t + γ_t v_{t+1}``.
    """
    _check_time_major(rewards=rewards, next_values=next_values, discounts=discounts, dones=dones)
    rewards, next_values, discounts = map(_as_float, (rewards, next_values, discounts))
    dtype = jnp.result_type(rewards, next_values, discounts)
    cut = _as_float(dones).astype(dtype).at[-1].set(1.0)
    lam = jnp.asarray(lambda_, dtype)
    # G_t = [r_t + γ_t ((1-λ) + λ d_t) v_{t+1}] + [γ_t λ (1 - d_t)] G_{t+1}
    bias = rewards + discounts * ((1.0 - lam) + lam * cut) * next_values
    return reverse_linear_recurrence(bias.astype(dtype),
                                     (discounts * lam * (1.0 - cut)).astype(dtype))


def discounted_returns(rewards: jax.Array, discounts: jax.Array, dones: jax.Array | None = None,
                       next_values: jax.Array | None = None) -> jax.Array:
    """Monte-Carlo (reward-to-go) returns ``G_t = r_t + γ_t [(1 - d_t) G_{t+1} + d_t v_{t+1}]``.

    Without ``next_values`` nothing is bootstrapped (``v = 0``): the plain reward-to-go of
    whole episodes. With them, a segment that ends without termination (a truncation or the end
    of the rollout) bootstraps from ``next_values``. Equals ``lambda_returns`` with λ = 1.
    """
    if dones is None:
        dones = jnp.zeros_like(rewards)
    if next_values is None:
        next_values = jnp.zeros_like(rewards)
    return lambda_returns(rewards, next_values, discounts, dones, 1.0)


def n_step_returns(rewards: jax.Array, next_values: jax.Array, discounts: jax.Array,
                   dones: jax.Array, n: int) -> jax.Array:
    """n-step returns ``G^n_t = Σ_{k<m} (Π_{j<k} γ_{t+j}) r_{t+k} + (Π_{j<m} γ_{t+j}) v_{t+m}``.

    ``m = min(n, steps to the end of the episode, steps to the end of the sequence)``: the
    window stops at the first ``done`` (inclusive) and at ``T``; ``v_{t+m}`` is
    ``next_values[t+m-1]`` (zeroed through ``discounts`` where the episode terminated).
    Computed by the recursion ``G^k_t = r_t + γ_t [(1-d_t) G^{k-1}_{t+1} + d_t v_{t+1}]``,
    ``G^1_t = r_t + γ_t v_{t+1}``; ``n`` is static.
    """
    if n < 1:
        raise ValueError(f"n must be >= 1, got {n}")
    _check_time_major(rewards=rewards, next_values=next_values, discounts=discounts, dones=dones)
    rewards, next_values, discounts = map(_as_float, (rewards, next_values, discounts))
    dones = _as_float(dones).at[-1].set(1.0)
    returns = rewards + discounts * next_values
    for _ in range(n - 1):
        shifted = jnp.concatenate([returns[1:], jnp.zeros_like(returns[:1])], axis=0)
        returns = rewards + discounts * ((1.0 - dones) * shifted + dones * next_values)
    return returns


def gae(rewards: jax.Array, values: jax.Array, next_values: jax.Array, discounts: jax.Array,
        dones: jax.Array, lambda_: float | jax.Array) -> jax.Array:
    """Generalised advantage estimates ``A_t = δ_t + γ_t λ (1 - d_t) A_{t+1}``, ``A_T = 0``.

    ``δ_t = r_t + γ_t v_{t+1} - v_t`` with ``v_{t+1} = next_values[t]`` (V of ``final_obs`` at
    episode ends, so truncation bootstraps). ``A + values`` equals ``lambda_returns`` whenever
    ``next_values[t] == values[t+1]`` inside episodes.
    """
    _check_time_major(rewards=rewards, values=values, next_values=next_values,
                      discounts=discounts, dones=dones)
    rewards, values, next_values, discounts = map(_as_float,
                                                  (rewards, values, next_values, discounts))
    deltas = td_errors(rewards, values, next_values, discounts)
    keep = (discounts * lambda_ * (1.0 - _as_float(dones))).astype(deltas.dtype)
    return reverse_linear_recurrence(deltas, keep)
