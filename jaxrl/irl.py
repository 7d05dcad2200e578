"""Maximum-entropy inverse RL on a ``TabularMDP``: pure, jit- and vmap-able functions.

Course notes §20 (Inverse RL, "Learning the reward function") and the algorithm sheet §14.1.1
(Algorithm 25, MaxEnt IRL). Trajectories are modelled as ``p(τ | O_{1:T}; ψ) ∝ p(τ)
exp(Σ_t r_ψ(s_t, a_t))`` with a uniform action prior ``p(a | s) = 1 / |A|``, and ψ maximises the
demonstrations' likelihood ``L(ψ) = (1/N) Σ_i r_ψ(τ_i) − log Z(ψ)``, whose gradient is "expert
features minus expected features":

    ∇_ψ L = Σ_{s,a} (D_E(s, a) − Σ_t μ_t(s, a)) ∇_ψ r_ψ(s, a),

``D_E`` the expert's visitation counts per trajectory. The expected counts come from exact
inference (§19, Control as Inference), for horizon ``T``:

- backward messages ``β_t(s, a) = p(O_{t:T} | s, a) = exp(r(s, a)) E_{s'}[β_{t+1}(s')]`` with
  ``β_t(s) = Σ_a p(a | s) β_t(s, a)`` and ``β_{T+1} = 1``; in log space ``Q_t = log β_t(s, a)``,
  ``V_t = log β_t(s)``;
- forward messages ``α_t(s) = p(s_t | O_{1:t-1})``: ``α_1 = p(s_1)``, ``α_{t+1}(s') ∝ Σ_{s,a}
  p(s' | s, a) p(a | s) exp(r(s, a)) α_t(s)``;
- visitation ``μ_t(s, a) ∝ α_t(s) β_t(s, a)`` (normalised per step).

Because ``∂ log Z / ∂ r(s, a) = Σ_t μ_t(s, a)`` exactly, any reward model (linear or neural, on
state or state-action features) gets its gradient as the vector-Jacobian product of ``r_ψ`` with
``D_E − Σ_t μ_t`` (``reward_gradient``).

The discounted variant (maximum causal entropy; Ziebart 2010) replaces the messages by soft
value iteration (``dynamic_programming.soft_value_iteration``, the variational backup of §19
that does not trust lucky transitions) and the visitation by the soft-optimal policy's
discounted occupancy ``d(s, a) = d_π(s) π(a | s)``; the expert side then counts ``(1 − γ) γ^t``.

Rewards are identifiable only up to potential shaping ``r + γ P Φ − Φ`` (which leaves every
soft-optimal policy unchanged), so recovered rewards are compared after projecting shaping out
(``remove_shaping``, ``shaping_free_correlation``). ``normalized_score`` is the score every
imitation result of this family reports.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from jaxrl import dynamic_programming as dp
from jaxrl.envs.tabular import TabularMDP

__all__ = ["Messages", "backward_messages", "discounted_visitation",
           "expected_counts", "expert_counts", "forward_messages", "log_partition",
           "messages", "normalized_score", "remove_shaping", "reward_gradient",
           "shaping_free_correlation", "state_action_visitation"]


class Messages(NamedTuple):
    """What ``messages`` returns (log space, time-major)."""

    log_beta_sa: jax.Array
    """``[T, S, A]`` ``Q_t(s, a) = log β_t(s, a)``"""
    log_beta: jax.Array
    """``[T, S]`` ``V_t(s) = log β_t(s)``"""
    log_alpha: jax.Array
    """``[T, S]`` ``log α_t(s)`` (each step normalised to a distribution)"""
    visitation: jax.Array
    """``[T, S, A]`` ``μ_t(s, a) ∝ α_t(s) β_t(s, a)``, each step summing to 1"""


def _log_prior(mdp: TabularMDP) -> jax.Array:
    return -jnp.log(jnp.asarray(mdp.num_actions, mdp.P.dtype))


def _log_expect(mdp: TabularMDP, log_values: jax.Array) -> jax.Array:
    """``[S, A]`` ``log E_{s' ~ P(·|s, a)} exp(log_values(s'))`` (stable where ``P = 0``)."""
    return jax.nn.logsumexp(log_values[None, None, :], axis=-1, b=mdp.P)


def backward_messages(mdp: TabularMDP, reward: jax.Array,
                      horizon: int) -> tuple[jax.Array, jax.Array]:
    """``(log β_t(s, a) [T, S, A], log β_t(s) [T, S])`` for ``t = 1..T`` (module docstring):
    ``Q_t = r + log E_{s'}[exp V_{t+1}(s')]``, ``V_t = log Σ_a exp(Q_t) − log |A|``."""
    log_prior = _log_prior(mdp)

    def step(next_log_beta, _):
        log_beta_sa = reward + _log_expect(mdp, next_log_beta)
        log_beta = jax.nn.logsumexp(log_beta_sa, axis=-1) + log_prior
        return log_beta, (log_beta_sa, log_beta)

    last = jnp.zeros(mdp.num_states, reward.dtype)
    _, (log_beta_sa, log_beta) = jax.lax.scan(step, last, None, length=horizon, reverse=True)
    return log_beta_sa, log_beta


def forward_messages(mdp: TabularMDP, reward: jax.Array, horizon: int) -> jax.Array:
    """``[T, S]`` normalised ``log α_t(s)``: ``α_1 = p(s_1)``, ``α_{t+1}(s') ∝ Σ_{s,a}
    α_t(s) p(a | s) exp(r(s, a)) p(s' | s, a)``."""
    log_prior = _log_prior(mdp)

    def step(log_alpha, _):
        joint = log_alpha[:, None] + log_prior + reward
        new = jax.nn.logsumexp(joint[:, :, None], axis=(0, 1), b=mdp.P)
        return new - jax.nn.logsumexp(new), log_alpha

    start = jnp.log(mdp.initial.astype(reward.dtype))
    _, log_alpha = jax.lax.scan(step, start, None, length=horizon)
    return log_alpha


def messages(mdp: TabularMDP, reward: jax.Array, horizon: int) -> Messages:
    """Backward and forward messages and the visitation ``μ_t ∝ α_t β_t`` of reward ``[S, A]``
    over ``horizon`` steps (Algorithm 25, steps 1–3)."""
    log_beta_sa, log_beta = backward_messages(mdp, reward, horizon)
    log_alpha = forward_messages(mdp, reward, horizon)
    joint = log_alpha[:, :, None] + log_beta_sa
    visitation = jnp.exp(joint - jax.nn.logsumexp(joint, axis=(1, 2), keepdims=True))
    return Messages(log_beta_sa, log_beta, log_alpha, visitation)


def expected_counts(mdp: TabularMDP, reward: jax.Array, horizon: int) -> jax.Array:
    """``[S, A]`` ``Σ_t μ_t(s, a)``: the expected visitation counts of one trajectory under
    ``p(τ | O_{1:T})``; equals ``∂ log Z / ∂ r``."""
    return messages(mdp, reward, horizon).visitation.sum(0)


def log_partition(mdp: TabularMDP, reward: jax.Array, horizon: int) -> jax.Array:
    """``log Z = log Σ_τ p(τ) exp(r(τ)) = log Σ_s p(s_1) β_1(s)`` (uniform action prior)."""
    _, log_beta = backward_messages(mdp, reward, horizon)
    return jax.nn.logsumexp(log_beta[0], b=mdp.initial)


def state_action_visitation(mdp: TabularMDP, policy: jax.Array) -> jax.Array:
    """``[S, A]`` discounted occupancy ``d_π(s) π(a | s)`` of a stochastic policy (sums to 1)."""
    return dp.state_occupancy(mdp, policy)[:, None] * policy


def discounted_visitation(mdp: TabularMDP, reward: jax.Array, temperature: float | jax.Array,
                          num_sweeps: int) -> tuple[jax.Array, jax.Array]:
    """``(d [S, A], π [S, A])``: the soft-optimal policy of ``reward`` by ``num_sweeps`` sweeps
    of soft value iteration and its discounted occupancy (the discounted variant's expected
    features, per unit of ``1 − γ``)."""
    soft = dp.soft_value_iteration(mdp._replace(R=reward), temperature, num_sweeps)
    return state_action_visitation(mdp, soft.policy), soft.policy


def reward_gradient(reward_fn: Callable[[Any], jax.Array], params: Any,
                    expert: jax.Array, expected: jax.Array) -> Any:
    """``∇_ψ L = Σ_{s,a} (expert − expected)(s, a) ∇_ψ r_ψ(s, a)`` for ``reward_fn(params) ->
    [S, A]``: one vector-Jacobian product, for linear and neural rewards alike."""
    _, vjp = jax.vjp(reward_fn, params)
    return vjp((expert - expected).astype(expected.dtype))[0]


def expert_counts(states: np.ndarray, actions: np.ndarray, episode_starts: np.ndarray,
                  num_states: int, num_actions: int,
                  gamma: float | None = None) -> np.ndarray:
    """``[S, A]`` visitation counts per trajectory of flat demonstrations (``D_E``), host-side.

    ``episode_starts[i]`` is the index of the first transition of ``i``'s episode. Without
    ``gamma``: ``(1/N) Σ_i Σ_t 1[s_t^i = s, a_t^i = a]`` (finite horizon); with it, the
    discounted occupancy ``(1 − γ)/N Σ_i Σ_t γ^t 1[...]``.
    """
    num_episodes = max(len(np.unique(episode_starts)), 1)
    weights = np.ones(len(states), np.float64)
    if gamma is not None:
        weights = (1 - gamma) * float(gamma) ** (np.arange(len(states)) - episode_starts)
    counts = np.zeros((num_states, num_actions), np.float64)
    np.add.at(counts, (states, actions), weights)
    return (counts / num_episodes).astype(np.float32)


def remove_shaping(mdp: TabularMDP, reward: jax.Array,
                   weights: jax.Array | None = None) -> jax.Array:
    """``[S, A]`` ``reward − (γ P Φ − Φ + c)`` with ``Φ, c`` the weighted least-squares fit:
    the reward's component orthogonal to every potential shaping (module docstring).

    ``weights [S, A]`` (uniform over non-terminal states by default) weigh the fit; ``Φ`` is 0
    on terminal states (episodes end there).
    """
    live = jnp.ones(mdp.num_states, bool) if mdp.terminal is None else ~mdp.terminal
    if weights is None:
        weights = jnp.broadcast_to(live[:, None], reward.shape).astype(reward.dtype)
    shaping = (mdp.gamma * mdp.P - jnp.eye(mdp.num_states)[:, None, :]) * live  # [S, A, S0]
    basis = jnp.concatenate([shaping.reshape(-1, mdp.num_states),
                             jnp.ones((reward.size, 1), reward.dtype)], axis=1)
    root = jnp.sqrt(weights.reshape(-1, 1))
    coefficients = jnp.linalg.lstsq(basis * root, reward.reshape(-1, 1) * root)[0]
    return reward - (basis @ coefficients).reshape(reward.shape)


def shaping_free_correlation(mdp: TabularMDP, reward: jax.Array, true_reward: jax.Array,
                             weights: jax.Array | None = None) -> jax.Array:
    """Weighted Pearson correlation of two rewards after ``remove_shaping`` of each: 1 when they
    agree up to potential shaping and a positive scale."""
    live = jnp.ones(mdp.num_states, bool) if mdp.terminal is None else ~mdp.terminal
    if weights is None:
        weights = jnp.broadcast_to(live[:, None], reward.shape).astype(reward.dtype)
    weights = weights / weights.sum()
    first, second = (remove_shaping(mdp, r, weights) for r in (reward, true_reward))
    first, second = (x - (weights * x).sum() for x in (first, second))
    covariance = (weights * first * second).sum()
    return covariance / jnp.sqrt((weights * first**2).sum() * (weights * second**2).sum())


def normalized_score(episode_return: float | jax.Array, random_return: float | jax.Array,
                     expert_return: float | jax.Array) -> float | jax.Array:
    """``100 (R − R_random) / (R_expert − R_random)``: 0 is the random policy, 100 the expert
    (raw fractions of a negative return mislead)."""
    return 100.0 * (episode_return - random_return) / (expert_return - random_return)
