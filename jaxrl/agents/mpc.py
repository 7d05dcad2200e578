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

from jaxrl.envs.dynamics import dynamics_from_env, simulator_state
from jaxrl.planning import PLANNERS, initial_plan, make_planner, plan_actions, shift_plan
from jaxrl.training.agent import Agent, train_from_agent
from jaxrl.training.config import check_config, hyper, static
from jaxrl.training.controller import ControllerConfig, ControllerState, make_controller_agent

__all__ = ["Config", "PlanCarry", "TrainState", "make_agent", "make_train"]


class Config(ControllerConfig):
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
    num_steps: int = static(100, ">= 1")
    total_timesteps: int = static(4_000, ">= 1")

    def validate(self) -> None:
        """One update must fit in ``total_timesteps``; CEM's elites fit in the population."""
        super().validate()
        if self.planner == "cem" and self.elites > self.population:
            raise ValueError(f"elites must be <= population, got elites={self.elites}, "
                             f"population={self.population}")


class PlanCarry(struct.PyTreeNode):
    """The policy's carry, per env: the warm-started plan and the steps left before the next
    search (0: search now)."""

    plan: jax.Array
    steps_left: jax.Array


TrainState = ControllerState
"""The envs the planner acts in (batched), each env's plan (``carry``), the key, the last
finished episodes' mean return; ``params`` is empty (nothing is learned)."""


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

    def initial_carry(batch):
        plan = initial_plan(space, config.horizon)
        return PlanCarry(jnp.broadcast_to(plan, (batch, *plan.shape)),
                         jnp.zeros((batch,), jnp.int32))

    def control(params, key, obs, env_state, carry):
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

    return make_controller_agent(config, env, env_params, lambda: (), control, initial_carry)


def make_train(config: Config, env: Any, env_params: Any):
    """``train(key) -> (train_state, metrics)``: ``init`` and a scan of ``update``."""
    return train_from_agent(make_agent(config, env, env_params))
