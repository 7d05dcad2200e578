"""MVE: model-based value expansion (Feinberg et al., 2018).

Course notes 004 §11.1.4 (Algorithm 22, "MBA – MVE – MBPO"): a replay actor-critic (TD3 by
default, ``learner="sac"`` for SAC) whose critic targets look ``H`` steps ahead through a
learned model before bootstrapping. For a sampled transition ``(s, a, r, s')`` the model (the
mean of a bootstrap ensemble, refitted every ``model_frequency`` env steps on the replay buffer)
and the current actor imagine ``ŝ_0 = s', ŝ_{k+1} = f(ŝ_k, π(ŝ_k))`` with rewards ``r̂_k``, and
the critics regress to

    ``y = r + Σ_{k<H} γ^{k+1} r̂_k + γ^{H+1} V_target(ŝ_H)``

(``training.model_based.model_value_expansion`` through the replay loop's ``target`` override;
the learner's own ``V``: TD3's smoothed clipped double Q, SAC's soft value, so the entropy bonus
enters at the bootstrap only). A longer horizon lowers the bias of a poor early critic at the
price of model error; ``H = 0`` would be the learner itself. The reward (and termination) is the
env's known function where ``jaxrl.envs.rewards`` has one (``reward="auto"``).
"""

from __future__ import annotations

from typing import Any

from jaxrl.envs.spaces import Box
from jaxrl.models import make_deterministic_actor, make_tanh_gaussian_actor
from jaxrl.training import off_policy
from jaxrl.training.actor_critic import LEARNERS, LearnerChoiceFields, sac_hooks
from jaxrl.training.agent import Agent, train_from_agent
from jaxrl.training.config import check_config, static
from jaxrl.training.deterministic import DeterministicConfig, make_deterministic_agent
from jaxrl.training.extensions import RewardTransform
from jaxrl.training.model_based import (
    LearnedModelFields,
    make_policy_model,
    model_value_expansion,
    refit_phase,
)
from jaxrl.training.off_policy import ReplayExtensions, TrainState

__all__ = ["Config", "TrainState", "make_agent", "make_train"]


class Config(DeterministicConfig, LearnerChoiceFields, LearnedModelFields):
    """MVE: the learner's fields (one learning_rate for actor and critics), the ensemble's
    and the horizon; sized for Pendulum-v1."""

    total_timesteps: int = static(4_000, ">= 1")
    learning_starts: int = static(500, ">= 0")
    log_frequency: int = static(250, ">= 1")
    buffer_size: int = static(20_000, ">= 1")
    batch_size: int = static(128, ">= 1")
    hidden_sizes: tuple[int, ...] = static((64, 64))
    learner: str = static("td3", LEARNERS)
    """the actor-critic whose targets are expanded: td3 or sac"""
    horizon: int = static(3, ">= 1")
    """H: imagined steps before the critic's bootstrap"""


def make_agent(config: Config, env: Any, env_params: Any,
               reward_transform: RewardTransform | None = None) -> Agent:
    """MVE's ``init`` / ``update`` / ``act`` (module docstring). ``TypeError`` for discrete
    actions or non-vector observations."""
    check_config(config)
    parts = off_policy.setup(env, env_params, "mve", Box)
    model = make_policy_model(config, env, env_params, parts)
    if config.learner == "td3":
        actor = make_deterministic_actor(parts.observation_space, parts.action_space,
                                         config.hidden_sizes, config.activation)

        def policy(params, key, obs):
            return actor.apply(params["actor"], obs)
    else:
        actor = make_tanh_gaussian_actor(parts.observation_space, parts.action_space,
                                         config.hidden_sizes, config.activation)

        def policy(params, key, obs):
            return actor.apply(params["actor"], obs).sample(seed=key)

    init, phase = refit_phase(config, model, config.steps_per_iteration)

    def target(key, state: TrainState, sample):
        return model_value_expansion(
            model, state.extension_state.model, lambda k, obs: policy(state.params, k, obs),
            key, sample, config.horizon, config.gamma)

    extensions = ReplayExtensions(init=init, phase=phase, target=target)
    if config.learner == "sac":
        return off_policy.make_off_policy_agent(config, parts, env_params,
                                                sac_hooks(config, parts), reward_transform,
                                                extensions)
    return make_deterministic_agent(config, env, env_params, "mve", 2, config.policy_noise,
                                    config.noise_clip, config.policy_frequency,
                                    reward_transform, extensions)


def make_train(config: Config, env: Any, env_params: Any,
               reward_transform: RewardTransform | None = None):
    """``train(key) -> (TrainState, metrics)``: the whole MVE run as one pure function."""
    return train_from_agent(make_agent(config, env, env_params, reward_transform))
