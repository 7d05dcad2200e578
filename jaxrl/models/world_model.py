"""A latent-space world model: encoder, latent dynamics, observation decoder, reward head.

Course notes 004 §10.1.4 (Algorithm 18, "Model-based RL with latent space models") and §11
("Images"): observations ``o`` (images, or state vectors) are mapped to a latent state
``s = g_ψ(o)`` by a deterministic encoder, and the model is learned in that space:

    max_{φ,ψ} Σ_t  log p_φ(g_ψ(o_{t+1}) | g_ψ(o_t), a_t)      latent space dynamics
                 + log p_φ(o_t | g_ψ(o_t))                     observation reconstruction
                 + log p_φ(r_t | g_ψ(o_t), a_t)                reward model

With unit-variance Gaussians each log-likelihood is a squared error (up to constants), so the
loss minimised here, per transition and averaged over a batch, is

    L = ½ ‖f_φ(z_t, a_t) − z_{t+1}‖² + ½ ‖d_φ(z_t) − ō_t‖² + ½ (r̂_φ(z_t, a_t) − r̄_t)²
        + BCE(c_φ(z_t, a_t), terminated_t),        z = g_ψ(ō),

optimised jointly in ``φ`` and ``ψ`` by backprop as the notes say (the gradient flows into both
ends of the dynamics term; the reconstruction term keeps the latent from collapsing). ``ō`` is
the observation normalised by running statistics for vector observations and as given for
images (grids of 0/1 cells), ``r̄`` the normalised reward. The reward head also sees the action
(Pendulum's reward pays for torque); the termination head (a logistic cross-entropy, the fourth
term) tells the planner where an imagined episode ends (Catch ends when the ball lands).

``WorldModel.dynamics(state)`` is the planners' ``Dynamics`` over latent states: the deterministic
``z' = f_φ(z, a)``, the reward in env units and ``terminated = σ(c_φ) > ½``; ``encode`` gives the
latent a plan starts from. Observations of any shape are flattened into the encoder's input (a
dense encoder: enough for Catch's 10×5 grid and MinAtar's 10×10×C).
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from typing import Any, NamedTuple

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import struct

from jaxrl.envs.dynamics import Dynamics
from jaxrl.envs.spaces import Box, Discrete, Space
from jaxrl.models.dynamics import ModelBatch, Normalizer
from jaxrl.models.torsos import activation_fn

__all__ = ["LOSS_PARTS", "LatentNetworks", "WorldModel", "WorldModelState", "make_world_model"]

LOSS_PARTS = ("dynamics_loss", "reconstruction_loss", "reward_loss", "termination_loss")
"""The terms of the objective, in the order they are summed (module docstring)."""

_KERNEL_INIT = nn.initializers.variance_scaling(1.0, "fan_in", "normal")


class _Dense(nn.Module):
    """Hidden layers then a linear output of ``out_dim``."""

    out_dim: int
    hidden_sizes: Sequence[int]
    activation: str

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        dense = functools.partial(nn.Dense, kernel_init=_KERNEL_INIT)
        for size in self.hidden_sizes:
            x = activation_fn(self.activation)(dense(size)(x))
        return dense(self.out_dim)(x)


class LatentNetworks(nn.Module):
    """``g_ψ`` (``encode``), ``d_φ`` (``decode``) and ``(f_φ, r̂_φ, c_φ)`` (``transition``:
    a residual latent step, the reward and the termination logit from one network)."""

    obs_size: int
    latent_dim: int
    hidden_sizes: Sequence[int] = (64, 64)
    activation: str = "swish"

    def setup(self) -> None:
        self.encoder = _Dense(self.latent_dim, self.hidden_sizes, self.activation)
        self.decoder = _Dense(self.obs_size, self.hidden_sizes, self.activation)
        self.transition_net = _Dense(self.latent_dim + 2, self.hidden_sizes, self.activation)

    def encode(self, obs: jax.Array) -> jax.Array:
        """``z = g_ψ(ō)`` of flattened observations ``[..., obs_size]``."""
        return self.encoder(obs)

    def decode(self, latent: jax.Array) -> jax.Array:
        """The reconstruction ``d_φ(z) [..., obs_size]``."""
        return self.decoder(latent)

    def transition(self, latent: jax.Array, action: jax.Array
                   ) -> tuple[jax.Array, jax.Array, jax.Array]:
        """``(z' = z + Δ_φ(z, a), r̂ (normalised), termination logit)``."""
        out = self.transition_net(jnp.concatenate([latent, action], -1))
        return latent + out[..., :self.latent_dim], out[..., -2], out[..., -1]

    def __call__(self, obs: jax.Array, action: jax.Array) -> Any:
        latent = self.encode(obs)
        return self.decode(latent), self.transition(latent, action)


class WorldModelState(struct.PyTreeNode):
    """A world model's parameters, optimiser state and the observation and reward
    normalisers."""

    params: Any
    opt_state: Any
    obs: Normalizer
    reward: Normalizer


class WorldModel(NamedTuple):
    """A configured world model (static): networks, spaces, optimiser."""

    network: LatentNetworks
    obs_shape: tuple[int, ...]
    action_space: Space
    optimizer: optax.GradientTransformation

    @property
    def normalizes_obs(self) -> bool:
        """Vector observations are normalised; image (grid) observations are used as given."""
        return len(self.obs_shape) == 1

    def action_features(self, action: jax.Array) -> jax.Array:
        if isinstance(self.action_space, Discrete):
            return jax.nn.one_hot(action, self.action_space.n)
        return jnp.asarray(action, jnp.float32).reshape(
            *action.shape[:action.ndim - len(self.action_space.shape)], -1)

    def flat_obs(self, state: WorldModelState, obs: jax.Array) -> jax.Array:
        """``ō``: observations ``[..., *obs_shape]`` flattened (and normalised if vectors)."""
        flat = jnp.asarray(obs, jnp.float32).reshape(
            *obs.shape[:obs.ndim - len(self.obs_shape)], -1)
        return state.obs.normalize(flat) if self.normalizes_obs else flat

    def init(self, key: jax.Array) -> WorldModelState:
        """Fresh networks and empty normalisers."""
        size = self.network.obs_size
        action_dim = (self.action_space.n if isinstance(self.action_space, Discrete)
                      else int(np.prod(self.action_space.shape)))
        params = self.network.init(key, jnp.zeros((size,)), jnp.zeros((action_dim,)))
        return WorldModelState(params, self.optimizer.init(params), Normalizer.create(size),
                               Normalizer.create(1))

    def observe(self, state: WorldModelState, batch: ModelBatch,
                weights: jax.Array | None = None) -> WorldModelState:
        """Merge transitions (rows ``[N]``, where ``weights`` is 1) into the normalisers."""
        flat = jnp.asarray(batch.obs, jnp.float32).reshape(batch.obs.shape[0], -1)
        return state.replace(obs=state.obs.update(flat, weights),
                             reward=state.reward.update(batch.reward[:, None], weights))

    def loss_parts(self, params: Any, state: WorldModelState, batch: ModelBatch
                   ) -> dict[str, jax.Array]:
        """Each term of the objective (``LOSS_PARTS``), averaged over the batch ``[B]``."""
        obs = self.flat_obs(state, batch.obs)
        next_obs = self.flat_obs(state, batch.next_obs)
        encode = functools.partial(self.network.apply, params, method=LatentNetworks.encode)
        latent, next_latent = encode(obs), encode(next_obs)
        reconstruction = self.network.apply(params, latent, method=LatentNetworks.decode)
        predicted, reward, logit = self.network.apply(
            params, latent, self.action_features(batch.action),
            method=LatentNetworks.transition)
        target_reward = state.reward.normalize(batch.reward[:, None])[:, 0]
        return {
            "dynamics_loss": 0.5 * jnp.square(predicted - next_latent).sum(-1).mean(),
            "reconstruction_loss": 0.5 * jnp.square(reconstruction - obs).sum(-1).mean(),
            "reward_loss": 0.5 * jnp.square(reward - target_reward).mean(),
            "termination_loss": optax.sigmoid_binary_cross_entropy(
                logit, batch.terminated.astype(jnp.float32)).mean(),
        }

    def loss(self, params: Any, state: WorldModelState, batch: ModelBatch
             ) -> tuple[jax.Array, dict[str, jax.Array]]:
        """``(L, {"model_loss": L, **parts})``: the sum of ``loss_parts``."""
        parts = self.loss_parts(params, state, batch)
        total = sum(parts[name] for name in LOSS_PARTS)
        return total, {"model_loss": total, **parts}

    def train_step(self, state: WorldModelState, batch: ModelBatch
                   ) -> tuple[WorldModelState, dict[str, jax.Array]]:
        """One optimiser step on ``batch``; the step's loss and its parts."""
        (_, metrics), grads = jax.value_and_grad(self.loss, has_aux=True)(
            state.params, state, batch)
        updates, opt_state = self.optimizer.update(grads, state.opt_state, state.params)
        return state.replace(params=optax.apply_updates(state.params, updates),
                             opt_state=opt_state), metrics

    def encode(self, state: WorldModelState, obs: jax.Array) -> jax.Array:
        """The latent state ``g_ψ(ō)`` of observations ``[..., *obs_shape]``."""
        return self.network.apply(state.params, self.flat_obs(state, obs),
                                  method=LatentNetworks.encode)

    def decode(self, state: WorldModelState, latent: jax.Array) -> jax.Array:
        """The observation a latent decodes to, in env units and shape."""
        flat = self.network.apply(state.params, latent, method=LatentNetworks.decode)
        flat = state.obs.denormalize(flat) if self.normalizes_obs else flat
        return flat.reshape(*latent.shape[:-1], *self.obs_shape)

    def dynamics(self, state: WorldModelState) -> Dynamics:
        """The planners' ``Dynamics`` over latents ``[latent_dim]`` (module docstring)."""

        def dynamics(key: jax.Array, latent: jax.Array, action: jax.Array):
            next_latent, reward, logit = self.network.apply(
                state.params, latent, self.action_features(action),
                method=LatentNetworks.transition)
            reward = state.reward.denormalize(reward[..., None])[..., 0]
            return next_latent, reward, logit > 0.0

        return dynamics


def make_world_model(observation_space: Space, action_space: Space, *, latent_dim: int,
                     hidden_sizes: Sequence[int], activation: str,
                     learning_rate: float | jax.Array,
                     weight_decay: float | jax.Array) -> WorldModel:
    """A ``WorldModel`` for ``Box`` observations of any shape; ``TypeError`` for other
    observation or action spaces, ``ValueError`` for a latent size below 1."""
    if not isinstance(observation_space, Box):
        raise TypeError(f"a world model needs Box observations (vectors or images), got "
                        f"{observation_space}")
    if not isinstance(action_space, Box | Discrete):
        raise TypeError(f"a world model needs a Box or Discrete action space, got "
                        f"{action_space}")
    if latent_dim < 1:
        raise ValueError(f"latent_dim must be >= 1, got {latent_dim}")
    obs_shape = tuple(int(d) for d in observation_space.shape)
    network = LatentNetworks(int(np.prod(obs_shape)), latent_dim, tuple(hidden_sizes),
                             activation)
    return WorldModel(network, obs_shape, action_space,
                      optax.adamw(learning_rate, weight_decay=weight_decay))
