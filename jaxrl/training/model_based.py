"""The model-based family loop: collect, fit a dynamics ensemble, plan through it (MPC).

Course notes §11 (Model-Based RL; 004 §10.1, "Model-based RL version 0.5 / 1.0 / 1.5"):

1. run a base policy (uniform random actions, ``random_steps`` per env, taken in ``init``) and
   collect ``D = {(s, a, s', r)}`` in a replay buffer;
2. (each ``update`` starts here) merge the transitions added since the last fit into the
   normalisers, then fit the ensemble (``jaxrl.models.dynamics``) for ``model_steps`` gradient
   steps, each member on its own bootstrap resample of ``D``;
3. plan through the model to choose actions (``jaxrl.planning``: shooting, CEM, MPPI over
   ``Particles``), replanning every ``replan_every`` steps and following the plan in between;
4. execute ``num_envs · num_steps`` env steps, append the transitions to ``D`` (when
   ``refit``) and go to 2.

``refit=False`` with open-loop plans is version 0.5 (fit once, in the first update, on the
random data, then plan);
``refit=True`` with ``replan_every = horizon`` is 1.0 (execute each whole plan, collect, refit);
``replan_every = 1`` is 1.5 (MPC: only the first action of each plan is executed). PETS is 1.5
with a probabilistic ensemble and trajectory sampling. The loop plans through any
``PlanningModel`` (``make_planning_agent``): the bootstrap ensemble (``make_model_based_agent``)
or the latent world model (``agents/world_model.py``).

Everything runs in one ``jax.jit`` and ``vmap``-s over seeds: the train state holds the model
(parameters, optimiser state, normalisers), the buffer, the envs, each env's plan and the key.
The policy acts from observations (the plan is its carry, ``Agent.initial_carry``), so
``jaxrl eval``, ``load_policy`` and dataset collection run it like any policy with memory.
Metrics: ``episode_return``, ``model_loss`` (the mean per-member loss of the update's fit; a NaN
there is reported by the runner's guard under that name), ``model_mse`` and, with
``eval_episodes > 0``, ``eval_return``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import optax
from flax import struct

from jaxrl.backend import ONE_OFF_UNROLL
from jaxrl.envs import EpisodeStatistics
from jaxrl.envs.dynamics import Dynamics
from jaxrl.envs.rewards import known_functions
from jaxrl.evaluation import evaluate
from jaxrl.models.dynamics import (
    DynamicsModel,
    ModelBatch,
    ModelState,
    Normalizer,
    bootstrap_indices,
    initial_particles,
    learned_dynamics,
    make_dynamics_model,
)
from jaxrl.planning import PLANNERS, initial_plan, make_planner, plan_actions, shift_plan
from jaxrl.replay import ReplayBuffer, Sample, buffer_for
from jaxrl.rollout import episode_return_metric, reset_envs, rollout, rollout_with_carry
from jaxrl.training.agent import Agent, as_typed_key
from jaxrl.training.config import ACTIVATIONS, BaseConfig, hyper, static

__all__ = ["LearnedModelFields", "ModelBasedConfig", "ModelBasedState", "ModelPhaseState",
           "PlanCarry", "PlanningLoopConfig", "PlanningModel", "fit_uniform",
           "init_model_phase", "make_model_based_agent", "make_planning_agent",
           "make_policy_model", "model_transition", "model_value_expansion", "refit_model",
           "refit_phase"]

REWARDS = ("auto", "known", "learned")


class PlanningLoopConfig(BaseConfig):
    """The fields of every agent on this loop: data, the model's network and fitting, the
    planner."""

    num_envs: int = static(1, ">= 1")
    """envs acting in parallel"""
    num_steps: int = static(200, ">= 1")
    """env steps per env between two fits of the model (one update)"""
    total_timesteps: int = static(1_400, ">= 1")
    """env steps after the random warm-up"""
    random_steps: int = static(200, ">= 1")
    """env steps per env of uniform random actions collected before the first fit"""
    buffer_size: int = static(20_000, ">= 1")
    """transitions the replay buffer keeps (a multiple of num_envs)"""
    hidden_sizes: tuple[int, ...] = static((64, 64))
    """hidden layer widths of the model's networks (of each member of an ensemble)"""
    activation: str = static("swish", ACTIVATIONS)
    """hidden activation of the model's networks"""
    model_steps: int = static(200, ">= 1")
    """gradient steps of each fit"""
    batch_size: int = static(64, ">= 1")
    """transitions per member in one gradient step"""
    learning_rate: float = hyper(1e-3, "> 0")
    """AdamW step size of the model"""
    weight_decay: float = hyper(1e-5, ">= 0")
    """AdamW weight decay of the model"""
    planner: str = static("cem", PLANNERS)
    """search: shooting (best of random sequences), cem (cross-entropy method), mppi"""
    horizon: int = static(15, ">= 1")
    """steps each plan looks ahead"""
    population: int = static(200, ">= 1")
    """candidate sequences simulated per iteration"""
    elites: int = static(20, ">= 1")
    """cem: best candidates the sampling distribution is refitted to (at most population)"""
    iterations: int = static(3, ">= 1")
    """cem, mppi: sample-and-refit rounds per plan"""
    noise: float = hyper(0.5, "> 0")
    """cem: initial std, mppi: std, in half-ranges of the action bounds"""
    alpha: float = hyper(0.1, "[0, 1]")
    """cem, mppi: smoothing of the refit, new = α old + (1 - α) fitted"""
    temperature: float = hyper(1.0, "> 0")
    """mppi: λ of the weights softmax(J / λ)"""
    eval_episodes: int = static(0, ">= 0")
    """fresh episodes evaluated after each update (0: none)"""

    def validate(self) -> None:
        """One update fits in ``total_timesteps``; the buffer holds the warm-up and one update;
        CEM's elites fit in the population."""
        steps = self.num_envs * self.num_steps
        if self.total_timesteps < steps:
            raise ValueError(f"total_timesteps = {self.total_timesteps} is smaller than one "
                             f"update (num_envs * num_steps = {steps}); raise total_timesteps")
        if self.buffer_size < self.num_envs * max(self.random_steps, self.num_steps):
            raise ValueError(f"buffer_size = {self.buffer_size} cannot hold the random warm-up "
                             f"or one update; raise buffer_size")
        if self.buffer_size % self.num_envs:
            raise ValueError(f"buffer_size = {self.buffer_size} must be a multiple of "
                             f"num_envs = {self.num_envs}")
        if self.planner == "cem" and self.elites > self.population:
            raise ValueError(f"elites must be <= population, got elites={self.elites}, "
                             f"population={self.population}")


class ModelBasedConfig(PlanningLoopConfig):
    """The loop with a bootstrap ensemble of dynamics models (mbrl, pets)."""

    ensemble_size: int = static(5, ">= 1")
    """members of the bootstrap ensemble"""
    reward: str = static("auto", REWARDS)
    """known: the env's reward / termination functions (jaxrl.envs.rewards), learned: model
    heads, auto: known where the env has them"""


class PlanningModel(NamedTuple):
    """What the loop needs of a model it plans through (a bootstrap ensemble, a latent world
    model): pure functions of the model's state, which the train state holds.

    - ``init(key) -> model_state``;
    - ``observe(model_state, batch, weights) -> model_state``: merge the newest transitions
      (``ModelBatch`` rows ``[N]``, where ``weights`` is 1) into its running statistics;
    - ``fit(model_state, buffer, key) -> (model_state, metrics)``: gradient steps on the
      replay buffer; ``metrics`` are scalars named in ``metrics``;
    - ``dynamics(model_state) -> Dynamics`` the planner searches with;
    - ``start(model_state, obs) -> planning state`` of one observation (particles, a latent).
    """

    init: Callable[[jax.Array], Any]
    observe: Callable[[Any, ModelBatch, jax.Array], Any]
    fit: Callable[[Any, ReplayBuffer, jax.Array], tuple[Any, dict[str, jax.Array]]]
    dynamics: Callable[[Any], Dynamics]
    start: Callable[[Any, jax.Array], Any]
    metrics: tuple[str, ...]


class PlanCarry(struct.PyTreeNode):
    """The policy's carry, per env: the warm-started plan and the steps left before the next
    search (0: search now)."""

    plan: jax.Array
    steps_left: jax.Array


class ModelBasedState(struct.PyTreeNode):
    """The train state: the model, the data, the envs, their plans, the key."""

    model_params: Any
    """the model's state (an ensemble's ``ModelState``, a world model's ``WorldModelState``)"""
    buffer: ReplayBuffer
    env_state: Any
    obs: jax.Array
    carry: PlanCarry
    key: jax.Array
    last_episode_return: jax.Array
    last_fit: dict[str, jax.Array]
    """the metrics of the last fit (``model_loss``, ``model_mse``)"""
    unseen_rows: jax.Array
    """buffer rows written since the normalisers were last updated (the newest ones)"""
    updates: jax.Array


def _model_batch(buffer: ReplayBuffer, index: jax.Array) -> ModelBatch:
    """Transitions at flat indices ``[...]`` of the buffer's ``[rows · num_envs]`` storage."""
    num_envs = buffer.reward.shape[1]
    rows, envs = index // num_envs, index % num_envs
    return ModelBatch(buffer.obs[rows, envs].astype(jnp.float32), buffer.action[rows, envs],
                      buffer.reward[rows, envs], buffer.terminated[rows, envs],
                      buffer.next_obs[rows, envs].astype(jnp.float32))


def _fit(model: DynamicsModel, state: ModelState, buffer: ReplayBuffer, key: jax.Array,
         steps: int, batch_size: int) -> tuple[ModelState, dict[str, jax.Array]]:
    """``steps`` AdamW steps on minibatches of each member's bootstrap resample of the buffer;
    the metrics of the last step."""
    capacity = buffer.reward.shape[0] * buffer.reward.shape[1]
    valid = buffer.size * buffer.reward.shape[1]
    resample_key, key = jax.random.split(key)
    resample = bootstrap_indices(resample_key, model.num_members, valid, capacity)

    def step(state, step_key):
        positions = jax.random.randint(step_key, (model.num_members, batch_size), 0,
                                       jnp.maximum(valid, 1))
        batch = _model_batch(buffer, jnp.take_along_axis(resample, positions, 1))
        (_, metrics), grads = jax.value_and_grad(model.loss, has_aux=True)(
            state.params, state, batch)
        updates, opt_state = model.optimizer.update(grads, state.opt_state, state.params)
        return state.replace(params=optax.apply_updates(state.params, updates),
                             opt_state=opt_state), metrics

    state, metrics = jax.lax.scan(step, state, jax.random.split(key, steps))
    return state, jax.tree.map(lambda m: m[-1], metrics)


def fit_uniform(train_step: Callable[[Any, ModelBatch], tuple[Any, dict[str, jax.Array]]],
                state: Any, buffer: ReplayBuffer, key: jax.Array, steps: int,
                batch_size: int) -> tuple[Any, dict[str, jax.Array]]:
    """``steps`` calls of ``train_step(state, batch)`` on minibatches of ``batch_size``
    transitions drawn uniformly from the buffer's written rows (a single model: no bootstrap);
    the metrics of the last step."""
    valid = buffer.size * buffer.reward.shape[1]

    def step(state, step_key):
        index = jax.random.randint(step_key, (batch_size,), 0, jnp.maximum(valid, 1))
        return train_step(state, _model_batch(buffer, index))

    state, metrics = jax.lax.scan(step, state, jax.random.split(key, steps))
    return state, jax.tree.map(lambda m: m[-1], metrics)


def make_model_based_agent(config: ModelBasedConfig, env: Any, env_params: Any, *,
                           probabilistic: bool, refit: bool, replan_every: int,
                           num_particles: int, propagation: str) -> Agent:
    """The ``Agent`` of the loop above (module docstring) with a bootstrap ensemble.
    ``TypeError`` for non-vector observations; ``ValueError`` where ``reward="known"`` and the
    env has no known reward, or ``num_particles`` is not a multiple of the ensemble size."""
    if num_particles % config.ensemble_size:
        raise ValueError(f"num_particles = {num_particles} must be a multiple of "
                         f"ensemble_size = {config.ensemble_size}")
    space = env.action_space(env_params)
    known = known_functions(env, env_params)
    if config.reward == "known" and known.reward is None:
        raise ValueError(f"reward=known needs an env with a known reward function "
                         f"(jaxrl.envs.rewards: {', '.join(_known_ids())}); use reward=learned")
    if config.reward == "learned":
        known = known._replace(reward=None, termination=None)
    model = make_dynamics_model(
        env.observation_space(env_params), space, num_members=config.ensemble_size,
        hidden_sizes=config.hidden_sizes, activation=config.activation,
        probabilistic=probabilistic, learning_rate=config.learning_rate,
        weight_decay=config.weight_decay, reward_fn=known.reward,
        termination_fn=known.termination, env_params=env_params)
    planning_model = PlanningModel(
        init=model.init, observe=model.observe,
        fit=lambda state, buffer, key: _fit(model, state, buffer, key, config.model_steps,
                                            config.batch_size),
        dynamics=lambda state: learned_dynamics(model, state, propagation),
        start=lambda state, obs: initial_particles(obs, num_particles),
        metrics=("model_loss", "model_mse"))
    return make_planning_agent(config, env, env_params, planning_model, refit=refit,
                               replan_every=replan_every)


def make_planning_agent(config: PlanningLoopConfig, env: Any, env_params: Any,
                        model: PlanningModel, *, refit: bool, replan_every: int) -> Agent:
    """The ``Agent`` of the loop above (module docstring) planning through ``model``."""
    space = env.action_space(env_params)
    planner = make_planner(config.planner, space, population=config.population,
                           elites=min(config.elites, config.population),
                           iterations=config.iterations, noise=config.noise,
                           alpha=config.alpha, temperature=config.temperature)
    stats_env = EpisodeStatistics(env)
    eval_steps = int(getattr(env_params, "max_steps_in_episode", 1_000))

    def initial_carry(batch: int) -> PlanCarry:
        plan = initial_plan(space, config.horizon)
        return PlanCarry(jnp.broadcast_to(plan, (batch, *plan.shape)),
                         jnp.zeros((batch,), jnp.int32))

    def control(model_state: Any, key: jax.Array, obs: jax.Array,
                carry: PlanCarry) -> tuple[jax.Array, PlanCarry]:
        dynamics = model.dynamics(model_state)

        def search():
            keys = jax.random.split(key, obs.shape[0])
            return jax.vmap(lambda k, o, p: planner(
                k, dynamics, model.start(model_state, o), p))(keys, obs, carry.plan)

        if replan_every == 1:
            actions, plans = search()
            return actions, PlanCarry(plans, carry.steps_left)

        def follow():
            return (jax.vmap(lambda p: plan_actions(p[:1], space)[0])(carry.plan),
                    jax.vmap(lambda p: shift_plan(p, space))(carry.plan))

        replan = carry.steps_left == 0

        def search_where_due():
            return jax.tree.map(lambda a, b: jnp.where(
                replan.reshape(replan.shape + (1,) * (a.ndim - 1)), a, b), search(), follow())

        actions, plans = jax.lax.cond(replan.any(), search_where_due, follow)
        steps_left = jnp.where(replan, replan_every - 1, carry.steps_left - 1)
        return actions, PlanCarry(plans, steps_left)

    def act(state, obs, key, deterministic=False, carry=None):
        return control(state.model_params, key, obs, carry)

    def store(buffer, traj):
        return buffer.extend(traj.obs, traj.action, traj.reward, traj.terminated,
                             traj.truncated, traj.next_obs)

    newest = max(config.random_steps, config.num_steps)

    def fit(state, key):
        # The normalisers follow the data up to each fit, never ahead of the fitted params.
        buffer = state.buffer
        rows = (buffer.pointer - 1 - jnp.arange(newest)) % buffer.rows
        index = (rows[:, None] * config.num_envs + jnp.arange(config.num_envs)).reshape(-1)
        weights = jnp.repeat(jnp.arange(newest) < state.unseen_rows, config.num_envs)
        model_state = model.observe(state.model_params, _model_batch(buffer, index), weights)
        return model.fit(model_state, buffer, key)

    def init(key):
        key = as_typed_key(key)
        key, reset_key, model_key, random_key = jax.random.split(key, 4)
        obs, env_state = reset_envs(reset_key, stats_env, env_params, config.num_envs)
        buffer = buffer_for(config.buffer_size, config.num_envs,
                            env.observation_space(env_params), space, space.dtype)

        def random_policy(key, obs):
            return jax.vmap(space.sample)(jax.random.split(key, obs.shape[0])), {}

        env_state, obs, traj = rollout(random_key, stats_env, env_params, env_state, obs,
                                       random_policy, config.random_steps, ONE_OFF_UNROLL)
        episode_return = episode_return_metric(traj.info, jnp.full((), jnp.nan))
        no_fit = {name: jnp.zeros(()) for name in model.metrics}
        return ModelBasedState(model.init(model_key), store(buffer, traj), env_state, obs,
                               initial_carry(config.num_envs), key, episode_return, no_fit,
                               jnp.asarray(config.random_steps, jnp.int32),
                               jnp.zeros((), jnp.int32))

    def update(state):
        key, rollout_key, fit_key, eval_key = jax.random.split(state.key, 4)
        if refit:
            model_state, fit_metrics = fit(state, fit_key)
        else:  # version 0.5: fit on the random data once, in the first update
            model_state, fit_metrics = jax.lax.cond(
                state.updates == 0, fit, lambda state, key: (state.model_params,
                                                             state.last_fit), state, fit_key)

        def policy(key, obs, env_state, carry):
            actions, carry = control(model_state, key, obs, carry)
            return actions, {}, carry

        env_state, obs, carry, traj = rollout_with_carry(
            rollout_key, stats_env, env_params, state.env_state, state.obs, state.carry,
            policy, config.num_steps, initial_carry(config.num_envs), unroll=ONE_OFF_UNROLL)
        episode_return = episode_return_metric(traj.info, state.last_episode_return)
        metrics = {"episode_return": episode_return, **fit_metrics}
        buffer, unseen_rows = state.buffer, jnp.zeros((), jnp.int32)
        if refit:
            buffer, unseen_rows = store(buffer, traj), jnp.asarray(config.num_steps, jnp.int32)
        if config.eval_episodes > 0:
            def eval_policy(key, obs, env_state, carry):
                return control(model_state, key, obs, carry)

            metrics["eval_return"] = evaluate(eval_key, env, env_params, eval_policy,
                                              config.eval_episodes, eval_steps, ONE_OFF_UNROLL,
                                              initial_carry=initial_carry)
        return state.replace(model_params=model_state, buffer=buffer, env_state=env_state,
                             obs=obs, carry=carry, key=key,
                             last_episode_return=episode_return, last_fit=fit_metrics,
                             unseen_rows=unseen_rows, updates=state.updates + 1), metrics

    steps = config.num_envs * config.num_steps
    return Agent(init=init, update=update, act=act, num_updates=config.total_timesteps // steps,
                 steps_per_update=steps, initial_steps=config.num_envs * config.random_steps,
                 initial_carry=lambda state, batch: initial_carry(batch))


def _known_ids() -> list[str]:
    from jaxrl.envs.rewards import KNOWN_FUNCTIONS

    return list(KNOWN_FUNCTIONS)


# Learned models for policy learning (MBPO, MVE, MBRL 2.0): course notes 004 §11.1.


class LearnedModelFields(BaseConfig):
    """The fields of an agent that learns a policy with a learned dynamics ensemble beside the
    replay loop (mixed into its learner's config; names prefixed model_ where the learner
    has a field of its own)."""

    ensemble_size: int = static(5, ">= 1")
    """members of the bootstrap ensemble"""
    model_hidden_sizes: tuple[int, ...] = static((64, 64))
    """hidden layer widths of each member"""
    model_activation: str = static("swish", ACTIVATIONS)
    """hidden activation of each member"""
    model_learning_rate: float = hyper(1e-3, "> 0")
    """AdamW step size of the model"""
    model_weight_decay: float = hyper(1e-5, ">= 0")
    """AdamW weight decay of the model"""
    model_batch_size: int = static(128, ">= 1")
    """transitions per member in one gradient step of a fit"""
    model_steps: int = static(100, ">= 1")
    """gradient steps of each fit"""
    model_frequency: int = static(250, ">= 1")
    """env steps between two fits of the model (rounded to whole collection iterations)"""
    reward: str = static("auto", REWARDS)
    """known: the env's reward / termination functions (jaxrl.envs.rewards), learned: model
    heads, auto: known where the env has them"""


class ModelPhaseState(struct.PyTreeNode):
    """A learned model beside the replay loop: the ensemble, the phases run so far and the
    metrics of the last fit (``model_loss``, ``model_mse``)."""

    model: ModelState
    phases: jax.Array
    last_fit: dict[str, jax.Array]


def make_policy_model(config: LearnedModelFields, env: Any, env_params: Any, parts: Any,
                      probabilistic: bool = True) -> DynamicsModel:
    """The ensemble of a replay agent: inputs are its observations and its actions in
    ``[-1, 1]`` (``parts`` from ``off_policy.setup``); a known reward / termination function
    (``config.reward``) sees the actions rescaled to the env's bounds. ``TypeError`` for
    non-vector observations, ``ValueError`` for ``reward="known"`` on an env without one."""
    known = known_functions(env, env_params)
    if config.reward == "known" and known.reward is None:
        raise ValueError(f"reward=known needs an env with a known reward function "
                         f"(jaxrl.envs.rewards: {', '.join(_known_ids())}); use reward=learned")
    if config.reward == "learned":
        known = known._replace(reward=None, termination=None)
    space = parts.env_action_space

    def env_units(fn):
        if fn is None:
            return None

        def rescaled(obs, action, next_obs, params):
            low, high = jnp.asarray(space.low), jnp.asarray(space.high)
            return fn(obs, low + (action + 1.0) * 0.5 * (high - low), next_obs, params)

        return rescaled

    return make_dynamics_model(
        parts.observation_space, parts.action_space, num_members=config.ensemble_size,
        hidden_sizes=config.model_hidden_sizes, activation=config.model_activation,
        probabilistic=probabilistic, learning_rate=config.model_learning_rate,
        weight_decay=config.model_weight_decay, reward_fn=env_units(known.reward),
        termination_fn=env_units(known.termination), env_params=env_params)


def init_model_phase(model: DynamicsModel, key: jax.Array) -> ModelPhaseState:
    """A fresh ensemble, no phase run yet."""
    return ModelPhaseState(model.init(key), jnp.zeros((), jnp.int32),
                           {"model_loss": jnp.zeros(()), "model_mse": jnp.zeros(())})


def refit_model(config: LearnedModelFields, model: DynamicsModel, phase: ModelPhaseState,
                buffer: ReplayBuffer, key: jax.Array,
                steps_per_iteration: int) -> ModelPhaseState:
    """Refit the ensemble every ``model_frequency`` env steps (and at the first phase): the
    normalisers recomputed on the whole buffer, then ``model_steps`` AdamW steps on each
    member's bootstrap resample. Counts the phase."""
    fit_every = max(1, config.model_frequency // steps_per_iteration)

    def fit(phase):
        num_envs = buffer.reward.shape[1]
        index = jnp.arange(buffer.rows * num_envs)
        weights = index // num_envs < buffer.size
        fresh = phase.model.replace(inputs=Normalizer.create(phase.model.inputs.mean.shape[0]),
                                    targets=Normalizer.create(phase.model.targets.mean.shape[0]))
        model_state = model.observe(fresh, _model_batch(buffer, index), weights)
        model_state, metrics = _fit(model, model_state, buffer, key, config.model_steps,
                                    config.model_batch_size)
        return phase.replace(model=model_state, last_fit=metrics)

    phase = jax.lax.cond(phase.phases % fit_every == 0, fit, lambda phase: phase, phase)
    return phase.replace(phases=phase.phases + 1)


def refit_phase(config: LearnedModelFields, model: DynamicsModel,
                steps_per_iteration: int) -> tuple[Any, Any]:
    """The replay loop's extension ``init(key, obs, parts)`` and ``phase(key, state)`` of an
    agent whose extra phase only refits the model (``refit_model``); the phase reports the
    last fit's metrics. Agents that also imagine rollouts (MBPO) write their own phase."""

    def init(key: jax.Array, obs: jax.Array, parts: Any) -> ModelPhaseState:
        return init_model_phase(model, key)

    def phase(key: jax.Array, state: Any) -> tuple[Any, dict[str, jax.Array]]:
        extension = refit_model(config, model, state.extension_state, state.buffer, key,
                                steps_per_iteration)
        return state.replace(extension_state=extension), dict(extension.last_fit)

    return init, phase


def model_transition(model: DynamicsModel, state: ModelState, key: jax.Array, obs: jax.Array,
                     action: jax.Array, sample: bool = True
                     ) -> tuple[jax.Array, jax.Array, jax.Array]:
    """One model step of a batch ``obs [N, D]``, ``action [N, ...]``: ``(next_obs [N, D],
    reward [N], terminated [N])``. ``sample``: each row's member drawn at random, its next obs
    drawn from the member's Gaussian and termination from its probability (a branched rollout);
    otherwise the members' mean prediction and termination where its mean probability exceeds
    ½ (a deterministic, differentiable expansion)."""
    members = model.num_members
    next_obs, std, reward, done = model.predict(
        state, jnp.broadcast_to(obs, (members, *obs.shape)),
        jnp.broadcast_to(action, (members, *action.shape)))
    if not sample:
        return next_obs.mean(0), reward.mean(0), done.mean(0) > 0.5
    member_key, noise_key, done_key = jax.random.split(key, 3)
    member = jax.random.randint(member_key, obs.shape[:1], 0, members)
    rows = jnp.arange(obs.shape[0])
    next_obs, std, reward, done = (x[member, rows] for x in (next_obs, std, reward, done))
    if model.probabilistic:
        next_obs = next_obs + std * jax.random.normal(noise_key, next_obs.shape)
    return next_obs, reward, jax.random.uniform(done_key, done.shape) < done


def model_value_expansion(model: DynamicsModel, state: ModelState, policy: Any, key: jax.Array,
                          sample: Sample, horizon: int, gamma: float | jax.Array) -> Sample:
    """Model value expansion (MVE, Feinberg et al. 2018; course notes 004 §11.1.4) of a batch's
    targets: from ``ŝ_0 = next_obs`` the members' mean model and ``a_k = policy(key, ŝ_k)``
    give ``H`` imagined rewards, and the sample becomes

        ``reward ← reward + discount Σ_{k<H} γ^k c_k r̂_k``,
        ``discount ← discount γ^H c_H``,  ``next_obs ← ŝ_H``

    (``c_k``: no imagined termination before step ``k``), so every replay agent's target
    ``reward + discount · V(next_obs)`` becomes the ``H``-step expansion
    ``r + Σ_k γ^{k+1} r̂_k + γ^{H+1} V(ŝ_H)``. ``horizon = 0`` returns the sample unchanged."""
    if horizon == 0:
        return sample

    def step(carry, key):
        obs, reward, discount = carry
        policy_key, model_key = jax.random.split(key)
        action = policy(policy_key, obs)
        next_obs, model_reward, terminated = model_transition(model, state, model_key, obs,
                                                              action, sample=False)
        return (next_obs, reward + discount * model_reward,
                discount * gamma * (1.0 - terminated.astype(jnp.float32))), None

    (next_obs, reward, discount), _ = jax.lax.scan(
        step, (sample.next_obs, sample.reward, sample.discount),
        jax.random.split(key, horizon))
    return sample.replace(reward=reward, discount=discount, next_obs=next_obs)
