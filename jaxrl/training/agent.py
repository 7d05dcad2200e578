"""The agent API every jaxrl algorithm follows, and the acting protocol shared by evaluation,
saved policies and dataset collection.

An algorithm module (``jaxrl/agents/<algo>.py``) provides:

- ``Config``: a flax struct deriving from its family's base config (``jaxrl.training``).
  Shape-deciding fields are static (``config.static``); numeric hyperparameters are leaves
  (``config.hyper``), so a batch of configs can be ``jax.vmap``-ed (a sweep). Each field
  declares its allowed range; ``config.check_config`` checks them all.
- ``make_agent(config, env, env_params, ...) -> Agent``: the pure pieces ``init(key) ->
  train_state`` and ``update(train_state) -> (train_state, metrics)`` (one iteration), plus
  ``act`` for evaluation. Numeric hyperparameters are never read in Python.
- ``make_train(config, env, env_params) -> train(key) -> (train_state, metrics)``:
  ``init`` followed by a ``lax.scan`` of ``update`` over ``agent.num_updates``; every metric
  comes back with a leading ``[num_updates]`` axis.

The CLI runs the same ``update`` in chunks, so a chunked (or checkpointed and resumed) run equals
the one-call run. Compile and vectorise from the outside::

    train = make_train(config, env, env_params)
    state, metrics = jax.jit(jax.vmap(train))(jax.random.split(jax.random.key(0), 16))
    # a sweep: jax.vmap(lambda c, k: make_train(c, env, env_params)(k))(configs, keys)

Acting. Most policies map an observation to an action: ``act(state, obs, key, deterministic)
-> action``. Two kinds need more, and say so in the ``Agent``:

- **memory** (``initial_carry`` set): ``act(state, obs, key, deterministic, carry) ->
  (action, carry)``; ``initial_carry(state, batch) -> carry`` is the carry of a fresh episode,
  restored wherever an episode ends;
- **planners on the true simulator** (``acts_on_env_state``): ``act`` also receives the env
  state (``act(state, obs, key, deterministic, env_state=...)``), so it can search from it.

``policy_fn(agent, state, deterministic)`` turns either kind into the one form every rollout,
evaluation and dataset collector uses: ``policy(key, obs, env_state, carry) -> (action, carry)``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

import jax

__all__ = ["Agent", "Metrics", "PolicyFn", "as_typed_key", "policy_fn", "train_from_agent"]

Metrics = dict[str, jax.Array]

PolicyFn = Callable[[jax.Array, jax.Array, Any, Any], tuple[jax.Array, Any]]
"""``policy(key, obs [B, ...], env_state [B, ...], carry) -> (actions [B, ...], carry)``."""


class Agent(NamedTuple):
    """The pure functions of one configured algorithm (see the module docstring)."""

    init: Callable[[jax.Array], Any]
    update: Callable[[Any], tuple[Any, Metrics]]
    act: Callable[..., Any]
    num_updates: int
    steps_per_update: int
    initial_steps: int = 0
    """env steps taken by ``init`` (an off-policy agent's random warm-up): after update ``k``
    (1-based) the run has taken ``initial_steps + k · steps_per_update`` env steps."""
    initial_carry: Callable[[Any, int], Any] | None = None
    """``initial_carry(train_state, batch) -> carry`` for a policy with memory; ``None`` for a
    memoryless one."""
    acts_on_env_state: bool = False
    """``act`` reads the env state (keyword ``env_state``), e.g. a planner on the simulator."""
    behaviour: Callable[[Any, jax.Array], Any] | None = None
    """``behaviour(train_state, obs [B, ...]) -> distrax.Distribution``: the distribution the
    agent samples its actions from, where it has one (datasets store its log-probs)."""
    step_unit: str = "env steps"
    """what ``steps_per_update`` counts: ``"env steps"``, or ``"gradient steps"`` for agents
    that learn from a fixed dataset (progress, plots and summaries say which)."""


def as_typed_key(key: jax.Array) -> jax.Array:
    """Accept a typed key (``jax.random.key``) or a legacy ``uint32[2]`` key; return a typed one."""
    if jax.dtypes.issubdtype(key.dtype, jax.dtypes.prng_key):
        return key
    return jax.random.wrap_key_data(key)


def policy_fn(agent: Agent, state: Any, deterministic: bool) -> tuple[PolicyFn, Callable[[int],
                                                                                         Any]]:
    """``(policy, initial_carry)`` in the general acting form (module docstring).

    ``initial_carry(batch)`` is ``()`` for a memoryless agent, whose ``policy`` passes the carry
    through untouched; the env state reaches ``act`` only where the agent asks for it.
    """
    extra = (lambda env_state: {"env_state": env_state}) if agent.acts_on_env_state else (
        lambda env_state: {})

    if agent.initial_carry is None:
        def policy(key, obs, env_state, carry):
            return agent.act(state, obs, key, deterministic, **extra(env_state)), carry

        return policy, lambda batch: ()

    def recurrent(key, obs, env_state, carry):
        return agent.act(state, obs, key, deterministic, carry, **extra(env_state))

    return recurrent, lambda batch: agent.initial_carry(state, batch)


def train_from_agent(agent: Agent) -> Callable[[jax.Array], tuple[Any, Metrics]]:
    """``train(key) = scan(update, init(key), length=num_updates)``."""

    def train(key: jax.Array) -> tuple[Any, Metrics]:
        state = agent.init(key)

        def step(state, _):
            return agent.update(state)

        return jax.lax.scan(step, state, None, length=agent.num_updates)

    return train
