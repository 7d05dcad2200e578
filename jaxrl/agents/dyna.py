"""Dyna-Q: tabular Q-learning with a learned model of the env, replayed for planning.

Course notes 004 §11.1.2 (Algorithm 20, DYNA; 000 §12, Algorithm 12 and Sutton 1991). Every
real step:

1. in state ``s`` pick ``a`` ε-greedily from ``Q`` (ties broken at random) and observe
   ``(s, a, s', r)``;
2. update the model ``p̂(s' | s, a)``, ``r̂(s, a)``: counts ``N(s, a, s')``, the summed reward
   and the count of transitions that did not terminate (a table, so the model is exact in the
   limit, also in a slippery env);
3. ``Q(s, a) ← Q(s, a) + α [r + γ (1 − d) max_a' Q(s', a') − Q(s, a)]`` (Q-learning on the real
   transition);
4. ``planning_steps`` times: draw a remembered ``(s, a)`` uniformly from the pairs seen so far
   and update ``Q(s, a) ← Q(s, a) + α (E_{s', r}[r + γ (1 − d) max_a' Q(s', a')] − Q(s, a))``
   with the expectation under the model.

``planning_steps = 0`` is Q-learning; each planning update spreads the reward of the real
steps through the remembered state-actions, so Dyna-Q needs fewer real steps. States are the
env's table indices (``jaxrl.envs.tabular.state_index``; the env must provide ``"tabular"``,
whose table the agent reads only to name the states, never its transitions). Metrics:
``episode_return`` (training episodes) and ``eval_return`` (greedy policy, ``eval_episodes``
fresh episodes).
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
from flax import struct

from jaxrl.backend import ONE_OFF_UNROLL
from jaxrl.envs import EpisodeStatistics
from jaxrl.envs.tabular import state_index, tabular_mdp
from jaxrl.evaluation import evaluate
from jaxrl.rollout import episode_return_metric
from jaxrl.training.agent import Agent, as_typed_key, train_from_agent
from jaxrl.training.config import BaseConfig, check_config, hyper, static

__all__ = ["Config", "TrainState", "make_agent", "make_train"]


class Config(BaseConfig):
    """Dyna-Q on a tabular env."""

    total_timesteps: int = static(2_000, ">= 1")
    """real env steps in all"""
    num_steps: int = static(100, ">= 1")
    """real env steps per update (one row of metrics)"""
    planning_steps: int = static(10, ">= 0")
    """model updates of remembered state-actions per real step (0: Q-learning)"""
    learning_rate: float = hyper(0.5, "[0, 1]")
    """α of every Q update"""
    gamma: float = hyper(0.95, "[0, 1]")
    """discount factor"""
    epsilon: float = hyper(0.1, "[0, 1]")
    """probability of a uniformly random action while training"""
    eval_episodes: int = static(16, ">= 0")
    """fresh episodes the greedy policy is evaluated on after each update (0: none)"""

    def validate(self) -> None:
        """One update fits in ``total_timesteps``."""
        if self.total_timesteps < self.num_steps:
            raise ValueError(f"total_timesteps = {self.total_timesteps} is smaller than one "
                             f"update (num_steps = {self.num_steps}); raise total_timesteps")


class TrainState(struct.PyTreeNode):
    """The Q table ``[S, A]``, the model tables (counts ``[S, A, S']``, non-terminal counts
    ``[S, A, S']``, summed rewards ``[S, A]``), the env, the key."""

    q: jax.Array
    counts: jax.Array
    continues: jax.Array
    reward_sum: jax.Array
    env_state: Any
    obs: jax.Array
    key: jax.Array
    last_episode_return: jax.Array


def _greedy(key: jax.Array, q_row: jax.Array) -> jax.Array:
    """An action of maximal value, ties broken uniformly at random."""
    return jax.random.categorical(key, jnp.where(q_row == q_row.max(), 0.0, -jnp.inf))


def make_agent(config: Config, env: Any, env_params: Any) -> Agent:
    """Dyna-Q on ``env`` (an env providing ``"tabular"``; ``TypeError`` otherwise)."""
    check_config(config)
    mdp = tabular_mdp(env, env_params)
    num_states, num_actions = mdp.num_states, mdp.num_actions
    stats_env = EpisodeStatistics(env)
    eval_steps = int(getattr(env_params, "max_steps_in_episode", 100))

    def act(state, obs, key, deterministic=False):
        rows = state.q[state_index(mdp, obs)]
        keys = jax.random.split(key, rows.shape[0])
        return jax.vmap(_greedy)(keys, rows).astype(jnp.int32)

    def expected_update(q, counts, continues, reward_sum, s, a):
        visits = jnp.maximum(counts[s, a].sum(), 1.0)
        target = (reward_sum[s, a] + config.gamma * continues[s, a] @ q.max(-1)) / visits
        return q.at[s, a].add(config.learning_rate * (target - q[s, a]))

    def real_step(state, key):
        explore_key, random_key, greedy_key, env_key, plan_key = jax.random.split(key, 5)
        s = state_index(mdp, state.obs)
        action = jnp.where(jax.random.uniform(explore_key) < config.epsilon,
                           jax.random.randint(random_key, (), 0, num_actions),
                           _greedy(greedy_key, state.q[s])).astype(jnp.int32)
        obs, env_state, reward, terminated, _, info = stats_env.step(
            env_key, state.env_state, action, env_params)
        next_s = state_index(mdp, info["final_obs"])
        live = 1.0 - terminated.astype(jnp.float32)
        counts = state.counts.at[s, action, next_s].add(1.0)
        continues = state.continues.at[s, action, next_s].add(live)
        reward_sum = state.reward_sum.at[s, action].add(reward)
        target = reward + config.gamma * live * state.q[next_s].max()
        q = state.q.at[s, action].add(config.learning_rate * (target - state.q[s, action]))
        if config.planning_steps > 0:
            seen = jnp.where(counts.sum(-1).reshape(-1) > 0, 0.0, -jnp.inf)

            def plan(q, plan_key):
                pair = jax.random.categorical(plan_key, seen)
                return expected_update(q, counts, continues, reward_sum, pair // num_actions,
                                       pair % num_actions), None

            q, _ = jax.lax.scan(plan, q, jax.random.split(plan_key, config.planning_steps))
        info = {"episode_done": info["episode_done"], "episode_return": info["episode_return"]}
        return state.replace(q=q, counts=counts, continues=continues, reward_sum=reward_sum,
                             env_state=env_state, obs=obs), info

    def init(key):
        key, reset_key = jax.random.split(as_typed_key(key))
        obs, env_state = stats_env.reset(reset_key, env_params)
        table = jnp.zeros((num_states, num_actions, num_states))
        return TrainState(jnp.zeros((num_states, num_actions)), table, table,
                          jnp.zeros((num_states, num_actions)), env_state, obs, key,
                          jnp.full((), jnp.nan))

    def update(state):
        key, steps_key, eval_key = jax.random.split(state.key, 3)
        state, info = jax.lax.scan(real_step, state,
                                   jax.random.split(steps_key, config.num_steps))
        episode_return = episode_return_metric(info, state.last_episode_return)
        metrics = {"episode_return": episode_return}
        if config.eval_episodes > 0:
            metrics["eval_return"] = evaluate(
                eval_key, env, env_params, lambda k, obs: act(state, obs, k, True),
                config.eval_episodes, eval_steps, ONE_OFF_UNROLL)
        return state.replace(key=key, last_episode_return=episode_return), metrics

    return Agent(init=init, update=update, act=act,
                 num_updates=config.total_timesteps // config.num_steps,
                 steps_per_update=config.num_steps)


def make_train(config: Config, env: Any, env_params: Any):
    """``train(key) -> (train_state, metrics)``: ``init`` and a scan of ``update``."""
    return train_from_agent(make_agent(config, env, env_params))
