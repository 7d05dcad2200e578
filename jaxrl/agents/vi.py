"""Value iteration on the env's exact transition table.

Course notes §7 (Value Function Methods), Algorithm 4 (Value Iteration, small discrete case):
``Q(s, a) ← R(s, a) + γ Σ_{s'} P(s' | s, a) V(s')``, ``V(s) ← max_a Q(s, a)``. The Bellman
operator is a γ-contraction in ‖·‖∞, so V converges to V* geometrically and the greedy policy
``argmax_a Q`` becomes optimal after finitely many sweeps. One ``update`` is one sweep; the
family loop (``jaxrl.training.tabular``) reports the Bellman residual, the start state's value
and the greedy policy's return in real episodes. Needs an env providing ``"tabular"``.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp

from jaxrl import dynamic_programming as dp
from jaxrl.envs.tabular import TabularMDP
from jaxrl.training.agent import Agent, Metrics, train_from_agent
from jaxrl.training.config import check_config, static
from jaxrl.training.tabular import TabularConfig, TabularState, make_tabular_agent

__all__ = ["Config", "TrainState", "make_agent", "make_train"]

TrainState = TabularState


class Config(TabularConfig):
    """Value iteration: the number of sweeps."""

    num_sweeps: int = static(100, ">= 1")
    """Bellman sweeps V ← max_a (R + γ P V), one per update"""


def make_agent(config: Config, env: Any, env_params: Any) -> Agent:
    """Value iteration's ``init`` / ``update`` (one sweep) / ``act`` (greedy table lookup)."""
    check_config(config)

    def sweep(mdp: TabularMDP, values: jax.Array,
              policy: jax.Array) -> tuple[jax.Array, jax.Array, Metrics]:
        new = dp.bellman_backup(mdp, values)
        greedy = dp.greedy_policy(dp.q_values(mdp, new))
        return new, greedy, {"value_change": jnp.abs(new - values).max()}

    return make_tabular_agent(config, env, env_params, sweep, config.num_sweeps, "sweeps")


def make_train(config: Config, env: Any, env_params: Any):
    """``train(key) -> (train_state, metrics)``: ``init`` and a scan of ``update``."""
    return train_from_agent(make_agent(config, env, env_params))
