"""Bootstrapped DQN (Osband et al., 2016) with randomized prior functions (Osband et al., 2018).

Course notes §17 "Exploration", §17.2 items 2–3 (Thompson sampling, bootstrap): ``K`` Q-functions
``Q_k(s, a) = f_k(s, a; θ_k) + β p_k(s, a)`` on separate torsos, each with a fixed random prior
network ``p_k`` (initialised like ``f_k``, never trained) scaled by ``β = prior_scale``. Every
transition carries a bootstrap mask ``m ~ Bernoulli(mask_prob)^K``, stored with it in the replay
buffer; head ``k`` learns only from the transitions with ``m_k = 1``:

    L = Σ_b Σ_k m_{b,k} Huber(Q_k(s_b, a_b) - y_{b,k}) / Σ_{b,k} m_{b,k},
    y_{b,k} = r_b + γ_b Q⁻_k(s'_b, argmax_a Q_k(s'_b, a))      (double Q; max_a Q⁻_k without)

with ``Q⁻_k`` the Polyak-averaged target of head ``k`` plus the same prior. One head, drawn
uniformly at the start of each episode, acts greedily for the whole episode (approximate
Thompson sampling over value functions: "deep exploration"); evaluation acts greedily on the
heads' mean.

The masks and the episode's head travel with the observation: ``BootstrapObservations`` appends
them to the (flattened) env observation, so the replay loop of ``training.off_policy`` stores
the masks per transition without a new buffer field, and the behaviour policy reads the head
from the observation; the networks see only the env's part. ``act`` also accepts plain env
observations (saved policies, ``jaxrl eval``).
"""

from __future__ import annotations

import math
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import struct

from jaxrl.envs.spaces import Box, Discrete
from jaxrl.envs.wrappers import Wrapper
from jaxrl.models.heads import QHead
from jaxrl.models.torsos import MLP
from jaxrl.replay import Sample
from jaxrl.training import off_policy, optim
from jaxrl.training.agent import Agent, Metrics, train_from_agent
from jaxrl.training.config import check_config, hyper, static
from jaxrl.training.extensions import RewardTransform
from jaxrl.training.off_policy import TrainState
from jaxrl.training.q_learning import QConfig, greedy_next_value

__all__ = ["BootstrapObservations", "Config", "QEnsemble", "TrainState", "make_agent",
           "make_train"]


class Config(QConfig):
    """Bootstrapped DQN hyperparameters (the replay loop's and QConfig's, plus these)."""

    num_heads: int = static(10, ">= 1")
    """K: Q-heads (each with its own torso and prior network)"""
    double_q: bool = static(True)
    """double Q-learning target per head"""
    prior_scale: float = hyper(3.0, ">= 0")
    """β: weight of the fixed random prior network added to each head (0: no prior)"""
    mask_prob: float = hyper(0.5, "[0, 1]")
    """probability that a transition trains a given head (1: no bootstrap)"""
    epsilon: float = hyper(0.0, "[0, 1]")
    """ε of an ε-greedy step on top of the episode's head (0: pure bootstrap exploration)"""


class _Member(nn.Module):
    hidden_sizes: tuple[int, ...]
    activation: str
    num_actions: int

    @nn.compact
    def __call__(self, features: jax.Array) -> jax.Array:
        return QHead(self.num_actions)(MLP(self.hidden_sizes, self.activation)(features))


class QEnsemble(nn.Module):
    """``K`` independent MLP Q-networks: ``features [B, d] -> Q [B, K, A]``."""

    num_heads: int
    hidden_sizes: tuple[int, ...]
    activation: str
    num_actions: int

    @nn.compact
    def __call__(self, features: jax.Array) -> jax.Array:
        members = nn.vmap(_Member, variable_axes={"params": 0}, split_rngs={"params": True},
                          in_axes=None, out_axes=-2, axis_size=self.num_heads)
        return members(self.hidden_sizes, self.activation, self.num_actions)(features)


class BootstrapState(struct.PyTreeNode):
    env_state: Any
    head: jax.Array
    """the head acting in this episode"""


class BootstrapObservations(Wrapper):
    """Observation ``[flattened env obs, bootstrap mask (K), head]``: a fresh mask
    ``Bernoulli(mask_prob)^K`` with every observation (it belongs to the transition taken from
    it) and a head drawn uniformly at every episode start."""

    def __init__(self, env: Any, num_heads: int, mask_prob: float | jax.Array):
        super().__init__(env)
        self.num_heads = num_heads
        self.mask_prob = mask_prob

    def _augment(self, obs: jax.Array, mask: jax.Array, head: jax.Array) -> jax.Array:
        return jnp.concatenate([jnp.asarray(obs, jnp.float32).reshape(-1),
                                mask.astype(jnp.float32), head[None].astype(jnp.float32)])

    def _mask(self, key: jax.Array) -> jax.Array:
        return jax.random.bernoulli(key, self.mask_prob, (self.num_heads,))

    def reset(self, key: jax.Array, params: Any) -> tuple[jax.Array, BootstrapState]:
        reset_key, head_key, mask_key = jax.random.split(key, 3)
        obs, env_state = self.env.reset(reset_key, params)
        head = jax.random.randint(head_key, (), 0, self.num_heads)
        return self._augment(obs, self._mask(mask_key), head), BootstrapState(env_state, head)

    def step(self, key: jax.Array, state: BootstrapState, action: jax.Array, params: Any):
        step_key, head_key, mask_key = jax.random.split(key, 3)
        obs, env_state, reward, terminated, truncated, info = self.env.step(
            step_key, state.env_state, action, params)
        head = jnp.where(terminated | truncated,
                         jax.random.randint(head_key, (), 0, self.num_heads), state.head)
        info = dict(info)
        # The final observation is only ever a next_obs: its mask is never read.
        info["final_obs"] = self._augment(info["final_obs"], jnp.zeros(self.num_heads),
                                          state.head)
        return (self._augment(obs, self._mask(mask_key), head), BootstrapState(env_state, head),
                reward, terminated, truncated, info)

    def max_truncations(self, params: Any, num_steps: int) -> int | None:
        bound = getattr(self.env, "max_truncations", None)
        return None if bound is None else bound(params, num_steps)

    def observation_space(self, params: Any) -> Box:
        space = self.env.observation_space(params)
        size = math.prod(space.shape)
        low = np.broadcast_to(np.asarray(getattr(space, "low", 0.0), np.float32),
                              space.shape).reshape(-1)
        high = np.broadcast_to(np.asarray(getattr(space, "high", np.inf), np.float32),
                               space.shape).reshape(-1)
        extras_low = np.zeros(self.num_heads + 1, np.float32)
        extras_high = np.concatenate([np.ones(self.num_heads), [self.num_heads - 1]])
        return Box(np.concatenate([low, extras_low]), np.concatenate([high, extras_high]),
                   (size + self.num_heads + 1,), jnp.float32)


def make_agent(config: Config, env: Any, env_params: Any,
               reward_transform: RewardTransform | None = None) -> Agent:
    """Build bootstrapped DQN's ``init`` / ``update`` / ``act`` on the replay loop."""
    check_config(config)
    if config.bonus != "none":
        raise ValueError(f"bootstrapped_dqn explores with its heads and takes no reward bonus; "
                         f"drop bonus = {config.bonus!r} (or use dqn --bonus {config.bonus})")
    raw_shape = tuple(env.observation_space(env_params).shape)
    obs_size, num_heads = math.prod(raw_shape), config.num_heads
    parts = off_policy.setup(BootstrapObservations(env, num_heads, config.mask_prob),
                             env_params, "BOOTSTRAPPED_DQN", Discrete)
    network = QEnsemble(num_heads, tuple(config.hidden_sizes), config.activation,
                        parts.action_space.n)
    optimizer = optim.adam(config.learning_rate, config.max_grad_norm,
                           config.total_gradient_steps if config.anneal_lr else None)
    next_value = greedy_next_value(config.double_q)

    def features(obs: jax.Array) -> jax.Array:
        """The env's part of an augmented observation, or a plain one flattened."""
        if tuple(obs.shape[1:]) == raw_shape:
            return obs.reshape((obs.shape[0], -1)).astype(jnp.float32)
        return obs[:, :obs_size]

    def q_values(q_params: Any, prior_params: Any, obs: jax.Array) -> jax.Array:
        """``f_k(s) + β p_k(s)`` for every head ``[B, K, A]``; the prior is a constant."""
        x = features(obs)
        prior = jax.lax.stop_gradient(network.apply(prior_params, x))
        return network.apply(q_params, x) + config.prior_scale * prior

    def init(key, obs):
        q_key, prior_key = jax.random.split(key)
        x = features(obs[:1])
        q_params, prior_params = network.init(q_key, x), network.init(prior_key, x)
        return ({"q": q_params, "prior": prior_params}, {"q": q_params},
                {"q": optimizer.init(q_params)})

    def explore(key, params, obs, env_steps):
        head = obs[:, -1].astype(jnp.int32)
        q = q_values(params["q"], params["prior"], obs)
        greedy = jnp.argmax(jnp.take_along_axis(q, head[:, None, None], 1)[:, 0], -1)
        uniform = jax.random.uniform(key, (2, obs.shape[0]))
        random_actions = jnp.minimum(jnp.floor(uniform[1] * q.shape[-1]), q.shape[-1] - 1)
        return jnp.where(uniform[0] < config.epsilon, random_actions, greedy).astype(jnp.int32)

    def loss_fn(q_params, prior_params, target_params, sample: Sample) -> tuple[jax.Array,
                                                                                 Metrics]:
        mask = sample.obs[:, obs_size:obs_size + num_heads]
        q = q_values(q_params, prior_params, sample.obs)
        q_taken = jnp.take_along_axis(q, sample.action[:, None, None], -1)[..., 0]  # [B, K]
        next_q_online = jax.lax.stop_gradient(q_values(q_params, prior_params, sample.next_obs))
        next_q_target = q_values(target_params, prior_params, sample.next_obs)
        targets = (sample.reward[:, None]
                   + sample.discount[:, None] * next_value(next_q_online, next_q_target))
        errors = optax.huber_loss(q_taken, jax.lax.stop_gradient(targets), delta=1.0)
        loss = (mask * errors).sum() / jnp.maximum(mask.sum(), 1.0)
        return loss, {"loss": loss, "q_values": q_taken.mean(), "mask_fraction": mask.mean()}

    def gradient_step(key, state: TrainState, sample: Sample) -> tuple[TrainState, Metrics]:
        grads, metrics = jax.grad(loss_fn, has_aux=True)(
            state.params["q"], state.params["prior"], state.target_params["q"], sample)
        q_params, opt_state = optim.apply_gradients(optimizer, grads, state.opt_state["q"],
                                                    state.params["q"])
        target = optim.polyak_update(q_params, state.target_params["q"], config.tau,
                                     state.update_count, config.target_network_frequency)
        metrics["grad_norm"] = optim.grad_norm(grads)
        return state.replace(params={"q": q_params, "prior": state.params["prior"]},
                             target_params={"q": target}, opt_state={"q": opt_state}), metrics

    def act(params, obs, key, deterministic=False):
        q = q_values(params["q"], params["prior"], obs)
        if deterministic:
            return jnp.argmax(q.mean(1), -1).astype(jnp.int32)
        head = jax.random.randint(key, (obs.shape[0],), 0, num_heads)
        return jnp.argmax(jnp.take_along_axis(q, head[:, None, None], 1)[:, 0], -1).astype(
            jnp.int32)

    hooks = off_policy.OffPolicyHooks(init=init, explore=explore, gradient_step=gradient_step,
                                      act=act)
    return off_policy.make_off_policy_agent(config, parts, env_params, hooks, reward_transform)


def make_train(config: Config, env: Any, env_params: Any,
               reward_transform: RewardTransform | None = None):
    """``train(key) -> (TrainState, metrics)``: the whole run as one pure function."""
    return train_from_agent(make_agent(config, env, env_params, reward_transform))
