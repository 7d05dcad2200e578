"""LQR on ``LinearSystem-v0``: the optimal linear feedback ``u = -K x`` of a known linear system.

Course notes §10 (Optimal Control and Planning, the linear case): for ``x' = A x + B u`` (plus
Gaussian noise, which changes nothing) and reward ``-(xᵀQx + uᵀRu)`` the optimal policy is
linear in the state. Two solvers (``jaxrl.control``):

- ``dare`` (default): the stationary gain of the infinite-horizon problem, the fixed point of
  the Riccati recursion (the discrete algebraic Riccati equation), iterated to ``tolerance``;
- ``riccati``: the time-varying gains ``K_t`` of the finite-horizon problem whose horizon is the
  episode (``max_steps_in_episode``, no terminal cost): the exact optimum of each episode, the
  gain chosen by the episode's step (read from the env state).

The gains are computed once, in ``init``, from the env params ``(A, B, Q, R)``, and kept in the
train state, so a saved policy acts without the env params. Nothing is learned: each update
runs the controller (``jaxrl.training.controller``) and reports ``episode_return``. Other envs
are refused: LQR needs the system's matrices (``ilqr`` linearises a nonlinear one).
"""

from __future__ import annotations

from typing import Any

import jax.numpy as jnp

from jaxrl import control
from jaxrl.envs.dynamics import base_env, time_limit_state
from jaxrl.envs.linear import LinearSystem
from jaxrl.training.agent import Agent, train_from_agent
from jaxrl.training.config import check_config, hyper, static
from jaxrl.training.controller import ControllerConfig, make_controller_agent

__all__ = ["Config", "make_agent", "make_train"]


class Config(ControllerConfig):
    """LQR's solver and its run (the controller family's fields)."""

    solver: str = static("dare", ("dare", "riccati"))
    """dare: the infinite-horizon stationary gain; riccati: the episode's time-varying gains"""
    tolerance: float = hyper(1e-6, "> 0")
    """dare: stop when the Riccati iterate changes by less than this (relative to its size)"""
    max_iterations: int = static(10_000, ">= 1")
    """dare: the most Riccati iterations"""


def make_agent(config: Config, env: Any, env_params: Any) -> Agent:
    """The LQR controller of ``env``; ``ValueError`` unless ``env`` is a ``LinearSystem``."""
    check_config(config)
    if not isinstance(base_env(env), LinearSystem):
        raise ValueError(f"lqr needs a linear system with quadratic cost (its A, B, Q, R): use "
                         f"--env LinearSystem-v0, not {env!r}; for a nonlinear differentiable "
                         f"env use ilqr")
    matrices = (env_params.A, env_params.B, env_params.Q, env_params.R)

    def init_params():
        A, B, Q, R = (jnp.asarray(m, jnp.float32) for m in matrices)
        if config.solver == "dare":
            return control.lqr_infinite_horizon(A, B, Q, R, config.tolerance,
                                                config.max_iterations)[0]
        return control.lqr_finite_horizon(A, B, Q, R, env_params.max_steps_in_episode)[0]

    def act(gains, key, obs, env_state, carry):
        limited = time_limit_state(env, env_state)
        x = limited.env_state.x
        if config.solver == "dare":
            return -x @ gains.T, carry
        step_gains = gains[jnp.minimum(limited.time, gains.shape[0] - 1)]
        return -jnp.einsum("bmn,bn->bm", step_gains, x), carry

    return make_controller_agent(config, env, env_params, init_params, act)


def make_train(config: Config, env: Any, env_params: Any):
    """``train(key) -> (train_state, metrics)``: ``init`` and a scan of ``update``."""
    return train_from_agent(make_agent(config, env, env_params))
