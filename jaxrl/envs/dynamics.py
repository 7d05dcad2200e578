"""Dynamics functions: the one model signature that planners and model-based agents share.

A dynamics function is one transition of a Markov decision process, without resets or a time
limit::

    next_state, reward, terminated = dynamics(key, state, action)

Planners (``jaxrl.planning``: random shooting, CEM, MPPI; ``jaxrl.control``: iLQR) take it
as an argument instead of hard-wiring a simulator, so the true simulator
(``dynamics_from_env``), a learned ensemble (a model's parameters closed over) and a hand-made
function in a test are interchangeable. Course notes §10 (Optimal Control and Planning): the
planner maximises ``J(a_1, …, a_T) = Σ_t r(s_t, a_t)`` subject to ``s_{t+1} = f(s_t, a_t)``;
``dynamics`` is ``f`` together with ``r``, and ``terminated`` says where the sum stops.

Every jaxrl environment is a stack of small wrappers around a ``TimeLimitedEnv`` whose
``step_env`` is exactly such a transition. ``dynamics_from_env`` steps that ``step_env``, with
the wrappers' action and reward transforms applied (so it takes the actions ``env`` takes);
``simulator_state`` peels the matching layers off an env state (an ``EpisodeStatistics``
state, then the ``TimeLimitState``), so a planner acting in an env copies the state it sees
and searches from it.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp

from jaxrl.envs.core import TimeLimitedEnv, TimeLimitState
from jaxrl.envs.wrappers import ClipAction, EpisodeStatistics, RescaleAction, ScaleReward, Wrapper

__all__ = ["Dynamics", "base_env", "dynamics_from_env", "simulator_state", "time_limit_state"]

Dynamics = Callable[[jax.Array, Any, jax.Array], tuple[Any, jax.Array, jax.Array]]
"""``dynamics(key, state, action) -> (next_state, reward, terminated)`` for one unbatched
state and action: ``reward`` a float scalar, ``terminated`` a bool scalar (a true terminal
state: the return stops there). No auto-reset and no time limit; the key drives stochastic
transitions (and a learned ensemble's choice of member)."""


def base_env(env: Any) -> TimeLimitedEnv:
    """The ``TimeLimitedEnv`` under ``env``'s wrappers (each ``jaxrl.envs.Wrapper`` forwards to
    ``.env``); ``TypeError`` if there is none."""
    inner = env
    while isinstance(inner, Wrapper):
        inner = inner.env
    if not isinstance(inner, TimeLimitedEnv):
        raise TypeError(
            f"{env!r} cannot be stepped from a copied state: planning on the simulator needs a "
            f"jaxrl env built on jaxrl.envs.TimeLimitedEnv (its step_env), as every env of "
            f"jaxrl.envs.make is")
    return inner


def time_limit_state(env: Any, env_state: Any) -> TimeLimitState:
    """The ``TimeLimitState`` inside ``env_state`` (a state of ``env``): the ``env_state`` field
    of every wrapper that keeps a state of its own (it overrides ``reset``). Its ``time`` is the
    step of the episode (time-varying controllers index their gains by it)."""
    layer, state = env, env_state
    while isinstance(layer, Wrapper):
        if type(layer).reset is not Wrapper.reset:
            state = state.env_state
        layer = layer.env
    base_env(layer)
    return state


def simulator_state(env: Any, env_state: Any) -> Any:
    """The base env's state inside ``env_state`` (a state of ``env``): ``time_limit_state``'s
    ``env_state``. This is the state ``dynamics_from_env(env, ...)`` steps."""
    return time_limit_state(env, env_state).env_state


def _layer_transform(layer: Wrapper, env_params: Any):
    """``(action map, reward scale)`` of one wrapper, as its ``step`` applies them."""
    if isinstance(layer, RescaleAction):
        inner = layer.env.action_space(env_params)

        def rescale(action):
            fraction = (jnp.clip(action, layer.low, layer.high) - layer.low) / (
                layer.high - layer.low)
            return inner.low + fraction * (jnp.asarray(inner.high) - inner.low)

        return rescale, 1.0
    if isinstance(layer, ClipAction):
        inner = layer.env.action_space(env_params)
        return (lambda action: jnp.clip(action, inner.low, inner.high)), 1.0
    if isinstance(layer, ScaleReward):
        return (lambda action: action), layer.scale
    if type(layer).step is Wrapper.step or isinstance(layer, EpisodeStatistics):
        return (lambda action: action), 1.0
    raise TypeError(f"dynamics_from_env does not know what {type(layer).__name__}.step does "
                    f"to actions and rewards; it knows EpisodeStatistics, ClipAction, "
                    f"RescaleAction and ScaleReward")


def dynamics_from_env(env: Any, env_params: Any) -> Dynamics:
    """The true simulator of ``env`` as a ``Dynamics`` over ``simulator_state``'s states.

    The base env's ``step_env`` with ``env_params``: gymnax envs (``GymnaxEnv.step_env`` reports
    true termination only) and Brax envs (the bare Brax step) alike. Of the wrappers, episode
    statistics and the time limit are bookkeeping and left out; action clipping and rescaling
    and reward scaling are applied as their ``step`` applies them, so the dynamics take the
    actions and give the rewards ``env.step`` does. Where the env provides ``"differentiable"``
    (``envs.list_envs("differentiable")``) the dynamics are differentiable in the action and the
    state's float leaves (``jaxrl.control``'s iLQR expands them). ``TypeError`` for an env not
    built on a ``TimeLimitedEnv`` (a foreign env that only offers an auto-resetting ``step``) or
    under a wrapper whose ``step`` it does not know.
    """
    simulator = base_env(env)
    transforms = []
    layer = env
    while isinstance(layer, Wrapper):
        transforms.append(_layer_transform(layer, env_params))
        layer = layer.env

    def dynamics(key: jax.Array, state: Any, action: jax.Array):
        scale = 1.0
        for action_map, reward_scale in transforms:  # outermost first, as the wrappers step
            action, scale = action_map(action), scale * reward_scale
        _, next_state, reward, terminated, _ = simulator.step_env(key, state, action, env_params)
        return next_state, jnp.asarray(reward, jnp.float32) * scale, jnp.asarray(terminated, bool)

    return dynamics
