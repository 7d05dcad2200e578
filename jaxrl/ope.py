"""Off-policy evaluation: estimate a target policy's value ``J(π) = E_π[Σ_t γ^t r_t]`` from data
collected by a behaviour policy ``π_b``.

Importance-sampling estimators work on padded episodes ``[E, T]`` (``Episodes``; ``mask`` is 1
on real steps, 0 on padding) with per-step ratios ``ρ_t = π(a_t|s_t) / π_b(a_t|s_t)`` formed in
log space, and need ``π_b > 0`` wherever ``π > 0``:

- ordinary IS     ``V = 1/E Σ_i w_i G_i``, ``w_i = Π_t ρ_it``, ``G_i = Σ_t γ^t r_it`` (unbiased);
- per-decision IS ``V = 1/E Σ_i Σ_t γ^t (Π_{k≤t} ρ_ik) r_it`` (unbiased, lower variance: a
  reward is weighted only by the decisions before it);
- weighted IS     ``V = Σ_i w_i G_i / Σ_i w_i`` (biased, consistent, bounded by the returns).

Fitted Q evaluation (Le, Voloshin & Yue, 2019) regresses ``Q_{k+1}(s, a)`` onto
``r + γ (1 - terminated) E_{a'~π(s')} Q_k(s', a')`` for ``num_iterations`` rounds of gradient
steps (all inside jit) and reports ``mean_{s_0} E_{a~π(s_0)} Q(s_0, a)`` over the dataset's
episode starts. Course notes: offline RL chapter (importance sampling, fitted Q iteration).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import distrax
import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import struct

from jaxrl.datasets import Dataset, Transitions, episode_bounds
from jaxrl.envs import ClipAction
from jaxrl.envs.spaces import Box, Discrete, Space
from jaxrl.models import MLP
from jaxrl.rollout import reset_envs, rollout
from jaxrl.training.optim import flat_adam

__all__ = ["Episodes", "TargetPolicy", "discounted_returns", "episodes", "fitted_q_evaluation",
           "log_ratios", "ordinary_is", "per_decision_is", "report", "rollout_value",
           "target_log_probs", "weighted_is"]

TargetPolicy = Callable[[jax.Array], distrax.Distribution]
"""Batched observations → the target policy's action distribution."""


class Episodes(struct.PyTreeNode):
    """Padded episodes ``[E, T, ...]``: ``mask`` is 1 on real steps and 0 on padding."""

    obs: jax.Array
    action: jax.Array
    reward: jax.Array
    behaviour_log_prob: jax.Array
    mask: jax.Array


def episodes(dataset: Dataset) -> Episodes:
    """Cut a flat env-major dataset into episodes (at ``terminated | truncated``) and pad them to
    the longest one; padded steps have zero reward, log-prob and mask."""
    starts, ends = episode_bounds(dataset.terminated | dataset.truncated)
    lengths = ends - starts + 1
    horizon = int(lengths.max())
    steps = np.arange(horizon)
    mask = steps[None, :] < lengths[:, None]
    index = np.where(mask, starts[:, None] + steps[None, :], 0)

    def pad(array):
        padded = np.asarray(array)[index]
        return jnp.asarray(np.where(mask.reshape(mask.shape + (1,) * (padded.ndim - 2)),
                                    padded, 0))

    return Episodes(obs=pad(dataset.observations), action=pad(dataset.actions),
                    reward=pad(dataset.rewards), behaviour_log_prob=pad(dataset.log_probs),
                    mask=jnp.asarray(mask, jnp.float32))


def log_ratios(target_log_prob: jax.Array, behaviour_log_prob: jax.Array,
               mask: jax.Array) -> jax.Array:
    """``log ρ_t = log π(a_t|s_t) - log π_b(a_t|s_t)`` on real steps, 0 on padding (``ρ = 1``)."""
    return jnp.where(mask > 0, target_log_prob - behaviour_log_prob, 0.0)


def discounted_returns(rewards: jax.Array, mask: jax.Array, gamma: float | jax.Array) -> jax.Array:
    """``G_i = Σ_t γ^t r_it mask_it`` for ``[E, T]`` inputs: ``[E]``."""
    discounts = gamma ** jnp.arange(rewards.shape[-1], dtype=jnp.float32)
    return (rewards * mask * discounts).sum(-1)


def ordinary_is(target_log_prob: jax.Array, behaviour_log_prob: jax.Array, rewards: jax.Array,
                mask: jax.Array, gamma: float | jax.Array) -> jax.Array:
    """``V_OIS = 1/E Σ_i (Π_t ρ_it) G_i`` over ``[E, T]`` episodes."""
    _check_shapes(target_log_prob, behaviour_log_prob, rewards, mask)
    weights = jnp.exp(log_ratios(target_log_prob, behaviour_log_prob, mask).sum(-1))
    return (weights * discounted_returns(rewards, mask, gamma)).mean()


def per_decision_is(target_log_prob: jax.Array, behaviour_log_prob: jax.Array,
                    rewards: jax.Array, mask: jax.Array, gamma: float | jax.Array) -> jax.Array:
    """``V_PDIS = 1/E Σ_i Σ_t γ^t (Π_{k≤t} ρ_ik) r_it`` over ``[E, T]`` episodes."""
    _check_shapes(target_log_prob, behaviour_log_prob, rewards, mask)
    weights = jnp.exp(jnp.cumsum(log_ratios(target_log_prob, behaviour_log_prob, mask), -1))
    discounts = gamma ** jnp.arange(rewards.shape[-1], dtype=jnp.float32)
    return (weights * discounts * rewards * mask).sum(-1).mean()


def weighted_is(target_log_prob: jax.Array, behaviour_log_prob: jax.Array, rewards: jax.Array,
                mask: jax.Array, gamma: float | jax.Array) -> jax.Array:
    """``V_WIS = Σ_i w_i G_i / Σ_i w_i``, ``w_i = Π_t ρ_it`` (0 when every weight is 0).

    Computed as ``Σ_i softmax(log w)_i G_i``, so long episodes whose weights overflow
    ``exp`` still give a finite estimate.
    """
    _check_shapes(target_log_prob, behaviour_log_prob, rewards, mask)
    log_weights = log_ratios(target_log_prob, behaviour_log_prob, mask).sum(-1)
    any_weight = jnp.isfinite(log_weights.max())
    normalized = jax.nn.softmax(jnp.where(any_weight, log_weights, 0.0))
    return jnp.where(any_weight, (normalized * discounted_returns(rewards, mask, gamma)).sum(),
                     0.0)


def _check_shapes(*arrays: jax.Array) -> None:
    """Every estimator input is one ``[E, T]`` array."""
    shapes = {tuple(a.shape) for a in arrays}
    if len(shapes) != 1 or len(next(iter(shapes))) != 2:
        raise ValueError(f"importance-sampling inputs must share one [E, T] shape, got {shapes}")


class _QNetwork(nn.Module):
    """``Q(s, ·) [n]`` for discrete actions, ``Q(s, a)`` (MLP over ``[s, a]``) for continuous."""

    hidden_sizes: tuple[int, ...]
    num_actions: int | None

    @nn.compact
    def __call__(self, obs: jax.Array, action: jax.Array | None = None) -> jax.Array:
        if self.num_actions is not None:
            return nn.Dense(self.num_actions)(MLP(self.hidden_sizes, "relu")(obs))
        features = MLP(self.hidden_sizes, "relu")(jnp.concatenate([obs, action], -1))
        return nn.Dense(1)(features).squeeze(-1)


def fitted_q_evaluation(key: jax.Array, data: Transitions, target: TargetPolicy,
                        initial_obs: jax.Array, action_space: Space, gamma: float, *,
                        num_iterations: int = 50, steps_per_iteration: int = 200,
                        batch_size: int = 256, learning_rate: float = 1e-3,
                        hidden_sizes: tuple[int, ...] = (64, 64),
                        action_samples: int = 8) -> jax.Array:
    """FQE estimate of ``J(π)`` (module docstring), trained in one jit-compiled call.

    Discrete actions use the exact expectation ``Σ_a π(a|s) Q(s, a)``; continuous ones average
    ``action_samples`` samples of ``π(s)``, clipped to the bounds. Truncated transitions
    bootstrap from ``next_obs``; terminated ones do not.
    """
    discrete = isinstance(action_space, Discrete)
    network = _QNetwork(tuple(hidden_sizes), action_space.n if discrete else None)
    optimizer = flat_adam(learning_rate)

    def expected_q(params, obs, key):
        dist = target(obs)
        if discrete:
            return (dist.probs * network.apply(params, obs)).sum(-1)
        actions = dist.sample(seed=key, sample_shape=(action_samples,))
        actions = jnp.clip(actions, action_space.low, action_space.high)
        q = jax.vmap(lambda a: network.apply(params, obs, a))(actions)
        return q.mean(0)

    def q_taken(params, obs, action):
        if discrete:
            return jnp.take_along_axis(network.apply(params, obs), action[:, None], -1)[:, 0]
        return network.apply(params, obs, action)

    def train(key):
        init_key, key = jax.random.split(key)
        if discrete:
            params = network.init(init_key, data.obs[:1])
        else:
            params = network.init(init_key, data.obs[:1], data.action[:1])

        def iteration(carry, iteration_key):
            params, opt_state = carry
            frozen = params

            def gradient_step(carry, step_key):
                params, opt_state = carry
                index_key, sample_key = jax.random.split(step_key)
                index = jax.random.randint(index_key, (batch_size,), 0, data.size)
                batch = jax.tree.map(lambda x: x[index], data)
                bootstrap = expected_q(frozen, batch.next_obs, sample_key)
                targets = batch.reward + gamma * (1.0 - batch.terminated) * bootstrap

                def loss_fn(params):
                    return jnp.square(q_taken(params, batch.obs, batch.action) - targets).mean()

                loss, grads = jax.value_and_grad(loss_fn)(params)
                updates, opt_state = optimizer.update(grads, opt_state, params)
                return (optax.apply_updates(params, updates), opt_state), loss

            return jax.lax.scan(gradient_step, (params, opt_state),
                                jax.random.split(iteration_key, steps_per_iteration))

        key, iterations_key = jax.random.split(key)
        (params, _), _ = jax.lax.scan(iteration, (params, optimizer.init(params)),
                                      jax.random.split(iterations_key, num_iterations))
        return expected_q(params, initial_obs, key).mean()

    return jax.jit(train)(key)


def rollout_value(key: jax.Array, env: Any, env_params: Any, target: TargetPolicy,
                  gamma: float | jax.Array, num_envs: int, num_steps: int) -> jax.Array:
    """True value by rollouts: mean discounted return ``Σ_t γ^t r_t`` of the first episode of each
    of ``num_envs`` envs run for ``num_steps`` steps (envs that finish none count what they have).
    Continuous actions are clipped to the bounds."""
    if isinstance(env.action_space(env_params), Box):
        env = ClipAction(env)

    def policy(key, obs):
        return target(obs).sample(seed=key), {}

    reset_key, run_key = jax.random.split(key)
    obs, env_state = reset_envs(reset_key, env, env_params, num_envs)
    _, _, traj = rollout(run_key, env, env_params, env_state, obs, policy, num_steps)
    done = traj.done.astype(jnp.int32)
    before_end = (jnp.cumsum(done, 0) - done) == 0  # steps up to and including the first end
    discounts = gamma ** jnp.arange(num_steps, dtype=jnp.float32)[:, None]
    return (traj.reward * before_end * discounts).sum(0).mean()


def target_log_probs(target: TargetPolicy, data: Episodes) -> jax.Array:
    """``log π(a_t|s_t)`` of the target on every step of padded episodes: ``[E, T]``."""
    num, horizon = data.mask.shape
    obs = data.obs.reshape((num * horizon, *data.obs.shape[2:]))
    actions = data.action.reshape((num * horizon, *data.action.shape[2:]))
    return target(obs).log_prob(actions).reshape((num, horizon))


def report(key: jax.Array, dataset: Dataset, env: Any, env_params: Any, target: TargetPolicy,
           gamma: float, rollout_envs: int = 64, **fqe_options: Any) -> dict[str, float]:
    """Every estimator of ``J(π)`` from ``dataset`` beside the true value by rollouts:
    ``{"ordinary_is", "per_decision_is", "weighted_is", "fqe", "true_value", "behaviour_value"}``
    (``behaviour_value``: the dataset's own mean discounted episode return). The true value uses
    ``rollout_envs`` episodes of at most ``max_steps_in_episode`` steps; the dataset's episodes
    include segments cut by the end of collection, which the IS estimators treat as episodes."""
    if not 0 <= gamma <= 1:
        raise ValueError(f"--gamma must be in [0, 1], got {gamma}")
    data = episodes(dataset)
    target_log_prob = jax.jit(target_log_probs, static_argnums=0)(target, data)
    inputs = (target_log_prob, data.behaviour_log_prob, data.reward, data.mask, gamma)
    fqe_key, rollout_key = jax.random.split(key)
    window = int(getattr(env_params, "max_steps_in_episode", 1000))
    transitions = dataset.transitions()
    return {
        "ordinary_is": float(ordinary_is(*inputs)),
        "per_decision_is": float(per_decision_is(*inputs)),
        "weighted_is": float(weighted_is(*inputs)),
        "fqe": float(fitted_q_evaluation(fqe_key, transitions, target, data.obs[:, 0],
                                         env.action_space(env_params), gamma, **fqe_options)),
        "true_value": float(jax.jit(lambda k: rollout_value(
            k, env, env_params, target, gamma, rollout_envs, window))(rollout_key)),
        "behaviour_value": float(discounted_returns(data.reward, data.mask, gamma).mean()),
    }
