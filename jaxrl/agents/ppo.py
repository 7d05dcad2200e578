"""Proximal Policy Optimisation (Schulman et al., 2017) with the details that make it work.

Course notes, actor-critic chapter: the clipped surrogate
``L^CLIP = E[min(ρ_t A_t, clip(ρ_t, 1-ε, 1+ε) A_t)]`` with ``A_t`` from GAE, a value loss and an
entropy bonus. The rest follows the "37 implementation details" list: orthogonal init
(√2 / 0.01 / 1), Adam with eps 1e-5, linear learning-rate annealing, advantage normalisation per
minibatch, optional value clipping, global gradient-norm clipping, and batch-level
observation / reward normalisation for continuous control. Time-limit truncation bootstraps from
``V(final_obs)``; only termination stops bootstrapping.
"""

from __future__ import annotations

from functools import partial
from typing import Any

import flax.linen as nn
import jax

from jaxrl import losses
from jaxrl.training import on_policy
from jaxrl.training.agent import Agent, Metrics, train_from_agent
from jaxrl.training.config import check_config, hyper, static
from jaxrl.training.extensions import RewardTransform

__all__ = ["Config", "TrainState", "make_agent", "make_train", "policy_change", "ppo_loss"]


class Config(on_policy.GradientConfig):
    """PPO hyperparameters (CleanRL / PureJaxRL names). Static fields decide shapes.

    Defaults are rl-zoo's classic-control settings (8 envs × 32 steps, 20 full-batch epochs,
    γ 0.98, λ 0.8, lr 1e-3 annealed, no entropy bonus): they solve CartPole-v1 on every seed we
    tried. For continuous control see `benchmarks/learning.py` (normalisation, more envs).
    """

    update_epochs: int = static(20, ">= 1")
    """passes over each rollout"""
    norm_adv: bool = static(True)
    """normalise advantages per minibatch"""
    clip_vloss: bool = static(False)
    """clip the value loss around the old values (by clip_eps)"""
    gamma: float = hyper(0.98, "[0, 1]")
    gae_lambda: float = hyper(0.8, "[0, 1]")
    """GAE λ"""
    clip_eps: float = hyper(0.2, "> 0")
    """PPO ratio clip ε"""

    @property
    def minibatch_size(self) -> int:
        return self.batch_size // self.num_minibatches


TrainState = on_policy.TrainState


def ppo_loss(network: Any, config: Config, params: Any,
             minibatch: dict[str, jax.Array]) -> tuple[jax.Array, Metrics]:
    """``L = -L^CLIP + c_v · L^V - c_e · H`` on one minibatch, advantages normalised within it."""
    dist, values = on_policy.forward(network, params, minibatch)
    log_probs = dist.log_prob(minibatch["action"])
    advantages = minibatch["advantages"]
    if config.norm_adv:
        advantages = (advantages - advantages.mean()) / (advantages.std() + 1e-8)
    policy_loss = losses.ppo_clip_loss(log_probs, minibatch["log_prob"], advantages,
                                       config.clip_eps)
    value_loss = losses.value_loss(
        values, minibatch["targets"], minibatch["value"] if config.clip_vloss else None,
        config.clip_eps if config.clip_vloss else None)
    entropy = dist.entropy().mean()
    total = policy_loss + config.vf_coef * value_loss - config.ent_coef * entropy
    return total, {"loss": total, "policy_loss": policy_loss, "value_loss": value_loss,
                   "entropy": entropy}


def policy_change(network: Any, config: Config, params: Any,
                  samples: dict[str, jax.Array]) -> Metrics:
    """How far one update moved the policy, on its whole rollout (``samples [T, N, ...]``):
    ``approx_kl``, the k3 estimate of ``KL(π_old ‖ π_new)``, and ``clip_fraction``, the share of
    samples whose ratio ``π_new / π_old`` lies outside ``[1-ε, 1+ε]``.

    The statistic of the update as a whole (Spinning Up measures its KL on the full batch too),
    from one policy pass after the epochs rather than at every minibatch step, which is slower
    (``benchmarks/RESULTS.md``).
    """
    dist = on_policy.forward(network, params, samples, method="policy")
    log_probs = dist.log_prob(samples["action"])
    return {"approx_kl": losses.approx_kl(log_probs, samples["log_prob"]),
            "clip_fraction": losses.clip_fraction(log_probs, samples["log_prob"],
                                                  config.clip_eps)}


def make_agent(config: Config, env: Any, env_params: Any,
               reward_transform: RewardTransform | None = None,
               network: nn.Module | None = None) -> Agent:
    """Build PPO's ``init`` / ``update`` / ``act`` (see ``jaxrl.training.agent``);
    ``reward_transform`` and a ``network`` (with memory or not) as in ``training.on_policy``."""
    check_config(config)
    parts = on_policy.setup(config, env, env_params, "PPO", network, reward_transform)
    optimizer = on_policy.make_optimizer(config, config.num_updates,
                                         config.update_epochs * config.num_minibatches)

    def estimate(batch: on_policy.Batch) -> tuple[jax.Array, jax.Array]:
        advantages = losses.gae(batch.reward, batch.value, batch.next_value,
                                batch.discounts(config.gamma), batch.done, config.gae_lambda)
        return advantages, advantages + batch.value

    return on_policy.make_gradient_agent(
        config, parts, env_params, optimizer, partial(ppo_loss, parts.network, config), estimate,
        config.update_epochs, config.num_minibatches,
        update_metrics=partial(policy_change, parts.network, config))


def make_train(config: Config, env: Any, env_params: Any,
               reward_transform: RewardTransform | None = None,
               network: nn.Module | None = None):
    """``train(key) -> (TrainState, metrics)``: the whole PPO run as one pure function.

    Every metric has a leading ``[num_updates]`` axis (``[seeds, num_updates]`` under vmap).
    """
    return train_from_agent(make_agent(config, env, env_params, reward_transform, network))
