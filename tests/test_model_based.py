"""Learned dynamics models, the known reward table, and the model-based agents' bad input.

One ensemble is fitted once per module (``fitted``) to a hand-made linear system and serves the
fit, uncertainty and dynamics tests. The family's learning test (PETS on Pendulum-v1) is
slow-marked; bigger runs, and Dyna-Q against Q-learning, are ``benchmarks/model_based.py``.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from helpers import optimised_jit

from jaxrl import envs
from jaxrl.agents import dyna, mbrl, pets
from jaxrl.envs.dynamics import base_env, dynamics_from_env, simulator_state
from jaxrl.envs.rewards import KNOWN_FUNCTIONS, known_functions
from jaxrl.envs.spaces import Box
from jaxrl.models.dynamics import (
    ModelBatch,
    Normalizer,
    bootstrap_indices,
    initial_particles,
    learned_dynamics,
    make_dynamics_model,
)

pytestmark = pytest.mark.xdist_group("model_based")

# s' = A s + B a on s ∈ [-1, 1]², a ∈ [-1, 1].
A = np.array([[0.9, 0.1], [0.0, 0.8]], np.float32)
B = np.array([[0.0], [0.5]], np.float32)
MEMBERS = 4


def _linear_model(probabilistic=True):
    return make_dynamics_model(Box(-1.0, 1.0, (2,), jnp.float32),
                               Box(-1.0, 1.0, (1,), jnp.float32), num_members=MEMBERS,
                               hidden_sizes=(32, 32), activation="swish",
                               probabilistic=probabilistic, learning_rate=3e-3,
                               weight_decay=0.0, reward_fn=lambda s, a, n, p: -jnp.sum(s ** 2),
                               termination_fn=lambda s, a, n, p: jnp.zeros((), bool))


@pytest.fixture(scope="module")
def fitted():
    """A probabilistic ensemble fitted to 256 transitions of the linear system, each member
    on its own bootstrap resample."""
    model = _linear_model()
    rng = np.random.default_rng(0)
    obs = rng.uniform(-1, 1, (256, 2)).astype(np.float32)
    action = rng.uniform(-1, 1, (256, 1)).astype(np.float32)
    data = jax.tree.map(jnp.asarray, ModelBatch(obs, action, np.zeros(256, np.float32),
                                                np.zeros(256, bool), obs @ A.T + action @ B.T))
    state = jax.jit(lambda key: model.observe(model.init(key), data))(jax.random.key(0))

    @jax.jit
    def fit(state, key):
        resample = bootstrap_indices(key, MEMBERS, 256, 256)

        def step(state, key):
            positions = jax.random.randint(key, (MEMBERS, 64), 0, 256)
            batch = jax.tree.map(lambda x: x[jnp.take_along_axis(resample, positions, 1)],
                                 data)
            grads, metrics = jax.grad(model.loss, has_aux=True)(state.params, state, batch)
            updates, opt_state = model.optimizer.update(grads, state.opt_state, state.params)
            return state.replace(params=optax.apply_updates(state.params, updates),
                                 opt_state=opt_state), metrics["model_mse"]

        return jax.lax.scan(step, state, jax.random.split(key, 750))

    state, mse = fit(state, jax.random.key(1))
    return model, state, np.asarray(mse)


def test_ensemble_fits_a_known_linear_system(fitted):
    model, state, mse = fitted
    assert mse[-1] < 0.05 * mse[0]
    obs = jnp.array([[0.5, -0.5], [-0.2, 0.7]])
    action = jnp.array([[0.3], [-0.8]])
    next_obs, std, reward, done = model.predict(state, jnp.broadcast_to(obs, (MEMBERS, 2, 2)),
                                                jnp.broadcast_to(action, (MEMBERS, 2, 1)))
    np.testing.assert_allclose(next_obs, np.broadcast_to(obs @ A.T + action @ B.T,
                                                         (MEMBERS, 2, 2)), atol=0.03)
    np.testing.assert_allclose(reward[0], -np.sum(np.asarray(obs) ** 2, -1), rtol=1e-6)
    assert (std < 0.05).all() and (done == 0).all()


def test_members_disagree_more_off_the_data_than_on_it(fitted):
    model, state, _ = fitted
    rng = np.random.default_rng(1)
    on = rng.uniform(-1, 1, (64, 2)).astype(np.float32)
    off = rng.uniform(3, 4, (64, 2)).astype(np.float32)
    action = rng.uniform(-1, 1, (64, 1)).astype(np.float32)

    def spread(obs):
        next_obs, *_ = model.predict(state, jnp.broadcast_to(obs, (MEMBERS, *obs.shape)),
                                     jnp.broadcast_to(action, (MEMBERS, 64, 1)))
        return float(next_obs.std(0).mean())

    assert spread(off) > 10 * spread(on)


def test_ts_inf_keeps_a_member_per_particle(fitted):
    model, state, _ = fitted
    obs, action = jnp.array([3.0, 3.0]), jnp.array([0.5])  # off the data: members differ
    particles = initial_particles(obs, 2 * MEMBERS)
    means, *_ = model.predict(state, jnp.broadcast_to(obs, (MEMBERS, 1, 2)),
                              jnp.broadcast_to(action, (MEMBERS, 1, 1)))
    # Member m moves particles 2m and 2m + 1 (blocks of P / M = 2); TS-∞ never shuffles them.
    nexts, reward, terminated = learned_dynamics(model, state, "tsinf")(
        jax.random.key(0), particles, action)
    assert nexts.obs.shape == (2 * MEMBERS, 2) and not terminated
    np.testing.assert_allclose(reward, -18.0, rtol=1e-6)  # every particle starts at (3, 3)
    closest = jnp.argmin(jnp.abs(nexts.obs[:, None] - means[None, :, 0]).sum(-1), 1)
    np.testing.assert_array_equal(closest, np.repeat(np.arange(MEMBERS), 2))
    with pytest.raises(ValueError, match="propagation must be one of"):
        learned_dynamics(model, state, "ts2")


def test_gaussian_nll_equals_the_hand_value():
    # One member, s ∈ R¹, a ∈ R¹, reward known: the output is the normalised Δs alone. With
    # every kernel 0, the mean head's bias 0.5 and the raw log-variance 0, the soft clamps give
    # l = 0.5 − softplus(0.5 − 0) = −0.474077, then −10 + softplus(l + 10) = −0.474004.
    # Target Δs = 2.0 − 0.5 = 1.5, error 1: NLL = ½ (1 / e^l + l + log 2π)
    # = ½ (1.606415 − 0.474004 + 1.837877) = 1.485144; bound penalty 0.01 (0.5 + 10) = 0.105.
    model = make_dynamics_model(Box(-5.0, 5.0, (1,), jnp.float32),
                                Box(-1.0, 1.0, (1,), jnp.float32), num_members=1,
                                hidden_sizes=(4,), activation="tanh", probabilistic=True,
                                learning_rate=1e-3, weight_decay=0.0,
                                reward_fn=lambda s, a, n, p: jnp.zeros(()),
                                termination_fn=lambda s, a, n, p: jnp.zeros((), bool))
    state = jax.jit(model.init)(jax.random.key(0))
    params = jax.tree.map(jnp.zeros_like, state.params)
    inner = params["params"]
    inner["Dense_1"]["bias"] = jnp.full((1, 1), 0.5)
    inner["max_logvar"], inner["min_logvar"] = jnp.full((1, 1), 0.5), jnp.full((1, 1), -10.0)
    batch = ModelBatch(jnp.array([[[0.5]]]), jnp.array([[[0.2]]]), jnp.zeros((1, 1)),
                       jnp.zeros((1, 1), bool), jnp.array([[[2.0]]]))
    loss, _ = jax.jit(model.loss)(params, state, batch)
    logvar = -10.0 + np.logaddexp(0.0, 0.5 - np.logaddexp(0.0, 0.5) + 10.0)
    np.testing.assert_allclose(logvar, -0.474004, atol=1e-6)
    np.testing.assert_allclose(loss, 1.485144 + 0.105, rtol=1e-5)


def test_normalizer_merges_batches_like_one():
    rng = np.random.default_rng(0)
    data = rng.normal(2.0, 3.0, (50, 3)).astype(np.float32)
    merged = Normalizer.create(3).update(data[:20]).update(data[20:])
    np.testing.assert_allclose(merged.mean, data.mean(0), rtol=1e-5)
    np.testing.assert_allclose(merged.var, data.var(0), rtol=1e-4)


@pytest.mark.parametrize("env_id", sorted(KNOWN_FUNCTIONS))
def test_known_functions_mirror_the_env_step(env_id):
    env, env_params = envs.make(env_id)
    known, simulator = known_functions(env, env_params), base_env(env).gymnax_env
    dynamics, space = dynamics_from_env(env, env_params), env.action_space(env_params)

    def transition(key):
        reset_key, state_key, action_key, step_key = jax.random.split(key, 4)
        state = simulator_state(env, env.reset(reset_key, env_params)[1])
        # Spread the states out (CartPole's resets are all near its upright start).
        spread = {name: jax.random.uniform(k, (), minval=-scale, maxval=scale)
                  for (name, scale), k in zip(SPREAD[env_id].items(),
                                              jax.random.split(state_key, 2), strict=True)}
        state = state.replace(**spread)
        action = space.sample(action_key)
        next_state, reward, terminated = dynamics(step_key, state, action)
        obs, next_obs = simulator.get_obs(state), simulator.get_obs(next_state)
        return (known.reward(obs, action, next_obs, env_params), reward,
                known.termination(obs, action, next_obs, env_params), terminated)

    predicted, reward, predicted_end, terminated = jax.jit(jax.vmap(transition))(
        jax.random.split(jax.random.key(0), 64))
    np.testing.assert_allclose(predicted, reward, rtol=1e-5, atol=1e-5)
    np.testing.assert_array_equal(predicted_end, terminated)
    assert env_id != "CartPole-v1" or 0 < terminated.sum() < 64


SPREAD = {"Pendulum-v1": {"theta": 4.0, "theta_dot": 8.0},
          "CartPole-v1": {"x": 2.6, "theta": 0.25}}
"""Uniform ranges the tested states are drawn from, beyond the termination bounds."""


def test_bad_input_is_one_clear_error():
    pendulum, pendulum_params = envs.make("Pendulum-v1")
    with pytest.raises(TypeError, match="needs vector observations"):
        make_dynamics_model(Box(0.0, 1.0, (10, 10, 4), jnp.float32),
                            Box(-1.0, 1.0, (1,), jnp.float32), num_members=2,
                            hidden_sizes=(8,), activation="relu", probabilistic=True,
                            learning_rate=1e-3, weight_decay=0.0)
    with pytest.raises(ValueError, match="ensemble_size must be >= 1"):
        pets.make_agent(pets.Config(ensemble_size=0), pendulum, pendulum_params)
    with pytest.raises(ValueError, match="horizon must be >= 1"):
        mbrl.make_agent(mbrl.Config(horizon=0), pendulum, pendulum_params)
    with pytest.raises(ValueError, match="num_particles = 7 must be a multiple"):
        pets.make_agent(pets.Config(num_particles=7), pendulum, pendulum_params)
    with pytest.raises(ValueError, match="version must be one of"):
        mbrl.make_agent(mbrl.Config(version="2.0"), pendulum, pendulum_params)
    acrobot, acrobot_params = envs.make("Acrobot-v1")
    with pytest.raises(ValueError, match="reward=known needs an env"):
        mbrl.make_agent(mbrl.Config(reward="known"), acrobot, acrobot_params)
    breakout, breakout_params = envs.make("Breakout-MinAtar")
    with pytest.raises(TypeError, match="needs vector observations"):
        pets.make_agent(pets.Config(), breakout, breakout_params)
    with pytest.raises(TypeError, match="has no exact transition table"):
        dyna.make_agent(dyna.Config(), pendulum, pendulum_params)


PETS_SLOW = {"random_steps": 200, "num_steps": 200, "total_timesteps": 800, "population": 40,
             "elites": 4, "iterations": 3, "horizon": 15, "num_particles": 5, "model_steps": 100}
"""CPU-sized PETS: 200 random steps, then 3 episodes of MPC, the model refitted (100 steps)
before each; 5 × 64-wide members, known reward, CEM over 40 candidates. Seeds
split(key(0), 2) scored −249 and −264 in the last episode, from −931 and −898 for the random
one (longer runs: benchmarks/model_based.py and benchmarks/RESULTS.md, "Model-based RL on the
2-core CPU", where Dyna-Q against Q-learning is measured too)."""


@pytest.mark.slow
def test_pets_swings_up_pendulum_within_800_env_steps():
    env, env_params = envs.make("Pendulum-v1")
    config = pets.Config(**PETS_SLOW)
    train = optimised_jit(jax.vmap(pets.make_train(config, env, env_params)))
    _, metrics = train(jax.random.split(jax.random.key(0), 2))
    returns = np.asarray(metrics["episode_return"])
    assert (returns[:, -1] >= -400).all(), returns
