"""Tabular MDPs: exact transition tensors of small environments, and a slippery gridworld.

A finite MDP is ``TabularMDP(P, R, gamma, initial)``: ``P[s, a, s'] = p(s' | s, a)``,
``R[s, a] = E[r | s, a]``, the discount ``γ`` and the start distribution ``initial[s]``; with
``observations[s]`` (what the env shows in state ``s``, so a policy acting on observations finds
its state: ``state_index``) and ``terminal[s]`` (where an episode ends). A terminal state is
absorbing with reward 0, so the discounted value ``V(s) = E[Σ_t γ^t r_t]`` of the table equals
that of the episodic env. The dynamic-programming solvers (``jaxrl.dynamic_programming``) and
the ``vi`` / ``pi`` agents take one.

``tabular_mdp(env, env_params)`` writes the table of every env registered with
``provides=("tabular",)`` from the rules its ``step_env`` follows (never from sampled steps;
``tests/test_dynamic_programming.py`` checks that the two agree):

- ``Gridworld-v0`` (this module): a FrozenLake-style grid, the map a constructor argument;
- ``FrozenLake-misc`` (gymnax): its map, slipperiness and reward schedule read off the env.

Course notes §7 (Value Function Methods): the table is the ``T_a`` (``P[:, a]``) and ``r_a``
(``R[:, a]``) of the Bellman operator ``B V = max_a (r_a + γ T_a V)``.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from flax import struct

from jaxrl.envs.core import TimeLimitedEnv
from jaxrl.envs.registry import list_envs, register
from jaxrl.envs.spaces import Box, Discrete

__all__ = ["GRIDWORLD_MAPS", "Gridworld", "GridworldParams", "GridworldState", "TabularMDP",
           "state_index", "tabular_mdp", "three_state_mdp"]

# numpy, not jax: a jax array at import time would start the XLA backend before a multi-host
# run can call jax.distributed.initialize.
MOVES = np.array([[0, -1], [1, 0], [0, 1], [-1, 0]])
"""(row, column) offsets of the actions left, down, right, up (FrozenLake's order)."""

GRIDWORLD_MAPS = {
    "4x4": ("SFFF", "FHFH", "FFFH", "HFFG"),
    "8x8": ("SFFFFFFF", "FFFFFFFF", "FFFHFFFF", "FFFFFHFF", "FFFHFFFF", "FHHFFFHF", "FHFFHFHF",
            "FFFHFFFG"),
}
"""Named maps: ``S`` start, ``F`` frozen (free), ``H`` hole (terminal), ``G`` goal (terminal)."""


class TabularMDP(NamedTuple):
    """A finite MDP with exact tensors (a pytree: vmap over a batch of MDPs or discounts)."""

    P: jax.Array
    """``[S, A, S']`` transition probabilities ``p(s' | s, a)``; rows sum to 1"""
    R: jax.Array
    """``[S, A]`` expected reward of taking ``a`` in ``s``"""
    gamma: float | jax.Array
    """discount factor γ (< 1 for the linear solve of policy evaluation)"""
    initial: jax.Array
    """``[S]`` start-state distribution"""
    observations: jax.Array | None = None
    """``[S, ...]`` the observation of each state (``state_index`` inverts it); None: none"""
    terminal: jax.Array | None = None
    """``[S]`` bool: episode ends on entering (absorbing, reward 0); None: no terminal state"""

    @property
    def num_states(self) -> int:
        return self.P.shape[0]

    @property
    def num_actions(self) -> int:
        return self.P.shape[1]


def state_index(mdp: TabularMDP, obs: jax.Array) -> jax.Array:
    """State indices ``[*B]`` of observations ``[*B, ...]`` (one or a batch): the state whose
    ``observations`` entry is nearest (exact for the observations the env emits)."""
    obs = jnp.asarray(obs, jnp.float32)
    batch_shape = obs.shape[:obs.ndim - (mdp.observations.ndim - 1)]
    table = jnp.asarray(mdp.observations, jnp.float32).reshape(mdp.num_states, -1)
    flat = obs.reshape(-1, table.shape[1])
    distances = ((flat[:, None, :] - table[None]) ** 2).sum(-1)
    return jnp.argmin(distances, -1).reshape(batch_shape)


def three_state_mdp(gamma: float = 0.9) -> TabularMDP:
    """A 3-state, 2-action MDP small enough to solve by hand (``tests/``).

    States 0, 1, 2; action 0 "stay", action 1 "move". From 0, move reaches 1 (reward 0); from
    1, move reaches 2 with probability 1/2 (reward 1 on arrival) and falls back to 0 otherwise;
    2 is absorbing and pays 2 per step whatever the action. Staying pays 0 in states 0 and 1.
    """
    P = np.zeros((3, 2, 3), np.float32)
    R = np.zeros((3, 2), np.float32)
    P[0, 0, 0] = P[1, 0, 1] = 1.0
    P[0, 1, 1] = 1.0
    P[1, 1, 2] = P[1, 1, 0] = 0.5
    R[1, 1] = 0.5
    P[2, :, 2] = 1.0
    R[2, :] = 2.0
    return TabularMDP(jnp.asarray(P), jnp.asarray(R), gamma, jnp.asarray([1.0, 0.0, 0.0]),
                      jnp.eye(3, dtype=jnp.float32), jnp.zeros(3, bool))


def tabular_mdp(env: Any, env_params: Any, gamma: float | jax.Array = 0.99) -> TabularMDP:
    """The exact ``TabularMDP`` of ``env`` (built by ``jaxrl.envs.make`` for an id providing
    ``"tabular"``), with discount ``gamma``; ``TypeError`` naming the tabular envs otherwise."""
    from jaxrl.envs.dynamics import base_env

    try:
        inner = base_env(env)
    except TypeError:
        inner = None
    if isinstance(inner, Gridworld):
        return inner.tabular_mdp(env_params, gamma)
    if getattr(getattr(inner, "gymnax_env", None), "name", None) == "FrozenLake-misc":
        return _frozen_lake_mdp(inner.gymnax_env, gamma)
    raise TypeError(f"{env!r} has no exact transition table; these envs have one: "
                    f"{', '.join(list_envs('tabular'))}")


def _grid_moves(tiles: np.ndarray) -> np.ndarray:
    """``[S, 4]`` the cell each action moves to (clipped at the walls; terminal cells stay)."""
    rows, cols = tiles.shape
    row, col = np.divmod(np.arange(rows * cols), cols)
    moved = (np.clip(row[:, None] + MOVES[:, 0], 0, rows - 1) * cols
             + np.clip(col[:, None] + MOVES[:, 1], 0, cols - 1))
    terminal = np.isin(tiles.reshape(-1), list("HG"))
    return np.where(terminal[:, None], np.arange(rows * cols)[:, None], moved)


def _table(outcomes: jax.Array, probs: jax.Array, rewards: jax.Array, terminal: np.ndarray,
           num_states: int, xp: Any = jnp) -> tuple[jax.Array, jax.Array]:
    """``(P, R)`` from per-(s, a) outcomes ``[S, A, K]`` with probabilities ``[S, A, K]`` and
    landing rewards ``[S']``; terminal states absorbing with reward 0. ``xp``: ``jnp`` (params
    may be traced) or ``numpy`` (all concrete: no XLA op to compile)."""
    P = (xp.eye(num_states, dtype=xp.float32)[outcomes] * probs[..., None]).sum(2)
    R = (probs * rewards[outcomes]).sum(-1)
    return P, xp.where(xp.asarray(terminal)[:, None], xp.float32(0.0), R)


def _frozen_lake_mdp(lake: Any, gamma: float | jax.Array) -> TabularMDP:
    """gymnax ``FrozenLake``'s table: the intended direction with ``success_rate``, each
    perpendicular one with ``(1 - success_rate) / 2`` (if slippery); reward by landing tile."""
    tiles = np.array(lake.desc)
    start, frozen, hole, goal = range(4)  # gymnax's tile codes
    letters = np.array(list("SFHG"))[tiles]
    moves = _grid_moves(letters)
    actions = np.arange(4)
    directions = np.stack([actions, (actions - 1) % 4, (actions + 1) % 4], -1)  # [A, 3]
    success = lake.success_rate if lake.is_slippery else 1.0
    probs = np.broadcast_to(np.array([success, (1 - success) / 2, (1 - success) / 2],
                                     np.float32), (tiles.size, 4, 3))
    outcomes = moves[:, directions]  # [S, A, 3]
    schedule = np.asarray(lake.reward_schedule, np.float32)  # goal, hole, frozen
    flat = tiles.reshape(-1)
    rewards = np.where(flat == goal, schedule[0], np.where(flat == hole, schedule[1],
                                                           schedule[2]))
    terminal = np.isin(flat, (hole, goal))
    P, R = _table(outcomes, probs, rewards, terminal, tiles.size, np)
    return TabularMDP(jnp.asarray(P), jnp.asarray(R), gamma,
                      jnp.asarray(flat == start, jnp.float32), jnp.arange(tiles.size),
                      jnp.asarray(terminal))


class GridworldParams(struct.PyTreeNode):
    """``Gridworld``'s params: slipperiness, rewards by the cell entered, the time limit."""

    slip: float = 0.2
    """probability that the move goes sideways (each perpendicular direction half of it)"""
    goal_reward: float = 1.0
    """reward on entering the goal"""
    hole_reward: float = 0.0
    """reward on entering a hole"""
    step_reward: float = 0.0
    """reward on entering any other cell"""
    max_steps_in_episode: int = struct.field(pytree_node=False, default=100)


class GridworldState(struct.PyTreeNode):
    """``Gridworld``'s state: the agent's cell."""

    position: jax.Array
    """the cell, ``row * columns + column``"""


class Gridworld(TimeLimitedEnv):
    """A slippery FrozenLake-style gridworld written for exact dynamic programming.

    ``grid`` is a name of ``GRIDWORLD_MAPS`` or the map's rows (``("SFF", "FHG")``): one ``S``
    (start), at least one ``G`` (goal); ``H`` holes and ``G`` end the episode (``terminated``)
    and the time limit truncates it. Actions 0–3 move left, down, right, up; with probability
    ``1 - slip`` the move goes as intended, else to one of the two perpendicular directions
    (``slip / 2`` each); walls keep the agent in place. The reward depends on the cell entered
    (``GridworldParams``). Observation: the one-hot cell ``[rows · columns]``.
    ``tabular_mdp(params)`` is the exact table of these rules: both read ``_outcomes``.
    """

    def __init__(self, grid: str | tuple[str, ...] = "4x4"):
        rows = GRIDWORLD_MAPS.get(grid, grid) if isinstance(grid, str) else tuple(grid)
        if isinstance(rows, str) or not rows or any(len(r) != len(rows[0]) for r in rows):
            raise ValueError(f"grid must be one of {', '.join(GRIDWORLD_MAPS)} or a tuple of "
                             f"equally long strings, got {grid!r}")
        letters = np.array([list(r) for r in rows])
        if not np.isin(letters, list("SFHG")).all() or (letters == "S").sum() != 1 or not (
                letters == "G").any():
            raise ValueError(f"grid rows use S, F, H, G with one S and at least one G, "
                             f"got {rows!r}")
        self.grid = tuple(rows)
        self.tiles = letters.reshape(-1)
        self.num_states = letters.size
        self.moves = _grid_moves(letters)
        self.terminal = np.isin(self.tiles, list("HG"))
        self.start = int(np.flatnonzero(self.tiles == "S")[0])

    def __repr__(self) -> str:
        return f"Gridworld({self.grid!r})"

    def _outcomes(self, params: GridworldParams,
                  xp: Any = jnp) -> tuple[jax.Array, jax.Array, jax.Array]:
        """``(next cells [S, A, 3], probabilities [S, A, 3], reward of entering [S])``: the
        intended direction, then the two perpendicular ones (``xp``: as in ``_table``)."""
        actions = np.arange(4)
        directions = np.stack([actions, (actions + 1) % 4, (actions - 1) % 4], -1)
        slip = xp.asarray(params.slip, xp.float32)
        probs = xp.broadcast_to(xp.stack([1 - slip, slip / 2, slip / 2]),
                                (self.num_states, 4, 3))
        rewards = xp.where(self.tiles == "G", params.goal_reward,
                           xp.where(self.tiles == "H", params.hole_reward,
                                    params.step_reward)).astype(xp.float32)
        return xp.asarray(self.moves[:, directions]), probs, rewards

    def tabular_mdp(self, params: GridworldParams,
                    gamma: float | jax.Array = 0.99) -> TabularMDP:
        """The exact table of ``step_env`` (module docstring); computed in numpy unless a
        param is traced."""
        traced = any(isinstance(leaf, jax.core.Tracer) for leaf in jax.tree.leaves(params))
        xp = jnp if traced else np
        P, R = _table(*self._outcomes(params, xp), self.terminal, self.num_states, xp)
        return TabularMDP(jnp.asarray(P), jnp.asarray(R), gamma,
                          jnp.asarray(np.arange(self.num_states) == self.start, jnp.float32),
                          jnp.asarray(np.eye(self.num_states, dtype=np.float32)),
                          jnp.asarray(self.terminal))

    def _obs(self, state: GridworldState) -> jax.Array:
        return jax.nn.one_hot(state.position, self.num_states)

    def reset_env(self, key: jax.Array, params: GridworldParams):
        state = GridworldState(jnp.asarray(self.start, jnp.int32))
        return self._obs(state), state

    def step_env(self, key: jax.Array, state: GridworldState, action: jax.Array,
                 params: GridworldParams):
        outcomes, probs, rewards = self._outcomes(params)
        which = jax.random.choice(key, 3, p=probs[state.position, action])
        position = outcomes[state.position, action, which].astype(jnp.int32)
        was_terminal = jnp.asarray(self.terminal)[state.position]
        reward = jnp.where(was_terminal, 0.0, rewards[position])
        terminated = jnp.asarray(self.terminal)[position]
        next_state = GridworldState(position)
        return self._obs(next_state), next_state, reward, terminated, {}

    def observation_space(self, params: Any) -> Box:
        return Box(0.0, 1.0, (self.num_states,), jnp.float32)

    def action_space(self, params: Any) -> Discrete:
        return Discrete(4)


def _gridworld_factory(grid: str | tuple[str, ...] = "4x4",
                       **kwargs: Any) -> tuple[Gridworld, GridworldParams]:
    """``grid`` (a name of ``GRIDWORLD_MAPS`` or the rows) and ``GridworldParams`` fields."""
    return Gridworld(grid), GridworldParams(**kwargs)


register("Gridworld-v0", _gridworld_factory, provides=("tabular",))
