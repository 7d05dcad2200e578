"""The offline family loop: dataset → learn → evaluate (BC, CQL, IQL, AWAC, TD3+BC).

An offline agent never steps the environment to learn; it samples minibatches from a fixed
dataset. ``make_offline_agent`` turns three pure pieces into the standard ``Agent``:

- ``init_learner(key) -> learner``: networks, optimiser states, target networks (any pytree);
- ``train_step(learner, batch, key) -> (learner, metrics)``: one gradient step on a minibatch;
- ``policy(learner, obs, key, deterministic) -> action``: the policy that is evaluated.

One ``update`` is ``log_frequency`` gradient steps on minibatches from ``sample_batch`` (e.g.
``batch_size`` transitions uniformly with replacement) followed by an evaluation rollout with
``jaxrl.evaluation.evaluate`` (``eval_episodes`` fresh envs, the deterministic policy, one
episode each). Metrics: the train metrics averaged over the update, ``eval_return`` (the mean
evaluation return) and ``step`` (gradient steps so far). The dataset is closed over as a
constant: it is shared by every seed of a vmapped run, not copied into each train state.

The Q-learning agents (CQL, IQL, AWAC, TD3+BC) also share ``OfflineCriticConfig`` (γ, τ), the
dataset prepared once on the device (``prepare``: observations standardised with the dataset's
statistics, continuous actions mapped affinely from the env's bounds to ``[-1, 1]``, where tanh
actors live) and, for IQL and AWAC, the learner ``CriticLearner``. Policies map their
``[-1, 1]`` actions back to the env's bounds, so ``act`` returns env actions like every agent.

IQL and AWAC with ``init_from`` continue an offline run online (``make_online_agent``: its
networks copied, its dataset kept as the replay buffer's never-overwritten partition, the same
``train_step`` on mixed batches; course notes §16, offline → online finetuning).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, ClassVar, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from flax import struct

from jaxrl import losses
from jaxrl.backend import ONE_OFF_UNROLL
from jaxrl.datasets import Dataset, Transitions, validate
from jaxrl.envs import ClipAction
from jaxrl.envs.spaces import Box, Discrete, Space
from jaxrl.evaluation import evaluate
from jaxrl.replay import demo_buffer
from jaxrl.training import off_policy
from jaxrl.training.agent import Agent, Metrics, as_typed_key
from jaxrl.training.config import ACTIVATIONS, BaseConfig, check_log_frequency, hyper, static
from jaxrl.training.normalization import ObsNormalizer
from jaxrl.training.optim import apply_gradients

__all__ = ["AdvantageWeightedConfig", "CriticLearner", "ImitationConfig", "ObsNormalizer",
           "OfflineConfig", "OfflineCriticConfig", "OfflineState", "OnlineLoopConfig", "Prepared",
           "TargetLearner", "actor_policy", "critic_regression", "device_dataset", "eval_window",
           "load_offline_learner", "make_actor_agent", "make_offline_agent", "make_online_agent",
           "online_loop_config", "prepare", "sample", "step_network"]


class ImitationConfig(BaseConfig):
    """Fields of every agent that learns on minibatches of recorded (or expert-labelled)
    transitions and is evaluated on fresh episodes: the offline agents and DAgger."""

    LEGACY_NAMES: ClassVar[dict[str, str]] = {"eval_envs": "eval_episodes"}

    batch_size: int = static(256, ">= 1")
    """transitions per gradient step"""
    eval_episodes: int = static(8, ">= 1")
    """evaluation episodes per logged row (one per env)"""
    hidden_sizes: tuple[int, ...] = static((256, 256))
    """hidden layer widths of every network"""
    activation: str = static("relu", ACTIVATIONS)
    """activation of every hidden layer"""


class OfflineConfig(ImitationConfig):
    """Fields every offline agent shares (CORL's names where they exist)."""

    LEGACY_NAMES: ClassVar[dict[str, str]] = {
        "total_steps": "total_gradient_steps", "eval_every": "log_frequency",
        "eval_envs": "eval_episodes"}

    total_gradient_steps: int = static(20_000, ">= 1")
    """gradient steps of the whole run"""
    log_frequency: int = static(1_000, ">= 1")
    """gradient steps per logged row; the policy is evaluated at each"""
    normalize_obs: bool = static(True)
    """standardise observations with the dataset's mean and std"""

    def validate(self) -> None:
        """``log_frequency <= total_gradient_steps`` (one logged row at least)."""
        super().validate()
        check_log_frequency(self)


class OfflineCriticConfig(OfflineConfig):
    """``OfflineConfig`` plus what the offline Q-learning agents (CQL, IQL, AWAC, TD3+BC) share."""

    gamma: float = hyper(0.99, "[0, 1]")
    """discount factor"""
    tau: float = hyper(0.005, "[0, 1]")
    """target-network Polyak rate θ' ← τθ + (1-τ)θ'"""


class AdvantageWeightedConfig(OfflineCriticConfig):
    """``OfflineCriticConfig`` plus the policy extraction AWAC and IQL share: weighted maximum
    likelihood with weights ``min(exp(A / λ), max_weight)``."""

    learning_rate: float = hyper(3e-4, "> 0")
    """Adam step size of every network"""
    temperature: float = hyper(1.0, "> 0")
    """λ of the advantage weights exp(A / λ)"""
    max_weight: float = hyper(100.0, "> 0")
    """clip of the advantage weights"""
    init_from: str = static("")
    """an offline run of this algorithm (same env, dataset, networks) to continue ONLINE from:
    its networks copied, its dataset kept in the replay buffer, total_timesteps env steps"""
    total_timesteps: int = static(10_000, ">= 1")
    """env steps of online finetuning (with init_from)"""
    offline_ratio: float = static(0.5, "[0, 1]")
    """share of every online batch drawn from the offline dataset (with init_from)"""
    buffer_size: int = static(100_000, ">= 1")
    """online replay capacity in transitions (with init_from)"""

    def validate(self) -> None:
        """Offline: ``log_frequency <= total_gradient_steps``; online (``init_from``): one
        logging interval of ``log_frequency`` env steps fits in ``total_timesteps``."""
        if not self.init_from:
            super().validate()
            return
        online_loop_config(self).validate()


class OfflineState(struct.PyTreeNode):
    """The whole state of an offline run: the learner's pytree, the key, gradient steps done."""

    learner: Any
    key: jax.Array
    step: jax.Array


class CriticLearner(struct.PyTreeNode):
    """Networks (a dict by name), a Polyak-averaged target critic and the optimiser states:
    the learner of IQL and AWAC."""

    params: Any
    target_critic: Any
    opt_state: Any


class TargetLearner(struct.PyTreeNode):
    """Networks and their Polyak-averaged targets (dicts by name), the optimiser states and,
    where updates are delayed (TD3+BC), the count of updates (``None`` otherwise: no leaf)."""

    params: Any
    target_params: Any
    opt_state: Any
    update_count: jax.Array | None = None


def device_dataset(dataset: Dataset | None, env: Any, env_params: Any,
                   algo: str) -> Transitions:
    """Check ``dataset`` against the env's spaces and move it to the device."""
    if dataset is None:
        raise ValueError(f"{algo} learns from a dataset: pass --dataset FILE.npz (make one with "
                         "`jaxrl dataset --env ENV --policy expert --steps N --out FILE.npz`)")
    validate(dataset, env, env_params)
    return dataset.transitions()


def sample(key: jax.Array, data: Transitions, batch_size: int) -> Transitions:
    """``batch_size`` transitions drawn uniformly with replacement."""
    indices = jax.random.randint(key, (batch_size,), 0, data.size)
    return jax.tree.map(lambda x: x[indices], data)


def eval_window(env_params: Any) -> int:
    """Evaluation rollout length: one full episode (``max_steps_in_episode + 1``, else 1001)."""
    return int(getattr(env_params, "max_steps_in_episode", 1000)) + 1


class Prepared(NamedTuple):
    """The dataset on device (normalised observations; continuous actions in ``[-1, 1]``), the
    observation normaliser, the action space the networks see and ``to_env`` for their actions."""

    data: Transitions
    normalize: ObsNormalizer
    action_space: Space
    to_env: Callable[[jax.Array], jax.Array]

    def sampler(self, batch_size: int) -> Callable[[jax.Array], Transitions]:
        """``sample_batch(key)``: ``batch_size`` transitions uniformly with replacement."""
        return lambda key: sample(key, self.data, batch_size)


def prepare(config: OfflineConfig, env: Any, env_params: Any, dataset: Dataset | None, algo: str,
            discrete_ok: bool = False) -> Prepared:
    """Check the action space (``TypeError`` naming what fits) and prepare the dataset once.

    Continuous actions: ``u = clip(2 (a - low) / (high - low) - 1, -1, 1)`` and back
    ``a = low + (u + 1)(high - low) / 2``.
    """
    space = env.action_space(env_params)
    if isinstance(space, Discrete) and not discrete_ok:
        raise TypeError(f"{algo} needs a continuous (Box) action space but the env's is {space}; "
                        "use cql or bc for discrete actions")
    if not isinstance(space, Discrete | Box):
        raise TypeError(f"{algo} supports Box (and for cql Discrete) actions, got {space}")
    if isinstance(space, Box) and not (jnp.all(jnp.isfinite(jnp.asarray(space.low)))
                                       and jnp.all(jnp.isfinite(jnp.asarray(space.high)))):
        raise TypeError(f"{algo} needs finite action bounds, got {space}")
    data = device_dataset(dataset, env, env_params, algo)
    normalize = ObsNormalizer.from_data(data, config.normalize_obs)
    data = data.replace(obs=normalize(data.obs), next_obs=normalize(data.next_obs),
                        reward=data.reward.astype(jnp.float32))
    if isinstance(space, Discrete):
        return Prepared(data, normalize, space, lambda action: action)
    low, high = jnp.asarray(space.low, jnp.float32), jnp.asarray(space.high, jnp.float32)

    def to_env(action: jax.Array) -> jax.Array:
        return low + (jnp.clip(action, -1.0, 1.0) + 1.0) * (high - low) / 2

    unit = jnp.clip(2.0 * (data.action - low) / (high - low) - 1.0, -1.0, 1.0)
    return Prepared(data.replace(action=unit), normalize, Box(-1.0, 1.0, space.shape), to_env)


Policy = Callable[[Any, jax.Array, jax.Array, bool], jax.Array]


def actor_policy(actor: Any, prepared: Prepared) -> Policy:
    """The policy of a learner whose ``params["actor"]`` give a distribution over ``[-1, 1]``
    actions: its mode (deterministic) or a sample, mapped to the env's bounds."""
    def policy(learner: Any, obs: jax.Array, key: jax.Array, deterministic: bool) -> jax.Array:
        distribution = actor.apply(learner.params["actor"], prepared.normalize(obs))
        action = distribution.mode() if deterministic else distribution.sample(seed=key)
        return prepared.to_env(action)

    return policy


def make_actor_agent(config: OfflineConfig, env: Any, env_params: Any, prepared: Prepared,
                     actor: Any, init_learner: Callable[[jax.Array], Any],
                     train_step: Callable[[Any, Any, jax.Array], tuple[Any, Metrics]]) -> Agent:
    """``make_offline_agent`` for a learner with a stochastic ``params["actor"]`` on the
    ``prepared`` dataset: uniform minibatches of ``batch_size``, ``actor_policy`` evaluated."""
    return make_offline_agent(config, env, env_params, init_learner, train_step,
                              actor_policy(actor, prepared), prepared.sampler(config.batch_size))


def step_network(name: str, optimizer: Any, grads: Any, params: dict[str, Any],
                 opt_state: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """``(params, opt_state)`` with network ``name`` moved one optimiser step along ``grads``
    (new dicts; the other networks unchanged)."""
    new_params, new_state = apply_gradients(optimizer, grads, opt_state[name], params[name])
    return {**params, name: new_params}, {**opt_state, name: new_state}


def critic_regression(critic: Any, critic_params: Any, batch: Transitions,
                      next_values: jax.Array, gamma: float | jax.Array
                      ) -> tuple[jax.Array, jax.Array]:
    """``(Σ_i mean_B (Q_i(s, a) - y)², Q [critics, B])`` with
    ``y = r + γ (1 - terminated) next_values``; truncated transitions bootstrap (their
    ``next_obs`` is the final observation)."""
    discount = gamma * (1.0 - batch.terminated.astype(jnp.float32))
    targets = losses.bellman_target(batch.reward, discount, next_values)
    q_values = critic.apply(critic_params, batch.obs, batch.action)
    return ((q_values - targets) ** 2).mean(-1).sum(), q_values


def make_offline_agent(config: OfflineConfig, env: Any, env_params: Any,
                       init_learner: Callable[[jax.Array], Any],
                       train_step: Callable[[Any, Any, jax.Array], tuple[Any, Metrics]],
                       policy: Policy, sample_batch: Callable[[jax.Array], Any]) -> Agent:
    """The ``Agent`` of an offline method (see the module docstring).

    ``num_updates = total_gradient_steps // log_frequency`` (rounded down),
    ``steps_per_update = log_frequency``.
    """
    eval_env = ClipAction(env) if isinstance(env.action_space(env_params), Box) else env
    window = eval_window(env_params)

    def init(key: jax.Array) -> OfflineState:
        key, init_key = jax.random.split(as_typed_key(key))
        return OfflineState(learner=init_learner(init_key), key=key,
                            step=jnp.zeros((), jnp.int32))

    def update(state: OfflineState) -> tuple[OfflineState, Metrics]:
        key, steps_key, eval_key = jax.random.split(state.key, 3)

        def gradient_step(learner, step_key):
            batch_key, train_key = jax.random.split(step_key)
            return train_step(learner, sample_batch(batch_key), train_key)

        learner, metrics = jax.lax.scan(gradient_step, state.learner,
                                        jax.random.split(steps_key, config.log_frequency))
        metrics = jax.tree.map(jnp.mean, metrics)
        metrics["eval_return"] = evaluate(
            eval_key, eval_env, env_params, lambda k, obs: policy(learner, obs, k, True),
            config.eval_episodes, window, ONE_OFF_UNROLL)
        step = state.step + config.log_frequency
        metrics["step"] = step
        return OfflineState(learner=learner, key=key, step=step), metrics

    def act(state: OfflineState, obs: jax.Array, key: jax.Array,
            deterministic: bool = False) -> jax.Array:
        return policy(state.learner, obs, key, deterministic)

    return Agent(init=init, update=update, act=act,
                 num_updates=config.total_gradient_steps // config.log_frequency,
                 steps_per_update=config.log_frequency, step_unit="gradient steps")


# Offline → online finetuning (IQL, AWAC with ``init_from``; issue 33). The offline run's
# networks continue on the replay loop (``training.off_policy``) with its dataset kept as the
# buffer's demonstration partition, so the learner's own ``train_step`` runs unchanged on mixed
# batches of offline rows and fresh env transitions.


class OnlineLoopConfig(off_policy.OffPolicyConfig, off_policy.DemoReplayFields):
    """The replay loop's view of an ``AdvantageWeightedConfig`` with ``init_from``: one env,
    one env step then one gradient step per iteration, 1-step targets, one random warm-up step
    (the loop primes its buffer so), ``offline_ratio`` of every batch from the dataset."""


def online_loop_config(config: AdvantageWeightedConfig) -> OnlineLoopConfig:
    """``OnlineLoopConfig`` from the finetuning fields of ``config``."""
    return OnlineLoopConfig(
        total_timesteps=config.total_timesteps, num_envs=1, buffer_size=config.buffer_size,
        batch_size=config.batch_size, learning_starts=1, log_frequency=config.log_frequency,
        eval_episodes=config.eval_episodes, gamma=config.gamma, demo_ratio=config.offline_ratio)


def load_offline_learner(config: AdvantageWeightedConfig, env: Any, algo: str,
                         dataset: Dataset | None, template: Any) -> tuple[Any, Dataset]:
    """``(learner, dataset)`` of the first seed of the offline run ``config.init_from``: its
    final ``CriticLearner`` and the dataset it learned from. ``ValueError`` (one line naming the
    flag to change) for a run of another algorithm or env, other networks or another dataset;
    ``template`` is this agent's learner (shapes suffice)."""
    from jaxrl import datasets
    from jaxrl.checkpoint import CheckpointError
    from jaxrl.policy import load_policy
    from jaxrl.run_dir import read_run

    run_dir = config.init_from
    flag = f"--init-from {run_dir}"
    try:
        policy = load_policy(run_dir)
        record = read_run(run_dir)
    except (CheckpointError, OSError, ValueError) as error:
        raise ValueError(f"{flag}: {error}") from None
    if policy.algo != algo:
        raise ValueError(f"{flag}: a {policy.algo} run; {algo} continues online from an offline "
                         f"{algo} run")
    here = getattr(env, "env_id", None)
    if here is not None and policy.env_id != here:
        raise ValueError(f"{flag}: that run trained on {policy.env_id!r}, not {here!r}; pass "
                         f"--env {policy.env_id}")
    if getattr(policy.config, "init_from", ""):
        raise ValueError(f"{flag}: an online finetuning run; start from the offline run")
    learner = policy.params.learner
    shapes = jax.tree.map(lambda x: (tuple(x.shape), x.dtype), learner.params)
    wanted = jax.tree.map(lambda x: (tuple(x.shape), x.dtype), template.params)
    ran = policy.config
    if (shapes != wanted or ran.activation != config.activation
            or ran.normalize_obs != config.normalize_obs):
        normalize = "--normalize-obs" if ran.normalize_obs else "--no-normalize-obs"
        raise ValueError(f"{flag}: its networks differ; pass --hidden-sizes "
                         f"{' '.join(map(str, ran.hidden_sizes))} --activation {ran.activation} "
                         f"{normalize}")
    try:
        recorded = datasets.load(record.dataset)
    except (ValueError, TypeError, OSError) as error:
        raise ValueError(f"{flag}: its dataset {record.dataset} cannot be read ({error})") from None
    if dataset is not None and not (
            dataset.observations.shape == recorded.observations.shape
            and np.array_equal(dataset.observations, recorded.observations)
            and np.array_equal(dataset.actions, recorded.actions)):
        raise ValueError(f"--dataset: the run {run_dir} learned from {record.dataset}; pass "
                         f"--dataset {record.dataset} (or none)")
    return jax.tree.map(jnp.asarray, learner), recorded


def make_online_agent(config: AdvantageWeightedConfig, env: Any, env_params: Any,
                      dataset: Dataset | None, algo: str, actor: Any,
                      init_learner: Callable[[jax.Array], Any],
                      train_step: Callable[[Any, Any, jax.Array], tuple[Any, Metrics]]) -> Agent:
    """The offline run ``config.init_from`` continued online (course notes §16, offline →
    online finetuning).

    The run's networks and target critic are copied exactly; optimiser states start afresh.
    Its dataset becomes the replay buffer's demonstration partition (never overwritten, raw
    observations, actions in ``[-1, 1]``); each gradient step draws ``offline_ratio`` of its
    batch from it and the rest from ``total_timesteps`` steps of the stochastic actor, and runs
    the algorithm's own ``train_step`` on the batch (observations normalised with the run's
    dataset statistics, as offline; ``terminated`` is ``discount == 0``, which gives the same
    target ``r + γ (1 - terminated) V(s')`` for every γ). The deterministic policy is evaluated.
    """
    template = jax.eval_shape(init_learner, jax.random.key(0))
    learner, recorded = load_offline_learner(config, env, algo, dataset, template)
    prepared = prepare(config, env, env_params, recorded, algo)
    raw = recorded.transitions()
    demos = demo_buffer(raw.obs, prepared.data.action, raw.reward, raw.terminated,
                        raw.truncated, raw.next_obs)
    loop_config = online_loop_config(config)
    parts = off_policy.setup(env, env_params, algo, Box)

    def distribution(params: Any, obs: jax.Array) -> Any:
        return actor.apply(params["actor"], prepared.normalize(obs))

    def init(key: jax.Array, obs: jax.Array) -> tuple[Any, Any, Any]:
        return learner.params, learner.target_critic, init_learner(key).opt_state

    def explore(key: jax.Array, params: Any, obs: jax.Array, env_steps: jax.Array) -> jax.Array:
        return jnp.clip(distribution(params, obs).sample(seed=key), -1.0, 1.0)

    def gradient_step(key: jax.Array, state: Any, sample: Any) -> tuple[Any, Metrics]:
        zeros = jnp.zeros_like(sample.reward)
        batch = Transitions(obs=prepared.normalize(sample.obs), action=sample.action,
                            reward=sample.reward, next_obs=prepared.normalize(sample.next_obs),
                            terminated=sample.discount == 0, truncated=zeros.astype(bool),
                            log_prob=zeros)
        new, metrics = train_step(CriticLearner(state.params, state.target_params,
                                                state.opt_state), batch, key)
        return state.replace(params=new.params, target_params=new.target_critic,
                             opt_state=new.opt_state), metrics

    def act(params: Any, obs: jax.Array, key: jax.Array, deterministic: bool) -> jax.Array:
        policy = distribution(params, obs)
        return jnp.clip(policy.mode() if deterministic else policy.sample(seed=key), -1.0, 1.0)

    hooks = off_policy.OffPolicyHooks(init=init, explore=explore, gradient_step=gradient_step,
                                      act=act)
    return off_policy.make_off_policy_agent(loop_config, parts, env_params, hooks, demos=demos)
