"""ε-greedy on a ``KArmedBandit-v0`` task: the dithering baseline of course notes §17
"Exploration".

Every arm once, then with probability ε a uniformly random arm, else the best empirical mean
(``jaxrl.bandits.epsilon_greedy``). A constant ε keeps exploring at rate ε forever, so its
regret grows linearly, ``≈ ε t (mean gap)``: the contrast to UCB1's and Thompson sampling's
logarithmic regret.
"""

from __future__ import annotations

from functools import partial
from typing import Any

from jaxrl.bandits import BanditConfig, BanditState, epsilon_greedy, make_bandit_agent
from jaxrl.training.agent import Agent, train_from_agent
from jaxrl.training.config import check_config, hyper

__all__ = ["BanditState", "Config", "make_agent", "make_train"]


class Config(BanditConfig):
    """ε-greedy's exploration rate."""

    epsilon: float = hyper(0.1, "[0, 1]")
    """probability of pulling a uniformly random arm"""


def make_agent(config: Config, env: Any, env_params: Any) -> Agent:
    """Build ε-greedy's ``init`` / ``update`` / ``act`` (see ``jaxrl.training.agent``)."""
    check_config(config)
    return make_bandit_agent(config, env, env_params,
                             partial(epsilon_greedy, epsilon=config.epsilon))


def make_train(config: Config, env: Any, env_params: Any):
    """``train(key) -> (BanditState, metrics)``: the whole run as one pure function."""
    return train_from_agent(make_agent(config, env, env_params))
