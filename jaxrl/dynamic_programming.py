"""Exact dynamic programming on a ``TabularMDP``: pure, jit- and vmap-able functions.

Course notes §7 (Value Function Methods), "Q-iteration" and "Value function learning theory":
with ``T_a = P[:, a]`` and ``r_a = R[:, a]`` the Bellman optimality operator is
``B V = max_a (r_a + γ T_a V)``; it is a γ-contraction in ‖·‖∞, so ``V* = B V*`` exists, is
unique, and value iteration ``V_{k+1} = B V_k`` converges to it at rate γ:
``‖V_{k+1} − V*‖∞ ≤ γ ‖V_k − V*‖∞``. For a fixed policy π, ``V^π = r_π + γ P_π V^π`` is linear,
so for γ < 1, ``V^π = (I − γ P_π)^{-1} r_π`` (the remark closing that section): policy
evaluation is one linear solve, and policy iteration alternates it with the greedy improvement
``π'(s) = argmax_a Q^π(s, a)`` (§7, "Q-iteration"; §9 calls it policy iteration).

Soft (maximum-entropy) value iteration, course notes §19 (Control as Inference): with temperature
α, ``Q(s, a) = R(s, a) + γ E_{s'}[V(s')]`` and ``V(s) = α log Σ_a exp(Q(s, a) / α)``; its
policy is ``π(a | s) = exp((Q(s, a) − V(s)) / α)``. As α → 0 the log-sum-exp tends to the max
and soft VI to VI (``|V_α − V*| ≤ α log |A| / (1 − γ)``). MaxEnt IRL and Dyna-style planners
reuse ``soft_value_iteration`` (a learned reward: ``mdp._replace(R=...)``) and
``state_occupancy``.

Policies are either deterministic, ``[S]`` action indices, or stochastic, ``[S, A]``
probabilities; every function here takes both. Iterations run a fixed number of sweeps in a
``lax.scan`` (so they jit with static shapes) and report the Bellman residual of each sweep.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp

from jaxrl.envs.tabular import TabularMDP

__all__ = ["PolicyIterationResult", "SoftValueIterationResult", "ValueIterationResult",
           "bellman_backup", "greedy_policy", "improve_policy", "iterative_policy_evaluation",
           "policy_evaluation", "policy_iteration", "q_iteration", "q_values",
           "soft_policy", "soft_value_iteration", "state_occupancy", "value_iteration"]


class ValueIterationResult(NamedTuple):
    """What ``value_iteration`` returns."""

    values: jax.Array
    """``[S]`` V after the last sweep"""
    policy: jax.Array
    """``[S]`` greedy actions of the last V"""
    residuals: jax.Array
    """``[sweeps]`` Bellman residual ‖V_{k+1} − V_k‖∞ of each sweep"""


class PolicyIterationResult(NamedTuple):
    """What ``policy_iteration`` returns."""

    values: jax.Array
    """``[S]`` V^π of the last policy (exact)"""
    policy: jax.Array
    """``[S]`` the last policy's actions"""
    changed: jax.Array
    """``[iterations]`` states whose action the improvement step changed (0: converged)"""


class SoftValueIterationResult(NamedTuple):
    """What ``soft_value_iteration`` returns."""

    values: jax.Array
    """``[S]`` soft values V(s) = α log Σ_a exp(Q(s, a) / α)"""
    q_values: jax.Array
    """``[S, A]`` soft Q"""
    policy: jax.Array
    """``[S, A]`` the soft-optimal policy exp((Q − V) / α)"""
    residuals: jax.Array
    """``[sweeps]`` ‖V_{k+1} − V_k‖∞ of each sweep"""


def _probabilities(mdp: TabularMDP, policy: jax.Array) -> jax.Array:
    """``[S, A]`` action probabilities of a deterministic ``[S]`` or stochastic policy."""
    if policy.ndim == 1:
        return jax.nn.one_hot(policy, mdp.num_actions, dtype=mdp.P.dtype)
    return policy


def q_values(mdp: TabularMDP, values: jax.Array) -> jax.Array:
    """``Q(s, a) = R(s, a) + γ Σ_{s'} P(s' | s, a) V(s')``: ``[S, A]``."""
    return mdp.R + mdp.gamma * jnp.einsum("sat,t->sa", mdp.P, values)


def greedy_policy(q: jax.Array) -> jax.Array:
    """``[S]`` ``argmax_a Q(s, a)`` (ties to the lowest action)."""
    return jnp.argmax(q, -1).astype(jnp.int32)


def improve_policy(mdp: TabularMDP, values: jax.Array, policy: jax.Array) -> jax.Array:
    """Policy improvement: ``[S]`` greedy actions of ``Q = R + γ P V``, keeping ``policy``'s
    action where it ties the best (up to float32 rounding), so that a converged policy is a
    fixed point instead of flipping between equally good actions."""
    q = q_values(mdp, values)
    best = q.max(-1)
    current = jnp.take_along_axis(q, policy[:, None], -1)[:, 0]
    return jnp.where(current >= best - 1e-5 * (1 + jnp.abs(best)), policy, greedy_policy(q))


def bellman_backup(mdp: TabularMDP, values: jax.Array) -> jax.Array:
    """``B V = max_a (R(·, a) + γ P(·, a) V)``: one sweep of value iteration."""
    return q_values(mdp, values).max(-1)


def policy_evaluation(mdp: TabularMDP, policy: jax.Array) -> jax.Array:
    """Exact ``V^π = (I − γ P_π)^{-1} r_π`` by a linear solve (needs γ < 1), with
    ``P_π(s, s') = Σ_a π(a|s) P(s'|s, a)`` and ``r_π(s) = Σ_a π(a|s) R(s, a)``."""
    probs = _probabilities(mdp, policy)
    transition = jnp.einsum("sa,sat->st", probs, mdp.P)
    reward = (probs * mdp.R).sum(-1)
    return jnp.linalg.solve(jnp.eye(mdp.num_states) - mdp.gamma * transition, reward)


def iterative_policy_evaluation(mdp: TabularMDP, policy: jax.Array, num_sweeps: int,
                                values: jax.Array | None = None
                                ) -> tuple[jax.Array, jax.Array]:
    """``(V, residuals [num_sweeps])`` of ``num_sweeps`` sweeps ``V ← r_π + γ P_π V`` from
    ``values`` (zeros by default): a γ-contraction towards ``policy_evaluation``'s V^π."""
    probs = _probabilities(mdp, policy)
    start = jnp.zeros(mdp.num_states, mdp.R.dtype) if values is None else values

    def sweep(v, _):
        new = (probs * q_values(mdp, v)).sum(-1)
        return new, jnp.abs(new - v).max()

    return jax.lax.scan(sweep, start, None, length=num_sweeps)


def value_iteration(mdp: TabularMDP, num_sweeps: int,
                    values: jax.Array | None = None) -> ValueIterationResult:
    """``num_sweeps`` sweeps of ``V ← B V`` from ``values`` (zeros by default); course notes
    §7, Algorithm 4 (Value Iteration). The greedy policy of the result is ε-optimal with
    ``ε = 2γ r_K / (1 − γ)`` for the last residual ``r_K``."""
    start = jnp.zeros(mdp.num_states, mdp.R.dtype) if values is None else values

    def sweep(v, _):
        new = bellman_backup(mdp, v)
        return new, jnp.abs(new - v).max()

    final, residuals = jax.lax.scan(sweep, start, None, length=num_sweeps)
    return ValueIterationResult(final, greedy_policy(q_values(mdp, final)), residuals)


def q_iteration(mdp: TabularMDP, num_sweeps: int,
                q: jax.Array | None = None) -> tuple[jax.Array, jax.Array]:
    """``(Q, residuals [num_sweeps])`` of ``Q ← R + γ P max_{a'} Q(·, a')`` from ``q`` (zeros
    by default): value iteration on Q, the tabular form of fitted Q iteration (§7, Alg. 6)."""
    start = jnp.zeros_like(mdp.R) if q is None else q

    def sweep(current, _):
        new = q_values(mdp, current.max(-1))
        return new, jnp.abs(new - current).max()

    return jax.lax.scan(sweep, start, None, length=num_sweeps)


def policy_iteration(mdp: TabularMDP, num_iterations: int,
                     policy: jax.Array | None = None) -> PolicyIterationResult:
    """``num_iterations`` rounds of exact evaluation and greedy improvement from ``policy``
    (action 0 everywhere by default). A policy that no longer changes is optimal; with
    ``|A|^|S|`` policies and strict improvement, that happens in finitely many rounds (in
    practice a handful), after which further rounds change nothing."""
    start = jnp.zeros(mdp.num_states, jnp.int32) if policy is None else policy

    def improve(current, _):
        new = improve_policy(mdp, policy_evaluation(mdp, current), current)
        return new, (new != current).sum()

    final, changed = jax.lax.scan(improve, start, None, length=num_iterations)
    return PolicyIterationResult(policy_evaluation(mdp, final), final, changed)


def soft_policy(q: jax.Array, temperature: float | jax.Array) -> jax.Array:
    """``π(a | s) = exp((Q(s, a) − V(s)) / α)`` with ``V = α log Σ_a exp(Q / α)``: ``[S, A]``."""
    return jax.nn.softmax(q / temperature, axis=-1)


def soft_value_iteration(mdp: TabularMDP, temperature: float | jax.Array, num_sweeps: int,
                         values: jax.Array | None = None) -> SoftValueIterationResult:
    """``num_sweeps`` sweeps of ``V ← α log Σ_a exp((R + γ P V) / α)`` from ``values`` (zeros
    by default), the soft Q and the soft-optimal policy (module docstring; §19). Also a
    γ-contraction, so it converges like value iteration."""
    start = jnp.zeros(mdp.num_states, mdp.R.dtype) if values is None else values

    def soft_max(q):
        return temperature * jax.nn.logsumexp(q / temperature, axis=-1)

    def sweep(v, _):
        new = soft_max(q_values(mdp, v))
        return new, jnp.abs(new - v).max()

    final, residuals = jax.lax.scan(sweep, start, None, length=num_sweeps)
    q = q_values(mdp, final)
    return SoftValueIterationResult(soft_max(q), q, soft_policy(q, temperature), residuals)


def state_occupancy(mdp: TabularMDP, policy: jax.Array) -> jax.Array:
    """``[S]`` discounted state visitation ``d_π = (1 − γ) μ_0ᵀ (I − γ P_π)^{-1}`` (sums to 1):
    the state weights of expected feature counts (MaxEnt IRL)."""
    probs = _probabilities(mdp, policy)
    transition = jnp.einsum("sa,sat->st", probs, mdp.P)
    visits = jnp.linalg.solve((jnp.eye(mdp.num_states) - mdp.gamma * transition).T, mdp.initial)
    return (1 - mdp.gamma) * visits
