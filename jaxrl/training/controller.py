"""The family loop of the controllers that do not learn (LQR, iLQR): act, report returns.

Course notes §10 (Optimal Control and Planning). A controller computes its actions from the
model (a Riccati solution, a trajectory optimisation) instead of learning them: ``init``
computes whatever the controller precomputes (its ``params``: LQR's gains; nothing for iLQR),
and one ``update`` runs the controller in ``num_envs`` envs for ``num_steps`` steps and reports
``episode_return`` (and ``eval_return`` over ``eval_episodes`` fresh episodes, when positive).
The controller acts from the env state (``Agent.acts_on_env_state``), and may carry a plan
between steps (``Agent.initial_carry``), so ``jaxrl eval``, ``load_policy`` and dataset
collection run it like any policy.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
from flax import struct

from jaxrl.backend import ONE_OFF_UNROLL
from jaxrl.envs import EpisodeStatistics
from jaxrl.evaluation import evaluate
from jaxrl.rollout import episode_return_metric, reset_envs, rollout_with_carry
from jaxrl.training.agent import Agent, as_typed_key
from jaxrl.training.config import BaseConfig, static

__all__ = ["ControllerConfig", "ControllerState", "make_controller_agent"]


class ControllerConfig(BaseConfig):
    """The run of a controller that does not learn."""

    num_envs: int = static(4, ">= 1")
    """envs acting in parallel"""
    num_steps: int = static(200, ">= 1")
    """env steps per env in one update"""
    total_timesteps: int = static(1_600, ">= 1")
    """env steps in all"""
    eval_episodes: int = static(0, ">= 0")
    """fresh episodes evaluated after each update (0: none)"""

    def validate(self) -> None:
        """One update must fit in ``total_timesteps``."""
        if self.total_timesteps < self.num_envs * self.num_steps:
            raise ValueError(
                f"total_timesteps = {self.total_timesteps} is smaller than one update "
                f"(num_envs * num_steps = {self.num_envs * self.num_steps}); raise "
                f"total_timesteps")


class ControllerState(struct.PyTreeNode):
    """The train state: the precomputed ``params``, the envs, the policy's carry, the key and
    the last finished episodes' mean return."""

    params: Any
    env_state: Any
    obs: jax.Array
    carry: Any
    key: jax.Array
    last_episode_return: jax.Array


ControlFn = Callable[[Any, jax.Array, jax.Array, Any, Any], tuple[jax.Array, Any]]
"""``control(params, key, obs [B, ...], env_state [B, ...], carry) -> (actions [B, ...],
carry)``, with ``env_state`` the state of the env the agent was made with."""


def make_controller_agent(config: ControllerConfig, env: Any, env_params: Any,
                          init_params: Callable[[], Any], control: ControlFn,
                          initial_carry: Callable[[int], Any] | None = None) -> Agent:
    """The ``Agent`` of a controller: ``init_params()`` its precomputed data (traced inside
    ``init``), ``control`` its batched policy, ``initial_carry(batch)`` its carry at the start
    of an episode (``None``: it carries nothing)."""
    stats_env = EpisodeStatistics(env)
    eval_steps = int(getattr(env_params, "max_steps_in_episode", 1_000))
    fresh = initial_carry or (lambda batch: ())

    def params_of(state):  # a controller acts without a train state too (computing its params)
        return init_params() if state is None else state.params

    if initial_carry is None:
        def act(state, obs, key, deterministic=False, *, env_state):
            return control(params_of(state), key, obs, env_state, ())[0]
    else:
        def act(state, obs, key, deterministic=False, carry=None, *, env_state):
            return control(params_of(state), key, obs, env_state, carry)

    def init(key):
        key, reset_key = jax.random.split(as_typed_key(key))
        obs, env_state = reset_envs(reset_key, stats_env, env_params, config.num_envs)
        return ControllerState(init_params(), env_state, obs, fresh(config.num_envs), key,
                               jnp.full((), jnp.nan))

    def update(state):
        key, rollout_key, eval_key = jax.random.split(state.key, 3)

        def rollout_policy(key, obs, env_state, carry):
            actions, carry = control(state.params, key, obs, env_state.env_state, carry)
            return actions, {}, carry

        env_state, obs, carry, traj = rollout_with_carry(
            rollout_key, stats_env, env_params, state.env_state, state.obs, state.carry,
            rollout_policy, config.num_steps, fresh(config.num_envs), unroll=ONE_OFF_UNROLL)
        episode_return = episode_return_metric(traj.info, state.last_episode_return)
        metrics = {"episode_return": episode_return}
        if config.eval_episodes > 0:
            def policy(key, obs, env_state, carry):
                return control(state.params, key, obs, env_state, carry)

            metrics["eval_return"] = evaluate(eval_key, env, env_params, policy,
                                              config.eval_episodes, eval_steps, ONE_OFF_UNROLL,
                                              initial_carry=fresh)
        return state.replace(env_state=env_state, obs=obs, carry=carry, key=key,
                             last_episode_return=episode_return), metrics

    steps = config.num_envs * config.num_steps
    return Agent(init=init, update=update, act=act, num_updates=config.total_timesteps // steps,
                 steps_per_update=steps, initial_carry=None if initial_carry is None else (
                     lambda state, batch: initial_carry(batch)), acts_on_env_state=True)
