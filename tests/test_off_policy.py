"""Off-policy building blocks with hand-worked values: Bellman / double-Q / soft / n-step targets,
Polyak updates, the SAC temperature loss, ε schedule, and the replay buffer (n-step windows,
termination vs truncation, wrap-around, compact image storage)."""

from __future__ import annotations

from functools import partial

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from numpy.testing import assert_allclose

from jaxrl import envs, losses
from jaxrl.envs import Box, Discrete
from jaxrl.replay import ReplayBuffer, storage_dtype
from jaxrl.training import off_policy, optim, q_learning


@pytest.fixture(autouse=True)
def strict_rank_promotion():
    with jax.numpy_rank_promotion("raise"):
        yield


# ----------------------------------------------------------------------------------------------
# Targets


def test_bellman_target_is_reward_plus_discounted_next_value():
    # y = r + γ_m (1 - terminated) v': 1 + 0.9·2 = 2.8; terminated (discount 0): 0.5.
    targets = losses.bellman_target(jnp.array([1.0, 0.5]), jnp.array([0.9, 0.0]),
                                    jnp.array([2.0, 7.0]))
    assert_allclose(targets, [2.8, 0.5], rtol=1e-6)


def test_bellman_target_rejects_mismatched_shapes():
    with pytest.raises(ValueError, match="share one shape"):
        losses.bellman_target(jnp.ones(3), jnp.ones(3), jnp.ones(2))


def test_double_q_target_evaluates_the_online_argmax_with_the_target_network():
    online = jnp.array([[1.0, 3.0, 2.0], [5.0, 0.0, 1.0]])   # argmax: 1, 0
    target = jnp.array([[10.0, 20.0, 30.0], [-1.0, 4.0, 9.0]])
    # Double Q: target[0, 1] = 20, target[1, 0] = -1 (plain max would give 30 and 9).
    assert_allclose(losses.double_q_next_value(online, target), [20.0, -1.0])


def test_soft_value_is_alpha_logsumexp_and_tends_to_max():
    q = jnp.array([[1.0, 2.0]])
    # α log(e^{1/α} + e^{2/α}) at α = 1: log(e + e²) = 2 + log(1 + e^-1) = 2.3132617
    assert_allclose(losses.soft_value(q, 1.0), [2.3132617], rtol=1e-6)
    assert_allclose(losses.soft_value(q, 1e-3), [2.0], rtol=1e-5)


def test_n_step_transition_without_episode_end():
    # r = 1, 2, 3; γ = 0.5: G = 1 + 0.5·2 + 0.25·3 = 2.75, γ^3 = 0.125, bootstrap from step 2.
    rewards = jnp.array([[1.0], [2.0], [3.0]])
    never = jnp.zeros((3, 1), bool)
    returns, discounts, last = losses.n_step_transition(rewards, never, never, 0.5)
    assert_allclose(returns, [2.75])
    assert_allclose(discounts, [0.125])
    assert last.tolist() == [2]


def test_n_step_transition_stops_at_termination_inside_the_window():
    # Terminated at step 1: G = 1 + 0.5·2 = 2, no bootstrap (discount 0), reward 3 excluded.
    rewards = jnp.array([[1.0], [2.0], [3.0]])
    terminated = jnp.array([[False], [True], [False]])
    returns, discounts, last = losses.n_step_transition(rewards, terminated,
                                                        jnp.zeros_like(terminated), 0.5)
    assert_allclose(returns, [2.0])
    assert_allclose(discounts, [0.0])
    assert last.tolist() == [1]


def test_n_step_transition_truncation_keeps_the_discount_and_bootstraps_there():
    # Truncated at step 0: G = 1, discount γ = 0.5, bootstrap from step 0's final_obs.
    rewards = jnp.array([[1.0], [2.0], [3.0]])
    truncated = jnp.array([[True], [False], [False]])
    returns, discounts, last = losses.n_step_transition(rewards, jnp.zeros_like(truncated),
                                                        truncated, 0.5)
    assert_allclose(returns, [1.0])
    assert_allclose(discounts, [0.5])
    assert last.tolist() == [0]


def test_sac_alpha_moves_towards_the_target_entropy():
    grad = jax.grad(losses.sac_alpha_loss)
    target_entropy = -1.0
    # Entropy -E[log π] = -2 is below the target -1: log π + H̄ = 2 - 1 > 0 → gradient < 0,
    # so gradient descent raises log α (more exploration).
    assert grad(jnp.float32(0.0), jnp.full((8,), 2.0), target_entropy) < 0
    # Entropy 3 above the target: log π + H̄ = -3 - 1 < 0 → gradient > 0, α falls.
    assert grad(jnp.float32(0.0), jnp.full((8,), -3.0), target_entropy) > 0
    # Exactly at the target the gradient vanishes.
    assert grad(jnp.float32(0.0), jnp.full((8,), 1.0), target_entropy) == 0


# ----------------------------------------------------------------------------------------------
# Target networks and schedules


def test_polyak_tau_one_copies_tau_zero_keeps_and_tau_mixes():
    online = {"w": jnp.array([1.0, 2.0])}
    target = {"w": jnp.array([3.0, 6.0])}
    count = jnp.int32(4)
    assert_allclose(optim.polyak_update(online, target, 1.0, count)["w"], [1.0, 2.0])
    assert_allclose(optim.polyak_update(online, target, 0.0, count)["w"], [3.0, 6.0])
    # τ = 0.25: 0.25·1 + 0.75·3 = 2.5, 0.25·2 + 0.75·6 = 5.
    assert_allclose(optim.polyak_update(online, target, 0.25, count)["w"], [2.5, 5.0])


def test_polyak_update_only_every_frequency_updates():
    online, target = {"w": jnp.ones(2)}, {"w": jnp.zeros(2)}
    assert_allclose(optim.polyak_update(online, target, 1.0, jnp.int32(3), 2)["w"], [0, 0])
    assert_allclose(optim.polyak_update(online, target, 1.0, jnp.int32(4), 2)["w"], [1, 1])


def test_every_is_static_true_for_the_python_constant_one_only():
    assert optim.every(jnp.int32(3), 1) is True
    assert bool(optim.every(jnp.int32(4), 2)) and not bool(optim.every(jnp.int32(3), 2))
    # A traced frequency (a hyperparameter sweep) keeps the computed predicate, even at 1.
    predicate = jax.jit(lambda f: optim.every(jnp.int32(3), f))(jnp.int32(1))
    assert bool(predicate)
    assert not bool(jax.jit(lambda f: optim.every(jnp.int32(3), f))(jnp.int32(2)))


def test_masked_with_static_true_returns_new_without_a_select():
    new, old = {"w": jnp.ones(2)}, {"w": jnp.zeros(2)}
    assert optim.masked(True, new, old) is new
    jaxpr = jax.make_jaxpr(lambda n, o: optim.polyak_update(n, o, 0.5, jnp.int32(3)))(
        new, old)
    assert "select_n" not in str(jaxpr)
    assert "select_n" in str(jax.make_jaxpr(
        lambda n, o: optim.polyak_update(n, o, 0.5, jnp.int32(3), 2))(new, old))
    assert_allclose(optim.masked(jnp.bool_(False), new, old)["w"], [0, 0])


def test_linear_epsilon_decays_then_stays_at_the_end_value():
    eps = [float(q_learning.linear_epsilon(1.0, 0.1, 100.0, jnp.float32(t)))
           for t in (0, 50, 100, 1000)]
    assert_allclose(eps, [1.0, 0.55, 0.1, 0.1], rtol=1e-6)
    assert float(q_learning.linear_epsilon(1.0, 0.1, 0.0, jnp.float32(0))) == pytest.approx(0.1)


# ----------------------------------------------------------------------------------------------
# Replay buffer


@partial(jax.jit, static_argnames=("rows", "steps", "num_envs", "terminated_at", "truncated_at"))
def filled_buffer(rows: int, steps: int, num_envs: int = 1, terminated_at=(),
                  truncated_at=()) -> ReplayBuffer:
    """Step t of env e: obs = 100 e + t, next_obs = obs + 0.5, reward = t. Compiled: one program
    per buffer, where the eager writes compiled each of their operations."""
    t = jnp.arange(steps, dtype=jnp.float32)[:, None] + 100.0 * jnp.arange(num_envs)[None]
    terminated = jnp.zeros((steps, num_envs), bool).at[jnp.array(terminated_at, int)].set(True)
    truncated = jnp.zeros((steps, num_envs), bool).at[jnp.array(truncated_at, int)].set(True)
    buffer = ReplayBuffer.create(rows * num_envs, num_envs, (1,), (), jnp.int32)
    for i in range(steps):  # one vectorised step at a time, as the agents write
        step = slice(i, i + 1)
        buffer = buffer.extend(t[step, :, None], jnp.zeros((1, num_envs), jnp.int32),
                               t[step] - 100.0 * jnp.arange(num_envs)[None], terminated[step],
                               truncated[step], t[step, :, None] + 0.5)
    return buffer


sample_buffer = jax.jit(ReplayBuffer.sample, static_argnums=(2, 3))
"""``sample_buffer(buffer, key, batch_size, n_step, gamma)``, compiled once per shape."""


def test_buffer_counts_rows_and_wraps_over_the_oldest():
    buffer = filled_buffer(rows=4, steps=6)
    assert int(buffer.size) == 4 and int(buffer.pointer) == 2
    # Rows hold steps 4, 5, 2, 3 (steps 0 and 1 were overwritten).
    assert buffer.obs[:, 0, 0].tolist() == [4.0, 5.0, 2.0, 3.0]


def test_one_step_samples_are_stored_transitions():
    buffer = filled_buffer(rows=8, steps=5, num_envs=2)
    sample = sample_buffer(buffer, jax.random.key(0), 256, 1, 0.9)
    assert_allclose(sample.next_obs, sample.obs + 0.5)
    assert_allclose(sample.reward, np.mod(sample.obs[:, 0], 100.0))
    assert_allclose(sample.discount, 0.9)
    assert set(np.asarray(sample.obs[:, 0]).tolist()) == {0, 1, 2, 3, 4, 100, 101, 102, 103, 104}


def test_n_step_windows_never_cross_the_newest_row_even_after_wrapping():
    buffer = filled_buffer(rows=6, steps=9)           # holds steps 3..8; newest 8
    sample = sample_buffer(buffer, jax.random.key(1), 512, 3, 0.5)
    starts = np.asarray(sample.obs[:, 0])
    assert set(starts.tolist()) == {3.0, 4.0, 5.0, 6.0}  # 3-step windows end by step 8
    # Window t, t+1, t+2: G = t + 0.5 (t+1) + 0.25 (t+2), bootstrap from step t+2.
    assert_allclose(sample.reward, starts + 0.5 * (starts + 1) + 0.25 * (starts + 2))
    assert_allclose(sample.next_obs[:, 0], starts + 2.5)
    assert_allclose(sample.discount, 0.125)


def test_n_step_sample_stops_at_termination_and_bootstraps_at_truncation():
    buffer = filled_buffer(rows=8, steps=6, terminated_at=(1,), truncated_at=(3,))
    sample = sample_buffer(buffer, jax.random.key(2), 512, 3, 0.5)
    by_start = {float(s): (float(r), float(d), float(n)) for s, r, d, n in zip(
        sample.obs[:, 0], sample.reward, sample.discount, sample.next_obs[:, 0], strict=True)}
    # Start 0: steps 0, 1; terminated at 1 → G = 0 + 0.5·1, no bootstrap.
    assert by_start[0.0][:2] == pytest.approx((0.5, 0.0))
    # Start 2: steps 2, 3; truncated at 3 → G = 2 + 0.5·3 = 3.5, γ² = 0.25, from final obs 3.5.
    assert by_start[2.0] == pytest.approx((3.5, 0.25, 3.5))
    # Start 1: terminated at its first step → G = 1, discount 0.
    assert by_start[1.0][:2] == pytest.approx((1.0, 0.0))


def test_image_observations_are_stored_as_uint8():
    env, params = envs.make("Breakout-MinAtar")
    space = env.observation_space(params)
    assert storage_dtype(space) == jnp.uint8
    cartpole, cartpole_params = envs.make("CartPole-v1")
    assert storage_dtype(cartpole.observation_space(cartpole_params)) == jnp.float32

    @jax.jit
    def store_and_sample(key):
        # One compiled program: eagerly, MinAtar's reset alone compiles a hundred small ops.
        buffer = ReplayBuffer.create(8, 2, space.shape, (), jnp.int32, storage_dtype(space))
        obs, _ = env.reset(key, params)
        batch = jnp.broadcast_to(obs, (1, 2, *obs.shape))
        buffer = buffer.extend(batch, jnp.zeros((1, 2), jnp.int32), jnp.zeros((1, 2)),
                               jnp.zeros((1, 2), bool), jnp.zeros((1, 2), bool), batch)
        return obs, buffer, buffer.sample(key, 4)

    obs, buffer, sample = store_and_sample(jax.random.key(0))
    assert buffer.obs.dtype == jnp.uint8
    assert sample.obs.dtype == jnp.float32
    assert_allclose(sample.obs[0], obs)


def test_buffer_rejects_capacity_not_divisible_by_envs_and_oversized_writes():
    with pytest.raises(ValueError, match="multiple of num_envs"):
        ReplayBuffer.create(10, 4, (1,), (), jnp.int32)
    buffer = ReplayBuffer.create(4, 1, (1,), (), jnp.int32)
    with pytest.raises(ValueError, match="raise buffer_size"):
        buffer.extend(jnp.zeros((5, 1, 1)), jnp.zeros((5, 1), jnp.int32), jnp.zeros((5, 1)),
                      jnp.zeros((5, 1), bool), jnp.zeros((5, 1), bool), jnp.zeros((5, 1, 1)))


def test_spaces_for_setup_are_checked():
    cartpole, cartpole_params = envs.make("CartPole-v1")
    pendulum, pendulum_params = envs.make("Pendulum-v1")
    with pytest.raises(TypeError, match="use sac, td3 or ddpg"):
        off_policy.setup(pendulum, pendulum_params, "DQN", Discrete)
    with pytest.raises(TypeError, match="use dqn or soft_q"):
        off_policy.setup(cartpole, cartpole_params, "SAC", Box)
    parts = off_policy.setup(pendulum, pendulum_params, "SAC", Box)
    assert float(parts.action_space.low) == -1.0 and float(parts.action_space.high) == 1.0
    assert parts.eval_steps == 200
