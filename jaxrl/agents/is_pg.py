"""Off-policy policy gradient with importance weights: learn a policy from episodes another
behaviour collected (a dataset with the behaviour's log-probabilities).

Course notes 000 §5 "Off-policy policy gradients" and §15 "Importance Sampling" (001,
"Importance sampling in policy gradient"):
``∇J(θ) = E_{τ~π_b}[(π_θ(τ) / π_b(τ)) ∇log π_θ(τ) r(τ)]``, and by causality a reward is
weighted only by the decisions before it. With per-decision weights
``w_t = Π_{k≤t} ρ_k``, ``ρ_k = π_θ(a_k|s_k) / π_b(a_k|s_k)`` (``jaxrl.ope``'s, from
``ope.log_ratios``), the gradient of the per-decision estimate
``Ĵ = 1/E Σ_i Σ_t γ^t w_it r_it`` (``ope.per_decision_is``) is, since
``∇w_t = w_t Σ_{k≤t} ∇log π_θ(a_k|s_k)``,

``ĝ = 1/E Σ_i Σ_t ∇log π_θ(a_it|s_it) Ψ_it``,  ``Ψ_it = Σ_{t'≥t} γ^{t'} w̃_it' r_it'``

with ``w̃ = w`` (``weights = "per_decision"``: unbiased, ``E_b[ĝ] = ∇J``). Two variants trade
variance for bias: ``"truncated"`` ``w̃ = min(w, c)`` (``c = truncation``; bounded, biased
towards the behaviour) and ``"self_normalized"`` ``w̃_it = w_it / mean_j w_jt`` over the
minibatch's episodes (weighted importance sampling per step; bounded by the returns, biased,
consistent). The loss is the surrogate ``-1/E Σ log π_θ(a|s) · stopgrad(Ψ)``: its gradient is
``-ĝ``, and for ``per_decision`` exactly ``-∇_θ ope.per_decision_is`` (tested).

Each gradient step draws ``episodes_per_batch`` episodes of the dataset (``ope.episodes``:
cut at ``terminated | truncated``, padded). The policy is categorical (discrete actions) or a
Gaussian with a state-independent std (continuous; actions clipped to the bounds when acting).
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
from flax import struct

from jaxrl import ope
from jaxrl.datasets import Dataset, validate
from jaxrl.envs.spaces import Box, Discrete
from jaxrl.models import CategoricalHead, GaussianHead, PolicyNetwork, make_torso
from jaxrl.training.agent import Agent, Metrics, train_from_agent
from jaxrl.training.config import ACTIVATIONS, check_config, hyper, static
from jaxrl.training.offline import ObsNormalizer, OfflineConfig, make_offline_agent
from jaxrl.training.optim import apply_gradients, flat_adam, grad_norm

__all__ = ["OFFLINE", "WEIGHTS", "Config", "Learner", "decision_weights", "make_agent",
           "make_train", "surrogate_loss"]

OFFLINE = True
"""The runner passes ``dataset=`` to ``make_agent``."""

WEIGHTS = ("per_decision", "truncated", "self_normalized")


class Config(OfflineConfig):
    """is_pg hyperparameters. Static fields decide shapes."""

    total_gradient_steps: int = static(2_000, ">= 1")
    log_frequency: int = static(200, ">= 1")
    hidden_sizes: tuple[int, ...] = static((64, 64))
    activation: str = static("tanh", ACTIVATIONS)
    weights: str = static("per_decision", WEIGHTS)
    """importance weights w̃: per_decision (unbiased), truncated min(w, c), self_normalized"""
    episodes_per_batch: int = static(16, ">= 1")
    """episodes per gradient step"""
    learning_rate: float = hyper(1e-3, "> 0")
    """Adam step size"""
    gamma: float = hyper(0.99, "[0, 1]")
    """discount factor"""
    truncation: float = hyper(10.0, "> 0")
    """c of the truncated weights min(w, c)"""


class Learner(struct.PyTreeNode):
    """The policy's parameters and optimiser state."""

    params: Any
    opt_state: Any


def decision_weights(kind: str, log_weights: jax.Array, mask: jax.Array,
                     truncation: float | jax.Array) -> jax.Array:
    """``w̃ [E, T]`` from per-decision log-weights ``log w_t = Σ_{k≤t} log ρ_k``: ``w``,
    ``min(w, c)`` or ``w_t / mean_j w_jt`` (module docstring); 0 on padding."""
    if kind == "per_decision":
        weights = jnp.exp(log_weights)
    elif kind == "truncated":
        weights = jnp.exp(jnp.minimum(log_weights, jnp.log(truncation)))
    elif kind == "self_normalized":
        # softmax over episodes in log space: no overflow for long episodes.
        masked = jnp.where(mask > 0, log_weights, -jnp.inf)
        weights = jax.nn.softmax(masked, axis=0) * mask.sum(0, keepdims=True)
    else:
        raise ValueError(f"weights must be one of {', '.join(WEIGHTS)}, got {kind!r}")
    return jnp.where(mask > 0, weights, 0.0)


def surrogate_loss(log_probs: jax.Array, episodes: ope.Episodes, kind: str,
                   gamma: float | jax.Array, truncation: float | jax.Array) -> jax.Array:
    """``-1/E Σ_i Σ_t log π(a_it|s_it) · stopgrad(Ψ_it)`` over ``[E, T]`` (module docstring);
    ``log_probs`` are the learner's ``log π_θ(a|s)``."""
    log_ratios = ope.log_ratios(log_probs, episodes.behaviour_log_prob, episodes.mask)
    weights = decision_weights(kind, jnp.cumsum(log_ratios, -1), episodes.mask, truncation)
    discounts = gamma ** jnp.arange(log_probs.shape[-1], dtype=jnp.float32)
    weighted = weights * discounts * episodes.reward * episodes.mask
    to_go = jnp.flip(jnp.cumsum(jnp.flip(weighted, -1), -1), -1)
    psi = jax.lax.stop_gradient(to_go)
    return -(log_probs * episodes.mask * psi).sum(-1).mean()


def make_agent(config: Config, env: Any, env_params: Any, dataset: Dataset | None = None) -> Agent:
    """Build is_pg's pure ``init`` / ``update`` / ``act`` (``jaxrl.training.offline``)."""
    check_config(config)
    if dataset is None:
        raise ValueError("is_pg learns from a dataset: pass --dataset FILE.npz (make one with "
                         "`jaxrl dataset --env ENV --policy mixed --steps N --out FILE.npz`)")
    validate(dataset, env, env_params)
    observation_space, space = env.observation_space(env_params), env.action_space(env_params)
    if isinstance(space, Discrete):
        head: Any = CategoricalHead(space.n)
    elif isinstance(space, Box) and len(space.shape) == 1:
        head = GaussianHead(space.shape[0])
    else:
        raise TypeError(f"is_pg supports Discrete and vector Box actions, got {space}")
    network = PolicyNetwork(make_torso(observation_space, config.hidden_sizes, config.activation),
                            head)
    data = ope.episodes(dataset)
    normalize = ObsNormalizer.from_data(dataset.transitions(), config.normalize_obs)
    optimizer = flat_adam(config.learning_rate)
    num_episodes = data.mask.shape[0]

    def sample_batch(key: jax.Array) -> ope.Episodes:
        index = jax.random.randint(key, (config.episodes_per_batch,), 0, num_episodes)
        return jax.tree.map(lambda x: x[index], data)

    def init_learner(key: jax.Array) -> Learner:
        params = network.init(key, jnp.zeros((1, *observation_space.shape), jnp.float32))
        return Learner(params=params, opt_state=optimizer.init(params))

    def loss_fn(params: Any, batch: ope.Episodes) -> jax.Array:
        log_probs = network.apply(params, normalize(batch.obs)).log_prob(batch.action)
        return surrogate_loss(log_probs, batch, config.weights, config.gamma, config.truncation)

    def train_step(learner: Learner, batch: ope.Episodes,
                   key: jax.Array) -> tuple[Learner, Metrics]:
        loss, grads = jax.value_and_grad(loss_fn)(learner.params, batch)
        params, opt_state = apply_gradients(optimizer, grads, learner.opt_state, learner.params)
        return Learner(params, opt_state), {"loss": loss, "grad_norm": grad_norm(grads)}

    def policy(learner: Learner, obs: jax.Array, key: jax.Array, deterministic: bool) -> jax.Array:
        dist = network.apply(learner.params, normalize(obs))
        action = dist.mode() if deterministic else dist.sample(seed=key)
        if isinstance(space, Box):
            return jnp.clip(action, space.low, space.high)
        return action.astype(jnp.int32)

    return make_offline_agent(config, env, env_params, init_learner, train_step, policy,
                              sample_batch)


def make_train(config: Config, env: Any, env_params: Any, dataset: Dataset | None = None):
    """``train(key) -> (OfflineState, metrics)``: the whole is_pg run as one pure function."""
    return train_from_agent(make_agent(config, env, env_params, dataset))

