"""DeepSea (Osband et al., 2019, "Behaviour Suite for RL"; 2018, "Randomized prior functions"):
the deep-exploration test of the course notes' exploration chapter (§17).

bsuite's semantics (``bsuite/environments/deep_sea.py``, deterministic version): an
``N × N`` grid, the agent starts top-left and falls one row per step, so every episode lasts
``N`` steps. Each step it moves left or right; which action means "right" is drawn per cell,
``action_mapping ~ Bernoulli(0.5)^{N×N}``, and fixed for the env instance. Moving right costs
``0.01 / N``; moving right in the last column pays ``+1`` (reachable only by going right on
every step, return ``0.99``). The observation is the one-hot position ``[N, N]``, all zeros
after the last step. An episode is *bad* when the agent goes left on the diagonal (leaves the
optimal path); bsuite scores with the running fraction of bad episodes.

The mapping lives in the env params, so each seed gets its own by drawing params with
``sample_task(key, params)`` and vmapping over them (gymnax's ``DeepSea-bsuite`` fixes one mapping
from one key for every seed). The state also counts, across auto-resets, the episodes and the
bad episodes (bsuite's ``total_bad_episodes``); ``episode_counts`` reads them from a train state.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
from flax import struct

from jaxrl.envs.registry import register
from jaxrl.envs.spaces import Box, Discrete

__all__ = ["DeepSea", "DeepSeaParams", "DeepSeaState", "episode_counts"]


class DeepSeaParams(struct.PyTreeNode):
    """The instance: its action mapping (``1`` where action 1 means right) and move cost."""

    action_mapping: jax.Array
    """``[N, N]`` int32: the action that moves right in each cell"""
    move_cost: float = 0.01
    """cost of the whole right-moving path (each right move costs move_cost / N)"""
    max_steps_in_episode: int = struct.field(pytree_node=False, default=10)
    """``N``: every episode terminates after exactly N steps"""


class DeepSeaState(struct.PyTreeNode):
    """The position in the current episode and the running episode counts."""

    row: jax.Array
    column: jax.Array
    bad: jax.Array
    """the agent has left the diagonal this episode"""
    episodes: jax.Array
    """episodes finished since the first reset"""
    bad_episodes: jax.Array
    """bad episodes among them (bsuite's ``total_bad_episodes``)"""


class DeepSea:
    """See the module docstring; ``env_id`` is ``"DeepSea-v0"``."""

    env_id = "DeepSea-v0"

    def __init__(self, size: int = 10):
        if not isinstance(size, int) or size < 1:
            raise ValueError(f"DeepSea-v0 needs a grid size >= 1, got size={size!r}; "
                             f"e.g. --env-arg size=10")
        self.size = size

    def __repr__(self) -> str:
        return f"DeepSea(size={self.size})"

    def _observation(self, row: jax.Array, column: jax.Array) -> jax.Array:
        cells = jnp.arange(self.size)
        return ((cells[:, None] == row) & (cells[None, :] == column)).astype(jnp.float32)

    def reset(self, key: jax.Array, params: DeepSeaParams) -> tuple[jax.Array, DeepSeaState]:
        zero = jnp.zeros((), jnp.int32)
        state = DeepSeaState(row=zero, column=zero, bad=jnp.zeros((), bool), episodes=zero,
                             bad_episodes=zero)
        return self._observation(zero, zero), state

    def step(self, key: jax.Array, state: DeepSeaState, action: jax.Array,
             params: DeepSeaParams):
        size = self.size
        in_grid = (jnp.minimum(state.row, size - 1), state.column)
        right = jnp.asarray(action, jnp.int32) == params.action_mapping[in_grid]
        reward = (jnp.where((state.column == size - 1) & right, 1.0, 0.0)
                  - jnp.where(right, params.move_cost / size, 0.0))
        bad = state.bad | (~right & (state.row == state.column))
        column = jnp.clip(state.column + jnp.where(right, 1, -1), 0, size - 1)
        row = state.row + 1
        terminated = row >= size
        final_obs = self._observation(row, column)
        zero = jnp.zeros((), jnp.int32)
        next_state = DeepSeaState(
            row=jnp.where(terminated, zero, row), column=jnp.where(terminated, zero, column),
            bad=bad & ~terminated, episodes=state.episodes + terminated,
            bad_episodes=state.bad_episodes + (terminated & bad))
        obs = jnp.where(terminated, self._observation(zero, zero), final_obs)
        info = {"final_obs": final_obs, "bad_episode": terminated & bad}
        return (obs, next_state, jnp.asarray(reward, jnp.float32), terminated,
                jnp.zeros((), bool), info)

    def max_truncations(self, params: Any, num_steps: int) -> int:
        """0: episodes end by termination only."""
        return 0

    def sample_task(self, key: jax.Array, params: DeepSeaParams) -> DeepSeaParams:
        """A fresh action mapping ``Bernoulli(0.5)^{N×N}`` (one per seed)."""
        mapping = jax.random.bernoulli(key, 0.5, (self.size, self.size)).astype(jnp.int32)
        return params.replace(action_mapping=mapping)

    def observation_space(self, params: Any) -> Box:
        return Box(0.0, 1.0, (self.size, self.size), jnp.float32)

    def action_space(self, params: Any) -> Discrete:
        return Discrete(2)


def episode_counts(train_state: Any) -> tuple[jax.Array, jax.Array]:
    """``(episodes, bad episodes)`` summed over every ``DeepSeaState`` in ``train_state`` (the
    env batch of a seed, inside any wrappers)."""
    states = [leaf for leaf in jax.tree.leaves(
        train_state, is_leaf=lambda x: isinstance(x, DeepSeaState))
        if isinstance(leaf, DeepSeaState)]
    if not states:
        raise ValueError("no DeepSea state in this train state")
    episodes = sum(s.episodes.sum() for s in states)
    return episodes, sum(s.bad_episodes.sum() for s in states)


def _deep_sea_factory(size: int = 10, mapping_seed: int = 0,
                      **kwargs: Any) -> tuple[DeepSea, DeepSeaParams]:
    env = DeepSea(size)
    if "max_steps_in_episode" in kwargs:
        raise ValueError("DeepSea-v0's episodes last exactly size steps; set size instead of "
                         "max_steps_in_episode")
    params = DeepSeaParams(action_mapping=jnp.zeros((size, size), jnp.int32),
                           max_steps_in_episode=size, **kwargs)
    return env, env.sample_task(jax.random.key(mapping_seed), params)


register("DeepSea-v0", _deep_sea_factory)
