"""Token tasks: writing a sequence, one token per step, for a reward hidden from the learner.

Course notes §20.1 (RLHF) and §21 (RL with sequence models): a language model is a policy whose
state is the prefix and whose action is the next token. These envs make that concrete at toy
scale, so SFT, reward models, RLHF, DPO and IPO are scored exactly against the true reward:

- vocabulary ``{0, …, vocab_size-1}``: token ``0`` is the end token ``EOS``, ``1…`` are symbols;
- observation: the sequence written so far, ``float32 [max_length]``, ``PAD = -1`` in the slots
  not yet written (float, like every jaxrl observation; ``models.sequence`` reads it as tokens);
- an episode ends when the policy writes ``EOS`` or fills ``max_length`` tokens. Both are
  *terminations*: the sequence is complete and nothing follows it, so no value is bootstrapped
  from it (a time-limit truncation would bootstrap from a state the policy never acts in);
- the reward is 0 on every step but the last, where it is the task's score of the whole sequence
  (``sequence_reward``), in ``[0, 1]``.

Tasks (``Tokens-<task>-v0``):

- ``sort``: ``#{i : s_i < s_{i+1}} / (L - 1)`` over the symbols before ``EOS``: long strictly
  increasing runs score 1;
- ``count``: occurrences of the bigram ``(3, 7)`` divided by ``L // 2``;
- ``sum``: ``max(0, 1 - |Σ s_i - 42| / 42)``: the symbols must add up to 42.

``demonstrator(task)`` is the scripted expert of each task (``jaxrl dataset --policy expert
--expert-algo scripted --noise ε`` makes it ε-greedy): SFT on its noisy demonstrations is
mediocre, which leaves the preference methods something to improve.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import struct

from jaxrl.envs.core import TimeLimitedEnv
from jaxrl.envs.experts import SCRIPTED_EXPERTS
from jaxrl.envs.registry import register
from jaxrl.envs.spaces import Box, Discrete

__all__ = ["EOS", "PAD", "TASKS", "TokenParams", "TokenState", "TokenTask", "demonstrator",
           "sequence_reward", "symbol_count"]

EOS = 0
PAD = -1
TASKS = ("sort", "count", "sum")
_BIGRAM = (3, 7)
_TARGET_SUM = 42


class TokenParams(struct.PyTreeNode):
    """The task's sizes (static: they decide shapes)."""

    vocab_size: int = struct.field(pytree_node=False, default=16)
    max_length: int = struct.field(pytree_node=False, default=16)

    @property
    def max_steps_in_episode(self) -> int:
        """The longest episode (evaluation windows read it); never a truncation: a full sequence
        terminates."""
        return self.max_length


class TokenState(struct.PyTreeNode):
    """The tokens written so far ``[max_length]`` (``PAD`` after them) and their number."""

    tokens: jax.Array
    length: jax.Array


def symbol_count(tokens: jax.Array) -> jax.Array:
    """How many symbols precede the end: ``tokens [..., L]`` with ``EOS`` / ``PAD`` after them."""
    written = jnp.cumprod(tokens > EOS, axis=-1)
    return written.sum(-1)


def sequence_reward(task: str, tokens: jax.Array) -> jax.Array:
    """The hidden score in ``[0, 1]`` of complete sequences ``tokens [..., L]`` (int or float
    ids, ``EOS`` / ``PAD`` after the symbols); see the module docstring for each task."""
    tokens = jnp.asarray(tokens).astype(jnp.int32)
    length = tokens.shape[-1]
    inside = jnp.arange(length) < symbol_count(tokens)[..., None]
    pair = inside[..., 1:] & inside[..., :-1]
    if task == "sort":
        return (pair & (tokens[..., 1:] > tokens[..., :-1])).sum(-1) / max(length - 1, 1)
    if task == "count":
        hits = pair & (tokens[..., :-1] == _BIGRAM[0]) & (tokens[..., 1:] == _BIGRAM[1])
        return hits.sum(-1) / max(length // 2, 1)
    if task == "sum":
        total = jnp.where(inside, tokens, 0).sum(-1)
        return jnp.maximum(0.0, 1.0 - jnp.abs(total - _TARGET_SUM) / _TARGET_SUM)
    raise ValueError(f"unknown token task {task!r}; choose one of {', '.join(TASKS)}")


class TokenTask(TimeLimitedEnv):
    """One token task (module docstring) in the jaxrl env protocol."""

    def __init__(self, task: str):
        if task not in TASKS:
            raise ValueError(f"unknown token task {task!r}; choose one of {', '.join(TASKS)}")
        self.task = task
        self.env_id = f"Tokens-{task}-v0"

    def reset_env(self, key: jax.Array, params: TokenParams) -> tuple[jax.Array, TokenState]:
        tokens = jnp.full(params.max_length, PAD, jnp.int32)
        return tokens.astype(jnp.float32), TokenState(tokens, jnp.zeros((), jnp.int32))

    def step_env(self, key: jax.Array, state: TokenState, action: jax.Array,
                 params: TokenParams):
        action = jnp.asarray(action, jnp.int32)
        tokens = state.tokens.at[state.length].set(action)
        length = state.length + 1
        terminated = (action == EOS) | (length >= params.max_length)
        reward = jnp.where(terminated, sequence_reward(self.task, tokens), 0.0)
        return (tokens.astype(jnp.float32), TokenState(tokens, length), reward, terminated, {})

    def observation_space(self, params: TokenParams) -> Box:
        return Box(float(PAD), float(params.vocab_size - 1), (params.max_length,))

    def action_space(self, params: TokenParams) -> Discrete:
        return Discrete(params.vocab_size)


def demonstrator(task: str):
    """The scripted expert ``expert(obs [B, L]) -> tokens [B]`` of ``task``: ``sort`` counts
    up from 1, ``count`` repeats the bigram (3, 7), ``sum`` writes 7 six times; each then ends."""
    def expert(obs: jax.Array) -> jax.Array:
        tokens = obs.astype(jnp.int32)
        length = (tokens != PAD).sum(-1)
        last = jnp.take_along_axis(tokens, jnp.maximum(length - 1, 0)[..., None], -1)[..., 0]
        if task == "sort":
            nxt = jnp.where(length == 0, 1, last + 1)
            return jnp.where(nxt < 16, nxt, EOS).astype(jnp.int32)
        if task == "count":
            return jnp.where(length % 2 == 0, _BIGRAM[0], _BIGRAM[1]).astype(jnp.int32)
        return jnp.where(length < _TARGET_SUM // 7, 7, EOS).astype(jnp.int32)

    return expert


def _factory(task: str):
    def factory(vocab_size: int = 16, max_length: int = 16) -> tuple[TokenTask, TokenParams]:
        if vocab_size < 16 or max_length < 2:
            raise ValueError(f"Tokens-{task}-v0 needs vocab_size >= 16 (its symbols) and "
                             f"max_length >= 2, got {vocab_size}, {max_length}")
        return TokenTask(task), TokenParams(vocab_size=vocab_size, max_length=max_length)

    return factory


for _task in TASKS:
    register(f"Tokens-{_task}-v0", _factory(_task))
    SCRIPTED_EXPERTS[f"Tokens-{_task}-v0"] = demonstrator(_task)
