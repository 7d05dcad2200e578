"""Multi-task RL and domain randomisation: one PPO policy over a task family.

Course notes §22 "Transfer Learning and Meta-Learning" ("Multi-task learning": a contextual
policy ``π(a | s, ω)`` trained on a distribution of tasks; "forward transfer" with randomised
source domains): every episode runs on a task drawn at its reset (env params of a task family,
``training.meta.task_sampler``: ``PointNav-v0`` goals, ``Pendulum-v1`` mass and length, ...),
and PPO (``training.proximal``) maximises the expected return over tasks::

    max_θ E_{ω ~ p(ω)} E_{τ ~ π_θ, task ω} [ Σ_t γ^t r_t ].

``task_in_obs=True`` appends the task's params ``ω`` to the observation (a contextual policy);
``False`` hides them (domain randomisation: one policy robust to every task, the baseline that
does not adapt). Evaluation (``eval_return``) draws fresh tasks from the same family, params the
training run never saw.
"""

from __future__ import annotations

from typing import Any

from jaxrl.training import meta, on_policy, proximal
from jaxrl.training.agent import Agent, train_from_agent
from jaxrl.training.config import check_config, static

__all__ = ["Config", "TrainState", "make_agent", "make_train", "wrap_env"]

TrainState = on_policy.TrainState


class Config(proximal.ProximalConfig):
    """PPO's fields (training.proximal) plus where the task is. Defaults: PointNav-v0 goals."""

    task_in_obs: bool = static(True)
    """append the task's params to the observation (False: hidden, domain randomisation)"""
    total_timesteps: int = static(1_000_000, ">= 1")
    num_envs: int = static(32, ">= 1")
    num_steps: int = static(32, ">= 1")
    num_minibatches: int = static(4, ">= 1")
    update_epochs: int = static(4, ">= 1")


def wrap_env(config: Config, env: Any) -> meta.TaskEnv:
    """The env the agent acts in: ``training.meta.TaskEnv`` (a task of ``env``'s family drawn
    at each reset from the env params it is given); evaluate a trained policy there."""
    def sample_task(key, env_params):
        return meta.task_sampler(env, env_params)(key)

    return meta.TaskEnv(env, sample_task, config.task_in_obs)


def make_agent(config: Config, env: Any, env_params: Any) -> Agent:
    """PPO on ``wrap_env(config, env)``: one policy over the task family of
    ``env``; ``act`` takes the wrapped env's observations."""
    check_config(config)
    meta.task_sampler(env, env_params)  # a clear error where env is not a task family
    parts = on_policy.setup(config, wrap_env(config, env), env_params, "multitask")
    return proximal.make_agent(config, parts, env_params)


def make_train(config: Config, env: Any, env_params: Any):
    """``train(key) -> (TrainState, metrics)``: the whole run as one pure function."""
    return train_from_agent(make_agent(config, env, env_params))
