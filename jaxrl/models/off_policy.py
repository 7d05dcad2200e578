"""Networks of the off-policy agents: Q-networks over discrete actions and bounded actors."""

from __future__ import annotations

from collections.abc import Sequence

import distrax
import flax.linen as nn
import jax
import jax.numpy as jnp

from jaxrl.envs.spaces import Box, Discrete, Space
from jaxrl.models.actor_critic import make_torso
from jaxrl.models.heads import QHead, TanhGaussianHead

__all__ = ["DeterministicActor", "PolicyNetwork", "QNetwork", "make_deterministic_actor",
           "make_q_network", "make_tanh_gaussian_actor"]


class QNetwork(nn.Module):
    """``Q(s, ·) = head(torso(s))`` for every discrete action ``[..., num_actions]``."""

    torso: nn.Module
    head: nn.Module

    def __call__(self, obs: jax.Array) -> jax.Array:
        return self.head(self.torso(obs))


class DeterministicActor(nn.Module):
    """``μ(s) = tanh(W · torso(s) + b)`` in ``[-1, 1]^action_dim`` (DDPG / TD3)."""

    torso: nn.Module
    action_dim: int

    @nn.compact
    def __call__(self, obs: jax.Array) -> jax.Array:
        return jnp.tanh(nn.Dense(self.action_dim)(self.torso(obs)))


class PolicyNetwork(nn.Module):
    """``π(·|s) = head(torso(s))``: a distrax distribution (e.g. the tanh-Gaussian of SAC)."""

    torso: nn.Module
    head: nn.Module

    def __call__(self, obs: jax.Array) -> distrax.Distribution:
        return self.head(self.torso(obs))


def _action_dim(action_space: Space) -> int:
    if not isinstance(action_space, Box) or len(action_space.shape) != 1:
        raise TypeError(f"a continuous actor needs a vector Box action space, got {action_space}")
    return action_space.shape[0]


def make_q_network(observation_space: Space, action_space: Space, hidden_sizes: Sequence[int],
                   activation: str = "relu", dueling: bool = False) -> QNetwork:
    """MLP (vector obs) or CNN (image obs) torso with a (dueling) Q head."""
    if not isinstance(action_space, Discrete):
        raise TypeError(f"a Q-network needs a Discrete action space, got {action_space}")
    return QNetwork(make_torso(observation_space, hidden_sizes, activation),
                    QHead(action_space.n, dueling))


def make_deterministic_actor(observation_space: Space, action_space: Space,
                             hidden_sizes: Sequence[int],
                             activation: str = "relu") -> DeterministicActor:
    """Deterministic tanh actor for a ``[-1, 1]`` Box action space."""
    return DeterministicActor(make_torso(observation_space, hidden_sizes, activation),
                              _action_dim(action_space))


def make_tanh_gaussian_actor(observation_space: Space, action_space: Space,
                             hidden_sizes: Sequence[int],
                             activation: str = "relu") -> PolicyNetwork:
    """Tanh-squashed Gaussian policy (state-dependent std) for a ``[-1, 1]`` Box action space."""
    return PolicyNetwork(make_torso(observation_space, hidden_sizes, activation),
                         TanhGaussianHead(_action_dim(action_space)))
