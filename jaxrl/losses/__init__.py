"""Pure return/advantage estimators and losses over time-major arrays. See each docstring."""

from jaxrl.losses.policy import (
    approx_kl,
    clip_fraction,
    entropy_loss,
    policy_gradient_loss,
    ppo_clip_loss,
    value_loss,
)
from jaxrl.losses.returns import (
    discounted_returns,
    gae,
    lambda_returns,
    n_step_returns,
    td_errors,
)

__all__ = [
    "approx_kl", "clip_fraction", "discounted_returns", "entropy_loss", "gae", "lambda_returns",
    "n_step_returns", "policy_gradient_loss", "ppo_clip_loss", "td_errors", "value_loss",
]
