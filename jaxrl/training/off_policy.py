"""The replay family: shared config fields, env wrapping and the replay loop.

One ``update`` of the agent API is one logging interval of ``steps_per_update`` env steps:
``iterations_per_update`` times { **collect** ``train_frequency`` vectorised env steps with the
exploration policy into the replay buffer; run the extension **phase**, if any; **learn**:
``updates_per_step`` gradient steps on uniform (n-step) samples }, then **evaluate** the
deterministic policy on ``eval_episodes`` fresh episodes. ``init`` resets the envs, builds the
networks and fills the buffer with ``learning_starts`` steps of uniformly random actions, so the
compiled update never branches on "have we started learning". Everything is one pure function:
``jax.jit`` and ``jax.vmap`` over seeds and numeric hyperparameters apply as for every agent.

Agents (``dqn``, ``soft_q`` through ``q_learning``; ``ddpg``, ``td3`` through
``deterministic``; ``sac``) provide only their networks, their exploration policy and one
gradient step (``OffPolicyHooks``). Extension points, all ``None`` (and the computation
unchanged) when unused: a ``RewardTransform`` (``training.extensions``) applied to every
collected rollout, the random warm-up included, before it is written to the buffer; and
``ReplayExtensions``: a phase per iteration with a second (model) buffer, and a target override.

Demonstrations (``DemoReplayFields``, DQN and SAC): ``demo_partition`` loads ``demo_dataset``
into a buffer that nothing overwrites (``replay.demo_buffer``; closed over, so shared by every
seed of a vmapped run and not checkpointed); every batch then takes
``round(demo_ratio · batch_size)`` rows from it (``replay.mixed_sample``, ``Sample.demo`` marking
them) and the agent adds its supervised term on those rows, weighted by ``demo_weight``.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from flax import struct

from jaxrl.backend import ONE_OFF_UNROLL
from jaxrl.envs import EpisodeStatistics, RescaleAction
from jaxrl.envs.spaces import Box, Discrete, Space
from jaxrl.evaluation import evaluate
from jaxrl.replay import ReplayBuffer, Sample, buffer_for, demo_buffer, mixed_sample
from jaxrl.rollout import Transition, episode_return_metric, reset_envs, rollout
from jaxrl.training import pretrain
from jaxrl.training.agent import Agent, Metrics, as_typed_key
from jaxrl.training.config import ACTIVATIONS, BaseConfig, hyper, static
from jaxrl.training.extensions import (
    RewardTransform,
    apply_reward_transform,
    init_reward_transform,
)

__all__ = ["DemoReplayFields", "OffPolicyConfig", "OffPolicyHooks", "OffPolicySetup",
           "ReplayExtensions", "TrainState", "demo_partition", "demo_weight",
           "make_off_policy_agent", "setup"]


class OffPolicyConfig(BaseConfig):
    """Fields shared by the off-policy agents (CleanRL's names). Static fields decide shapes."""

    total_timesteps: int = static(100_000, ">= 1")
    """environment steps per seed, the random-action warm-up included"""
    num_envs: int = static(1, ">= 1")
    """parallel environments"""
    buffer_size: int = static(100_000, ">= 1")
    """replay capacity in transitions (a multiple of num_envs)"""
    batch_size: int = static(256, ">= 1")
    """transitions per gradient step"""
    learning_starts: int = static(1_000, ">= 0")
    """env steps of uniformly random actions that fill the buffer before learning"""
    train_frequency: int = static(1, ">= 1")
    """vectorised env steps between training phases"""
    updates_per_step: int = static(1, ">= 1")
    """gradient updates per training phase (the update-to-data ratio with 1 env, frequency 1)"""
    n_step: int = static(1, ">= 1")
    """steps per bootstrapped target (stops early at episode ends)"""
    log_frequency: int = static(1_000, ">= 1")
    """env steps per logged row (one update of the agent API; evaluation runs at each)"""
    eval_episodes: int = static(10, ">= 0")
    """episodes of the deterministic policy per evaluation (0: no eval_return)"""
    hidden_sizes: tuple[int, ...] = static((256, 256))
    """hidden layer widths"""
    activation: str = static("relu", ACTIVATIONS)
    """tanh, relu, swish, gelu or elu"""
    gamma: float = hyper(0.99, "[0, 1]")
    """discount factor"""
    tau: float = hyper(0.005, "[0, 1]")
    """target-network Polyak rate θ' ← τθ + (1-τ)θ' (1: hard copy)"""
    target_network_frequency: int = hyper(1, ">= 1")
    """gradient updates between target-network updates"""
    bonus: str = static("none", ("none", "count", "hash", "rnd"))
    """exploration bonus added to the rewards (jaxrl.exploration): exact counts, SimHash counts
    or random network distillation"""
    bonus_form: str = static("mbie_eb", ("ucb", "mbie_eb", "beb"))
    """B(N) of a count bonus: ucb √(2 ln n / N), mbie_eb 1/√N, beb 1/N"""
    hash_bits: int = static(16, ">= 1")
    """SimHash code length k of bonus = hash (2^k count cells per seed, k <= 24)"""
    bonus_scale: float = hyper(0.1, ">= 0")
    """β of reward + β · bonus"""

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

    def validate(self) -> None:
        """The buffer holds whole env rows, the warm-up and one collection; one interval fits."""
        if self.buffer_size % self.num_envs:
            raise ValueError(f"buffer_size = {self.buffer_size} is not divisible by num_envs = "
                             f"{self.num_envs}; change one of them")
        rows = self.buffer_size // self.num_envs
        if self.warmup_vector_steps < self.n_step:
            raise ValueError(
                f"learning_starts = {self.learning_starts} gives {self.warmup_vector_steps} "
                f"warm-up steps per env, fewer than n_step = {self.n_step}; raise "
                f"learning_starts to at least {self.n_step * self.num_envs}")
        if self.warmup_vector_steps > rows or self.train_frequency > rows:
            raise ValueError(f"buffer_size = {self.buffer_size} holds {rows} steps per env, "
                             "fewer than learning_starts / num_envs or train_frequency; raise "
                             "buffer_size")
        if self.num_updates < 1:
            raise ValueError(
                f"total_timesteps = {self.total_timesteps} leaves no logging interval after the "
                f"{self.learning_starts} warm-up steps (one interval is {self.steps_per_update} "
                "steps); raise total_timesteps or lower log_frequency")


class DemoReplayFields(BaseConfig):
    """Demonstrations in the replay buffer (mixed into DQN's and SAC's configs; module
    docstring). Course notes 004, data initialisation: demonstrations as off-policy data."""

    demo_dataset: str = static("")
    """demonstrations (.npz) kept in a replay partition that is never overwritten"""
    demo_ratio: float = static(0.25, "[0, 1]")
    """share of every batch drawn from the demonstrations (with demo_dataset)"""
    demo_coef: float = hyper(1.0, ">= 0")
    """λ_0 of the supervised term on the demonstration rows (with demo_dataset)"""
    demo_decay: float = hyper(1.0, "[0, 1]")
    """λ_k = demo_coef · demo_decay^k at update k, one update per log_frequency env steps"""

    @property
    def demo_batch(self) -> int:
        """Rows of each batch drawn from the demonstrations."""
        return round(self.demo_ratio * self.batch_size)


def demo_partition(config: Any, env: Any, env_params: Any) -> ReplayBuffer | None:
    """``config.demo_dataset`` (checked against the raw ``env``) as a ``replay.demo_buffer``,
    continuous actions mapped affinely from the env's bounds to ``[-1, 1]`` (where the replay
    agents act); ``None`` without one."""
    path = getattr(config, "demo_dataset", "")
    if not path:
        return None
    data = pretrain.load_demonstrations(path, env, env_params, "demo-dataset")
    action = pretrain.agent_actions(data.action, env.action_space(env_params))
    return demo_buffer(data.obs, action, data.reward, data.terminated, data.truncated,
                       data.next_obs)


def demo_weight(config: Any, update_count: jax.Array) -> jax.Array:
    """``λ_k = demo_coef · demo_decay^k`` for the gradient step ``update_count`` (1-based) of
    agent update ``k`` (0-based)."""
    per_update = config.iterations_per_update * config.updates_per_step
    return pretrain.demo_coefficient(config.demo_coef, config.demo_decay,
                                     (update_count - 1) // per_update)


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
        # NumPy, not jnp: the check must stay concrete inside a traced sweep.
        if not (np.all(np.isfinite(np.asarray(space.low)))
                and np.all(np.isfinite(np.asarray(space.high)))):
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
    (env steps = ``vector_steps · num_envs``), ``update_count`` gradient updates. The extension
    fields are ``None`` (no leaves) when unused: ``reward_state`` of the ``RewardTransform``,
    ``extension_state`` and ``model_buffer`` of the ``ReplayExtensions``.
    """

    params: Any
    target_params: Any
    opt_state: Any
    buffer: ReplayBuffer | None
    env_state: Any
    obs: jax.Array
    last_episode_return: jax.Array
    key: jax.Array
    update_count: jax.Array
    vector_steps: jax.Array
    reward_state: Any = None
    extension_state: Any = None
    model_buffer: ReplayBuffer | None = None


class OffPolicyHooks(NamedTuple):
    """What an off-policy agent adds to the shared loop.

    - ``init(key, obs [num_envs, ...]) -> (params, target_params, opt_state)``
    - ``explore(key, params, obs, env_steps) -> actions``: the behaviour policy (ε-greedy,
      Gaussian noise, a stochastic actor); ``env_steps`` (float) drives schedules.
    - ``gradient_step(key, state, sample) -> (state, metrics)``: one update of ``params``,
      ``target_params``, ``opt_state``; ``state.update_count`` already counts this step. Every
      agent's Bellman target is ``sample.reward + sample.discount · V(sample.next_obs)``.
    - ``act(params, obs, key, deterministic) -> actions``: evaluation / deployment policy.
    """

    init: Callable[[jax.Array, jax.Array], tuple[Any, Any, Any]]
    explore: Callable[[jax.Array, Any, jax.Array, jax.Array], jax.Array]
    gradient_step: Callable[[jax.Array, TrainState, Sample], tuple[TrainState, Metrics]]
    act: Callable[[Any, jax.Array, jax.Array, bool], jax.Array]


class ReplayExtensions(NamedTuple):
    """Extension points of the replay loop (model-based variants: MBPO, MVE); each optional.

    - ``init(key, obs [num_envs, ...], parts) -> extension_state`` (model parameters, optimiser
      state, …), stored in ``TrainState.extension_state``.
    - ``phase(key, state) -> (state, metrics)``: runs each iteration after the collection,
      before the gradient steps; it may update ``extension_state`` and write imagined
      transitions (leaves ``[T, model_width, ...]``) with ``state.model_buffer.extend``.
    - ``model_capacity`` / ``model_width``: ``TrainState.model_buffer`` (``buffer_for`` with
      these capacity and env axis) exists when ``model_capacity > 0``.
    - ``real_ratio`` (static): each gradient step samples ``round(real_ratio · batch_size)``
      transitions (n-step) from the replay buffer and the rest (1-step) from ``model_buffer``,
      concatenated in that order.
    - ``target(key, state, sample) -> sample``: rewrites each sample before the gradient step;
      as every agent's target is ``reward + discount · V(next_obs)``, replacing those three
      fields (e.g. by an H-step model expansion, MVE) overrides the target of every agent. In
      ``state`` the buffers are ``None`` (they stay out of the learning loop's carry).

    Phase and target metrics are scalars reported beside the loop's own.
    """

    init: Callable[[jax.Array, jax.Array, OffPolicySetup], Any] | None = None
    phase: Callable[[jax.Array, TrainState], tuple[TrainState, Metrics]] | None = None
    target: Callable[[jax.Array, TrainState, Sample], Sample] | None = None
    model_capacity: int = 0
    model_width: int = 1
    real_ratio: float = 1.0

    def real_batch(self, batch_size: int) -> int:
        """Transitions per batch from the replay buffer; ``ValueError`` for a bad mix."""
        if not 0.0 <= self.real_ratio <= 1.0:
            raise ValueError(f"real_ratio must be in [0, 1], got {self.real_ratio}")
        real = round(self.real_ratio * batch_size)
        if real < batch_size and self.model_capacity <= 0:
            raise ValueError(f"real_ratio = {self.real_ratio} samples from the model buffer, "
                             "which needs model_capacity > 0")
        return real


def _split_if(key: jax.Array, used: bool) -> tuple[jax.Array, jax.Array | None]:
    """``(key, None)`` when no extension needs a key (so the run is unchanged without one),
    else two fresh keys."""
    if not used:
        return key, None
    key, extra = jax.random.split(key)
    return key, extra


def make_off_policy_agent(config: Any, parts: OffPolicySetup, env_params: Any,
                          hooks: OffPolicyHooks,
                          reward_transform: RewardTransform | None = None,
                          extensions: ReplayExtensions | None = None,
                          demos: ReplayBuffer | None = None) -> Agent:
    """The agent API around ``hooks`` (see the module docstring). Metrics: the gradient
    steps' statistics averaged over the interval (with the reward transform's and the phase's),
    ``episode_return`` (training episodes, environment rewards), ``eval_return``
    (deterministic policy; with ``eval_episodes > 0``) and ``step``. ``demos``
    (``demo_partition``) mixes ``config.demo_batch`` demonstrations into every batch."""
    if reward_transform is None and getattr(config, "bonus", "none") != "none":
        from jaxrl.exploration import make_bonus

        reward_transform = make_bonus(config, parts.observation_space)
    num_envs = config.num_envs
    action_dtype = jnp.int32 if isinstance(parts.action_space, Discrete) else jnp.float32
    extensions = extensions or ReplayExtensions()
    real_batch = extensions.real_batch(config.batch_size)
    if demos is not None and real_batch < config.batch_size:
        raise ValueError("demonstrations and a model buffer cannot share a batch; drop "
                         "--demo-dataset or sample only real transitions")

    def random_policy(key, obs):
        keys = jax.random.split(key, obs.shape[0])
        return jax.vmap(parts.action_space.sample)(keys).astype(action_dtype), {}

    def store(buffer: ReplayBuffer, traj: Transition) -> ReplayBuffer:
        return buffer.extend(traj.obs, traj.action, traj.reward, traj.terminated,
                             traj.truncated, traj.next_obs)

    def init_extensions(key: jax.Array | None, obs: jax.Array) -> tuple[Any, Any]:
        """``(extension_state, model_buffer)``, each ``None`` when unused."""
        model_buffer = None
        if extensions.model_capacity > 0:
            model_buffer = buffer_for(extensions.model_capacity, extensions.model_width,
                                      parts.observation_space, parts.action_space, action_dtype)
        if extensions.init is None:
            return None, model_buffer
        return extensions.init(key, obs, parts), model_buffer

    def warm_up(key: jax.Array, env_state: Any,
                obs: jax.Array) -> tuple[Any, jax.Array, Transition, Any]:
        """``warmup_vector_steps`` of uniformly random actions, rewards transformed:
        ``(env_state, obs, transitions, reward_state)``."""
        key, transform_key = _split_if(key, reward_transform is not None)
        # Runs once: not unrolled (on a GPU unrolling it only added compile time).
        env_state, obs, traj = rollout(key, parts.env, env_params, env_state, obs,
                                       random_policy, config.warmup_vector_steps,
                                       unroll=ONE_OFF_UNROLL)
        reward_state, apply_key = None, None
        if reward_transform is not None:
            transform_key, apply_key = jax.random.split(transform_key)
            reward_state = init_reward_transform(reward_transform, transform_key,
                                                 parts.observation_space, parts.action_space)
        traj, reward_state, _ = apply_reward_transform(reward_transform, reward_state, traj,
                                                       apply_key)
        return env_state, obs, traj, reward_state

    def init(key: jax.Array) -> TrainState:
        key, reset_key, net_key, warmup_key = jax.random.split(as_typed_key(key), 4)
        obs, env_state = reset_envs(reset_key, parts.env, env_params, num_envs)
        net_key, extension_key = _split_if(net_key, extensions.init is not None)
        params, target_params, opt_state = hooks.init(net_key, obs)
        extension_state, model_buffer = init_extensions(extension_key, obs)
        buffer = buffer_for(config.buffer_size, num_envs, parts.observation_space,
                            parts.action_space, action_dtype)
        env_state, obs, traj, reward_state = warm_up(warmup_key, env_state, obs)
        return TrainState(
            params=params, target_params=target_params, opt_state=opt_state,
            buffer=store(buffer, traj), env_state=env_state, obs=obs,
            last_episode_return=episode_return_metric(traj.info, jnp.full((), jnp.nan)),
            key=key, update_count=jnp.zeros((), jnp.int32),
            vector_steps=jnp.asarray(config.warmup_vector_steps, jnp.int32),
            reward_state=reward_state, extension_state=extension_state,
            model_buffer=model_buffer)

    def collect(key: jax.Array, state: TrainState) -> tuple[TrainState, Metrics]:
        """``train_frequency`` steps of the exploration policy, rewards transformed, stored."""
        env_steps = state.vector_steps.astype(jnp.float32) * num_envs
        key, transform_key = _split_if(key, reward_transform is not None)

        def behaviour(policy_key, obs):
            return hooks.explore(policy_key, state.params, obs, env_steps), {}

        env_state, obs, traj = rollout(key, parts.env, env_params, state.env_state,
                                       state.obs, behaviour, config.train_frequency)
        traj, reward_state, metrics = apply_reward_transform(reward_transform, state.reward_state,
                                                             traj, transform_key)
        return state.replace(
            buffer=store(state.buffer, traj), env_state=env_state, obs=obs,
            last_episode_return=episode_return_metric(traj.info, state.last_episode_return),
            vector_steps=state.vector_steps + config.train_frequency,
            reward_state=reward_state), metrics

    def draw(key: jax.Array, buffer: ReplayBuffer, model_buffer: ReplayBuffer | None) -> Sample:
        """A batch: ``real_batch`` n-step replay samples, then the rest from the model buffer."""
        if demos is not None:
            return mixed_sample(key, buffer, demos, config.batch_size, config.demo_batch,
                                config.n_step, config.gamma)
        if real_batch == config.batch_size:
            return buffer.sample(key, config.batch_size, config.n_step, config.gamma)
        key, model_key = jax.random.split(key)
        model = model_buffer.sample(model_key, config.batch_size - real_batch, 1, config.gamma)
        if real_batch == 0:
            return model
        real = buffer.sample(key, real_batch, config.n_step, config.gamma)
        return jax.tree.map(lambda r, m: jnp.concatenate([r, m]), real, model)

    def gradient_step(buffers: tuple[ReplayBuffer, ReplayBuffer | None], state: TrainState,
                      keys: jax.Array) -> tuple[TrainState, Metrics]:
        sample = draw(keys[0], *buffers)
        state = state.replace(update_count=state.update_count + 1)
        step_key, target_key = _split_if(keys[1], extensions.target is not None)
        if extensions.target is not None:
            sample = extensions.target(target_key, state, sample)
        return hooks.gradient_step(step_key, state, sample)

    def learn(keys: jax.Array, state: TrainState) -> tuple[TrainState, Metrics]:
        """``updates_per_step`` gradient steps; their metrics averaged."""
        # The buffers are read-only while learning: keeping them out of the scan carry lets XLA
        # read them in place instead of threading (and possibly copying) them through the loop.
        buffers = (state.buffer, state.model_buffer)
        state, metrics = jax.lax.scan(partial(gradient_step, buffers),
                                      state.replace(buffer=None, model_buffer=None), keys)
        return (state.replace(buffer=buffers[0], model_buffer=buffers[1]),
                jax.tree.map(jnp.mean, metrics))

    # Jitted so that the shape query in ``update`` and the scan body share one trace (the trace
    # cache hits on equal shapes; XLA inlines the call).
    @jax.jit
    def iteration(state: TrainState, keys: jax.Array) -> tuple[TrainState, Metrics]:
        collect_key, phase_key = _split_if(keys[0], extensions.phase is not None)
        state, metrics = collect(collect_key, state)
        if extensions.phase is not None:
            state, phase_metrics = extensions.phase(phase_key, state)
            metrics = {**metrics, **phase_metrics}
        state, learn_metrics = learn(keys[1:].reshape(config.updates_per_step, 2), state)
        return state, {**metrics, **learn_metrics}

    def evaluate_policy(key: jax.Array, state: TrainState) -> Metrics:
        """``eval_return`` of the deterministic policy (none with ``eval_episodes = 0``)."""
        if not config.eval_episodes:
            return {}
        return {"eval_return": evaluate(
            key, parts.eval_env, env_params, lambda k, obs: hooks.act(state.params, obs, k, True),
            config.eval_episodes, parts.eval_steps, ONE_OFF_UNROLL)}

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
        metrics.update(evaluate_policy(eval_key, state))
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
