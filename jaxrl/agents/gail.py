"""Generative adversarial imitation learning (Ho & Ermon, 2016) on PPO.

Course notes §20 ("IRL can be treated as a GAN"): a discriminator ``D_ψ(s, a)`` learns to tell
the expert's transitions from the policy's, ``ψ ← argmin −E_expert[log D] − E_π[log(1 − D)]``
(optionally with a gradient penalty), and PPO maximises the reward ``−log(1 − D_ψ(s, a))`` of its
own rollouts: the policy is pushed towards state-action pairs the discriminator takes for the
expert's. The discriminator is a reward transform of the on-policy loop
(``training.adversarial``), trained on each rollout before PPO's epochs, so its state is
checkpointed with the run. ``reward_form``: the original, always positive ``−log(1 − D)``
(a survival bonus: where ending an episode early is the task, e.g. Acrobot-v1, the policy learns
never to end it), ``log D`` (always negative: the opposite bias) or the logit ``log D −
log(1 − D)`` (either sign, AIRL's and DAC's). Learns from a dataset of demonstrations
(``--dataset``; rewards in it are ignored).
"""

from __future__ import annotations

from typing import Any

from jaxrl.datasets import Dataset
from jaxrl.training import adversarial, on_policy, proximal
from jaxrl.training.agent import Agent, train_from_agent
from jaxrl.training.config import check_config, static

__all__ = ["OFFLINE", "Config", "make_agent", "make_train"]

OFFLINE = True
"""The runner passes ``dataset=`` to ``make_agent``."""


class Config(adversarial.PPOImitationConfig):
    """PPO's fields and the discriminator's (training.adversarial.PPOImitationConfig)."""

    reward_form: str = static("softplus", adversarial.REWARD_FORMS)
    """the policy's reward: softplus = −log(1 − D) (> 0), log_d = log D (< 0), logit"""


def make_agent(config: Config, env: Any, env_params: Any, dataset: Dataset | None = None) -> Agent:
    """PPO on the discriminator's reward (``reward_form``; module docstring)."""
    check_config(config)
    expert = adversarial.demonstrations(dataset, env, env_params, "gail",
                                        config.demo_subsample)
    transform = adversarial.make_reward_transform("gail", config, expert,
                                                  env.action_space(env_params), config.gamma,
                                                  reward_form=config.reward_form)
    parts = on_policy.setup(config, env, env_params, "GAIL", reward_transform=transform)
    return proximal.make_agent(config, parts, env_params)


def make_train(config: Config, env: Any, env_params: Any, dataset: Dataset | None = None):
    """``train(key) -> (TrainState, metrics)``: the whole GAIL run as one pure function."""
    return train_from_agent(make_agent(config, env, env_params, dataset))
