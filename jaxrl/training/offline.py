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
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, ClassVar, NamedTuple

import jax
import jax.numpy as jnp
from flax import struct

from jaxrl import losses
from jaxrl.backend import ONE_OFF_UNROLL
from jaxrl.datasets import Dataset, Transitions, validate
from jaxrl.envs import ClipAction
from jaxrl.envs.spaces import Box, Discrete, Space
from jaxrl.evaluation import evaluate
from jaxrl.training.agent import Agent, Metrics, as_typed_key
from jaxrl.training.config import ACTIVATIONS, BaseConfig, check_log_frequency, hyper, static
from jaxrl.training.optim import apply_gradients

__all__ = ["AdvantageWeightedConfig", "CriticLearner", "ImitationConfig", "ObsNormalizer",
           "OfflineConfig", "OfflineCriticConfig", "OfflineState", "Prepared", "TargetLearner",
           "actor_policy", "critic_regression", "device_dataset", "eval_window",
           "make_actor_agent", "make_offline_agent", "prepare", "sample", "step_network"]


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


class ObsNormalizer(struct.PyTreeNode):
    """``(obs - mean) / std`` with the dataset's statistics (identity when disabled)."""

    mean: jax.Array
    std: jax.Array

    @classmethod
    def from_data(cls, data: Transitions, enabled: bool) -> ObsNormalizer:
        """Per-feature mean and std (floored at 1e-3) of the dataset's observations."""
        if not enabled:
            shape = data.obs.shape[1:]
            return cls(jnp.zeros(shape, jnp.float32), jnp.ones(shape, jnp.float32))
        return cls(data.obs.mean(0), jnp.maximum(data.obs.std(0), 1e-3))

    def __call__(self, obs: jax.Array) -> jax.Array:
        return (obs - self.mean) / self.std


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
