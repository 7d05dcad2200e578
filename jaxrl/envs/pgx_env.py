"""pgx board games as jaxrl envs (``pgx/tic_tac_toe``, ``pgx/connect_four``), and players to
match an agent against.

A two-player, alternating, zero-sum game in the single-agent protocol, seen by the player to
move: the observation is pgx's (the board from the current player's view), the reward of a step
is the reward of the player who made the move (+1 for a winning move, -1 for an illegal one,
else 0), and ``terminated`` is the end of the game. ``alternating_players = True`` tells a
search on the simulator (``jaxrl.training.search``) that the next state belongs to the
opponent: its value counts negated for the mover (``V(s) = r - V(s')``);
``legal_action_mask(state)`` gives the moves it may consider. One network that plays the side
to move thus plays both sides (self-play).

``play_games`` pits two players on pgx states, with ``random_player`` and ``greedy_player`` (the
one-ply lookahead: a winning move if there is one) as baseline opponents. pgx is an optional
dependency (``pip install "jaxrl[planning]"``), imported when a game is built.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
from flax import struct

from jaxrl.envs.core import TimeLimitedEnv, TimeLimitState
from jaxrl.envs.registry import register
from jaxrl.envs.spaces import Box, Discrete

__all__ = ["PGX_GAMES", "PgxEnv", "PgxParams", "agent_player", "greedy_player", "play_games",
           "random_player"]

PGX_GAMES = ("tic_tac_toe", "connect_four")
"""The pgx games registered as ``pgx/<game>``."""

Player = Callable[[jax.Array, Any], jax.Array]
"""``player(key, pgx_states [N]) -> actions [N]`` for a batch of game states."""


class PgxParams(struct.PyTreeNode):
    """A pgx game's env params: only the time limit (the game itself has no parameters)."""

    max_steps_in_episode: int = struct.field(pytree_node=False, default=100)
    """a bound on the moves of one game (never reached by a legal game of these boards)"""


class PgxEnv(TimeLimitedEnv):
    """One pgx game (module docstring); the env state is pgx's own ``State``."""

    alternating_players = True

    def __init__(self, game: str):
        try:
            import pgx
        except ImportError as error:
            raise ValueError(f"pgx/{game} needs pgx: pip install \"jaxrl[planning]\"") from error
        self.game = game
        self.pgx_env = pgx.make(game)

    def __repr__(self) -> str:
        return f"PgxEnv({self.game!r})"

    def reset_env(self, key: jax.Array, params: Any) -> tuple[jax.Array, Any]:
        state = self.pgx_env.init(key)
        return self.observe(state, params), state

    def step_env(self, key: jax.Array, state: Any, action: jax.Array, params: Any):
        mover = state.current_player
        state = self.pgx_env.step(state, action, key)
        return (self.observe(state, params), state, state.rewards[mover], state.terminated, {})

    def observe(self, state: Any, params: Any = None) -> jax.Array:
        """The board from the view of the player to move, as float32."""
        return state.observation.astype(jnp.float32)

    def legal_action_mask(self, state: Any) -> jax.Array:
        """``bool [num_actions]``: the legal moves of the player to move."""
        return state.legal_action_mask

    def observation_space(self, params: Any) -> Box:
        return Box(0.0, 1.0, tuple(self.pgx_env.observation_shape), jnp.float32)

    def action_space(self, params: Any) -> Discrete:
        return Discrete(self.pgx_env.num_actions)


def random_player(key: jax.Array, states: Any) -> jax.Array:
    """Uniformly random legal moves."""
    return jax.random.categorical(key, jnp.where(states.legal_action_mask, 0.0, -jnp.inf))


def greedy_player(env: PgxEnv) -> Player:
    """The one-ply greedy player: a random move among those with the best immediate reward for
    the mover (a winning move when there is one, else any legal move)."""
    def best_moves(state):
        rewards = jax.vmap(lambda action: env.pgx_env.step(state, action).rewards[
            state.current_player])(jnp.arange(env.pgx_env.num_actions))
        rewards = jnp.where(state.legal_action_mask, rewards, -jnp.inf)
        return rewards == rewards.max()

    def player(key, states):
        return jax.random.categorical(key, jnp.where(jax.vmap(best_moves)(states), 0.0,
                                                     -jnp.inf))

    return player


def agent_player(act: Callable[..., jax.Array], train_state: Any) -> Player:
    """A ``Player`` from an agent that acts on the env state (``Agent.act`` and its train
    state), acting deterministically."""
    def player(key, states):
        env_state = TimeLimitState(states, jnp.zeros(states.current_player.shape, jnp.int32))
        return act(train_state, states.observation.astype(jnp.float32), key, True,
                   env_state=env_state)

    return player


def play_games(key: jax.Array, env: PgxEnv, first: Player, second: Player,
               num_games: int, mirrored: int = 0) -> jax.Array:
    """``float [num_games + mirrored]``: the outcome (+1 win, 0 draw, -1 loss) for ``first`` of
    ``num_games`` games against ``second``, then of ``mirrored`` games against itself; ``first``
    makes the opening move in the even games and the second move in the odd ones. ``first`` is
    asked once per move for all games (an agent's search compiles once)."""
    init_key, play_key = jax.random.split(key)
    total = num_games + mirrored
    states = jax.vmap(env.pgx_env.init)(jax.random.split(init_key, total))
    opens = jnp.arange(total) % 2 == 0
    self_play = jnp.arange(total) >= num_games
    first_id = jnp.where(opens, states.current_player, 1 - states.current_player)
    max_moves = math.prod(env.pgx_env.observation_shape[:2])  # a move fills one cell

    def move(carry, move_key):
        states, outcome = carry
        first_key, second_key = jax.random.split(move_key)
        actions = first(first_key, states)
        if second is not first:
            first_moves = (states.current_player == first_id) | self_play
            actions = jnp.where(first_moves, actions, second(second_key, states))
        states = jax.vmap(env.pgx_env.step)(states, actions)
        rewards = jnp.take_along_axis(states.rewards, first_id[:, None], axis=1)[:, 0]
        return (states, outcome + rewards), None

    (_, outcome), _ = jax.lax.scan(move, (states, jnp.zeros((total,), jnp.float32)),
                                   jax.random.split(play_key, max_moves))
    return outcome


def _factory(game: str):
    def factory(**kwargs: Any) -> tuple[PgxEnv, PgxParams]:
        return PgxEnv(game), PgxParams(**kwargs)

    return factory


for _game in PGX_GAMES:
    register(f"pgx/{_game}", _factory(_game))
