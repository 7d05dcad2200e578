"""iLQR as a receding-horizon controller on the differentiable simulator.

Course notes §10 (Optimal Control and Planning, iterative LQR) and §11 (MPC): at each step,
optimise the action sequence of the next ``horizon`` steps from the current state by iLQR
(``jaxrl.control.ilqr``: Taylor expansions of the env's own step by ``jax.jacfwd`` /
``jax.hessian``, a Levenberg–Marquardt-regularised backward pass, a backtracking line search,
control limits by projection into the action box), execute its first action and plan again
from the next state. The plan is kept, shifted by one, as the next optimisation's start (the
warm start), so a few iterations per step suffice.

The model is the env itself (``jaxrl.envs.dynamics.dynamics_from_env`` on a copy of the state
the agent is shown, ``Agent.acts_on_env_state``), which must be differentiable (an env
providing ``"differentiable"``). The plan is the policy's carry, so ``jaxrl eval``,
``load_policy`` and dataset collection run it like any policy with memory. Nothing is learned:
one update runs the controller (``jaxrl.training.controller``) and reports ``episode_return``.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp

from jaxrl.control import make_ilqr_planner
from jaxrl.envs.dynamics import dynamics_from_env, simulator_state
from jaxrl.planning import initial_plan
from jaxrl.training.agent import Agent, train_from_agent
from jaxrl.training.config import check_config, hyper, static
from jaxrl.training.controller import ControllerConfig, make_controller_agent

__all__ = ["Config", "make_agent", "make_train"]


class Config(ControllerConfig):
    """Receding-horizon iLQR and its run (the controller family's fields)."""

    horizon: int = static(30, ">= 1")
    """steps each plan looks ahead"""
    iterations: int = static(2, ">= 1")
    """iLQR iterations per step (the warm start carries the rest)"""
    regularization: float = hyper(1.0, ">= 0")
    """initial Levenberg–Marquardt μ added to Q_uu at every step's optimisation"""
    regularization_factor: float = hyper(4.0, "> 0")
    """μ is multiplied by this after a failed iteration and divided after a success (> 1)"""
    line_search_steps: int = static(8, ">= 1")
    """step sizes tried, α = 1, 1/2, …, 2^(1-steps)"""


def make_agent(config: Config, env: Any, env_params: Any) -> Agent:
    """The iLQR controller on ``env`` (continuous actions, differentiable ``step_env``)."""
    check_config(config)
    dynamics = dynamics_from_env(env, env_params)
    space = env.action_space(env_params)
    planner = make_ilqr_planner(space, iterations=config.iterations,
                                regularization=config.regularization,
                                regularization_factor=config.regularization_factor,
                                line_search_steps=config.line_search_steps)

    def initial_carry(batch):
        plan = initial_plan(space, config.horizon)
        return jnp.broadcast_to(plan, (batch, *plan.shape))

    def act(params, key, obs, env_state, plans):
        states = simulator_state(env, env_state)
        keys = jax.random.split(key, obs.shape[0])
        return jax.vmap(lambda k, s, p: planner(k, dynamics, s, p))(keys, states, plans)

    return make_controller_agent(config, env, env_params, lambda: (), act, initial_carry)


def make_train(config: Config, env: Any, env_params: Any):
    """``train(key) -> (train_state, metrics)``: ``init`` and a scan of ``update``."""
    return train_from_agent(make_agent(config, env, env_params))
