"""The agents' optimizers work on the raveled parameter vector (``optax.flatten``): the same
updates as the per-leaf chain, state as one vector per moment, and a ``grad_norm`` metric that is
the global norm the clipping sees."""

from __future__ import annotations

import types

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from jaxrl.training import on_policy, optim
from jaxrl.training.optim import grad_norm


def tree(key: jax.Array, scale: float) -> dict:
    """A small parameter-shaped pytree (two layers, one scalar leaf)."""
    k1, k2, k3 = jax.random.split(key, 3)
    return {"dense": {"kernel": scale * jax.random.normal(k1, (3, 4)),
                      "bias": scale * jax.random.normal(k2, (4,))},
            "log_std": scale * jax.random.normal(k3, ())}


def run(optimizer: optax.GradientTransformation, steps: int = 3, scale: float = 1.0):
    """``(params after steps, final state)`` for gradients drawn at ``scale``."""
    params = tree(jax.random.key(0), 1.0)
    state = optimizer.init(params)
    for i in range(steps):
        grads = tree(jax.random.key(i + 1), scale)
        updates, state = optimizer.update(grads, state, params)
        params = optax.apply_updates(params, updates)
    return params, state


def test_grad_norm_is_the_global_norm_by_hand():
    grads = {"a": jnp.array([3.0, 4.0]), "b": jnp.array([[12.0]])}
    assert float(grad_norm(grads)) == pytest.approx(13.0)  # sqrt(9 + 16 + 144)
    g = tree(jax.random.key(5), 2.0)
    np.testing.assert_allclose(grad_norm(g), optax.tree.norm(g), rtol=1e-6)


@pytest.mark.parametrize("kind", ["adam", "rmsprop"])
@pytest.mark.parametrize("scale", [0.01, 10.0])  # below and above max_grad_norm = 0.5
@pytest.mark.parametrize("anneal_lr", [False, True])
def test_on_policy_optimizer_matches_the_per_leaf_chain(kind, scale, anneal_lr):
    config = types.SimpleNamespace(learning_rate=3e-3, anneal_lr=anneal_lr, max_grad_norm=0.5)
    flat = on_policy.make_optimizer(config, num_updates=4, steps_per_update=1, kind=kind)
    scale_fn = (lambda count: 3e-3 * (1.0 - count / 4)) if anneal_lr else 3e-3
    inner = (optax.adam(scale_fn, eps=1e-5) if kind == "adam"
             else optax.rmsprop(scale_fn, decay=0.99, eps=1e-5, eps_in_sqrt=False))
    per_leaf = optax.chain(optax.clip_by_global_norm(0.5), inner)
    (got, state), (expected, _) = run(flat, scale=scale), run(per_leaf, scale=scale)
    for a, b in zip(jax.tree.leaves(got), jax.tree.leaves(expected), strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-7)
    # The optimizer state holds whole vectors: 12 + 4 + 1 parameters raveled into one.
    vectors = [leaf for leaf in jax.tree.leaves(state) if jnp.ndim(leaf) == 1]
    assert vectors and all(leaf.shape == (17,) for leaf in vectors)


@pytest.mark.parametrize("max_grad_norm", [None, 0.5])
@pytest.mark.parametrize("anneal_steps", [None, 4])
def test_off_policy_adam_matches_the_per_leaf_chain(max_grad_norm, anneal_steps):
    flat = optim.adam(1e-3, max_grad_norm, anneal_steps)
    rate = optax.linear_schedule(1e-3, 0.0, anneal_steps) if anneal_steps else 1e-3
    per_leaf = optax.adam(rate)
    if max_grad_norm is not None:
        per_leaf = optax.chain(optax.clip_by_global_norm(max_grad_norm), per_leaf)
    (got, _), (expected, _) = run(flat, scale=10.0), run(per_leaf, scale=10.0)
    for a, b in zip(jax.tree.leaves(got), jax.tree.leaves(expected), strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-7)
