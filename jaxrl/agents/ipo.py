"""Identity preference optimisation (Azar et al., 2023): DPO with a squared loss.

Course notes §20.1 (Direct Preference Optimization) for the setting. With deterministic
preferences DPO's logistic loss is minimised only as the log-ratio margin ``h`` goes to infinity,
so its KL regularisation fades; IPO regresses ``h`` onto a finite target instead::

    L_IPO(θ) = E[(h - 1/(2τ))²],  h = log π_θ(y_w)/π_ref(y_w) - log π_θ(y_l)/π_ref(y_l)

(``losses.preferences.ipo_loss``). The policy starts at the reference.
"""

from __future__ import annotations

from functools import partial
from typing import Any

from jaxrl.losses.preferences import ipo_loss
from jaxrl.training import preferences as family
from jaxrl.training.agent import Agent, train_from_agent
from jaxrl.training.config import check_config, hyper

__all__ = ["Config", "make_agent", "make_train"]


class Config(family.PairwiseConfig):
    """IPO: the pairwise fields and τ."""

    tau: float = hyper(0.1, "> 0")
    """τ: the margin target is 1/(2τ) (smaller: further from the reference)"""


def make_agent(config: Config, env: Any, env_params: Any,
               reference: family.SequencePolicy | None = None,
               preferences: family.Preferences | None = None) -> Agent:
    """IPO's ``init`` / ``update`` / ``act``; inputs as DPO's."""
    check_config(config)
    return family.make_pairwise_agent(config, env, env_params, "ipo", reference, preferences,
                                      partial(ipo_loss, tau=config.tau))


def make_train(config: Config, env: Any, env_params: Any,
               reference: family.SequencePolicy | None = None,
               preferences: family.Preferences | None = None):
    """``train(key) -> (state, metrics)``: the whole run as one pure function."""
    return train_from_agent(make_agent(config, env, env_params, reference, preferences))
