"""Tabular MDPs and dynamic programming (``jaxrl.envs.tabular``, ``jaxrl.dynamic_programming``,
the ``vi`` / ``pi`` agents) and fitted Q iteration (``fqi``) against the exact Q*.

Oracles: the 3-state MDP solved by hand; exact-table properties (PI = VI, γ-contraction, soft VI
→ VI as α → 0); the tables against the envs' own ``step_env``.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from helpers import optimised_jit

from jaxrl import cli, envs
from jaxrl import dynamic_programming as dp
from jaxrl.agents import fqi, pi, vi
from jaxrl.datasets import Dataset
from jaxrl.envs.tabular import (
    Gridworld,
    TabularMDP,
    state_index,
    tabular_mdp,
    three_state_mdp,
)
from jaxrl.models import make_q_network

pytestmark = pytest.mark.xdist_group("dynamic-programming")

# The 3-state MDP (``three_state_mdp``), γ = 0.9. State 2 is absorbing and pays 2 per step:
#   V*(2) = 2 / (1 − 0.9) = 20.
# Moving from 1 pays 1/2 in expectation and lands in 2 or 0 with probability 1/2 each; moving
# from 0 pays 0 and lands in 1; staying pays 0. Moving is optimal in 0 and 1:
#   V*(0) = 0.9 V*(1),  V*(1) = 0.5 + 0.9 (0.5 · 20 + 0.5 V*(0)) = 9.5 + 0.405 V*(1)
#   ⇒ V*(1) = 9.5 / 0.595 = 15.96639,  V*(0) = 14.36975.
# The policy "always stay": V(0) = V(1) = 0, V(2) = 20.
HAND_V_STAR = np.array([9.5 / 0.595 * 0.9, 9.5 / 0.595, 20.0])
HAND_POLICY = np.array([1, 1, 0])
GAMMA = 0.9


@jax.jit
def solve(mdp: TabularMDP) -> dict:
    """Every solver on ``mdp`` in one program (one compilation per table shape): PI, VI, the
    value of VI's greedy policy, ‖V_k − V*‖∞ over 30 sweeps of VI from 0, Q-iteration, and the
    uniform policy evaluated exactly and iteratively."""
    iteration = dp.policy_iteration(mdp, 20)
    result = dp.value_iteration(mdp, 400)

    def sweep(values, _):
        return dp.bellman_backup(mdp, values), jnp.abs(values - iteration.values).max()

    _, errors = jax.lax.scan(sweep, jnp.zeros(mdp.num_states), None, length=30)
    uniform = jnp.full(mdp.R.shape, 1.0 / mdp.num_actions)
    return {"pi": iteration, "vi": result, "vi_greedy_value":
            dp.policy_evaluation(mdp, result.policy), "vi_errors": errors,
            "q_iteration": dp.q_iteration(mdp, 400)[0],
            "pi_iterative": dp.iterative_policy_evaluation(mdp, iteration.policy, 400),
            "uniform_exact": dp.policy_evaluation(mdp, uniform),
            "uniform_iterative": dp.iterative_policy_evaluation(mdp, uniform, 400)[0]}


def test_three_state_mdp_is_solved_as_by_hand():
    mdp = three_state_mdp(GAMMA)
    solved = solve(mdp._replace(observations=None))
    np.testing.assert_allclose(solved["pi"].values, HAND_V_STAR, rtol=1e-5)
    np.testing.assert_array_equal(solved["pi"].policy, HAND_POLICY)
    assert solved["pi"].changed[-1] == 0
    np.testing.assert_allclose(solved["vi"].values, HAND_V_STAR, rtol=1e-5)
    np.testing.assert_array_equal(solved["vi"].policy[:2], HAND_POLICY[:2])
    np.testing.assert_allclose(solved["q_iteration"].max(-1), HAND_V_STAR, rtol=1e-5)
    np.testing.assert_allclose(dp.policy_evaluation(mdp, jnp.zeros(3, jnp.int32)),
                               [0.0, 0.0, 20.0], atol=1e-4)


def test_iterative_policy_evaluation_converges_to_the_linear_solve():
    solved = solve(three_state_mdp(GAMMA)._replace(observations=None))
    values, residuals = solved["pi_iterative"]
    np.testing.assert_allclose(values, HAND_V_STAR, rtol=1e-5)
    assert residuals[-1] < 1e-4 < residuals[0]
    # A stochastic policy: uniform over stay and move.
    np.testing.assert_allclose(solved["uniform_iterative"], solved["uniform_exact"], rtol=1e-5)


def make_mdp(env_id: str) -> TabularMDP:
    env, params = envs.make(env_id)
    return tabular_mdp(env, params, GAMMA)


@pytest.mark.parametrize("name", ["Gridworld-v0", "FrozenLake-misc"])
def test_policy_iteration_and_value_iteration_agree_and_vi_contracts_by_gamma(name):
    # Without the observation table, the grid and FrozenLake share one compilation.
    solved = solve(make_mdp(name)._replace(observations=None))
    iteration = solved["pi"]
    assert iteration.changed[-1] == 0
    np.testing.assert_allclose(iteration.values, solved["vi"].values, atol=1e-4)
    np.testing.assert_allclose(solved["q_iteration"].max(-1), iteration.values, atol=1e-4)
    # Ties may pick different actions: both greedy policies are optimal.
    np.testing.assert_allclose(solved["vi_greedy_value"], iteration.values, atol=1e-4)
    # ‖V_{k+1} − V*‖∞ ≤ γ ‖V_k − V*‖∞ (course notes §7: B is a γ-contraction).
    errors = np.asarray(solved["vi_errors"])
    assert np.all(errors[1:] <= GAMMA * errors[:-1] + 1e-5), errors


@jax.jit
def soft_and_hard(mdp: TabularMDP, alpha: jax.Array):
    return dp.soft_value_iteration(mdp, alpha, 400), dp.value_iteration(mdp, 400)


def test_soft_value_iteration_tends_to_value_iteration():
    mdp = make_mdp("Gridworld-v0")
    errors = []
    for alpha in (1.0, 0.1, 0.01, 0.001):
        soft, hard = soft_and_hard(mdp, jnp.float32(alpha))
        error = float(jnp.abs(soft.values - hard.values).max())
        # The log-sum-exp exceeds the max by at most α log |A| per step.
        assert error <= alpha * np.log(4) / (1 - GAMMA) + 1e-4
        errors.append(error)
        np.testing.assert_allclose(soft.policy.sum(-1), 1.0, rtol=1e-5)
        np.testing.assert_allclose(soft.policy, jnp.exp((soft.q_values - soft.values[:, None])
                                                        / alpha), rtol=1e-3, atol=1e-6)
    assert errors == sorted(errors, reverse=True)
    # At a small temperature the soft policy puts its mass on Q*'s best actions.
    q_star = dp.q_values(mdp, hard.values)
    best = jnp.take_along_axis(soft.policy, dp.greedy_policy(q_star)[:, None], -1)[:, 0]
    gap = jnp.sort(q_star, -1)[:, -1] - jnp.sort(q_star, -1)[:, -2]
    assert jnp.all(jnp.where(gap > 0.01, best > 0.99, True))


def test_state_occupancy_is_a_distribution_satisfying_the_flow_equation():
    mdp = make_mdp("Gridworld-v0")
    policy = solve(mdp._replace(observations=None))["pi"].policy
    occupancy = dp.state_occupancy(mdp, policy)
    np.testing.assert_allclose(occupancy.sum(), 1.0, rtol=1e-5)
    flow = jnp.einsum("s,st->t", occupancy, mdp.P[jnp.arange(mdp.num_states), policy])
    np.testing.assert_allclose(occupancy, 0.1 * mdp.initial + 0.9 * flow, atol=1e-6)


def sampled_steps(env, params, states: np.ndarray, samples: int):
    """``step_env`` from every (state, action) ``samples`` times: arrays ``[S, A, samples]``."""
    template = env.reset_env(jax.random.key(0), params)[1]

    def step(key, position, action):
        state = template.replace(position=position.astype(template.position.dtype))
        obs, next_state, reward, terminated, _ = env.step_env(key, state, action, params)
        return obs, next_state.position, reward, terminated

    keys = jax.random.split(jax.random.key(1), (len(states), 4, samples))
    positions = jnp.broadcast_to(jnp.asarray(states)[:, None, None], keys.shape)
    actions = jnp.broadcast_to(jnp.arange(4)[None, :, None], keys.shape)
    return jax.jit(jax.vmap(jax.vmap(jax.vmap(step))))(keys, positions, actions)


@pytest.mark.parametrize("env_id, kwargs", [("Gridworld-v0", {"slip": 0.3}),
                                            ("FrozenLake-misc", {})])
def test_table_agrees_with_the_env_step(env_id, kwargs):
    env, params = envs.make(env_id, **kwargs)
    mdp = tabular_mdp(env, params)
    # The env never steps from a terminal state (it resets), Gridworld's step keeps it there.
    states = np.arange(mdp.num_states) if env_id == "Gridworld-v0" else np.flatnonzero(
        ~np.asarray(mdp.terminal))
    samples = 2000
    obs, positions, rewards, terminated = map(np.asarray,
                                              sampled_steps(env, params, states, samples))
    frequencies = (positions[..., None] == np.arange(mdp.num_states)).mean(2)
    P = np.asarray(mdp.P)[states]
    assert np.all(P[np.arange(len(states))[:, None, None], np.arange(4)[None, :, None],
                    positions] > 0), "a sampled next state the table gives probability 0"
    np.testing.assert_allclose(frequencies, P, atol=0.05)  # binomial std <= 0.012
    np.testing.assert_allclose(rewards.mean(-1), np.asarray(mdp.R)[states], atol=0.05)
    np.testing.assert_array_equal(terminated, np.asarray(mdp.terminal)[positions])
    # Every observation maps back to the state it shows.
    np.testing.assert_array_equal(state_index(mdp, obs.reshape(-1, *obs.shape[3:])),
                                  positions.reshape(-1))


def test_gridworld_rejects_a_bad_map_and_non_tabular_envs():
    with pytest.raises(ValueError, match="one S"):
        Gridworld(("SFF", "FHF"))
    with pytest.raises(ValueError, match="4x4, 8x8"):
        Gridworld("5x5")
    env, params = envs.make("CartPole-v1")
    with pytest.raises(TypeError, match="FrozenLake-misc, Gridworld-v0"):
        tabular_mdp(env, params)


@pytest.mark.parametrize("algo", ["vi", "pi"])
def test_cli_names_the_tabular_envs_for_a_non_tabular_env(algo, capsys):
    assert cli.main(["train", algo, "--env", "CartPole-v1"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("jaxrl: error: ")
    assert "FrozenLake-misc" in err[0] and "Gridworld-v0" in err[0]


@pytest.mark.parametrize("module, config", [
    (vi, vi.Config(num_sweeps=200, gamma=0.9, eval_episodes=0)),
    (pi, pi.Config(num_iterations=8, gamma=0.9, eval_episodes=0))])
def test_agents_reach_the_optimal_policy_and_act_by_lookup(module, config):
    env, params = envs.make("Gridworld-v0")
    mdp = tabular_mdp(env, params, 0.9)
    v_star = solve(mdp._replace(observations=None))["pi"].values
    agent = module.make_agent(config, env, params)
    state, metrics = jax.jit(module.make_train(config, env, params))(jax.random.key(0))
    np.testing.assert_allclose(dp.policy_evaluation(mdp, state.policy), v_star, atol=1e-3)
    assert metrics["bellman_residual"][-1] < 1e-3
    obs = jnp.eye(mdp.num_states)
    np.testing.assert_array_equal(agent.act(state, obs, jax.random.key(0), True), state.policy)
    assert agent.act(state, obs[3], jax.random.key(0), True) == state.policy[3]


def exact_gridworld_dataset(env, params, mdp: TabularMDP, copies: int) -> Dataset:
    """Every (s, a, s') from a non-terminal s, repeated ``round(copies · P(s' | s, a))`` times
    (exact for slip 0.1 and 20 copies: 18/1/1), one-hot observations: uniform over (s, a), and
    its empirical MDP is the table itself."""
    counts = np.rint(np.asarray(mdp.P) * copies).astype(int)
    counts[np.asarray(mdp.terminal)] = 0
    state, action, next_state = np.nonzero(counts)
    repeats = counts[state, action, next_state]
    state, action, next_state = (np.repeat(x, repeats) for x in (state, action, next_state))
    eye = np.eye(mdp.num_states, dtype=np.float32)
    return Dataset(observations=eye[state], actions=action.astype(np.int32),
                   rewards=np.where(env.tiles[next_state] == "G", params.goal_reward,
                                    0.0).astype(np.float32),
                   next_observations=eye[next_state],
                   terminated=np.asarray(mdp.terminal)[next_state],
                   truncated=np.zeros(len(state), bool),
                   log_probs=np.full(len(state), np.log(0.25), np.float32),
                   metadata={"env": "Gridworld-v0"})


@pytest.mark.slow
def test_fitted_q_iteration_finds_the_tabular_q_star():
    gamma = 0.8
    env, params = envs.make("Gridworld-v0", slip=0.1)
    mdp = tabular_mdp(env, params, gamma)
    dataset = exact_gridworld_dataset(env, params, mdp, 20)
    q_star, _ = dp.q_iteration(mdp, 200)
    # 20 iterations of 50 steps: γ^20 ≈ 1e-2 of iteration error. Minibatches of 2× the
    # dataset keep the sampling noise small (seeds 0–5: max |Q − Q*| ≤ 0.027, same policy).
    # The run, not its compile, dominates: XLA's optimised code (helpers.optimised_jit).
    config = fqi.Config(total_gradient_steps=1000, steps_per_iteration=50, log_frequency=500,
                        batch_size=2 * len(dataset), gamma=gamma, learning_rate=3e-3,
                        hidden_sizes=(64,), eval_episodes=4, normalize_obs=False)
    state, metrics = optimised_jit(fqi.make_train(config, env, params, dataset))(jax.random.key(0))
    network = make_q_network(env.observation_space(params), env.action_space(params),
                             config.hidden_sizes, config.activation)
    q = network.apply(state.learner.params["q"], jnp.eye(mdp.num_states))
    live = ~np.asarray(mdp.terminal)
    assert np.abs(q - q_star)[live].max() < 0.05
    np.testing.assert_array_equal(dp.greedy_policy(q)[live], dp.greedy_policy(q_star)[live])
    assert state.learner.update_count == 1000
    assert metrics["eval_return"][-1] > 0.5
