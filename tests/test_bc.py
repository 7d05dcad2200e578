"""Behaviour cloning: exact recovery of scripted policies, hindsight relabelling, CLI."""

import csv
import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import struct
from helpers import leaves_equal
from probe_envs import ProbeParams, TargetActionEnv

from jaxrl import datasets, envs
from jaxrl.agents import bc
from jaxrl.cli import main
from jaxrl.datasets import generation
from jaxrl.envs import Box, Discrete, TimeLimitedEnv
from jaxrl.training.config import check_config

# One xdist group (README's command runs ``--dist loadgroup``): the module's compiled fixtures
# are built once, on one worker.
pytestmark = pytest.mark.xdist_group("bc")

# The scripted policy of the ring: state s → action TABLE[s].
TABLE = jnp.array([2, 0, 1, 1, 0, 2], jnp.int32)


class RingParams(struct.PyTreeNode):
    max_steps_in_episode: int = struct.field(pytree_node=False, default=6)


class RingEnv(TimeLimitedEnv):
    """Six states on a ring, observed one-hot, random start; every action moves one step on.
    Reward 1 for the scripted action TABLE[s], so the scripted policy's return is 6."""

    def reset_env(self, key, params):
        state = jax.random.randint(key, (), 0, 6)
        return jax.nn.one_hot(state, 6), state

    def step_env(self, key, state, action, params):
        reward = (action == TABLE[state]).astype(jnp.float32)
        state = (state + 1) % 6
        return jax.nn.one_hot(state, 6), state, reward, jnp.bool_(False), {}

    def observation_space(self, params):
        return Box(0.0, 1.0, (6,))

    def action_space(self, params):
        return Discrete(3)


def scripted_dataset(env, params, expert, num_envs=4, steps=16) -> datasets.Dataset:
    """Rollouts of ``expert`` (exact for discrete actions, ±0.1 % noise for continuous ones)."""
    space = env.action_space(params)
    behaviour = generation.noisy_policy(expert, space, 0.0 if isinstance(space, Discrete) else 1e-3)
    arrays = jax.jit(lambda k: generation.collect(k, env, params, [behaviour], num_envs, steps))(
        jax.random.key(0))
    return datasets.Dataset(**{k: np.asarray(v) for k, v in arrays.items()}, metadata={})


TINY = bc.Config(total_gradient_steps=300, log_frequency=100, batch_size=32, hidden_sizes=(32,),
                 eval_episodes=4, learning_rate=1e-2, normalize_obs=False)


@pytest.fixture(scope="module")
def ring():
    env, params = RingEnv(), RingParams()
    data = scripted_dataset(env, params, lambda obs: TABLE[jnp.argmax(obs, -1)])
    return env, params, data


@pytest.fixture(scope="module")
def ring_train(ring):
    """TINY's bc run on the ring, compiled once for the tests below."""
    env, params, data = ring
    return jax.jit(bc.make_train(TINY, env, params, data))


def test_bc_recovers_a_scripted_discrete_policy_exactly(ring, ring_train):
    env, params, data = ring
    state, metrics = ring_train(jax.random.key(0))
    agent = bc.make_agent(TINY, env, params, data)
    actions = agent.act(state, jnp.eye(6), jax.random.key(1), True)
    np.testing.assert_array_equal(actions, TABLE)  # every state, exactly
    np.testing.assert_array_equal(metrics["eval_return"][-1], 6.0)  # the scripted return
    np.testing.assert_array_equal(metrics["step"], [100, 200, 300])
    assert metrics["loss"][-1] < 0.05


def test_bc_recovers_a_scripted_continuous_policy():
    # One-step episodes, observation ±1; the scripted action is 0.5 · sign (reward 0 there).
    env, params = TargetActionEnv(), ProbeParams()
    data = scripted_dataset(env, params, lambda obs: 0.5 * obs)
    config = TINY.replace(total_gradient_steps=500)
    state, metrics = jax.jit(bc.make_train(config, env, params, data))(jax.random.key(0))
    actions = bc.make_agent(config, env, params, data).act(
        state, jnp.array([[-1.0], [1.0]]), jax.random.key(1), True)
    np.testing.assert_allclose(actions, [[-0.5], [0.5]], atol=0.02)
    assert metrics["eval_return"][-1] > -1e-3


def test_same_key_same_run_bitwise(ring_train):
    assert leaves_equal(ring_train(jax.random.key(3)), ring_train(jax.random.key(3)))


def test_hindsight_goals_are_achieved_later_in_the_same_episode():
    env, params = envs.make("PointGoal-v0")
    data = generation.generate("PointGoal-v0", "random", 400, num_envs=4)
    transitions = data.transitions()
    sample = jax.jit(bc.hindsight_sampler(env, transitions, data, 512, 1.0))
    batch = sample(jax.random.key(0))
    starts, ends = datasets.episode_bounds(data.terminated | data.truncated)
    achieved = data.next_observations[:, :2]
    for obs, original in zip(np.asarray(batch.obs), np.asarray(batch.next_obs), strict=True):
        # the sampled rows: same next observation and same position (the state is kept)
        rows = np.flatnonzero((data.next_observations == original).all(1)
                              & (data.observations[:, :2] == obs[:2]).all(1))
        assert rows.size > 0
        # the goal is a position achieved at or after the row, before its episode ends
        assert any((achieved[row:ends[np.searchsorted(ends, row)] + 1] == obs[2:]).all(1).any()
                   for row in rows)
    unchanged = jax.jit(bc.hindsight_sampler(env, transitions, data, 64, 0.0))(jax.random.key(0))
    # fraction 0: observations as recorded, goals those of the episode (next_obs carries it)
    np.testing.assert_array_equal(unchanged.obs[:, 2:], unchanged.next_obs[:, 2:])
    assert all((data.observations == obs).all(1).any() for obs in np.asarray(unchanged.obs))


def test_bc_errors_say_what_to_change(ring):
    env, params, data = ring
    with pytest.raises(ValueError, match="pass --dataset FILE.npz"):
        bc.make_agent(TINY, env, params, None)
    with pytest.raises(ValueError, match="needs a goal env"):
        bc.make_agent(TINY.replace(hindsight=True), env, params, data)
    with pytest.raises(ValueError, match="log_frequency = 500 exceeds total_gradient_steps"):
        bc.make_agent(TINY.replace(log_frequency=500), env, params, data)
    with pytest.raises(ValueError, match="hindsight_fraction"):
        check_config(TINY.replace(hindsight_fraction=1.5))
    with pytest.raises(ValueError, match="'observations': shape per transition"):
        bc.make_agent(TINY, *envs.make("CartPole-v1"), data)


def test_cli_train_bc_from_a_dataset_file(tmp_path, capsys):
    # 64 CartPole-shaped transitions written by hand (no rollout to compile): states near
    # upright, random actions.
    rng = np.random.default_rng(0)
    obs = rng.uniform(-0.05, 0.05, (65, 4)).astype(np.float32)
    path = tmp_path / "random.npz"
    datasets.save(path, datasets.Dataset(
        observations=obs[:-1], actions=rng.integers(0, 2, 64).astype(np.int32),
        rewards=np.ones(64, np.float32), next_observations=obs[1:],
        terminated=np.zeros(64, bool), truncated=np.arange(64) % 16 == 15,
        log_probs=np.full(64, np.log(0.5), np.float32), metadata={"env": "CartPole-v1"}))
    out = tmp_path / "run"
    code = main(["train", "bc", "--env", "CartPole-v1", "--dataset", str(path),
                 "--total-gradient-steps", "40", "--log-frequency", "20", "--batch-size", "16",
                 "--hidden-sizes", "8", "--eval-episodes", "2", "--no-progress", "--out", str(out)])
    assert code == 0
    record = json.loads((out / "config.json").read_text())
    assert record["algo"] == "bc" and record["dataset"] == str(path.resolve())
    with open(out / "metrics.csv", newline="") as file:
        rows = list(csv.DictReader(file))
    assert [int(r["step"]) for r in rows] == [20, 40]
    assert all(float(r["eval_return"]) >= 8 for r in rows)  # CartPole returns are >= 8
    assert main(["train", "bc", "--env", "CartPole-v1", "--no-progress",
                 "--out", str(tmp_path / "none")]) == 2
    assert "learns from a dataset: pass --dataset" in capsys.readouterr().err
