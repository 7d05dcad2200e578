"""The imitation policy of BC and DAgger: logits for discrete actions, a bounded action else."""

from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp

from jaxrl.envs.spaces import Discrete, Space
from jaxrl.models.torsos import MLP

__all__ = ["ImitationPolicy", "imitation_action"]


class ImitationPolicy(nn.Module):
    """MLP policy: logits ``[..., n]`` for ``Discrete``; for ``Box`` the deterministic action
    ``μ(s) = low + (tanh(f(s)) + 1)(high - low) / 2`` within the bounds."""

    action_space: Space
    hidden_sizes: tuple[int, ...]
    activation: str

    @nn.compact
    def __call__(self, obs: jax.Array) -> jax.Array:
        features = MLP(self.hidden_sizes, self.activation)(obs)
        if isinstance(self.action_space, Discrete):
            return nn.Dense(self.action_space.n)(features)
        low, high = jnp.asarray(self.action_space.low), jnp.asarray(self.action_space.high)
        squashed = jnp.tanh(nn.Dense(self.action_space.shape[0])(features))
        return low + (squashed + 1.0) * (high - low) / 2


def imitation_action(outputs: jax.Array, key: jax.Array | None, discrete: bool,
                     deterministic: bool) -> jax.Array:
    """The action from ``ImitationPolicy``'s outputs: greedy (``argmax``) or sampled from the
    logits for discrete actions; the continuous output itself."""
    if not discrete:
        return outputs
    if deterministic:
        return jnp.argmax(outputs, -1).astype(jnp.int32)
    return jax.random.categorical(key, outputs).astype(jnp.int32)
