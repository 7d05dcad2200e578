"""Extension points of the online family loops that new families plug into.

- ``RewardTransform``: rewrites the rewards of collected transitions before any target is
  computed (intrinsic bonuses, a learned reward, a KL penalty to a reference policy). Its state
  (counts, a predictor network, running statistics) lives in the train state, so it is
  checkpointed and resumed with the run. Both the on-policy loop (``training.on_policy``) and
  the replay loop (``training.off_policy``) apply it to every rollout they collect; the replay
  buffer stores the transformed rewards.

The replay loop's own extension points (an extra phase per iteration with a second buffer, a
target override) are ``off_policy.ReplayExtensions``; a policy with memory and an agent that acts
from the env state are part of the agent API (``training.agent``).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

import jax

from jaxrl.envs.spaces import Space
from jaxrl.rollout import Transition

__all__ = ["RewardTransform", "apply_reward_transform", "init_reward_transform"]


class RewardTransform(NamedTuple):
    """``init(key, observation_space, action_space) -> state`` and
    ``apply(state, transitions [T, N], key) -> (rewards [T, N], state, metrics)``.

    ``transitions`` is the rollout's ``Transition`` (``obs``, ``action``, ``reward``,
    ``terminated``, ``truncated``, ``next_obs`` = the true final observation at episode ends).
    Metrics are scalars; the loops report them beside their own.
    """

    init: Callable[[jax.Array, Space, Space], Any]
    apply: Callable[[Any, Transition, jax.Array], tuple[jax.Array, Any, dict[str, jax.Array]]]


def init_reward_transform(transform: RewardTransform | None, key: jax.Array,
                          observation_space: Space, action_space: Space) -> Any:
    """The transform's initial state; ``None`` (no leaves, nothing checkpointed) without one."""
    if transform is None:
        return None
    return transform.init(key, observation_space, action_space)


def apply_reward_transform(transform: RewardTransform | None, state: Any, traj: Transition,
                           key: jax.Array) -> tuple[Transition, Any, dict[str, jax.Array]]:
    """``traj`` with its rewards replaced, the new transform state and the transform's metrics;
    ``traj`` unchanged (and no key used) without a transform."""
    if transform is None:
        return traj, state, {}
    rewards, state, metrics = transform.apply(state, traj, key)
    return traj.replace(reward=rewards), state, metrics
