"""Learned dynamics models: deterministic and probabilistic bootstrap ensembles.

Course notes §11 (Model-Based RL; "Uncertainty"): a model ``f_θ(s, a)`` fitted to transitions
overfits where data is scarce, and a planner exploits its mistakes. Two remedies, combined here
as in PETS (Chua et al. 2018):

- **aleatoric** uncertainty: each member predicts a Gaussian ``N(μ_θ(s, a), diag σ²_θ(s, a))``
  of the normalised state change and is fitted by its negative log-likelihood
  ``½ Σ_d [(y_d − μ_d)² / σ²_d + log σ²_d + log 2π]``; ``log σ²`` is kept between a maximum and a
  minimum by soft clamps, ``l ← max − softplus(max − l)``, ``l ← min + softplus(l − min)``, the
  bounds learned (with a small penalty ``0.01 Σ (max − min)``) so the variance cannot collapse or
  explode off the data. A deterministic member predicts ``μ`` alone and is fitted by
  ``½ ‖y − μ‖²``, the notes' ``Σ_i ‖f(s_i, a_i) − s'_i‖²``;
- **epistemic** uncertainty: ``M`` members held as one ``vmap``-ed parameter tree, each trained
  on its own bootstrap resample of the buffer (indices drawn with replacement per member,
  ``bootstrap_indices``), so they agree where the data is and disagree away from it.

Inputs ``[s, a]`` (a discrete action one-hot) and targets ``[s' − s, r]`` are normalised with
running statistics (``Normalizer``, pure, in the train state). The reward is a model output
unless a known reward function is given (``jaxrl.envs.rewards``); termination likewise, by a
logistic head fitted by cross-entropy.

``learned_dynamics`` turns a fitted ensemble into the planners' ``Dynamics`` over ``Particles``:
``P`` copies of the state, each propagated by one member, the reward averaged over the live
particles (trajectory sampling). **TS-1** reassigns members to particles at every step (a random
permutation, each member moving ``P / M`` particles); **TS-∞** keeps each particle's member for
the whole trajectory. Member ``m`` always moves the ``m``-th block of particles (TS-1 shuffles
the particles instead), so each member runs once on its own block: no member computes a
prediction that is thrown away. The planners of ``jaxrl.planning`` take it unchanged.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from typing import Any, NamedTuple

import distrax
import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import struct

from jaxrl.envs.dynamics import Dynamics
from jaxrl.envs.rewards import RewardFn, TerminationFn
from jaxrl.envs.spaces import Box, Discrete, Space
from jaxrl.models.torsos import activation_fn

__all__ = ["PROPAGATIONS", "DynamicsModel", "EnsembleMember", "ModelBatch", "ModelState",
           "Normalizer", "Particles", "bootstrap_indices", "initial_particles",
           "learned_dynamics", "make_dynamics_model"]

PROPAGATIONS = ("ts1", "tsinf")

_KERNEL_INIT = nn.initializers.variance_scaling(1.0, "fan_in", "normal")


class Normalizer(struct.PyTreeNode):
    """Running mean and variance of a feature vector (Chan et al.'s parallel merge)."""

    mean: jax.Array
    var: jax.Array
    count: jax.Array

    @classmethod
    def create(cls, size: int) -> Normalizer:
        return cls(jnp.zeros(size), jnp.ones(size), jnp.zeros(()))

    def update(self, batch: jax.Array, weights: jax.Array | None = None) -> Normalizer:
        """Merge the rows of ``batch [N, size]`` (where ``weights [N]`` is 1) into the
        statistics."""
        weights = jnp.ones(batch.shape[0]) if weights is None else weights.astype(jnp.float32)
        count = weights.sum()
        mean = (weights[:, None] * batch).sum(0) / jnp.maximum(count, 1.0)
        var = (weights[:, None] * jnp.square(batch - mean)).sum(0) / jnp.maximum(count, 1.0)
        total = self.count + count
        delta = mean - self.mean
        new_mean = self.mean + delta * count / jnp.maximum(total, 1.0)
        m2 = (self.var * self.count + var * count
              + jnp.square(delta) * self.count * count / jnp.maximum(total, 1.0))
        new_var = jnp.where(total > 0, m2 / jnp.maximum(total, 1.0), 1.0)
        return Normalizer(new_mean, new_var, total)

    def normalize(self, x: jax.Array) -> jax.Array:
        return (x - self.mean) / self.std

    def denormalize(self, x: jax.Array) -> jax.Array:
        return x * self.std + self.mean

    @property
    def std(self) -> jax.Array:
        return jnp.sqrt(jnp.maximum(self.var, 1e-8)) + 1e-6


class EnsembleMember(nn.Module):
    """One member: an MLP with a mean head, a soft-clamped log-variance head (probabilistic)
    and a termination logit (when termination is learned): ``(μ, log σ², logit)``."""

    out_dim: int
    hidden_sizes: Sequence[int] = (64, 64)
    activation: str = "swish"
    probabilistic: bool = True
    termination_head: bool = False

    @nn.compact
    def __call__(self, x: jax.Array) -> tuple[jax.Array, jax.Array, jax.Array]:
        # Plain normal fan-in kernels: orthogonal ones (``models.torsos``) cost a QR
        # decomposition per member, slow to compile under the ensemble's vmap.
        dense = functools.partial(nn.Dense, kernel_init=_KERNEL_INIT)
        hidden = x
        for size in self.hidden_sizes:
            hidden = activation_fn(self.activation)(dense(size)(hidden))
        mean = dense(self.out_dim)(hidden)
        if self.probabilistic:
            raw = dense(self.out_dim)(hidden)
            max_logvar = self.param("max_logvar", nn.initializers.constant(0.5), (self.out_dim,))
            min_logvar = self.param("min_logvar", nn.initializers.constant(-10.0),
                                    (self.out_dim,))
            logvar = max_logvar - jax.nn.softplus(max_logvar - raw)
            logvar = min_logvar + jax.nn.softplus(logvar - min_logvar)
        else:
            logvar = jnp.zeros_like(mean)
        logit = (dense(1)(hidden)[..., 0] if self.termination_head
                 else jnp.full(mean.shape[:-1], -jnp.inf))
        return mean, logvar, logit


class ModelBatch(NamedTuple):
    """Transitions ``[..., B]`` a model is fitted to."""

    obs: jax.Array
    action: jax.Array
    reward: jax.Array
    terminated: jax.Array
    next_obs: jax.Array


class ModelState(struct.PyTreeNode):
    """A fitted ensemble: member parameters (leading axis ``M``), the optimiser state and the
    input / target normalisers."""

    params: Any
    opt_state: Any
    inputs: Normalizer
    targets: Normalizer


class Particles(struct.PyTreeNode):
    """``P`` copies of one state under a learned model: observations ``[P, D]`` and whether
    each is still alive ``[P]``."""

    obs: jax.Array
    alive: jax.Array


class DynamicsModel(NamedTuple):
    """A configured ensemble (static): its network, sizes and what it learns."""

    network: EnsembleMember
    num_members: int
    obs_dim: int
    action_space: Space
    reward_fn: RewardFn | None
    termination_fn: TerminationFn | None
    env_params: Any
    optimizer: optax.GradientTransformation

    @property
    def probabilistic(self) -> bool:
        return self.network.probabilistic

    def action_features(self, action: jax.Array) -> jax.Array:
        if isinstance(self.action_space, Discrete):
            return jax.nn.one_hot(action, self.action_space.n)
        return jnp.asarray(action, jnp.float32).reshape(*action.shape[:action.ndim - len(
            self.action_space.shape)], -1)

    def model_inputs(self, obs: jax.Array, action: jax.Array) -> jax.Array:
        return jnp.concatenate([obs, self.action_features(action)], -1)

    def model_targets(self, batch: ModelBatch) -> jax.Array:
        delta = batch.next_obs - batch.obs
        if self.reward_fn is None:
            return jnp.concatenate([delta, batch.reward[..., None]], -1)
        return delta

    def init(self, key: jax.Array) -> ModelState:
        """Fresh members (one key each) with empty normalisers."""
        action_dim = (self.action_space.n if isinstance(self.action_space, Discrete)
                      else int(np.prod(self.action_space.shape)))
        inputs = jnp.zeros((self.obs_dim + action_dim,))
        params = jax.vmap(self.network.init, in_axes=(0, None))(
            jax.random.split(key, self.num_members), inputs)
        out_dim = self.network.out_dim
        return ModelState(params, self.optimizer.init(params),
                          Normalizer.create(inputs.shape[0]), Normalizer.create(out_dim))

    def observe(self, state: ModelState, batch: ModelBatch,
                weights: jax.Array | None = None) -> ModelState:
        """Merge new transitions (rows ``[N]``, where ``weights`` is 1) into the normalisers."""
        return state.replace(
            inputs=state.inputs.update(self.model_inputs(batch.obs, batch.action), weights),
            targets=state.targets.update(self.model_targets(batch), weights))

    def loss(self, params: Any, state: ModelState, batch: ModelBatch) -> tuple[jax.Array, dict]:
        """Summed over members of the mean per-transition loss, for ``batch`` leaves
        ``[M, B, ...]`` (each member its own resample): Gaussian NLL (or ½ squared error) of
        the normalised targets, plus the log-variance bound penalty, plus the termination
        cross-entropy where termination is learned. Returns ``(loss, {"model_loss",
        "model_mse"})`` (``model_mse``: squared error of the normalised mean)."""
        inputs = state.inputs.normalize(self.model_inputs(batch.obs, batch.action))
        targets = state.targets.normalize(self.model_targets(batch))
        mean, logvar, logit = jax.vmap(self.network.apply)(params, inputs)
        if self.probabilistic:
            nll = -distrax.Normal(mean, jnp.exp(0.5 * logvar)).log_prob(targets).sum(-1)
            bounds = (params["params"]["max_logvar"] - params["params"]["min_logvar"]).sum()
            per_member = nll.mean(-1) + 0.01 * bounds / self.num_members
        else:
            per_member = 0.5 * jnp.square(targets - mean).sum(-1).mean(-1)
        if self.termination_fn is None:
            per_member = per_member + optax.sigmoid_binary_cross_entropy(
                logit, batch.terminated.astype(jnp.float32)).mean(-1)
        loss = per_member.sum()
        return loss, {"model_loss": loss / self.num_members,
                      "model_mse": jnp.square(targets - mean).sum(-1).mean()}

    def predict(self, state: ModelState, obs: jax.Array, action: jax.Array
                ) -> tuple[jax.Array, jax.Array, jax.Array, jax.Array]:
        """Member ``m``'s prediction for row ``m`` of ``obs [M, N, D]``, ``action [M, N,
        ...]``: ``(mean next obs [M, N, D], its std, reward [M, N], termination probability
        [M, N])``. Where the reward (termination) is known it is computed from the mean next
        obs."""
        inputs = state.inputs.normalize(self.model_inputs(obs, action))
        mean, logvar, logit = jax.vmap(self.network.apply)(state.params, inputs)
        target_mean = state.targets.denormalize(mean)
        target_std = jnp.exp(0.5 * logvar) * state.targets.std
        next_obs = obs + target_mean[..., :self.obs_dim]
        std = target_std[..., :self.obs_dim]
        reward = (target_mean[..., self.obs_dim] if self.reward_fn is None
                  else self._known(self.reward_fn, obs, action, next_obs))
        done = (jax.nn.sigmoid(logit) if self.termination_fn is None
                else self._known(self.termination_fn, obs, action, next_obs).astype(
                    jnp.float32))
        return next_obs, std, reward, done

    def _known(self, fn, obs, action, next_obs):
        """``fn`` on every transition of ``[M, N]`` rows."""
        def one(o, a, n):
            return fn(o, a, n, self.env_params)

        return jax.vmap(jax.vmap(one))(obs, action, next_obs)

    def step(self, key: jax.Array, state: ModelState, obs: jax.Array, action: jax.Array
             ) -> tuple[jax.Array, jax.Array, jax.Array]:
        """One sampled transition of particles ``obs [P, D]`` (``P`` a multiple of ``M``):
        member ``m`` moves the ``m``-th block of ``P / M`` particles. ``(next_obs [P, D],
        reward [P], terminated [P])``: the next obs drawn from the member's Gaussian (its mean
        for a deterministic member), termination drawn from the predicted probability."""
        noise_key, done_key = jax.random.split(key)
        grouped = obs.reshape(self.num_members, -1, obs.shape[-1])
        actions = jnp.broadcast_to(action, (*grouped.shape[:2], *jnp.shape(action)))
        next_obs, std, reward, done = self.predict(state, grouped, actions)
        next_obs, std = next_obs.reshape(obs.shape), std.reshape(obs.shape)
        if self.probabilistic:
            next_obs = next_obs + std * jax.random.normal(noise_key, next_obs.shape)
        terminated = jax.random.uniform(done_key, (obs.shape[0],)) < done.reshape(-1)
        return next_obs, reward.reshape(-1), terminated


def make_dynamics_model(observation_space: Space, action_space: Space, *, num_members: int,
                        hidden_sizes: Sequence[int], activation: str, probabilistic: bool,
                        learning_rate: float | jax.Array, weight_decay: float | jax.Array,
                        reward_fn: RewardFn | None = None,
                        termination_fn: TerminationFn | None = None,
                        env_params: Any = None) -> DynamicsModel:
    """A ``DynamicsModel`` for vector observations; ``TypeError`` for image (or other
    non-vector) observations, ``ValueError`` for an ensemble of fewer than one member."""
    if not isinstance(observation_space, Box) or len(observation_space.shape) != 1:
        raise TypeError(f"a state-space dynamics model needs vector observations (a Box of "
                        f"shape [D]), got {observation_space}; use an env with state "
                        f"observations (e.g. Pendulum-v1, CartPole-v1)")
    if not isinstance(action_space, Box | Discrete):
        raise TypeError(f"a dynamics model needs a Box or Discrete action space, got "
                        f"{action_space}")
    if num_members < 1:
        raise ValueError(f"ensemble_size must be >= 1, got {num_members}")
    obs_dim = int(observation_space.shape[0])
    out_dim = obs_dim + (1 if reward_fn is None else 0)
    network = EnsembleMember(out_dim, tuple(hidden_sizes), activation, probabilistic,
                             termination_fn is None)
    optimizer = optax.adamw(learning_rate, weight_decay=weight_decay)
    return DynamicsModel(network, num_members, obs_dim, action_space, reward_fn,
                         termination_fn, env_params, optimizer)


def bootstrap_indices(key: jax.Array, num_members: int, num_valid: jax.Array,
                      size: int) -> jax.Array:
    """``[M, size]`` indices into the first ``num_valid`` rows of a dataset, drawn uniformly
    with replacement, independently per member: each member's bootstrap resample."""
    return jax.random.randint(key, (num_members, size), 0, jnp.maximum(num_valid, 1))


def initial_particles(obs: jax.Array, num_particles: int) -> Particles:
    """``num_particles`` live copies of ``obs [D]``."""
    return Particles(jnp.broadcast_to(obs, (num_particles, *obs.shape)),
                     jnp.ones((num_particles,), bool))


def learned_dynamics(model: DynamicsModel, state: ModelState, propagation: str = "tsinf"
                     ) -> Dynamics:
    """The ensemble as a ``Dynamics`` over ``Particles`` (module docstring): the reward is the
    mean over particles of the reward of those still alive, ``terminated`` when none is.
    Member ``m`` moves the ``m``-th block of particles; TS-1 shuffles the particles among the
    blocks before every step (a fresh member per particle and step, each member moving
    ``P / M``), TS-∞ never does (a member per particle for the whole trajectory)."""
    if propagation not in PROPAGATIONS:
        raise ValueError(f"propagation must be one of {', '.join(PROPAGATIONS)}, "
                         f"got {propagation!r}")

    def dynamics(key: jax.Array, particles: Particles, action: jax.Array):
        if particles.obs.shape[0] % model.num_members:
            raise ValueError(f"the number of particles ({particles.obs.shape[0]}) must be a "
                             f"multiple of the ensemble size ({model.num_members})")
        shuffle_key, step_key = jax.random.split(key)
        if propagation == "ts1":
            order = jax.random.permutation(shuffle_key, particles.obs.shape[0])
            particles = jax.tree.map(lambda x: x[order], particles)
        next_obs, reward, terminated = model.step(step_key, state, particles.obs, action)
        mean_reward = jnp.where(particles.alive, reward, 0.0).mean()
        alive = particles.alive & ~terminated
        return Particles(next_obs, alive), mean_reward, ~alive.any()

    return dynamics
