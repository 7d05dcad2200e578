"""Tests for ``jaxrl.envs``: time limits and auto-reset, the registry, adapters, wrappers, stats.

Probe envs defined here (a counter and an action echo) pin the ``TimeLimitedEnv`` contract and
the wrappers exactly; the gymnax and Brax adapters are then checked for the same contract.
"""

from __future__ import annotations

import re

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import struct

from jaxrl import envs
from jaxrl.envs import registry
from jaxrl.envs.registry import GYMNAX_ENVS

# ----------------------------------------------------------------------------------------------
# Probe environments


class CounterParams(struct.PyTreeNode):
    max_steps_in_episode: int = 4
    terminate_at: int = 0  # 0: never terminates


class CounterEnv(envs.TimeLimitedEnv):
    """State is an int counter; reset obs 0.0, each step obs = counter + 1, reward 1."""

    env_id = "counter"

    def reset_env(self, key, params):
        return jnp.zeros((), jnp.float32), jnp.zeros((), jnp.int32)

    def step_env(self, key, state, action, params):
        counter = state + 1
        terminated = (params.terminate_at > 0) & (counter >= params.terminate_at)
        return counter.astype(jnp.float32), counter, jnp.ones(()), terminated, {}

    def observation_space(self, params):
        return envs.Box(0.0, np.inf, ())

    def action_space(self, params):
        return envs.Discrete(1)


class EchoParams(struct.PyTreeNode):
    max_steps_in_episode: int = 100


ECHO_LOW = np.array([-2.0, 0.0], np.float32)
ECHO_HIGH = np.array([2.0, 1.0], np.float32)


class EchoEnv(envs.TimeLimitedEnv):
    """Observes the action it was given; reward is the action's first component."""

    def reset_env(self, key, params):
        return jnp.zeros((2,), jnp.float32), jnp.zeros((), jnp.int32)

    def step_env(self, key, state, action, params):
        action = jnp.asarray(action, jnp.float32)
        return action, state, action[0], jnp.zeros((), bool), {}

    def observation_space(self, params):
        return envs.Box(-np.inf, np.inf, (2,))

    def action_space(self, params):
        return envs.Box(ECHO_LOW, ECHO_HIGH, (2,))


def rollout(env, params, key, num_steps, policy, num_envs=None, vmap_policy=True):
    """Jitted ``lax.scan`` rollout; ``policy(key, obs) -> action``.

    Returns a dict of time-major arrays: ``obs``, ``state`` and ``action`` before the step;
    ``next_obs``, ``reward``, ``terminated``, ``truncated``, ``final_obs`` and ``next_time``
    (the step count of the returned state, 0 after a reset; ``None`` for states without one).
    With ``num_envs`` the envs are vmapped, and so is ``policy`` unless ``vmap_policy=False``
    (it then gets the batch of keys and observations).
    """
    reset, step = env.reset, env.step
    if num_envs is not None:
        reset = jax.vmap(reset, in_axes=(0, None))
        step = jax.vmap(step, in_axes=(0, 0, 0, None))
        if vmap_policy:
            policy = jax.vmap(policy)

    def split(key):
        return key if num_envs is None else jax.random.split(key, num_envs)

    def run(key):
        reset_key, key = jax.random.split(key)
        obs, state = reset(split(reset_key), params)

        def body(carry, key):
            obs, state = carry
            action_key, step_key = jax.random.split(key)
            action = policy(split(action_key), obs)
            next_obs, next_state, reward, terminated, truncated, info = step(
                split(step_key), state, action, params)
            out = dict(obs=obs, state=state, action=action, next_obs=next_obs, reward=reward,
                       terminated=terminated, truncated=truncated, final_obs=info["final_obs"],
                       next_time=getattr(next_state, "time", None))
            return (next_obs, next_state), out

        _, traj = jax.lax.scan(body, (obs, state), jax.random.split(key, num_steps))
        return traj

    return jax.jit(run)(key)


def zero_policy(key, obs):
    return jnp.zeros((), jnp.int32)


# ----------------------------------------------------------------------------------------------
# 1. TimeLimitedEnv: truncation, termination, auto-reset, final_obs


def test_counter_truncates_at_limit_and_auto_resets():
    env = CounterEnv()
    traj = rollout(env, CounterParams(max_steps_in_episode=4), jax.random.key(0), 10, zero_policy)
    # Steps 1..10: the counter runs 1,2,3,4 | 1,2,3,4 | 1,2; steps 4 and 8 hit the limit.
    np.testing.assert_array_equal(traj["final_obs"], [1, 2, 3, 4, 1, 2, 3, 4, 1, 2])
    np.testing.assert_array_equal(traj["next_obs"], [1, 2, 3, 0, 1, 2, 3, 0, 1, 2])
    truncated = np.zeros(10, bool)
    truncated[[3, 7]] = True
    np.testing.assert_array_equal(traj["truncated"], truncated)
    np.testing.assert_array_equal(traj["terminated"], np.zeros(10, bool))
    np.testing.assert_array_equal(traj["reward"], np.ones(10))
    np.testing.assert_array_equal(traj["next_time"], [1, 2, 3, 0, 1, 2, 3, 0, 1, 2])
    assert traj["terminated"].dtype == jnp.bool_ and traj["truncated"].dtype == jnp.bool_
    assert traj["reward"].dtype == jnp.float32


def test_counter_final_obs_equals_obs_when_episode_did_not_end():
    traj = rollout(CounterEnv(), CounterParams(), jax.random.key(1), 9, zero_policy)
    not_done = ~(traj["terminated"] | traj["truncated"])
    assert not_done.sum() == 7
    np.testing.assert_array_equal(traj["final_obs"][not_done], traj["next_obs"][not_done])
    done = ~not_done
    assert (traj["final_obs"][done] != traj["next_obs"][done]).all()


def test_termination_wins_over_time_limit_on_the_same_step():
    params = CounterParams(max_steps_in_episode=4, terminate_at=4)
    traj = rollout(CounterEnv(), params, jax.random.key(0), 8, zero_policy)
    ended = np.zeros(8, bool)
    ended[[3, 7]] = True
    np.testing.assert_array_equal(traj["terminated"], ended)
    np.testing.assert_array_equal(traj["truncated"], np.zeros(8, bool))
    np.testing.assert_array_equal(traj["final_obs"], [1, 2, 3, 4, 1, 2, 3, 4])
    np.testing.assert_array_equal(traj["next_obs"], [1, 2, 3, 0, 1, 2, 3, 0])


def test_termination_before_time_limit_resets_the_step_count():
    # Terminates every 3 steps, so the 4-step limit is never reached.
    params = CounterParams(max_steps_in_episode=4, terminate_at=3)
    traj = rollout(CounterEnv(), params, jax.random.key(0), 9, zero_policy)
    np.testing.assert_array_equal(traj["terminated"], [0, 0, 1] * 3)
    assert not traj["truncated"].any()
    np.testing.assert_array_equal(traj["next_time"], [1, 2, 0] * 3)


def test_no_time_limit_when_params_have_none():
    class NoLimit(struct.PyTreeNode):
        terminate_at: int = 0

    traj = rollout(CounterEnv(), NoLimit(), jax.random.key(0), 20, zero_policy)
    assert not traj["truncated"].any() and not traj["terminated"].any()
    np.testing.assert_array_equal(traj["next_obs"], np.arange(1, 21))


def test_max_truncations_bounds_the_cuts_of_every_window():
    # Limit 4, episodes of every phase: the cuts in any window of T steps never exceed the bound
    # ⌈T / 4⌉, and some window reaches it.
    env, params = CounterEnv(), CounterParams(max_steps_in_episode=4)
    truncated = rollout(env, params, jax.random.key(0), 40, zero_policy)["truncated"]
    for num_steps in range(1, 13):
        bound = env.max_truncations(params, num_steps)
        assert bound == -(-num_steps // 4)
        windows = [truncated[t:t + num_steps].sum() for t in range(40 - num_steps)]
        assert max(windows) == bound


def test_max_truncations_is_unknown_where_the_limit_is_not():
    class NoLimit(struct.PyTreeNode):
        terminate_at: int = 0

    class OwnStep(CounterEnv):
        def step(self, key, state, action, params):
            return super().step(key, state, action, params)

    env = envs.EpisodeStatistics(CounterEnv())  # wrappers forward the bound
    assert env.max_truncations(CounterParams(max_steps_in_episode=500), 128) == 1
    assert env.max_truncations(NoLimit(), 128) == 0
    assert OwnStep().max_truncations(CounterParams(), 128) is None
    seen = []
    jax.jit(lambda limit: seen.append(
        CounterEnv().max_truncations(CounterParams(max_steps_in_episode=limit), 8)))(3)
    assert seen == [None]


def test_counter_env_satisfies_protocol():
    assert isinstance(CounterEnv(), envs.Environment)


# ----------------------------------------------------------------------------------------------
# 2-3. Registry


@pytest.fixture
def scratch_registry(monkeypatch):
    """Registrations made in a test vanish afterwards."""
    monkeypatch.setattr(registry, "_REGISTRY", dict(registry._REGISTRY))


def test_register_make_and_list(scratch_registry):
    env_id = "test/Counter-v0"
    assert env_id not in envs.list_envs()
    envs.register(env_id, lambda **kw: (CounterEnv(), CounterParams(**kw)))
    env, params = envs.make(env_id, max_steps_in_episode=7)
    assert isinstance(env, CounterEnv)
    assert params == CounterParams(max_steps_in_episode=7)
    assert env_id in envs.list_envs()
    assert envs.list_envs()[-1] == env_id  # registration order

    with pytest.raises(ValueError, match="already registered"):
        envs.register(env_id, lambda **kw: (CounterEnv(), CounterParams(max_steps_in_episode=2)))
    assert envs.make(env_id)[1].max_steps_in_episode == 4  # the first factory still stands

    envs.register(env_id, lambda **kw: (CounterEnv(), CounterParams(max_steps_in_episode=2)),
                  overwrite=True)
    assert envs.make(env_id)[1].max_steps_in_episode == 2
    assert envs.list_envs().count(env_id) == 1


def test_builtin_ids_are_listed():
    ids = envs.list_envs()
    for env_id in GYMNAX_ENVS:
        assert env_id in ids
    assert "brax/inverted_pendulum" in ids and "brax/hopper" in ids


@pytest.mark.parametrize(("typo", "suggestion"), [
    ("CartPol-v1", "CartPole-v1"),
    ("brax/hoper", "brax/hopper"),
])
def test_unknown_id_suggests_closest(typo, suggestion):
    with pytest.raises(ValueError, match=re.escape(repr(suggestion))) as excinfo:
        envs.make(typo)
    assert typo in str(excinfo.value)


def test_unknown_id_without_close_match_still_raises():
    with pytest.raises(ValueError, match="unknown environment id"):
        envs.make("zzzzzzzzzzzzzzzzzzzzzzzzzzz")


# ----------------------------------------------------------------------------------------------
# 4-5. gymnax adapter: CartPole and Pendulum


def random_policy(space):
    return lambda key, obs: space.sample(key)


def test_cartpole_random_policy_terminates_and_respects_500_limit():
    env, params = envs.make("CartPole-v1")
    num_steps = 600
    policy = random_policy(env.action_space(params))
    traj = rollout(env, params, jax.random.key(0), num_steps, policy, num_envs=4)
    terminated, truncated = np.asarray(traj["terminated"]), np.asarray(traj["truncated"])
    episode_length = np.asarray(traj["state"].time) + 1  # steps in the episode including this one
    assert terminated.shape == truncated.shape == (num_steps, 4)
    assert terminated.any(axis=0).all()  # a random policy drops the pole in every env
    assert not (terminated & truncated).any()
    assert (episode_length <= 500).all()
    assert (episode_length[truncated] == 500).all()  # truncation only at the limit
    done = terminated | truncated
    # The returned observation is the reset one exactly where the episode ended.
    differs = (np.asarray(traj["final_obs"]) != np.asarray(traj["next_obs"])).any(-1)
    np.testing.assert_array_equal(differs, done)
    np.testing.assert_array_equal(np.asarray(traj["next_time"]) == 0, done)


def test_cartpole_short_time_limit_truncates():
    env, params = envs.make("CartPole-v1", max_steps_in_episode=5)
    assert params.max_steps_in_episode == 5

    def balance(key, obs):  # pushes the cart the way the pole swings: it stays up for 5 steps
        return (obs[3] > 0).astype(jnp.int32)

    traj = rollout(env, params, jax.random.key(0), 10, balance)
    ended = np.zeros(10, bool)
    ended[[4, 9]] = True
    np.testing.assert_array_equal(traj["truncated"], ended)
    assert not traj["terminated"].any()
    assert (traj["final_obs"][4] != traj["next_obs"][4]).any()
    # The episode ended on a live state: the final obs is within CartPole's termination bounds.
    x, _, theta, _ = np.asarray(traj["final_obs"][4])
    assert abs(theta) < 0.2095 and abs(x) < 2.4


def test_pendulum_truncates_exactly_at_200():
    env, params = envs.make("Pendulum-v1")
    traj = rollout(env, params, jax.random.key(0), 400, random_policy(env.action_space(params)))
    truncated = np.zeros(400, bool)
    truncated[[199, 399]] = True
    np.testing.assert_array_equal(traj["truncated"], truncated)
    assert not traj["terminated"].any()
    # final_obs at step 200 is where the dynamics went (not the reset obs returned instead).
    final, returned = traj["final_obs"][199], traj["next_obs"][199]
    assert (final != returned).any()
    state_before = jax.tree.map(lambda x: x[199], traj["state"].env_state)
    # One program (run eagerly, the step compiles some twenty); Pendulum's dynamics ignore the key.
    expected, *_ = jax.jit(env.gymnax_env.step_env)(jax.random.key(5), state_before,
                                                    traj["action"][199], params)
    np.testing.assert_allclose(final, expected, rtol=1e-6)
    # ...and the returned obs starts a fresh episode.
    assert int(traj["next_time"][199]) == 0
    not_done = ~truncated
    np.testing.assert_array_equal(traj["final_obs"][not_done], traj["next_obs"][not_done])


# ----------------------------------------------------------------------------------------------
# 6. Brax adapter: one compiled rollout (~15 s on a 2-core CPU; a second time limit, being static
# in BraxParams, would compile again)


def uniform_policy(key, obs):
    return jax.random.uniform(key, (1,), minval=-1.0, maxval=1.0)


# In test_render's group: the worker that builds Brax there has Brax imported and its eager
# start-up ops compiled already.
@pytest.mark.slow
@pytest.mark.xdist_group("render")
def test_brax_inverted_pendulum_terminates_and_truncates():
    env, params = envs.make("brax/inverted_pendulum", max_steps_in_episode=10)
    assert params.max_steps_in_episode == 10
    assert env.observation_space(params).shape == (4,)
    assert env.action_space(params) == envs.Box(-1.0, 1.0, (1,), jnp.float32)

    def policy(keys, obs):
        # env 0: full push (the pole falls after 7 steps); env 1: zero action (the pole stays up
        # for the 10-step limit); env 2: uniform random in [-1, 1].
        return jnp.stack([jnp.ones((1,)), jnp.zeros((1,)), uniform_policy(keys[2], obs[2])])

    traj = rollout(env, params, jax.random.key(0), 30, policy, num_envs=3, vmap_policy=False)
    obs, final_obs = np.asarray(traj["next_obs"]), np.asarray(traj["final_obs"])
    terminated, truncated = np.asarray(traj["terminated"]), np.asarray(traj["truncated"])
    assert obs.shape == final_obs.shape == (30, 3, 4)
    assert traj["reward"].shape == terminated.shape == truncated.shape == (30, 3)
    ends = np.zeros(30, bool)
    ends[[6, 13, 20, 27]] = True
    np.testing.assert_array_equal(terminated[:, 0], ends)
    assert not truncated[:, 0].any()
    ends = np.zeros(30, bool)
    ends[[9, 19, 29]] = True
    np.testing.assert_array_equal(truncated[:, 1], ends)
    assert not terminated[:, 1].any()
    assert not (terminated & truncated).any()
    episode_length = np.asarray(traj["state"].time) + 1
    assert (episode_length <= 10).all() and (episode_length[truncated] == 10).all()

    done = terminated | truncated
    # Terminated: the final obs has the pole past Brax's 0.2 rad threshold; the returned obs is
    # a fresh, near-upright reset.
    assert (np.abs(final_obs[terminated][:, 1]) > 0.2).all()
    assert (np.abs(obs[done][:, 1]) < 0.05).all()
    assert (final_obs[done] != obs[done]).any(-1).all()
    np.testing.assert_array_equal(final_obs[~done], obs[~done])
    np.testing.assert_array_equal(np.asarray(traj["next_time"]) == 0, done)


# ----------------------------------------------------------------------------------------------
# 7. Wrappers


def test_episode_statistics_on_counter():
    env = envs.EpisodeStatistics(CounterEnv())
    params = CounterParams(max_steps_in_episode=4)
    step = jax.jit(env.step)
    obs, state = env.reset(jax.random.key(0), params)
    infos, states = [], []
    for i in range(9):
        obs, state, reward, terminated, truncated, info = step(jax.random.key(i), state, 0, params)
        infos.append(info)
        states.append(state)
    done = [bool(info["episode_done"]) for info in infos]
    assert done == [False, False, False, True, False, False, False, True, False]
    for i in (3, 7):
        assert float(infos[i]["episode_return"]) == 4.0
        assert int(infos[i]["episode_length"]) == 4
    # Before any episode finished the "last episode" fields are zero.
    assert float(infos[0]["episode_return"]) == 0.0 and int(infos[0]["episode_length"]) == 0
    # Statistics restart for the next episode (and keep reporting the last finished one).
    assert float(states[3].episode_return) == 0.0 and int(states[3].episode_length) == 0
    assert float(states[4].episode_return) == 1.0 and int(states[4].episode_length) == 1
    assert float(infos[4]["episode_return"]) == 4.0
    assert "final_obs" in infos[3] and float(infos[3]["final_obs"]) == 4.0


def test_episode_statistics_counts_terminated_episodes():
    env = envs.EpisodeStatistics(CounterEnv())
    params = CounterParams(max_steps_in_episode=10, terminate_at=2)
    traj_info = []
    obs, state = env.reset(jax.random.key(0), params)
    for i in range(4):
        obs, state, _, terminated, truncated, info = env.step(jax.random.key(i), state, 0, params)
        traj_info.append((bool(terminated), bool(info["episode_done"]),
                          float(info["episode_return"]), int(info["episode_length"])))
    assert traj_info == [(False, False, 0.0, 0), (True, True, 2.0, 2),
                         (False, False, 2.0, 2), (True, True, 2.0, 2)]


def test_clip_action_on_pendulum_matches_clipped_action():
    env, params = envs.make("Pendulum-v1")
    wrapped = envs.ClipAction(env)
    key = jax.random.key(0)
    _, state = env.reset(key, params)
    for raw, clipped in [(5.0, 2.0), (-7.0, -2.0), (0.5, 0.5)]:
        out_wrapped = wrapped.step(key, state, jnp.array([raw]), params)
        out_env = env.step(key, state, jnp.array([clipped]), params)
        np.testing.assert_array_equal(out_wrapped[0], out_env[0])
        np.testing.assert_array_equal(out_wrapped[2], out_env[2])


def test_clip_action_clips_to_each_bound():
    # Pendulum clips internally too; the echo env shows the wrapper itself clips.
    env, params = envs.ClipAction(EchoEnv()), EchoParams()
    _, state = env.reset(jax.random.key(0), params)
    obs, *_ = env.step(jax.random.key(0), state, jnp.array([5.0, -1.0]), params)
    np.testing.assert_array_equal(obs, [2.0, 0.0])
    obs, *_ = env.step(jax.random.key(0), state, jnp.array([-3.0, 0.25]), params)
    np.testing.assert_array_equal(obs, [-2.0, 0.25])


def test_clip_and_rescale_reject_discrete_actions():
    env, params = envs.make("CartPole-v1")
    _, state = env.reset(jax.random.key(0), params)
    with pytest.raises(TypeError, match="Box"):
        envs.ClipAction(env).step(jax.random.key(0), state, 1, params)
    with pytest.raises(TypeError, match="Box"):
        envs.RescaleAction(env).action_space(params)


def test_rescale_action_on_pendulum():
    env, params = envs.make("Pendulum-v1")
    wrapped = envs.RescaleAction(env)
    space = wrapped.action_space(params)
    assert isinstance(space, envs.Box)
    assert (space.low, space.high, space.shape) == (-1.0, 1.0, (1,))
    key = jax.random.key(0)
    _, state = env.reset(key, params)
    for scaled, raw in [(1.0, 2.0), (-1.0, -2.0), (0.5, 1.0), (0.0, 0.0)]:
        obs_wrapped = wrapped.step(key, state, jnp.array([scaled]), params)[0]
        obs_env = env.step(key, state, jnp.array([raw]), params)[0]
        np.testing.assert_allclose(obs_wrapped, obs_env, rtol=1e-6, atol=1e-7)


def test_rescale_action_maps_affinely_to_asymmetric_bounds():
    env, params = envs.RescaleAction(EchoEnv()), EchoParams()
    _, state = env.reset(jax.random.key(0), params)
    # env bounds: [-2, 2] and [0, 1]
    for action, expected in [([1.0, 1.0], [2.0, 1.0]), ([-1.0, -1.0], [-2.0, 0.0]),
                             ([0.0, 0.0], [0.0, 0.5]), ([0.5, -0.5], [1.0, 0.25]),
                             ([3.0, -9.0], [2.0, 0.0])]:  # out-of-range actions are clipped
        obs, *_ = env.step(jax.random.key(0), state, jnp.array(action), params)
        np.testing.assert_allclose(obs, expected, rtol=1e-6)
    custom = envs.RescaleAction(EchoEnv(), low=0.0, high=10.0)
    assert (custom.action_space(params).low, custom.action_space(params).high) == (0.0, 10.0)
    obs, *_ = custom.step(jax.random.key(0), state, jnp.array([5.0, 10.0]), params)
    np.testing.assert_allclose(obs, [0.0, 1.0], rtol=1e-6)


def test_scale_reward_multiplies_reward():
    env, params = envs.make("Pendulum-v1")
    wrapped = envs.ScaleReward(env, 0.1)
    key = jax.random.key(0)
    _, state = env.reset(key, params)
    action = jnp.array([1.3])
    out_wrapped = wrapped.step(key, state, action, params)
    out_env = env.step(key, state, action, params)
    assert float(out_env[2]) != 0.0
    np.testing.assert_allclose(out_wrapped[2], 0.1 * out_env[2], rtol=1e-6)
    np.testing.assert_array_equal(out_wrapped[0], out_env[0])


def test_wrapper_stack_jits_vmaps_and_delegates():
    env, params = envs.make("Pendulum-v1")
    wrapped = envs.EpisodeStatistics(envs.ScaleReward(
        envs.RescaleAction(envs.ClipAction(env)), 0.5))
    assert wrapped.env_id == "Pendulum-v1"
    assert wrapped.gymnax_env is env.gymnax_env
    assert isinstance(wrapped, envs.Environment)
    assert "GymnaxEnv('Pendulum-v1')" in repr(wrapped)
    assert wrapped.action_space(params) == envs.Box(-1.0, 1.0, (1,), jnp.float32)
    assert wrapped.observation_space(params).shape == (3,)
    with pytest.raises(AttributeError):
        _ = wrapped.no_such_attribute

    # params are closed over (as jit arguments they hit the bug in test_spaces_with_traced_params)
    traj = rollout(wrapped, params, jax.random.key(0), 210, uniform_policy, num_envs=3)
    assert traj["next_obs"].shape == traj["final_obs"].shape == (210, 3, 3)
    assert traj["reward"].shape == (210, 3)
    np.testing.assert_array_equal(traj["truncated"].sum(0), [1, 1, 1])
    # The state pytree keeps its structure through the stack (scan would fail otherwise).
    obs, state = jax.vmap(wrapped.reset, in_axes=(0, None))(
        jax.random.split(jax.random.key(1), 3), params)
    assert isinstance(state, envs.EpisodeStatisticsState)
    assert isinstance(state.env_state, envs.TimeLimitState)


def test_spaces_with_traced_params():
    # gymnax derives Pendulum's bounds from params, which are tracers when passed to jit.
    env, params = envs.make("Pendulum-v1")
    wrapped = envs.ClipAction(env)
    key = jax.random.key(0)
    _, state = env.reset(key, params)
    obs, *_ = jax.jit(wrapped.step)(key, state, jnp.array([5.0]), params)
    expected, *_ = env.step(key, state, jnp.array([2.0]), params)
    np.testing.assert_allclose(obs, expected, rtol=1e-6)


def test_spaces_stay_concrete_inside_a_trace():
    # A sweep builds its agent inside ``vmap`` over traced hyperparameters: gymnax's jnp-built
    # bounds (MountainCar's observation box) must stay concrete there, as a count bonus hashes
    # observations against them.
    env, params = envs.make("MountainCar-v0")

    def spaces(x):
        observation, action = env.observation_space(params), env.action_space(params)
        np.asarray(observation.low), np.asarray(observation.high)  # raises on tracers
        return x * observation.shape[0] * action.n

    assert jax.make_jaxpr(spaces)(1.0) is not None


# ----------------------------------------------------------------------------------------------
# 8. RunningMeanStd and discounted_return_trace


def test_running_mean_std_matches_numpy_over_batches():
    rng = np.random.default_rng(0)
    batches = [rng.normal(3.0, 2.0, size=s).astype(np.float32)
               for s in [(5, 3), (64, 3), (2, 7, 3), (1, 3)]]
    stats = envs.RunningMeanStd.create((3,))
    update = jax.jit(lambda stats, batch: stats.update(batch))
    for batch in batches:
        stats = update(stats, jnp.asarray(batch))
    everything = np.concatenate([b.reshape(-1, 3) for b in batches])
    # The initial pseudo-count (1e-4 of mean 0, var 1) biases the estimate by ~1e-4 / N.
    np.testing.assert_allclose(stats.mean, everything.mean(0), rtol=1e-3)
    np.testing.assert_allclose(stats.var, everything.var(0), rtol=1e-3)
    np.testing.assert_allclose(stats.count, len(everything) + 1e-4, rtol=1e-6)


def test_running_mean_std_scalar_shape_and_normalize_clip():
    stats = envs.RunningMeanStd.create()
    stats = stats.update(jnp.array([1.0, 2.0, 3.0, 4.0]))
    np.testing.assert_allclose(stats.mean, 2.5, rtol=1e-3)
    np.testing.assert_allclose(stats.var, 1.25, rtol=1e-3)
    normalized = stats.normalize(jnp.array([2.5, 1e6, -1e6, 2.5 + np.sqrt(1.25)]))
    np.testing.assert_allclose(normalized, [0.0, 10.0, -10.0, 1.0], atol=1e-3)
    np.testing.assert_allclose(stats.normalize(jnp.array([1e6]), clip=5.0), [5.0])
    np.testing.assert_allclose(stats.scale(jnp.array(2.0)), 2.0 / np.sqrt(1.25), rtol=1e-3)


def test_discounted_return_trace_hand_worked():
    # gamma 0.5, carried R = 10, rewards 1, 2, 3, episode ends after step 1:
    #   R_0 = 0.5 * 10 + 1 = 6
    #   R_1 = 0.5 * 6  + 2 = 5   (done: the next step starts from 0)
    #   R_2 = 0.5 * 0  + 3 = 3   carried out: 3 (step 2 did not end)
    rewards = jnp.array([1.0, 2.0, 3.0])
    dones = jnp.array([False, True, False])
    trace, final = envs.discounted_return_trace(rewards, dones, 0.5, jnp.array(10.0))
    np.testing.assert_allclose(trace, [6.0, 5.0, 3.0])
    np.testing.assert_allclose(final, 3.0)
    # Ending on the last step resets the carried value.
    _, final = envs.discounted_return_trace(rewards, jnp.array([False, True, True]), 0.5,
                                            jnp.array(10.0))
    np.testing.assert_allclose(final, 0.0)


def test_discounted_return_trace_batched():
    rewards = jnp.array([[1.0, 1.0], [2.0, 2.0], [3.0, 3.0]])
    dones = jnp.array([[False, False], [True, False], [False, False]])
    trace, final = envs.discounted_return_trace(rewards, dones, 0.5, jnp.array([10.0, 0.0]))
    # Column 1: 0.5*0 + 1 = 1, 0.5*1 + 2 = 2.5, 0.5*2.5 + 3 = 4.25
    np.testing.assert_allclose(trace, [[6.0, 1.0], [5.0, 2.5], [3.0, 4.25]])
    np.testing.assert_allclose(final, [3.0, 4.25])


# ----------------------------------------------------------------------------------------------
# 9. Spaces


def test_discrete_sample_within_range():
    space = envs.Discrete(3)
    samples = jax.jit(jax.vmap(space.sample))(jax.random.split(jax.random.key(0), 1000))
    assert samples.shape == (1000,) and samples.dtype == jnp.int32
    assert set(np.unique(samples).tolist()) == {0, 1, 2}
    assert bool(space.contains(jnp.array(2))) and not bool(space.contains(jnp.array(3)))


def test_box_sample_within_bounds():
    space = envs.Box(np.array([-1.0, 0.0, 5.0]), np.array([1.0, 0.1, 6.0]), (3,))
    samples = np.asarray(jax.jit(jax.vmap(space.sample))(jax.random.split(jax.random.key(0), 1000)))
    assert samples.shape == (1000, 3) and samples.dtype == np.float32
    assert (samples >= space.low).all() and (samples <= space.high).all()
    assert bool(space.contains(jnp.array([0.0, 0.05, 5.5])))
    assert not bool(space.contains(jnp.array([0.0, 0.2, 5.5])))


def test_box_sample_with_infinite_bounds_is_finite():
    space = envs.Box(-np.inf, np.inf, (4,))
    samples = jax.jit(jax.vmap(space.sample))(jax.random.split(jax.random.key(0), 100))
    assert np.isfinite(samples).all()
    assert samples.std() > 0.5  # standard normal, not a constant


def test_cartpole_spaces():
    env, params = envs.make("CartPole-v1")
    action_space = env.action_space(params)
    assert isinstance(action_space, envs.Discrete) and action_space.n == 2
    obs_space = env.observation_space(params)
    assert isinstance(obs_space, envs.Box) and obs_space.shape == (4,)


def test_pendulum_spaces():
    env, params = envs.make("Pendulum-v1")
    space = env.action_space(params)
    assert isinstance(space, envs.Box) and space.shape == (1,)
    np.testing.assert_allclose(space.low, -2.0)
    np.testing.assert_allclose(space.high, 2.0)
    assert env.observation_space(params).shape == (3,)


# ----------------------------------------------------------------------------------------------
# 10. Every gymnax id: reset and one auto-resetting step under jit and vmap


@pytest.mark.parametrize("env_id", [  # one MinAtar game outside the slow tier: each compiles long
    pytest.param(e, marks=[pytest.mark.slow] * (e.endswith("-MinAtar") and e != "Breakout-MinAtar"))
    for e in GYMNAX_ENVS])
def test_gymnax_env_reset_and_step(env_id):
    env, params = envs.make(env_id)
    space = env.action_space(params)
    num_envs = 2

    def reset_and_step(key):
        reset_key, action_key, step_key = jax.random.split(key, 3)
        obs, state = env.reset(reset_key, params)
        action = space.sample(action_key)
        return obs, state, env.step(step_key, state, action, params)

    keys = jax.random.split(jax.random.key(0), num_envs)
    obs, state, (next_obs, next_state, reward, terminated, truncated, info) = jax.jit(
        jax.vmap(reset_and_step))(keys)
    shape = env.observation_space(params).shape
    assert obs.shape == next_obs.shape == info["final_obs"].shape == (num_envs, *shape)
    assert next_obs.dtype == obs.dtype
    assert terminated.shape == truncated.shape == reward.shape == (num_envs,)
    assert terminated.dtype == truncated.dtype == jnp.bool_
    assert reward.dtype == jnp.float32
    assert not (terminated & truncated).any()
    # The state keeps its structure, shapes and dtypes (so it can be a lax.scan carry).
    def signature(tree):
        return jax.tree.map(lambda x: (x.shape, x.dtype), tree)

    assert signature(next_state) == signature(state)
