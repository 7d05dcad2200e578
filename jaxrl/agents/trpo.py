"""Trust Region Policy Optimisation (Schulman et al., 2015): a natural-gradient step with a
backtracking line search.

Course notes: CS 234 / 224R / 285 notes, §1.10 "TRPO and PPO"; CS 224R "Actor Critic Methods",
*Trust region policy optimization*. TRPO solves

    max_θ' L(θ') = E[π_θ'(a|s) / π_θ(a|s) · Â]   subject to   E_s[KL(π_θ(·|s) ‖ π_θ'(·|s))] ≤ δ

approximately: the natural-gradient direction ``s = F⁻¹ g`` and the max-KL step
``β s = sqrt(2δ / sᵀFs) s`` (``jaxrl.training.natural_gradient``), then a backtracking line
search over ``θ + c^k β s``, ``k = 0 … backtrack_iters - 1``, that accepts the first candidate
whose *exact* surrogate improvement ``L(θ') - L(θ)`` is positive and whose *exact* mean KL is at
most δ (the quadratic model behind ``β`` can be wrong either way). If no candidate passes, the
policy is left unchanged for this update. Everything else — rollout, GAE, the separately fitted
value function, the metrics — is the natural-gradient agent's, as for NPG.

Pre-train & finetune (course notes 004) as for the gradient agents: ``init_from`` a ``bc`` run,
``pretrain_dataset``, ``critic_warmup`` (``training.natural_gradient``).
"""

from __future__ import annotations

import jax

from jaxrl.training import natural_gradient as ng
from jaxrl.training.config import hyper, static

__all__ = ["Config", "TrainState", "line_search_step", "make_agent", "make_train"]

TrainState = ng.TrainState


class Config(ng.NaturalGradientConfig):
    """TRPO hyperparameters. Static fields decide shapes."""

    backtrack_iters: int = static(10, ">= 1")
    """line-search candidates c^k · full step, k = 0 … backtrack_iters - 1"""
    backtrack_coef: float = hyper(0.8, "[0, 1]")
    """line-search shrink factor c"""


def line_search_step(config: Config, params: jax.Array, direction: jax.Array,
                     full_step: jax.Array, evaluate: ng.Evaluate) -> ng.StepResult:
    """TRPO's step rule: ``natural_gradient.backtracking_line_search`` along ``full_step``."""
    return ng.backtracking_line_search(evaluate, params, full_step, config.max_kl,
                                       config.backtrack_coef, config.backtrack_iters)


make_agent, make_train = ng.entry_points(line_search_step, "TRPO")
