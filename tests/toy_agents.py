"""Toy users of the agent API's acting extension points, for tests only.

``shooting``: a random-shooting planner on the true simulator (an agent that acts from the env
state, ``Agent.acts_on_env_state``). Each decision draws ``num_sequences`` random action
sequences of ``horizon`` steps, simulates them from the current env state with the env's own
``step`` and takes the first action of the sequence with the highest return (reward summed
until the first episode end). Nothing is learned: an update runs the planner for ``num_steps``
in ``num_envs`` envs and reports their returns.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
from flax import struct

from jaxrl.envs import EpisodeStatistics
from jaxrl.rollout import episode_return_metric, reset_envs, rollout_with_carry
from jaxrl.training.agent import Agent, as_typed_key, train_from_agent
from jaxrl.training.config import BaseConfig, static


class Config(BaseConfig):
    total_timesteps: int = static(256, ">= 1")
    num_envs: int = static(2, ">= 1")
    num_steps: int = static(64, ">= 1")
    horizon: int = static(12, ">= 1")
    num_sequences: int = static(16, ">= 1")


class TrainState(struct.PyTreeNode):
    env_state: Any
    obs: jax.Array
    key: jax.Array
    last_episode_return: jax.Array


def plan(key: jax.Array, env: Any, env_params: Any, env_state: Any, num_actions: int,
         horizon: int, num_sequences: int) -> jax.Array:
    """The first action of the best of ``num_sequences`` random sequences from one state."""
    sequence_key, step_key = jax.random.split(key)
    actions = jax.random.randint(sequence_key, (num_sequences, horizon), 0, num_actions)

    def simulate(sequence):
        def step(carry, inputs):
            state, alive, total = carry
            action, key = inputs
            _, state, reward, terminated, truncated, _ = env.step(key, state, action, env_params)
            total = total + alive * reward
            return (state, alive * (1.0 - (terminated | truncated)), total), None

        keys = jax.random.split(step_key, horizon)
        (_, _, total), _ = jax.lax.scan(step, (env_state, 1.0, 0.0), (sequence, keys))
        return total

    return actions[jnp.argmax(jax.vmap(simulate)(actions)), 0]


def make_agent(config: Config, env: Any, env_params: Any) -> Agent:
    num_actions = env.action_space(env_params).n
    stats_env = EpisodeStatistics(env)

    def act(state, obs, key, deterministic=False, *, env_state):
        keys = jax.random.split(key, obs.shape[0])
        return jax.vmap(lambda k, s: plan(k, env, env_params, s, num_actions, config.horizon,
                                          config.num_sequences))(keys, env_state)

    def init(key):
        key, reset_key = jax.random.split(as_typed_key(key))
        obs, env_state = reset_envs(reset_key, stats_env, env_params, config.num_envs)
        return TrainState(env_state, obs, key, jnp.full((), jnp.nan))

    def update(state):
        key, rollout_key = jax.random.split(state.key)

        def policy(key, obs, env_state, carry):
            return act(None, obs, key, env_state=env_state.env_state), {}, carry

        env_state, obs, _, traj = rollout_with_carry(
            rollout_key, stats_env, env_params, state.env_state, state.obs, (), policy,
            config.num_steps, ())
        episode_return = episode_return_metric(traj.info, state.last_episode_return)
        return TrainState(env_state, obs, key, episode_return), {"episode_return": episode_return}

    steps = config.num_envs * config.num_steps
    return Agent(init=init, update=update, act=act, num_updates=config.total_timesteps // steps,
                 steps_per_update=steps, acts_on_env_state=True)


def make_train(config: Config, env: Any, env_params: Any):
    return train_from_agent(make_agent(config, env, env_params))
