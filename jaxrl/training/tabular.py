"""The dynamic-programming family loop: plan on the exact table, act by table lookup (VI, PI).

An agent of this family learns nothing from samples: it builds the env's exact ``TabularMDP``
once (``jaxrl.envs.tabular.tabular_mdp``; the env must provide ``"tabular"``) and each
``update`` is one iteration of its solver on ``(values [S], policy [S])``. The metrics of every
update: the solver's own, ``bellman_residual`` ‖B V − V‖∞ of the new values (0 at V*),
``start_value`` (``Σ_s μ_0(s) V(s)``, the discounted return the values promise) and, with
``eval_episodes > 0``, ``eval_return``: the undiscounted return of the greedy policy over that
many real episodes in the env (``jaxrl.evaluation.evaluate``). The policy is the table lookup
``π(state_index(obs))``, so ``jaxrl eval``, ``load_policy``, checkpoints and dataset collection
treat it like any agent.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
from flax import struct

from jaxrl import dynamic_programming as dp
from jaxrl.backend import ONE_OFF_UNROLL
from jaxrl.envs.tabular import TabularMDP, state_index, tabular_mdp
from jaxrl.evaluation import evaluate
from jaxrl.training.agent import Agent, Metrics, as_typed_key
from jaxrl.training.config import BaseConfig, hyper, static

__all__ = ["Iteration", "TabularConfig", "TabularState", "make_tabular_agent"]


class TabularConfig(BaseConfig):
    """Fields every dynamic-programming agent shares."""

    gamma: float = hyper(0.99, "[0, 1]")
    """discount factor (below 1: exact policy evaluation solves I − γ P_π)"""
    eval_episodes: int = static(16, ">= 0")
    """real episodes the greedy policy is evaluated on after each update (0: none)"""


class TabularState(struct.PyTreeNode):
    """Values and greedy policy of the table, the key (evaluation), updates done."""

    values: jax.Array
    policy: jax.Array
    key: jax.Array
    iteration: jax.Array


Iteration = Callable[[TabularMDP, jax.Array, jax.Array], tuple[jax.Array, jax.Array, Metrics]]
"""``iteration(mdp, values, policy) -> (values, policy, metrics)``: one update of a solver."""


def make_tabular_agent(config: TabularConfig, env: Any, env_params: Any, iteration: Iteration,
                       num_updates: int, step_unit: str) -> Agent:
    """The ``Agent`` of a dynamic-programming solver (module docstring); ``TypeError`` for an
    env without an exact table."""
    mdp = tabular_mdp(env, env_params, config.gamma)
    window = int(getattr(env_params, "max_steps_in_episode", 1000)) + 1

    def act(state: TabularState, obs: jax.Array, key: jax.Array,
            deterministic: bool = False) -> jax.Array:
        return state.policy[state_index(mdp, obs)]

    def init(key: jax.Array) -> TabularState:
        zeros = jnp.zeros(mdp.num_states, jnp.float32)
        return TabularState(zeros, jnp.zeros(mdp.num_states, jnp.int32), as_typed_key(key),
                            jnp.zeros((), jnp.int32))

    def update(state: TabularState) -> tuple[TabularState, Metrics]:
        key, eval_key = jax.random.split(state.key)
        values, policy, metrics = iteration(mdp, state.values, state.policy)
        new = TabularState(values, policy, key, state.iteration + 1)
        metrics = {**metrics,
                   "bellman_residual": jnp.abs(dp.bellman_backup(mdp, values) - values).max(),
                   "start_value": mdp.initial @ values}
        if config.eval_episodes > 0:
            metrics["eval_return"] = evaluate(
                eval_key, env, env_params, lambda k, obs: act(new, obs, k, True),
                config.eval_episodes, window, ONE_OFF_UNROLL)
        return new, metrics

    return Agent(init=init, update=update, act=act, num_updates=num_updates,
                 steps_per_update=1, step_unit=step_unit)
