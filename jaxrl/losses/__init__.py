"""Pure return/advantage estimators and losses over time-major arrays. See each docstring."""

from jaxrl.losses.meta import dice_objective, leave_one_out_mean, magic_box
from jaxrl.losses.offline import (
    advantage_weights,
    cql_penalty,
    cql_sampled_penalty,
    expectile_loss,
    td3_bc_actor_loss,
)
from jaxrl.losses.policy import (
    approx_kl,
    clip_fraction,
    entropy_loss,
    policy_gradient_loss,
    ppo_clip_loss,
    value_loss,
)
from jaxrl.losses.q import (
    bellman_target,
    double_q_next_value,
    n_step_transition,
    sac_alpha_loss,
    soft_value,
)
from jaxrl.losses.returns import (
    discounted_returns,
    gae,
    lambda_returns,
    n_step_returns,
    reverse_linear_recurrence,
    td_errors,
)

__all__ = [
    "advantage_weights", "approx_kl", "bellman_target", "clip_fraction", "cql_penalty",
    "cql_sampled_penalty", "dice_objective", "discounted_returns", "double_q_next_value",
    "entropy_loss", "expectile_loss", "gae", "lambda_returns", "leave_one_out_mean", "magic_box",
    "n_step_returns", "n_step_transition",
    "policy_gradient_loss", "ppo_clip_loss", "reverse_linear_recurrence", "sac_alpha_loss",
    "soft_value", "td3_bc_actor_loss", "td_errors", "value_loss",
]
