"""What every offline agent shares: the on-device dataset, minibatch sampling, evaluation.

An offline agent (BC, CQL, IQL, AWAC, TD3+BC) never steps the environment to learn; it samples
minibatches from a fixed dataset. ``make_offline_agent`` turns three pure pieces into the
standard ``Agent``:

- ``init_learner(key) -> learner``: networks, optimiser states, target networks (any pytree);
- ``train_step(learner, batch, key) -> (learner, metrics)``: one gradient step on a minibatch;
- ``policy(learner, obs, key, deterministic) -> action``: the policy that is evaluated.

One ``update`` is ``eval_every`` gradient steps on minibatches from ``sample_batch`` (default:
``batch_size`` transitions uniformly with replacement) followed by an evaluation rollout with
``jaxrl.evaluation.evaluate`` (``eval_envs`` fresh envs, the deterministic policy, one episode
each). Metrics: the train metrics averaged over the update, ``episode_return`` (the evaluation
return, so ``metrics.csv`` holds evaluation returns) and ``step`` (gradient steps so far). The
dataset is closed over as a constant: it is shared by every seed of a vmapped run, not copied
into each train state. Configs provide ``total_steps``, ``eval_every``, ``batch_size``,
``eval_envs`` (static) and ``normalize_obs``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
from flax import struct

from jaxrl.backend import ONE_OFF_UNROLL
from jaxrl.datasets import Dataset, Transitions
from jaxrl.envs import ClipAction
from jaxrl.envs.spaces import Box
from jaxrl.evaluation import evaluate
from jaxrl.training.agent import Agent, Metrics, as_typed_key

__all__ = ["OFFLINE_STATIC_FIELDS", "OfflineState", "ObsNormalizer", "device_dataset",
           "eval_window", "make_offline_agent", "sample", "validate_offline"]

OFFLINE_STATIC_FIELDS = ("total_steps", "eval_every", "batch_size", "eval_envs")


class OfflineState(struct.PyTreeNode):
    """The whole state of an offline run: the learner's pytree, the key, gradient steps done."""

    learner: Any
    key: jax.Array
    step: jax.Array


class ObsNormalizer(struct.PyTreeNode):
    """``(obs - mean) / std`` with the dataset's statistics (identity when disabled)."""

    mean: jax.Array
    std: jax.Array

    @classmethod
    def from_data(cls, data: Transitions, enabled: bool) -> ObsNormalizer:
        """Per-feature mean and std (floored at 1e-3) of the dataset's observations."""
        if not enabled:
            shape = data.obs.shape[1:]
            return cls(jnp.zeros(shape, jnp.float32), jnp.ones(shape, jnp.float32))
        return cls(data.obs.mean(0), jnp.maximum(data.obs.std(0), 1e-3))

    def __call__(self, obs: jax.Array) -> jax.Array:
        return (obs - self.mean) / self.std


def validate_offline(config: Any) -> None:
    """Static checks: ``OFFLINE_STATIC_FIELDS`` >= 1 and ``eval_every <= total_steps``."""
    for name in OFFLINE_STATIC_FIELDS:
        if getattr(config, name) < 1:
            raise ValueError(f"{name} must be >= 1, got {getattr(config, name)}")
    if config.eval_every > config.total_steps:
        raise ValueError(f"eval_every = {config.eval_every} exceeds total_steps = "
                         f"{config.total_steps}; lower eval_every or raise total_steps")


def device_dataset(dataset: Dataset | None, env: Any, env_params: Any,
                   algo: str) -> Transitions:
    """Check ``dataset`` against the env's spaces and move it to the device."""
    from jaxrl.datasets import validate

    if dataset is None:
        raise ValueError(f"{algo} learns from a dataset: pass --dataset FILE.npz (make one with "
                         "`jaxrl dataset --env ENV --policy expert --steps N --out FILE.npz`)")
    validate(dataset, env, env_params)
    return dataset.transitions()


def sample(key: jax.Array, data: Transitions, batch_size: int) -> Transitions:
    """``batch_size`` transitions drawn uniformly with replacement."""
    indices = jax.random.randint(key, (batch_size,), 0, data.size)
    return jax.tree.map(lambda x: x[indices], data)


def eval_window(env_params: Any) -> int:
    """Evaluation rollout length: one full episode (``max_steps_in_episode + 1``, else 1001)."""
    return int(getattr(env_params, "max_steps_in_episode", 1000)) + 1


Policy = Callable[[Any, jax.Array, jax.Array, bool], jax.Array]


def make_offline_agent(config: Any, env: Any, env_params: Any,
                       init_learner: Callable[[jax.Array], Any],
                       train_step: Callable[[Any, Any, jax.Array], tuple[Any, Metrics]],
                       policy: Policy, sample_batch: Callable[[jax.Array], Any]) -> Agent:
    """The ``Agent`` of an offline method (see the module docstring).

    ``num_updates = total_steps // eval_every`` (rounded down), ``steps_per_update = eval_every``.
    """
    validate_offline(config)
    eval_env = ClipAction(env) if isinstance(env.action_space(env_params), Box) else env
    window = eval_window(env_params)

    def init(key: jax.Array) -> OfflineState:
        key, init_key = jax.random.split(as_typed_key(key))
        return OfflineState(learner=init_learner(init_key), key=key,
                            step=jnp.zeros((), jnp.int32))

    def update(state: OfflineState) -> tuple[OfflineState, Metrics]:
        key, steps_key, eval_key = jax.random.split(state.key, 3)

        def gradient_step(learner, step_key):
            batch_key, train_key = jax.random.split(step_key)
            return train_step(learner, sample_batch(batch_key), train_key)

        learner, metrics = jax.lax.scan(gradient_step, state.learner,
                                        jax.random.split(steps_key, config.eval_every))
        metrics = jax.tree.map(jnp.mean, metrics)
        metrics["episode_return"] = evaluate(
            eval_key, eval_env, env_params, lambda k, obs: policy(learner, obs, k, True),
            config.eval_envs, window, ONE_OFF_UNROLL)
        step = state.step + config.eval_every
        metrics["step"] = step
        return OfflineState(learner=learner, key=key, step=step), metrics

    def act(state: OfflineState, obs: jax.Array, key: jax.Array,
            deterministic: bool = False) -> jax.Array:
        return policy(state.learner, obs, key, deterministic)

    return Agent(init=init, update=update, act=act,
                 num_updates=config.total_steps // config.eval_every,
                 steps_per_update=config.eval_every)
