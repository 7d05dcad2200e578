"""Optimal control (``jaxrl.control``), ``LinearSystem-v0``, the differentiable envs and the
``lqr`` / ``ilqr`` / ``apg`` agents.

Oracles: ``scipy.linalg.solve_discrete_are`` for the infinite-horizon LQR gain (a test oracle
only); the finite-horizon recursion for iLQR on a linear system with quadratic cost (one
iteration of iLQR with μ = 0 is exactly LQR); central finite differences in float64 for the
analytic policy gradient.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.linalg

from jaxrl import cli, control, envs, registry
from jaxrl.agents import apg, ilqr, lqr
from jaxrl.envs import EpisodeStatistics
from jaxrl.envs.brax_env import BRAX_ENVS
from jaxrl.envs.dynamics import dynamics_from_env
from jaxrl.models.actor_critic import make_torso
from jaxrl.rollout import reset_envs

pytestmark = pytest.mark.xdist_group("control")


def default_system(dtype=np.float64):
    _, params = envs.make("LinearSystem-v0")
    return tuple(np.asarray(m, dtype) for m in (params.A, params.B, params.Q, params.R))


# An unstable 3-state, 2-action system: LQR must stabilise it.
UNSTABLE = (np.array([[1.1, 0.2, 0.0], [0.0, 0.9, 0.3], [0.1, 0.0, 1.05]]),
            np.array([[1.0, 0.0], [0.0, 0.5], [0.2, 1.0]]),
            np.diag([1.0, 2.0, 0.5]), np.array([[0.5, 0.1], [0.1, 1.0]]))


@pytest.mark.parametrize("system", ["double integrator", "unstable"])
def test_infinite_horizon_gain_is_scipy_dare_and_stabilises(system):
    A, B, Q, R = default_system() if system == "double integrator" else UNSTABLE
    P_scipy = scipy.linalg.solve_discrete_are(A, B, Q, R)
    K_scipy = np.linalg.solve(R + B.T @ P_scipy @ B, B.T @ P_scipy @ A)
    with jax.enable_x64(True):
        K, P = jax.jit(control.lqr_infinite_horizon)(*map(jnp.asarray, (A, B, Q, R)), 1e-12)
        np.testing.assert_allclose(K, K_scipy, rtol=1e-8, atol=1e-10)
        np.testing.assert_allclose(P, P_scipy, rtol=1e-8, atol=1e-10)
    assert np.abs(np.linalg.eigvals(A - B @ np.asarray(K))).max() < 1  # the closed loop is stable
    assert np.abs(np.linalg.eigvals(A)).max() >= 1  # and the open loop is not


def test_finite_horizon_gains_tend_to_the_infinite_horizon_gain():
    A, B, Q, R = default_system()
    P_scipy = scipy.linalg.solve_discrete_are(A, B, Q, R)
    K_scipy = np.linalg.solve(R + B.T @ P_scipy @ B, B.T @ P_scipy @ A)
    horizon = 320
    with jax.enable_x64(True):
        gains, costs = map(np.asarray, jax.jit(control.lqr_finite_horizon, static_argnums=4)(
            *map(jnp.asarray, (A, B, Q, R)), horizon))
    # Time-invariant: step t of a horizon-T problem is step 0 of a horizon-(T - t) problem.
    errors = [np.abs(gains[horizon - T] - K_scipy).max() for T in (5, 20, 80, 320)]
    assert all(a > b for a, b in zip(errors, errors[1:], strict=False)) and errors[-1] < 1e-9
    # The last step has no cost-to-go: K_{T-1} = 0, P_{T-1} = Q, P_T = 0.
    np.testing.assert_allclose(gains[-1], 0.0)
    np.testing.assert_allclose(costs[-2], Q)
    np.testing.assert_allclose(costs[-1], 0.0)


def test_ilqr_on_a_linear_system_is_lqr_in_one_iteration():
    env, params = envs.make("LinearSystem-v0")
    dynamics = dynamics_from_env(env, params)
    _, state = env.reset(jax.random.key(3), params)
    horizon = 12
    result = jax.jit(lambda s: control.ilqr(
        jax.random.key(0), dynamics, s, jnp.zeros((horizon, 1)), iterations=1,
        space=env.action_space(params), regularization=0.0))(state.env_state)
    A, B, Q, R = default_system(np.float32)
    gains, _ = control.lqr_finite_horizon(*map(jnp.asarray, (A, B, Q, R)), horizon)
    x, actions, total = np.asarray(state.env_state.x), [], 0.0
    for K in np.asarray(gains):
        u = -K @ x
        total -= x @ Q @ x + u @ R @ u
        actions.append(u)
        x = A @ x + B @ u
    np.testing.assert_allclose(result.actions, np.stack(actions), atol=1e-4)
    np.testing.assert_allclose(result.feedback, -np.asarray(gains), atol=1e-4)
    np.testing.assert_allclose(result.total_reward, total, rtol=1e-5)
    assert float(result.regularization) == 0.0  # the step was accepted


def test_linear_system_steps_by_its_matrices_and_truncates():
    env, params = envs.make("LinearSystem-v0", noise_std=0.0, max_steps_in_episode=3)
    A, B, Q, R = default_system(np.float32)
    obs, state = env.reset(jax.random.key(0), params)
    step = jax.jit(env.step)
    for t in range(3):
        u = np.array([0.3], np.float32)
        next_obs, state, reward, terminated, truncated, info = step(jax.random.key(t), state,
                                                                    u, params)
        np.testing.assert_allclose(info["final_obs"], A @ obs + B @ u, rtol=1e-6)
        np.testing.assert_allclose(reward, -(obs @ Q @ obs + u @ R @ u), rtol=1e-6)
        assert not terminated and bool(truncated) == (t == 2)
        obs = next_obs


DIFFERENTIABLE = [env_id for env_id in envs.list_envs("differentiable")
                  if not env_id.startswith("brax/")]


def next_obs_jacobian(env_id):
    env, params = envs.make(env_id)
    _, state = env.reset(jax.random.key(0), params)
    action = 0.1 * jnp.ones(env.action_space(params).shape)
    return jax.jit(jax.jacfwd(
        lambda a: env.step_env(jax.random.key(1), state.env_state, a, params)[0]))(action)


def test_the_differentiable_envs_are_the_expected_ones():
    assert set(DIFFERENTIABLE) == {"Pendulum-v1", "MountainCarContinuous-v0", "PointRobot-misc",
                                   "Reacher-misc", "Swimmer-misc", "LinearSystem-v0"}
    # Every Brax env is (its pipelines are differentiable); compiling a Brax step takes over
    # a minute here, so benchmarks/control.py checks brax/inverted_pendulum's gradient instead.
    assert {f"brax/{name}" for name in BRAX_ENVS} <= set(envs.list_envs("differentiable"))


@pytest.mark.parametrize("env_id", DIFFERENTIABLE)
def test_next_obs_depends_differentiably_on_the_action(env_id):
    jacobian = next_obs_jacobian(env_id)
    assert np.isfinite(jacobian).all() and np.abs(jacobian).max() > 0


def test_apg_gradient_matches_finite_differences():
    # float32 suffices: central differences at ε = 3·10⁻³ agree with the gradient to ~10⁻⁴
    # here (float64 would not help: the env's rewards are float32).
    env, params = envs.make("Pendulum-v1")
    stats_env = EpisodeStatistics(env)
    space = env.action_space(params)
    network = apg.DeterministicPolicy(make_torso(env.observation_space(params), (8,), "tanh"),
                                      np.asarray(space.low, np.float32).reshape(1),
                                      np.asarray(space.high, np.float32).reshape(1))

    @jax.jit  # one program for the start (run eagerly, it compiles some forty small ones)
    def start():
        obs, env_state = reset_envs(jax.random.key(0), stats_env, params, 3)
        # Scaled up so that the policy is far from linear (its last layer starts near zero).
        theta = jax.tree.map(lambda p: 10.0 * p, network.init(jax.random.key(1), obs[:1]))
        direction = jax.tree.map(
            lambda p: jax.random.normal(jax.random.key(2), p.shape, p.dtype), theta)
        return obs, env_state, theta, direction

    obs, env_state, theta, direction = start()

    eps = 3e-3

    @jax.jit
    def derivatives(theta):
        def objective(theta):
            return apg.rollout_objective(network, theta, jax.random.key(3), stats_env, params,
                                         env_state, obs, 6, 0.9)[0]

        gradient = jax.grad(objective)(theta)
        analytic = sum(jnp.vdot(g, d) for g, d in zip(jax.tree.leaves(gradient),
                                                       jax.tree.leaves(direction), strict=True))
        ends = jax.vmap(lambda e: objective(jax.tree.map(lambda p, d: p + e * d, theta,
                                                         direction)))(jnp.array([eps, -eps]))
        return analytic, (ends[0] - ends[1]) / (2 * eps)

    analytic, numeric = derivatives(theta)
    assert abs(float(analytic)) > 0.1
    np.testing.assert_allclose(analytic, numeric, rtol=2e-3)


def test_bad_input_gets_one_clear_error(capsys):
    with pytest.raises(ValueError, match="horizon must be >= 1"):
        control.lqr_finite_horizon(*default_system(np.float32), 0)
    for module in (ilqr, apg):
        with pytest.raises(ValueError, match="horizon must be >= 1"):
            module.make_agent(module.Config(horizon=0), *envs.make("Pendulum-v1"))
    with pytest.raises(ValueError, match="LinearSystem-v0"):
        lqr.make_agent(lqr.Config(), *envs.make("Pendulum-v1"))
    # A continuous env that does not provide "differentiable" (an id the registry does not know).
    env, params = envs.make("Pendulum-v1")
    for name in ("ilqr", "apg"):
        with pytest.raises(ValueError, match="Pendulum-v1, MountainCarContinuous-v0"):
            registry.check_env(registry.get(name), "MyPendulum-v0", env, params)
    assert cli.main(["train", "apg", "--env", "Pendulum-v1", "--horizon", "0"]) == 2
    assert cli.main(["train", "lqr", "--env", "Pendulum-v1"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 2 and all(line.startswith("jaxrl: error: ") for line in err)
    assert "horizon must be >= 1" in err[0] and "LinearSystem-v0" in err[1]


@pytest.mark.slow
def test_ilqr_holds_pendulum_upright_from_the_hanging_start():
    env, params = envs.make("Pendulum-v1")
    config = ilqr.Config(horizon=30, iterations=2)
    agent = ilqr.make_agent(config, env, params)

    @jax.jit  # the start too: run eagerly, it compiles a dozen small programs
    def run(key):
        _, state = env.reset(jax.random.key(0), params)
        hanging = state.replace(env_state=state.env_state.replace(theta=jnp.float32(np.pi),
                                                                    theta_dot=jnp.float32(0.0)))
        batch = jax.tree.map(lambda x: jnp.asarray(x)[None], hanging)
        controller = agent.init(jax.random.key(2))

        def step(carry, key):
            env_state, plan = carry
            obs = jnp.zeros((1, 3))
            action, plan = agent.act(controller, obs, key, True, plan, env_state=env_state)
            _, env_state, *_ = jax.vmap(env.step, in_axes=(None, 0, 0, None))(
                key, env_state, action, params)
            return (env_state, plan), (env_state.env_state.theta[0], action[0, 0])

        return jax.lax.scan(step, (batch, agent.initial_carry(None, 1)),
                            jax.random.split(key, 199))[1]

    theta, actions = map(np.asarray, run(jax.random.key(1)))
    angle = (theta + np.pi) % (2 * np.pi) - np.pi  # angle[t]: after step t + 1
    assert np.abs(angle[99:]).max() < 0.1, np.nonzero(np.abs(angle) >= 0.1)[0]
    # The swing-up needs the most torque there is: the control limits (±2) bind, and hold.
    assert np.abs(actions).max() <= 2.0 and np.isclose(np.abs(actions).max(), 2.0)
