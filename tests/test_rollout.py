"""Tests for ``jaxrl.rollout``: ``bootstrap_values`` (``V(final_obs)`` from the rollout's own
values plus the last step and the (statically bounded) truncated steps, against the dense pass)
and ``random_permutation`` (PPO's minibatch shuffle)."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import struct
from scipy import stats
from test_envs import CounterEnv, CounterParams

from jaxrl import envs
from jaxrl.rollout import (
    bootstrap_values,
    random_permutation,
    reset_envs,
    rollout,
    shuffled_minibatches,
)


def _collect(env, params, num_envs, num_steps, value_fn, key=0):
    """A random-policy rollout that stores ``value_fn(obs)`` as the agents' policies do."""
    space = env.action_space(params)

    def policy(key, obs):
        actions = jax.vmap(space.sample)(jax.random.split(key, obs.shape[0]))
        return actions, {"value": value_fn(obs)}

    obs, state = reset_envs(jax.random.key(key), env, params, num_envs)
    return rollout(jax.random.key(key + 1), env, params, state, obs, policy, num_steps)[2]


def _identity(obs):
    return obs.astype(jnp.float32)


def test_counter_bootstrap_values_by_hand():
    # Limit 3, one env, V(obs) = obs: the final observations run 1,2,3 | 1,2,3 | 1 and so must
    # the bootstrap values; the rollout's own values (V of the obs before each step) are 0,1,2,…
    env, params = CounterEnv(), CounterParams(max_steps_in_episode=3)
    traj = _collect(env, params, 1, 7, _identity)
    np.testing.assert_array_equal(traj.extras["value"][:, 0], [0, 1, 2, 0, 1, 2, 0])
    next_value = bootstrap_values(_identity, traj, traj.extras["value"],
                                  env.max_truncations(params, 7))
    np.testing.assert_array_equal(next_value[:, 0], [1, 2, 3, 1, 2, 3, 1])


def test_termination_gets_a_value_that_its_zero_discount_ignores():
    # Terminates at 2 (limit 5 never reached): where terminated the result is V of the next
    # episode's first obs (0), everywhere else V(final_obs).
    env, params = CounterEnv(), CounterParams(max_steps_in_episode=5, terminate_at=2)
    traj = _collect(env, params, 1, 6, _identity)
    next_value = bootstrap_values(_identity, traj, traj.extras["value"],
                                  env.max_truncations(params, 6))
    np.testing.assert_array_equal(traj.terminated[:, 0], [0, 1] * 3)
    np.testing.assert_array_equal(next_value[:, 0], [1, 0, 1, 0, 1, 2])


@pytest.mark.parametrize(("env_id", "limit", "num_envs", "num_steps"), [
    ("CartPole-v1", 7, 4, 32),     # many cuts: every budget row is used
    ("CartPole-v1", 500, 4, 64),   # the benchmark's case: one row per env for the cuts
    ("Pendulum-v1", 20, 3, 50),    # continuous observations, cuts in lockstep
])
def test_sparse_bootstrap_equals_the_dense_pass_where_it_is_used(env_id, limit, num_envs,
                                                                 num_steps):
    env, params = envs.make(env_id)
    params = params.replace(max_steps_in_episode=limit)
    weights = jax.random.normal(jax.random.key(7), env.observation_space(params).shape)

    def value_fn(obs):
        return jnp.tanh(obs @ weights)

    bound = envs.EpisodeStatistics(env).max_truncations(params, num_steps)

    @jax.jit
    def sparse_and_dense(key):
        traj = _collect(env, params, num_envs, num_steps, value_fn, key)
        return traj, bootstrap_values(value_fn, traj, traj.extras["value"], bound), value_fn(
            traj.next_obs)

    for key in range(3):
        traj, sparse, dense = sparse_and_dense(key)
        used = ~np.asarray(traj.terminated)
        np.testing.assert_allclose(np.asarray(sparse)[used], np.asarray(dense)[used],
                                   rtol=1e-6, atol=1e-6)
    if limit < num_steps:
        assert traj.truncated.sum() > 0


def test_unknown_bound_or_no_saving_evaluates_every_final_observation():
    env, params = CounterEnv(), CounterParams(max_steps_in_episode=1)
    traj = _collect(env, params, 2, 4, _identity)
    calls = []

    def value_fn(obs):
        calls.append(obs.shape)
        return _identity(obs)

    for bound in (None, env.max_truncations(params, 4)):  # None, then 4 (cut every step)
        calls.clear()
        np.testing.assert_array_equal(
            bootstrap_values(value_fn, traj, traj.extras["value"], bound), traj.next_obs)
        assert calls == [(4, 2)]


def test_without_a_time_limit_only_the_last_step_is_evaluated():
    class NoLimit(struct.PyTreeNode):  # params without max_steps_in_episode
        terminate_at: int = 0

    env, params = CounterEnv(), NoLimit()
    traj = _collect(env, params, 3, 5, _identity)
    calls = []

    def value_fn(obs):
        calls.append(obs.shape)
        return _identity(obs)

    next_value = bootstrap_values(value_fn, traj, traj.extras["value"],
                                  env.max_truncations(params, 5))
    assert calls == [(1, 3)]
    np.testing.assert_array_equal(next_value, traj.next_obs)


def test_vmapped_seeds_match_single_runs():
    env, params = CounterEnv(), CounterParams(max_steps_in_episode=3)

    def one(key):
        traj = _collect(env, params, 2, 8, _identity, key)
        return bootstrap_values(_identity, traj, traj.extras["value"],
                                env.max_truncations(params, 8))

    batched = jax.jit(jax.vmap(one))(jnp.arange(3))
    single = jax.jit(one)
    for seed in range(3):
        np.testing.assert_array_equal(batched[seed], single(seed))


@pytest.mark.parametrize(("num_steps", "num_envs", "k"), [(8, 3, 1), (8, 3, 2), (7, 6, 4)])
def test_cut_steps_are_top_k_of_the_truncation_flags(num_steps, num_envs, k):
    # bootstrap_values picks each env's cut steps by k first-maximum reductions; lax.top_k (a
    # sort) gives the same indices: cuts in time order, then the earliest uncut steps.
    from jaxrl.rollout import _first_cut_steps

    rng = np.random.default_rng(num_steps * k)
    for p in (0.0, 0.2, 0.6, 1.0):
        truncated = jnp.asarray(rng.random((num_steps, num_envs)) < p)
        expected = jax.lax.top_k(truncated.T.astype(jnp.int32), k)[1].T
        np.testing.assert_array_equal(_first_cut_steps(truncated, k), expected)


# ----------------------------------------------------------------------------------------------
# random_permutation


@pytest.mark.parametrize("n", [1, 2, 3, 7, 512, 1000, 2**16, 2**16 + 1])
def test_random_permutation_is_a_permutation_and_a_function_of_the_key(n):
    # 2**16 + 1 needs more than 3 rounds and is jax.random.permutation's.
    perm = random_permutation(jax.random.key(3), n)
    assert perm.dtype == jnp.int32 and perm.shape == (n,)
    np.testing.assert_array_equal(np.sort(np.asarray(perm)), np.arange(n))
    np.testing.assert_array_equal(perm, random_permutation(jax.random.key(3), n))
    if n > 2:
        assert not np.array_equal(perm, random_permutation(jax.random.key(4), n))


def test_random_permutation_is_uniform():
    # All 3! orders of 3 elements equally often, and every element equally often at every
    # position of 8 (chi-square; a fixed key, so the test is deterministic).
    keys = jax.random.split(jax.random.key(0), 12_000)
    perms = np.asarray(jax.jit(jax.vmap(lambda k: random_permutation(k, 3)))(keys))
    _, counts = np.unique(perms, axis=0, return_counts=True)
    assert len(counts) == 6 and stats.chisquare(counts).pvalue > 1e-3, counts
    perms = np.asarray(jax.jit(jax.vmap(lambda k: random_permutation(k, 8)))(keys))
    table = np.stack([np.bincount(perms[:, i], minlength=8) for i in range(8)])
    assert stats.chisquare(table.ravel()).pvalue > 1e-3, table


def test_shuffled_minibatches_split_one_shuffle_of_the_flattened_batch():
    batch = {"x": jnp.arange(2 * 8 * 3).reshape(2, 8, 3), "y": jnp.arange(16).reshape(2, 8)}
    minibatches = shuffled_minibatches(jax.random.key(1), batch, 4)
    assert minibatches["x"].shape == (4, 4, 3) and minibatches["y"].shape == (4, 4)
    order = np.asarray(minibatches["y"]).ravel()  # y is the flat index of each sample
    np.testing.assert_array_equal(np.sort(order), np.arange(16))
    np.testing.assert_array_equal(np.asarray(minibatches["x"]).reshape(16, 3),
                                  np.asarray(batch["x"]).reshape(16, 3)[order])
    np.testing.assert_array_equal(order, random_permutation(jax.random.key(1), 16))
