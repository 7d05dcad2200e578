"""Deep Deterministic Policy Gradient (Lillicrap et al., 2016).

Course notes, off-policy actor-critic with continuous actions: a deterministic actor ``μ(s)``
ascends ``Q(s, μ(s))`` (the deterministic policy gradient) while one critic regresses to
``y = r + γ_m (1 - terminated) Q_target(s', μ_target(s'))``; both targets are Polyak-averaged
at rate τ. Exploration adds Gaussian noise to ``μ(s)``. It is TD3's update
(``training.deterministic``) with a single critic, no target-policy smoothing and an actor
update every step.

Pre-train & finetune (course notes 004), as TD3's: ``init_from`` a ``bc`` run of Box actions
starts ``μ`` (and its target) at BC's greedy policy, ``pretrain_dataset`` fits ``μ`` by least
squares to the demonstrated actions inside ``init``, and ``critic_warmup`` gradient steps fit the
critic alone before ``μ``'s first update (``pretrain.deterministic_start``).
"""

from __future__ import annotations

from typing import Any

from jaxrl.training import pretrain
from jaxrl.training.agent import Agent, train_from_agent
from jaxrl.training.config import check_config, static
from jaxrl.training.deterministic import DeterministicConfig, make_deterministic_agent
from jaxrl.training.extensions import RewardTransform
from jaxrl.training.off_policy import ReplayExtensions, TrainState

__all__ = ["Config", "TrainState", "make_agent", "make_train"]


class Config(DeterministicConfig, pretrain.ReplayPretrainFields):
    """DDPG hyperparameters (CleanRL names); defaults sized for Pendulum-v1; init_from,
    pretrain_ fields and critic_warmup: pre-train & finetune."""

    init_from: str = static("")
    """start the actor from the greedy policy of this run directory (a bc run, Box actions);
    the critic is fresh (docs/demonstrations.md)"""


def make_agent(config: Config, env: Any, env_params: Any,
               reward_transform: RewardTransform | None = None,
               extensions: ReplayExtensions | None = None) -> Agent:
    """Build DDPG's ``init`` / ``update`` / ``act`` (see ``jaxrl.training.agent``)."""
    check_config(config)
    agent = make_deterministic_agent(config, env, env_params, "ddpg", num_critics=1,
                                     policy_noise=0.0, noise_clip=0.0, policy_frequency=1,
                                     reward_transform=reward_transform, extensions=extensions)
    return pretrain.deterministic_start(agent, config, env, env_params)


def make_train(config: Config, env: Any, env_params: Any,
               reward_transform: RewardTransform | None = None,
               extensions: ReplayExtensions | None = None):
    """``train(key) -> (TrainState, metrics)``: the whole DDPG run as one pure function."""
    return train_from_agent(make_agent(config, env, env_params, reward_transform, extensions))
