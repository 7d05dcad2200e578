"""PETS: probabilistic ensembles with trajectory sampling (Chua et al. 2018).

Course notes §11 (Model-Based RL, "Uncertainty"): a bootstrap ensemble of ``M`` Gaussian
models captures both aleatoric (each member's ``σ²``) and epistemic (disagreement between
members) uncertainty. A candidate action sequence ``a_1..a_H`` is scored by simulating
``num_particles`` copies of the current state, each through a member, sampling
``s_{t+1} ~ N(μ_θ(s_t, a_t), σ²_θ(s_t, a_t))``, and averaging their returns
``J = (1/P) Σ_p Σ_t r(s_{t,p}, a_t)``; **TS-1** picks a fresh member per particle at every
step, **TS-∞** one per particle for the whole trajectory. CEM searches the sequences; MPC
executes the first action and replans every step (version 1.5), refitting the ensemble every
``num_steps`` env steps. The loop is ``jaxrl.training.model_based``.
"""

from __future__ import annotations

from typing import Any

from jaxrl.models.dynamics import PROPAGATIONS
from jaxrl.training.agent import Agent, train_from_agent
from jaxrl.training.config import check_config, static
from jaxrl.training.model_based import ModelBasedConfig, ModelBasedState, make_model_based_agent

__all__ = ["Config", "TrainState", "make_agent", "make_train"]

TrainState = ModelBasedState


class Config(ModelBasedConfig):
    """PETS: probabilistic ensemble, CEM over trajectory-sampled particles."""

    propagation: str = static("tsinf", PROPAGATIONS)
    """ts1: a fresh member per particle each step; tsinf: one member per particle"""
    num_particles: int = static(10, ">= 1")
    """particles each candidate is simulated on (a multiple of ensemble_size)"""
    num_steps: int = static(100, ">= 1")

    def validate(self) -> None:
        """The family's rules; particles split evenly among the members."""
        super().validate()
        if self.num_particles % self.ensemble_size:
            raise ValueError(f"num_particles = {self.num_particles} must be a multiple of "
                             f"ensemble_size = {self.ensemble_size}")


def make_agent(config: Config, env: Any, env_params: Any) -> Agent:
    """The PETS agent on ``env`` (vector observations)."""
    check_config(config)
    return make_model_based_agent(config, env, env_params, probabilistic=True, refit=True,
                                  replan_every=1, num_particles=config.num_particles,
                                  propagation=config.propagation)


def make_train(config: Config, env: Any, env_params: Any):
    """``train(key) -> (train_state, metrics)``: ``init`` and a scan of ``update``."""
    return train_from_agent(make_agent(config, env, env_params))
