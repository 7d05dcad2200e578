"""Tiny probe environments that each isolate one part of an agent (after Andy Jones' probes).

All are ``TimeLimitedEnv`` subclasses with a one-dimensional float observation.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import struct

from jaxrl.envs import Box, Discrete, TimeLimitedEnv


class ProbeParams(struct.PyTreeNode):
    max_steps_in_episode: int = struct.field(pytree_node=False, default=1)


class ConstantRewardEnv(TimeLimitedEnv):
    """Observation 0, reward 1 every step, never terminates: only the time limit ends it.

    With truncation bootstrapped correctly, V(0) = 1 / (1 - γ) whatever the limit; an agent that
    treats truncation as termination learns a smaller value.
    """

    def reset_env(self, key, params):
        return jnp.zeros((1,), jnp.float32), jnp.zeros((), jnp.int32)

    def step_env(self, key, state, action, params):
        return jnp.zeros((1,), jnp.float32), state, jnp.float32(1.0), jnp.bool_(False), {}

    def observation_space(self, params):
        return Box(-1.0, 1.0, (1,))

    def action_space(self, params):
        return Discrete(2)


class TerminalRewardEnv(ConstantRewardEnv):
    """Reward 1, then termination after one step: V(0) must be exactly 1 (no bootstrap)."""

    def step_env(self, key, state, action, params):
        return jnp.zeros((1,), jnp.float32), state, jnp.float32(1.0), jnp.bool_(True), {}


class ObservedSignEnv(TimeLimitedEnv):
    """Observation ±1 at random; reward 1 for the action matching the sign (1 for +1), else 0.

    One-step episodes: the policy must use its input; the optimal return is 1.
    """

    def reset_env(self, key, params):
        sign = jax.random.bernoulli(key).astype(jnp.float32) * 2.0 - 1.0
        return sign[None], sign

    def step_env(self, key, state, action, params):
        reward = jnp.where((action == 1) == (state > 0), 1.0, 0.0).astype(jnp.float32)
        return state[None], state, reward, jnp.bool_(True), {}

    def observation_space(self, params):
        return Box(-1.0, 1.0, (1,))

    def action_space(self, params):
        return Discrete(2)


class TargetActionEnv(ObservedSignEnv):
    """Continuous actions: reward ``-(a - 0.5 · sign)²`` for one-step episodes; optimum 0."""

    def step_env(self, key, state, action, params):
        reward = -jnp.square(action[0] - 0.5 * state)
        return state[None], state, reward.astype(jnp.float32), jnp.bool_(True), {}

    def action_space(self, params):
        return Box(-1.0, 1.0, (1,))


class SwitchParams(ProbeParams):
    terminates: jax.Array | bool = False  # a leaf: one compiled run covers both probes


class SwitchedRewardEnv(ConstantRewardEnv):
    """Reward 1 every step. Where ``params.terminates``, each step terminates (Q = 1, no
    bootstrap, like ``TerminalRewardEnv``); otherwise only the time limit truncates it (like
    ``ConstantRewardEnv``: Q = 1 / (1 - γ) when truncation bootstraps)."""

    def step_env(self, key, state, action, params):
        obs, state, reward, _, info = super().step_env(key, state, action, params)
        return obs, state, reward, jnp.asarray(params.terminates), info


class ContinuousSwitchedRewardEnv(SwitchedRewardEnv):
    """``SwitchedRewardEnv`` with a Box action: the same Q for every action."""

    def action_space(self, params):
        return Box(-1.0, 1.0, (1,))
