"""Adversarial inverse RL (Fu et al., 2018) on PPO.

Course notes §20 ("IRL can be treated as a GAN"): the discriminator takes the form the notes
derive, ``D = exp f / (exp f + π(a|s))``, with the disentangled ``f(s, a, s') = g(s) +
γ (1 − terminated) h(s') − h(s)``: ``g`` is a state-only reward and ``h`` a shaping potential,
so ``g`` recovers the expert's reward up to a constant, and it transfers to changed dynamics.
PPO maximises ``log D − log(1 − D) = f − log π``. The discriminator needs the policy's
log-probs of the expert's actions, so before each update the agent hands the current policy
(parameters and observation statistics) to the reward transform's state
(``training.adversarial``). Learns from a dataset of demonstrations (``--dataset``).
"""

from __future__ import annotations

from typing import Any

import jax

from jaxrl.datasets import Dataset
from jaxrl.envs import RunningMeanStd
from jaxrl.training import adversarial, on_policy, proximal
from jaxrl.training.agent import Agent, train_from_agent
from jaxrl.training.config import check_config
from jaxrl.training.extensions import RewardTransform

__all__ = ["OFFLINE", "Config", "learned_reward", "make_agent", "make_train",
           "reward_transform"]

OFFLINE = True
"""The runner passes ``dataset=`` to ``make_agent``."""


class Config(adversarial.PPOImitationConfig):
    """PPO's fields and those of the discriminator's g and h networks
    (training.adversarial.PPOImitationConfig)."""


def make_agent(config: Config, env: Any, env_params: Any, dataset: Dataset | None = None) -> Agent:
    """PPO on AIRL's reward ``f − log π`` (module docstring)."""
    check_config(config)
    expert = adversarial.demonstrations(dataset, env, env_params, "airl",
                                        config.demo_subsample)
    network = on_policy.setup(config, env, env_params, "AIRL").network

    def log_prob(policy, obs, action):
        params, obs_stats = policy
        obs = obs_stats.normalize(obs) if config.normalize_obs else obs
        return network.apply(params, obs)[0].log_prob(action)

    placeholder = (network.init(jax.random.key(0), expert.obs[:1]),
                   RunningMeanStd.create(expert.obs.shape[1:]))
    transform = adversarial.make_reward_transform(
        "airl", config, expert, env.action_space(env_params), config.gamma, log_prob,
        placeholder)
    parts = on_policy.setup(config, env, env_params, "AIRL", network, transform)
    agent = proximal.make_agent(config, parts, env_params)

    def update(state: on_policy.TrainState):
        rollout = state.rollout
        scored = rollout.reward_state.replace(policy=(state.params, rollout.obs_stats))
        return agent.update(state.replace(rollout=rollout.replace(reward_state=scored)))

    return agent._replace(update=update)


def learned_reward(config: Config, env: Any, env_params: Any, dataset: Dataset,
                   state: on_policy.TrainState, obs: jax.Array) -> jax.Array:
    """``g(s)`` of a trained run's discriminator: the recovered state reward ``[B]``."""
    expert = adversarial.demonstrations(dataset, env, env_params, "airl",
                                        config.demo_subsample)
    return adversarial.state_reward(config, expert)(state.rollout.reward_state.params, obs)


def reward_transform(config: Config, env: Any, env_params: Any, dataset: Dataset,
                     state: on_policy.TrainState) -> RewardTransform:
    """A trained run's ``g`` frozen as a ``RewardTransform``: ``r_t = g(s_t)``
    (``adversarial.state_reward_transform``; from a saved run: ``sac --reward-from-run``).

    The AIRL paper's reward transfer (course notes §20): hand it to a loop that takes one, e.g.
    ``sac.make_agent(config, env, changed_params, reward_transform=...)``, to re-optimise the
    learned reward from scratch on changed dynamics.
    """
    expert = adversarial.demonstrations(dataset, env, env_params, "airl",
                                        config.demo_subsample)
    return adversarial.state_reward_transform(config, expert,
                                              state.rollout.reward_state.params)


def make_train(config: Config, env: Any, env_params: Any, dataset: Dataset | None = None):
    """``train(key) -> (TrainState, metrics)``: the whole AIRL run as one pure function."""
    return train_from_agent(make_agent(config, env, env_params, dataset))
