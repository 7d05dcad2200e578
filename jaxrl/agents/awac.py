"""Advantage-Weighted Actor-Critic (Nair et al., 2020): AWR's policy update on an off-policy critic.

Course notes, §16 "Offline RL", "Implicit Policy Constraints": the KL-constrained improvement
``π*(a|s) ∝ π_β(a|s) exp(A(s, a) / λ)`` is projected onto the policy class by weighted maximum
likelihood on the dataset, ``L_π = -E_D[w log π(a|s)]``, ``w = min(exp(A / λ), max_weight)``
(``losses.advantage_weights``, ``temperature`` λ) with ``A = min_i Q_i(s, a) - min_i Q_i(s, ã)``,
``ã ~ π(·|s)``. The twin critics learn ``π``'s value:
``y = r + γ (1 - terminated) min_i Q_target,i(s', a')``, ``a' ~ π(·|s')`` (truncated episodes
bootstrap from their final observation); targets move by Polyak averaging. The policy is a
Gaussian with a state-independent std over actions in ``[-1, 1]``; its mean, clipped, is
evaluated. Continuous actions only.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import optax

from jaxrl import losses
from jaxrl.datasets import Dataset, Transitions
from jaxrl.models import CriticEnsemble, GaussianHead, PolicyNetwork, make_torso
from jaxrl.training import offline
from jaxrl.training.agent import Agent, Metrics, train_from_agent
from jaxrl.training.config import check_config
from jaxrl.training.optim import flat_adam

__all__ = ["OFFLINE", "Config", "Learner", "make_agent", "make_train"]

OFFLINE = True
"""The runner passes ``dataset=`` to ``make_agent``."""


class Config(offline.AdvantageWeightedConfig):
    """AWAC hyperparameters (CORL's names and defaults; `temperature` is CORL's
    `awac_lambda`)."""


Learner = offline.CriticLearner


def make_agent(config: Config, env: Any, env_params: Any, dataset: Dataset | None = None) -> Agent:
    """Build AWAC's pure ``init`` / ``update`` / ``act`` (``jaxrl.training.offline``)."""
    check_config(config)
    prepared = offline.prepare(config, env, env_params, dataset, "awac")
    observation_space = env.observation_space(env_params)
    action_shape = prepared.action_space.shape
    actor = PolicyNetwork(make_torso(observation_space, config.hidden_sizes, config.activation),
                          GaussianHead(action_shape[0]))
    critic = CriticEnsemble(2, config.hidden_sizes, config.activation)
    optimizer = flat_adam(config.learning_rate)

    def init_learner(key: jax.Array) -> Learner:
        actor_key, critic_key = jax.random.split(key)
        obs = jnp.zeros((1, *observation_space.shape), jnp.float32)
        action = jnp.zeros((1, *action_shape), jnp.float32)
        params = {"actor": actor.init(actor_key, obs),
                  "critic": critic.init(critic_key, obs, action)}
        return Learner(params, params["critic"],
                       {k: optimizer.init(p) for k, p in params.items()})

    def sample_action(actor_params, obs: jax.Array, key: jax.Array) -> jax.Array:
        return jnp.clip(actor.apply(actor_params, obs).sample(seed=key), -1.0, 1.0)

    def critic_loss(critic_params, params, target_critic, batch: Transitions,
                    key: jax.Array) -> tuple[jax.Array, Metrics]:
        next_action = sample_action(params["actor"], batch.next_obs, key)
        next_q = critic.apply(target_critic, batch.next_obs, next_action).min(0)
        loss, q_values = offline.critic_regression(critic, critic_params, batch, next_q,
                                                   config.gamma)
        return loss, {"critic_loss": loss, "q_values": q_values.mean()}

    def actor_loss(actor_params, critic_params, batch: Transitions,
                   key: jax.Array) -> tuple[jax.Array, jax.Array]:
        policy_action = jax.lax.stop_gradient(sample_action(actor_params, batch.obs, key))
        values = critic.apply(critic_params, batch.obs, policy_action).min(0)
        advantages = critic.apply(critic_params, batch.obs, batch.action).min(0) - values
        weights = losses.advantage_weights(advantages, config.temperature, config.max_weight)
        log_probs = actor.apply(actor_params, batch.obs).log_prob(batch.action)
        return -(weights * log_probs).mean(), weights

    def train_step(learner: Learner, batch: Transitions, key: jax.Array) -> tuple[Learner, Metrics]:
        critic_key, actor_key = jax.random.split(key)
        params, opt_state = learner.params, learner.opt_state
        grads, metrics = jax.grad(critic_loss, has_aux=True)(
            params["critic"], params, learner.target_critic, batch, critic_key)
        params, opt_state = offline.step_network("critic", optimizer, grads, params, opt_state)
        (loss, weights), grads = jax.value_and_grad(actor_loss, has_aux=True)(
            params["actor"], params["critic"], batch, actor_key)
        params, opt_state = offline.step_network("actor", optimizer, grads, params, opt_state)
        target = optax.incremental_update(params["critic"], learner.target_critic, config.tau)
        metrics.update(actor_loss=loss, weights=weights.mean())
        return Learner(params, target, opt_state), metrics

    if config.init_from:
        return offline.make_online_agent(config, env, env_params, dataset, "awac", actor,
                                         init_learner, train_step)
    return offline.make_actor_agent(config, env, env_params, prepared, actor, init_learner,
                                    train_step)


def make_train(config: Config, env: Any, env_params: Any, dataset: Dataset | None = None):
    """``train(key) -> (OfflineState, metrics)`` (``off_policy.TrainState`` with
    ``init_from``): the whole AWAC run as one pure function."""
    return train_from_agent(make_agent(config, env, env_params, dataset))
