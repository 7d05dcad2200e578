"""Recurrent actor-critics (GRU / LSTM) following the on-policy family's memory protocol.

``training.on_policy`` (module docstring) defines the protocol: ``initial_carry(batch)``, one
step ``__call__(obs, carry) -> (π, V, carry)`` and ``sequence(obs [T, B], done [T, B], carry)
-> (π [T, B], V [T, B])``. The network is an MLP torso, a flax recurrent cell (``nn.GRUCell``
or ``nn.OptimizedLSTMCell``), then a policy head (categorical or Gaussian) and a value head on
the cell's output::

    x_t = MLP(o_t),   (h_t, c_t) = cell((h_{t-1}, c_{t-1}), x_t),   π(·|h_t), V(h_t)

``sequence`` scans the same cell over time (back-propagation through the rollout segment) and
restores the carry to ``initial_carry`` after every step with ``done``, exactly as the rollout
did step by step, so a replayed minibatch of whole env sequences reproduces the log-probs of
collection. A recurrent policy is the course notes' "RNN-based meta-learning" policy
(meta-learning chapter): what it remembers of a trial is its hidden state.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import distrax
import flax.linen as nn
import jax
import jax.numpy as jnp

from jaxrl.envs.spaces import Box, Discrete, Space
from jaxrl.models.heads import CategoricalHead, GaussianHead, ValueHead
from jaxrl.models.torsos import MLP

__all__ = ["CELLS", "RecurrentActorCritic", "make_recurrent_actor_critic"]

CELLS = ("gru", "lstm")
"""The recurrent cells: ``nn.GRUCell`` (carry ``h``) and ``nn.OptimizedLSTMCell`` (``(c, h)``)."""


def _reset(carry: Any, done: jax.Array) -> Any:
    """Zeros (the initial carry) in the rows whose episode ended (``done [B]``)."""
    return jax.tree.map(lambda x: jnp.where(done[:, None], jnp.zeros_like(x), x), carry)


def _step(cell: nn.Module, carry: Any, inputs: tuple[jax.Array, jax.Array]):
    features, done = inputs
    carry, output = cell(carry, features)
    return _reset(carry, done), output


class RecurrentActorCritic(nn.Module):
    """MLP torso → GRU / LSTM cell → policy and value heads (module docstring)."""

    policy_head: nn.Module
    cell_type: str = "gru"
    recurrent_size: int = 64
    hidden_sizes: Sequence[int] = (64,)
    activation: str = "tanh"
    obs_ndim: int = 1

    def setup(self):
        if self.cell_type not in CELLS:
            raise ValueError(f"recurrent must be one of {', '.join(CELLS)}, got "
                             f"{self.cell_type!r}")
        self.torso = MLP(tuple(self.hidden_sizes), self.activation, obs_ndim=self.obs_ndim)
        cell = nn.GRUCell if self.cell_type == "gru" else nn.OptimizedLSTMCell
        self.cell = cell(features=self.recurrent_size)
        self.value_head = ValueHead()

    def initial_carry(self, batch: int) -> Any:
        """The carry of a fresh episode: zeros ``[batch, recurrent_size]`` (``(c, h)`` for the
        LSTM). A plain method: it reads no parameters."""
        zeros = jnp.zeros((batch, self.recurrent_size), jnp.float32)
        return zeros if self.cell_type == "gru" else (zeros, zeros)

    def __call__(self, obs: jax.Array, carry: Any
                 ) -> tuple[distrax.Distribution, jax.Array, Any]:
        """One step for a batch ``obs [B, ...]``: ``(π, V [B], next carry)``."""
        carry, output = self.cell(carry, self.torso(obs))
        return self.policy_head(output), self.value_head(output), carry

    def sequence(self, obs: jax.Array, done: jax.Array, carry: Any
                 ) -> tuple[distrax.Distribution, jax.Array]:
        """``T`` steps ``obs [T, B, ...]`` from ``carry [B]``, the carry reset after each step
        with ``done [T, B]``: ``(π [T, B], V [T, B])``."""
        scan = nn.scan(_step, variable_broadcast="params", split_rngs={"params": False})
        _, outputs = scan(self.cell, carry, (self.torso(obs), done))
        return self.policy_head(outputs), self.value_head(outputs)


def make_recurrent_actor_critic(observation_space: Space, action_space: Space, cell: str = "gru",
                                recurrent_size: int = 64,
                                hidden_sizes: Sequence[int] = (64,),
                                activation: str = "tanh") -> RecurrentActorCritic:
    """Categorical head for ``Discrete``, state-independent-std Gaussian for ``Box`` actions
    (as ``make_actor_critic``); flat observations only (the torso is an MLP)."""
    if len(observation_space.shape) == 3:
        raise ValueError("recurrent policies take flat observations (an MLP torso); image "
                         f"observations of shape {observation_space.shape} are not supported")
    if isinstance(action_space, Discrete):
        head: nn.Module = CategoricalHead(action_space.n)
    elif isinstance(action_space, Box) and len(action_space.shape) == 1:
        head = GaussianHead(action_space.shape[0])
    else:
        raise TypeError(f"recurrent policies take Discrete or vector Box actions, got "
                        f"{action_space}")
    return RecurrentActorCritic(policy_head=head, cell_type=cell, recurrent_size=recurrent_size,
                                hidden_sizes=tuple(hidden_sizes), activation=activation,
                                obs_ndim=len(observation_space.shape))
