"""Planning by search on a dynamics function: random shooting, CEM and MPPI, receding horizon.

Course notes §10 (Optimal Control and Planning), open-loop planning: from the current state
``s_1`` find the action sequence maximising

    J(a_1, …, a_H) = Σ_{t=1..H} r(s_t, a_t),   s_{t+1} = f(s_t, a_t),

summed until the first terminal state, then (§11, model-predictive control) execute only
``a_1``, observe the next state and plan again. An open-loop plan is poor far ahead, but
replanning every step corrects it, so each plan can be cheap; and the plan of the previous
step, shifted by one, is a good start for the next (the warm start).

Every planner here is a pure function of the dynamics (``jaxrl.envs.dynamics.Dynamics``: the
true simulator, a learned model or a hand-made function)::

    action, plan = planner(key, dynamics, state, plan)

``plan`` is the carry: for a ``Box`` action space the mean action sequence ``[H, *shape]``,
for a ``Discrete(n)`` one the action probabilities ``[H, n]``; the returned plan is already
shifted by one step, its last step refilled from ``initial_plan`` (the middle of the bounds,
uniform probabilities). ``H = plan.shape[0]`` is the horizon. Candidate sequences are
simulated with one ``lax.scan`` over the horizon, ``vmap``-ed over the population, all with
the same per-step keys (common random numbers: candidates are compared on the same noise).

- **random shooting**: ``population`` sequences drawn uniformly from the action space, plus
  the warm-started plan itself; act on the best, carry it.
- **CEM** (cross-entropy method): sample from a Gaussian (continuous) or per-step categorical
  (discrete) around the plan, refit it to the ``elites`` best, repeat ``iterations`` times;
  the refit is smoothed, ``θ ← α θ + (1 - α) θ_elites``. Samples are clipped to the bounds.
- **MPPI** (model-predictive path integral, Williams et al. 2017): perturb the plan with
  fixed noise ``σ``, weight every sample by ``exp(J / λ)`` (temperature ``λ``: → 0 keeps
  only the best, → ∞ averages all), move the plan to the weighted mean.

Spreads are relative: a continuous ``noise`` σ is in half-ranges of the action bounds (one
unit where a bound is infinite); for discrete actions ``noise`` is the weight of the uniform
distribution mixed into the plan's probabilities before sampling.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp

from jaxrl.envs.dynamics import Dynamics
from jaxrl.envs.spaces import Box, Discrete, Space

__all__ = ["PLANNERS", "Planner", "cem", "initial_plan", "make_planner", "mppi", "plan_actions",
           "random_shooting", "sequence_returns", "shift_plan"]

PLANNERS = ("shooting", "cem", "mppi")

Planner = Callable[[jax.Array, Dynamics, Any, jax.Array], tuple[jax.Array, jax.Array]]
"""``planner(key, dynamics, state, plan) -> (action, next_plan)`` (see the module docstring)."""


def _check_positive(**sizes: int) -> None:
    for name, size in sizes.items():
        if size < 1:
            raise ValueError(f"{name} must be >= 1, got {size}")


def _check_space(space: Space) -> None:
    if not isinstance(space, Box | Discrete):
        raise TypeError(f"planning needs a Discrete or Box action space, got {space}")


def initial_plan(space: Space, horizon: int) -> jax.Array:
    """The plan with no information: the middle of the bounds (zero where a bound is infinite)
    ``[H, *shape]``, or uniform probabilities ``[H, n]``."""
    _check_space(space)
    _check_positive(horizon=horizon)
    if isinstance(space, Discrete):
        return jnp.full((horizon, space.n), 1.0 / space.n, jnp.float32)
    low, high = (jnp.broadcast_to(jnp.asarray(b, jnp.float32), space.shape)
                 for b in (space.low, space.high))
    middle = jnp.where(jnp.isfinite(low) & jnp.isfinite(high), (low + high) / 2, 0.0)
    return jnp.broadcast_to(middle, (horizon, *space.shape))


def shift_plan(plan: jax.Array, space: Space) -> jax.Array:
    """The receding horizon's warm start: ``plan[1:]`` followed by one step of
    ``initial_plan``."""
    return jnp.concatenate([plan[1:], initial_plan(space, 1)])


def plan_actions(plan: jax.Array, space: Space) -> jax.Array:
    """The plan's own action sequence ``[H, ...]``: the mean, or the most probable actions."""
    return jnp.argmax(plan, axis=-1).astype(jnp.int32) if isinstance(space, Discrete) else plan


def sequence_returns(key: jax.Array, dynamics: Dynamics, state: Any,
                     sequences: jax.Array) -> jax.Array:
    """``J [P]`` of the action sequences ``[P, H, ...]`` from ``state``: rewards summed until
    the first terminal state (the terminal step's reward counts). One ``lax.scan`` over the
    horizon, ``vmap``-ed over the sequences with shared step keys; a NaN return is ``-inf``."""
    return _returns(_raw_keys(key, sequences.shape[1:2]), dynamics, state, sequences)


def _raw_keys(key: jax.Array, shape: tuple[int, ...]) -> tuple[jax.Array, Any]:
    """``split(key, shape)`` as raw key data and the key's implementation.

    The search loops carry keys as raw data, wrapped again where a key is used: the key-reuse
    checker (``jax.debug_key_reuse``, run by the determinism tests) reports any typed key that
    passes through a ``lax.scan`` under ``vmap`` as consumed twice, and the MPC agent vmaps
    every search over its envs. Each key here is used once.
    """
    return jax.random.key_data(jax.random.split(key, shape)), jax.random.key_impl(key)


def _returns(step_keys: tuple[jax.Array, Any], dynamics: Dynamics, state: Any,
             sequences: jax.Array) -> jax.Array:
    """``sequence_returns`` with the step keys given (``_raw_keys``, ``[H]``)."""
    key_data, impl = step_keys

    def simulate(sequence):
        def step(carry, inputs):
            state, alive, total = carry
            action, step_key = inputs
            state, reward, terminated = dynamics(jax.random.wrap_key_data(step_key, impl=impl),
                                                 state, action)
            return (state, alive & ~terminated, total + jnp.where(alive, reward, 0.0)), None

        init = (state, jnp.ones((), bool), jnp.zeros((), jnp.float32))
        (_, _, total), _ = jax.lax.scan(step, init, (sequence, key_data))
        return total

    returns = jax.vmap(simulate)(sequences)
    return jnp.where(jnp.isnan(returns), -jnp.inf, returns)


def _action_scale(space: Box) -> jax.Array:
    low, high = (jnp.broadcast_to(jnp.asarray(b, jnp.float32), space.shape)
                 for b in (space.low, space.high))
    return jnp.where(jnp.isfinite(high - low), (high - low) / 2, 1.0)


def _standard_draws(key: jax.Array, space: Space, shape: tuple[int, ...],
                    plan: jax.Array) -> jax.Array:
    """The noise of ``shape`` (leading) sample sets around ``plan``: standard normals, or
    standard Gumbels per action (categorical sampling by ``argmax(log p + g)``). Drawn before
    the search loop, so the loop carries no keys."""
    if isinstance(space, Discrete):
        return jax.random.gumbel(key, (*shape, *plan.shape))
    return jax.random.normal(key, (*shape, *plan.shape))


def _sample(draws: jax.Array, space: Space, center: jax.Array, spread: jax.Array) -> jax.Array:
    """Sequences around ``(center, spread)`` from standard ``draws`` ``[P, H, ...]``: clipped
    Gaussians, or categorical draws from the probabilities mixed with ``spread`` of the uniform
    distribution."""
    if isinstance(space, Discrete):
        probs = (1.0 - spread) * center + spread / space.n
        return jnp.argmax(jnp.log(probs) + draws, axis=-1).astype(jnp.int32)
    return jnp.clip(center + spread * draws, space.low, space.high)


def _refit(space: Space, candidates: jax.Array, weights: jax.Array):
    """The ``(center, spread)`` fitted to the candidates with ``weights [P]`` (summing to 1):
    weighted mean and standard deviation, or weighted action frequencies (spread 0)."""
    if isinstance(space, Discrete):
        frequencies = jnp.einsum("p,phn->hn", weights, jax.nn.one_hot(candidates, space.n))
        return frequencies, jnp.zeros((), jnp.float32)
    mean = jnp.tensordot(weights, candidates, 1)
    variance = jnp.tensordot(weights, jnp.square(candidates - mean), 1)
    return mean, jnp.sqrt(variance)


def _first_action(plan: jax.Array, space: Space) -> jax.Array:
    return plan_actions(plan[:1], space)[0]


def random_shooting(key: jax.Array, dynamics: Dynamics, state: Any, plan: jax.Array,
                    space: Space, population: int) -> tuple[jax.Array, jax.Array]:
    """Random shooting: ``a = argmax_i J(a_i)`` over ``population`` uniform sequences (a normal
    draw around the plan where a bound is infinite) and the plan's own sequence."""
    _check_space(space)
    _check_positive(population=population, horizon=plan.shape[0])
    sample_key, simulate_key = jax.random.split(key)
    horizon = plan.shape[0]
    if isinstance(space, Discrete):
        sequences = jax.random.randint(sample_key, (population, horizon), 0, space.n)
    else:
        sequences = jax.vmap(jax.vmap(space.sample))(
            jax.random.split(sample_key, (population, horizon)))
        low = jnp.broadcast_to(jnp.asarray(space.low, jnp.float32), space.shape)
        high = jnp.broadcast_to(jnp.asarray(space.high, jnp.float32), space.shape)
        sequences = jnp.where(jnp.isfinite(low) & jnp.isfinite(high), sequences,
                              plan + sequences)
    sequences = jnp.concatenate([plan_actions(plan, space)[None], sequences])
    best = sequences[jnp.argmax(sequence_returns(simulate_key, dynamics, state, sequences))]
    best_plan = jax.nn.one_hot(best, space.n) if isinstance(space, Discrete) else best
    return best[0], shift_plan(best_plan, space)


def _iterate(key: jax.Array, dynamics: Dynamics, state: Any, plan: jax.Array, space: Space,
             population: int, iterations: int, noise: jax.Array, alpha: jax.Array,
             weigh: Callable[[jax.Array], jax.Array], adapt_spread: bool
             ) -> tuple[jax.Array, jax.Array]:
    """The sample → weigh → smoothed refit loop of CEM and MPPI, from the warm-started plan."""
    _check_space(space)
    _check_positive(population=population, horizon=plan.shape[0], iterations=iterations)
    if isinstance(space, Discrete):
        spread = jnp.asarray(jnp.minimum(noise, 1.0), jnp.float32)
    else:
        spread = jnp.broadcast_to(noise * _action_scale(space), plan.shape).astype(jnp.float32)

    draw_key, simulate_key = jax.random.split(key)
    draws = _standard_draws(draw_key, space, (iterations, population), plan)
    key_data, impl = _raw_keys(simulate_key, (iterations, plan.shape[0]))

    def iteration(search, inputs):
        center, spread = search
        draws, step_keys = inputs
        candidates = _sample(draws, space, center, spread)
        weights = weigh(_returns((step_keys, impl), dynamics, state, candidates))
        new_center, new_spread = _refit(space, candidates, weights)
        center = alpha * center + (1.0 - alpha) * new_center
        if adapt_spread:
            spread = alpha * spread + (1.0 - alpha) * new_spread
        return (center, spread), None

    (center, _), _ = jax.lax.scan(iteration, (plan, spread), (draws, key_data))
    return _first_action(center, space), shift_plan(center, space)


def cem(key: jax.Array, dynamics: Dynamics, state: Any, plan: jax.Array, space: Space,
        population: int, elites: int, iterations: int, noise: float | jax.Array,
        alpha: float | jax.Array) -> tuple[jax.Array, jax.Array]:
    """The cross-entropy method: ``iterations`` rounds of sampling ``population`` sequences
    around ``(μ, σ)`` (σ starts at ``noise``), then ``μ, σ ← α (μ, σ) + (1 - α)`` (mean, std of
    the ``elites`` best); acts on the final mean's first step. Discrete: μ are probabilities,
    refit to the elites' action frequencies."""
    _check_positive(elites=elites)
    if elites > population:
        raise ValueError(f"elites must be <= population, got elites={elites}, "
                         f"population={population}")

    def weigh(returns):
        best = jax.lax.top_k(returns, elites)[1]
        return jnp.zeros_like(returns).at[best].set(1.0 / elites)

    return _iterate(key, dynamics, state, plan, space, population, iterations, noise, alpha,
                    weigh, adapt_spread=True)


def mppi(key: jax.Array, dynamics: Dynamics, state: Any, plan: jax.Array, space: Space,
         population: int, temperature: float | jax.Array, noise: float | jax.Array,
         iterations: int = 1, alpha: float | jax.Array = 0.0) -> tuple[jax.Array, jax.Array]:
    """MPPI: sample ``population`` sequences with fixed spread ``noise`` around the plan,
    weights ``w_i = softmax(J_i / λ)``, ``μ ← α μ + (1 - α) Σ_i w_i a_i`` (``iterations``
    times); acts on the first step of ``μ``."""
    def weigh(returns):
        return jax.nn.softmax(returns / temperature)

    return _iterate(key, dynamics, state, plan, space, population, iterations, noise, alpha,
                    weigh, adapt_spread=False)


def make_planner(name: str, space: Space, *, population: int, elites: int, iterations: int,
                 noise: float | jax.Array, alpha: float | jax.Array,
                 temperature: float | jax.Array) -> Planner:
    """The planner ``name`` (one of ``PLANNERS``) with its settings bound:
    ``planner(key, dynamics, state, plan) -> (action, next_plan)``. Settings a planner does
    not use are ignored; ``ValueError`` for an unknown name or a size below 1."""
    _check_space(space)
    _check_positive(population=population, iterations=iterations, elites=elites)
    if name == "shooting":
        return lambda key, dynamics, state, plan: random_shooting(
            key, dynamics, state, plan, space, population)
    if name == "cem":
        if elites > population:
            raise ValueError(f"elites must be <= population, got elites={elites}, "
                             f"population={population}")
        return lambda key, dynamics, state, plan: cem(
            key, dynamics, state, plan, space, population, elites, iterations, noise, alpha)
    if name == "mppi":
        return lambda key, dynamics, state, plan: mppi(
            key, dynamics, state, plan, space, population, temperature, noise, iterations, alpha)
    raise ValueError(f"planner must be one of {', '.join(PLANNERS)}, got {name!r}")
