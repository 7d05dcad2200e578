"""RLHF: PPO on the token task with a learned reward and a per-token KL penalty.

Course notes §20.1 (RLHF, step 3) and §21: maximise
``E_{y~π}[r_φ(y)] - β KL(π ‖ π_ref)`` with PPO, where the state is the prefix and the action the
next token. The env's own (hidden) reward is discarded: a ``RewardTransform`` rewrites each
rollout's rewards to

    r_t = -β (log π(s_t | s_{<t}) - log π_ref(s_t | s_{<t}))  +  1[t is the last token] r̃_φ(y)

(``losses.preferences.kl_penalty``, k1 by default: summed over a sequence its expectation is the
sequence KL), so GAE and the clipped surrogate optimise the regularised objective unchanged.
``r̃_φ = (r_φ - μ) / σ`` is the score whitened by its mean and std on ``score_samples`` reference
samples drawn at ``init`` (``normalize_score``): a Bradley–Terry score has an arbitrary offset and
a scale set by how deterministic the labels were, so without whitening a given β means a
different trade-off for every reward model (β is in units of the score's spread on the
reference). The
policy (and value head) start at the reference (``training.preferences.pretrained``). With
``adaptive_kl`` β follows Ziegler et al. (2019): ``β ← β (1 + clip(KL / KL_target - 1, ±0.2) ·
n / horizon)`` after each rollout of ``n`` tokens, KL being the rollout's mean sequence KL.
``episode_return`` is the hidden reward of the training sequences (the env's reward, which the
learner never sees); ``kl``, ``rm_score`` and ``kl_coef`` are reported per update.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from jaxrl.losses.preferences import KL_ESTIMATORS, kl_penalty
from jaxrl.models.sequence import sample
from jaxrl.training import on_policy, proximal
from jaxrl.training import preferences as family
from jaxrl.training.agent import Agent, train_from_agent
from jaxrl.training.config import check_config, hyper, static
from jaxrl.training.extensions import RewardTransform

__all__ = ["Config", "KLRewardState", "kl_reward_transform", "make_agent", "make_train",
           "policy_params"]


class Config(proximal.ProximalConfig):
    """PPO's fields with token-task defaults, plus the reference, the reward model and β."""

    reference: str = static("")
    """run directory of the reference policy (`jaxrl train sft`); the policy starts there"""
    reward_model: str = static("")
    """run directory of the reward model (`jaxrl train reward_model`)"""
    adaptive_kl: bool = static(False)
    """adapt β towards target_kl (Ziegler et al.) instead of keeping it fixed"""
    kl_estimator: str = static("k1", KL_ESTIMATORS)
    """per-token KL estimate in the reward: k1 = log π/π_ref, k3 = (ρ-1) - log ρ"""
    normalize_score: bool = static(True)
    """whiten the reward model's score by its mean and std on reference samples (so β is in
    units of the score's spread)"""
    score_samples: int = static(512, ">= 1")
    """reference samples that fix the score's mean and std (normalize_score)"""
    num_envs: int = static(32, ">= 1")
    num_steps: int = static(16, ">= 1")
    total_timesteps: int = static(100_000, ">= 1")
    update_epochs: int = static(4, ">= 1")
    num_minibatches: int = static(4, ">= 1")
    gamma: float = hyper(1.0, "[0, 1]")
    gae_lambda: float = hyper(0.95, "[0, 1]")
    learning_rate: float = hyper(1e-4, "> 0")
    """optimizer step size"""
    kl_coef: float = hyper(0.1, ">= 0")
    """β: weight of the per-token KL penalty (the initial β with adaptive_kl)"""
    target_kl: float = hyper(2.0, "> 0")
    """KL target in nats per sequence (adaptive_kl)"""
    kl_horizon: float = hyper(10_000.0, "> 0")
    """tokens over which β moves by at most 20 % per unit error (adaptive_kl)"""


class KLRewardState(NamedTuple):
    """The reward transform's state: β and the score's whitening statistics."""

    kl_coef: jax.Array
    score_mean: jax.Array
    score_std: jax.Array


def kl_reward_transform(config: Config, reference: family.SequencePolicy,
                        reward_model: family.SequencePolicy) -> RewardTransform:
    """The reward of the module docstring; its state is a ``KLRewardState``."""

    def init(key, observation_space, action_space):
        beta = jnp.asarray(config.kl_coef, jnp.float32)
        if not config.normalize_score:
            return KLRewardState(beta, jnp.zeros(()), jnp.ones(()))
        tokens, _ = sample(reference.model, reference.params, key, config.score_samples)
        scores = reward_model.model.apply(reward_model.params, tokens, method="score")
        return KLRewardState(beta, scores.mean(), scores.std() + 1e-6)

    def apply(state, traj, key):
        beta = state.kl_coef
        steps, envs = traj.action.shape
        flat_obs = traj.obs.reshape(steps * envs, -1)
        reference_log_probs = reference.model.apply(
            reference.params, flat_obs, method="policy").log_prob(traj.action.reshape(-1))
        penalty = kl_penalty(traj.extras["log_prob"],
                             reference_log_probs.reshape(steps, envs), config.kl_estimator)
        scores = reward_model.model.apply(reward_model.params,
                                          traj.next_obs.reshape(steps * envs, -1),
                                          method="score").reshape(steps, envs)
        scores = (scores - state.score_mean) / state.score_std
        ended = traj.terminated | traj.truncated
        rewards = -beta * penalty + jnp.where(ended, scores, 0.0)
        sequences = jnp.maximum(ended.sum(), 1)
        sequence_kl = kl_penalty(traj.extras["log_prob"], reference_log_probs.reshape(
            steps, envs)).sum() / sequences
        if config.adaptive_kl:
            error = jnp.clip(sequence_kl / config.target_kl - 1.0, -0.2, 0.2)
            new_beta = beta * (1.0 + error * steps * envs / config.kl_horizon)
        else:
            new_beta = beta
        metrics = {"kl": sequence_kl, "kl_coef": beta,
                   "rm_score": jnp.where(ended, scores, 0.0).sum() / sequences}
        return rewards, state._replace(kl_coef=new_beta), metrics

    return RewardTransform(init, apply)


def _inputs(config: Config, env_params: Any, reference, reward_model):
    reference, _ = family.resolve_inputs(config, env_params, "rlhf", reference,
                                         needs_preferences=False)
    if reward_model is None:
        if not config.reward_model:
            raise ValueError("rlhf maximises a learned reward: pass --reward-model RUN_DIR (a "
                             "`jaxrl train reward_model` run on the same --env)")
        reward_model = family.load_sequence_policy(config.reward_model, "reward model")
    family.check_policy_fits(reward_model, env_params, "reward model")
    return reference, reward_model


def make_agent(config: Config, env: Any, env_params: Any,
               reference: family.SequencePolicy | None = None,
               reward_model: family.SequencePolicy | None = None) -> Agent:
    """RLHF's ``init`` / ``update`` / ``act`` (PPO's, on the pretrained sequence model);
    ``reference`` and ``reward_model`` in memory or from the run directories the config names."""
    check_config(config)
    family.hidden_reward_fn(env)
    reference, reward_model = _inputs(config, env_params, reference, reward_model)
    network, _ = family.pretrained(reference)
    parts = on_policy.setup(config, env, env_params, "rlhf", network,
                            kl_reward_transform(config, reference, reward_model))
    return proximal.make_agent(config, parts, env_params)


def policy_params(config: Config, env_params: Any, train_state: Any,
                  reference: family.SequencePolicy | None = None) -> family.SequencePolicy:
    """The trained policy of an RLHF train state as a ``SequencePolicy`` (for sampling,
    win rates and KL)."""
    reference, _ = family.resolve_inputs(config, env_params, "rlhf", reference,
                                         needs_preferences=False)
    _, model_params = family.pretrained(reference)
    return family.SequencePolicy(reference.model, model_params(train_state.params))


def make_train(config: Config, env: Any, env_params: Any,
               reference: family.SequencePolicy | None = None,
               reward_model: family.SequencePolicy | None = None):
    """``train(key) -> (state, metrics)``: the whole run as one pure function."""
    return train_from_agent(make_agent(config, env, env_params, reference, reward_model))
