"""Natural policy gradient (Kakade, 2001).

Course notes: CS 285 (Preston Fu), §9 "Advanced Policy Gradients", *Natural gradient*. With the
importance-sampled surrogate ``L(θ') = E[π_θ'(a|s) / π_θ(a|s) · Â]`` (its gradient at ``θ' = θ``
is the policy gradient ``g``) and the Fisher matrix ``F`` (the Hessian of the mean
``KL(π_θ ‖ π_θ')`` at ``θ' = θ``), the update

    θ ← θ + α s,   s = F⁻¹ g,   α = sqrt(2δ / sᵀ F s)

maximises the linearised surrogate inside the quadratic trust region ``½ Δθᵀ F Δθ ≤ δ``
(δ = ``max_kl``); ``step_size > 0`` takes a fixed ``α`` instead. The rollout, the
conjugate-gradient solve and the separately fitted value function are the natural-gradient
agent's (``jaxrl.training.natural_gradient``); NPG's step rule takes the step as it is.

Pre-train & finetune (course notes 004) as for the gradient agents: ``init_from`` a ``bc`` run,
``pretrain_dataset``, ``critic_warmup`` (``training.natural_gradient``).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from jaxrl.training import natural_gradient as ng
from jaxrl.training.config import hyper

__all__ = ["Config", "TrainState", "make_agent", "make_train", "natural_step"]

TrainState = ng.TrainState


class Config(ng.NaturalGradientConfig):
    """NPG hyperparameters. Static fields decide shapes."""

    step_size: float = hyper(0.0, ">= 0")
    """fixed step α of θ += α F⁻¹g; 0 takes the max-KL step α = sqrt(2 max_kl / gᵀF⁻¹g)"""


def natural_step(config: Config, params: jax.Array, direction: jax.Array, full_step: jax.Array,
                 evaluate: ng.Evaluate) -> ng.StepResult:
    """NPG's step rule: ``θ + full_step``, or ``θ + α s`` with a fixed ``α = step_size > 0``."""
    step = jnp.where(config.step_size > 0, config.step_size * direction, full_step)
    improvement, kl = evaluate(params + step)
    return ng.StepResult(params=params + step, step_fraction=jnp.ones((), params.dtype),
                         num_backtracks=jnp.zeros((), jnp.int32), improvement=improvement, kl=kl)


make_agent, make_train = ng.entry_points(natural_step, "NPG")
