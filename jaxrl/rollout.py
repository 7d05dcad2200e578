"""Shared on-policy machinery: env-batch reset, the rollout scan, minibatches, episode stats.

Every agent collects experience through ``rollout`` and creates env states through
``reset_envs``, so vectorisation and sharding (``jaxrl.parallel``) of the env axis live in one
place.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
from flax import struct

from jaxrl.backend import env_unroll_limit, scan_unroll
from jaxrl.parallel import constrain_env_axis

__all__ = ["Transition", "bootstrap_values", "env_minibatches", "episode_return_metric",
           "random_permutation", "reset_carry", "reset_envs", "rollout", "rollout_with_carry",
           "shuffled_minibatches"]

Policy = Callable[[jax.Array, jax.Array], tuple[jax.Array, dict[str, jax.Array]]]
CarryPolicy = Callable[[jax.Array, jax.Array, Any, Any],
                       tuple[jax.Array, dict[str, jax.Array], Any]]


class Transition(struct.PyTreeNode):
    """One batched step ``[num_envs, ...]``; a rollout stacks them to ``[num_steps, num_envs]``.

    ``next_obs`` is ``info["final_obs"]``: the observation after the action, before any
    auto-reset, so value targets bootstrap from the true last state of a truncated episode.
    """

    obs: jax.Array
    action: jax.Array
    reward: jax.Array
    terminated: jax.Array
    truncated: jax.Array
    next_obs: jax.Array
    info: dict[str, jax.Array]
    extras: dict[str, jax.Array]

    @property
    def done(self) -> jax.Array:
        """``terminated | truncated``: where an episode ended (cuts traces)."""
        return self.terminated | self.truncated


def reset_envs(key: jax.Array, env: Any, env_params: Any, num_envs: int) -> tuple[jax.Array, Any]:
    """Reset ``num_envs`` independent copies: ``(obs [num_envs, ...], states)``.

    When a single run spans several devices, the env axis is sharded over them here
    (``parallel.constrain_env_axis``) and XLA carries that sharding through the rollout.
    """
    obs, states = jax.vmap(env.reset, in_axes=(0, None))(jax.random.split(key, num_envs),
                                                         env_params)
    return constrain_env_axis((obs, states))


def rollout(key: jax.Array, env: Any, env_params: Any, env_state: Any, obs: jax.Array,
            policy: Policy, num_steps: int,
            unroll: int | None = None) -> tuple[Any, jax.Array, Transition]:
    """Run ``policy`` for ``num_steps`` in the batched env: ``(env_state, obs, transitions)``.

    ``policy(key, obs [num_envs, ...]) -> (actions, extras)``; ``extras`` (log-probs, values, …)
    are stored in ``Transition.extras``. Transitions come back time-major ``[num_steps, num_envs]``.
    On a GPU / TPU the step loop runs ``jaxrl.backend.scan_unroll`` steps per loop trip (16, or
    the env's ``max_unroll``); on a CPU one. ``unroll`` overrides that: pass 1 for a loop that
    runs once (an off-policy agent's warm-up), where unrolling adds compile time and saves
    nothing worth having.
    """
    def general(key, obs, env_state, carry):
        return (*policy(key, obs), carry)

    env_state, obs, _, transitions = rollout_with_carry(
        key, env, env_params, env_state, obs, (), general, num_steps, (), unroll)
    return env_state, obs, transitions


def reset_carry(carry: Any, done: jax.Array, initial_carry: Any) -> Any:
    """``initial_carry`` in the envs whose episode ended (``done [N]``), ``carry`` elsewhere."""
    def select(initial, current):
        mask = done.reshape(done.shape + (1,) * (current.ndim - done.ndim))
        return jnp.where(mask, initial, current)

    return jax.tree.map(select, initial_carry, carry)


def rollout_with_carry(key: jax.Array, env: Any, env_params: Any, env_state: Any,
                       obs: jax.Array, carry: Any, policy: CarryPolicy, num_steps: int,
                       initial_carry: Any, unroll: int | None = None
                       ) -> tuple[Any, jax.Array, Any, Transition]:
    """``rollout`` for a policy with memory, or one that reads the env state:
    ``(env_state, obs, carry, transitions)``.

    ``policy(key, obs, env_state, carry) -> (actions, extras, carry)``; after each step the
    carry of every env whose episode ended (terminated or truncated) is reset to
    ``initial_carry`` (leaves ``[num_envs, ...]``), so the next episode starts fresh.
    """
    num_envs = jax.tree.leaves(env_state)[0].shape[0]
    batched_step = jax.vmap(env.step, in_axes=(0, 0, 0, None))

    def step(loop_carry, step_keys):
        env_state, obs, carry = loop_carry
        action, extras, carry = policy(step_keys[0], obs, env_state, carry)
        next_obs, env_state, reward, terminated, truncated, info = batched_step(
            step_keys[1:], env_state, action, env_params)
        info = dict(info)
        final_obs = info.pop("final_obs")
        transition = Transition(obs, action, reward, terminated, truncated, final_obs, info, extras)
        carry = reset_carry(carry, terminated | truncated, initial_carry)
        return (env_state, next_obs, carry), transition

    # Every key of the rollout in one split (row t: the policy's key, then one per env): on CPU
    # each threefry call is a small loop of its own, so splitting inside the step costs more.
    (env_state, obs, carry), transitions = jax.lax.scan(
        step, (env_state, obs, carry), jax.random.split(key, (num_steps, 1 + num_envs)),
        unroll=unroll or scan_unroll(num_steps, env_unroll_limit(env)))
    # As in reset_envs, so the carried env batch stays sharded (also in a resumed run).
    env_state, obs = constrain_env_axis((env_state, obs))
    return env_state, obs, carry, transitions


def _first_cut_steps(truncated: jax.Array, k: int) -> jax.Array:
    """``[k, N]`` distinct steps per env: its cuts (``truncated [T, N]``) in time order, then
    uncut steps, earliest first (which ``bootstrap_values``' final ``where`` ignores).

    ``lax.top_k(truncated.T, k)[1].T`` by ``k`` first-maximum reductions: top_k is a slow sort
    on XLA:CPU, and ``k`` is small.
    """
    score = truncated.astype(jnp.int32)  # 1 cut, 0 uncut, -1 taken
    steps = []
    for _ in range(k):
        step = jnp.argmax(score, axis=0)  # the first maximum
        steps.append(step)
        score = score.at[step, jnp.arange(score.shape[1])].set(-1)
    return jnp.stack(steps)


def bootstrap_values(value_fn: Callable[[jax.Array], jax.Array], transitions: Transition,
                     values: jax.Array, max_truncations: int | None) -> jax.Array:
    """``V(final_obs)`` of every step ``[T, N]`` wherever it is used, i.e. where not terminated.

    ``values[t] = V(obs[t])`` were computed during the rollout, and where step ``t`` did not end
    an episode ``final_obs[t] = obs[t+1]``. So only the last step's final observations and the
    truncated steps need ``value_fn``; ``max_truncations`` (``k``, per env in ``T`` steps:
    ``TimeLimitedEnv.max_truncations``) bounds the latter statically, so ``value_fn`` runs on
    ``(1 + k) · N`` rows instead of ``T · N``. Where an episode terminated the result is ``V`` of
    the next episode's first observation, which a zero discount ignores. With no bound (None) or
    no saving, ``value_fn`` runs on every final observation.
    """
    final_obs, truncated = transitions.next_obs, transitions.truncated
    num_steps, num_envs = truncated.shape
    if max_truncations is None or 1 + max_truncations >= num_steps:
        return value_fn(final_obs)
    rows = final_obs[-1:]
    if max_truncations:
        cut_steps = _first_cut_steps(truncated, max_truncations)  # [k, N]
        rows = jnp.concatenate([rows, final_obs[cut_steps, jnp.arange(num_envs)]])
    row_values = value_fn(rows)  # [1 + k, N]
    next_values = jnp.concatenate([values[1:], row_values[:1]])
    if not max_truncations:
        return next_values
    at_step = cut_steps[:, None, :] == jnp.arange(num_steps)[None, :, None]  # [k, T, N]
    at_cuts = jnp.where(at_step, row_values[1:, None, :], 0.0).sum(0)
    return jnp.where(truncated, at_cuts, next_values)


def random_permutation(key: jax.Array, n: int) -> jax.Array:
    """A uniformly random permutation of ``range(n)`` (``int32 [n]``), as
    ``jax.random.permutation(key, n)`` draws one, with cheaper sorts.

    jax sorts random 32-bit keys together with the positions (a key-value sort); XLA:CPU runs
    that through a compiled comparator, several times slower than a keys-only sort of plain
    integers. So each round here sorts single ``uint32`` words
    ``(random bits << b) | position`` with ``b = ⌈log2 n⌉``: the order is that of the random
    bits, and equal random bits keep the position order, as jax's stable sort does. Rounds
    compose, and there are as many as jax's own rule asks for its 32-bit keys with our
    ``32 - b`` random bits (``⌈3 ln n / ln 2^(32-b)⌉``: 2 for n = 512), so ties are as unlikely.
    Past 3 rounds (n > 2^16) this is jax's permutation. The minibatch shuffles of on-policy
    agents use it (measurements: ``benchmarks/RESULTS.md``).
    """
    index_bits = max(1, (n - 1).bit_length())
    random_bits = 32 - index_bits
    rounds = max(1, math.ceil(3 * math.log(max(n, 2)) / (random_bits * math.log(2))))
    if rounds > 3:
        return jax.random.permutation(key, n)
    positions = jnp.arange(n, dtype=jnp.uint32)
    index_mask = jnp.uint32((1 << index_bits) - 1)
    permutation = positions
    for round_key in jax.random.split(key, rounds):
        words = (jax.random.bits(round_key, (n,), jnp.uint32) << index_bits) | positions
        permutation = permutation[jnp.sort(words) & index_mask]
    return permutation.astype(jnp.int32)


def shuffled_minibatches(key: jax.Array, batch: Any, num_minibatches: int) -> Any:
    """Flatten the two leading axes ``[T, N, ...] → [T·N, ...]``, shuffle
    (``random_permutation``), split into ``[num_minibatches, T·N / num_minibatches, ...]``
    (sizes must divide; checked by callers)."""
    flat = jax.tree.map(lambda x: x.reshape((-1, *x.shape[2:])), batch)
    size = jax.tree.leaves(flat)[0].shape[0]
    permutation = random_permutation(key, size)
    return jax.tree.map(
        lambda x: x[permutation].reshape((num_minibatches, -1, *x.shape[1:])), flat)


def env_minibatches(key: jax.Array, batch: Any, num_minibatches: int) -> Any:
    """Shuffle the env axis of ``[T, N, ...]`` leaves and split it into ``num_minibatches``
    groups of whole env sequences: ``[num_minibatches, T, N / num_minibatches, ...]``.

    For policies with memory: each minibatch keeps its envs' time order, so a recurrent network
    replays them step by step from the carry stored at the start of the rollout (put that carry
    in ``batch`` with a leading axis of 1, ``[1, N, ...]``, so it is split with the same envs).
    """
    num_envs = jax.tree.leaves(batch)[0].shape[1]
    permutation = random_permutation(key, num_envs)

    def split(x):
        x = x[:, permutation]
        return jnp.moveaxis(x.reshape((x.shape[0], num_minibatches, -1, *x.shape[2:])), 1, 0)

    return jax.tree.map(split, batch)


def episode_return_metric(info: dict[str, jax.Array], previous: jax.Array) -> jax.Array:
    """Mean return of the episodes that finished in ``info`` (from ``EpisodeStatistics``);
    ``previous`` is carried forward when none finished (NaN before the first)."""
    finished = info["episode_done"]
    count = finished.sum()
    total = jnp.where(finished, info["episode_return"], 0.0).sum()
    return jnp.where(count > 0, total / jnp.maximum(count, 1), previous)
