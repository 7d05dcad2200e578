"""Thompson sampling on a ``KArmedBandit-v0`` task.

Course notes §17 "Exploration", §17.2 item 2 (Thompson sampling): keep a posterior over each arm's
mean, draw one sample per arm and pull the arm with the best sample, so each arm is pulled with
the posterior probability that it is the best. Beta(1, 1) priors for Bernoulli rewards, ``N(0,
1)`` priors with the env's known noise std for Gaussian ones (``jaxrl.bandits.thompson``; the
env params say which).
"""

from __future__ import annotations

from functools import partial
from typing import Any

from jaxrl.bandits import BanditConfig, BanditState, make_bandit_agent, thompson
from jaxrl.training.agent import Agent, train_from_agent
from jaxrl.training.config import check_config

__all__ = ["BanditState", "Config", "make_agent", "make_train"]


class Config(BanditConfig):
    """Thompson sampling takes its priors from the env's reward model."""


def make_agent(config: Config, env: Any, env_params: Any) -> Agent:
    """Build Thompson sampling's ``init`` / ``update`` / ``act`` (``jaxrl.training.agent``)."""
    check_config(config)
    strategy = partial(thompson, reward_kind=getattr(env_params, "reward_kind", "bernoulli"),
                       reward_std=getattr(env_params, "reward_std", 1.0))
    return make_bandit_agent(config, env, env_params, strategy)


def make_train(config: Config, env: Any, env_params: Any):
    """``train(key) -> (BanditState, metrics)``: the whole run as one pure function."""
    return train_from_agent(make_agent(config, env, env_params))
