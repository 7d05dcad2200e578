"""Direct preference optimisation (Rafailov et al., 2023).

Course notes §20.1 (Direct Preference Optimization): the KL-regularised RLHF objective has the
closed-form optimum ``π*(y) ∝ π_ref(y) exp(r(y) / β)``, so ``r = β log π/π_ref + β log Z`` and the
Bradley–Terry likelihood of the preferences becomes a loss on the policy itself::

    L_DPO(θ) = -E[log σ(β [log π_θ(y_w)/π_ref(y_w) - log π_θ(y_l)/π_ref(y_l)])]

(``losses.preferences.dpo_loss``; ``label_smoothing`` ε gives the conservative variant that
assumes labels flipped with probability ε). The policy starts at the reference; no reward model,
no sampling while training.
"""

from __future__ import annotations

from functools import partial
from typing import Any

from jaxrl.losses.preferences import dpo_loss
from jaxrl.training import preferences as family
from jaxrl.training.agent import Agent, train_from_agent
from jaxrl.training.config import check_config, hyper

__all__ = ["Config", "make_agent", "make_train"]


class Config(family.PairwiseConfig):
    """DPO: the pairwise fields, β and label smoothing."""

    beta: float = hyper(0.1, "> 0")
    """β: the strength of the implicit KL regularisation (smaller: further from the reference)"""
    label_smoothing: float = hyper(0.0, "[0, 1]")
    """ε of conservative DPO (0: plain DPO)"""


def make_agent(config: Config, env: Any, env_params: Any,
               reference: family.SequencePolicy | None = None,
               preferences: family.Preferences | None = None) -> Agent:
    """DPO's ``init`` / ``update`` / ``act``; ``reference`` and ``preferences`` in memory or from
    ``config.reference`` / ``config.preferences``."""
    check_config(config)
    return family.make_pairwise_agent(
        config, env, env_params, "dpo", reference, preferences,
        partial(dpo_loss, beta=config.beta, label_smoothing=config.label_smoothing))


def make_train(config: Config, env: Any, env_params: Any,
               reference: family.SequencePolicy | None = None,
               preferences: family.Preferences | None = None):
    """``train(key) -> (state, metrics)``: the whole run as one pure function."""
    return train_from_agent(make_agent(config, env, env_params, reference, preferences))
