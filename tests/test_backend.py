"""``jaxrl.backend.scan_unroll``: defaults per backend, the override, env limits; an unrolled
rollout equals the rolled one bitwise, and PPO trained with it up to float rounding."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxrl import envs
from jaxrl.agents import ppo
from jaxrl.backend import ACCELERATOR_UNROLL, UNROLL_ENV, env_unroll_limit, scan_unroll
from jaxrl.envs import EpisodeStatistics
from jaxrl.rollout import reset_envs, rollout


def test_cpu_default_is_one(monkeypatch):
    monkeypatch.delenv(UNROLL_ENV, raising=False)
    assert jax.default_backend() == "cpu"
    assert scan_unroll(128) == 1


def test_accelerator_default_is_capped_by_length_and_limit(monkeypatch):
    monkeypatch.delenv(UNROLL_ENV, raising=False)
    monkeypatch.setattr(jax, "default_backend", lambda: "gpu")
    assert scan_unroll(128) == ACCELERATOR_UNROLL
    assert scan_unroll(3) == 3
    assert scan_unroll(128, limit=1) == 1
    assert scan_unroll(128, limit=None) == ACCELERATOR_UNROLL


@pytest.mark.parametrize("value, expected", [("4", 4), ("1", 1), ("1000", 128)])
def test_override_applies_on_every_backend(monkeypatch, value, expected):
    monkeypatch.setenv(UNROLL_ENV, value)
    assert scan_unroll(128) == expected
    assert scan_unroll(128, limit=2) == min(expected, 2)


@pytest.mark.parametrize("value", ["0", "-3", "eight", ""])
def test_bad_override_says_what_to_set(monkeypatch, value):
    monkeypatch.setenv(UNROLL_ENV, value)
    with pytest.raises(ValueError, match="JAXRL_SCAN_UNROLL must be a positive integer"):
        scan_unroll(8)


def test_brax_limit_is_forwarded_through_wrappers():
    from jaxrl.envs.brax_env import BraxEnv

    assert BraxEnv.max_unroll == 1
    fake = type("FakeBrax", (), {"max_unroll": 1})()
    assert env_unroll_limit(EpisodeStatistics(fake)) == 1
    env, _ = envs.make("CartPole-v1")
    assert env_unroll_limit(EpisodeStatistics(env)) is None


def _cartpole_rollout(num_steps: int):
    env, params = envs.make("CartPole-v1")
    env = EpisodeStatistics(env)
    obs, state = reset_envs(jax.random.key(0), env, params, 3)

    def policy(key, obs):
        return jax.random.bernoulli(key, 0.5, obs.shape[:1]).astype(jnp.int32), {
            "mean_obs": obs.mean(-1)}

    return jax.jit(lambda k: rollout(k, env, params, state, obs, policy, num_steps))(
        jax.random.key(1))


@pytest.mark.parametrize("unroll", ["4", "7"])
def test_unrolled_rollout_is_bitwise_equal(monkeypatch, unroll):
    monkeypatch.setenv(UNROLL_ENV, "1")
    rolled = _cartpole_rollout(30)
    monkeypatch.setenv(UNROLL_ENV, unroll)  # 7 does not divide 30: a remainder trip too
    unrolled = _cartpole_rollout(30)
    for a, b in zip(jax.tree.leaves(rolled), jax.tree.leaves(unrolled), strict=True):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))


def test_unrolled_ppo_training_matches_up_to_rounding(monkeypatch):
    # XLA fuses the unrolled body differently: rounding differs in the last bits (~1e-6).
    config = ppo.Config(total_timesteps=2 * 4 * 16, num_envs=4, num_steps=16, update_epochs=2,
                        num_minibatches=2, hidden_sizes=(16,))
    env, params = envs.make("CartPole-v1")

    def train():
        state, metrics = jax.jit(ppo.make_train(config, env, params))(jax.random.key(3))
        return jax.tree.leaves((state.params, metrics))

    monkeypatch.setenv(UNROLL_ENV, "1")
    rolled = train()
    monkeypatch.setenv(UNROLL_ENV, "16")
    for a, b in zip(rolled, train(), strict=True):
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-4, atol=1e-6)
