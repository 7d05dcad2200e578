"""Bandit baselines as pure functions: UCB1 and Thompson sampling, and their regret curves on
``KArmedBandit-v0`` tasks (``envs.meta``), the yardsticks of RL²'s bandit results.

A strategy is three pure functions (``BanditStrategy``): ``init() -> state``, ``select(key,
state, t) -> arm`` and ``update(state, arm, reward) -> state``. ``regret_curve`` plays one on a
task for ``horizon`` pulls and returns the cumulative expected regret
``R_t = Σ_{s ≤ t} (max_b μ_b - μ_{a_s})``; ``jax.vmap`` over keys and tasks averages it.

- UCB1 (Auer et al., 2002; course notes §17 "Exploration", the UCB bonus
  ``B(N) = √(2 ln n / N)``): pull every arm once, then ``argmax_a μ̂_a + √(2 ln t / N_a)``.
- Thompson sampling: sample means from the posterior and pull the best sample; Beta(1, 1)
  priors for Bernoulli rewards, ``N(0, 1)`` priors with known noise ``σ`` for Gaussian ones
  (the priors that ``KArmedBandit.sample_task`` draws tasks from).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

__all__ = ["BanditStrategy", "regret_curve", "thompson", "ucb1"]


class BanditStrategy(NamedTuple):
    """A bandit algorithm as three pure functions: ``init() -> state``, ``select(key, state,
    t) -> arm`` at pull ``t`` and ``update(state, arm, reward) -> state``."""

    init: Callable[[], Any]
    select: Callable[[jax.Array, Any, jax.Array], jax.Array]
    update: Callable[[Any, jax.Array, jax.Array], Any]


def _counts_update(state: dict[str, jax.Array], arm: jax.Array,
                   reward: jax.Array) -> dict[str, jax.Array]:
    return {"count": state["count"].at[arm].add(1.0), "total": state["total"].at[arm].add(reward)}


def ucb1(num_arms: int) -> BanditStrategy:
    """UCB1: each arm once, then ``argmax_a total_a / N_a + √(2 ln t / N_a)`` (``t`` pulls so
    far)."""

    def init():
        return {"count": jnp.zeros(num_arms), "total": jnp.zeros(num_arms)}

    def select(key, state, t):
        count = jnp.maximum(state["count"], 1.0)
        score = state["total"] / count + jnp.sqrt(2.0 * jnp.log(jnp.maximum(t, 1)) / count)
        return jnp.argmax(jnp.where(state["count"] == 0, jnp.inf, score)).astype(jnp.int32)

    return BanditStrategy(init, select, _counts_update)


def thompson(num_arms: int, reward_kind: str = "bernoulli",
             reward_std: float = 1.0) -> BanditStrategy:
    """Thompson sampling: Beta(1 + successes, 1 + failures) posteriors (Bernoulli), or
    ``N(0, 1)`` priors updated with rewards of known std ``reward_std`` (Gaussian):
    posterior precision ``1 + N_a / σ²``, mean ``(total_a / σ²) / precision``."""

    def init():
        return {"count": jnp.zeros(num_arms), "total": jnp.zeros(num_arms)}

    def select(key, state, t):
        if reward_kind == "bernoulli":
            sample = jax.random.beta(key, 1.0 + state["total"],
                                     1.0 + state["count"] - state["total"])
        else:
            precision = 1.0 + state["count"] / reward_std ** 2
            mean = state["total"] / reward_std ** 2 / precision
            sample = mean + jax.random.normal(key, (num_arms,)) / jnp.sqrt(precision)
        return jnp.argmax(sample).astype(jnp.int32)

    return BanditStrategy(init, select, _counts_update)


def regret_curve(key: jax.Array, strategy: BanditStrategy, env: Any, env_params: Any,
                 horizon: int) -> jax.Array:
    """Cumulative expected regret ``[horizon]`` of ``strategy`` on the task ``env_params`` of a
    ``KArmedBandit`` (its ``info["regret"]`` per pull; the rewards are drawn by the env)."""
    reset_key, key = jax.random.split(key)
    _, env_state = env.reset(reset_key, env_params)

    def pull(carry, inputs):
        state, env_state = carry
        t, step_key = inputs
        select_key, env_key = jax.random.split(step_key)
        arm = strategy.select(select_key, state, t)
        _, env_state, reward, _, _, info = env.step(env_key, env_state, arm, env_params)
        return (strategy.update(state, arm, reward), env_state), info["regret"]

    _, regrets = jax.lax.scan(pull, (strategy.init(), env_state),
                              (jnp.arange(horizon), jax.random.split(key, horizon)))
    return jnp.cumsum(regrets)
