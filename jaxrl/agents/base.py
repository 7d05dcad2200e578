"""The agent API every jaxrl algorithm follows.

An algorithm module (``jaxrl/agents/<algo>.py``) provides:

- ``Config``: a flax struct. Shape-deciding fields are static (``struct.field(pytree_node=False)``);
  numeric hyperparameters are leaves, so a batch of configs can be ``jax.vmap``-ed (a sweep).
- ``make_agent(config, env, env_params) -> Agent``: the pure pieces ``init(key) -> train_state``
  and ``update(train_state) -> (train_state, metrics)`` (one iteration), plus ``act`` for
  evaluation. Python-level validation (shapes, divisibility, action space) happens here; numeric
  hyperparameters are never read in Python.
- ``make_train(config, env, env_params) -> train(key) -> (train_state, metrics)``:
  ``init`` followed by a ``lax.scan`` of ``update`` over ``agent.num_updates``; every metric
  comes back with a leading ``[num_updates]`` axis.

The CLI runs the same ``update`` in chunks, so a chunked (or checkpointed and resumed) run equals
the one-call run. Compile and vectorise from the outside::

    train = make_train(config, env, env_params)
    state, metrics = jax.jit(jax.vmap(train))(jax.random.split(jax.random.key(0), 16))
    # a sweep: jax.vmap(lambda c, k: make_train(c, env, env_params)(k))(configs, keys)
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import optax

__all__ = ["Agent", "Metrics", "as_typed_key", "check_ranges", "flat_adam", "grad_norm",
           "train_from_agent"]

Metrics = dict[str, jax.Array]


class Agent(NamedTuple):
    """The pure functions of one configured algorithm (see the module docstring)."""

    init: Callable[[jax.Array], Any]
    update: Callable[[Any], tuple[Any, Metrics]]
    act: Callable[[Any, jax.Array, jax.Array, bool], jax.Array]
    num_updates: int
    steps_per_update: int
    initial_steps: int = 0
    """env steps taken by ``init`` (an off-policy agent's random warm-up): after update ``k``
    (1-based) the run has taken ``initial_steps + k · steps_per_update`` env steps."""


def as_typed_key(key: jax.Array) -> jax.Array:
    """Accept a typed key (``jax.random.key``) or a legacy ``uint32[2]`` key; return a typed one."""
    if jax.dtypes.issubdtype(key.dtype, jax.dtypes.prng_key):
        return key
    return jax.random.wrap_key_data(key)


def flat_adam(learning_rate: float | jax.Array | optax.Schedule, *, eps: float = 1e-8,
              max_grad_norm: float | jax.Array | None = None) -> optax.GradientTransformation:
    """Adam (after global-norm clipping at ``max_grad_norm`` if given) on the parameters raveled
    into one vector (``optax.flatten``): the same element-wise update as per-leaf Adam, but a
    handful of kernels instead of several per parameter leaf, which cut XLA's compile (and the
    run time of small, overhead-bound updates) on CPU. The agents' Adam optimizers all use it."""
    scale = optax.adam(learning_rate, eps=eps)
    if max_grad_norm is not None:
        scale = optax.chain(optax.clip_by_global_norm(max_grad_norm), scale)
    return optax.flatten(scale)


def grad_norm(grads: Any) -> jax.Array:
    """``‖g‖₂`` of a gradient pytree, over its leaves raveled and concatenated exactly as
    ``optax.flatten`` does: with a flattened optimizer that clips the global norm, XLA computes
    the norm once for both the clipping and this metric (one kernel instead of one per leaf)."""
    flat = jnp.concatenate([jnp.reshape(g, [-1]) for g in jax.tree.leaves(grads)])
    return optax.tree.norm(flat)


def train_from_agent(agent: Agent) -> Callable[[jax.Array], tuple[Any, Metrics]]:
    """``train(key) = scan(update, init(key), length=num_updates)``."""

    def train(key: jax.Array) -> tuple[Any, Metrics]:
        state = agent.init(key)

        def step(state, _):
            return agent.update(state)

        return jax.lax.scan(step, state, None, length=agent.num_updates)

    return train


def check_ranges(config: Any, **ranges: str) -> None:
    """Check concrete numeric fields: ``check_ranges(c, gamma="[0, 1]", learning_rate="> 0")``.

    A range is ``"> 0"``, ``">= 0"`` or a closed interval ``"[a, b]"``. Raises ``ValueError``
    naming the field, the allowed range and the value.
    """
    for name, allowed in ranges.items():
        value = float(getattr(config, name))
        if allowed == "> 0":
            ok = value > 0
        elif allowed == ">= 0":
            ok = value >= 0
        elif allowed.startswith("["):
            low, high = (float(v) for v in allowed.strip("[]").split(","))
            ok = low <= value <= high
        else:
            raise ValueError(f"unknown range {allowed!r}")
        if not ok:
            where = f"in {allowed}" if allowed.startswith("[") else allowed
            raise ValueError(f"{name} must be {where}, got {value:g}")
