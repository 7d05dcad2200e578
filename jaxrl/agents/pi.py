"""Policy iteration on the env's exact transition table.

Course notes §7 (Value Function Methods, "Q-iteration" and its closing remark) and §9 (policy
iteration): alternate (1) policy evaluation, ``V^π = r_π + γ P_π V^π`` — exactly, by the linear
solve ``V^π = (I − γ P_π)^{-1} r_π``, or approximately, by ``evaluation_sweeps`` sweeps of
``V ← r_π + γ P_π V`` warm-started from the last values — and (2) greedy improvement
``π'(s) = argmax_a Q^π(s, a)``, keeping the current action where it ties. Each improvement is
at least as good, and with exact evaluation a policy that stops changing is optimal (in a
handful of iterations on small MDPs). One ``update`` is one evaluation and improvement (the
train state then holds ``V^{π_k}`` and ``π_{k+1}``; ``policy_changes`` counts the states
where π_k and π_{k+1} differ, 0 once converged); the family loop (``jaxrl.training.tabular``)
adds the Bellman residual of V^{π_k}, the start value and the return of π_{k+1} in real
episodes. Needs an env providing ``"tabular"``.
"""

from __future__ import annotations

from typing import Any

import jax

from jaxrl import dynamic_programming as dp
from jaxrl.envs.tabular import TabularMDP
from jaxrl.training.agent import Agent, Metrics, train_from_agent
from jaxrl.training.config import check_config, static
from jaxrl.training.tabular import TabularConfig, TabularState, make_tabular_agent

__all__ = ["EVALUATIONS", "Config", "TrainState", "make_agent", "make_train"]

EVALUATIONS = ("exact", "iterative")

TrainState = TabularState


class Config(TabularConfig):
    """Policy iteration: iterations and how each evaluates its policy."""

    num_iterations: int = static(10, ">= 1")
    """evaluation + improvement rounds, one per update"""
    evaluation: str = static("exact", EVALUATIONS)
    """exact: linear solve (I − γ P_π) V = r_π; iterative: evaluation_sweeps Bellman sweeps"""
    evaluation_sweeps: int = static(20, ">= 1")
    """iterative evaluation: sweeps V ← r_π + γ P_π V per iteration (warm-started)"""


def make_agent(config: Config, env: Any, env_params: Any) -> Agent:
    """Policy iteration's ``init`` / ``update`` (evaluate, improve) / ``act`` (table lookup)."""
    check_config(config)

    def evaluate(mdp: TabularMDP, values: jax.Array, policy: jax.Array) -> jax.Array:
        if config.evaluation == "exact":
            return dp.policy_evaluation(mdp, policy)
        return dp.iterative_policy_evaluation(mdp, policy, config.evaluation_sweeps, values)[0]

    def iteration(mdp: TabularMDP, values: jax.Array,
                  policy: jax.Array) -> tuple[jax.Array, jax.Array, Metrics]:
        evaluated = evaluate(mdp, values, policy)
        improved = dp.improve_policy(mdp, evaluated, policy)
        return evaluated, improved, {"policy_changes": (improved != policy).sum()}

    return make_tabular_agent(config, env, env_params, iteration, config.num_iterations,
                              "iterations")


def make_train(config: Config, env: Any, env_params: Any):
    """``train(key) -> (train_state, metrics)``: ``init`` and a scan of ``update``."""
    return train_from_agent(make_agent(config, env, env_params))
