"""Model-based RL versions 0.5, 1.0 and 1.5: fit a dynamics model, plan through it.

Course notes §11 (Model-Based RL) and 004 §10.1 (Algorithms 15–17). From random data ``D``:

- **0.5**: fit ``f(s, a)`` to minimise ``Σ_i ‖f(s_i, a_i) − s'_i‖²`` once, then plan through it
  (open loop: each plan of ``horizon`` actions is executed whole). The model never sees the
  states its plans lead to (distribution shift).
- **1.0**: the same, but the executed transitions are appended to ``D`` and the model refitted
  every ``num_steps`` env steps (one update).
- **1.5**: MPC: only the first planned action is executed and the agent replans every step, so
  model errors are corrected as they appear; refit every ``num_steps`` steps.

The model is the family's ensemble (``jaxrl.models.dynamics``), deterministic by default (the
notes' squared-error fit; ``ensemble_size = 1``: one model); with several members each plans on
its own copy of the state (``num_particles`` a multiple of ``ensemble_size``) and the planner
maximises their mean return. The loop is ``jaxrl.training.model_based``.
"""

from __future__ import annotations

from typing import Any

from jaxrl.models.dynamics import PROPAGATIONS
from jaxrl.training.agent import Agent, train_from_agent
from jaxrl.training.config import check_config, static
from jaxrl.training.model_based import ModelBasedConfig, ModelBasedState, make_model_based_agent

__all__ = ["VERSIONS", "Config", "TrainState", "make_agent", "make_train"]

VERSIONS = ("0.5", "1.0", "1.5")

TrainState = ModelBasedState


class Config(ModelBasedConfig):
    """The MBRL ladder: a version switch over the model-based family loop."""

    version: str = static("1.5", VERSIONS)
    """0.5: fit once on random data, execute whole plans; 1.0: also refit on the executed data;
    1.5: MPC, replan every step and refit"""
    ensemble_size: int = static(1, ">= 1")
    """members of the (bootstrap) ensemble"""
    probabilistic: bool = static(False)
    """Gaussian members fitted by NLL instead of deterministic ones by squared error"""
    num_particles: int = static(1, ">= 1")
    """copies of the state each candidate plan is simulated on (a multiple of
    ensemble_size)"""
    propagation: str = static("tsinf", PROPAGATIONS)
    """ts1: a fresh member per particle each step; tsinf: one member per particle"""


def make_agent(config: Config, env: Any, env_params: Any) -> Agent:
    """The MBRL agent of ``config.version`` on ``env`` (vector observations)."""
    check_config(config)
    return make_model_based_agent(
        config, env, env_params, probabilistic=config.probabilistic,
        refit=config.version != "0.5",
        replan_every=1 if config.version == "1.5" else config.horizon,
        num_particles=config.num_particles, propagation=config.propagation)


def make_train(config: Config, env: Any, env_params: Any):
    """``train(key) -> (train_state, metrics)``: ``init`` and a scan of ``update``."""
    return train_from_agent(make_agent(config, env, env_params))
