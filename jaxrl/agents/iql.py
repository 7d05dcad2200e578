"""Implicit Q-Learning (Kostrikov et al., 2021): never query Q on actions outside the data.

Course notes, §16 "Offline RL", "Implicit Policy Constraints": the value ``V`` regresses onto an
upper expectile of the target critics over the dataset's actions,
``L_V = E_D[L_τ(min_i Q_target,i(s, a) - V(s))]``, ``L_τ(u) = |τ - 1(u < 0)| u²``
(``losses.expectile_loss``, ``τ = expectile``); the twin critics regress to
``y = r + γ (1 - terminated) V(s')`` (truncated episodes bootstrap from their final observation);
the policy is extracted by advantage-weighted regression, ``L_π = -E_D[w log π(a|s)]`` with
``w = min(exp(A / λ), max_weight)``, ``A = min_i Q_target,i(s, a) - V(s)``
(``losses.advantage_weights``; ``temperature`` λ is the paper's 1/β). Critic targets move by
Polyak averaging. The policy is a Gaussian with a state-independent std over actions in
``[-1, 1]``; its mean, clipped, is evaluated. Continuous actions only.
"""

from __future__ import annotations

from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import optax

from jaxrl import losses
from jaxrl.datasets import Dataset, Transitions
from jaxrl.models import CriticEnsemble, GaussianHead, PolicyNetwork, ValueHead, make_torso
from jaxrl.training import offline
from jaxrl.training.agent import Agent, Metrics, train_from_agent
from jaxrl.training.config import check_config, hyper
from jaxrl.training.optim import flat_adam

__all__ = ["OFFLINE", "Config", "Learner", "make_agent", "make_train"]

OFFLINE = True
"""The runner passes ``dataset=`` to ``make_agent``."""


Learner = offline.CriticLearner


class Config(offline.AdvantageWeightedConfig):
    """IQL hyperparameters (CORL's defaults; `temperature` = 1 / CORL's `beta` = 3)."""

    temperature: float = hyper(1.0 / 3.0, "> 0")
    expectile: float = hyper(0.7, "[0, 1]")
    """τ of the expectile loss (0.5: mean, → 1: max over the data's actions)"""


def make_agent(config: Config, env: Any, env_params: Any, dataset: Dataset | None = None) -> Agent:
    """Build IQL's pure ``init`` / ``update`` / ``act`` (``jaxrl.training.offline``)."""
    check_config(config)
    prepared = offline.prepare(config, env, env_params, dataset, "iql")
    observation_space = env.observation_space(env_params)
    action_shape = prepared.action_space.shape
    actor = PolicyNetwork(make_torso(observation_space, config.hidden_sizes, config.activation),
                          GaussianHead(action_shape[0]))
    value = nn.Sequential([make_torso(observation_space, config.hidden_sizes, config.activation),
                           ValueHead()])
    critic = CriticEnsemble(2, config.hidden_sizes, config.activation)
    optimizer = flat_adam(config.learning_rate)
    # CORL's IQL detail: the actor's rate follows a cosine decay to 0 over the run, so the
    # advantage-weighted policy settles instead of chasing the critics' last minibatches.
    # Online (init_from) the actor keeps a constant rate: the run has no fixed end to decay to.
    actor_optimizer = flat_adam(config.learning_rate if config.init_from else
                                optax.cosine_decay_schedule(config.learning_rate,
                                                            config.total_gradient_steps))

    def init_learner(key: jax.Array) -> Learner:
        actor_key, value_key, critic_key = jax.random.split(key, 3)
        obs = jnp.zeros((1, *observation_space.shape), jnp.float32)
        action = jnp.zeros((1, *action_shape), jnp.float32)
        params = {"actor": actor.init(actor_key, obs), "value": value.init(value_key, obs),
                  "critic": critic.init(critic_key, obs, action)}
        return Learner(params, params["critic"],
                       {k: (actor_optimizer if k == "actor" else optimizer).init(p)
                        for k, p in params.items()})

    def value_loss(value_params, target_q: jax.Array, obs: jax.Array) -> tuple[jax.Array, Metrics]:
        values = value.apply(value_params, obs)
        loss = losses.expectile_loss(target_q - values, config.expectile).mean()
        return loss, {"value_loss": loss, "values": values.mean()}

    def critic_loss(critic_params, next_values: jax.Array,
                    batch: Transitions) -> tuple[jax.Array, Metrics]:
        loss, q_values = offline.critic_regression(critic, critic_params, batch, next_values,
                                                   config.gamma)
        return loss, {"critic_loss": loss, "q_values": q_values.mean()}

    def actor_loss(actor_params, weights: jax.Array, batch: Transitions) -> jax.Array:
        return -(weights * actor.apply(actor_params, batch.obs).log_prob(batch.action)).mean()

    def train_step(learner: Learner, batch: Transitions, key: jax.Array) -> tuple[Learner, Metrics]:
        params, opt_state = learner.params, learner.opt_state
        target_q = critic.apply(learner.target_critic, batch.obs, batch.action).min(0)
        (_, metrics), grads = jax.value_and_grad(value_loss, has_aux=True)(
            params["value"], target_q, batch.obs)
        params, opt_state = offline.step_network("value", optimizer, grads, params, opt_state)

        advantages = target_q - value.apply(params["value"], batch.obs)
        weights = losses.advantage_weights(advantages, config.temperature, config.max_weight)
        loss, grads = jax.value_and_grad(actor_loss)(params["actor"], weights, batch)
        params, opt_state = offline.step_network("actor", actor_optimizer, grads, params, opt_state)

        next_values = value.apply(params["value"], batch.next_obs)
        grads, critic_metrics = jax.grad(critic_loss, has_aux=True)(
            params["critic"], next_values, batch)
        params, opt_state = offline.step_network("critic", optimizer, grads, params, opt_state)
        target = optax.incremental_update(params["critic"], learner.target_critic, config.tau)
        metrics.update(critic_metrics, actor_loss=loss, weights=weights.mean())
        return Learner(params, target, opt_state), metrics

    if config.init_from:
        return offline.make_online_agent(config, env, env_params, dataset, "iql", actor,
                                         init_learner, train_step)
    return offline.make_actor_agent(config, env, env_params, prepared, actor, init_learner,
                                    train_step)


def make_train(config: Config, env: Any, env_params: Any, dataset: Dataset | None = None):
    """``train(key) -> (OfflineState, metrics)`` (``off_policy.TrainState`` with
    ``init_from``): the whole IQL run as one pure function."""
    return train_from_agent(make_agent(config, env, env_params, dataset))
