"""Fitted Q iteration (Ernst et al., 2005; Riedmiller, 2005) with a network, on a fixed dataset.

Course notes §7 (Value Function Methods), Algorithm 6 (Fitted Q Iteration): on a fixed batch
``D = {(s, a, r, s', terminated)}``, repeat K times

1. freeze the target ``y = r + γ (1 − terminated) max_{a'} Q_k(s', a')`` (``Q_0 = 0``);
2. regress ``Q_{k+1} = argmin_φ Σ_i (Q_φ(s_i, a_i) − y_i)²`` by ``steps_per_iteration``
   gradient steps on minibatches of D, starting from ``Q_k``'s weights.

The max is never differentiated (the target is frozen for a whole iteration), so each iteration
is plain regression; with a table and exact regression this is Q-iteration
(``jaxrl.dynamic_programming.q_iteration``), which contracts by γ — with a network the
projection can break the contraction (same section), so FQI has no convergence guarantee.
``K = total_gradient_steps / steps_per_iteration``. Truncated transitions bootstrap (their
``next_obs`` is the final observation). The policy is greedy in Q; the family loop
(``jaxrl.training.offline``) samples the minibatches and evaluates it. Discrete actions.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp

from jaxrl import losses
from jaxrl.datasets import Dataset, Transitions
from jaxrl.models import make_q_network
from jaxrl.training import offline
from jaxrl.training.agent import Agent, Metrics, train_from_agent
from jaxrl.training.config import check_config, hyper, static
from jaxrl.training.optim import apply_gradients, flat_adam

__all__ = ["OFFLINE", "Config", "Learner", "make_agent", "make_train"]

OFFLINE = True
"""The runner passes ``dataset=`` to ``make_agent``."""

Learner = offline.TargetLearner
"""``params["q"]`` = Q being regressed, ``target_params["q"]`` = the frozen Q_k,
``update_count`` = gradient steps so far."""


class Config(offline.OfflineConfig):
    """Fitted Q iteration: K iterations of n regression steps each."""

    total_gradient_steps: int = static(50_000, ">= 1")
    """gradient steps of the whole run: K · steps_per_iteration"""
    steps_per_iteration: int = static(500, ">= 1")
    """n: gradient steps regressing Q_{k+1} on one frozen target"""
    gamma: float = hyper(0.99, "[0, 1]")
    """discount factor"""
    learning_rate: float = hyper(1e-3, "> 0")
    """Adam step size"""

    def validate(self) -> None:
        """``total_gradient_steps`` is a whole number of iterations."""
        super().validate()
        if self.total_gradient_steps % self.steps_per_iteration:
            raise ValueError(f"total_gradient_steps = {self.total_gradient_steps} is not a "
                             f"multiple of steps_per_iteration = {self.steps_per_iteration}; "
                             "make it K · steps_per_iteration")


def make_agent(config: Config, env: Any, env_params: Any, dataset: Dataset | None = None) -> Agent:
    """Build FQI's pure ``init`` / ``update`` / ``act`` (``jaxrl.training.offline``)."""
    check_config(config)
    prepared = offline.prepare(config, env, env_params, dataset, "fqi", discrete_ok=True)
    observation_space = env.observation_space(env_params)
    network = make_q_network(observation_space, prepared.action_space, config.hidden_sizes,
                             config.activation)
    optimizer = flat_adam(config.learning_rate)

    def init_learner(key: jax.Array) -> Learner:
        params = {"q": network.init(key, jnp.zeros((1, *observation_space.shape), jnp.float32))}
        return Learner(params, params, {"q": optimizer.init(params["q"])},
                       jnp.zeros((), jnp.int32))

    def loss_fn(q_params, target_params, first_iteration: jax.Array,
                batch: Transitions) -> tuple[jax.Array, Metrics]:
        next_q = jnp.where(first_iteration, 0.0,
                           network.apply(target_params, batch.next_obs).max(-1))
        discount = config.gamma * (1.0 - batch.terminated.astype(jnp.float32))
        targets = losses.bellman_target(batch.reward, discount, next_q)
        q_values = network.apply(q_params, batch.obs)
        q_data = jnp.take_along_axis(q_values, batch.action[:, None], -1)[:, 0]
        loss = ((q_data - targets) ** 2).mean()
        return loss, {"td_loss": loss, "q_values": q_data.mean()}

    def train_step(learner: Learner, batch: Transitions, key: jax.Array) -> tuple[Learner, Metrics]:
        iteration = learner.update_count // config.steps_per_iteration
        grads, metrics = jax.grad(loss_fn, has_aux=True)(
            learner.params["q"], learner.target_params["q"], iteration == 0, batch)
        q_params, opt_state = apply_gradients(optimizer, grads, learner.opt_state["q"],
                                              learner.params["q"])
        count = learner.update_count + 1
        # The end of an iteration: Q_{k+1} becomes the frozen target of the next one.
        refresh = count % config.steps_per_iteration == 0
        target = jax.tree.map(lambda new, old: jnp.where(refresh, new, old), q_params,
                              learner.target_params["q"])
        metrics["iteration"] = iteration.astype(jnp.float32)
        return Learner({"q": q_params}, {"q": target}, {"q": opt_state}, count), metrics

    def policy(learner: Learner, obs: jax.Array, key: jax.Array, deterministic: bool) -> jax.Array:
        q_values = network.apply(learner.params["q"], prepared.normalize(obs))
        return jnp.argmax(q_values, -1).astype(jnp.int32)

    return offline.make_offline_agent(config, env, env_params, init_learner, train_step, policy,
                                      prepared.sampler(config.batch_size))


def make_train(config: Config, env: Any, env_params: Any, dataset: Dataset | None = None):
    """``train(key) -> (train_state, metrics)``: ``init`` and a scan of ``update``."""
    return train_from_agent(make_agent(config, env, env_params, dataset))
