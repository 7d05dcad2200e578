"""Behaviour cloning, and goal-conditioned BC with hindsight relabelling.

Course notes, imitation learning chapter: supervised learning of ``π(a|s)`` on expert pairs.

- Discrete actions: cross-entropy ``L = -E_(s,a)~D [log π(a|s)]`` (categorical logits).
- Continuous actions: a deterministic policy ``μ(s) = low + (tanh(f(s)) + 1)(high - low) / 2``
  trained by mean squared error ``L = E_(s,a)~D ‖μ(s) - a‖²`` (not a likelihood: BC's mode
  is what gets evaluated, and MSE needs no variance).

Goal-conditioned BC (``hindsight=True``; GCSL, Ghosh et al. 2019; hindsight relabelling from
HER, Andrychowicz et al. 2017) needs a goal env exposing ``achieved_goal(obs)`` and
``with_goal(obs, goal)`` (``PointGoal-v0``). For a sampled transition ``i`` of an episode ending
at ``e``, draw ``j ~ U{i, …, e}`` and, with probability ``hindsight_fraction``, replace the goal
in ``s_i`` by ``g = achieved_goal(s'_j)``: the action actually taken is a correct action for
reaching a state the episode did reach, so even random data teaches goal reaching.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from flax import struct

from jaxrl.datasets import Dataset, Transitions, episode_bounds
from jaxrl.envs import goal as _goal_env  # noqa: F401  (registers PointGoal-v0)
from jaxrl.envs.spaces import Box, Discrete
from jaxrl.losses.offline import bc_loss
from jaxrl.models import ImitationPolicy, imitation_action
from jaxrl.training.agent import Agent, Metrics, train_from_agent
from jaxrl.training.config import check_config, hyper, static
from jaxrl.training.offline import (
    ObsNormalizer,
    OfflineConfig,
    device_dataset,
    make_offline_agent,
    sample,
)
from jaxrl.training.optim import apply_gradients, flat_adam, grad_norm

__all__ = ["OFFLINE", "Config", "Learner", "hindsight_sampler", "make_agent", "make_train"]

OFFLINE = True
"""The runner passes ``dataset=`` to ``make_agent``."""


class Config(OfflineConfig):
    """BC hyperparameters."""

    total_gradient_steps: int = static(10_000, ">= 1")
    hindsight: bool = static(False)
    """goal-conditioned BC: relabel goals with achieved future states (needs a goal env)"""
    learning_rate: float = hyper(1e-3, "> 0")
    """Adam step size"""
    hindsight_fraction: float = hyper(1.0, "[0, 1]")
    """probability that a sampled transition's goal is relabelled (with hindsight)"""


class Learner(struct.PyTreeNode):
    """The policy's parameters and optimiser state."""

    params: Any
    opt_state: Any


def hindsight_sampler(env: Any, data: Transitions, dataset: Dataset, batch_size: int,
                      fraction: float | jax.Array):
    """``sample(key) -> Transitions`` with goals relabelled by achieved future goals (module
    docstring); episode ends come from the dataset's ``terminated | truncated`` flags."""
    if not (hasattr(env, "achieved_goal") and hasattr(env, "with_goal")):
        raise ValueError(f"hindsight relabelling needs a goal env with achieved_goal/with_goal "
                         f"(e.g. PointGoal-v0), got {env!r}; drop --hindsight")
    starts, ends = episode_bounds(dataset.terminated | dataset.truncated)
    episode_end = jnp.asarray(np.repeat(ends, ends - starts + 1), jnp.int32)

    def sample_batch(key: jax.Array) -> Transitions:
        index_key, future_key, relabel_key = jax.random.split(key, 3)
        index = jax.random.randint(index_key, (batch_size,), 0, data.size)
        future = jax.random.randint(future_key, (batch_size,), index, episode_end[index] + 1)
        relabel = jax.random.uniform(relabel_key, (batch_size,)) < fraction
        obs = data.obs[index]
        relabelled = env.with_goal(obs, env.achieved_goal(data.next_obs[future]))
        batch = jax.tree.map(lambda x: x[index], data)
        return batch.replace(obs=jnp.where(relabel[:, None], relabelled, obs))

    return sample_batch


def make_agent(config: Config, env: Any, env_params: Any, dataset: Dataset | None = None) -> Agent:
    """Build BC's pure ``init`` / ``update`` / ``act`` (``jaxrl.training.offline``)."""
    check_config(config)
    data = device_dataset(dataset, env, env_params, "bc")
    observation_space = env.observation_space(env_params)
    action_space = env.action_space(env_params)
    if not isinstance(action_space, Discrete | Box):
        raise TypeError(f"bc supports Discrete and Box action spaces, got {action_space}")
    discrete = isinstance(action_space, Discrete)
    network = ImitationPolicy(action_space, tuple(config.hidden_sizes), config.activation)
    normalize = ObsNormalizer.from_data(data, config.normalize_obs)
    optimizer = flat_adam(config.learning_rate)
    if config.hindsight:
        sample_batch = hindsight_sampler(env, data, dataset, config.batch_size,
                                         config.hindsight_fraction)
    else:
        def sample_batch(key):
            return sample(key, data, config.batch_size)

    def init_learner(key: jax.Array) -> Learner:
        params = network.init(key, jnp.zeros((1, *observation_space.shape), jnp.float32))
        return Learner(params=params, opt_state=optimizer.init(params))

    def loss_fn(params, batch: Transitions) -> jax.Array:
        return bc_loss(network.apply(params, normalize(batch.obs)), batch.action, discrete)

    def train_step(learner: Learner, batch: Transitions, key: jax.Array) -> tuple[Learner, Metrics]:
        loss, grads = jax.value_and_grad(loss_fn)(learner.params, batch)
        params, opt_state = apply_gradients(optimizer, grads, learner.opt_state, learner.params)
        return Learner(params, opt_state), {"loss": loss, "grad_norm": grad_norm(grads)}

    def policy(learner: Learner, obs: jax.Array, key: jax.Array, deterministic: bool) -> jax.Array:
        return imitation_action(network.apply(learner.params, normalize(obs)), key, discrete,
                                deterministic)

    return make_offline_agent(config, env, env_params, init_learner, train_step, policy,
                              sample_batch)


def make_train(config: Config, env: Any, env_params: Any, dataset: Dataset | None = None):
    """``train(key) -> (OfflineState, metrics)``: the whole BC run as one pure function."""
    return train_from_agent(make_agent(config, env, env_params, dataset))
