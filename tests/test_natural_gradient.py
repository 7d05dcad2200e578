"""natural_gradient: conjugate gradient, Fisher-vector products, max-KL step, line search."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.flatten_util import ravel_pytree

from jaxrl.envs import Box, Discrete
from jaxrl.models import make_actor_critic
from jaxrl.training import natural_gradient as ng
from jaxrl.training import on_policy


def _spd(n: int, seed: int = 0) -> np.ndarray:
    m = np.random.default_rng(seed).normal(size=(n, n))
    return (m @ m.T + n * np.eye(n)).astype(np.float32)


def test_conjugate_gradient_solves_an_spd_system_in_n_iterations():
    a = _spd(6)
    b = np.random.default_rng(1).normal(size=6).astype(np.float32)
    x = ng.conjugate_gradient(lambda v: jnp.asarray(a) @ v, jnp.asarray(b), iters=6)
    np.testing.assert_allclose(x, np.linalg.solve(a, b), rtol=1e-4, atol=1e-5)


def test_conjugate_gradient_stops_cleanly_after_convergence():
    a = jnp.asarray(_spd(3))
    x = ng.conjugate_gradient(lambda v: a @ v, jnp.ones(3), iters=20)  # more iters than n
    np.testing.assert_allclose(a @ x, np.ones(3), rtol=1e-4)
    zero = ng.conjugate_gradient(lambda v: a @ v, jnp.zeros(3), iters=5)
    np.testing.assert_array_equal(zero, np.zeros(3))  # no 0/0


def test_conjugate_gradient_is_jit_and_vmap_safe():
    a = jnp.asarray(_spd(4))
    bs = jnp.asarray(np.random.default_rng(2).normal(size=(3, 4)), jnp.float32)
    solve = jax.jit(jax.vmap(lambda b: ng.conjugate_gradient(lambda v: a @ v, b, iters=4)))
    np.testing.assert_allclose(solve(bs), np.linalg.solve(a, bs.T).T, rtol=1e-4, atol=1e-5)


def _tiny_policy(action_space):
    """A real actor (hidden width 4) on 3-d observations: (flat params, π(flat), obs)."""
    network = make_actor_critic(Box(-1.0, 1.0, (3,)), action_space, (4,), "tanh")
    obs = jax.random.normal(jax.random.key(0), (5, 3))

    @jax.jit  # one compile, not one per operation
    def init_actor():
        actor, _ = on_policy.split_actor_critic(network.init(jax.random.key(1), obs))
        # Move away from the near-uniform initial head so the Fisher is far from degenerate.
        return jax.tree.map(lambda p: p + 0.3 * jax.random.normal(jax.random.key(2), p.shape),
                            actor)

    params, unravel = ravel_pytree(init_actor())
    return params, lambda flat: network.apply(unravel(flat), obs, method="policy")


@pytest.mark.parametrize("action_space", [Discrete(3), Box(-1.0, 1.0, (2,))],
                         ids=["categorical", "gaussian"])
def test_fisher_vector_product_equals_dense_kl_hessian(action_space):
    params, policy = _tiny_policy(action_space)
    vector = jax.random.normal(jax.random.key(3), params.shape)

    @jax.jit
    def products(params, vector):  # (dense (H + 0.1 I) v, the Fisher-vector product)
        old = policy(params)

        def mean_kl(flat):
            return jnp.mean(old.kl_divergence(policy(flat)))

        dense = jax.hessian(mean_kl)(params) @ vector + 0.1 * vector
        return dense, ng.fisher_vector_product(mean_kl, params, damping=0.1)(vector)

    expected, product = products(params, vector)
    np.testing.assert_allclose(product, expected, rtol=1e-4, atol=1e-5)


def test_kl_hessian_is_the_fisher_information_matrix():
    # F = E_s Σ_a π(a|s) ∇log π(a|s) ∇log π(a|s)ᵀ, computed exactly over the 3 actions.
    params, policy = _tiny_policy(Discrete(3))
    vector = jax.random.normal(jax.random.key(3), params.shape)

    @jax.jit
    def products(params, vector):  # (F v by the definition, the Fisher-vector product)
        old = policy(params)
        scores = jnp.stack([jax.jacobian(lambda f, a=a: policy(f).log_prob(jnp.full((5,), a)))(
            params) for a in range(3)], axis=1)  # [states, actions, params]
        fisher = jnp.einsum("sa,sap,saq->pq", old.probs, scores, scores) / 5
        product = ng.fisher_vector_product(
            lambda flat: jnp.mean(old.kl_divergence(policy(flat))), params)(vector)
        return fisher @ vector, product

    expected, product = products(params, vector)
    np.testing.assert_allclose(product, expected, rtol=1e-4, atol=1e-5)


def test_max_kl_step_has_quadratic_kl_equal_to_the_bound():
    fisher = jnp.asarray(_spd(4))
    direction = jnp.array([1.0, -2.0, 0.5, 3.0])
    step = ng.max_kl_step(direction, fisher @ direction, 0.01)
    assert float(0.5 * step @ fisher @ step) == pytest.approx(0.01, rel=1e-5)
    np.testing.assert_array_equal(ng.max_kl_step(jnp.zeros(4), jnp.zeros(4), 0.01), np.zeros(4))


FISHER = jnp.asarray(_spd(3, seed=4))
GRADIENT = jnp.array([1.0, 0.5, -1.0])
OLD = jnp.array([0.2, -0.1, 0.3])


def _quadratic(params):
    """Linear surrogate improvement gᵀΔ and quadratic KL ½ ΔᵀFΔ around OLD."""
    delta = params - OLD
    return GRADIENT @ delta, 0.5 * delta @ FISHER @ delta


def _search(full_step, max_kl=0.01):
    return ng.backtracking_line_search(_quadratic, OLD, full_step, max_kl, 0.8, 10)


def test_line_search_shrinks_a_step_that_violates_the_kl_bound():
    step = 2.0 * ng.max_kl_step(GRADIENT, FISHER @ GRADIENT, 0.01)  # KL 4δ: too far
    result = _search(step)
    # 0.8^(2k) · 4δ ≤ δ first holds at k = 4 (0.64^3 = 0.26 > 1/4, 0.64^4 = 0.17).
    assert int(result.num_backtracks) == 4
    assert float(result.step_fraction) == pytest.approx(0.8**4)
    assert float(result.kl) <= 0.01
    assert float(result.improvement) > 0
    np.testing.assert_allclose(result.params, OLD + 0.8**4 * step, rtol=1e-6)
    np.testing.assert_allclose(_quadratic(result.params)[1], result.kl, rtol=1e-6)


def test_line_search_accepts_a_valid_full_step():
    step = 0.5 * ng.max_kl_step(GRADIENT, FISHER @ GRADIENT, 0.01)
    result = _search(step)
    assert int(result.num_backtracks) == 0 and float(result.step_fraction) == 1.0
    np.testing.assert_allclose(result.params, OLD + step)


def test_line_search_keeps_the_old_params_when_nothing_is_acceptable():
    uphill = -ng.max_kl_step(GRADIENT, FISHER @ GRADIENT, 0.01)  # surrogate decreases
    result = _search(uphill)
    np.testing.assert_array_equal(result.params, OLD)
    assert float(result.step_fraction) == 0.0
    assert int(result.num_backtracks) == 10
    assert float(result.kl) == 0.0 and float(result.improvement) == 0.0


def test_line_search_is_jit_and_vmap_safe_with_traced_bounds():
    step = 2.0 * ng.max_kl_step(GRADIENT, FISHER @ GRADIENT, 0.01)
    bounds = jnp.array([0.01, 0.05, 1e-9])
    batched = jax.jit(jax.vmap(lambda bound: _search(step, bound)))(bounds)
    for i, bound in enumerate(bounds):
        single = _search(step, float(bound))
        np.testing.assert_allclose(batched.params[i], single.params, rtol=1e-6)
        assert int(batched.num_backtracks[i]) == int(single.num_backtracks)
    np.testing.assert_array_equal(batched.num_backtracks, [4, 0, 10])
