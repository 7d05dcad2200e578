"""What the offline Q-learning agents (CQL, IQL, AWAC, TD3+BC) share beyond ``offline``.

Config fields, the dataset prepared once on the device (observations standardised with the
dataset's statistics, continuous actions mapped affinely from the env's bounds to ``[-1, 1]``,
where tanh actors live), and one optimiser step. Policies map their ``[-1, 1]`` actions back to
the env's bounds, so ``act`` returns env actions like every agent.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import optax
from flax import struct

from jaxrl.datasets import Dataset, Transitions
from jaxrl.envs.spaces import Box, Discrete, Space
from jaxrl.training.offline import ObsNormalizer, device_dataset, sample

__all__ = ["CriticLearner", "OfflineConfig", "Prepared", "apply_gradients", "prepare"]


class CriticLearner(struct.PyTreeNode):
    """Networks (a dict by name), a Polyak-averaged target critic and the optimiser states:
    the learner of IQL and AWAC."""

    params: Any
    target_critic: Any
    opt_state: Any


class OfflineConfig(struct.PyTreeNode):
    """Fields shared by CQL, IQL, AWAC and TD3+BC (CORL's names). Static fields decide shapes."""

    total_steps: int = struct.field(pytree_node=False, default=20_000)
    """gradient steps"""
    eval_every: int = struct.field(pytree_node=False, default=1_000)
    """gradient steps between evaluations (one metrics row each)"""
    batch_size: int = struct.field(pytree_node=False, default=256)
    """transitions per gradient step"""
    eval_envs: int = struct.field(pytree_node=False, default=8)
    """evaluation episodes (one per env)"""
    hidden_sizes: tuple[int, ...] = struct.field(pytree_node=False, default=(256, 256))
    """hidden layer widths of every network"""
    activation: str = struct.field(pytree_node=False, default="relu")
    """tanh, relu, swish, gelu or elu"""
    normalize_obs: bool = struct.field(pytree_node=False, default=True)
    """standardise observations with the dataset's mean and std"""
    gamma: float = 0.99
    """discount factor"""
    tau: float = 0.005
    """target-network Polyak rate θ' ← τθ + (1-τ)θ'"""


class Prepared(NamedTuple):
    """The dataset on device (normalised observations; continuous actions in ``[-1, 1]``), the
    observation normaliser, the action space the networks see and ``to_env`` for their actions."""

    data: Transitions
    normalize: ObsNormalizer
    action_space: Space
    to_env: Any

    def sample(self, key: jax.Array, batch_size: int) -> Transitions:
        """``batch_size`` transitions uniformly with replacement (``offline.sample``)."""
        return sample(key, self.data, batch_size)


def prepare(config: OfflineConfig, env: Any, env_params: Any, dataset: Dataset | None, algo: str,
            discrete_ok: bool = False) -> Prepared:
    """Check the action space (``TypeError`` naming what fits) and prepare the dataset once.

    Continuous actions: ``u = clip(2 (a - low) / (high - low) - 1, -1, 1)`` and back
    ``a = low + (u + 1)(high - low) / 2``.
    """
    space = env.action_space(env_params)
    if isinstance(space, Discrete) and not discrete_ok:
        raise TypeError(f"{algo} needs a continuous (Box) action space but the env's is {space}; "
                        "use cql or bc for discrete actions")
    if not isinstance(space, Discrete | Box):
        raise TypeError(f"{algo} supports Box (and for cql Discrete) actions, got {space}")
    if isinstance(space, Box) and not (jnp.all(jnp.isfinite(jnp.asarray(space.low)))
                                       and jnp.all(jnp.isfinite(jnp.asarray(space.high)))):
        raise TypeError(f"{algo} needs finite action bounds, got {space}")
    data = device_dataset(dataset, env, env_params, algo)
    normalize = ObsNormalizer.from_data(data, config.normalize_obs)
    data = data.replace(obs=normalize(data.obs), next_obs=normalize(data.next_obs),
                        reward=data.reward.astype(jnp.float32))
    if isinstance(space, Discrete):
        return Prepared(data, normalize, space, lambda action: action)
    low, high = jnp.asarray(space.low, jnp.float32), jnp.asarray(space.high, jnp.float32)

    def to_env(action: jax.Array) -> jax.Array:
        return low + (jnp.clip(action, -1.0, 1.0) + 1.0) * (high - low) / 2

    unit = jnp.clip(2.0 * (data.action - low) / (high - low) - 1.0, -1.0, 1.0)
    return Prepared(data.replace(action=unit), normalize, Box(-1.0, 1.0, space.shape), to_env)


def apply_gradients(optimizer: optax.GradientTransformation, grads: Any, opt_state: Any,
                    params: Any) -> tuple[Any, Any]:
    """One optimiser step: ``(new_params, new_opt_state)``."""
    updates, opt_state = optimizer.update(grads, opt_state, params)
    return optax.apply_updates(params, updates), opt_state
