"""Preference-based RL on a control task: SAC on a reward learned from segment comparisons.

Course notes §20.1 (RLHF: a Bradley–Terry reward model from pairwise comparisons, then RL on
it) applied to control, as in the notes' open problem "how do we tell RL agents what we want
them to do?" (§A *Learning in the real world*, Christiano et al.): the agent never sees the
env's reward. It learns from a synthetic teacher's answers to queries about its own behaviour.

- **Queries**: every ``query_interval`` iterations, while fewer than ``max_queries`` were asked,
  two segments ``σ⁰, σ¹`` of ``segment_length`` consecutive transitions are drawn from the
  agent's own replay buffer. The teacher answers with a Bradley–Terry draw on their true returns,
  ``P(σ¹ ≻ σ⁰) = σ((R(σ¹) − R(σ⁰)) / teacher_temperature)``.
- **Reward model**: ``r̂_φ(s, a)``, an MLP with a tanh output (the mean of ``ensemble_size``
  members), fitted by the Bradley–Terry loss on segment sums,
  ``L(φ) = −E[y log σ(Σ r̂(σ¹) − Σ r̂(σ⁰)) + (1 − y) log σ(Σ r̂(σ⁰) − Σ r̂(σ¹))]``
  (``losses.preferences.bradley_terry_loss``). It takes ``reward_updates`` gradient steps per
  iteration on minibatches of the answers so far, so queries and training interleave.
- **Policy**: SAC (``training.actor_critic``) through the replay loop's extension points
  (``off_policy.ReplayExtensions``). The phase asks and fits; the target override relabels
  every sampled transition's reward with ``reward_scale · r̂_φ(s, a)`` of the *current* model,
  so rewards in the buffer never go stale (PEBBLE's relabelling, Lee et al. 2021). The buffer
  keeps the env's reward only for the teacher.

``episode_return`` and ``eval_return`` are true returns (what the teacher wanted). Metrics
``queries``, ``reward_loss`` and ``reward_accuracy`` (on the minibatch of answers) come from the
phase. One pure function like every agent: jit- and vmap-able over seeds and hyperparameters.
"""

from __future__ import annotations

from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import optax
from flax import struct

from jaxrl.envs.spaces import Box
from jaxrl.losses.preferences import bradley_terry_loss
from jaxrl.models.torsos import MLP
from jaxrl.training import off_policy
from jaxrl.training.actor_critic import SACConfig, sac_hooks
from jaxrl.training.agent import Agent, train_from_agent
from jaxrl.training.config import check_config, hyper, static
from jaxrl.training.optim import adam

__all__ = ["Config", "PreferenceState", "RewardModel", "make_agent", "make_train",
           "preference_extensions"]


class Config(SACConfig):
    """SAC's fields (sized for Pendulum-v1) plus the queries and the reward model."""

    total_timesteps: int = static(20_000, ">= 1")
    buffer_size: int = static(20_000, ">= 1")
    segment_length: int = static(25, ">= 1")
    """transitions per queried segment"""
    max_queries: int = static(500, ">= 1")
    """pairs the teacher labels over the whole run"""
    query_interval: int = static(8, ">= 1")
    """iterations (of train_frequency vectorised env steps) between two queries"""
    reward_updates: int = static(1, ">= 1")
    """reward-model gradient steps per iteration"""
    reward_batch_size: int = static(64, ">= 1")
    """labelled pairs per reward-model gradient step"""
    ensemble_size: int = static(3, ">= 1")
    """reward-model members (their mean is the reward; one member whose fit stalls, e.g. with
    dead units, cannot then take the reward down with it)"""
    reward_hidden_sizes: tuple[int, ...] = static((64, 64))
    """hidden layers of each reward-model member"""
    teacher_temperature: float = hyper(1.0, ">= 0")
    """the teacher's Bradley–Terry temperature on segment returns (0: always the better one)"""
    reward_lr: float = hyper(1e-3, "> 0")
    """Adam step size of the reward model"""
    reward_scale: float = hyper(5.0, "> 0")
    """SAC's reward is reward_scale · r̂(s, a), r̂ in [-1, 1]"""

    def validate(self) -> None:
        """The warm-up fills a segment; one-step targets (the relabelled reward is per step)."""
        super().validate()
        if self.segment_length > self.warmup_vector_steps:
            raise ValueError(f"segment_length = {self.segment_length} is longer than the "
                             f"{self.warmup_vector_steps} warm-up steps per env; raise "
                             "learning_starts or shorten segment_length")
        if self.n_step != 1:
            raise ValueError(f"pref_rl relabels one-step rewards; set n_step = 1 (got "
                             f"{self.n_step})")


class RewardModel(nn.Module):
    """``r̂(s, a) ∈ [-1, 1]``: an MLP on the concatenated observation and action."""

    hidden_sizes: tuple[int, ...]

    @nn.compact
    def __call__(self, obs: jax.Array, action: jax.Array) -> jax.Array:
        x = MLP(self.hidden_sizes, "relu")(jnp.concatenate([obs, action], -1))
        return jnp.tanh(nn.Dense(1)(x)[..., 0])


class PreferenceState(struct.PyTreeNode):
    """The extension's state: the reward model and the teacher's answers so far.

    ``first`` / ``second`` ``[max_queries, segment_length, obs + action]`` hold the queried
    segments, ``label`` whether the teacher preferred ``second``; ``queries`` counts the answers,
    ``iteration`` the loop iterations seen."""

    params: Any
    opt_state: Any
    first: jax.Array
    second: jax.Array
    label: jax.Array
    queries: jax.Array
    iteration: jax.Array


def preference_extensions(config: Config, parts: off_policy.OffPolicySetup
                          ) -> off_policy.ReplayExtensions:
    """The phase (ask, label, fit) and the target override (relabel) of the module docstring."""
    model = RewardModel(tuple(config.reward_hidden_sizes))
    optimizer = adam(config.reward_lr)
    obs_size = parts.observation_space.shape[0]
    feature_size = obs_size + parts.action_space.shape[0]

    def reward(params, features):
        members = jax.vmap(model.apply, in_axes=(0, None, None))(
            params, features[..., :obs_size], features[..., obs_size:])
        return members.mean(0)

    def init(key, obs, parts):
        dummy = jnp.zeros((1, feature_size))
        params = jax.vmap(lambda k: model.init(k, dummy[:, :obs_size], dummy[:, obs_size:]))(
            jax.random.split(key, config.ensemble_size))
        segments = jnp.zeros((config.max_queries, config.segment_length, feature_size))
        return PreferenceState(params, optimizer.init(params), segments, segments,
                               jnp.zeros(config.max_queries), jnp.zeros((), jnp.int32),
                               jnp.zeros((), jnp.int32))

    def draw_segments(key, buffer):
        """Two segments of consecutive rows of one env each: features and true returns."""
        start_key, env_key = jax.random.split(key)
        num_envs = buffer.reward.shape[1]
        starts = jax.random.randint(start_key, (2,), 0,
                                    jnp.maximum(buffer.size - config.segment_length + 1, 1))
        oldest = jnp.where(buffer.size < buffer.rows, 0, buffer.pointer)
        rows = (oldest + starts[:, None] + jnp.arange(config.segment_length)) % buffer.rows
        envs = jax.random.randint(env_key, (2, 1), 0, num_envs)
        features = jnp.concatenate([buffer.obs[rows, envs].astype(jnp.float32),
                                    buffer.action[rows, envs].astype(jnp.float32)], -1)
        return features, buffer.reward[rows, envs].sum(-1)

    def loss_fn(params, first, second, label):
        margin = reward(params, second).sum(-1) - reward(params, first).sum(-1)
        # Label y: y = 1 → second ≻ first. BT on the signed margin (scores given as h, 0).
        signed = jnp.where(label > 0.5, margin, -margin)
        return bradley_terry_loss(signed, jnp.zeros_like(signed)), jnp.mean(signed > 0)

    def phase(key, state):
        ext = state.extension_state
        keys = jax.random.split(key, 2 + config.reward_updates)
        query_key, label_key, update_keys = keys[0], keys[1], keys[2:]
        ask = (ext.iteration % config.query_interval == 0) & (ext.queries < config.max_queries)
        features, returns = draw_segments(query_key, state.buffer)
        temperature = config.teacher_temperature
        difference = returns[1] - returns[0]
        p_second = jnp.where(temperature > 0,
                             jax.nn.sigmoid(difference / jnp.maximum(temperature, 1e-8)),
                             0.5 + 0.5 * jnp.sign(difference))
        answer = (jax.random.uniform(label_key) < p_second).astype(jnp.float32)
        slot = jnp.minimum(ext.queries, config.max_queries - 1)
        first = ext.first.at[slot].set(jnp.where(ask, features[0], ext.first[slot]))
        second = ext.second.at[slot].set(jnp.where(ask, features[1], ext.second[slot]))
        label = ext.label.at[slot].set(jnp.where(ask, answer, ext.label[slot]))
        queries = ext.queries + ask.astype(jnp.int32)

        def fit(carry, update_key):
            params, opt_state = carry
            index = jax.random.randint(update_key, (config.reward_batch_size,), 0,
                                       jnp.maximum(queries, 1))
            (loss, accuracy), grads = jax.value_and_grad(loss_fn, has_aux=True)(
                params, first[index], second[index], label[index])
            updates, opt_state = optimizer.update(grads, opt_state, params)
            return (optax.apply_updates(params, updates), opt_state), (loss, accuracy)

        (params, opt_state), (loss, accuracy) = jax.lax.scan(
            fit, (ext.params, ext.opt_state), update_keys)
        ext = PreferenceState(params, opt_state, first, second, label, queries,
                              ext.iteration + 1)
        return state.replace(extension_state=ext), {
            "queries": queries.astype(jnp.float32), "reward_loss": loss.mean(),
            "reward_accuracy": accuracy.mean()}

    def target(key, state, sample):
        features = jnp.concatenate([sample.obs, sample.action.astype(jnp.float32)], -1)
        return sample.replace(
            reward=config.reward_scale * reward(state.extension_state.params, features))

    return off_policy.ReplayExtensions(init=init, phase=phase, target=target)


def make_agent(config: Config, env: Any, env_params: Any) -> Agent:
    """``init`` / ``update`` / ``act`` of SAC on the learned reward (module docstring)."""
    check_config(config)
    parts = off_policy.setup(env, env_params, "pref_rl", Box)
    return off_policy.make_off_policy_agent(config, parts, env_params, sac_hooks(config, parts),
                                            None, preference_extensions(config, parts))


def make_train(config: Config, env: Any, env_params: Any):
    """``train(key) -> (TrainState, metrics)``: the whole run as one pure function."""
    return train_from_agent(make_agent(config, env, env_params))
