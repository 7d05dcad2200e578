"""TD3+BC (Fujimoto & Gu, 2021): TD3 with a behaviour-cloning term in the actor's loss.

Course notes, §16 "Offline RL", explicit policy constraints: keep the learned policy near the
data. The critics learn TD3's target from the dataset,
``y = r + γ (1 - terminated) min_i Q_target,i(s', clip(μ_target(s') + clip(ε, -c, c), -1, 1))``,
``ε ~ N(0, σ²)`` (``policy_noise`` σ, ``noise_clip`` c); every ``policy_frequency`` critic steps
the actor minimises ``-λ Q_1(s, μ(s)) + (μ(s) - a)²`` with ``λ = α / mean|Q|``
(``losses.td3_bc_actor_loss``) and the targets move by Polyak averaging. Truncated episodes
bootstrap from their final observation. Continuous actions only.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp

from jaxrl import losses
from jaxrl.datasets import Dataset, Transitions
from jaxrl.models import CriticEnsemble, make_deterministic_actor
from jaxrl.training import offline
from jaxrl.training.agent import Agent, Metrics, train_from_agent
from jaxrl.training.config import check_config, hyper
from jaxrl.training.optim import apply_gradients, every, flat_adam, masked, polyak_update

__all__ = ["OFFLINE", "Config", "Learner", "make_agent", "make_train"]

OFFLINE = True
"""The runner passes ``dataset=`` to ``make_agent``."""


class Config(offline.OfflineCriticConfig):
    """TD3+BC hyperparameters (CORL's names and defaults)."""

    learning_rate: float = hyper(3e-4, "> 0")
    """Adam step size of the actor and the critics"""
    alpha: float = hyper(2.5, ">= 0")
    """α: weight of the Q term relative to BC (λ = α / mean|Q|)"""
    policy_noise: float = hyper(0.2, ">= 0")
    """std of the target-policy smoothing noise (actions in [-1, 1])"""
    noise_clip: float = hyper(0.5, ">= 0")
    """clip of the target-policy smoothing noise"""
    policy_frequency: int = hyper(2, "> 0")
    """critic updates per actor (and target) update"""


Learner = offline.TargetLearner


def make_agent(config: Config, env: Any, env_params: Any, dataset: Dataset | None = None) -> Agent:
    """Build TD3+BC's pure ``init`` / ``update`` / ``act`` (``jaxrl.training.offline``)."""
    check_config(config)
    prepared = offline.prepare(config, env, env_params, dataset, "td3_bc")
    observation_space = env.observation_space(env_params)
    actor = make_deterministic_actor(observation_space, prepared.action_space,
                                     config.hidden_sizes, config.activation)
    critic = CriticEnsemble(2, config.hidden_sizes, config.activation)
    optimizer = flat_adam(config.learning_rate)

    def init_learner(key: jax.Array) -> Learner:
        actor_key, critic_key = jax.random.split(key)
        obs = jnp.zeros((1, *observation_space.shape), jnp.float32)
        action = jnp.zeros((1, *prepared.action_space.shape), jnp.float32)
        params = {"actor": actor.init(actor_key, obs),
                  "critic": critic.init(critic_key, obs, action)}
        return Learner(params, params, {k: optimizer.init(p) for k, p in params.items()},
                       jnp.zeros((), jnp.int32))

    def critic_loss(critic_params, target_params, batch: Transitions,
                    key: jax.Array) -> tuple[jax.Array, Metrics]:
        next_action = actor.apply(target_params["actor"], batch.next_obs)
        noise = jnp.clip(config.policy_noise * jax.random.normal(key, next_action.shape),
                         -config.noise_clip, config.noise_clip)
        next_action = jnp.clip(next_action + noise, -1.0, 1.0)
        next_q = critic.apply(target_params["critic"], batch.next_obs, next_action).min(0)
        loss, q_values = offline.critic_regression(critic, critic_params, batch, next_q,
                                                   config.gamma)
        return loss, {"critic_loss": loss, "q_values": q_values.mean()}

    def actor_loss(actor_params, critic_params, batch: Transitions) -> jax.Array:
        action = actor.apply(actor_params, batch.obs)
        q_values = critic.apply(critic_params, batch.obs, action)[0]
        return losses.td3_bc_actor_loss(q_values, action, batch.action, config.alpha)

    def train_step(learner: Learner, batch: Transitions, key: jax.Array) -> tuple[Learner, Metrics]:
        params, opt_state = learner.params, learner.opt_state
        grads, metrics = jax.grad(critic_loss, has_aux=True)(
            params["critic"], learner.target_params, batch, key)
        params, opt_state = offline.step_network("critic", optimizer, grads, params, opt_state)
        count = learner.update_count + 1
        delayed = every(count, config.policy_frequency)
        loss, grads = jax.value_and_grad(actor_loss)(params["actor"], params["critic"], batch)
        new_actor = apply_gradients(optimizer, grads, opt_state["actor"], params["actor"])
        params["actor"], opt_state["actor"] = masked(
            delayed, new_actor, (params["actor"], opt_state["actor"]))
        target = polyak_update(params, learner.target_params, config.tau, count,
                               config.policy_frequency)
        metrics["actor_loss"] = loss
        return Learner(params, target, opt_state, count), metrics

    def policy(learner: Learner, obs: jax.Array, key: jax.Array, deterministic: bool) -> jax.Array:
        return prepared.to_env(actor.apply(learner.params["actor"], prepared.normalize(obs)))

    return offline.make_offline_agent(config, env, env_params, init_learner, train_step,
                                      policy, prepared.sampler(config.batch_size))


def make_train(config: Config, env: Any, env_params: Any, dataset: Dataset | None = None):
    """``train(key) -> (OfflineState, metrics)``: the whole TD3+BC run as one pure function."""
    return train_from_agent(make_agent(config, env, env_params, dataset))
