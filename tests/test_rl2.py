"""Task families (``envs.meta``), RL²'s trials, the bandit baselines (``jaxrl.bandits``) and
RL² itself (``agents.rl2``); its determinism and resume are checked by ``test_determinism``
(``TINY["rl2"]``)."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from helpers import optimised_jit

from jaxrl import bandits, envs
from jaxrl.agents import rl2
from jaxrl.envs.meta import KArmedBandit, TrialEnv
from jaxrl.rollout import rollout_with_carry

pytestmark = pytest.mark.xdist_group("rl2")


class FixedBandit(KArmedBandit):
    """Arm 0 pays 0, arm 1 pays 1, always (Bernoulli means 0 and 1): a task family of one."""

    def sample_task(self, key, params):
        return params.replace(arm_means=jnp.array([0.0, 1.0]))


def test_trial_inputs_and_the_trial_end_of_a_bandit():
    # 3 pulls per trial; pulls of arms 1, 0, 1 pay 1, 0, 1. The input after each pull is
    # [obs 1, one-hot previous arm, previous reward, previous episode end (every pull ends one)];
    # the trial's last pull terminates and the next input is a fresh trial's (zeros after obs).
    env, params = envs.make("KArmedBandit-v0")
    trials = TrialEnv(FixedBandit(2), 3)
    obs, state = jax.jit(trials.reset)(jax.random.key(0), params)
    np.testing.assert_array_equal(obs, [1, 0, 0, 0, 0])
    step = jax.jit(trials.step)
    expected = [(1, [1, 0, 1, 1, 1], 1.0, False), (0, [1, 1, 0, 0, 1], 0.0, False),
                (1, [1, 0, 0, 0, 0], 1.0, True)]
    for t, (arm, next_obs, reward, terminated) in enumerate(expected):
        obs, state, r, term, trunc, info = step(jax.random.key(t), state, arm, params)
        np.testing.assert_array_equal(obs, next_obs)
        assert float(r) == reward and bool(term) == terminated and not bool(trunc)
        np.testing.assert_allclose(info["regret"], 1.0 - reward)
    np.testing.assert_array_equal(info["final_obs"], [1, 0, 1, 1, 1])
    assert int(state.episode) == 0
    assert trials.max_truncations(params, 10) == 0


def test_point_nav_trials_run_on_through_episode_ends_with_one_goal():
    # Episodes of 3 steps, 2 per trial: the action (0.5, 0.1) moves the point by (0.1, 0.1)
    # (clipped) from the origin; after 3 steps it is back at the origin with the end flag set and
    # the action taken in the input, same goal; the trial ends after 6 steps, a new goal drawn.
    env, params = envs.make("PointNav-v0", max_steps_in_episode=3)
    trials = TrialEnv(env, 2)
    obs, state = trials.reset(jax.random.key(0), params)
    goal = np.asarray(state.task.goal)
    assert np.all(np.abs(goal) <= 0.5)
    step = jax.jit(trials.step)
    for t in range(6):
        obs, state, reward, terminated, _, info = step(jax.random.key(t), state,
                                                       jnp.array([0.5, 0.1]), params)
        position = 0.1 * (t % 3 + 1)
        np.testing.assert_allclose(info["final_obs"][:2], [position, position], rtol=1e-6)
        np.testing.assert_allclose(reward, -np.sum((position - goal) ** 2), rtol=1e-5)
        assert bool(terminated) == (t == 5)
        if t == 2:
            np.testing.assert_allclose(obs, [0, 0, 0.5, 0.1, float(reward), 1.0], rtol=1e-6)
            np.testing.assert_array_equal(state.task.goal, goal)
    assert not np.array_equal(state.task.goal, goal)


def test_rl2_memory_is_reset_only_at_trial_ends():
    # RL²'s env (rl2.wrap_env): PointNav episodes of 3 steps, 2 per trial. A policy whose carry
    # counts its steps, in the on-policy family's rollout (which resets the carry where the
    # agent's episode ends): the count runs on through the inner episode end after step 3
    # (flagged in the input) and restarts only after the trial's 6th step, the one that
    # terminates. Continuous actions are rescaled: the agent acts in [-1, 1]².
    env, params = envs.make("PointNav-v0", max_steps_in_episode=3)
    trials = rl2.wrap_env(rl2.Config(episodes_per_trial=2), env)
    space = trials.action_space(params)
    assert np.all(np.asarray(space.low) == -1) and np.all(np.asarray(space.high) == 1)
    obs, state = jax.vmap(trials.reset, in_axes=(0, None))(jax.random.split(jax.random.key(0),
                                                                            2), params)

    def policy(key, obs, env_state, carry):
        return jnp.ones((2, 2)), {"count": carry}, carry + 1

    zero = jnp.zeros((2,), jnp.int32)
    *_, transitions = jax.jit(lambda obs, state: rollout_with_carry(
        jax.random.key(1), trials, params, state, obs, zero, policy, 9, zero))(obs, state)
    np.testing.assert_array_equal(transitions.extras["count"][:, 0], [0, 1, 2, 3, 4, 5, 0, 1, 2])
    np.testing.assert_array_equal(transitions.terminated[:, 0], np.arange(9) == 5)
    np.testing.assert_array_equal(transitions.obs[:, 0, -1], [0, 0, 0, 1, 0, 0, 0, 0, 0])
    np.testing.assert_allclose(transitions.obs[1, 0, :2], [0.1, 0.1], rtol=1e-6)  # a = 1 → 0.1


def test_task_samplers_draw_from_the_family():
    keys = jax.random.split(jax.random.key(0), 256)
    env, params = envs.make("KArmedBandit-v0", num_arms=5)
    means = jax.vmap(env.sample_task, in_axes=(0, None))(keys, params).arm_means
    assert means.shape == (256, 5) and float(means.min()) >= 0 and float(means.max()) <= 1
    assert abs(float(means.mean()) - 0.5) < 0.05
    env, params = envs.make("KArmedBandit-v0", reward_kind="gaussian")
    assert abs(float(jax.vmap(env.sample_task, in_axes=(0, None))(
        keys, params).arm_means.std()) - 1.0) < 0.1
    with pytest.raises(ValueError, match="reward_kind"):
        envs.make("KArmedBandit-v0", reward_kind="poisson")


def test_ucb1_pulls_every_arm_once_then_the_highest_bound():
    strategy = bandits.ucb1(3)
    select, update = jax.jit(strategy.select), jax.jit(strategy.update)
    state = strategy.init()
    pulled = []
    for t, reward in enumerate([1.0, 0.0, 0.0]):
        arm = select(jax.random.key(t), state, jnp.int32(t))
        pulled.append(int(arm))
        state = update(state, arm, jnp.float32(reward))
    assert pulled == [0, 1, 2]
    # Bounds at t = 3: 1 + √(2 ln 3) for arm 0, √(2 ln 3) for the others.
    assert int(select(jax.random.key(3), state, jnp.int32(3))) == 0


def test_baselines_have_less_regret_than_chance():
    env, params = envs.make("KArmedBandit-v0", num_arms=2)

    @jax.jit
    def mean_regret(key):
        def one(key):
            task_key, run_key = jax.random.split(key)
            task = env.sample_task(task_key, params)
            return jnp.stack([bandits.regret_curve(run_key, strategy, env, task, 10)
                              for strategy in (bandits.ucb1(2), bandits.thompson(2))])
        return jax.vmap(one)(jax.random.split(key, 500)).mean(0)

    regret = mean_regret(jax.random.key(0))
    chance = 10 / 6  # E[max(U1, U2)] - E[U] = 2/3 - 1/2 per pull
    assert (regret[:, -1] < 0.75 * chance).all()
    assert (np.diff(regret, axis=1) >= 0).all()  # cumulative expected regret never drops


def test_rl2_bad_input():
    env, params = envs.make("CartPole-v1")
    with pytest.raises(TypeError, match="task famil"):
        rl2.make_agent(rl2.Config(), env, params)
    env, params = envs.make("KArmedBandit-v0")
    with pytest.raises(ValueError, match="episodes_per_trial must be >= 1"):
        rl2.make_agent(rl2.Config(episodes_per_trial=0), env, params)


@pytest.mark.slow
def test_rl2_regret_on_two_armed_bandits_is_half_of_a_memoryless_policy():
    # 10-pull trials of 2-armed Bernoulli bandits with uniform means. A feed-forward policy
    # without the reward input pulls arms independently of the task: expected regret
    # 10 · (E[max(U1, U2)] - 1/2) = 10/6 whatever it learned. RL² must do at most half of that
    # (the Bayes-optimal policy's regret is 0.645, win-stay / lose-shift's 0.871). The
    # feed-forward agent trained on RL²'s inputs (recurrent="none"): benchmarks/meta.py.
    env, params = envs.make("KArmedBandit-v0")
    config = rl2.Config(total_timesteps=80_000, hidden_sizes=(32,), recurrent_size=32,
                        learning_rate=2e-2, gamma=1.0)
    agent = rl2.make_agent(config, env, params)
    state, _ = optimised_jit(rl2.make_train(config, env, params))(jax.random.key(0))
    regret = rl2.trial_regret(agent, state, env, params, jax.random.key(7), 10, 4000)
    assert float(regret[-1]) <= 0.5 * 10 / 6
