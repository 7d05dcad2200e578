"""UCB1 (Auer et al., 2002) on a ``KArmedBandit-v0`` task.

Course notes §17 "Exploration", §17.2 (the UCB bonus ``B(N) = √(2 ln n / N)``): pull every arm
once, then ``argmax_a μ̂_a + √(2 ln t / N_a)``, optimism in the face of uncertainty; its
expected regret grows as ``O(Σ_a ln t / Δ_a)``. The strategy is ``jaxrl.bandits.ucb1``; the loop,
metrics and acting are ``bandits.make_bandit_agent``'s.
"""

from __future__ import annotations

from typing import Any

from jaxrl.bandits import BanditConfig, BanditState, make_bandit_agent, ucb1
from jaxrl.training.agent import Agent, train_from_agent
from jaxrl.training.config import check_config

__all__ = ["BanditState", "Config", "make_agent", "make_train"]


class Config(BanditConfig):
    """UCB1 has no hyperparameters beyond the run's length."""


def make_agent(config: Config, env: Any, env_params: Any) -> Agent:
    """Build UCB1's ``init`` / ``update`` / ``act`` (see ``jaxrl.training.agent``)."""
    check_config(config)
    return make_bandit_agent(config, env, env_params, ucb1)


def make_train(config: Config, env: Any, env_params: Any):
    """``train(key) -> (BanditState, metrics)``: the whole run as one pure function."""
    return train_from_agent(make_agent(config, env, env_params))
