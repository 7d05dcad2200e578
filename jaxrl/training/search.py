"""Tree search on the true simulator with mctx: the root, the recurrent function, the search.

mctx (MuZero / Gumbel MuZero, Danihelka et al. 2022) searches with a *recurrent function*
``recurrent_fn(params, key, action, embedding) -> (RecurrentFnOutput, next_embedding)``. Here
the embedding is the simulator state (``jaxrl.envs.dynamics.simulator_state``) and the
recurrent function is one step of the env's own dynamics (``dynamics_from_env``), so the tree
is exact; the network only supplies the prior ``π(·|s)`` and the leaf value ``V(s)``:

    s', r, terminated = dynamics(key, s, a)
    RecurrentFnOutput(reward = r, discount = σ γ (1 - terminated),
                      prior_logits = logits(s'), value = V(s') (0 where terminated))

with ``σ = 1`` for a single-agent env and ``σ = -1`` for an env of two alternating players
(``alternating_players``, as ``jaxrl.envs.pgx_env``): ``V`` is from the view of the player to
move, so the mover's value of ``s'`` is ``-V(s')``. mctx backs up ``Q(s, a) = r + discount ·
V(s')``. Course notes §10 (Optimal Control and Planning: Monte Carlo tree search). mctx is an
optional dependency; ``require_mctx`` imports it or says which ``pip install`` to run.
"""

from __future__ import annotations

from collections.abc import Callable
from types import ModuleType
from typing import Any

import jax
import jax.numpy as jnp

from jaxrl.envs.dynamics import base_env, dynamics_from_env, simulator_state
from jaxrl.envs.gymnax_env import GymnaxEnv
from jaxrl.training.agent import as_typed_key

__all__ = ["SEARCHES", "Network", "legal_actions", "make_recurrent_fn", "make_search", "observer",
           "require_mctx", "turn_sign"]

SEARCHES = ("gumbel", "muzero")

Network = Callable[[Any, jax.Array], tuple[jax.Array, jax.Array]]
"""``network(params, obs [B, ...]) -> (logits [B, A], values [B])``."""


def require_mctx(algorithm: str) -> ModuleType:
    """``import mctx``, or a ``ValueError`` naming the extra to install."""
    try:
        import mctx
    except ImportError as error:
        raise ValueError(f"{algorithm} searches with mctx, which is not installed: "
                         f"pip install \"jaxrl[planning]\"") from error
    return mctx


def observer(env: Any, env_params: Any) -> Callable[[Any], jax.Array]:
    """``observe(simulator_state) -> obs``: the observation of a state the dynamics produced
    (``get_obs`` of a gymnax env; ``observe`` of an env that defines one); ``TypeError`` for
    other envs."""
    simulator = base_env(env)
    if hasattr(simulator, "observe"):
        return lambda state: simulator.observe(state, env_params)
    if isinstance(simulator, GymnaxEnv):
        return lambda state: simulator.gymnax_env.get_obs(state, env_params)
    raise TypeError(f"tree search needs the observation of a simulated state, which {env!r} "
                    f"does not give; gymnax envs and pgx games do")


def turn_sign(env: Any) -> float:
    """-1 for two alternating players (a state's value is the player to move's), else 1."""
    return -1.0 if getattr(base_env(env), "alternating_players", False) else 1.0


def legal_actions(env: Any, env_params: Any) -> Callable[[Any], jax.Array]:
    """``legal(states [B]) -> bool [B, A]``: the base env's ``legal_action_mask`` where it has
    one (a board game), else every action."""
    simulator = base_env(env)
    num_actions = env.action_space(env_params).n
    if hasattr(simulator, "legal_action_mask"):
        return jax.vmap(simulator.legal_action_mask)
    return lambda states: jnp.ones((jax.tree.leaves(states)[0].shape[0], num_actions), bool)


def make_recurrent_fn(env: Any, env_params: Any, network: Network) -> Callable[..., Any]:
    """mctx's ``recurrent_fn(params, key, action [B], states [B]) -> (RecurrentFnOutput,
    next_states)`` on the true simulator (module docstring); ``params = {"network": ...,
    "gamma": γ}``. Illegal moves get the lowest prior logit."""
    mctx = require_mctx("alphazero")
    dynamics = dynamics_from_env(env, env_params)
    observe = observer(env, env_params)
    legal = legal_actions(env, env_params)
    sign = turn_sign(env)

    def recurrent_fn(params, key, action, states):
        keys = jax.random.split(as_typed_key(key), action.shape[0])
        next_states, rewards, terminated = jax.vmap(dynamics)(keys, states, action)
        logits, values = network(params["network"], jax.vmap(observe)(next_states))
        output = mctx.RecurrentFnOutput(
            reward=rewards, discount=sign * params["gamma"] * (1.0 - terminated),
            prior_logits=_masked(logits, legal(next_states)),
            value=jnp.where(terminated, 0.0, values))
        return output, next_states

    return recurrent_fn


def _masked(logits: jax.Array, legal: jax.Array) -> jax.Array:
    return jnp.where(legal, logits, jnp.finfo(logits.dtype).min)


def make_search(env: Any, env_params: Any, network: Network, *, search: str,
                num_simulations: int, max_num_considered_actions: int) -> Callable[..., Any]:
    """``search(params, key, obs [B, ...], env_state [B], gamma, exploration, deterministic)
    -> mctx.PolicyOutput`` from the states of ``env`` (``simulator_state``).

    ``gumbel``: ``mctx.gumbel_muzero_policy`` with ``gumbel_scale = exploration`` (0 when
    ``deterministic``); its ``action_weights`` are the improved policy
    ``softmax(logits + σ(completed Q))``. ``muzero``: ``mctx.muzero_policy`` (PUCT) with Dirichlet
    noise of fraction ``exploration`` at the root (none when ``deterministic``, which also acts
    on the most visited action); its ``action_weights`` are the visit frequencies.
    """
    mctx = require_mctx("alphazero")
    if search not in SEARCHES:
        raise ValueError(f"search must be one of {', '.join(SEARCHES)}, got {search!r}")
    recurrent_fn = make_recurrent_fn(env, env_params, network)
    legal = legal_actions(env, env_params)

    def run(params, key, obs, env_state, gamma, exploration, deterministic):
        states = simulator_state(env, env_state)
        logits, values = network(params["network"], obs)
        root = mctx.RootFnOutput(prior_logits=_masked(logits, legal(states)), value=values,
                                 embedding=states)
        search_params = {"network": params["network"], "gamma": gamma}
        invalid = ~legal(states)
        # mctx gets the key's raw data: its action selection hands one key to both branches of
        # a lax.cond (only one runs), which jax.debug_key_reuse reports once vmapped into a
        # select; the recurrent function wraps what it receives back into a typed key.
        key = jax.random.key_data(key)
        if search == "gumbel":
            scale = 0.0 if deterministic else exploration
            return mctx.gumbel_muzero_policy(
                search_params, key, root, recurrent_fn, num_simulations, invalid,
                max_num_considered_actions=max_num_considered_actions, gumbel_scale=scale)
        output = mctx.muzero_policy(
            search_params, key, root, recurrent_fn, num_simulations, invalid,
            dirichlet_fraction=0.0 if deterministic else exploration)
        if deterministic:
            output = output.replace(action=jnp.argmax(output.action_weights, -1))
        return output

    return run
