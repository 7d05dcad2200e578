"""Model-based RL with a latent-space world model, planning in latent space.

Course notes 004 §10.1.4 (Algorithm 18, "Model-based RL with latent space models"):

1. run a base policy (uniform random actions, ``random_steps`` per env) and collect
   ``D = {(o, a, r, o')}``;
2. every ``num_steps`` env steps (one update) learn the encoder ``g_ψ(o)``, the latent dynamics
   ``p_φ(s_{t+1} | s_t, a_t)``, the decoder ``p_φ(o_t | s_t)`` and the reward model
   ``p_φ(r_t | s_t, a_t)`` jointly, by ``model_steps`` AdamW steps on minibatches of ``D``
   (the objective: ``jaxrl.models.world_model``);
3. plan in latent space: encode the observation, search action sequences through the learned
   latent dynamics and reward with CEM (``planner``, default; shooting and MPPI also take it),
   execute the first action and replan every step (MPC); append ``(o, a, r, o')`` to ``D``.

Acting is by planning, not by an actor-critic trained in imagination. The loop (collection,
fitting, planning, evaluation) is the model-based family's (``training.model_based``), the same
as PETS' with the latent model in place of the ensemble: one ``jax.jit``, vmapped over seeds,
resumed bitwise. Works on vector observations (Pendulum-v1) and on images (Catch-bsuite's grid,
MinAtar), discrete or continuous actions. Metrics: ``episode_return``, ``model_loss`` and its
four parts (``dynamics_loss``, ``reconstruction_loss``, ``reward_loss``, ``termination_loss``),
``eval_return`` with ``eval_episodes > 0``.
"""

from __future__ import annotations

from typing import Any

from jaxrl.models.world_model import LOSS_PARTS, make_world_model
from jaxrl.training.agent import Agent, train_from_agent
from jaxrl.training.config import check_config, static
from jaxrl.training.model_based import (
    ModelBasedState,
    PlanningLoopConfig,
    PlanningModel,
    fit_uniform,
    make_planning_agent,
)

__all__ = ["Config", "TrainState", "make_agent", "make_train"]

TrainState = ModelBasedState


class Config(PlanningLoopConfig):
    """The latent world model: the model-based loop's fields and the latent size."""

    latent_dim: int = static(8, ">= 1")
    """size of the latent state s = g_ψ(o) the model predicts and plans in"""
    model_steps: int = static(500, ">= 1")
    batch_size: int = static(128, ">= 1")


def make_agent(config: Config, env: Any, env_params: Any) -> Agent:
    """The world-model agent on ``env`` (``Box`` observations of any shape). ``TypeError`` for
    other observation or action spaces."""
    check_config(config)
    model = make_world_model(
        env.observation_space(env_params), env.action_space(env_params),
        latent_dim=config.latent_dim, hidden_sizes=config.hidden_sizes,
        activation=config.activation, learning_rate=config.learning_rate,
        weight_decay=config.weight_decay)
    planning_model = PlanningModel(
        init=model.init, observe=model.observe,
        fit=lambda state, buffer, key: fit_uniform(model.train_step, state, buffer, key,
                                                   config.model_steps, config.batch_size),
        dynamics=model.dynamics, start=model.encode, metrics=("model_loss", *LOSS_PARTS))
    return make_planning_agent(config, env, env_params, planning_model, refit=True,
                               replan_every=1)


def make_train(config: Config, env: Any, env_params: Any):
    """``train(key) -> (train_state, metrics)``: ``init`` and a scan of ``update``."""
    return train_from_agent(make_agent(config, env, env_params))
