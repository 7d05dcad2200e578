"""Offline RL agents (CQL, IQL, AWAC, TD3+BC): their losses by hand, CQL's conservatism, runs
through the CLI, discrete CQL on CartPole, errors."""

import csv
import json
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import struct
from test_bc import scripted_dataset

from jaxrl import datasets, envs, losses
from jaxrl.agents import awac, bc, cql, dagger, iql, td3_bc
from jaxrl.cli import main
from jaxrl.datasets import generation
from jaxrl.envs import Box, Discrete, TimeLimitedEnv, experts
from jaxrl.training.config import check_config, config_from_dict

# One xdist group (README's command runs ``--dist loadgroup``): the module's compiled fixtures
# are built once, on one worker.
pytestmark = pytest.mark.xdist_group("offline_agents")

CONTINUOUS = {"iql": iql, "awac": awac, "td3_bc": td3_bc, "cql": cql}


# ---------------------------------------------------------------------------------------------
# Losses, worked by hand


def test_cql_penalty_by_hand():
    q_values = jnp.array([[1.0, 2.0, 3.0], [0.0, 0.0, 0.0]])
    actions = jnp.array([2, 1])
    with jax.numpy_rank_promotion("raise"):
        penalty = losses.cql_penalty(q_values, actions)
    # row 0: log(e + e² + e³) - 3 = log(1 + e⁻¹ + e⁻²); row 1: log 3 - 0
    np.testing.assert_allclose(penalty, [math.log(1 + math.exp(-1) + math.exp(-2)), math.log(3)],
                               rtol=1e-6)
    # ∂/∂Q(s, ·) = softmax(Q) - onehot(a_D): down on every action, up on the data's
    grad = jax.grad(lambda q: losses.cql_penalty(q, actions).sum())(q_values)
    np.testing.assert_allclose(grad[1], [1 / 3, -2 / 3, 1 / 3], rtol=1e-6)
    with pytest.raises(ValueError, match="q_values"):
        losses.cql_penalty(q_values, actions[:1])


def test_cql_sampled_penalty_by_hand():
    # Row 0: two samples with Q = 1 from the uniform density 1/2 on [-1, 1]:
    #   log(½ Σ exp(1 + log 2)) = 1 + log 2, minus Q(s, a_D) = 1 → log 2 = log ∫ exp(1) da - 1.
    # Row 1: Q = (0, 2), proposal log-densities 0: log((1 + e²) / 2) - 0.
    q_sampled = jnp.array([[1.0, 1.0], [0.0, 2.0]])
    log_densities = jnp.array([[-math.log(2)] * 2, [0.0, 0.0]])
    q_data = jnp.array([1.0, 0.0])
    with jax.numpy_rank_promotion("raise"):
        penalty = losses.cql_sampled_penalty(q_sampled, log_densities, q_data)
    np.testing.assert_allclose(penalty, [math.log(2), math.log((1 + math.e**2) / 2)], rtol=1e-6)
    # the proposal densities are constants: no gradient flows into them
    grad = jax.grad(lambda d: losses.cql_sampled_penalty(q_sampled, d, q_data).sum())(
        log_densities)
    np.testing.assert_array_equal(grad, 0.0)
    with pytest.raises(ValueError, match="q_sampled"):
        losses.cql_sampled_penalty(q_sampled, log_densities[:, :1], q_data)


def test_expectile_loss_by_hand():
    differences = jnp.array([2.0, -2.0, 0.0])  # u = Q - V
    with jax.numpy_rank_promotion("raise"):
        loss = losses.expectile_loss(differences, 0.7)
    # |0.7 - 0|·4, |0.7 - 1|·4, 0: under-estimates of Q (u > 0) cost more when τ > ½
    np.testing.assert_allclose(loss, [2.8, 1.2, 0.0], rtol=1e-6)
    np.testing.assert_allclose(losses.expectile_loss(differences, 0.5), [2.0, 2.0, 0.0])


def test_advantage_weights_by_hand():
    advantages = jnp.array([0.0, 1.0, -1.0, 10.0])
    with jax.numpy_rank_promotion("raise"):
        weights = losses.advantage_weights(advantages, 0.5, 100.0)
    # exp(A / 0.5) = 1, e², e⁻², e²⁰ clipped to 100
    np.testing.assert_allclose(weights, [1.0, math.e**2, math.e**-2, 100.0], rtol=1e-6)
    grad = jax.grad(lambda a: losses.advantage_weights(a, 0.5, 100.0).sum())(advantages)
    np.testing.assert_array_equal(grad, 0.0)  # weights are constants of the policy loss


def test_td3_bc_actor_loss_by_hand():
    q_values = jnp.array([1.0, -3.0])
    policy_actions = jnp.array([[0.5], [0.0]])
    data_actions = jnp.array([[0.0], [0.5]])
    with jax.numpy_rank_promotion("raise"):
        loss = losses.td3_bc_actor_loss(q_values, policy_actions, data_actions, 2.5)
    # λ = 2.5 / mean|Q| = 1.25; -λ mean Q = 1.25; mean (π - a)² = 0.25
    np.testing.assert_allclose(loss, 1.5, rtol=1e-6)
    grad = jax.grad(losses.td3_bc_actor_loss)(q_values, policy_actions, data_actions, 2.5)
    np.testing.assert_allclose(grad, [-0.625, -0.625], rtol=1e-6)  # λ held constant
    with pytest.raises(ValueError, match="q_values"):
        losses.td3_bc_actor_loss(q_values[:1], policy_actions, data_actions, 2.5)


# ---------------------------------------------------------------------------------------------
# Agents


class BanditParams(struct.PyTreeNode):
    max_steps_in_episode: int = struct.field(pytree_node=False, default=1)


class TwoArmEnv(TimeLimitedEnv):
    """One step from observation 0: arm 0 pays 1, arm 1 pays 0 (and terminates)."""

    def reset_env(self, key, params):
        return jnp.zeros(1), jnp.zeros((), jnp.int32)

    def step_env(self, key, state, action, params):
        return jnp.zeros(1), state, (action == 0).astype(jnp.float32), jnp.bool_(True), {}

    def observation_space(self, params):
        return Box(-1.0, 1.0, (1,))

    def action_space(self, params):
        return Discrete(2)


def test_discrete_cql_pushes_unseen_actions_below_the_data():
    # Only arm 1 (reward 0) is in the data. Without the penalty Q(arm 0) stays wherever the
    # initialisation put it; CQL(H) drives it below Q(arm 1) = 0, so the greedy policy picks
    # the arm the data supports.
    env, params = TwoArmEnv(), BanditParams()
    data = scripted_dataset(env, params, lambda obs: jnp.ones(obs.shape[0], jnp.int32), steps=8)
    config = cql.Config(total_gradient_steps=400, log_frequency=200, batch_size=16, eval_episodes=1,
                        hidden_sizes=(16,), normalize_obs=False, q_lr=1e-2, alpha=1.0)
    state, metrics = jax.jit(cql.make_train(config, env, params, data))(jax.random.key(0))
    agent = cql.make_agent(config, env, params, data)
    assert metrics["td_loss"][-1] < 0.05
    action = agent.act(state, jnp.zeros((1, 1)), jax.random.key(1), True)
    np.testing.assert_array_equal(action, [1])
    assert metrics["eval_return"][-1] == 0.0  # the data's arm, though arm 0 pays more


def tiny(module, **overrides):
    return module.Config(total_gradient_steps=40, log_frequency=20, batch_size=16,
                         hidden_sizes=(16,), eval_episodes=2, **overrides)


@pytest.fixture(scope="module")
def pendulum_file(tmp_path_factory):
    """400 Pendulum transitions of uniform random torques, written by hand (no rollout to
    compile): random states, Pendulum's reward, the next state one Euler step on."""
    rng = np.random.default_rng(0)
    theta, velocity = rng.uniform(-np.pi, np.pi, 400), rng.uniform(-8, 8, 400)
    torque = rng.uniform(-2, 2, 400)
    next_velocity = np.clip(velocity + (15 * np.sin(theta) + 3 * torque) * 0.05, -8, 8)
    next_theta = theta + next_velocity * 0.05

    def observe(theta, velocity):
        return np.stack([np.cos(theta), np.sin(theta), velocity], -1).astype(np.float32)

    angle = (theta + np.pi) % (2 * np.pi) - np.pi
    path = tmp_path_factory.mktemp("data") / "pendulum-random.npz"
    datasets.save(path, datasets.Dataset(
        observations=observe(theta, velocity), actions=torque[:, None].astype(np.float32),
        rewards=-(angle**2 + 0.1 * velocity**2 + 0.001 * torque**2).astype(np.float32),
        next_observations=observe(next_theta, next_velocity), terminated=np.zeros(400, bool),
        truncated=np.arange(400) % 200 == 199, log_probs=np.full(400, -np.log(4), np.float32),
        metadata={"env": "Pendulum-v1"}))
    return path


@pytest.mark.parametrize("algo", [pytest.param(algo, marks=[pytest.mark.slow] * (algo != "iql"))
                                  for algo in sorted(CONTINUOUS)])
def test_cli_train_on_a_pendulum_dataset(algo, pendulum_file, tmp_path):
    out = tmp_path / "run"
    code = main(["train", algo, "--env", "Pendulum-v1", "--dataset", str(pendulum_file),
                 "--total-gradient-steps", "40", "--log-frequency", "20", "--batch-size", "16",
                 "--hidden-sizes", "16", "--eval-episodes", "2", "--no-progress",
                 "--out", str(out)])
    assert code == 0
    record = json.loads((out / "config.json").read_text())
    assert record["algo"] == algo and record["dataset"] == str(pendulum_file.resolve())
    with open(out / "metrics.csv", newline="") as file:
        rows = list(csv.DictReader(file))
    assert [int(r["step"]) for r in rows] == [20, 40]
    # Pendulum's return over 200 steps lies in [-200 · 16.27, 0]
    assert all(-3260 < float(r["eval_return"]) <= 0 for r in rows)
    assert all(np.isfinite(float(v)) for r in rows for v in r.values() if v)


def test_actions_come_back_in_the_env_bounds(pendulum_file):
    env, params = envs.make("Pendulum-v1")
    data = datasets.load(pendulum_file, env, params)
    obs = jnp.asarray(data.observations[:64])
    for module in CONTINUOUS.values():
        agent = module.make_agent(tiny(module), env, params, data)

        @jax.jit
        def both_actions(key, agent=agent):  # one program per agent: eager ops each compile
            state = agent.init(key)
            return [agent.act(state, obs, jax.random.key(1), deterministic)
                    for deterministic in (True, False)]

        for actions in both_actions(jax.random.key(0)):
            assert actions.shape == (64, 1)
            assert (jnp.abs(actions) <= 2.0).all()


@pytest.mark.slow  # the offline / imitation family's learning test
def test_discrete_cql_learns_cartpole_from_noisy_expert_data():
    env, params = envs.make("CartPole-v1")
    expert = experts.scripted_expert(env)
    behaviour = generation.noisy_policy(expert, env.action_space(params), 0.3)
    arrays = jax.jit(lambda k: generation.collect(k, env, params, [behaviour], 8, 250))(
        jax.random.key(0))
    data = datasets.Dataset(**{k: np.asarray(v) for k, v in arrays.items()}, metadata={})
    config = cql.Config(total_gradient_steps=3000, log_frequency=1000, batch_size=64,
                        eval_episodes=4, hidden_sizes=(64,), q_lr=1e-3, alpha=1.0, tau=0.01)
    _, metrics = jax.jit(cql.make_train(config, env, params, data))(jax.random.key(0))
    assert metrics["eval_return"][-1] >= 400  # the noisy behaviour averages far less


def test_errors_say_what_to_change(pendulum_file):
    cartpole, cartpole_params = envs.make("CartPole-v1")
    # 8 CartPole-shaped transitions written by hand: the check needs no rollout.
    cartpole_data = datasets.Dataset(
        observations=np.zeros((8, 4), np.float32), actions=np.zeros(8, np.int32),
        rewards=np.ones(8, np.float32), next_observations=np.zeros((8, 4), np.float32),
        terminated=np.zeros(8, bool), truncated=np.arange(8) == 7,
        log_probs=np.full(8, np.log(0.5), np.float32))
    for module in (iql, awac, td3_bc):
        with pytest.raises(TypeError, match="use cql or bc for discrete actions"):
            module.make_agent(tiny(module), cartpole, cartpole_params, cartpole_data)
    env, params = envs.make("Pendulum-v1")
    with pytest.raises(ValueError, match="pass --dataset FILE.npz"):
        iql.make_agent(tiny(iql), env, params, None)
    with pytest.raises(ValueError, match="cql_n_actions must be >= 1"):
        check_config(tiny(cql, cql_n_actions=0))
    with pytest.raises(ValueError, match="expectile must be in"):
        check_config(tiny(iql, expectile=1.5))
    with pytest.raises(ValueError, match="temperature must be > 0"):
        check_config(tiny(awac, temperature=0.0))
    with pytest.raises(ValueError, match="policy_frequency must be > 0"):
        check_config(tiny(td3_bc, policy_frequency=0))


def test_config_files_of_earlier_releases_load_under_the_new_names():
    old = {"total_steps": 40, "eval_every": 20, "eval_envs": 2, "hidden_sizes": [16]}
    for module in (bc, cql, iql, awac, td3_bc):
        config = config_from_dict(module.Config, old)
        assert (config.total_gradient_steps, config.log_frequency, config.eval_episodes,
                config.hidden_sizes) == (40, 20, 2, (16,))
    assert config_from_dict(dagger.Config, {"eval_envs": 3}).eval_episodes == 3
    assert (bc.Config().total_gradient_steps, iql.Config().total_gradient_steps) == (10_000, 20_000)
