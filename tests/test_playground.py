"""The MuJoCo Playground adapter (``playground/<Name>``) keeps the env protocol: terminated and
truncated apart, the final observation kept, auto-reset. Needs the ``[playground]`` extra;
slow-marked (importing Playground and compiling an MJX step take minutes on a loaded CPU)."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import pytest

pytest.importorskip("mujoco_playground")

from jaxrl import envs  # noqa: E402
from jaxrl.envs.playground_env import PLAYGROUND_ENVS  # noqa: E402

pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("playground")]


def test_dm_control_suite_ids_are_registered():
    assert {f"playground/{name}" for name in PLAYGROUND_ENVS} <= set(envs.list_envs())


def test_cartpole_balance_follows_the_protocol():
    env, params = envs.make("playground/CartpoleBalance", max_steps_in_episode=3)
    assert env.observation_space(params).shape == (5,)
    assert env.action_space(params).shape == (1,)

    def rollout(key):
        obs, state = env.reset(key, params)

        def step(carry, key):
            obs, state = carry
            next_obs, state, reward, terminated, truncated, info = env.step(
                key, state, jnp.ones(1), params)
            return (next_obs, state), (obs, next_obs, reward, terminated, truncated,
                                       info["final_obs"])

        return jax.lax.scan(step, (obs, state), jax.random.split(key, 4))[1]

    obs, next_obs, reward, terminated, truncated, final_obs = jax.jit(rollout)(
        jax.random.key(0))
    assert reward.dtype == jnp.float32 and bool(jnp.isfinite(reward).all())
    assert not terminated.any()  # balancing from the start: no terminal state in 4 steps
    assert truncated.tolist() == [False, False, True, False]  # the time limit, 3 steps
    # The final observation is the state the episode ended in; the next obs a fresh episode's.
    assert bool((final_obs[:2] == next_obs[:2]).all())
    assert not bool((final_obs[2] == next_obs[2]).all())
    assert bool((obs[1:] == next_obs[:-1]).all())
