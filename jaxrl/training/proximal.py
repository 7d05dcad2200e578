"""PPO's pieces shared by the agents that improve a policy with the clipped surrogate (PPO,
RL²): the config fields, the loss, the update statistics and the agent built from a setup.

Course notes, actor-critic chapter: ``L^CLIP = E[min(ρ_t A_t, clip(ρ_t, 1-ε, 1+ε) A_t)]`` with
``A_t`` from GAE, a value loss and an entropy bonus (``jaxrl.agents.ppo`` documents the
implementation details). An agent that is PPO on a transformed problem (RL²: PPO on trials of a
task family, with a recurrent policy) builds its ``on_policy.setup`` and calls ``make_agent``.
"""

from __future__ import annotations

from functools import partial
from typing import Any

import jax

from jaxrl import losses
from jaxrl.training import on_policy
from jaxrl.training.agent import Agent, Metrics
from jaxrl.training.config import hyper, static

__all__ = ["ProximalConfig", "make_agent", "policy_change", "ppo_loss"]


class ProximalConfig(on_policy.GradientConfig):
    """The clipped-surrogate fields (CleanRL / PureJaxRL names). Static fields decide shapes."""

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


def ppo_loss(network: Any, config: ProximalConfig, params: Any,
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


def policy_change(network: Any, config: ProximalConfig, params: Any,
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


def make_agent(config: ProximalConfig, parts: on_policy.OnPolicySetup,
               env_params: Any) -> Agent:
    """PPO's agent on ``parts`` (``on_policy.setup``): Adam (annealed), GAE(γ, λ) advantages
    and targets ``A + V``, ``update_epochs`` passes of ``num_minibatches`` steps on
    ``ppo_loss``; ``approx_kl`` and ``clip_fraction`` of each update."""
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
