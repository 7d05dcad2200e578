"""What every on-policy agent shares: env wrapping, the network, rollout state, batch collection.

``collect`` runs the shared rollout scan with the current policy, normalises observations and
(optionally) rewards with batch-level statistics, evaluates ``V(final_obs)`` for bootstrapping,
and returns a time-major ``Batch`` ready for GAE / returns. Agents (PPO, A2C, REINFORCE, NPG,
TRPO) differ only in what they do with the batch. Their ``Config`` must provide ``num_envs``,
``num_steps``, ``total_timesteps``, ``gamma``, ``normalize_obs``, ``normalize_reward``,
``hidden_sizes`` and ``activation``.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any, NamedTuple

import flax.linen as nn
import jax
import jax.numpy as jnp
import optax
from flax import struct

from jaxrl import losses
from jaxrl.envs import ClipAction, EpisodeStatistics, RunningMeanStd, discounted_return_trace
from jaxrl.envs.spaces import Box, Discrete, Space
from jaxrl.models import make_actor_critic
from jaxrl.rollout import (
    bootstrap_values,
    episode_return_metric,
    reset_envs,
    rollout,
    shuffled_minibatches,
)
from jaxrl.training.agent import Agent, Metrics, as_typed_key
from jaxrl.training.optim import grad_norm

__all__ = ["ACTOR_MODULES", "Batch", "OnPolicySetup", "RolloutState", "TrainState",
           "actor_critic_loss", "collect", "gradient_epochs", "init_rollout", "make_act",
           "make_gradient_agent", "make_optimizer", "merge_actor_critic", "setup",
           "split_actor_critic", "validate_rollout"]


class RolloutState(struct.PyTreeNode):
    """Env batch plus the normalisation statistics and the running episode-return metric."""

    env_state: Any
    obs: jax.Array
    obs_stats: RunningMeanStd
    return_stats: RunningMeanStd
    return_trace: jax.Array
    last_episode_return: jax.Array


class Batch(struct.PyTreeNode):
    """One rollout, time-major ``[num_steps, num_envs, ...]``.

    ``obs`` is normalised as the policy saw it; ``reward`` is scaled when reward normalisation
    is on; ``next_value`` is ``V(final_obs)``, the bootstrap value of each step
    (``rollout.bootstrap_values``; where terminated, a value the zero discount ignores).
    """

    obs: jax.Array
    action: jax.Array
    log_prob: jax.Array
    value: jax.Array
    next_value: jax.Array
    reward: jax.Array
    terminated: jax.Array
    truncated: jax.Array

    @property
    def done(self) -> jax.Array:
        return self.terminated | self.truncated

    def discounts(self, gamma: float | jax.Array) -> jax.Array:
        """``γ (1 - terminated)``: truncation keeps the discount (and bootstraps)."""
        return gamma * (1.0 - self.terminated.astype(jnp.float32))


class OnPolicySetup(NamedTuple):
    env: Any
    network: nn.Module
    observation_space: Space
    action_space: Space


def validate_rollout(config: Any, *positive: str) -> None:
    """Static checks shared by on-policy configs; ``ValueError`` saying what to change.

    ``num_envs``, ``num_steps`` and every field named in ``positive`` must be >= 1; one rollout
    must fit in ``total_timesteps``; a ``num_minibatches`` field must divide the rollout.
    """
    for name in ("num_envs", "num_steps", *positive):
        if getattr(config, name) < 1:
            raise ValueError(f"{name} must be >= 1, got {getattr(config, name)}")
    batch_size = config.num_envs * config.num_steps
    if config.total_timesteps < batch_size:
        raise ValueError(
            f"total_timesteps = {config.total_timesteps} is smaller than one rollout "
            f"(num_envs * num_steps = {batch_size}); raise total_timesteps")
    num_minibatches = getattr(config, "num_minibatches", 1)
    if num_minibatches < 1:
        raise ValueError(f"num_minibatches must be >= 1, got {num_minibatches}")
    if batch_size % num_minibatches:
        raise ValueError(
            f"num_envs * num_steps = {config.num_envs} * {config.num_steps} = {batch_size} "
            f"is not divisible by num_minibatches = {num_minibatches}; change one of them")


def setup(config: Any, env: Any, env_params: Any, algo: str = "this agent") -> OnPolicySetup:
    """Wrap ``env`` (action clipping for Box, episode statistics) and build the actor-critic."""
    action_space = env.action_space(env_params)
    observation_space = env.observation_space(env_params)
    if not isinstance(action_space, Discrete | Box):
        raise TypeError(f"{algo} supports Discrete and Box action spaces, got {action_space}")
    if isinstance(action_space, Box):
        env = ClipAction(env)
    env = EpisodeStatistics(env)
    network = make_actor_critic(observation_space, action_space, config.hidden_sizes,
                                config.activation)
    return OnPolicySetup(env, network, observation_space, action_space)


def _max_truncations(env: Any, env_params: Any, num_steps: int) -> int | None:
    bound = getattr(env, "max_truncations", None)
    return None if bound is None else bound(env_params, num_steps)


def _normalize(config: Any, stats: RunningMeanStd, obs: jax.Array) -> jax.Array:
    return stats.normalize(obs) if config.normalize_obs else obs


def init_rollout(key: jax.Array, config: Any, parts: OnPolicySetup,
                 env_params: Any) -> RolloutState:
    """Reset ``num_envs`` envs; fresh statistics; the return metric is NaN until an episode ends."""
    obs, env_state = reset_envs(key, parts.env, env_params, config.num_envs)
    return RolloutState(
        env_state=env_state, obs=obs,
        obs_stats=RunningMeanStd.create(parts.observation_space.shape),
        return_stats=RunningMeanStd.create(),
        return_trace=jnp.zeros((config.num_envs,), jnp.float32),
        last_episode_return=jnp.full((), jnp.nan, jnp.float32))


def collect(key: jax.Array, state: RolloutState, config: Any, parts: OnPolicySetup,
            env_params: Any, params: Any) -> tuple[RolloutState, Batch]:
    """Roll out the current policy for ``num_steps``; see the module docstring."""
    network = parts.network

    def policy(key, obs):
        dist, value = network.apply(params, _normalize(config, state.obs_stats, obs))
        action, log_prob = dist.sample_and_log_prob(seed=key)
        return action, {"log_prob": log_prob, "value": value}

    env_state, obs, traj = rollout(key, parts.env, env_params, state.env_state, state.obs,
                                   policy, config.num_steps)
    next_value = bootstrap_values(
        lambda obs: network.apply(params, _normalize(config, state.obs_stats, obs),
                                  method="value"),
        traj, traj.extras["value"], _max_truncations(parts.env, env_params, config.num_steps))
    rewards, return_trace, return_stats = traj.reward, state.return_trace, state.return_stats
    if config.normalize_reward:
        trace, return_trace = discounted_return_trace(rewards, traj.done, config.gamma,
                                                      return_trace)
        return_stats = return_stats.update(trace)
        rewards = return_stats.scale(rewards)
    batch = Batch(obs=_normalize(config, state.obs_stats, traj.obs), action=traj.action,
                  log_prob=traj.extras["log_prob"], value=traj.extras["value"],
                  next_value=next_value, reward=rewards, terminated=traj.terminated,
                  truncated=traj.truncated)
    obs_stats = state.obs_stats.update(traj.obs) if config.normalize_obs else state.obs_stats
    new_state = RolloutState(
        env_state=env_state, obs=obs, obs_stats=obs_stats, return_stats=return_stats,
        return_trace=return_trace,
        last_episode_return=episode_return_metric(traj.info, state.last_episode_return))
    return new_state, batch


def make_act(config: Any, parts: OnPolicySetup):
    """``act(params, rollout_state, obs, key, deterministic) -> action`` for evaluation."""

    def act(params: Any, state: RolloutState, obs: jax.Array, key: jax.Array,
            deterministic: bool = False) -> jax.Array:
        dist = parts.network.apply(params, _normalize(config, state.obs_stats, obs),
                                   method="policy")
        action = dist.mode() if deterministic else dist.sample(seed=key)
        if isinstance(parts.action_space, Box):
            action = jnp.clip(action, parts.action_space.low, parts.action_space.high)
        return action

    return act


ACTOR_MODULES = ("actor_torso", "policy_head")
"""The ``ActorCritic`` submodules that ``method="policy"`` uses; the rest belong to the critic."""


def split_actor_critic(params: Any) -> tuple[Any, Any]:
    """Split ``ActorCritic`` variables into ``(actor, critic)``, each a ``{"params": ...}`` dict.

    For agents that optimise the policy and the value function separately (NPG, TRPO):
    ``network.apply(actor, obs, method="policy")`` and ``network.apply(critic, obs,
    method="value")`` work on their own; ``merge_actor_critic`` restores the whole tree.
    """
    modules = params["params"]
    actor = {name: tree for name, tree in modules.items() if name in ACTOR_MODULES}
    critic = {name: tree for name, tree in modules.items() if name not in ACTOR_MODULES}
    return {"params": actor}, {"params": critic}


def merge_actor_critic(actor: Any, critic: Any) -> Any:
    """Inverse of ``split_actor_critic``: the variables ``network.apply(params, obs)`` takes."""
    return {"params": {**actor["params"], **critic["params"]}}


# The pieces below are shared by the agents that improve the policy by plain gradient steps on a
# loss (A2C, REINFORCE; PPO's epoch loop is ``gradient_epochs``). NPG / TRPO step differently.


class TrainState(struct.PyTreeNode):
    """Everything a gradient-based on-policy run needs to continue: checkpoint it and resume."""

    params: Any
    opt_state: Any
    rollout: RolloutState
    key: jax.Array
    update_count: jax.Array


Samples = dict[str, jax.Array]
LossFn = Callable[[Any, Samples], tuple[jax.Array, Metrics]]
Estimator = Callable[[Batch], tuple[jax.Array, jax.Array]]


def make_optimizer(config: Any, num_updates: int, steps_per_update: int,
                   kind: str = "adam") -> optax.GradientTransformation:
    """Global-norm clipping at ``max_grad_norm``, then Adam (eps 1e-5) or RMSprop (PyTorch / SB3
    form: decay 0.99, eps 1e-5 outside the square root) at ``learning_rate``.

    With ``config.anneal_lr`` the rate decays linearly to 0 over ``num_updates`` updates of
    ``steps_per_update`` gradient steps: ``lr_k = lr · (1 - ⌊k / steps_per_update⌋ / num_updates)``.
    Numeric fields are only read inside the schedule, so they may be traced (a sweep).

    The optimizer works on the parameters raveled into one vector (``optax.flatten``): the same
    element-wise update, but a handful of kernels instead of several per parameter leaf, which
    cut PPO's XLA compile by ≈ 10-30 % on CPU at no cost in run time (``benchmarks/RESULTS.md``).
    """

    def learning_rate(count: jax.Array) -> jax.Array:
        if not config.anneal_lr:
            return jnp.asarray(config.learning_rate, jnp.float32)
        return config.learning_rate * (1.0 - (count // steps_per_update) / num_updates)

    if kind == "adam":
        scale = optax.adam(learning_rate, eps=1e-5)
    elif kind == "rmsprop":
        scale = optax.rmsprop(learning_rate, decay=0.99, eps=1e-5, eps_in_sqrt=False)
    else:
        raise ValueError(f"optimizer must be 'adam' or 'rmsprop', got {kind!r}")
    return optax.flatten(optax.chain(optax.clip_by_global_norm(config.max_grad_norm), scale))


def actor_critic_loss(network: nn.Module, params: Any, samples: Samples,
                      vf_coef: float | jax.Array,
                      ent_coef: float | jax.Array) -> tuple[jax.Array, Metrics]:
    """``L = -E[log π(a|s) · A] + c_v · ½ E[(V(s) - G)²] - c_e · E[H(π(·|s))]``.

    The vanilla policy-gradient surrogate with a learned critic (REINFORCE with baseline, A2C);
    ``samples["advantages"]`` (A) and ``samples["targets"]`` (G) are constants.
    """
    dist, values = network.apply(params, samples["obs"])
    log_probs = dist.log_prob(samples["action"])
    policy_loss = losses.policy_gradient_loss(log_probs, samples["advantages"])
    value_loss = losses.value_loss(values, samples["targets"])
    entropy = dist.entropy().mean()
    total = policy_loss + vf_coef * value_loss - ent_coef * entropy
    return total, {"loss": total, "policy_loss": policy_loss, "value_loss": value_loss,
                   "entropy": entropy}


def gradient_epochs(key: jax.Array, params: Any, opt_state: Any, samples: Samples,
                    loss_fn: LossFn, optimizer: optax.GradientTransformation,
                    update_epochs: int, num_minibatches: int) -> tuple[Any, Any, Metrics]:
    """``update_epochs`` passes over ``samples`` (leaves ``[T, N, ...]``), each split into
    ``num_minibatches`` shuffled minibatches (unshuffled when 1), one optimizer step per minibatch.

    Returns ``(params, opt_state, stats)``: ``loss_fn``'s statistics and the pre-clipping
    ``grad_norm``, averaged over all steps.
    """

    # Jitted so that the shape query below and the scan body share one trace of the gradient
    # (the trace cache hits on equal shapes; XLA inlines the call).
    @jax.jit
    def step_stats(params, minibatch):
        grads, stats = jax.grad(loss_fn, has_aux=True)(params, minibatch)
        return grads, {**stats, "grad_norm": grad_norm(grads)}

    def gradient_step(carry, minibatch):
        params, opt_state, totals = carry
        grads, stats = step_stats(params, minibatch)
        updates, opt_state = optimizer.update(grads, opt_state, params)
        # Running sums in the carry rather than per-step stacked outputs: one fused add instead
        # of a buffer write per statistic and step (a kernel each on a GPU).
        totals = jax.tree.map(jnp.add, totals, stats)
        return (optax.apply_updates(params, updates), opt_state, totals), None

    def epoch(carry, epoch_key):
        if num_minibatches == 1:
            minibatches = jax.tree.map(lambda x: x.reshape((1, -1, *x.shape[2:])), samples)
        else:
            minibatches = shuffled_minibatches(epoch_key, samples, num_minibatches)
        return jax.lax.scan(gradient_step, carry, minibatches)[0], None

    minibatch_size = math.prod(jax.tree.leaves(samples)[0].shape[:2]) // num_minibatches
    minibatch = jax.tree.map(
        lambda x: jax.ShapeDtypeStruct((minibatch_size, *x.shape[2:]), x.dtype), samples)
    zeros = jax.tree.map(lambda s: jnp.zeros(s.shape, s.dtype),
                         jax.eval_shape(step_stats, params, minibatch)[1])
    (params, opt_state, totals), _ = jax.lax.scan(epoch, (params, opt_state, zeros),
                                                  jax.random.split(key, update_epochs))
    steps = update_epochs * num_minibatches
    return params, opt_state, jax.tree.map(lambda total: total / steps, totals)


def make_gradient_agent(config: Any, parts: OnPolicySetup, env_params: Any,
                        optimizer: optax.GradientTransformation, loss_fn: LossFn,
                        estimate: Estimator, update_epochs: int = 1,
                        num_minibatches: int = 1,
                        update_metrics: Callable[[Any, Samples], Metrics] | None = None
                        ) -> Agent:
    """The agent of every "collect, estimate, descend" method.

    ``update``: collect ``num_steps`` with the current policy; ``advantages, targets =
    estimate(batch)``; ``gradient_epochs`` on ``loss_fn(params, samples)``, where ``samples``
    holds ``obs, action, log_prob, value, advantages, targets`` (``[num_steps, num_envs, ...]``).
    Metrics: the averaged loss statistics, ``update_metrics(new_params, samples)`` where given
    (statistics of the whole update, e.g. PPO's ``approx_kl``), ``episode_return`` and ``step``
    (env steps so far).
    """
    batch_size = config.num_envs * config.num_steps

    def init(key: jax.Array) -> TrainState:
        key, init_key, reset_key = jax.random.split(as_typed_key(key), 3)
        rollout_state = init_rollout(reset_key, config, parts, env_params)
        params = parts.network.init(init_key, rollout_state.obs[:1])
        return TrainState(params=params, opt_state=optimizer.init(params), rollout=rollout_state,
                          key=key, update_count=jnp.zeros((), jnp.int32))

    def update(state: TrainState) -> tuple[TrainState, Metrics]:
        key, rollout_key, epochs_key = jax.random.split(state.key, 3)
        rollout_state, batch = collect(rollout_key, state.rollout, config, parts, env_params,
                                       state.params)
        advantages, targets = estimate(batch)
        samples = {"obs": batch.obs, "action": batch.action, "log_prob": batch.log_prob,
                   "value": batch.value, "advantages": advantages, "targets": targets}
        params, opt_state, metrics = gradient_epochs(epochs_key, state.params, state.opt_state,
                                                     samples, loss_fn, optimizer, update_epochs,
                                                     num_minibatches)
        if update_metrics is not None:
            metrics = {**metrics, **update_metrics(params, samples)}
        update_count = state.update_count + 1
        metrics["episode_return"] = rollout_state.last_episode_return
        metrics["step"] = update_count * batch_size
        return TrainState(params=params, opt_state=opt_state, rollout=rollout_state, key=key,
                          update_count=update_count), metrics

    act_with = make_act(config, parts)

    def act(state: TrainState, obs: jax.Array, key: jax.Array,
            deterministic: bool = False) -> jax.Array:
        return act_with(state.params, state.rollout, obs, key, deterministic)

    return Agent(init=init, update=update, act=act,
                 num_updates=config.total_timesteps // batch_size, steps_per_update=batch_size)
