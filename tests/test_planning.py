"""Planning by search (``jaxrl.planning``), the dynamics of an env (``jaxrl.envs.dynamics``) and
the MPC agent (``jaxrl.agents.mpc``).

The planners are checked on hand-made dynamics whose best plan is known:

- continuous: a point on a line, ``x_{t+1} = x_t + a_t / 2`` with ``a ∈ [-1, 1]``, reward
  ``-|x_{t+1} - 0.7|``, from ``x = 0``. Over 3 steps the best plan is ``(1, 0.4, 0)``: full
  speed (x = 0.5, reward -0.2), then the remaining 0.2 (x = 0.7), then stay (J = -0.2);
- discrete: a point on the integers, actions ``(-1, 0, +1)`` as indices 0, 1, 2, reward
  ``-|x_{t+1} - 2|`` from 0; the best plan is ``(+1, +1, 0)`` = indices ``(2, 2, 1)``
  (J = -1 - 0 - 0).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from helpers import leaves_equal, optimised_jit

from jaxrl import cli, envs, planning, registry
from jaxrl.agents import mpc
from jaxrl.envs import Box, ClipAction, Discrete, EpisodeStatistics, RescaleAction, ScaleReward
from jaxrl.envs.dynamics import base_env, dynamics_from_env, simulator_state
from jaxrl.evaluation import episode_returns
from jaxrl.policy import evaluate_run, load_policy
from jaxrl.training.agent import policy_fn
from jaxrl.training.config import check_config

LINE = Box(-1.0, 1.0, (1,))
STEPS = Discrete(3)
BEST_LINE_PLAN = np.array([[1.0], [0.4], [0.0]], np.float32)
BEST_STEPS_PLAN = np.array([2, 2, 1])


def line(key, x, action):
    x = x + 0.5 * action[0]
    return x, -jnp.abs(x - 0.7), jnp.zeros((), bool)


def steps(key, x, action):
    x = x + action - 1.0
    return x, -jnp.abs(x - 2.0), jnp.zeros((), bool)


def run_planner(planner, space, dynamics, plan, seed=0):
    return jax.jit(lambda key: planner(key, dynamics, jnp.zeros(()), plan))(jax.random.key(seed))


PLANNER_SETTINGS = {"population": 256, "elites": 16, "iterations": 4, "noise": 0.5,
                    "alpha": 0.1, "temperature": 0.02}


@pytest.mark.parametrize("name", planning.PLANNERS)
def test_planners_find_the_best_continuous_plan(name):
    planner = planning.make_planner(name, LINE, **PLANNER_SETTINGS)
    plan = planning.initial_plan(LINE, 3)
    assert np.array_equal(plan, np.zeros((3, 1)))
    action, next_plan = run_planner(planner, LINE, line, plan)
    assert float(action[0]) > 0.9
    if name != "shooting":  # random shooting's best of 257 is only near the optimum
        np.testing.assert_allclose(next_plan[:2], BEST_LINE_PLAN[1:], atol=0.1)
    assert np.all(np.abs(next_plan) <= 1.0)


@pytest.mark.parametrize("name", planning.PLANNERS)
def test_planners_find_the_best_discrete_plan(name):
    planner = planning.make_planner(name, STEPS, **{**PLANNER_SETTINGS, "population": 64,
                                                    "temperature": 0.2})
    action, next_plan = run_planner(planner, STEPS, steps, planning.initial_plan(STEPS, 3))
    assert int(action) == BEST_STEPS_PLAN[0]
    np.testing.assert_array_equal(planning.plan_actions(next_plan, STEPS)[:2],
                                  BEST_STEPS_PLAN[1:])
    np.testing.assert_allclose(next_plan.sum(-1), 1.0, rtol=1e-6)


def test_warm_start_shifts_by_one_and_refills_the_last_step():
    plan = jnp.array([[0.5], [-0.25], [1.0]])
    np.testing.assert_array_equal(planning.shift_plan(plan, LINE), [[-0.25], [1.0], [0.0]])
    offset = Box(np.array([0.0, -2.0]), np.array([2.0, 0.0]), (2,))  # middle: (1, -1)
    np.testing.assert_array_equal(planning.shift_plan(jnp.zeros((2, 2)), offset)[-1], [1, -1])
    probs = jax.nn.one_hot(jnp.array([0, 2]), 3)
    np.testing.assert_allclose(planning.shift_plan(probs, STEPS), [[0, 0, 1], [1 / 3] * 3])
    # Shooting keeps the warm-started plan when it is the best candidate: exactly shifted.
    shooting = planning.make_planner("shooting", LINE, **PLANNER_SETTINGS)
    action, next_plan = run_planner(shooting, LINE, line, jnp.asarray(BEST_LINE_PLAN))
    assert float(action[0]) == 1.0
    np.testing.assert_array_equal(next_plan, np.float32([[0.4], [0.0], [0.0]]))


def test_cem_refits_to_the_elites_and_clips_to_the_bounds():
    def push(key, x, action):  # the larger the action, the better: the best is the bound
        return x, action[0], jnp.zeros((), bool)

    plan = planning.initial_plan(LINE, 2)

    def cem(elites, noise):
        return jax.jit(lambda key: planning.cem(key, push, jnp.zeros(()), plan, LINE, 64,
                                                elites, 1, noise, 0.0))(jax.random.key(1))

    # Noise 10 half-ranges: over half the samples clip to exactly 1, so the 8 elites are all 1.
    action, next_plan = cem(8, 10.0)
    assert float(action[0]) == 1.0 and float(next_plan[0, 0]) == 1.0
    # All 64 as elites: the mean of every clipped sample, near 0 and inside the bounds.
    action, next_plan = cem(64, 10.0)
    assert abs(float(action[0])) < 0.5
    # Few elites of a narrow search lie above the mean of all.
    assert float(cem(4, 0.2)[0][0]) > float(cem(64, 0.2)[0][0]) + 0.1


def test_mppi_temperature_moves_from_the_best_to_the_average():
    def push(key, x, action):
        return x, action[0], jnp.zeros((), bool)

    plan = planning.initial_plan(LINE, 1)

    def mppi(temperature):
        return float(jax.jit(lambda key: planning.mppi(
            key, push, jnp.zeros(()), plan, LINE, 128, temperature, 0.3))(jax.random.key(2))[0][0])

    cold, hot = mppi(1e-3), mppi(1e3)
    assert cold > 0.5 and abs(hot) < 0.1 and cold > hot


def test_returns_stop_at_the_first_terminal_state():
    def fall(key, x, action):  # reward 1 per step, terminal on the step where x reaches 2
        x = x + action[0]
        return x, jnp.ones(()), x >= 2.0

    sequences = jnp.array([[[1.0], [1.0], [1.0], [1.0]], [[0.0], [0.0], [0.0], [0.0]]])
    returns = planning.sequence_returns(jax.random.key(0), fall, jnp.zeros(()), sequences)
    np.testing.assert_array_equal(returns, [2.0, 4.0])  # the terminal step's reward counts


def test_bad_sizes_fail_with_one_clear_error():
    with pytest.raises(ValueError, match="horizon must be >= 1, got 0"):
        planning.initial_plan(LINE, 0)
    with pytest.raises(ValueError, match="population must be >= 1, got 0"):
        planning.make_planner("cem", LINE, **{**PLANNER_SETTINGS, "population": 0})
    with pytest.raises(ValueError, match="elites must be <= population"):
        planning.make_planner("cem", LINE, **{**PLANNER_SETTINGS, "population": 8})
    with pytest.raises(ValueError, match="planner must be one of shooting, cem, mppi"):
        planning.make_planner("ilqr", LINE, **PLANNER_SETTINGS)
    for field, value in (("population", 0), ("horizon", 0), ("planner", "ilqr")):
        with pytest.raises(ValueError, match=field):
            check_config(mpc.Config(**{field: value}))
    with pytest.raises(ValueError, match="elites must be <= population"):
        check_config(mpc.Config(population=4, elites=8))


def test_dynamics_of_an_env_match_its_step_and_follow_its_wrappers():
    env, params = envs.make("Pendulum-v1")
    _, state = env.reset(jax.random.key(0), params)
    action = jnp.array([0.5])
    dynamics = dynamics_from_env(env, params)
    next_state, reward, terminated = dynamics(jax.random.key(1), simulator_state(env, state),
                                              action)
    _, stepped, step_reward, step_terminated, _, _ = env.step(jax.random.key(2), state, action,
                                                              params)
    assert leaves_equal(next_state, stepped.env_state)
    assert float(reward) == float(step_reward) and not terminated and not step_terminated
    # Wrappers: EpisodeStatistics' state is peeled off, actions rescaled, rewards scaled.
    wrapped = EpisodeStatistics(ScaleReward(ClipAction(RescaleAction(env)), 0.5))
    _, wrapped_state = wrapped.reset(jax.random.key(0), params)
    assert base_env(wrapped) is env
    unit = jnp.array([0.25])  # RescaleAction: 0.25 of [-1, 1] is 0.5 of Pendulum's [-2, 2]
    wrapped_next, wrapped_reward, _ = dynamics_from_env(wrapped, params)(
        jax.random.key(1), simulator_state(wrapped, wrapped_state), unit)
    assert leaves_equal(wrapped_next, next_state)
    np.testing.assert_allclose(wrapped_reward, 0.5 * reward, rtol=1e-6)


def test_an_env_that_cannot_be_stepped_from_a_copy_is_refused():
    class Foreign:
        def step(self, key, state, action, params):
            raise NotImplementedError

        def action_space(self, params):
            return STEPS

    with pytest.raises(TypeError, match="cannot be stepped from a copied state"):
        dynamics_from_env(Foreign(), None)
    with pytest.raises(TypeError, match="cannot be stepped from a copied state"):
        mpc.make_agent(mpc.Config(), Foreign(), None)
    algorithm = registry.get("mpc")
    assert algorithm.family == "planning" and registry.ENV_STATE in algorithm.needs


TINY = {"planner": "shooting", "horizon": 8, "population": 8, "num_envs": 2, "num_steps": 16,
        "total_timesteps": 64}


def test_mpc_same_key_gives_the_same_run():
    env, params = envs.make("CartPole-v1")
    train = jax.jit(mpc.make_train(mpc.Config(**TINY), env, params))
    first, second = train(jax.random.key(0)), train(jax.random.key(0))
    assert leaves_equal(first, second)
    state, metrics = first
    assert metrics["episode_return"].shape == (2,)
    assert state.carry.plan.shape == (2, 8, 2)


def test_mpc_between_searches_follows_its_plan():
    env, params = envs.make("CartPole-v1")
    agent = mpc.make_agent(mpc.Config(**TINY, replan_every=3), env, params)
    obs, env_state = jax.vmap(env.reset, in_axes=(0, None))(
        jax.random.split(jax.random.key(0), 2), params)
    plan = jnp.broadcast_to(jax.nn.one_hot(jnp.array([1, 0, 0, 1, 1, 0, 0, 1]), 2), (2, 8, 2))
    carry = mpc.PlanCarry(plan, jnp.array([1, 0]))  # env 0 follows its plan, env 1 searches
    action, carry = agent.act(None, obs, jax.random.key(1), True, carry, env_state=env_state)
    assert int(action[0]) == 1
    np.testing.assert_array_equal(carry.plan[0], planning.shift_plan(plan[0], Discrete(2)))
    np.testing.assert_array_equal(carry.steps_left, [0, 2])


@pytest.mark.slow
def test_mpc_trains_from_the_cli_saves_and_evaluates(tmp_path):
    out = tmp_path / "mpc"
    code = cli.main(["train", "mpc", "--planner", "mppi", "--env", "Pendulum-v1",
                     "--horizon", "8", "--population", "16", "--iterations", "1",
                     "--num-envs", "2", "--num-steps", "32", "--total-timesteps", "128",
                     "--eval-episodes", "1", "--no-progress", "--out", str(out)])
    assert code == 0
    policy = load_policy(out)
    assert policy.agent.acts_on_env_state and policy.agent.initial_carry is not None
    assert policy.config.planner == "mppi" and policy.updates == 2
    rows = evaluate_run(out, episodes=2)
    assert rows[0]["deterministic"]["episodes"] == 2


def _mean_return(env_id, episodes, **config):
    env, params = envs.make(env_id)
    agent = mpc.make_agent(mpc.Config(**config), env, params)
    act, initial_carry = policy_fn(agent, None, True)
    returns, finished = optimised_jit(lambda key: episode_returns(
        key, env, params, act, episodes, int(params.max_steps_in_episode), 1,
        initial_carry=initial_carry))(jax.random.key(1))
    assert bool(finished.all())
    return float(returns.mean())


@pytest.mark.slow
def test_mpc_balances_cartpole_and_swings_up_pendulum():
    """The smallest planning budgets measured to reach the targets (benchmarks/RESULTS.md)."""
    assert _mean_return("CartPole-v1", 8, planner="shooting", horizon=100, population=32) >= 495
    assert _mean_return("Pendulum-v1", 8, planner="cem", horizon=15, population=50,
                        elites=10, iterations=2) >= -250


@pytest.mark.slow
@pytest.mark.xdist_group("render")  # the worker that builds Brax for test_render's replay
def test_brax_dynamics_match_its_step():
    env, params = envs.make("brax/inverted_pendulum")
    _, state = env.reset(jax.random.key(0), params)
    action = jnp.array([0.3])
    dynamics = dynamics_from_env(env, params)

    @jax.jit
    def both(state):
        return (dynamics(jax.random.key(1), simulator_state(env, state), action),
                env.step(jax.random.key(2), state, action, params))

    (next_state, reward, terminated), (_, _, step_reward, step_terminated, _, info) = both(state)
    np.testing.assert_array_equal(next_state.obs, info["final_obs"])
    assert float(reward) == float(step_reward) and bool(terminated) == bool(step_terminated)
