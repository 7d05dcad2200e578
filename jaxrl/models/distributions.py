"""Distributions beyond distrax's stock ones: a tanh-squashed Gaussian safe at |a| → 1."""

from __future__ import annotations

import distrax
import jax
import jax.numpy as jnp

__all__ = ["TanhNormal"]


class TanhNormal(distrax.Transformed):
    """``a = tanh(u)``, ``u ~ N(loc, diag(scale²))``, as one multivariate distribution over ``a``.

    ``log π(a) = Σ_i [log N(u_i) - log(1 - tanh²(u_i))]`` with the Jacobian term computed stably
    by distrax's ``Tanh`` bijector as ``2 (log 2 - u - softplus(-2u))``. Prefer
    ``sample_and_log_prob``, which never inverts tanh; ``log_prob`` of a given action clips it to
    ``±(1 - eps)`` before ``atanh`` so actions at the bounds still get a finite log-prob.
    """

    def __init__(self, loc: jax.Array, scale: jax.Array, eps: float = 1e-6):
        base = distrax.MultivariateNormalDiag(loc, scale)
        super().__init__(base, distrax.Block(distrax.Tanh(), ndims=1))
        self.eps = eps

    def log_prob(self, value: jax.Array) -> jax.Array:
        value = jnp.clip(value, -1.0 + self.eps, 1.0 - self.eps)
        return super().log_prob(value)

    def mode(self) -> jax.Array:
        """``tanh(loc)``: the deterministic action used for evaluation."""
        return jnp.tanh(self.distribution.loc)

    def entropy(self, input_hint=None) -> jax.Array:
        raise NotImplementedError("the entropy of a tanh-Gaussian has no closed form; "
                                  "use -log_prob of samples (sample_and_log_prob)")
