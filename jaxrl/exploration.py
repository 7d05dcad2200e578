"""Exploration bonuses as reward transforms (course notes §17 "Exploration", §17.2 "Tips &
hacks": reward ``r⁺(s, a) + B(N(s))``, counts through hashes, density models).

Every bonus is a ``training.extensions.RewardTransform``: its state (counts, networks, running
statistics) lives in the train state, so it is checkpointed and resumed with the run, and any
online agent takes one by config (``bonus``, ``bonus_form``, ``bonus_scale``, ``hash_bits`` of
``OnPolicyConfig`` / ``OffPolicyConfig``; ``make_bonus``). The rewarded state is the one the
action was taken in (``traj.obs``); RND rewards the state it led to (``traj.next_obs``), as in
its paper.

- **counts** (``count_bonus``): ``r + β · B(N(s))`` with ``N(s)`` the visits of ``s``
  counting this rollout (so ``N ≥ 1``) and ``n = Σ_s N(s)`` all visits so far; the forms
  (``bonus_value``) are UCB ``√(2 ln n / N)``, MBIE-EB ``1/√N`` and BEB ``1/N``. One table
  per seed: the counts of a seed's whole env batch go into it. ``kind="count"`` counts exact
  states (discrete, small-integer or one-hot observations, ``exact_cells``); ``kind="hash"``
  counts SimHash codes (Tang et al., 2017, "#Exploration"): ``φ(s) = sign(A g(s))`` with
  ``A ~ N(0, 1)^{k × (d+1)}`` fixed at init and ``g(s)`` the flattened observation (scaled to
  ``[-1, 1]`` where the Box is bounded) followed by a constant 1, so the hyperplanes do not
  all pass through the origin (low-dimensional observations such as MountainCar's need that).
  States whose codes collide share one count.
- **RND** (``rnd_bonus``; Burda et al., 2019): a fixed random target network ``f`` (never
  trained) and a predictor ``f̂`` trained by one Adam step per rollout on
  ``‖f̂(s') - f(s')‖²``; the intrinsic reward is that error (before the step), divided by the
  running std of its discounted, non-episodic return per env; observations are normalised by
  running statistics and clipped to ``[-5, 5]``. ``r + β · i / σ_I``. With PPO's
  ``intrinsic_head`` the intrinsic reward has its own value head, discount and non-episodic
  returns instead, as in the paper (``jaxrl.agents.ppo``).
"""

from __future__ import annotations

import math
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import linen as nn
from flax import struct

from jaxrl.envs.normalize import RunningMeanStd, discounted_return_trace
from jaxrl.envs.spaces import Box, Discrete, Space
from jaxrl.models.torsos import MLP
from jaxrl.rollout import Transition
from jaxrl.training.extensions import RewardTransform

__all__ = ["BONUSES", "BONUS_FORMS", "MAX_EXACT_CELLS", "MAX_HASH_BITS", "CountState",
           "RNDState", "bonus_value", "count_bonus", "exact_cells", "make_bonus", "rnd_bonus",
           "simhash_cells"]

BONUSES = ("none", "count", "hash", "rnd")
BONUS_FORMS = ("ucb", "mbie_eb", "beb")
MAX_EXACT_CELLS = 2 ** 16
"""The largest count table ``exact_cells`` builds for small-integer observations."""
MAX_HASH_BITS = 24


def bonus_value(form: str, visits: jax.Array, total: jax.Array) -> jax.Array:
    """``B(N)``: ``ucb`` ``√(2 ln n / N)``, ``mbie_eb`` ``1/√N``, ``beb`` ``1/N`` (N ≥ 1).

    >>> float(bonus_value("beb", jnp.asarray(4.0), jnp.asarray(10.0)))
    0.25
    """
    visits = jnp.maximum(visits, 1.0)
    if form == "ucb":
        return jnp.sqrt(2.0 * jnp.log(jnp.maximum(total, 1.0)) / visits)
    if form == "mbie_eb":
        return jax.lax.rsqrt(visits)
    if form == "beb":
        return 1.0 / visits
    raise ValueError(f"bonus_form must be one of {', '.join(BONUS_FORMS)}, got {form!r}")


def _flat(obs: jax.Array, obs_shape: tuple[int, ...]) -> jax.Array:
    return obs.reshape((*obs.shape[:obs.ndim - len(obs_shape)], -1)).astype(jnp.float32)


def exact_cells(observation_space: Space) -> tuple[int, Any]:
    """``(number of cells, cell(obs [..., *shape]) -> int32 [...])`` of exact state counts.

    Discrete observations are their own cell; a Box with integer bounds and at most
    ``MAX_EXACT_CELLS`` points is numbered in mixed radix; a larger non-image ``{0, 1}`` Box is
    read as one-hot (the index of its 1, the all-zero observation one more cell). Anything else
    raises ``ValueError`` pointing to ``bonus = "hash"``.
    """
    if isinstance(observation_space, Discrete):
        return int(observation_space.n), lambda obs: jnp.asarray(obs, jnp.int32)
    if isinstance(observation_space, Box):
        shape = tuple(observation_space.shape)
        low = np.broadcast_to(np.asarray(observation_space.low, np.float64), shape).reshape(-1)
        high = np.broadcast_to(np.asarray(observation_space.high, np.float64), shape).reshape(-1)
        integer = (np.all(np.isfinite(low)) and np.all(np.isfinite(high))
                   and np.all(np.mod(low, 1) == 0) and np.all(np.mod(high, 1) == 0))
        if integer:
            sizes = (high - low + 1).astype(np.int64)
            if math.prod(sizes.tolist()) <= MAX_EXACT_CELLS:
                radix = np.concatenate([[1], np.cumprod(sizes[:-1])]).astype(np.int32)

                def mixed_radix(obs):
                    digits = jnp.round(_flat(obs, shape) - low).astype(jnp.int32)
                    return (digits * radix).sum(-1)

                return int(math.prod(sizes.tolist())), mixed_radix
            if np.all(low == 0) and np.all(high == 1) and len(shape) < 3:
                size = low.size

                def one_hot(obs):
                    flat = _flat(obs, shape)
                    return jnp.where(flat.max(-1) > 0, jnp.argmax(flat, -1), size).astype(
                        jnp.int32)

                return size + 1, one_hot
    raise ValueError(
        f"bonus = 'count' counts exact states, which needs discrete, small-integer or one-hot "
        f"observations; this env's are {type(observation_space).__name__} of shape "
        f"{tuple(observation_space.shape)} with unbounded or non-integer values. Use bonus = "
        f"'hash' (SimHash counts of continuous observations, --bonus hash --hash-bits K) or "
        f"'rnd'")


def simhash_cells(observation_space: Space, bits: int) -> tuple[int, Any, Any]:
    """``(2^bits cells, init(key) -> A [bits, d+1], cell(A, obs) -> int32)``: SimHash codes
    ``sign(A g(s))`` read as binary numbers (module docstring)."""
    if not 1 <= bits <= MAX_HASH_BITS:
        raise ValueError(f"hash_bits must be in [1, {MAX_HASH_BITS}] (a table of 2^hash_bits "
                         f"counts per seed), got {bits}")
    shape = tuple(observation_space.shape)
    size = math.prod(shape)
    low, high = -np.ones(size), np.ones(size)
    if isinstance(observation_space, Box):
        low = np.broadcast_to(np.asarray(observation_space.low, np.float64), shape).reshape(-1)
        high = np.broadcast_to(np.asarray(observation_space.high, np.float64), shape).reshape(-1)
    bounded = np.isfinite(low) & np.isfinite(high) & (high > low)
    low, high = np.where(bounded, low, -1.0), np.where(bounded, high, 1.0)
    centre, half_width = ((low + high) / 2).astype(np.float32), ((high - low) / 2).astype(
        np.float32)
    powers = (2 ** np.arange(bits)).astype(np.int32)

    def init(key):
        return jax.random.normal(key, (bits, size + 1), jnp.float32)

    def cell(projection, obs):
        scaled = (_flat(obs, shape) - centre) / half_width
        features = jnp.concatenate([scaled, jnp.ones((*scaled.shape[:-1], 1))], -1)
        code = (features @ projection.T) > 0
        return (code.astype(jnp.int32) * powers).sum(-1)

    return 2 ** bits, init, cell


class CountState(struct.PyTreeNode):
    """Visit counts of one seed (its whole env batch) and, for SimHash, the fixed projection."""

    counts: jax.Array
    """``N [cells]``"""
    projection: jax.Array | None = None
    """SimHash's ``A [bits, d+1]`` (``None`` for exact counts)"""


def count_bonus(observation_space: Space, form: str, scale: float | jax.Array,
                kind: str = "count", hash_bits: int = 16) -> RewardTransform:
    """``r + scale · B(N(s))`` with exact (``kind="count"``) or SimHash (``"hash"``) counts
    (module docstring); metric ``bonus`` (the mean ``B`` of the rollout)."""
    bonus_value(form, jnp.ones(()), jnp.ones(()))  # the one check of ``form``
    if kind == "count":
        num_cells, exact = exact_cells(observation_space)

        def init_projection(key):
            return None

        def cell(projection, obs):
            return exact(obs)
    elif kind == "hash":
        num_cells, init_projection, cell = simhash_cells(observation_space, hash_bits)
    else:
        raise ValueError(f"count kind must be 'count' or 'hash', got {kind!r}")

    def init(key: jax.Array, obs_space: Space, action_space: Space) -> CountState:
        return CountState(counts=jnp.zeros((num_cells,), jnp.int32),
                          projection=init_projection(key))

    def apply(state: CountState, traj: Transition,
              key: jax.Array) -> tuple[jax.Array, CountState, dict[str, jax.Array]]:
        cells = cell(state.projection, traj.obs)
        counts = state.counts.at[cells.reshape(-1)].add(1)
        bonus = bonus_value(form, counts[cells].astype(jnp.float32),
                            counts.sum().astype(jnp.float32))
        rewards = traj.reward + scale * bonus
        return rewards, state.replace(counts=counts), {"bonus": bonus.mean()}

    return RewardTransform(init=init, apply=apply)


class _Embedding(nn.Module):
    """MLP torso then a linear map to ``features`` (RND's target and predictor)."""

    hidden_sizes: tuple[int, ...]
    features: int
    obs_ndim: int

    @nn.compact
    def __call__(self, obs: jax.Array) -> jax.Array:
        hidden = MLP(self.hidden_sizes, "relu", self.obs_ndim)(obs)
        return nn.Dense(self.features)(hidden)


class RNDState(struct.PyTreeNode):
    """RND's networks, the predictor's optimiser and the running statistics."""

    target_params: Any
    """the fixed random target network (never trained)"""
    predictor_params: Any
    opt_state: Any
    obs_stats: RunningMeanStd
    return_stats: RunningMeanStd
    """statistics of the discounted intrinsic return, whose std divides the bonus"""
    return_trace: jax.Array
    """the running discounted intrinsic return per env ``[num_envs]``"""


def rnd_bonus(observation_space: Space, num_envs: int, scale: float | jax.Array,
              hidden_sizes: tuple[int, ...] = (64, 64), features: int = 32,
              learning_rate: float = 1e-3, intrinsic_gamma: float = 0.99,
              separate: bool = False) -> RewardTransform:
    """Random network distillation (module docstring); metrics ``rnd_loss`` (the predictor's
    error on the rollout before its step) and ``bonus`` (the mean normalised intrinsic reward).

    ``separate``: the rewards are ``[T, N, 2]``, ``(r, i / σ_I)`` unscaled, for an agent that
    learns the intrinsic reward with a value head of its own (PPO's ``intrinsic_head``, which
    weighs the intrinsic advantage by ``scale``) instead of ``r + scale · i / σ_I``.
    """
    shape = tuple(observation_space.shape)
    network = _Embedding(tuple(hidden_sizes), features, max(len(shape), 1))
    optimizer = optax.adam(learning_rate)

    def init(key: jax.Array, obs_space: Space, action_space: Space) -> RNDState:
        target_key, predictor_key = jax.random.split(key)
        dummy = jnp.zeros((1, *shape), jnp.float32)
        predictor_params = network.init(predictor_key, dummy)
        return RNDState(target_params=network.init(target_key, dummy),
                        predictor_params=predictor_params,
                        opt_state=optimizer.init(predictor_params),
                        obs_stats=RunningMeanStd.create(shape),
                        return_stats=RunningMeanStd.create(),
                        return_trace=jnp.zeros((num_envs,), jnp.float32))

    def apply(state: RNDState, traj: Transition,
              key: jax.Array) -> tuple[jax.Array, RNDState, dict[str, jax.Array]]:
        obs_stats = state.obs_stats.update(traj.next_obs)
        inputs = obs_stats.normalize(traj.next_obs.astype(jnp.float32), clip=5.0)
        target = jax.lax.stop_gradient(network.apply(state.target_params, inputs))

        def loss_fn(params):
            errors = jnp.square(network.apply(params, inputs) - target).sum(-1)
            return errors.mean(), errors

        (loss, errors), grads = jax.value_and_grad(loss_fn, has_aux=True)(
            state.predictor_params)
        updates, opt_state = optimizer.update(grads, state.opt_state, state.predictor_params)
        predictor_params = optax.apply_updates(state.predictor_params, updates)
        never_done = jnp.zeros_like(errors, bool)
        trace, return_trace = discounted_return_trace(errors, never_done, intrinsic_gamma,
                                                      state.return_trace)
        return_stats = state.return_stats.update(trace)
        intrinsic = return_stats.scale(errors)
        new_state = state.replace(predictor_params=predictor_params, opt_state=opt_state,
                                  obs_stats=obs_stats, return_stats=return_stats,
                                  return_trace=return_trace)
        rewards = (jnp.stack([traj.reward.astype(intrinsic.dtype), intrinsic], -1) if separate
                   else traj.reward + scale * intrinsic)
        return rewards, new_state, {"bonus": intrinsic.mean(), "rnd_loss": loss}

    return RewardTransform(init=init, apply=apply)


def make_bonus(config: Any, observation_space: Space) -> RewardTransform | None:
    """The transform that ``config.bonus`` names (``None`` for ``"none"``), from the config's
    ``bonus_form``, ``bonus_scale``, ``hash_bits`` and ``num_envs``."""
    bonus = getattr(config, "bonus", "none")
    if bonus == "none":
        return None
    if bonus in ("count", "hash"):
        return count_bonus(observation_space, config.bonus_form, config.bonus_scale, bonus,
                           config.hash_bits)
    if bonus == "rnd":
        if getattr(config, "intrinsic_head", False):
            return rnd_bonus(observation_space, config.num_envs, config.bonus_scale,
                             intrinsic_gamma=config.intrinsic_gamma, separate=True)
        return rnd_bonus(observation_space, config.num_envs, config.bonus_scale)
    raise ValueError(f"bonus must be one of {', '.join(BONUSES)}, got {bonus!r}")
