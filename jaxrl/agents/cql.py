"""Conservative Q-Learning (Kumar et al., 2020), CQL(H), for discrete and continuous actions.

Course notes, §16 "Offline RL", "Conservative Q-Learning": add to the Bellman error a term that
pushes Q down under the maximising distribution ``μ ∝ exp Q`` and back up on the data,
``L = E_D[(Q(s, a) - y)²] + α E_D[log ∫ exp Q(s, ã) dã - Q(s, a)]``, so the learned Q lower-bounds
the policy's value and out-of-distribution actions look bad.

- Discrete actions (``Discrete``): a DQN-style Q-network, ``y = r + γ (1 - terminated)
  max_a' Q_target(s', a')``, the penalty exactly ``log Σ_a exp Q(s, a) - Q(s, a_D)``
  (``losses.cql_penalty``); the policy is greedy.
- Continuous actions (``Box``): SAC's twin critics, tanh-Gaussian actor and autotuned entropy
  temperature (``jaxrl.agents.sac``), ``y = r + γ (1 - terminated) min_i Q_target,i(s', a')``,
  ``a' ~ π(·|s')``; the log-integral is importance-sampled from ``cql_n_actions`` uniform actions
  on ``[-1, 1]^d`` and as many policy actions at ``s`` and at ``s'``, each weighted by its
  proposal density (``losses.cql_sampled_penalty``), for each critic.

Truncated episodes bootstrap from their final observation; targets move by Polyak averaging.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import optax

from jaxrl import losses
from jaxrl.datasets import Dataset, Transitions
from jaxrl.envs.spaces import Discrete
from jaxrl.models import CriticEnsemble, make_q_network, make_tanh_gaussian_actor
from jaxrl.training import offline
from jaxrl.training.agent import Agent, Metrics, train_from_agent
from jaxrl.training.config import check_config, hyper, static
from jaxrl.training.optim import apply_gradients, flat_adam

__all__ = ["OFFLINE", "Config", "Learner", "make_agent", "make_train"]

OFFLINE = True
"""The runner passes ``dataset=`` to ``make_agent``."""


class Config(offline.OfflineCriticConfig):
    """CQL hyperparameters (CORL's names where they exist)."""

    cql_n_actions: int = static(10, ">= 1")
    """sampled actions per proposal (uniform, π(s), π(s')) for the continuous penalty"""
    autotune: bool = static(True)
    """continuous: learn the entropy temperature towards -|A| (else it stays entropy_alpha)"""
    alpha: float = hyper(5.0, ">= 0")
    """α: weight of the CQL penalty"""
    q_lr: float = hyper(3e-4, "> 0")
    """Adam step size of the Q-network / critics (and of the log temperature)"""
    policy_lr: float = hyper(1e-4, "> 0")
    """Adam step size of the actor (continuous)"""
    entropy_alpha: float = hyper(1.0, "> 0")
    """continuous: the SAC entropy temperature (its initial value with autotune)"""
    target_entropy_scale: float = hyper(1.0, ">= 0")
    """continuous: target entropy H̄ = -target_entropy_scale · |A|"""


Learner = offline.TargetLearner


def make_agent(config: Config, env: Any, env_params: Any, dataset: Dataset | None = None) -> Agent:
    """Build CQL's pure ``init`` / ``update`` / ``act`` (``jaxrl.training.offline``)."""
    check_config(config)
    prepared = offline.prepare(config, env, env_params, dataset, "cql", discrete_ok=True)
    if isinstance(prepared.action_space, Discrete):
        parts = _discrete(config, env.observation_space(env_params), prepared)
    else:
        parts = _continuous(config, env.observation_space(env_params), prepared)
    return offline.make_offline_agent(config, env, env_params, *parts,
                                      prepared.sampler(config.batch_size))


def _discrete(config: Config, observation_space, prepared) -> tuple:
    """``(init_learner, train_step, policy)`` of discrete CQL (module docstring)."""
    network = make_q_network(observation_space, prepared.action_space, config.hidden_sizes,
                             config.activation)
    optimizer = flat_adam(config.q_lr)

    def init_learner(key: jax.Array) -> Learner:
        params = {"q": network.init(key, jnp.zeros((1, *observation_space.shape), jnp.float32))}
        return Learner(params, params, {"q": optimizer.init(params["q"])})

    def loss_fn(q_params, target_params, batch: Transitions) -> tuple[jax.Array, Metrics]:
        next_q = network.apply(target_params["q"], batch.next_obs).max(-1)
        discount = config.gamma * (1.0 - batch.terminated.astype(jnp.float32))
        targets = losses.bellman_target(batch.reward, discount, next_q)
        q_values = network.apply(q_params, batch.obs)
        q_data = jnp.take_along_axis(q_values, batch.action[:, None], -1)[:, 0]
        td_loss = ((q_data - targets) ** 2).mean()
        penalty = losses.cql_penalty(q_values, batch.action).mean()
        return td_loss + config.alpha * penalty, {"td_loss": td_loss, "cql_penalty": penalty,
                                                  "q_values": q_data.mean()}

    def train_step(learner: Learner, batch: Transitions, key: jax.Array) -> tuple[Learner, Metrics]:
        grads, metrics = jax.grad(loss_fn, has_aux=True)(learner.params["q"],
                                                        learner.target_params, batch)
        q_params, opt_state = apply_gradients(optimizer, grads, learner.opt_state["q"],
                                              learner.params["q"])
        target = optax.incremental_update(q_params, learner.target_params["q"], config.tau)
        return Learner({"q": q_params}, {"q": target}, {"q": opt_state}), metrics

    def policy(learner: Learner, obs: jax.Array, key: jax.Array, deterministic: bool) -> jax.Array:
        q_values = network.apply(learner.params["q"], prepared.normalize(obs))
        return jnp.argmax(q_values, -1).astype(jnp.int32)

    return init_learner, train_step, policy


def _continuous(config: Config, observation_space, prepared) -> tuple:
    """``(init_learner, train_step, policy)`` of continuous CQL (module docstring)."""
    action_shape = prepared.action_space.shape
    actor = make_tanh_gaussian_actor(observation_space, prepared.action_space,
                                     config.hidden_sizes, config.activation)
    critic = CriticEnsemble(2, config.hidden_sizes, config.activation)
    optimizers = {"actor": flat_adam(config.policy_lr), "critic": flat_adam(config.q_lr),
                  "log_alpha": optax.adam(config.q_lr)}
    target_entropy = -config.target_entropy_scale * action_shape[0]
    num = config.cql_n_actions

    def init_learner(key: jax.Array) -> Learner:
        actor_key, critic_key = jax.random.split(key)
        obs = jnp.zeros((1, *observation_space.shape), jnp.float32)
        action = jnp.zeros((1, *action_shape), jnp.float32)
        params = {"actor": actor.init(actor_key, obs),
                  "critic": critic.init(critic_key, obs, action),
                  "log_alpha": jnp.log(jnp.asarray(config.entropy_alpha, jnp.float32))}
        return Learner(params, {"critic": params["critic"]},
                       {k: optimizers[k].init(p) for k, p in params.items()})

    def temperature(params) -> jax.Array:
        if config.autotune:
            return jnp.exp(params["log_alpha"])
        return jnp.asarray(config.entropy_alpha, jnp.float32)

    def sampled_q(critic_params, obs: jax.Array, actions: jax.Array) -> jax.Array:
        """Q of ``[K, B, d]`` actions at ``[B, ...]`` states: ``[critics, B, K]``."""
        repeated = jnp.broadcast_to(obs, (actions.shape[0], *obs.shape))
        return jnp.moveaxis(critic.apply(critic_params, repeated, actions), 1, -1)

    def critic_loss(critic_params, params, target_params, batch: Transitions,
                    key: jax.Array) -> tuple[jax.Array, Metrics]:
        next_key, random_key, current_key, proposal_key = jax.random.split(key, 4)
        next_action, _ = actor.apply(params["actor"], batch.next_obs).sample_and_log_prob(
            seed=next_key)
        next_q = critic.apply(target_params["critic"], batch.next_obs, next_action).min(0)
        td_loss, q_values = offline.critic_regression(critic, critic_params, batch, next_q,
                                                      config.gamma)

        batch_size = batch.reward.shape[0]
        uniform = jax.random.uniform(random_key, (num, batch_size, *action_shape),
                                     minval=-1.0, maxval=1.0)
        uniform_log_density = jnp.full((num, batch_size), -action_shape[0] * jnp.log(2.0))
        current, current_log_prob = actor.apply(params["actor"], batch.obs).sample_and_log_prob(
            seed=current_key, sample_shape=num)
        proposal, proposal_log_prob = actor.apply(params["actor"], batch.next_obs
                                                  ).sample_and_log_prob(seed=proposal_key,
                                                                        sample_shape=num)
        actions = jax.lax.stop_gradient(jnp.concatenate([uniform, current, proposal]))
        log_densities = jnp.concatenate([uniform_log_density, current_log_prob,
                                         proposal_log_prob]).T
        q_sampled = sampled_q(critic_params, batch.obs, actions)
        penalty = losses.cql_sampled_penalty(
            q_sampled, jnp.broadcast_to(log_densities, q_sampled.shape), q_values)
        penalty = penalty.mean(-1).sum()
        return td_loss + config.alpha * penalty, {"td_loss": td_loss, "cql_penalty": penalty,
                                                  "q_values": q_values.mean()}

    def actor_loss(actor_params, critic_params, alpha, obs, key) -> tuple[jax.Array, jax.Array]:
        action, log_prob = actor.apply(actor_params, obs).sample_and_log_prob(seed=key)
        q_values = critic.apply(critic_params, obs, action).min(0)
        return (alpha * log_prob - q_values).mean(), log_prob

    def train_step(learner: Learner, batch: Transitions, key: jax.Array) -> tuple[Learner, Metrics]:
        critic_key, actor_key = jax.random.split(key)
        params, opt_state = learner.params, learner.opt_state
        grads, metrics = jax.grad(critic_loss, has_aux=True)(
            params["critic"], params, learner.target_params, batch, critic_key)
        params, opt_state = offline.step_network(
            "critic", optimizers["critic"], grads, params, opt_state)
        alpha = temperature(params)
        (loss, log_prob), grads = jax.value_and_grad(actor_loss, has_aux=True)(
            params["actor"], params["critic"], alpha, batch.obs, actor_key)
        params, opt_state = offline.step_network(
            "actor", optimizers["actor"], grads, params, opt_state)
        alpha_loss, grads = jax.value_and_grad(losses.sac_alpha_loss)(
            params["log_alpha"], log_prob, target_entropy)
        if config.autotune:
            params, opt_state = offline.step_network(
                "log_alpha", optimizers["log_alpha"], grads, params, opt_state)
        target = {"critic": optax.incremental_update(params["critic"],
                                                     learner.target_params["critic"], config.tau)}
        metrics.update(actor_loss=loss, alpha=alpha, alpha_loss=alpha_loss,
                       entropy=-log_prob.mean())
        return Learner(params, target, opt_state), metrics

    return init_learner, train_step, offline.actor_policy(actor, prepared)


def make_train(config: Config, env: Any, env_params: Any, dataset: Dataset | None = None):
    """``train(key) -> (OfflineState, metrics)``: the whole CQL run as one pure function."""
    return train_from_agent(make_agent(config, env, env_params, dataset))
