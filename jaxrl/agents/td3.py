"""Twin Delayed DDPG (Fujimoto et al., 2018): DDPG with the three fixes for overestimation.

Course notes, off-policy actor-critic / Q-learning with continuous actions: a deterministic
actor ``μ(s)`` maximises ``Q_1(s, μ(s))``; the critics regress to
``y = r + γ_m (1 - terminated) · min_i Q_target,i(s', ã')`` with
``ã' = clip(μ_target(s') + clip(ε, -c, c), -1, 1)``, ``ε ~ N(0, σ²)``. The fixes: clipped
double Q (two critics, the minimum in the target), target policy smoothing (``ε``) and delayed
actor and target updates (every ``policy_frequency`` critic updates). Exploration adds
``N(0, exploration_noise²)`` to ``μ(s)``. Actions live in ``[-1, 1]`` and are rescaled to the
env's bounds by ``RescaleAction``. ``jaxrl.agents.ddpg`` is this agent with one critic, no
smoothing and no delay (both built by ``training.deterministic``).

Pre-train & finetune (course notes 004): ``init_from`` a ``bc`` run of Box actions starts
``μ`` (and its target) at that run's greedy policy, BC's mean ``tanh(f(s))`` in ``[-1, 1]``
(``pretrain.deterministic_actor_from_run``); the critics start fresh. ``pretrain_dataset``
fits ``μ`` inside ``init`` instead: maximum likelihood under a fixed-σ Gaussian around ``μ(s)``,
i.e. least squares to the demonstrated actions in ``[-1, 1]`` (``pretrain.clone_into``).
``critic_warmup`` gradient steps then fit the critics alone, to ``μ``'s own returns, before its
first update (``training.deterministic``).
"""

from __future__ import annotations

from typing import Any

from jaxrl.training import pretrain
from jaxrl.training.agent import Agent, train_from_agent
from jaxrl.training.config import check_config, hyper, static
from jaxrl.training.deterministic import DeterministicConfig, make_deterministic_agent
from jaxrl.training.extensions import RewardTransform
from jaxrl.training.off_policy import ReplayExtensions, TrainState

__all__ = ["Config", "TrainState", "make_agent", "make_train"]


class Config(DeterministicConfig, pretrain.ReplayPretrainFields):
    """TD3 hyperparameters (CleanRL names); pretrain_ fields and critic_warmup: pre-train &
    finetune."""

    policy_noise: float = hyper(0.2, ">= 0")
    """std of the target-policy smoothing noise"""
    noise_clip: float = hyper(0.5, ">= 0")
    """clip of the target-policy smoothing noise"""
    policy_frequency: int = hyper(2, ">= 1")
    """critic updates per actor (and target) update"""
    init_from: str = static("")
    """start the actor from the greedy policy of this run directory (a bc run, Box actions);
    the critics are fresh (docs/demonstrations.md)"""


def make_agent(config: Config, env: Any, env_params: Any,
               reward_transform: RewardTransform | None = None,
               extensions: ReplayExtensions | None = None) -> Agent:
    """Build TD3's ``init`` / ``update`` / ``act`` (see ``jaxrl.training.agent``)."""
    check_config(config)
    agent = make_deterministic_agent(config, env, env_params, "td3", 2, config.policy_noise,
                                     config.noise_clip, config.policy_frequency,
                                     reward_transform, extensions)
    return pretrain.deterministic_start(agent, config, env, env_params)


def make_train(config: Config, env: Any, env_params: Any,
               reward_transform: RewardTransform | None = None,
               extensions: ReplayExtensions | None = None):
    """``train(key) -> (TrainState, metrics)``: the whole TD3 run as one pure function."""
    return train_from_agent(make_agent(config, env, env_params, reward_transform, extensions))
