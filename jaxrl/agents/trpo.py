"""Trust Region Policy Optimisation (Schulman et al., 2015): NPG plus a backtracking line search.

Course notes: CS 234 / 224R / 285 notes, §1.10 "TRPO and PPO"; CS 224R "Actor Critic Methods",
*Trust region policy optimization*. TRPO solves

    max_θ' L(θ') = E[π_θ'(a|s) / π_θ(a|s) · Â]   subject to   E_s[KL(π_θ(·|s) ‖ π_θ'(·|s))] ≤ δ

approximately: the natural-gradient direction ``s = F⁻¹ g`` and the max-KL step
``β s = sqrt(2δ / sᵀFs) s`` of NPG (``jaxrl.agents.npg``), then a backtracking line search over
``θ + c^k β s``, ``k = 0 … backtrack_iters - 1``, that accepts the first candidate whose
*exact* surrogate improvement ``L(θ') - L(θ)`` is positive and whose *exact* mean KL is at most δ
(the quadratic model behind ``β`` can be wrong either way). If no candidate passes, the policy
is left unchanged for this update. Everything else — rollout, GAE, the separately fitted value
function, the metrics — is NPG's.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jax
from flax import struct

from jaxrl.agents import npg
from jaxrl.training import natural_gradient as ng
from jaxrl.training.agent import Agent, Metrics, train_from_agent
from jaxrl.training.config import check_ranges

__all__ = ["Config", "TrainState", "check_config", "line_search_step", "make_agent", "make_train",
           "validate"]

TrainState = npg.TrainState


class Config(npg.NaturalGradientConfig):
    """TRPO hyperparameters. Static fields decide shapes."""

    backtrack_iters: int = struct.field(pytree_node=False, default=10)
    """line-search candidates c^k · full step, k = 0 … backtrack_iters - 1"""
    backtrack_coef: float = 0.8
    """line-search shrink factor c"""


def validate(config: Config) -> None:
    """Check the static (shape-deciding) fields; raise ``ValueError`` saying what to change."""
    npg.validate(config)
    if config.backtrack_iters < 1:
        raise ValueError(f"backtrack_iters must be >= 1, got {config.backtrack_iters}")


def check_config(config: Config) -> None:
    """Range checks of the numeric fields of one concrete config (CLI / ``runner.run``)."""
    validate(config)
    check_ranges(config, **npg.RANGES, backtrack_coef="[0, 1]")


def line_search_step(config: Config, params: jax.Array, direction: jax.Array,
                     full_step: jax.Array, evaluate: npg.Evaluate) -> ng.StepResult:
    """TRPO's step rule: ``natural_gradient.backtracking_line_search`` along ``full_step``."""
    return ng.backtracking_line_search(evaluate, params, full_step, config.max_kl,
                                       config.backtrack_coef, config.backtrack_iters)


def make_agent(config: Config, env: Any, env_params: Any) -> Agent:
    """Build TRPO's ``init`` / ``update`` / ``act`` (see ``jaxrl.training.agent``)."""
    validate(config)
    return npg.make_natural_gradient_agent(config, env, env_params, line_search_step, "TRPO")


def make_train(config: Config, env: Any,
               env_params: Any) -> Callable[[jax.Array], tuple[TrainState, Metrics]]:
    """``train(key) -> (TrainState, metrics)``: the whole TRPO run as one pure function.

    Every metric has a leading ``[num_updates]`` axis (``[seeds, num_updates]`` under vmap).
    """
    return train_from_agent(make_agent(config, env, env_params))
