"""Model-predictive control on the true simulator: random shooting, CEM or MPPI every step.

Course notes §10–§11 (Optimal Control and Planning; MPC): at each step, plan an action
sequence of ``horizon`` steps from the current state by search (``jaxrl.planning``), execute
its first action, observe, and plan again from the next state (every ``replan_every`` steps;
in between the agent follows the plan it made). The plan is kept from step to step, shifted
by one, as the next search's start (the warm start).

The model is the env itself: ``jaxrl.envs.dynamics.dynamics_from_env`` steps the env's
``step_env`` on a copy of the state the agent is shown (``Agent.acts_on_env_state``), so the
agent needs an env that can be stepped from a copied state (``registry.ENV_STATE``). The plan
is the policy's carry (``Agent.initial_carry``), so ``jaxrl eval``, ``load_policy`` and
dataset collection run it like any policy with memory; a fresh episode starts from
``planning.initial_plan``. ``deterministic`` does not change how it acts: the search samples,
and acts on its result.

Nothing is learned: one ``update`` runs the planner in ``num_envs`` envs for ``num_steps``
steps and reports ``episode_return`` (and ``eval_return`` over ``eval_episodes`` fresh
episodes, when positive). The train state holds no parameters, only the envs, plans and key.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
from flax import struct

from jaxrl.backend import ONE_OFF_UNROLL
from jaxrl.envs import EpisodeStatistics
from jaxrl.envs.dynamics import dynamics_from_env, simulator_state
from jaxrl.evaluation import evaluate
from jaxrl.planning import PLANNERS, initial_plan, make_planner, plan_actions, shift_plan
from jaxrl.rollout import episode_return_metric, reset_envs, rollout_with_carry
from jaxrl.training.agent import Agent, as_typed_key, train_from_agent
from jaxrl.training.config import BaseConfig, check_config, hyper, static

__all__ = ["Config", "PlanCarry", "TrainState", "make_agent", "make_train"]


class Config(BaseConfig):
    """MPC with a sampling planner on the true simulator."""

    planner: str = static("cem", PLANNERS)
    """search: shooting (best of random sequences), cem (cross-entropy method), mppi"""
    horizon: int = static(30, ">= 1")
    """steps each plan looks ahead"""
    population: int = static(100, ">= 1")
    """candidate sequences simulated per iteration"""
    elites: int = static(10, ">= 1")
    """cem: best candidates the sampling distribution is refitted to (at most population)"""
    iterations: int = static(3, ">= 1")
    """cem, mppi: sample-and-refit rounds per plan"""
    noise: float = hyper(0.5, "> 0")
    """cem: initial std, mppi: std, in half-ranges of the action bounds (discrete actions: the
    weight, at most 1, of the uniform distribution mixed into the plan's probabilities)"""
    alpha: float = hyper(0.1, "[0, 1]")
    """cem, mppi: smoothing of the refit, new = α old + (1 - α) fitted"""
    temperature: float = hyper(1.0, "> 0")
    """mppi: λ of the weights softmax(J / λ); small keeps only the best candidates"""
    replan_every: int = static(1, ">= 1")
    """steps between plans; in between the agent follows its last plan"""
    num_envs: int = static(4, ">= 1")
    """envs acting in parallel"""
    num_steps: int = static(100, ">= 1")
    """env steps per env in one update"""
    total_timesteps: int = static(4_000, ">= 1")
    """env steps in all"""
    eval_episodes: int = static(0, ">= 0")
    """fresh episodes evaluated after each update (0: none)"""

    def validate(self) -> None:
        """One update must fit in ``total_timesteps``; CEM's elites fit in the population."""
        if self.total_timesteps < self.num_envs * self.num_steps:
            raise ValueError(
                f"total_timesteps = {self.total_timesteps} is smaller than one update "
                f"(num_envs * num_steps = {self.num_envs * self.num_steps}); raise "
                f"total_timesteps")
        if self.planner == "cem" and self.elites > self.population:
            raise ValueError(f"elites must be <= population, got elites={self.elites}, "
                             f"population={self.population}")


class PlanCarry(struct.PyTreeNode):
    """The policy's carry, per env: the warm-started plan and the steps left before the next
    search (0: search now)."""

    plan: jax.Array
    steps_left: jax.Array


class TrainState(struct.PyTreeNode):
    """The envs the planner acts in (batched) and each env's warm-started plan."""

    env_state: Any
    obs: jax.Array
    carry: PlanCarry
    key: jax.Array
    last_episode_return: jax.Array


def make_agent(config: Config, env: Any, env_params: Any) -> Agent:
    """The MPC agent on ``env``; ``TypeError`` if ``env`` cannot be stepped from a copied
    state (``dynamics_from_env``)."""
    check_config(config)
    dynamics = dynamics_from_env(env, env_params)
    space = env.action_space(env_params)
    planner = make_planner(config.planner, space, population=config.population,
                           elites=min(config.elites, config.population),
                           iterations=config.iterations, noise=config.noise,
                           alpha=config.alpha, temperature=config.temperature)
    stats_env = EpisodeStatistics(env)
    eval_steps = int(getattr(env_params, "max_steps_in_episode", 1_000))

    def initial_carry(state, batch):
        plan = initial_plan(space, config.horizon)
        return PlanCarry(jnp.broadcast_to(plan, (batch, *plan.shape)),
                         jnp.zeros((batch,), jnp.int32))

    def act(state, obs, key, deterministic=False, carry=None, *, env_state):
        batch = obs.shape[0]
        states = simulator_state(env, env_state)

        def search():
            keys = jax.random.split(key, batch)
            return jax.vmap(lambda k, s, p: planner(k, dynamics, s, p))(keys, states, carry.plan)

        def follow():
            return (jax.vmap(lambda p: plan_actions(p[:1], space)[0])(carry.plan),
                    jax.vmap(lambda p: shift_plan(p, space))(carry.plan))

        if config.replan_every == 1:
            actions, plans = search()
            return actions, PlanCarry(plans, carry.steps_left)
        replan = carry.steps_left == 0

        def search_where_due():
            searched, followed = search(), follow()
            return jax.tree.map(lambda a, b: jnp.where(
                replan.reshape(replan.shape + (1,) * (a.ndim - 1)), a, b), searched, followed)

        actions, plans = jax.lax.cond(replan.any(), search_where_due, follow)
        steps_left = jnp.where(replan, config.replan_every - 1, carry.steps_left - 1)
        return actions, PlanCarry(plans, steps_left)

    def policy(key, obs, env_state, carry):
        return act(None, obs, key, carry=carry, env_state=env_state)

    def init(key):
        key, reset_key = jax.random.split(as_typed_key(key))
        obs, env_state = reset_envs(reset_key, stats_env, env_params, config.num_envs)
        return TrainState(env_state, obs, initial_carry(None, config.num_envs), key,
                          jnp.full((), jnp.nan))

    def update(state):
        key, rollout_key, eval_key = jax.random.split(state.key, 3)

        def rollout_policy(key, obs, env_state, carry):
            actions, carry = policy(key, obs, env_state.env_state, carry)
            return actions, {}, carry

        env_state, obs, carry, traj = rollout_with_carry(
            rollout_key, stats_env, env_params, state.env_state, state.obs, state.carry,
            rollout_policy, config.num_steps, initial_carry(None, config.num_envs),
            unroll=ONE_OFF_UNROLL)
        episode_return = episode_return_metric(traj.info, state.last_episode_return)
        metrics = {"episode_return": episode_return}
        if config.eval_episodes > 0:
            metrics["eval_return"] = evaluate(
                eval_key, env, env_params, policy, config.eval_episodes, eval_steps,
                ONE_OFF_UNROLL, initial_carry=lambda batch: initial_carry(None, batch))
        return TrainState(env_state, obs, carry, key, episode_return), metrics

    steps = config.num_envs * config.num_steps
    return Agent(init=init, update=update, act=act, num_updates=config.total_timesteps // steps,
                 steps_per_update=steps, initial_carry=initial_carry, acts_on_env_state=True)


def make_train(config: Config, env: Any, env_params: Any):
    """``train(key) -> (train_state, metrics)``: ``init`` and a scan of ``update``."""
    return train_from_agent(make_agent(config, env, env_params))
