"""AlphaZero-style search (``jaxrl.agents.alphazero``, ``jaxrl.training.search``) and the pgx
board games (``jaxrl.envs.pgx_env``).

Value targets, worked by hand with γ = 0.5 over five steps, rewards ``1..5``, the episode
terminating on step 1 and ``V(s_{t+1}) = 10, 20, 30, 40, 50``:

- 2-step: ``G_0 = 1 + 0.5·2 = 2`` (the window stops at the terminal step), ``G_1 = 2``,
  ``G_2 = 3 + 0.5·4 + 0.25·40 = 15``, ``G_3 = 4 + 0.5·5 + 0.25·50 = 19``,
  ``G_4 = 5 + 0.5·50 = 30`` (the rollout ends: one step);
- Monte Carlo: ``G_4 = 30``, ``G_3 = 4 + 0.5·30 = 19``, ``G_2 = 3 + 0.5·19 = 12.5``,
  ``G_1 = 2``, ``G_0 = 2``.

Two players (γ = 1, discount -1 across turns): player A moves, B moves, A wins (reward 1 to
the mover on the last move). Monte Carlo from the mover's view: ``G_2 = 1``, ``G_1 = -1`` (B
lost), ``G_0 = 1``; 1-step with ``V(s_1) = 0.3``, ``V(s_2) = -0.2``: ``G_0 = -0.3``,
``G_1 = 0.2``, ``G_2 = 1``.
"""

from __future__ import annotations

import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from helpers import leaves_equal, optimised_jit

from jaxrl import cli, envs, registry
from jaxrl.agents import alphazero
from jaxrl.envs.dynamics import simulator_state
from jaxrl.envs.pgx_env import agent_player, play_games, random_player
from jaxrl.training import search as search_lib

pytestmark = pytest.mark.xdist_group("alphazero")


def test_n_step_and_monte_carlo_value_targets_match_the_hand_worked_returns():
    rewards = jnp.array([1.0, 2.0, 3.0, 4.0, 5.0])
    terminated = jnp.array([0.0, 1.0, 0.0, 0.0, 0.0])
    next_values = jnp.array([10.0, 20.0, 30.0, 40.0, 50.0])
    discounts = 0.5 * (1.0 - terminated)
    n_step = alphazero.value_targets("n_step", rewards, next_values, discounts, terminated, 2)
    np.testing.assert_allclose(n_step, [2.0, 2.0, 15.0, 19.0, 30.0])
    monte_carlo = alphazero.value_targets("monte_carlo", rewards, next_values, discounts,
                                          terminated, 2)
    np.testing.assert_allclose(monte_carlo, [2.0, 2.0, 12.5, 19.0, 30.0])

    won = jnp.array([0.0, 0.0, 1.0])
    game_over = jnp.array([0.0, 0.0, 1.0])
    turns = -1.0 * (1.0 - game_over)
    values = jnp.array([0.3, -0.2, 0.9])
    np.testing.assert_allclose(
        alphazero.value_targets("monte_carlo", won, values, turns, game_over, 1), [1, -1, 1])
    np.testing.assert_allclose(
        alphazero.value_targets("n_step", won, values, turns, game_over, 1), [-0.3, 0.2, 1.0])


def observing_network(num_actions):
    """Uniform priors and ``V(s) = Σ obs``, so a value shows which observation it saw."""
    def network(params, obs):
        flat = obs.reshape((obs.shape[0], -1)).astype(jnp.float32)
        return jnp.zeros((obs.shape[0], num_actions)), flat.sum(-1) * params
    return network


def test_recurrent_fn_on_the_simulator_reproduces_step_env():
    for env_id, sign in (("CartPole-v1", 1.0), ("pgx/tic_tac_toe", -1.0)):
        env, params = envs.make(env_id)
        num_actions = env.action_space(params).n
        recurrent_fn = search_lib.make_recurrent_fn(env, params, observing_network(num_actions))

        @jax.jit
        def both(key, env=env, params=params, recurrent_fn=recurrent_fn):
            _, state = jax.vmap(env.reset, in_axes=(0, None))(jax.random.split(key, 2), params)
            states, action = simulator_state(env, state), jnp.array([0, 1])
            searched = recurrent_fn({"network": 1.0, "gamma": 0.9}, key, action, states)
            stepped = jax.vmap(env.step_env, in_axes=(0, 0, 0, None))(
                jax.random.split(key, 2), states, action, params)
            return searched, stepped

        (output, next_states), (obs, stepped, reward, terminated, _) = both(jax.random.key(0))
        assert leaves_equal(next_states, stepped)
        np.testing.assert_array_equal(output.reward, reward)
        np.testing.assert_allclose(output.discount, sign * 0.9 * (1.0 - terminated))
        np.testing.assert_allclose(output.value, obs.reshape(2, -1).sum(-1))


def test_search_targets_are_a_distribution_over_legal_moves_and_find_a_win():
    env, params = envs.make("pgx/tic_tac_toe")
    # X (to move) holds cells 0 and 1, O holds 3 and 4: cell 2 wins at once.
    _, state = env.reset(jax.random.key(0), params)
    for cell in (0, 3, 1, 4):
        state = state.replace(env_state=env.pgx_env.step(state.env_state, cell))
    env_state = jax.tree.map(lambda x: x[None], state)
    obs = env.observe(state.env_state)[None]
    legal = np.asarray(state.env_state.legal_action_mask)
    runs = [search_lib.make_search(env, params, observing_network(9), search=name,
                                   num_simulations=32, max_num_considered_actions=9)
            for name in search_lib.SEARCHES]
    outputs = jax.jit(lambda key: [run({"network": 0.0}, key, obs, env_state, 1.0, 0.25, False)
                                   for run in runs])(jax.random.key(1))
    for name, output in zip(search_lib.SEARCHES, outputs, strict=True):
        weights = np.asarray(output.action_weights[0])
        assert np.all(weights >= 0) and abs(weights.sum() - 1.0) < 1e-5
        assert np.all(weights[~legal] == 0)
        assert int(np.argmax(weights)) == 2, name


def test_without_mctx_alphazero_says_which_extra_to_install(monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "mctx", None)  # `import mctx` now raises ImportError
    env, params = envs.make("CartPole-v1")
    with pytest.raises(ValueError, match=r'pip install "jaxrl\[planning\]"'):
        alphazero.make_agent(alphazero.Config(), env, params)
    assert cli.main(["train", "alphazero", "--no-progress"]) == 2
    error = capsys.readouterr().err.strip().splitlines()
    assert len(error) == 1 and 'pip install "jaxrl[planning]"' in error[0]


def test_registered_as_a_planner_on_the_env_state_with_board_games():
    algorithm = registry.get("alphazero")
    assert algorithm.family == "planning" and registry.ENV_STATE in algorithm.needs
    assert {"pgx/tic_tac_toe", "pgx/connect_four"} <= set(envs.list_envs())
    env, params = envs.make("Pendulum-v1")
    with pytest.raises(TypeError, match="discrete actions"):
        alphazero.make_agent(alphazero.Config(), env, params)
    with pytest.raises(ValueError, match="num_minibatches"):
        alphazero.make_agent(alphazero.Config(num_envs=3, num_steps=3), *envs.make("CartPole-v1"))


TIC_TAC_TOE = {"num_simulations": 64, "exploration": 3.0, "num_envs": 32, "num_steps": 9,
               "total_timesteps": 32 * 9 * 80, "gamma": 1.0, "value_target": "monte_carlo",
               "num_minibatches": 4, "torso": "mlp"}


@pytest.mark.slow
def test_self_play_tic_tac_toe_beats_random_and_draws_itself():
    """Self-play under one jit, then 100 games against a uniformly random player (the agent
    opens the even games, replies in the odd ones) and 2 against itself. Root Gumbel noise of
    scale 3 keeps self-play off a single line, so the network also knows the positions a
    random opponent creates (at scale 1 it lost 1 game in 100). After 80 updates of 32 games
    seeds 0-3 lost 0, 0, 1, 0 games, won 95-97 and drew themselves (at 40 updates one seed did
    not draw itself; at 120 none lost: benchmarks/RESULTS.md). Another CPU rounds differently,
    which acts like another seed, so the test allows one loss."""
    env, params = envs.make("pgx/tic_tac_toe")
    config = alphazero.Config(**TIC_TAC_TOE)
    agent = alphazero.make_agent(config, env, params)

    @optimised_jit
    def train_and_play(key):
        state, _ = alphazero.make_train(config, env, params)(key)
        return play_games(jax.random.key(1), env, agent_player(agent.act, state), random_player,
                          100, mirrored=2)

    outcomes = np.asarray(train_and_play(jax.random.key(0)))
    against_random, against_itself = outcomes[:100], outcomes[100:]
    assert (against_random < 0).sum() <= 1 and (against_random > 0).sum() >= 90
    np.testing.assert_array_equal(against_itself, [0.0, 0.0])
