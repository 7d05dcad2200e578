"""Losses of learning from pairwise preferences: Bradley–Terry, DPO, IPO, per-token KL.

Course notes §20.1 (RLHF algorithms): a preference dataset holds pairs ``(y_w, y_l)`` (chosen,
rejected). Every loss here takes per-pair quantities ``[B]`` (scores or *sequence* log-probs,
``sequence_log_prob`` of per-token log-probs and a mask), so padding enters only through the
mask, and returns the mean over pairs.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

__all__ = ["KL_ESTIMATORS", "bradley_terry_loss", "dpo_loss", "implicit_reward_margin",
           "ipo_loss", "kl_penalty", "preference_probability", "sequence_log_prob"]

KL_ESTIMATORS = ("k1", "k3")


def sequence_log_prob(token_log_probs: jax.Array, mask: jax.Array) -> jax.Array:
    """``log π(y) = Σ_t m_t log π(y_t | y_{<t})`` over ``[..., L]``: pads (``m_t = 0``) add
    nothing, whatever log-prob stands there."""
    return jnp.where(mask > 0, token_log_probs, 0.0).sum(-1)


def preference_probability(score_a: jax.Array, score_b: jax.Array) -> jax.Array:
    """Bradley–Terry ``P(a ≻ b) = σ(s(a) - s(b))``."""
    return jax.nn.sigmoid(score_a - score_b)


def _smoothed_logistic_loss(margin: jax.Array, label_smoothing: float | jax.Array) -> jax.Array:
    """``-(1-ε) log σ(h) - ε log σ(-h)``, averaged: the cross-entropy of ``σ(h)`` against a label
    that is right with probability ``1 - ε`` (conservative DPO; ε = 0: the plain loss)."""
    return jnp.mean(-(1.0 - label_smoothing) * jax.nn.log_sigmoid(margin)
                    - label_smoothing * jax.nn.log_sigmoid(-margin))


def bradley_terry_loss(score_chosen: jax.Array, score_rejected: jax.Array,
                       label_smoothing: float | jax.Array = 0.0) -> jax.Array:
    """Reward-model loss ``L(φ) = -E[log σ(r_φ(y_w) - r_φ(y_l))]`` (§20.1, step 2).

    Scores ``[B]``. Only score differences are identified, so ``r_φ + c`` has the same loss.
    """
    return _smoothed_logistic_loss(score_chosen - score_rejected, label_smoothing)


def implicit_reward_margin(policy_chosen: jax.Array, policy_rejected: jax.Array,
                           reference_chosen: jax.Array, reference_rejected: jax.Array
                           ) -> jax.Array:
    """``h = [log π(y_w) - log π_ref(y_w)] - [log π(y_l) - log π_ref(y_l)]`` from sequence
    log-probs ``[B]``: the difference of DPO's implicit rewards ``r̂ = log π / π_ref`` (per β)."""
    return (policy_chosen - reference_chosen) - (policy_rejected - reference_rejected)


def dpo_loss(policy_chosen: jax.Array, policy_rejected: jax.Array,
             reference_chosen: jax.Array, reference_rejected: jax.Array,
             beta: float | jax.Array, label_smoothing: float | jax.Array = 0.0) -> jax.Array:
    """Direct preference optimisation (Rafailov et al., 2023; §20.1)::

        L_DPO = -E[log σ(β h)],   h = implicit_reward_margin(...)

    The KL-regularised optimum ``π* ∝ π_ref exp(r / β)`` gives ``r = β log π*/π_ref + β log Z``;
    putting that reward into the Bradley–Terry loss cancels ``Z``, so the policy is fitted to the
    preferences directly. ``L = log 2`` when ``π = π_ref``; its gradient vanishes when
    ``y_w = y_l``. ``label_smoothing = ε`` assumes labels flipped with probability ε.
    """
    margin = implicit_reward_margin(policy_chosen, policy_rejected, reference_chosen,
                                    reference_rejected)
    return _smoothed_logistic_loss(beta * margin, label_smoothing)


def ipo_loss(policy_chosen: jax.Array, policy_rejected: jax.Array,
             reference_chosen: jax.Array, reference_rejected: jax.Array,
             tau: float | jax.Array) -> jax.Array:
    """Identity preference optimisation (Azar et al., 2023)::

        L_IPO = E[(h - 1 / (2τ))²],   h = implicit_reward_margin(...)

    DPO's logistic loss keeps pushing ``h → ∞`` on deterministic preferences (the KL term then
    stops regularising); IPO regresses ``h`` onto a finite target set by τ instead.
    """
    margin = implicit_reward_margin(policy_chosen, policy_rejected, reference_chosen,
                                    reference_rejected)
    return jnp.mean((margin - 1.0 / (2.0 * tau)) ** 2)


def kl_penalty(log_probs: jax.Array, reference_log_probs: jax.Array,
               estimator: str = "k1") -> jax.Array:
    """Per-token estimates of ``KL(π ‖ π_ref)`` at tokens sampled from ``π``, ``[..., L]``.

    ``k1 = log π - log π_ref`` (unbiased, can be negative: RLHF's reward penalty
    ``-β k1``); ``k3 = (ρ - 1) - log ρ`` with ``ρ = π_ref / π`` (unbiased, never negative:
    Schulman's low-variance estimator). Summed over a sequence, either has the expectation
    ``KL(π(y) ‖ π_ref(y))`` of whole sequences under ``π``.
    """
    log_ratio = log_probs - reference_log_probs
    if estimator == "k1":
        return log_ratio
    if estimator == "k3":
        return jnp.expm1(-log_ratio) + log_ratio
    raise ValueError(f"unknown KL estimator {estimator!r}; choose one of "
                     f"{', '.join(KL_ESTIMATORS)}")
