"""Deep Deterministic Policy Gradient (Lillicrap et al., 2016).

Course notes, off-policy actor-critic with continuous actions: a deterministic actor ``μ(s)``
ascends ``Q(s, μ(s))`` (the deterministic policy gradient) while one critic regresses to
``y = r + γ_m (1 - terminated) Q_target(s', μ_target(s'))``; both targets are Polyak-averaged
at rate τ. Exploration adds Gaussian noise to ``μ(s)``. It is TD3 (``jaxrl.agents.td3``) with a
single critic, no target-policy smoothing and an actor update every step.
"""

from __future__ import annotations

from typing import Any

from jaxrl.agents import td3
from jaxrl.training.agent import Agent, train_from_agent

__all__ = ["Config", "TrainState", "check_config", "make_agent", "make_train", "validate"]

TrainState = td3.TrainState


class Config(td3.DeterministicConfig):
    """DDPG hyperparameters (CleanRL names); defaults sized for Pendulum-v1."""


validate = td3.validate


def check_config(config: Config) -> None:
    """Range checks of one concrete config's numeric hyperparameters (CLI / ``runner.run``)."""
    td3.check_ranges_of(config)


def make_agent(config: Config, env: Any, env_params: Any) -> Agent:
    """Build DDPG's ``init`` / ``update`` / ``act`` (see ``jaxrl.training.agent``)."""
    validate(config)
    return td3.make_deterministic_agent(config, env, env_params, "ddpg", num_critics=1,
                                        policy_noise=0.0, noise_clip=0.0, policy_frequency=1)


def make_train(config: Config, env: Any, env_params: Any):
    """``train(key) -> (TrainState, metrics)``: the whole DDPG run as one pure function."""
    return train_from_agent(make_agent(config, env, env_params))
