"""A learned dynamics ensemble as an environment of the jaxrl protocol.

Course notes §11 (Model-Based RL) and 004 §11.1.3 (general Dyna-style MBRL): a model-based
learner imagines transitions with its model. Wrapped as an env, with the fitted ensemble in
the env params, the model is stepped by the same code that steps a real env: the shared rollout
(``jaxrl.rollout.rollout``) imagines a batch of branched rollouts, auto-reset, time limit,
``final_obs`` and episode statistics included, with no new loop.

- The env params (``LearnedEnvParams``) hold the ensemble's state (``ModelState``), the states
  an episode starts from (``starts [K, D]``: replay states of a branched rollout; a reset draws
  one uniformly) and the episode length (``max_steps_in_episode``: the rollout length ``k``).
- The state is the observation and the member moving it. **TS-∞** draws the member at reset and
  keeps it for the episode; **TS-1** draws a fresh one at every step (course notes §11,
  "Uncertainty"; PETS' trajectory sampling).
- A step is member ``m``'s prediction: ``s' ~ N(μ_m(s, a), σ²_m(s, a))`` (its mean for a
  deterministic ensemble), the reward of the model's head or of the env's known reward
  function, termination from the known termination function (deterministic) or drawn from the
  learned termination probability.
- ``start(key, obs, params)`` begins an episode in a given state (a branch point).
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
from flax import struct

from jaxrl.envs.core import TimeLimitedEnv, TimeLimitState
from jaxrl.envs.spaces import Space
from jaxrl.models.dynamics import PROPAGATIONS, DynamicsModel, ModelState

__all__ = ["LearnedEnvParams", "LearnedEnvState", "LearnedModelEnv"]


class LearnedEnvParams(struct.PyTreeNode):
    """The fitted ensemble, the start states ``[K, D]`` and the episode length."""

    model: ModelState
    starts: jax.Array
    max_steps_in_episode: int = struct.field(pytree_node=False, default=1)


class LearnedEnvState(struct.PyTreeNode):
    """The current observation ``[D]`` and the ensemble member moving it."""

    obs: jax.Array
    member: jax.Array


class LearnedModelEnv(TimeLimitedEnv):
    """``model`` (a ``DynamicsModel``) as an env; ``propagation`` ``"ts1"`` or ``"tsinf"``
    (module docstring). ``ValueError`` for an unknown propagation."""

    def __init__(self, model: DynamicsModel, observation_space: Space,
                 propagation: str = "tsinf") -> None:
        if propagation not in PROPAGATIONS:
            raise ValueError(f"propagation must be one of {', '.join(PROPAGATIONS)}, "
                             f"got {propagation!r}")
        self.model = model
        self.propagation = propagation
        self._observation_space = observation_space

    def observation_space(self, params: Any) -> Space:
        return self._observation_space

    def action_space(self, params: Any) -> Space:
        return self.model.action_space

    def _member(self, key: jax.Array) -> jax.Array:
        return jax.random.randint(key, (), 0, self.model.num_members)

    def reset_env(self, key: jax.Array, params: LearnedEnvParams
                  ) -> tuple[jax.Array, LearnedEnvState]:
        start_key, member_key = jax.random.split(key)
        obs = params.starts[jax.random.randint(start_key, (), 0, params.starts.shape[0])]
        return obs, LearnedEnvState(obs, self._member(member_key))

    def start(self, key: jax.Array, obs: jax.Array, params: LearnedEnvParams
              ) -> tuple[jax.Array, TimeLimitState]:
        """An episode starting in ``obs [D]`` (a branched rollout's start), its member drawn."""
        state = LearnedEnvState(jnp.asarray(obs, jnp.float32), self._member(key))
        return state.obs, TimeLimitState(state, jnp.zeros((), jnp.int32))

    def step_env(self, key: jax.Array, state: LearnedEnvState, action: jax.Array,
                 params: LearnedEnvParams):
        member_key, noise_key, done_key = jax.random.split(key, 3)
        member = state.member if self.propagation == "tsinf" else self._member(member_key)
        one = params.model.replace(params=jax.tree.map(
            lambda p: jax.lax.dynamic_slice_in_dim(p, member, 1), params.model.params))
        mean, std, reward, done = self.model.predict(one, state.obs[None, None],
                                                     jnp.asarray(action)[None, None])
        next_obs, reward = mean[0, 0], reward[0, 0]
        if self.model.probabilistic:
            next_obs = next_obs + std[0, 0] * jax.random.normal(noise_key, next_obs.shape)
        # Known functions see the sampled next observation, not the member's mean.
        model = self.model
        if model.reward_fn is not None:
            reward = model.reward_fn(state.obs, action, next_obs, model.env_params)
        if model.termination_fn is None:
            terminated = jax.random.uniform(done_key) < done[0, 0]
        else:
            terminated = model.termination_fn(state.obs, action, next_obs, model.env_params)
        return (next_obs, LearnedEnvState(next_obs, member), jnp.asarray(reward, jnp.float32),
                jnp.asarray(terminated, bool), {})
