"""A small autoregressive sequence model: a causal transformer (or a GRU) over token prefixes.

Course notes §21 (RL with sequence models): the state of a token task is the whole prefix, so
the policy reads it with a sequence model. ``SequenceModel`` embeds ``[BOS, s_0, …, s_{L-1}]``
(``L + 1`` positions, so position ``t`` has seen exactly ``s_{<t}``) and gives, per position,

- next-token logits ``[L + 1, V]`` (position ``t`` predicts ``s_t``);
- a scalar head ``[L + 1]``: the value ``V(s_{<t})`` of an actor-critic, or, read at the
  position after the last token, a reward model's score ``r(s)``.

Tokens are ids ``0 … V-1``; ``PAD = -1`` marks empty slots (always after the sequence). Pads are
masked out of attention as keys (a padding mask on top of the causal mask), so they never change
the outputs at real positions; losses mask them with ``token_mask``.

As an on-policy network (``make_agent(..., network=)`` of PPO) ``__call__(obs [B, L])`` returns
the next-token ``Categorical`` and the value at the prefix's end; ``sample`` decodes whole
sequences with a key (the same key gives the same sequences).
"""

from __future__ import annotations

import distrax
import flax.linen as nn
import jax
import jax.numpy as jnp

__all__ = ["MODEL_KINDS", "PAD", "SequenceModel", "prefix_length", "sample", "token_log_probs",
           "token_mask"]

PAD = -1
MODEL_KINDS = ("transformer", "gru")


def token_mask(tokens: jax.Array) -> jax.Array:
    """``1.0`` at written tokens, ``0.0`` at pads: ``tokens [..., L]`` → ``[..., L]``."""
    return (jnp.asarray(tokens) != PAD).astype(jnp.float32)


def prefix_length(tokens: jax.Array) -> jax.Array:
    """Tokens written before the first pad, ``[...]`` int32."""
    return jnp.cumprod(jnp.asarray(tokens) != PAD, axis=-1).sum(-1).astype(jnp.int32)


def token_log_probs(logits: jax.Array, tokens: jax.Array) -> jax.Array:
    """``log π(s_t | s_{<t})`` per token ``[..., L]`` from logits ``[..., L, V]``; 0 at pads."""
    ids = jnp.maximum(jnp.asarray(tokens).astype(jnp.int32), 0)
    log_probs = jnp.take_along_axis(jax.nn.log_softmax(logits), ids[..., None], -1)[..., 0]
    return log_probs * token_mask(tokens)


class _Block(nn.Module):
    width: int
    num_heads: int

    @nn.compact
    def __call__(self, x: jax.Array, mask: jax.Array) -> jax.Array:
        x = x + nn.MultiHeadDotProductAttention(num_heads=self.num_heads)(
            nn.LayerNorm()(x), mask=mask)
        hidden = nn.gelu(nn.Dense(4 * self.width)(nn.LayerNorm()(x)))
        return x + nn.Dense(self.width)(hidden)


class SequenceModel(nn.Module):
    """Next-token logits and a scalar head over ``tokens [B, L]`` (module docstring)."""

    vocab_size: int
    max_length: int
    width: int = 64
    num_layers: int = 2
    num_heads: int = 4
    kind: str = "transformer"

    def setup(self):
        # ids: 0 = pad, 1 = BOS, 2 + token for the tokens.
        self.embed = nn.Embed(self.vocab_size + 2, self.width)
        if self.kind == "transformer":
            self.positions = self.param("positions", nn.initializers.normal(0.02),
                                        (self.max_length + 1, self.width))
            self.blocks = [_Block(self.width, self.num_heads) for _ in range(self.num_layers)]
        elif self.kind == "gru":
            self.rnn = nn.RNN(nn.GRUCell(self.width))
        else:
            raise ValueError(f"unknown sequence model {self.kind!r}; choose one of "
                             f"{', '.join(MODEL_KINDS)}")
        self.norm = nn.LayerNorm()
        self.logits_head = nn.Dense(self.vocab_size)
        self.scalar_head = nn.Dense(1)

    def features(self, tokens: jax.Array) -> jax.Array:
        """``[B, L + 1, width]``: position ``t`` summarises ``[BOS, s_0, …, s_{t-1}]``."""
        tokens = jnp.asarray(tokens).astype(jnp.int32)
        ids = jnp.where(tokens == PAD, 0, tokens + 2)
        ids = jnp.concatenate([jnp.ones_like(ids[..., :1]), ids], axis=-1)
        x = self.embed(ids)
        if self.kind == "gru":
            return self.norm(self.rnn(x))
        x = x + self.positions[: ids.shape[-1]]
        mask = nn.combine_masks(nn.make_causal_mask(ids),
                                nn.make_attention_mask(jnp.ones_like(ids), ids > 0))
        for block in self.blocks:
            x = block(x, mask)
        return self.norm(x)

    def __call__(self, obs: jax.Array) -> tuple[distrax.Categorical, jax.Array]:
        """The next-token distribution and the value at the end of each prefix ``obs [B, L]``."""
        logits, values = self.heads(obs)
        at = jnp.minimum(prefix_length(obs), self.max_length - 1)[..., None]
        value_at = jnp.minimum(prefix_length(obs), self.max_length)[..., None]
        next_logits = jnp.take_along_axis(logits, at[..., None], -2)[..., 0, :]
        return (distrax.Categorical(logits=next_logits),
                jnp.take_along_axis(values, value_at, -1)[..., 0])

    def heads(self, tokens: jax.Array) -> tuple[jax.Array, jax.Array]:
        """``(logits [B, L, V], scalars [B, L + 1])``: logits ``t`` predict ``s_t``; scalar ``t``
        is the head after ``t`` tokens."""
        x = self.features(tokens)
        return self.logits_head(x[..., :-1, :]), self.scalar_head(x)[..., 0]

    def policy(self, obs: jax.Array) -> distrax.Categorical:
        return self(obs)[0]

    def value(self, obs: jax.Array) -> jax.Array:
        return self(obs)[1]

    def logits(self, tokens: jax.Array) -> jax.Array:
        """Teacher-forced next-token logits ``[B, L, V]``."""
        return self.heads(tokens)[0]

    def score(self, tokens: jax.Array) -> jax.Array:
        """The scalar head after the whole sequence ``[B]``: a reward model's ``r(s)``."""
        scalars = self.heads(tokens)[1]
        return jnp.take_along_axis(scalars, prefix_length(tokens)[..., None], -1)[..., 0]


def sample(model: SequenceModel, params, key: jax.Array, batch: int,
           end_token: int = 0) -> tuple[jax.Array, jax.Array]:
    """``(tokens [batch, L], log_probs [batch, L])`` decoded token by token with ``key``.

    Pads follow ``end_token``; ``log_probs`` are ``log π(s_t | s_{<t})`` (0 at pads).
    """
    length = model.max_length

    def step(carry, inputs):
        tokens, ended = carry
        t, step_key = inputs
        logits = model.apply(params, tokens, method="logits")[:, t]
        token = jax.random.categorical(step_key, logits)
        log_prob = jax.nn.log_softmax(logits)[jnp.arange(batch), token]
        token = jnp.where(ended, PAD, token)
        tokens = tokens.at[:, t].set(token)
        return (tokens, ended | (token == end_token)), jnp.where(ended, 0.0, log_prob)

    start = (jnp.full((batch, length), PAD, jnp.int32), jnp.zeros(batch, bool))
    (tokens, _), log_probs = jax.lax.scan(
        step, start, (jnp.arange(length), jax.random.split(key, length)))
    return tokens, log_probs.T
