"""``PointGoal-v0``: a 2-D point that must reach a goal, the goal part of the observation.

A small goal-reaching task for goal-conditioned imitation (hindsight relabelling). The point
starts uniformly in ``[-1, 1]²`` and the goal is drawn uniformly in the same square; the four
actions move it by ``step_size`` along ``+x, -x, +y, -y`` (clipped to the square). Reaching
``‖position - goal‖ < goal_radius`` gives reward 1 and terminates; otherwise the reward is 0 and
the episode is truncated after ``max_steps_in_episode`` steps. Observation
``[x, y, goal_x, goal_y]``: ``achieved_goal(obs)`` reads the position and ``with_goal(obs, goal)``
replaces the goal, the two operations hindsight relabelling needs.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from flax import struct

from jaxrl.envs.core import TimeLimitedEnv
from jaxrl.envs.registry import register
from jaxrl.envs.spaces import Box, Discrete

__all__ = ["PointGoal", "PointGoalParams", "PointGoalState", "point_goal_expert"]

# numpy, not jax: a jax array at import time would start the XLA backend before a multi-host
# run can call jax.distributed.initialize.
MOVES = np.array([[1.0, 0.0], [-1.0, 0.0], [0.0, 1.0], [0.0, -1.0]], np.float32)


class PointGoalParams(struct.PyTreeNode):
    """Step length per action, the radius that counts as reaching the goal, the time limit."""

    step_size: float = 0.1
    goal_radius: float = 0.1
    max_steps_in_episode: int = struct.field(pytree_node=False, default=50)


class PointGoalState(struct.PyTreeNode):
    """The point's position and the episode's goal."""

    position: jax.Array
    goal: jax.Array


class PointGoal(TimeLimitedEnv):
    """See the module docstring; ``env_id`` is ``"PointGoal-v0"``."""

    env_id = "PointGoal-v0"
    goal_dim = 2

    def __repr__(self) -> str:
        return "PointGoal()"

    def reset_env(self, key: jax.Array,
                  params: PointGoalParams) -> tuple[jax.Array, PointGoalState]:
        position_key, goal_key = jax.random.split(key)
        state = PointGoalState(position=jax.random.uniform(position_key, (2,), minval=-1.0),
                               goal=jax.random.uniform(goal_key, (2,), minval=-1.0))
        return self._obs(state), state

    def step_env(self, key: jax.Array, state: PointGoalState, action: jax.Array,
                 params: PointGoalParams):
        move = jnp.asarray(MOVES)[action]
        position = jnp.clip(state.position + params.step_size * move, -1.0, 1.0)
        state = state.replace(position=position)
        reached = jnp.linalg.norm(position - state.goal) < params.goal_radius
        return self._obs(state), state, reached.astype(jnp.float32), reached, {}

    def _obs(self, state: PointGoalState) -> jax.Array:
        return jnp.concatenate([state.position, state.goal])

    def observation_space(self, params: Any) -> Box:
        return Box(-1.0, 1.0, (4,), jnp.float32)

    def action_space(self, params: Any) -> Discrete:
        return Discrete(4)

    def achieved_goal(self, obs: jax.Array) -> jax.Array:
        """The position part ``obs[..., :2]``: the goal this observation achieves."""
        return obs[..., :2]

    def with_goal(self, obs: jax.Array, goal: jax.Array) -> jax.Array:
        """``obs`` with its goal part replaced by ``goal`` (trailing axes broadcast)."""
        return jnp.concatenate([obs[..., :2], goal], axis=-1)


def point_goal_expert(obs: jax.Array) -> jax.Array:
    """Scripted expert: move along the axis with the larger remaining gap, toward the goal."""
    gap = obs[..., 2:] - obs[..., :2]
    along_x = jnp.abs(gap[..., 0]) >= jnp.abs(gap[..., 1])
    return jnp.where(along_x, jnp.where(gap[..., 0] > 0, 0, 1),
                     jnp.where(gap[..., 1] > 0, 2, 3)).astype(jnp.int32)


def _factory(**kwargs: Any) -> tuple[PointGoal, PointGoalParams]:
    return PointGoal(), PointGoalParams(**kwargs)


register("PointGoal-v0", _factory)
