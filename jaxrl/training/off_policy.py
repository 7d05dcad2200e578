"""What every off-policy agent shares: config fields, env wrapping, the replay loop, targets.

One ``update`` of the agent API is one logging interval of ``steps_per_update`` env steps:
``iterations_per_update`` times { run the exploration policy for ``train_frequency`` vectorised
env steps and write them to the replay buffer; then take ``updates_per_step`` gradient steps on
uniform (n-step) samples }, then evaluate the deterministic policy on ``eval_episodes`` fresh
episodes. ``init`` resets the envs, builds the networks and fills the buffer with
``learning_starts`` steps of uniformly random actions, so the compiled update never branches on
"have we started learning". Everything (env steps, buffer writes, sampling, updates,
evaluation) is one pure function: ``jax.jit`` and ``jax.vmap`` over seeds and numeric
hyperparameters apply as for every agent.

Agents (``dqn``, ``soft_q``, ``ddpg``, ``td3``, ``sac``) provide only their networks, their
exploration policy and one gradient step (``OffPolicyHooks``).
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
from flax import struct

from jaxrl.backend import ONE_OFF_UNROLL
from jaxrl.envs import EpisodeStatistics, RescaleAction
from jaxrl.envs.spaces import Box, Discrete, Space
from jaxrl.evaluation import evaluate
from jaxrl.replay import ReplayBuffer, Sample, buffer_for
from jaxrl.rollout import episode_return_metric, reset_envs, rollout
from jaxrl.training.agent import Agent, Metrics, as_typed_key

__all__ = ["OffPolicyConfig", "OffPolicyHooks", "OffPolicySetup", "TrainState",
           "linear_epsilon", "make_off_policy_agent", "setup", "validate_off_policy"]


class OffPolicyConfig(struct.PyTreeNode):
    """Fields shared by the off-policy agents (CleanRL's names). Static fields decide shapes."""

    total_timesteps: int = struct.field(pytree_node=False, default=100_000)
    """environment steps per seed, the random-action warm-up included"""
    num_envs: int = struct.field(pytree_node=False, default=1)
    """parallel environments"""
    buffer_size: int = struct.field(pytree_node=False, default=100_000)
    """replay capacity in transitions (a multiple of num_envs)"""
    batch_size: int = struct.field(pytree_node=False, default=256)
    """transitions per gradient step"""
    learning_starts: int = struct.field(pytree_node=False, default=1_000)
    """env steps of uniformly random actions that fill the buffer before learning"""
    train_frequency: int = struct.field(pytree_node=False, default=1)
    """vectorised env steps between training phases"""
    updates_per_step: int = struct.field(pytree_node=False, default=1)
    """gradient updates per training phase (the update-to-data ratio with 1 env, frequency 1)"""
    log_frequency: int = struct.field(pytree_node=False, default=1_000)
    """env steps per logged row (one update of the agent API; evaluation runs at each)"""
    eval_episodes: int = struct.field(pytree_node=False, default=10)
    """episodes of the deterministic policy per evaluation (0: no eval_return)"""
    hidden_sizes: tuple[int, ...] = struct.field(pytree_node=False, default=(256, 256))
    """hidden layer widths"""
    activation: str = struct.field(pytree_node=False, default="relu")
    """tanh, relu, swish, gelu or elu"""
    gamma: float = 0.99
    """discount factor"""
    tau: float = 0.005
    """target-network Polyak rate θ' ← τθ + (1-τ)θ' (1: hard copy)"""
    target_network_frequency: int = 1
    """gradient updates between target-network updates"""

    @property
    def steps_per_iteration(self) -> int:
        return self.train_frequency * self.num_envs

    @property
    def iterations_per_update(self) -> int:
        return max(1, self.log_frequency // self.steps_per_iteration)

    @property
    def steps_per_update(self) -> int:
        return self.iterations_per_update * self.steps_per_iteration

    @property
    def total_gradient_steps(self) -> int:
        return self.num_updates * self.iterations_per_update * self.updates_per_step

    @property
    def warmup_vector_steps(self) -> int:
        return self.learning_starts // self.num_envs

    @property
    def num_updates(self) -> int:
        training_steps = self.total_timesteps - self.warmup_vector_steps * self.num_envs
        return training_steps // self.steps_per_update


def validate_off_policy(config: Any) -> None:
    """Static checks shared by off-policy configs; ``ValueError`` saying what to change."""
    for name in ("num_envs", "buffer_size", "batch_size", "train_frequency", "updates_per_step",
                 "log_frequency", "total_timesteps"):
        if getattr(config, name) < 1:
            raise ValueError(f"{name} must be >= 1, got {getattr(config, name)}")
    if config.eval_episodes < 0:
        raise ValueError(f"eval_episodes must be >= 0, got {config.eval_episodes}")
    if config.buffer_size % config.num_envs:
        raise ValueError(f"buffer_size = {config.buffer_size} is not divisible by num_envs = "
                         f"{config.num_envs}; change one of them")
    rows = config.buffer_size // config.num_envs
    n_step = getattr(config, "n_step", 1)
    if n_step < 1:
        raise ValueError(f"n_step must be >= 1, got {n_step}")
    if config.warmup_vector_steps < n_step:
        raise ValueError(
            f"learning_starts = {config.learning_starts} gives {config.warmup_vector_steps} "
            f"warm-up steps per env, fewer than n_step = {n_step}; raise learning_starts to at "
            f"least {n_step * config.num_envs}")
    if config.warmup_vector_steps > rows or config.train_frequency > rows:
        raise ValueError(f"buffer_size = {config.buffer_size} holds {rows} steps per env, fewer "
                         f"than learning_starts / num_envs or train_frequency; raise buffer_size")
    if config.num_updates < 1:
        raise ValueError(
            f"total_timesteps = {config.total_timesteps} leaves no logging interval after the "
            f"{config.learning_starts} warm-up steps (one interval is {config.steps_per_update} "
            "steps); raise total_timesteps or lower log_frequency")


class OffPolicySetup(NamedTuple):
    """``env`` is what the agent trains on (episode statistics; Box actions rescaled from
    ``[-1, 1]``); ``eval_env`` is the same without statistics (``evaluate`` adds its own)."""

    env: Any
    eval_env: Any
    observation_space: Space
    action_space: Space
    eval_steps: int
    env_action_space: Space


def setup(env: Any, env_params: Any, algo: str, action_kind: type) -> OffPolicySetup:
    """Check the action space (``Discrete`` or ``Box``) and wrap the env; ``TypeError`` names
    the algorithms that fit otherwise."""
    space = env.action_space(env_params)
    if action_kind is Discrete and not isinstance(space, Discrete):
        raise TypeError(f"{algo} needs a discrete action space but the env's is {space}; "
                        "use sac, td3 or ddpg for continuous actions")
    if action_kind is Box:
        if not isinstance(space, Box):
            raise TypeError(f"{algo} needs a continuous (Box) action space but the env's is "
                            f"{space}; use dqn or soft_q for discrete actions")
        if not (jnp.all(jnp.isfinite(jnp.asarray(space.low)))
                and jnp.all(jnp.isfinite(jnp.asarray(space.high)))):
            raise TypeError(f"{algo} needs finite action bounds, got {space}")
        env = RescaleAction(env)
    max_steps = getattr(env_params, "max_steps_in_episode", 1_000)
    return OffPolicySetup(env=EpisodeStatistics(env), eval_env=env,
                          observation_space=env.observation_space(env_params),
                          action_space=env.action_space(env_params), eval_steps=int(max_steps),
                          env_action_space=space)


class TrainState(struct.PyTreeNode):
    """Everything an off-policy run needs to continue: checkpoint it and resume.

    ``params`` / ``target_params`` / ``opt_state`` are dicts keyed by network (``"q"``,
    ``"actor"``, ``"critic"``, ``"log_alpha"``); ``vector_steps`` counts vectorised env steps
    (env steps = ``vector_steps · num_envs``), ``update_count`` gradient updates.
    """

    params: Any
    target_params: Any
    opt_state: Any
    buffer: ReplayBuffer
    env_state: Any
    obs: jax.Array
    last_episode_return: jax.Array
    key: jax.Array
    update_count: jax.Array
    vector_steps: jax.Array


class OffPolicyHooks(NamedTuple):
    """What an off-policy agent adds to the shared loop.

    - ``init(key, obs [num_envs, ...]) -> (params, target_params, opt_state)``
    - ``explore(key, params, obs, env_steps) -> actions``: the behaviour policy (ε-greedy,
      Gaussian noise, a stochastic actor); ``env_steps`` (float) drives schedules.
    - ``gradient_step(key, state, sample) -> (state, metrics)``: one update of ``params``,
      ``target_params``, ``opt_state``; ``state.update_count`` already counts this step.
    - ``act(params, obs, key, deterministic) -> actions``: evaluation / deployment policy.
    """

    init: Callable[[jax.Array, jax.Array], tuple[Any, Any, Any]]
    explore: Callable[[jax.Array, Any, jax.Array, jax.Array], jax.Array]
    gradient_step: Callable[[jax.Array, TrainState, Sample], tuple[TrainState, Metrics]]
    act: Callable[[Any, jax.Array, jax.Array, bool], jax.Array]


def make_off_policy_agent(config: Any, parts: OffPolicySetup, env_params: Any,
                          hooks: OffPolicyHooks) -> Agent:
    """The agent API around ``hooks`` (see the module docstring). Metrics: the gradient
    steps' statistics averaged over the interval, ``episode_return`` (training episodes),
    ``eval_return`` (deterministic policy; with ``eval_episodes > 0``) and ``step``."""
    num_envs = config.num_envs
    action_dtype = jnp.int32 if isinstance(parts.action_space, Discrete) else jnp.float32
    n_step = getattr(config, "n_step", 1)

    def random_policy(key, obs):
        keys = jax.random.split(key, obs.shape[0])
        return jax.vmap(parts.action_space.sample)(keys).astype(action_dtype), {}

    def store(buffer: ReplayBuffer, traj: Any) -> ReplayBuffer:
        return buffer.extend(traj.obs, traj.action, traj.reward, traj.terminated,
                             traj.truncated, traj.next_obs)

    def init(key: jax.Array) -> TrainState:
        key, reset_key, net_key, warmup_key = jax.random.split(as_typed_key(key), 4)
        obs, env_state = reset_envs(reset_key, parts.env, env_params, num_envs)
        params, target_params, opt_state = hooks.init(net_key, obs)
        buffer = buffer_for(config.buffer_size, num_envs, parts.observation_space,
                            parts.action_space, action_dtype)
        # Runs once: not unrolled (on a GPU unrolling it only added compile time).
        env_state, obs, traj = rollout(warmup_key, parts.env, env_params, env_state, obs,
                                       random_policy, config.warmup_vector_steps,
                                       unroll=ONE_OFF_UNROLL)
        return TrainState(
            params=params, target_params=target_params, opt_state=opt_state,
            buffer=store(buffer, traj), env_state=env_state, obs=obs,
            last_episode_return=episode_return_metric(traj.info, jnp.full((), jnp.nan)),
            key=key, update_count=jnp.zeros((), jnp.int32),
            vector_steps=jnp.asarray(config.warmup_vector_steps, jnp.int32))

    def learn(buffer: ReplayBuffer, state: TrainState,
              keys: jax.Array) -> tuple[TrainState, Metrics]:
        sample = buffer.sample(keys[0], config.batch_size, n_step, config.gamma)
        state = state.replace(update_count=state.update_count + 1)
        return hooks.gradient_step(keys[1], state, sample)

    # Jitted so that the shape query in ``update`` and the scan body share one trace (the trace
    # cache hits on equal shapes; XLA inlines the call).
    @jax.jit
    def iteration(state: TrainState, keys: jax.Array) -> tuple[TrainState, Metrics]:
        env_steps = state.vector_steps.astype(jnp.float32) * num_envs

        def behaviour(policy_key, obs):
            return hooks.explore(policy_key, state.params, obs, env_steps), {}

        env_state, obs, traj = rollout(keys[0], parts.env, env_params, state.env_state,
                                       state.obs, behaviour, config.train_frequency)
        state = state.replace(
            buffer=store(state.buffer, traj), env_state=env_state, obs=obs,
            last_episode_return=episode_return_metric(traj.info, state.last_episode_return),
            vector_steps=state.vector_steps + config.train_frequency)
        # The buffer is read-only while learning: keeping it out of the scan carry lets XLA
        # read it in place instead of threading (and possibly copying) it through the loop.
        buffer = state.buffer
        state, metrics = jax.lax.scan(partial(learn, buffer), state.replace(buffer=None),
                                      keys[1:].reshape(config.updates_per_step, 2))
        return state.replace(buffer=buffer), jax.tree.map(jnp.mean, metrics)

    def update(state: TrainState) -> tuple[TrainState, Metrics]:
        # Every key of the interval in one split (row i: iteration i's rollout key, then a
        # (sample, gradient step) pair per update): on CPU each threefry call is a small loop of
        # its own, and splitting inside the iteration was a large share of an update's time.
        key, interval_key, eval_key = jax.random.split(state.key, 3)
        keys = jax.random.split(interval_key,
                                (config.iterations_per_update, 1 + 2 * config.updates_per_step))
        # Running sums in the carry rather than per-iteration stacked outputs: one fused add
        # instead of a buffer write per statistic and iteration (a kernel each on a GPU, where
        # a one-seed iteration is a chain of ~90 small kernels). The zeros come from a trace on
        # shapes alone (weak types kept, so the trace cache hits), which uses no key.
        shapes = jax.tree.map(lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype,
                                                             weak_type=jax.typeof(x).weak_type),
                              state)
        row = jax.ShapeDtypeStruct(keys.shape[1:], keys.dtype)
        zeros = jax.tree.map(lambda s: jnp.zeros(s.shape, s.dtype),
                             jax.eval_shape(iteration, shapes, row)[1])

        def summed(carry, iteration_keys):
            state, totals = carry
            state, metrics = iteration(state, iteration_keys)
            return (state, jax.tree.map(jnp.add, totals, metrics)), None

        (state, totals), _ = jax.lax.scan(summed, (state.replace(key=key), zeros), keys)
        metrics = jax.tree.map(lambda total: total / config.iterations_per_update, totals)
        metrics["episode_return"] = state.last_episode_return
        if config.eval_episodes:
            metrics["eval_return"] = evaluate(
                eval_key, parts.eval_env, env_params,
                lambda k, obs: hooks.act(state.params, obs, k, True),
                config.eval_episodes, parts.eval_steps, ONE_OFF_UNROLL)
        metrics["step"] = state.vector_steps * num_envs
        return state, metrics

    def act(state: TrainState, obs: jax.Array, key: jax.Array,
            deterministic: bool = False) -> jax.Array:
        """Actions in the env's own units (continuous ones mapped from ``[-1, 1]``), so a saved
        policy drives the unwrapped env (``jaxrl eval``, ``load_policy``, datasets)."""
        action = hooks.act(state.params, obs, key, deterministic)
        space = parts.env_action_space
        if isinstance(space, Box):
            action = space.low + (action + 1.0) * 0.5 * (jnp.asarray(space.high) - space.low)
        return action

    return Agent(init=init, update=update, act=act, num_updates=config.num_updates,
                 steps_per_update=config.steps_per_update,
                 initial_steps=config.warmup_vector_steps * num_envs)


def linear_epsilon(start_e: float | jax.Array, end_e: float | jax.Array,
                   duration: float | jax.Array, env_steps: jax.Array) -> jax.Array:
    """``ε_t = start_e + min(t / duration, 1) · (end_e - start_e)`` (``end_e`` if duration 0)."""
    fraction = jnp.where(duration > 0, jnp.clip(env_steps / jnp.maximum(duration, 1e-8), 0, 1),
                         1.0)
    return start_e + fraction * (end_e - start_e)
