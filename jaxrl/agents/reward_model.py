"""A Bradley–Terry reward model fitted to pairwise preferences.

Course notes §20.1 (RLHF, step 2): ``P(y_w ≻ y_l) = σ(r_φ(y_w) - r_φ(y_l))``, fitted by
``L(φ) = -E[log σ(r_φ(y_w) - r_φ(y_l))]`` (``losses.preferences.bradley_terry_loss``); the score
``r_φ(y)`` is the sequence model's scalar head after the whole sequence. A fraction of the pairs
is held out: ``heldout_accuracy`` (the chosen one scored higher) and ``heldout_ece`` (expected
calibration error of ``σ(r_w - r_l)`` over 10 bins; 0 for a calibrated model) say whether the
model generalises. ``eval_return`` is the hidden reward of sequences sampled by a one-step
lookahead on the model's score (softmax over the next token's scores): a quick check that the
score points the right way; RLHF and best-of-n are the real uses of the model.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp

from jaxrl.envs.tokens import EOS
from jaxrl.losses.preferences import bradley_terry_loss
from jaxrl.models.sequence import PAD, prefix_length
from jaxrl.training import preferences as family
from jaxrl.training.agent import Agent, train_from_agent
from jaxrl.training.config import check_config, hyper, static

__all__ = ["Config", "calibration_error", "make_agent", "make_train"]


class Config(family.ModelConfig):
    """Reward model: the family's fields, the architecture, the held-out split."""

    preferences: str = static("")
    """the .npz preference file (`jaxrl preferences`)"""
    heldout_fraction: float = static(0.2, "[0, 1]")
    """fraction of the pairs kept out of training for accuracy and calibration"""
    label_smoothing: float = hyper(0.0, "[0, 1]")
    """ε of a label-smoothed (noise-tolerant) Bradley–Terry loss"""


def calibration_error(probabilities: jax.Array, bins: int = 10) -> jax.Array:
    """Expected calibration error of predictions ``P(chosen ≻ rejected)`` whose label is 1:
    ``Σ_b (n_b / N) |mean p_b - accuracy_b|`` over equal-width bins of the predicted
    probability of the side predicted to win."""
    confidence = jnp.maximum(probabilities, 1.0 - probabilities)
    correct = (probabilities > 0.5).astype(jnp.float32)
    which = jnp.clip(((confidence - 0.5) * 2 * bins).astype(jnp.int32), 0, bins - 1)
    counts = jnp.zeros(bins).at[which].add(1.0)
    gap = jnp.zeros(bins).at[which].add(confidence - correct)
    return jnp.abs(gap).sum() / jnp.maximum(counts.sum(), 1.0)


def make_agent(config: Config, env: Any, env_params: Any,
               preferences: family.Preferences | None = None) -> Agent:
    """The reward model's ``init`` / ``update`` / ``act``; ``preferences`` in memory or from
    ``config.preferences``."""
    check_config(config)
    reward = family.hidden_reward_fn(env)
    if preferences is None:
        if not config.preferences:
            raise ValueError("reward_model learns from preferences: pass --preferences FILE.npz "
                             "(write one with `jaxrl preferences --reference RUN_DIR`)")
        preferences = family.load_preferences(config.preferences, env_params)
    family.validate_preferences(preferences, env_params)
    pairs = len(preferences.chosen)
    heldout = min(int(round(config.heldout_fraction * pairs)), pairs - 1)
    chosen = jnp.asarray(preferences.chosen, jnp.int32)
    rejected = jnp.asarray(preferences.rejected, jnp.int32)
    train_pairs = pairs - heldout
    model = family.make_model(config, env_params)

    def margins(params, chosen, rejected):
        scores = model.apply(params, jnp.concatenate([chosen, rejected]), method="score")
        return scores[: len(chosen)] - scores[len(chosen):]

    def loss_fn(params, indices):
        margin = margins(params, chosen[indices], rejected[indices])
        return (bradley_terry_loss(margin, jnp.zeros_like(margin), config.label_smoothing),
                {"accuracy": jnp.mean(margin > 0)})

    def sample_batch(key):
        return jax.random.randint(key, (config.batch_size,), 0, train_pairs)

    def next_token_logits(params, obs):
        """The score of each one-token extension of the prefixes ``obs [B, L]``."""
        at = jnp.minimum(prefix_length(obs), env_params.max_length - 1)
        tokens = jnp.asarray(obs).astype(jnp.int32)
        candidates = jax.vmap(lambda token: tokens.at[jnp.arange(len(tokens)), at].set(token))(
            jnp.arange(env_params.vocab_size))
        scores = model.apply(params, candidates.reshape(-1, tokens.shape[-1]), method="score")
        return scores.reshape(env_params.vocab_size, -1).T

    def act(state, obs, key, deterministic=False):
        logits = next_token_logits(state.params, obs)
        return (jnp.argmax(logits, -1) if deterministic
                else jax.random.categorical(key, logits)).astype(jnp.int32)

    def evaluate(params, key):
        metrics = {}
        if heldout:
            margin = margins(params, chosen[train_pairs:], rejected[train_pairs:])
            metrics = {"heldout_accuracy": jnp.mean(margin > 0),
                       "heldout_ece": calibration_error(jax.nn.sigmoid(margin))}

        def step(tokens, inputs):
            t, step_key = inputs
            token = act(family.SequenceState(params, None, None, None), tokens, step_key)
            ended = (tokens == EOS).any(-1)
            return tokens.at[:, t].set(jnp.where(ended, PAD, token)), None

        tokens = jnp.full((config.eval_samples, env_params.max_length), PAD, jnp.int32)
        tokens, _ = jax.lax.scan(step, tokens, (jnp.arange(env_params.max_length),
                                                jax.random.split(key, env_params.max_length)))
        metrics["eval_return"] = reward(tokens).mean()
        return metrics

    return family.make_sequence_agent(
        config, lambda key: model.init(key, chosen[:1]), loss_fn, sample_batch, evaluate, act)


def make_train(config: Config, env: Any, env_params: Any,
               preferences: family.Preferences | None = None):
    """``train(key) -> (state, metrics)``: the whole run as one pure function."""
    return train_from_agent(make_agent(config, env, env_params, preferences))
