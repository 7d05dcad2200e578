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
from jaxrl.agents.offline_actor_critic import (
    CriticLearner,
    OfflineConfig,
    apply_gradients,
    prepare,
)
from jaxrl.datasets import Dataset, Transitions
from jaxrl.models import CriticEnsemble, GaussianHead, PolicyNetwork, ValueHead, make_torso
from jaxrl.training.agent import Agent, Metrics, train_from_agent
from jaxrl.training.config import check_ranges
from jaxrl.training.offline import make_offline_agent, validate_offline
from jaxrl.training.optim import flat_adam

__all__ = ["OFFLINE", "Config", "Learner", "check_config", "make_agent", "make_train",
           "validate"]

OFFLINE = True
"""The runner passes ``dataset=`` to ``make_agent``."""


Learner = CriticLearner


class Config(OfflineConfig):
    """IQL hyperparameters (CORL's defaults; ``temperature`` = 1 / CORL's ``beta`` = 3)."""

    learning_rate: float = 3e-4
    """Adam step size of the actor, the critics and V"""
    expectile: float = 0.7
    """τ of the expectile loss (0.5: mean, → 1: max over the data's actions)"""
    temperature: float = 1.0 / 3.0
    """λ of the advantage weights exp(A / λ)"""
    max_weight: float = 100.0
    """clip of the advantage weights"""


def validate(config: Config) -> None:
    """Check the static (shape-deciding) fields; raise ``ValueError`` saying what to change."""
    validate_offline(config)


def check_config(config: Config) -> None:
    """Range checks of one concrete config (CLI / ``runner.run``)."""
    validate(config)
    check_ranges(config, learning_rate="> 0", gamma="[0, 1]", tau="[0, 1]", expectile="[0, 1]",
                 temperature="> 0", max_weight="> 0")


def make_agent(config: Config, env: Any, env_params: Any, dataset: Dataset | None = None) -> Agent:
    """Build IQL's pure ``init`` / ``update`` / ``act`` (see ``jaxrl.agents.offline``)."""
    validate(config)
    prepared = prepare(config, env, env_params, dataset, "iql")
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
    actor_optimizer = flat_adam(optax.cosine_decay_schedule(config.learning_rate,
                                                            config.total_steps))

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
        discount = config.gamma * (1.0 - batch.terminated.astype(jnp.float32))
        targets = losses.bellman_target(batch.reward, discount, next_values)
        q_values = critic.apply(critic_params, batch.obs, batch.action)
        loss = ((q_values - targets) ** 2).mean(-1).sum()
        return loss, {"critic_loss": loss, "q_values": q_values.mean()}

    def actor_loss(actor_params, weights: jax.Array, batch: Transitions) -> jax.Array:
        return -(weights * actor.apply(actor_params, batch.obs).log_prob(batch.action)).mean()

    def train_step(learner: Learner, batch: Transitions, key: jax.Array) -> tuple[Learner, Metrics]:
        params, opt_state = dict(learner.params), dict(learner.opt_state)
        target_q = critic.apply(learner.target_critic, batch.obs, batch.action).min(0)
        (_, metrics), grads = jax.value_and_grad(value_loss, has_aux=True)(
            params["value"], target_q, batch.obs)
        params["value"], opt_state["value"] = apply_gradients(
            optimizer, grads, opt_state["value"], params["value"])

        advantages = target_q - value.apply(params["value"], batch.obs)
        weights = losses.advantage_weights(advantages, config.temperature, config.max_weight)
        loss, grads = jax.value_and_grad(actor_loss)(params["actor"], weights, batch)
        params["actor"], opt_state["actor"] = apply_gradients(
            actor_optimizer, grads, opt_state["actor"], params["actor"])

        next_values = value.apply(params["value"], batch.next_obs)
        grads, critic_metrics = jax.grad(critic_loss, has_aux=True)(
            params["critic"], next_values, batch)
        params["critic"], opt_state["critic"] = apply_gradients(
            optimizer, grads, opt_state["critic"], params["critic"])
        target = optax.incremental_update(params["critic"], learner.target_critic, config.tau)
        metrics.update(critic_metrics, actor_loss=loss, weights=weights.mean())
        return Learner(params, target, opt_state), metrics

    def policy(learner: Learner, obs: jax.Array, key: jax.Array, deterministic: bool) -> jax.Array:
        distribution = actor.apply(learner.params["actor"], prepared.normalize(obs))
        action = distribution.mode() if deterministic else distribution.sample(seed=key)
        return prepared.to_env(action)

    return make_offline_agent(config, env, env_params, init_learner, train_step, policy,
                              lambda key: prepared.sample(key, config.batch_size))


def make_train(config: Config, env: Any, env_params: Any, dataset: Dataset | None = None):
    """``train(key) -> (OfflineState, metrics)``: the whole IQL run as one pure function."""
    return train_from_agent(make_agent(config, env, env_params, dataset))
