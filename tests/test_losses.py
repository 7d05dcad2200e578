"""Tests for `jaxrl.losses`: hand-worked oracles, properties, rlax agreement, gradients, errors."""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import rlax

from jaxrl.losses import (
    approx_kl,
    clip_fraction,
    discounted_returns,
    entropy_loss,
    gae,
    lambda_returns,
    n_step_returns,
    policy_gradient_loss,
    ppo_clip_loss,
    reverse_linear_recurrence,
    td_errors,
    value_loss,
)

RTOL = 1e-5
ATOL = 1e-6


@pytest.fixture(autouse=True, scope="module")
def _raise_on_rank_promotion():
    # A silent [T] * [T, 1] broadcast is the classic bug in return code; make it an error.
    with jax.numpy_rank_promotion("raise"):
        yield


def _f32(values) -> jax.Array:
    return jnp.asarray(values, jnp.float32)


def _close(actual, expected) -> None:
    np.testing.assert_allclose(np.asarray(actual), np.asarray(expected, np.float32),
                               rtol=RTOL, atol=ATOL)


def test_rank_promotion_is_an_error_in_this_module():
    with pytest.raises(ValueError):
        jnp.ones(3) + jnp.ones((2, 3))


# --------------------------------------------------------------------------------------------
# Hand-worked trajectories, T = 4.
#
# TRUNCATED: γ = 0.5, λ = 0.5. Episode A is steps 0..2 and is truncated at step 2 (done = 1,
# discount stays γ); episode B starts at step 3 and is cut by the end of the rollout.
#   rewards     = [1, 2, 3, 4]
#   values      = [2, 4, 2, 6]        V(s_t)
#   next_values = [4, 2, 8, 4]        = values[1], values[2], V(final_obs) = 8 ≠ values[3] = 6,
#                                       and the rollout-end bootstrap 4
#   discounts   = [.5, .5, .5, .5]
#   dones       = [0, 0, 1, 0]
#
# TERMINATED: γ = 0.9, λ = 0.5. Episode A is steps 0..2 and terminates at step 2 (discount 0);
# episode B starts at step 3 and is cut by the end of the rollout.
#   rewards     = [1, 2, 3, 4]
#   values      = [1, 2, 4, 4]
#   next_values = [2, 4, 5, 10]       V(final_obs) = 5 at step 2 must be zeroed by the discount
#   discounts   = [.9, .9, 0, .9]
#   dones       = [0, 0, 1, 0]
# --------------------------------------------------------------------------------------------

LAMBDA = 0.5


def _truncated():
    return dict(rewards=_f32([1, 2, 3, 4]), values=_f32([2, 4, 2, 6]),
                next_values=_f32([4, 2, 8, 4]), discounts=_f32([0.5, 0.5, 0.5, 0.5]),
                dones=_f32([0, 0, 1, 0]))


def _terminated():
    return dict(rewards=_f32([1, 2, 3, 4]), values=_f32([1, 2, 4, 4]),
                next_values=_f32([2, 4, 5, 10]), discounts=_f32([0.9, 0.9, 0.0, 0.9]),
                dones=_f32([0, 0, 1, 0]))


def test_td_errors_truncated_by_hand():
    # δ = r + γ v' - v
    # δ0 = 1 + .5*4 - 2 = 1
    # δ1 = 2 + .5*2 - 4 = -1
    # δ2 = 3 + .5*8 - 2 = 5      (bootstraps from V(final_obs) = 8, not values[3] = 6)
    # δ3 = 4 + .5*4 - 6 = 0
    t = _truncated()
    _close(td_errors(t["rewards"], t["values"], t["next_values"], t["discounts"]),
           [1, -1, 5, 0])


def test_td_errors_terminated_by_hand():
    # δ0 = 1 + .9*2 - 1 = 1.8
    # δ1 = 2 + .9*4 - 2 = 3.6
    # δ2 = 3 + 0*5  - 4 = -1
    # δ3 = 4 + .9*10 - 4 = 9
    t = _terminated()
    _close(td_errors(t["rewards"], t["values"], t["next_values"], t["discounts"]),
           [1.8, 3.6, -1, 9])


def test_lambda_returns_truncated_by_hand():
    # G_t = r_t + γ [(1-λ) v'_t + λ (1-d_t) G_{t+1} + λ d_t v'_t]; the last step is cut.
    # G3 = 4 + .5*4 = 6                                   (cut: end of rollout)
    # G2 = 3 + .5*8 = 7                                   (cut: truncated, bootstraps 8)
    # G1 = 2 + .5*(.5*2 + .5*G2) = 2 + .5*(1 + 3.5) = 4.25
    # G0 = 1 + .5*(.5*4 + .5*G1) = 1 + .5*(2 + 2.125) = 3.0625
    t = _truncated()
    returns = lambda_returns(t["rewards"], t["next_values"], t["discounts"], t["dones"], LAMBDA)
    _close(returns, [3.0625, 4.25, 7, 6])


def test_lambda_returns_terminated_by_hand():
    # G3 = 4 + .9*10 = 13
    # G2 = 3 + 0*5 = 3
    # G1 = 2 + .9*(.5*4 + .5*G2) = 2 + .9*3.5 = 5.15
    # G0 = 1 + .9*(.5*2 + .5*G1) = 1 + .9*(1 + 2.575) = 1 + 3.2175 = 4.2175
    t = _terminated()
    returns = lambda_returns(t["rewards"], t["next_values"], t["discounts"], t["dones"], LAMBDA)
    _close(returns, [4.2175, 5.15, 3, 13])


def test_discounted_returns_truncated_by_hand():
    # With next_values (bootstrap at cuts):
    # G3 = 4 + .5*4 = 6;  G2 = 3 + .5*8 = 7;  G1 = 2 + .5*7 = 5.5;  G0 = 1 + .5*5.5 = 3.75
    # Without next_values (v = 0):
    # G3 = 4;  G2 = 3;  G1 = 2 + .5*3 = 3.5;  G0 = 1 + .5*3.5 = 2.75
    t = _truncated()
    _close(discounted_returns(t["rewards"], t["discounts"], t["dones"], t["next_values"]),
           [3.75, 5.5, 7, 6])
    _close(discounted_returns(t["rewards"], t["discounts"], t["dones"]), [2.75, 3.5, 3, 4])


def test_discounted_returns_terminated_by_hand():
    # With next_values:
    # G3 = 4 + .9*10 = 13;  G2 = 3 + 0*5 = 3;  G1 = 2 + .9*3 = 4.7;  G0 = 1 + .9*4.7 = 5.23
    # Without next_values: G3 = 4, the rest is unchanged (episode A terminated).
    t = _terminated()
    _close(discounted_returns(t["rewards"], t["discounts"], t["dones"], t["next_values"]),
           [5.23, 4.7, 3, 13])
    _close(discounted_returns(t["rewards"], t["discounts"], t["dones"]), [5.23, 4.7, 3, 4])


def test_discounted_returns_without_dones_is_reward_to_go():
    # G3 = 4;  G2 = 3 + .5*4 = 5;  G1 = 2 + .5*5 = 4.5;  G0 = 1 + .5*4.5 = 3.25
    _close(discounted_returns(_f32([1, 2, 3, 4]), _f32([0.5] * 4)), [3.25, 4.5, 5, 4])


def test_n_step_returns_truncated_by_hand():
    # n = 2: G_t = r_t + γ r_{t+1} + γ² v'_{t+1}, window stopped at the first done / at T.
    # G0 = 1 + .5*2 + .25*2 = 2.5
    # G1 = 2 + .5*3 + .25*8 = 5.5       (step 2 is truncated: bootstrap V(final_obs) = 8)
    # G2 = 3 + .5*8 = 7                 (window stops at the done)
    # G3 = 4 + .5*4 = 6                 (window stops at T)
    # n = 3: G0 = 1 + .5*2 + .25*3 + .125*8 = 3.75; G1, G2, G3 as for n = 2.
    t = _truncated()
    args = (t["rewards"], t["next_values"], t["discounts"], t["dones"])
    _close(n_step_returns(*args, n=2), [2.5, 5.5, 7, 6])
    _close(n_step_returns(*args, n=3), [3.75, 5.5, 7, 6])


def test_n_step_returns_terminated_by_hand():
    # n = 2:
    # G0 = 1 + .9*2 + .81*4 = 1 + 1.8 + 3.24 = 6.04
    # G1 = 2 + .9*3 + .9*0*5 = 4.7      (step 2 terminated: its bootstrap is zeroed)
    # G2 = 3 + 0*5 = 3
    # G3 = 4 + .9*10 = 13
    # n = 3: G0 = 1 + .9*2 + .81*3 + .81*0*5 = 5.23; G1, G2, G3 as for n = 2.
    t = _terminated()
    args = (t["rewards"], t["next_values"], t["discounts"], t["dones"])
    _close(n_step_returns(*args, n=2), [6.04, 4.7, 3, 13])
    _close(n_step_returns(*args, n=3), [5.23, 4.7, 3, 13])


def test_gae_truncated_by_hand():
    # A_t = δ_t + γ λ (1-d_t) A_{t+1}, with δ = [1, -1, 5, 0] (see td test), γλ = .25.
    # A3 = 0
    # A2 = 5                     (done cuts the trace)
    # A1 = -1 + .25*5 = 0.25
    # A0 = 1 + .25*.25 = 1.0625
    # (A + values = [3.0625, 4.25, 7, 6] = the λ-returns above.)
    t = _truncated()
    advantages = gae(t["rewards"], t["values"], t["next_values"], t["discounts"], t["dones"],
                     LAMBDA)
    _close(advantages, [1.0625, 0.25, 5, 0])


def test_gae_terminated_by_hand():
    # δ = [1.8, 3.6, -1, 9], γλ = .45 except at the terminal step.
    # A3 = 9
    # A2 = -1                    (discount 0 and done)
    # A1 = 3.6 + .45*(-1) = 3.15
    # A0 = 1.8 + .45*3.15 = 1.8 + 1.4175 = 3.2175
    # (A + values = [4.2175, 5.15, 3, 13] = the λ-returns above.)
    t = _terminated()
    advantages = gae(t["rewards"], t["values"], t["next_values"], t["discounts"], t["dones"],
                     LAMBDA)
    _close(advantages, [3.2175, 3.15, -1, 9])


@pytest.mark.parametrize("method", ["auto", "scan", "associative"])
def test_reverse_linear_recurrence_by_hand(method):
    # x_t = b_t + k_t x_{t+1}, x_T = 0; b = [1, 2, 3, 4], k = [.5, 0, 2, 7] (k_3 is unused).
    # x3 = 4
    # x2 = 3 + 2*4 = 11
    # x1 = 2 + 0*11 = 2          (a zero coefficient cuts the trace)
    # x0 = 1 + .5*2 = 2
    x = reverse_linear_recurrence(_f32([1, 2, 3, 4]), _f32([0.5, 0, 2, 7]), method)
    _close(x, [2, 2, 11, 4])


def test_reverse_linear_recurrence_rejects_an_unknown_method():
    with pytest.raises(ValueError, match="'auto', 'scan' or 'associative'"):
        reverse_linear_recurrence(_f32([1.0]), _f32([1.0]), "parallel")


@pytest.mark.parametrize("method", ["scan", "associative"])
@pytest.mark.parametrize("length", [1, 2, 5, 128, 129])
def test_reverse_linear_recurrence_equals_the_sequential_loop(length, method):
    # Odd lengths and 1 exercise the associative scan's uneven splits; [T, 3] a batch axis.
    rng = np.random.default_rng(length)  # numpy's: jax.random would compile for every length
    bias = rng.normal(size=(length, 3)).astype(np.float32)
    coef = rng.uniform(-1.0, 1.0, (length, 3)).astype(np.float32)
    expected, following = np.zeros((length, 3), np.float64), np.zeros(3)
    for t in reversed(range(length)):
        following = bias[t].astype(np.float64) + coef[t].astype(np.float64) * following
        expected[t] = following
    _close(jax.jit(reverse_linear_recurrence, static_argnums=2)(bias, coef, method), expected)


# --------------------------------------------------------------------------------------------
# Properties on random trajectories.
# --------------------------------------------------------------------------------------------

GAMMA = 0.9


def _random_trajectory(seed: int, shape: tuple[int, ...], terminate_p: float = 0.2,
                       truncate_p: float = 0.15) -> dict[str, np.ndarray]:
    """A rollout [T, ...] whose next_values[t] == values[t+1] inside episodes."""
    rng = np.random.default_rng(seed)
    rewards = rng.normal(size=shape).astype(np.float32)
    values = rng.normal(size=shape).astype(np.float32)
    final_values = rng.normal(size=shape).astype(np.float32)
    bootstrap = rng.normal(size=shape[1:]).astype(np.float32)
    terminated = rng.random(shape) < terminate_p
    truncated = (rng.random(shape) < truncate_p) & ~terminated
    dones = terminated | truncated
    next_values = np.concatenate([values[1:], bootstrap[None]], axis=0)
    next_values = np.where(dones, final_values, next_values).astype(np.float32)
    discounts = (GAMMA * (1.0 - terminated)).astype(np.float32)
    return dict(rewards=rewards, values=values, next_values=next_values, discounts=discounts,
                dones=dones.astype(np.float32), terminated=terminated.astype(np.float32))


def _window(dones: np.ndarray, t: int, n: int) -> int:
    """Steps in the n-step window from t: stops at the first done (inclusive) and at T."""
    m = 0
    while m < n and t + m < len(dones):
        m += 1
        if dones[t + m - 1]:
            break
    return m


def _n_step_reference(rewards, next_values, discounts, dones, n) -> np.ndarray:
    """Explicit sums Σ_{k<m} (Π_{j<k} γ_{t+j}) r_{t+k} + (Π_{j<m} γ_{t+j}) v'_{t+m-1}, 1-D."""
    out = np.zeros(len(rewards), np.float64)
    for t in range(len(rewards)):
        m = _window(dones, t, n)
        scale, total = 1.0, 0.0
        for k in range(m):
            total += scale * rewards[t + k]
            scale *= discounts[t + k]
        out[t] = total + scale * next_values[t + m - 1]
    return out


def _lambda_reference(rewards, next_values, discounts, dones, lambda_) -> np.ndarray:
    """λ-return as the λ-weighted mixture of n-step returns, the tail weight on the longest."""
    horizon = len(rewards)
    n_step = [_n_step_reference(rewards, next_values, discounts, dones, n)
              for n in range(1, horizon + 1)]
    out = np.zeros(horizon, np.float64)
    for t in range(horizon):
        m = _window(dones, t, horizon)
        out[t] = sum((1 - lambda_) * lambda_ ** (n - 1) * n_step[n - 1][t] for n in range(1, m))
        out[t] += lambda_ ** (m - 1) * n_step[m - 1][t]
    return out


SEEDS = [0, 1, 2]
T = 9

# Random-data tests go through jit with λ traced, so one compilation serves every λ and seed;
# the hand-worked tests above run eagerly.
_lambda_returns = jax.jit(lambda_returns)
_gae = jax.jit(gae)
_n_step_returns = jax.jit(n_step_returns, static_argnames="n")
_rlax_lambda_returns = jax.jit(rlax.lambda_returns)
_rlax_gae = jax.jit(rlax.truncated_generalized_advantage_estimation)
_rlax_n_step_returns = jax.jit(rlax.n_step_bootstrapped_returns, static_argnames="n")


@pytest.mark.parametrize("seed", SEEDS)
def test_lambda_one_is_monte_carlo_bootstrapped_at_cuts(seed):
    d = _random_trajectory(seed, (T,))
    returns = _lambda_returns(d["rewards"], d["next_values"], d["discounts"], d["dones"], 1.0)
    reference = _n_step_reference(d["rewards"], d["next_values"], d["discounts"], d["dones"], T)
    _close(returns, reference)
    _close(discounted_returns(d["rewards"], d["discounts"], d["dones"], d["next_values"]),
           reference)


@pytest.mark.parametrize("seed", SEEDS)
def test_lambda_zero_is_td0_target(seed):
    d = _random_trajectory(seed, (T,))
    returns = _lambda_returns(d["rewards"], d["next_values"], d["discounts"], d["dones"], 0.0)
    _close(returns, d["rewards"] + d["discounts"] * d["next_values"])


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("lambda_", [0.3, 0.95])
def test_lambda_returns_is_mixture_of_n_step_returns(seed, lambda_):
    d = _random_trajectory(seed, (T,))
    returns = _lambda_returns(d["rewards"], d["next_values"], d["discounts"], d["dones"], lambda_)
    _close(returns, _lambda_reference(d["rewards"], d["next_values"], d["discounts"], d["dones"],
                                      lambda_))


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("lambda_", [0.0, 0.5, 0.95, 1.0])
def test_gae_plus_values_is_lambda_returns(seed, lambda_):
    d = _random_trajectory(seed, (T,))
    advantages = _gae(d["rewards"], d["values"], d["next_values"], d["discounts"], d["dones"],
                     lambda_)
    returns = _lambda_returns(d["rewards"], d["next_values"], d["discounts"], d["dones"], lambda_)
    _close(advantages + d["values"], returns)


@pytest.mark.parametrize("seed", SEEDS)
def test_n_step_one_is_td0_target(seed):
    d = _random_trajectory(seed, (T,))
    returns = _n_step_returns(d["rewards"], d["next_values"], d["discounts"], d["dones"], n=1)
    _close(returns, d["rewards"] + d["discounts"] * d["next_values"])


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("n", [T, T + 3])
def test_n_step_beyond_horizon_is_discounted_returns(seed, n):
    d = _random_trajectory(seed, (T,))
    returns = _n_step_returns(d["rewards"], d["next_values"], d["discounts"], d["dones"], n=n)
    _close(returns, discounted_returns(d["rewards"], d["discounts"], d["dones"],
                                       d["next_values"]))


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("n", [2, 3, 5])
def test_n_step_matches_explicit_sums(seed, n):
    d = _random_trajectory(seed, (T,))
    returns = _n_step_returns(d["rewards"], d["next_values"], d["discounts"], d["dones"], n=n)
    _close(returns, _n_step_reference(d["rewards"], d["next_values"], d["discounts"],
                                      d["dones"], n))


def test_bool_dones_equal_float_dones():
    d = _random_trajectory(0, (T,))
    bool_dones = d["dones"].astype(bool)
    args = (d["rewards"], d["next_values"], d["discounts"])
    _close(_lambda_returns(*args, bool_dones, LAMBDA), _lambda_returns(*args, d["dones"], LAMBDA))
    _close(_n_step_returns(*args, bool_dones, n=3), _n_step_returns(*args, d["dones"], n=3))
    _close(_gae(d["rewards"], d["values"], d["next_values"], d["discounts"], bool_dones, LAMBDA),
           _gae(d["rewards"], d["values"], d["next_values"], d["discounts"], d["dones"], LAMBDA))


_TIME_MAJOR_FNS = {
    "td_errors": (td_errors, ("rewards", "values", "next_values", "discounts")),
    "lambda_returns": (functools.partial(lambda_returns, lambda_=LAMBDA),
                       ("rewards", "next_values", "discounts", "dones")),
    "discounted_returns": (discounted_returns, ("rewards", "discounts", "dones", "next_values")),
    "n_step_returns": (functools.partial(n_step_returns, n=3),
                       ("rewards", "next_values", "discounts", "dones")),
    "gae": (functools.partial(gae, lambda_=LAMBDA),
            ("rewards", "values", "next_values", "discounts", "dones")),
}


@pytest.mark.parametrize("name", sorted(_TIME_MAJOR_FNS))
def test_trailing_batch_axis_equals_vmap(name):
    fn, keys = _TIME_MAJOR_FNS[name]
    d = _random_trajectory(3, (T, 4))
    args = [_f32(d[key]) for key in keys]
    batched = fn(*args)
    assert batched.shape == (T, 4)
    _close(batched, jax.vmap(fn, in_axes=1, out_axes=1)(*args))
    single = jax.jit(fn)
    for b in range(4):
        _close(batched[:, b], single(*[a[:, b] for a in args]))


def test_lambda_as_traced_array_under_jit_and_vmap():
    # A sweep vmaps over λ: the estimators must accept it as a traced scalar.
    d = _random_trajectory(4, (T,))

    @jax.jit
    @jax.vmap
    def both(lambda_):
        returns = lambda_returns(d["rewards"], d["next_values"], d["discounts"], d["dones"],
                                 lambda_)
        advantages = gae(d["rewards"], d["values"], d["next_values"], d["discounts"], d["dones"],
                         lambda_)
        return returns, advantages

    returns, advantages = both(_f32([0.0, 0.5, 1.0]))
    for i, lambda_ in enumerate([0.0, 0.5, 1.0]):
        _close(returns[i], lambda_returns(d["rewards"], d["next_values"], d["discounts"],
                                          d["dones"], lambda_))
        _close(advantages[i], gae(d["rewards"], d["values"], d["next_values"], d["discounts"],
                                  d["dones"], lambda_))


# --------------------------------------------------------------------------------------------
# Agreement with rlax (test oracle only). rlax's v_t is our next_values: V(s_{t+1}).
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("lambda_", [0.0, 0.5, 0.95, 1.0])
def test_lambda_returns_match_rlax_without_dones(seed, lambda_):
    # rlax starts its scan from v_t[-1]; ours cuts the last step and bootstraps next_values[T-1].
    d = _random_trajectory(seed, (T,), terminate_p=0.0, truncate_p=0.0)
    expected = _rlax_lambda_returns(_f32(d["rewards"]), _f32(d["discounts"]),
                                   _f32(d["next_values"]), lambda_)
    ours = _lambda_returns(d["rewards"], d["next_values"], d["discounts"],
                          np.zeros(T, np.float32), lambda_)
    _close(ours, expected)


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("lambda_", [0.0, 0.5, 0.95, 1.0])
def test_gae_matches_rlax_without_dones(seed, lambda_):
    rng = np.random.default_rng(seed)
    rewards = _f32(rng.normal(size=T))
    values = _f32(rng.normal(size=T + 1))
    discounts = _f32(np.full(T, GAMMA))
    expected = _rlax_gae(rewards, discounts, lambda_,
                                                               values)
    ours = _gae(rewards, values[:-1], values[1:], discounts, jnp.zeros(T), lambda_)
    _close(ours, expected)


# rlax.n_step_bootstrapped_returns pads the sequence end with reward 0, discount 1 and value
# v_t[-1], so a window that runs past T bootstraps from v_t[-1] = next_values[T-1]: the same as
# our window stopping at T. With lambda_t = 1 its recursion is the plain n-step sum, so the two
# coincide whenever no episode is cut inside the sequence other than by a zero discount.
@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("n", [1, 2, 3, T, T + 2])
def test_n_step_returns_match_rlax_without_dones(seed, n):
    d = _random_trajectory(seed, (T,), terminate_p=0.0, truncate_p=0.0)
    expected = _rlax_n_step_returns(_f32(d["rewards"]), _f32(d["discounts"]),
                                                _f32(d["next_values"]), n)
    ours = _n_step_returns(d["rewards"], d["next_values"], d["discounts"],
                          np.zeros(T, np.float32), n=n)
    _close(ours, expected)


@pytest.mark.parametrize("seed", SEEDS)
def test_terminations_only_match_rlax(seed):
    # A zero discount already stops rlax's recursions, so with dones = terminated and no
    # truncation both libraries must agree.
    d = _random_trajectory(seed, (T,), terminate_p=0.3, truncate_p=0.0)
    assert d["terminated"].any()
    rewards, discounts = _f32(d["rewards"]), _f32(d["discounts"])
    values = jnp.concatenate([_f32(d["values"]), _f32(d["next_values"][-1:])])
    next_values = values[1:]
    dones = d["terminated"]

    _close(_lambda_returns(rewards, next_values, discounts, dones, LAMBDA),
           _rlax_lambda_returns(rewards, discounts, next_values, LAMBDA))
    _close(_gae(rewards, values[:-1], next_values, discounts, dones, LAMBDA),
           _rlax_gae(rewards, discounts, LAMBDA, values))
    for n in (1, 2, 3):
        _close(_n_step_returns(rewards, next_values, discounts, dones, n=n),
               _rlax_n_step_returns(rewards, discounts, next_values, n))


# --------------------------------------------------------------------------------------------
# Policy, value and entropy losses.
# --------------------------------------------------------------------------------------------


def test_policy_gradient_loss_by_hand():
    # L = -mean(logπ · A) = -mean([-1*2, -2*-1, -.5*4, -3*1]) = -mean([-2, 2, -2, -3]) = 1.25
    log_probs = _f32([-1.0, -2.0, -0.5, -3.0])
    advantages = _f32([2.0, -1.0, 4.0, 1.0])
    _close(policy_gradient_loss(log_probs, advantages), 1.25)


def test_policy_gradient_loss_gradient():
    # dL/dlogπ = -A / N = -[2, -1, 4, 1] / 4; advantages are stop-gradiented.
    log_probs = _f32([-1.0, -2.0, -0.5, -3.0])
    advantages = _f32([2.0, -1.0, 4.0, 1.0])
    grad_log_probs, grad_advantages = jax.grad(policy_gradient_loss, argnums=(0, 1))(
        log_probs, advantages)
    _close(grad_log_probs, [-0.5, 0.25, -1.0, -0.25])
    _close(grad_advantages, [0.0, 0.0, 0.0, 0.0])


CLIP_EPS = 0.2

# (ratio, advantage, min(ρA, clip(ρ, .8, 1.2) A)) with ε = 0.2:
PPO_CASES = [
    (1.1, 2.0, 2.2),     # inside: ρA = 2.2
    (0.9, -1.0, -0.9),   # inside: ρA = -0.9
    (1.5, 1.0, 1.2),     # above, A > 0: min(1.5, 1.2) = 1.2 (clipped, advantageous side)
    (1.5, -1.0, -1.5),   # above, A < 0: min(-1.5, -1.2) = -1.5 (unclipped)
    (0.5, 1.0, 0.5),     # below, A > 0: min(0.5, 0.8) = 0.5 (unclipped)
    (0.5, -2.0, -1.6),   # below, A < 0: min(-1.0, -1.6) = -1.6 (clipped, advantageous side)
]


@pytest.mark.parametrize(("ratio", "advantage", "objective"), PPO_CASES)
def test_ppo_clip_loss_single_sample_by_hand(ratio, advantage, objective):
    old_log_probs = _f32([-1.0])
    log_probs = old_log_probs + np.log(np.float32(ratio))
    loss = ppo_clip_loss(log_probs, old_log_probs, _f32([advantage]), CLIP_EPS)
    _close(loss, -objective)


def test_ppo_clip_loss_mean_by_hand():
    # Objectives [2.2, -0.9, 1.2, -1.5, 0.5, -1.6] sum to -0.1; loss = -(-0.1)/6 = 1/60.
    ratios, advantages, _ = (np.asarray(c, np.float32) for c in zip(*PPO_CASES, strict=True))
    old_log_probs = _f32(np.linspace(-2.0, -0.5, len(ratios)))
    log_probs = old_log_probs + np.log(ratios)
    loss = ppo_clip_loss(log_probs, old_log_probs, _f32(advantages), CLIP_EPS)
    np.testing.assert_allclose(np.asarray(loss), 1.0 / 60.0, rtol=1e-4)


def test_ppo_clip_loss_gradient():
    # d(-ρA/N)/dlogπ = -ρA/N where unclipped; zero where the clip is active (advantageous side).
    ratios, advantages, _ = (np.asarray(c, np.float32) for c in zip(*PPO_CASES, strict=True))
    old_log_probs = _f32(np.zeros(len(ratios)))
    log_probs = _f32(np.log(ratios))
    grad_log_probs, grad_advantages = jax.grad(ppo_clip_loss, argnums=(0, 2))(
        log_probs, old_log_probs, _f32(advantages), CLIP_EPS)
    n = len(ratios)
    # Cases: inside, inside, clipped, unclipped, unclipped, clipped.
    expected = [-1.1 * 2.0 / n, 0.9 / n, 0.0, 1.5 / n, -0.5 / n, 0.0]
    _close(grad_log_probs, expected)
    _close(grad_advantages, np.zeros(n))


def test_value_loss_unclipped_by_hand():
    # ½ mean((V - G)²) = ½ mean([(1-2)², (2-0)², (3-3)²]) = ½ · 5/3 = 0.8333…
    values, targets = _f32([1.0, 2.0, 3.0]), _f32([2.0, 0.0, 3.0])
    _close(value_loss(values, targets), 5.0 / 6.0)
    # old_values alone (no clip_eps) leaves the loss unclipped.
    _close(value_loss(values, targets, old_values=_f32([0.0, 2.5, 1.0])), 5.0 / 6.0)


def test_value_loss_clipped_by_hand():
    # ε = .5, V_old = [0, 2.5, 1]; V - V_old = [1, -.5, 2] → clipped [.5, -.5, .5]
    # V_clip = [.5, 2, 1.5]; (V_clip - G)² = [2.25, 4, 2.25]; (V - G)² = [1, 4, 0]
    # max = [2.25, 4, 2.25] → ½ · 8.5/3 = 1.41666…
    values, targets = _f32([1.0, 2.0, 3.0]), _f32([2.0, 0.0, 3.0])
    loss = value_loss(values, targets, old_values=_f32([0.0, 2.5, 1.0]), clip_eps=0.5)
    _close(loss, 8.5 / 6.0)


def test_value_loss_gradient_flows_to_values_only():
    # d/dV ½ mean((V - G)²) = (V - G)/N = [-1, 2, 0]/3; targets are stop-gradiented.
    values, targets = _f32([1.0, 2.0, 3.0]), _f32([2.0, 0.0, 3.0])
    grad_values, grad_targets = jax.grad(value_loss, argnums=(0, 1))(values, targets)
    _close(grad_values, [-1.0 / 3.0, 2.0 / 3.0, 0.0])
    _close(grad_targets, [0.0, 0.0, 0.0])


def test_entropy_loss_by_hand():
    # -mean([1, 2, .5, .5]) = -1
    _close(entropy_loss(_f32([1.0, 2.0, 0.5, 0.5])), -1.0)


def test_approx_kl_zero_when_equal():
    log_probs = _f32([-1.0, -0.3, -2.5])
    _close(approx_kl(log_probs, log_probs), 0.0)


def test_approx_kl_by_hand():
    # log ρ = [ln 2, 0]: ((2 - 1 - ln 2) + (1 - 1 - 0)) / 2 = (1 - ln 2) / 2 = 0.153426…
    old_log_probs = _f32([-1.0, -0.5])
    log_probs = old_log_probs + _f32([np.log(2.0), 0.0])
    _close(approx_kl(log_probs, old_log_probs), (1.0 - np.log(2.0)) / 2.0)


def test_approx_kl_is_non_negative():
    rng = np.random.default_rng(0)
    log_probs, old_log_probs = (_f32(rng.normal(size=64)) for _ in range(2))
    assert float(approx_kl(log_probs, old_log_probs)) >= 0.0


def test_clip_fraction_by_hand():
    # ε = .2: ratios [1.1, 1.3, 1.5, .5, .75, .9, 1.0, 1.15]
    # → outside [.8, 1.2]: 1.3, 1.5, .5, .75 (two above, two below) → 4/8
    ratios = np.asarray([1.1, 1.3, 1.5, 0.5, 0.75, 0.9, 1.0, 1.15], np.float32)
    old_log_probs = _f32(np.linspace(-2.0, -0.5, len(ratios)))
    _close(clip_fraction(old_log_probs + np.log(ratios), old_log_probs, CLIP_EPS), 0.5)


# --------------------------------------------------------------------------------------------
# Errors.
# --------------------------------------------------------------------------------------------


def _mismatched_inputs():
    good = _f32([1.0, 2.0, 3.0, 4.0])
    short = _f32([1.0, 2.0, 3.0])
    column = good[:, None]
    return good, short, column


@pytest.mark.parametrize("bad", ["short", "column"])
def test_mismatched_shapes_raise(bad):
    good, short, column = _mismatched_inputs()
    other = {"short": short, "column": column}[bad]
    with pytest.raises(ValueError):
        td_errors(good, good, other, good)
    with pytest.raises(ValueError):
        lambda_returns(good, good, good, other, LAMBDA)
    with pytest.raises(ValueError):
        discounted_returns(good, other)
    with pytest.raises(ValueError):
        discounted_returns(good, good, good, other)
    with pytest.raises(ValueError):
        n_step_returns(good, other, good, good, n=2)
    with pytest.raises(ValueError):
        gae(good, good, good, good, other, LAMBDA)


def test_scalar_inputs_raise():
    scalar = _f32(1.0)
    with pytest.raises(ValueError):
        td_errors(scalar, scalar, scalar, scalar)
    with pytest.raises(ValueError):
        gae(scalar, scalar, scalar, scalar, scalar, LAMBDA)


@pytest.mark.parametrize("n", [0, -1])
def test_n_step_rejects_non_positive_n(n):
    good = _f32([1.0, 2.0])
    with pytest.raises(ValueError):
        n_step_returns(good, good, good, good, n=n)
