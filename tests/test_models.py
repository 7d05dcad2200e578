"""Tests for ``jaxrl.models``: torsos, heads, the tanh-Gaussian and the actor-critic factory.

Initialisation is checked against the PPO recipe (orthogonal √2 / 0.01 / 1, zero biases, log-std
0); ``TanhNormal.log_prob`` against the change-of-variables formula written out in numpy.
"""

from __future__ import annotations

import distrax
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from numpy.testing import assert_allclose

from jaxrl import envs
from jaxrl.models import (
    CNN,
    MLP,
    CategoricalHead,
    CriticEnsemble,
    GaussianHead,
    QHead,
    TanhGaussianHead,
    TanhNormal,
    ValueHead,
    make_actor_critic,
)


def features(batch: int, size: int, seed: int = 1) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal((batch, size)).astype(np.float32)


def init_and_apply(module, *inputs):
    """``module``'s parameters and outputs on ``inputs``, from ONE compiled program.

    Eagerly, flax initialises and applies a module op by op, each op a compilation of its own.
    """
    @jax.jit
    def run(key):
        params = module.init(key, *inputs)
        return params, module.apply(params, *inputs)

    return run(jax.random.key(0))


# ----------------------------------------------------------------------------------------------
# Torsos


def test_mlp_output_shape():
    _, outputs = init_and_apply(MLP((32, 16), "relu"), features(5, 7))
    assert outputs.shape == (5, 16)


def test_mlp_kernels_orthogonal_with_gain_sqrt2_and_biases_zero():
    params = init_and_apply(MLP((16, 16), "tanh"), features(2, 16))[0]["params"]
    assert set(params) == {"Dense_0", "Dense_1"}
    for layer in params.values():
        kernel = np.asarray(layer["kernel"], np.float64)
        assert kernel.shape == (16, 16)
        # Orthogonal columns of norm √2: KᵀK = 2·I.
        assert_allclose(kernel.T @ kernel, 2.0 * np.eye(16), atol=1e-5)
        np.testing.assert_array_equal(layer["bias"], 0.0)


def test_mlp_unknown_activation_names_the_choices():
    with pytest.raises(ValueError, match="unknown activation 'sigmoid'") as error:
        MLP((8,), "sigmoid").init(jax.random.key(0), features(1, 3))
    for name in ("tanh", "relu", "swish", "gelu", "elu"):
        assert name in str(error.value)


def test_cnn_on_minatar_shaped_obs_gives_128_features():
    _, outputs = init_and_apply(CNN(), np.zeros((3, 10, 10, 4), np.bool_))
    assert outputs.shape == (3, 128)


# ----------------------------------------------------------------------------------------------
# Heads


def test_categorical_head_starts_near_uniform():
    _, dist = init_and_apply(CategoricalHead(num_actions=4), features(6, 64))
    assert isinstance(dist, distrax.Categorical)
    assert dist.probs.shape == (6, 4)
    # Gain 0.01 keeps logits ~1e-2, so every probability is within ~1% of 1/4.
    assert_allclose(dist.probs, 0.25, atol=0.01)


def test_gaussian_head_std_is_state_independent_and_log_std_starts_at_zero():
    params, dist = init_and_apply(GaussianHead(action_dim=3), features(2, 8))
    np.testing.assert_array_equal(params["params"]["log_std"], np.zeros(3))
    assert isinstance(dist, distrax.MultivariateNormalDiag)
    assert dist.mean().shape == (2, 3)
    assert not np.allclose(dist.mean()[0], dist.mean()[1])
    std = np.asarray(dist.stddev())
    assert std.shape == (2, 3)
    np.testing.assert_array_equal(std[0], std[1])
    assert_allclose(std, 1.0)


def test_value_head_squeezes_last_axis():
    _, values = init_and_apply(ValueHead(), features(5, 8))
    assert values.shape == (5,)


def test_tanh_gaussian_head_clips_log_std_to_bounds():
    head = TanhGaussianHead(action_dim=3, log_std_min=-5.0, log_std_max=2.0)
    inputs = jnp.ones((1, 4))

    @jax.jit
    def log_std_bias_to_dist(key):
        params = head.init(key, inputs)
        # Second Dense is the log-std layer: with a zero kernel its bias is the raw log-std.
        log_std_layer = params["params"]["Dense_1"]
        log_std_layer["kernel"] = jnp.zeros_like(log_std_layer["kernel"])
        log_std_layer["bias"] = jnp.array([50.0, -50.0, 0.5])
        dist = head.apply(params, inputs)
        return dist, dist.distribution.stddev()

    dist, std = log_std_bias_to_dist(jax.random.key(0))
    assert isinstance(dist, TanhNormal)
    assert_allclose(np.log(std), [[2.0, -5.0, 0.5]], rtol=1e-6)


def test_q_head_shape_and_dueling_advantages_are_mean_zero():
    inputs = features(4, 8)
    plain = QHead(num_actions=5)
    dueling = QHead(num_actions=5, dueling=True)

    @jax.jit
    def both_heads(key):
        plain_params = plain.init(key, inputs)["params"]
        dueling_params = dueling.init(key, inputs)["params"]
        # The dueling head's advantage stream read on its own, as a plain head.
        advantages = plain.apply({"params": {"Dense_0": dueling_params["Dense_0"]}}, inputs)
        return (plain_params, plain.apply({"params": plain_params}, inputs), dueling_params,
                dueling.apply({"params": dueling_params}, inputs), advantages)

    plain_params, plain_q_values, dueling_params, q_values, advantages = (
        both_heads(jax.random.key(0)))
    assert plain_q_values.shape == (4, 5)
    assert set(plain_params) == {"Dense_0"}
    assert set(dueling_params) == {"Dense_0", "Dense_1"}  # advantage and value streams

    q_values, advantages = np.asarray(q_values), np.asarray(advantages)
    assert q_values.shape == (4, 5)
    value_layer = dueling_params["Dense_1"]
    value = (inputs @ np.asarray(value_layer["kernel"]) + np.asarray(value_layer["bias"]))[:, 0]
    # Q = V + A - mean_a A: the mean over actions is V, the centred Q is the centred A.
    assert_allclose(q_values.mean(-1), value, atol=1e-5)
    assert_allclose(q_values - q_values.mean(-1, keepdims=True),
                    advantages - advantages.mean(-1, keepdims=True), atol=1e-5)


def test_critic_ensemble_members_are_independent():
    ensemble = CriticEnsemble(num_members=3, hidden_sizes=(16, 16))
    params, q_values = init_and_apply(ensemble, features(4, 3, seed=1), features(4, 2, seed=2))
    q_values = np.asarray(q_values)
    assert q_values.shape == (3, 4)
    for i in range(3):
        for j in range(i + 1, 3):
            assert not np.allclose(q_values[i], q_values[j])
    kernels = [np.asarray(leaf) for leaf in jax.tree.leaves(params) if leaf.ndim == 3]
    assert len(kernels) == 3  # two hidden layers and the output layer, stacked over members
    for kernel in kernels:
        assert kernel.shape[0] == 3
        assert not np.allclose(kernel[0], kernel[1])


# ----------------------------------------------------------------------------------------------
# TanhNormal


def gaussian_log_density(x, loc, scale):
    return -0.5 * ((x - loc) / scale) ** 2 - np.log(scale) - 0.5 * np.log(2.0 * np.pi)


def test_tanh_normal_log_prob_matches_change_of_variables():
    loc, scale = np.array([0.1, -0.4]), np.array([0.5, 1.2])
    action = np.array([0.3, -0.7])
    u = np.arctanh(action)
    # log π(a) = Σ_i log N(u_i; loc_i, scale_i) - Σ_i log(1 - tanh²(u_i)),  u = atanh(a).
    expected = gaussian_log_density(u, loc, scale).sum() - np.log(1.0 - np.tanh(u) ** 2).sum()
    log_prob = jax.jit(lambda loc, scale, action: TanhNormal(loc, scale).log_prob(action))
    assert_allclose(log_prob(*(np.float32(x) for x in (loc, scale, action))), expected,
                    rtol=1e-5)


def test_tanh_normal_sample_log_prob_finite_where_naive_formula_is_not():
    loc = jnp.array([20.0, -20.0])
    scale = jnp.array([0.01, 0.01])
    # In float32 tanh(20) rounds to 1, so the naive Jacobian log(1 - tanh²(u)) is -inf.
    with np.errstate(divide="ignore"):
        assert np.log(1.0 - np.tanh(np.float32(20.0)) ** 2) == -np.inf
    actions, log_probs = jax.jit(lambda key: TanhNormal(loc, scale).sample_and_log_prob(
        seed=key, sample_shape=(16,)))(jax.random.key(0))
    assert log_probs.shape == (16,)
    assert np.isfinite(log_probs).all()
    assert np.isfinite(actions).all()


def test_tanh_normal_log_prob_finite_at_the_bounds():
    log_prob = jax.jit(TanhNormal(np.zeros(2, np.float32), np.ones(2, np.float32)).log_prob)
    for action in ([1.0, -1.0], [1.0, 1.0], [-1.0, -1.0]):
        assert np.isfinite(log_prob(np.float32(action)))


def test_tanh_normal_samples_lie_in_unit_box():
    dist = TanhNormal(jnp.array([0.0, 3.0, -2.0]), jnp.array([1.0, 2.0, 5.0]))
    actions = np.asarray(jax.jit(lambda key: dist.sample(seed=key, sample_shape=(1000,)))(
        jax.random.key(0)))
    assert actions.shape == (1000, 3)
    assert (actions >= -1.0).all() and (actions <= 1.0).all()


def test_tanh_normal_mode_is_tanh_of_loc():
    loc = np.float32([-1.5, 0.0, 0.7])
    mode = jax.jit(lambda loc: TanhNormal(loc, jnp.ones(3)).mode())(loc)
    assert_allclose(mode, np.tanh(loc), rtol=1e-6)


def test_tanh_normal_sample_and_log_prob_agrees_with_log_prob():
    @jax.jit
    def sampled_and_recomputed(key):
        dist = TanhNormal(jnp.array([0.2, -0.3]), jnp.array([0.4, 0.6]))
        actions, log_probs = dist.sample_and_log_prob(seed=key, sample_shape=(64,))
        return actions, log_probs, dist.log_prob(actions)

    actions, log_probs, recomputed = sampled_and_recomputed(jax.random.key(0))
    assert np.abs(actions).max() < 0.999  # moderate values: atanh is well conditioned
    assert_allclose(log_probs, recomputed, rtol=1e-4, atol=1e-4)


# ----------------------------------------------------------------------------------------------
# make_actor_critic


def spaces(env_id: str):
    env, env_params = envs.make(env_id)
    return env.observation_space(env_params), env.action_space(env_params)


def test_make_actor_critic_discrete_gives_categorical():
    observation_space, action_space = spaces("CartPole-v1")
    network = make_actor_critic(observation_space, action_space)
    _, (dist, value) = init_and_apply(network, np.zeros((3, *observation_space.shape)))
    assert isinstance(dist, distrax.Categorical)
    assert dist.logits.shape == (3, action_space.n)
    assert value.shape == (3,)


def test_make_actor_critic_box_gives_gaussian():
    observation_space, action_space = spaces("Pendulum-v1")
    network = make_actor_critic(observation_space, action_space)
    _, (dist, value) = init_and_apply(network, np.zeros((3, *observation_space.shape)))
    assert isinstance(dist, distrax.MultivariateNormalDiag)
    assert dist.loc.shape == (3, *action_space.shape)
    assert value.shape == (3,)


def test_make_actor_critic_image_obs_uses_cnn_torso():
    observation_space, action_space = spaces("Breakout-MinAtar")
    assert len(observation_space.shape) == 3
    network = make_actor_critic(observation_space, action_space)
    assert isinstance(network.actor_torso, CNN)
    assert isinstance(network.critic_torso, CNN)
    _, (dist, value) = init_and_apply(network, np.zeros((2, *observation_space.shape)))
    assert isinstance(dist, distrax.Categorical)
    assert value.shape == (2,)


def test_make_actor_critic_rejects_matrix_actions():
    observation_space, _ = spaces("Pendulum-v1")
    with pytest.raises(ValueError, match="vectors"):
        make_actor_critic(observation_space, envs.Box(-1.0, 1.0, (2, 3)))
