"""Actor-critic networks and the factory that picks torso and head from the env's spaces."""

from __future__ import annotations

from collections.abc import Sequence

import distrax
import flax.linen as nn
import jax
import jax.numpy as jnp

from jaxrl.envs.spaces import Box, Discrete, Space
from jaxrl.models.heads import CategoricalHead, GaussianHead, ValueHead
from jaxrl.models.torsos import CNN, MLP

__all__ = ["ActorCritic", "ContinuousCritic", "CriticEnsemble", "make_actor_critic", "make_torso"]


def make_torso(observation_space: Space, hidden_sizes: Sequence[int],
               activation: str) -> nn.Module:
    """CNN (then MLP) for image observations ``[H, W, C]``; an MLP for the others (grid or
    scalar observations flattened into one feature vector)."""
    if len(observation_space.shape) == 3:
        return CNN(hidden_sizes=tuple(hidden_sizes), activation=activation)
    return MLP(tuple(hidden_sizes), activation, obs_ndim=len(observation_space.shape))


class ActorCritic(nn.Module):
    """Separate actor and critic torsos: ``(π(·|s), V(s)) = net(obs)``.

    With ``intrinsic_value`` the critic torso carries a second head, and ``V(s)`` is
    ``[..., 2]``: ``(V_E(s), V_I(s))``, the values of the extrinsic and the intrinsic reward
    (RND's two value heads, Burda et al., 2019; ``jaxrl.agents.ppo``).
    """

    actor_torso: nn.Module
    critic_torso: nn.Module
    policy_head: nn.Module
    intrinsic_value: bool = False

    def setup(self):
        self.value_head = ValueHead()
        if self.intrinsic_value:
            self.intrinsic_value_head = ValueHead()

    def __call__(self, obs: jax.Array) -> tuple[distrax.Distribution, jax.Array]:
        return self.policy(obs), self.value(obs)

    def policy(self, obs: jax.Array) -> distrax.Distribution:
        return self.policy_head(self.actor_torso(obs))

    def value(self, obs: jax.Array) -> jax.Array:
        features = self.critic_torso(obs)
        if self.intrinsic_value:
            return jnp.stack([self.value_head(features), self.intrinsic_value_head(features)],
                             -1)
        return self.value_head(features)


def make_actor_critic(observation_space: Space, action_space: Space,
                      hidden_sizes: Sequence[int] = (64, 64),
                      activation: str = "tanh", intrinsic_value: bool = False) -> ActorCritic:
    """Categorical head for ``Discrete``, state-independent-std Gaussian for ``Box`` actions;
    ``intrinsic_value``: a second value head for an intrinsic reward (``ActorCritic``)."""
    if isinstance(action_space, Discrete):
        head: nn.Module = CategoricalHead(action_space.n)
    elif isinstance(action_space, Box):
        if len(action_space.shape) != 1:
            raise ValueError(f"continuous actions must be vectors, got shape {action_space.shape}")
        head = GaussianHead(action_space.shape[0])
    else:
        raise TypeError(f"unsupported action space {action_space}")
    return ActorCritic(actor_torso=make_torso(observation_space, hidden_sizes, activation),
                       critic_torso=make_torso(observation_space, hidden_sizes, activation),
                       policy_head=head, intrinsic_value=intrinsic_value)


class ContinuousCritic(nn.Module):
    """``Q(s, a)`` for continuous actions: an MLP over the concatenation ``[s, a]``."""

    hidden_sizes: Sequence[int] = (256, 256)
    activation: str = "relu"

    @nn.compact
    def __call__(self, obs: jax.Array, action: jax.Array) -> jax.Array:
        features = MLP(self.hidden_sizes, self.activation)(jnp.concatenate([obs, action], -1))
        return nn.Dense(1)(features).squeeze(-1)



class CriticEnsemble(nn.Module):
    """``num_members`` independent ``ContinuousCritic``s evaluated in one vmapped call.

    Returns ``[num_members, ...]`` Q-values (e.g. twin critics for TD3/SAC, larger ensembles for
    uncertainty-based methods).
    """

    num_members: int = 2
    hidden_sizes: Sequence[int] = (256, 256)
    activation: str = "relu"

    @nn.compact
    def __call__(self, obs: jax.Array, action: jax.Array) -> jax.Array:
        members = nn.vmap(ContinuousCritic, variable_axes={"params": 0},
                          split_rngs={"params": True}, in_axes=None, out_axes=0,
                          axis_size=self.num_members)
        return members(tuple(self.hidden_sizes), self.activation)(obs, action)
