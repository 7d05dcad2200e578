"""Bandit baselines as pure functions: UCB1 and Thompson sampling, and their regret curves on
``KArmedBandit-v0`` tasks (``envs.meta``), the yardsticks of RL²'s bandit results.

A strategy is three pure functions (``BanditStrategy``): ``init() -> state``, ``select(key,
state, t) -> arm`` and ``update(state, arm, reward) -> state``. ``regret_curve`` plays one on a
task for ``horizon`` pulls and returns the cumulative expected regret
``R_t = Σ_{s ≤ t} (max_b μ_b - μ_{a_s})``; ``jax.vmap`` over keys and tasks averages it.

- UCB1 (Auer et al., 2002; course notes §17 "Exploration", the UCB bonus
  ``B(N) = √(2 ln n / N)``): pull every arm once, then ``argmax_a μ̂_a + √(2 ln t / N_a)``.
- ε-greedy: every arm once, then a uniform arm with probability ε, else the best empirical
  mean ``argmax_a total_a / N_a``.
- Thompson sampling: sample means from the posterior and pull the best sample; Beta(1, 1)
  priors for Bernoulli rewards, ``N(0, 1)`` priors with known noise ``σ`` for Gaussian ones
  (the priors that ``KArmedBandit.sample_task`` draws tasks from).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
from flax import struct

from jaxrl.envs.spaces import Discrete
from jaxrl.training.agent import Agent, Metrics, as_typed_key
from jaxrl.training.config import BaseConfig, static

__all__ = ["BanditConfig", "BanditState", "BanditStrategy", "epsilon_greedy",
           "make_bandit_agent", "regret_curve", "thompson", "ucb1"]


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


def epsilon_greedy(num_arms: int, epsilon: float | jax.Array) -> BanditStrategy:
    """ε-greedy on the empirical means, each arm pulled once first (module docstring)."""

    def init():
        return {"count": jnp.zeros(num_arms), "total": jnp.zeros(num_arms)}

    def select(key, state, t):
        explore_key, arm_key = jax.random.split(key)
        means = state["total"] / jnp.maximum(state["count"], 1.0)
        greedy = jnp.argmax(jnp.where(state["count"] == 0, jnp.inf, means))
        random_arm = jax.random.randint(arm_key, (), 0, num_arms)
        return jnp.where(jax.random.uniform(explore_key) < epsilon, random_arm,
                         greedy).astype(jnp.int32)

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


class BanditConfig(BaseConfig):
    """Fields of the bandit agents (``ucb``, ``thompson``, ``egreedy``)."""

    total_timesteps: int = static(1_000, ">= 1")
    """pulls per seed (rounded down to whole logging intervals)"""
    log_frequency: int = static(100, ">= 1")
    """pulls per logged row (one update of the agent API)"""

    @property
    def num_updates(self) -> int:
        return self.total_timesteps // self.log_frequency

    def validate(self) -> None:
        """One logging interval must fit in the run."""
        if self.log_frequency > self.total_timesteps:
            raise ValueError(f"log_frequency = {self.log_frequency} is larger than "
                             f"total_timesteps = {self.total_timesteps}; lower log_frequency")


class BanditState(struct.PyTreeNode):
    """Everything a bandit run needs to continue: the strategy's statistics, the env, the key,
    pulls so far and the cumulative expected regret."""

    strategy: Any
    env_state: Any
    key: jax.Array
    pulls: jax.Array
    regret: jax.Array


def make_bandit_agent(config: BanditConfig, env: Any, env_params: Any,
                      make_strategy: Callable[[int], BanditStrategy]) -> Agent:
    """The agent API around a strategy on a ``KArmedBandit`` task: ``update`` plays
    ``log_frequency`` pulls. Metrics: ``regret`` (cumulative expected regret ``R_t``),
    ``regret_per_step`` (mean expected regret of the interval's pulls), ``episode_return`` (mean
    reward of the interval's pulls; each pull is an episode) and ``step`` (pulls so far).
    ``act`` plays the strategy (deterministic: the best empirical mean)."""
    space = env.action_space(env_params)
    if not isinstance(space, Discrete) or not hasattr(env_params, "arm_means"):
        raise TypeError(f"bandit algorithms play KArmedBandit-v0 tasks (arms as a discrete "
                        f"action space, arm means in the env params for the regret); got {env!r}")
    strategy = make_strategy(int(space.n))

    def init(key: jax.Array) -> BanditState:
        key, reset_key = jax.random.split(as_typed_key(key))
        _, env_state = env.reset(reset_key, env_params)
        zero = jnp.zeros((), jnp.float32)
        return BanditState(strategy=strategy.init(), env_state=env_state, key=key,
                           pulls=jnp.zeros((), jnp.int32), regret=zero)

    def pull(state: BanditState, key: jax.Array) -> tuple[BanditState, jax.Array]:
        select_key, env_key = jax.random.split(key)
        arm = strategy.select(select_key, state.strategy, state.pulls)
        _, env_state, reward, _, _, info = env.step(env_key, state.env_state, arm, env_params)
        state = state.replace(strategy=strategy.update(state.strategy, arm, reward),
                              env_state=env_state, pulls=state.pulls + 1,
                              regret=state.regret + info["regret"])
        return state, jnp.stack([reward, info["regret"]])

    def update(state: BanditState) -> tuple[BanditState, Metrics]:
        key, interval_key = jax.random.split(state.key)
        state, outcomes = jax.lax.scan(pull, state.replace(key=key),
                                       jax.random.split(interval_key, config.log_frequency))
        return state, {"regret": state.regret, "regret_per_step": outcomes[:, 1].mean(),
                       "episode_return": outcomes[:, 0].mean(), "step": state.pulls}

    def act(state: BanditState, obs: jax.Array, key: jax.Array,
            deterministic: bool = False) -> jax.Array:
        if deterministic:
            means = state.strategy["total"] / jnp.maximum(state.strategy["count"], 1.0)
            return jnp.full(obs.shape[:1], jnp.argmax(means), jnp.int32)
        return jax.vmap(lambda k: strategy.select(k, state.strategy, state.pulls))(
            jax.random.split(key, obs.shape[0]))

    return Agent(init=init, update=update, act=act, num_updates=config.num_updates,
                 steps_per_update=config.log_frequency)
