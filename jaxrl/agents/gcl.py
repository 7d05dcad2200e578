"""Guided cost learning (Finn et al., 2016): sample-based MaxEnt IRL with importance weights.

Course notes §20, "Approximations in High Dimensions", and the tips of §14.2: the MaxEnt IRL
gradient ``(1/N) Σ_i ∇r_ψ(τ_i) − (1 / Σ_j w_j) Σ_j w_j ∇r_ψ(τ_j)`` with self-normalised weights
``w_j = exp(r_ψ(τ_j)) / π(τ_j)`` over the current policy's samples ``τ_j`` ("lazy" policy
optimisation: the policy improves a little between reward updates, and the weights correct for
its not being the soft-optimal policy of ``r_ψ``). The samples are the ``[num_steps]`` segments
of each env in a PPO rollout; the reward network ``r_ψ(s, a)`` (the ``disc_*`` fields) takes
``disc_steps`` Adam steps on each rollout, which PPO then optimises with its entropy bonus
(``training.adversarial.make_gcl_transform``). Learns from a dataset of demonstrations.
"""

from __future__ import annotations

from typing import Any

from jaxrl.datasets import Dataset
from jaxrl.training import adversarial, on_policy, proximal
from jaxrl.training.agent import Agent, train_from_agent
from jaxrl.training.config import check_config

__all__ = ["OFFLINE", "Config", "make_agent", "make_train"]

OFFLINE = True
"""The runner passes ``dataset=`` to ``make_agent``."""


class Config(adversarial.PPOImitationConfig):
    """PPO's fields and the reward network's (the disc_* fields of
    training.adversarial.PPOImitationConfig)."""


def make_agent(config: Config, env: Any, env_params: Any, dataset: Dataset | None = None) -> Agent:
    """PPO on the importance-weighted MaxEnt IRL reward (module docstring)."""
    check_config(config)
    expert = adversarial.demonstrations(dataset, env, env_params, "gcl",
                                        config.demo_subsample)
    transform = adversarial.make_gcl_transform(config, expert, env.action_space(env_params))
    parts = on_policy.setup(config, env, env_params, "GCL", reward_transform=transform)
    return proximal.make_agent(config, parts, env_params)


def make_train(config: Config, env: Any, env_params: Any, dataset: Dataset | None = None):
    """``train(key) -> (TrainState, metrics)``: the whole GCL run as one pure function."""
    return train_from_agent(make_agent(config, env, env_params, dataset))
