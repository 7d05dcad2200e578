"""Hand-written experts of the registered envs, for DAgger, expert datasets and tests.

An expert is ``expert(obs [B, ...]) -> actions``: ``[B]`` int32 for discrete actions,
``[B, *shape]`` in the env's own units for continuous ones. PointGoal's lives with its env
(``goal.point_goal_expert``).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp

from jaxrl.envs import goal

__all__ = ["SCRIPTED_EXPERTS", "Expert", "cartpole_expert", "mountain_car_expert",
           "pendulum_expert", "scripted_expert"]

Expert = Callable[[jax.Array], jax.Array]


def cartpole_expert(obs: jax.Array) -> jax.Array:
    """Push toward where the pole falls: ``a = 1[0.1 x + 0.5 ẋ + 3 θ + θ̇ > 0]`` (returns 500)."""
    weights = jnp.array([0.1, 0.5, 3.0, 1.0], jnp.float32)
    return (obs @ weights > 0).astype(jnp.int32)


def pendulum_expert(obs: jax.Array) -> jax.Array:
    """Swing up by energy shaping, balance by PD control.

    With ``θ`` from upright, Pendulum-v1's dynamics ``θ̈ = 15 sin θ + 3u`` conserve
    ``E = θ̇² / 2 + 15 (cos θ - 1)`` (0 upright at rest) up to ``Ė = 3 u θ̇``. Within 37° of upright
    (``cos θ > 0.8``) ``u = -(10 θ + 3 θ̇)``; elsewhere ``u = -E θ̇`` drives ``E`` to 0 (pumping
    when low, braking when high; a pendulum at rest at the bottom is kicked). Clipped to ±2.
    """
    cos, sin, theta_dot = obs[..., 0], obs[..., 1], obs[..., 2]
    energy = 0.5 * theta_dot**2 + 15.0 * (cos - 1.0)
    balance = -(10.0 * jnp.arctan2(sin, cos) + 3.0 * theta_dot)
    pump = -energy * jnp.where(jnp.abs(theta_dot) < 1e-3, 1.0, theta_dot)
    return jnp.clip(jnp.where(cos > 0.8, balance, pump), -2.0, 2.0)[..., None]


def mountain_car_expert(obs: jax.Array) -> jax.Array:
    """Push the way the car moves (``a = 2`` right when ``ẋ ≥ 0``, else ``0`` left): every push
    adds energy, so the car swings higher each time and reaches the flag (about 100-120 steps
    from any start, against 200 for the time limit)."""
    return jnp.where(obs[..., 1] >= 0.0, 2, 0).astype(jnp.int32)


SCRIPTED_EXPERTS: dict[str, Expert] = {
    "CartPole-v1": cartpole_expert,
    "MountainCar-v0": mountain_car_expert,
    "Pendulum-v1": pendulum_expert,
    "PointGoal-v0": goal.point_goal_expert,
}
"""The scripted expert of each env id that has one."""


def scripted_expert(env: Any) -> Expert:
    """The scripted expert of ``env`` (looked up by its ``env_id``); ``ValueError`` if none."""
    env_id = getattr(env, "env_id", None)
    if env_id not in SCRIPTED_EXPERTS:
        raise ValueError(f"no scripted expert for {env_id or env!r}; scripted experts exist for "
                         f"{', '.join(SCRIPTED_EXPERTS)} (or pass expert=... in Python)")
    return SCRIPTED_EXPERTS[env_id]
