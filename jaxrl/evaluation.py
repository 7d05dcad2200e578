"""Evaluation rollouts shared by every agent: the return of a (usually deterministic) policy.

``evaluate`` runs ``num_envs`` fresh environments for ``num_steps`` steps inside jit and
averages the return of the first episode each env finishes; an env that finishes no episode in
the window does not count (the result is NaN if none finishes). Off-policy and offline agents
report it as ``eval_return``; ``jaxrl eval`` uses it for saved runs. Policies with memory and
planners that read the env state evaluate through the same loop (``initial_carry``).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp

from jaxrl.backend import env_unroll_limit, scan_unroll
from jaxrl.envs import EpisodeStatistics
from jaxrl.rollout import reset_carry, reset_envs

__all__ = ["episode_returns", "evaluate"]

ObsPolicy = Callable[[jax.Array, jax.Array], jax.Array]


def episode_returns(key: jax.Array, env: Any, env_params: Any, policy: ObsPolicy,
                    num_envs: int, num_steps: int, unroll: int | None = None, *,
                    initial_carry: Callable[[int], Any] | None = None
                    ) -> tuple[jax.Array, jax.Array]:
    """``(returns [num_envs], finished [num_envs])``: the undiscounted return of the first
    episode each of ``num_envs`` envs finishes within ``num_steps`` steps of
    ``policy(key, obs [num_envs, ...]) -> actions``; ``finished`` is False where none ended.
    ``unroll``: steps per loop trip, ``jaxrl.backend.scan_unroll``'s by default; agents that
    evaluate between updates pass ``jaxrl.backend.ONE_OFF_UNROLL``.

    With ``initial_carry`` the policy has the general acting form of ``training.agent``:
    ``policy(key, obs, env_state, carry) -> (actions, carry)``, with ``env_state`` the state of
    ``env`` itself (inside this function's episode statistics) and the carry reset to
    ``initial_carry(num_envs)`` wherever an episode ends.
    """
    if initial_carry is None:
        def general(key, obs, env_state, carry):
            return policy(key, obs), carry

        carry = ()
    else:
        general, carry = policy, initial_carry(num_envs)
    fresh = carry
    env = EpisodeStatistics(env)
    reset_key, run_key = jax.random.split(key)
    obs, env_state = reset_envs(reset_key, env, env_params, num_envs)
    batched_step = jax.vmap(env.step, in_axes=(0, 0, 0, None))

    def step(loop_carry, step_key):
        env_state, obs, carry, returns, finished = loop_carry
        policy_key, env_key = jax.random.split(step_key)
        action, carry = general(policy_key, obs, env_state.env_state, carry)
        obs, env_state, _, _, _, info = batched_step(jax.random.split(env_key, num_envs),
                                                     env_state, action, env_params)
        carry = reset_carry(carry, info["episode_done"], fresh)
        first = info["episode_done"] & ~finished
        returns = jnp.where(first, info["episode_return"], returns)
        return (env_state, obs, carry, returns, finished | info["episode_done"]), None

    init = (env_state, obs, carry, jnp.zeros((num_envs,), jnp.float32),
            jnp.zeros((num_envs,), bool))
    (_, _, _, returns, finished), _ = jax.lax.scan(
        step, init, jax.random.split(run_key, num_steps),
        unroll=unroll or scan_unroll(num_steps, env_unroll_limit(env)))
    return returns, finished


def evaluate(key: jax.Array, env: Any, env_params: Any, policy: ObsPolicy, num_envs: int,
             num_steps: int, unroll: int | None = None, *,
             initial_carry: Callable[[int], Any] | None = None) -> jax.Array:
    """Mean first-episode return over the envs that finished one (NaN if none did);
    ``initial_carry`` as in ``episode_returns``."""
    returns, finished = episode_returns(key, env, env_params, policy, num_envs, num_steps,
                                        unroll, initial_carry=initial_carry)
    count = finished.sum()
    return jnp.where(count > 0, jnp.where(finished, returns, 0.0).sum() / jnp.maximum(count, 1),
                     jnp.nan)
