"""Discriminator-Actor-Critic (Kostrikov et al., 2019): off-policy adversarial imitation.

Course notes §20 ("IRL can be treated as a GAN") made sample-efficient: GAIL's discriminator
``D_ψ(s, a)`` is trained on replayed transitions against the expert's (the replay loop's extra
phase, each iteration; optional gradient penalty), and a replay learner (``learner``: SAC,
``training.actor_critic``, the default; or TD3, ``training.deterministic``, the DAC paper's)
replays its buffer with every sampled reward re-scored by the current discriminator,
``r = log D − log(1 − D)`` (the logit: either sign, so neither a survival bonus nor a death
wish). Absorbing states: a transition that terminates continues, in DAC's MDP, into an
absorbing state ``s_a`` that loops forever with its own learned reward ``r_a = logit(s_a)``;
its discounted value ``γ r_a / (1 − γ)`` is added to the terminating transition's reward (the
target override), and the discriminator scores ``s_a`` after every terminating
expert and replayed transition (``adversarial.absorbing_rewards``: the same for either
learner). Learns from a dataset of demonstrations (``--dataset``).
"""

from __future__ import annotations

from functools import partial
from typing import Any

import jax
import jax.numpy as jnp

from jaxrl.datasets import Dataset
from jaxrl.envs.spaces import Box
from jaxrl.replay import Sample
from jaxrl.training import adversarial, off_policy
from jaxrl.training.actor_critic import LEARNERS, LearnerChoiceFields, sac_hooks
from jaxrl.training.agent import Agent, train_from_agent
from jaxrl.training.config import check_config, hyper, static
from jaxrl.training.deterministic import DeterministicConfig, make_deterministic_agent
from jaxrl.training.off_policy import ReplayExtensions, TrainState

__all__ = ["LEARNERS", "OFFLINE", "Config", "TrainState", "make_agent", "make_train"]

OFFLINE = True
"""The runner passes ``dataset=`` to ``make_agent``."""


class Config(DeterministicConfig, LearnerChoiceFields, adversarial.DiscriminatorConfig):
    """The learner's fields (training.actor_critic.LearnerChoiceFields) and the discriminator's
    (training.adversarial.DiscriminatorConfig); rewards are re-scored per sample, so
    n_step must be 1."""

    learner: str = static("sac", LEARNERS)
    """the replay learner on the discriminator's reward: sac or td3 (the DAC paper's)"""
    grad_penalty: float = hyper(10.0, ">= 0")
    """weight λ of the gradient penalty on expert/policy interpolates (0: none)"""

    def validate(self) -> None:
        """The replay-loop rules and ``n_step = 1`` (a re-scored reward is one step's)."""
        super().validate()
        if self.n_step != 1:
            raise ValueError(f"dac re-scores each sampled reward with the discriminator, which "
                             f"needs one-step samples; set n_step = 1, got {self.n_step}")


def make_agent(config: Config, env: Any, env_params: Any, dataset: Dataset | None = None) -> Agent:
    """SAC or TD3 on the discriminator's reward with absorbing states (module docstring)."""
    check_config(config)
    expert = adversarial.demonstrations(dataset, env, env_params, "dac", config.demo_subsample)
    space = env.action_space(env_params)
    if not isinstance(space, Box):
        raise TypeError(f"dac needs a continuous (Box) action space but the env's is {space}; "
                        "use gail or airl for discrete actions")
    # The learner acts in [-1, 1] (RescaleAction): the expert's actions are mapped there too.
    unit = Box(-1.0, 1.0, space.shape, jnp.float32)
    low, high = jnp.asarray(space.low), jnp.asarray(space.high)
    expert = expert.replace(action=jnp.clip(2.0 * (expert.action - low) / (high - low) - 1.0,
                                            -1.0, 1.0))
    discriminator = adversarial.make_discriminator("dac", config, expert, unit, config.gamma,
                                                   absorbing=True)

    def inputs(sample: Sample):
        terminated = sample.discount == 0
        return discriminator.inputs(sample.obs, sample.action, sample.next_obs, terminated,
                                    jnp.zeros(terminated.shape))

    def init(key: jax.Array, obs: jax.Array, parts: Any) -> adversarial.AdversarialState:
        return discriminator.init(key)

    def phase(key: jax.Array, state: TrainState) -> tuple[TrainState, dict[str, jax.Array]]:
        sample_key, train_key = jax.random.split(key)
        replayed = state.buffer.sample(sample_key, config.disc_batch_size * config.disc_steps,
                                       1, config.gamma)
        disc_state, metrics = discriminator.train(state.extension_state, inputs(replayed),
                                                  train_key)
        return state.replace(extension_state=disc_state), metrics

    def target(key: jax.Array, state: TrainState, sample: Sample) -> Sample:
        reward = adversarial.absorbing_rewards(
            partial(discriminator.logits, state.extension_state.params), inputs(sample),
            config.gamma)
        return sample.replace(reward=jax.lax.stop_gradient(reward))

    extensions = ReplayExtensions(init=init, phase=phase, target=target)
    if config.learner == "sac":
        parts = off_policy.setup(env, env_params, "DAC", Box)
        return off_policy.make_off_policy_agent(config, parts, env_params,
                                                sac_hooks(config, parts), extensions=extensions)
    return make_deterministic_agent(config, env, env_params, "dac", 2, config.policy_noise,
                                    config.noise_clip, config.policy_frequency,
                                    extensions=extensions)


def make_train(config: Config, env: Any, env_params: Any, dataset: Dataset | None = None):
    """``train(key) -> (TrainState, metrics)``: the whole DAC run as one pure function."""
    return train_from_agent(make_agent(config, env, env_params, dataset))
