"""Q-learning on the replay loop (DQN, soft Q): shared config, Huber TD step, ε schedule.

A Q-learning agent minimises the Huber loss between ``Q(s, a)`` and
``y = r + γ_m (1 - terminated) v(s')``, where the variant decides ``v`` from the online and
target networks' ``Q(s', ·)`` (``NextValue``: greedy, double Q, soft) and the behaviour policy
from ``Q(s, ·)`` (ε-greedy, Boltzmann). The target network is Polyak-averaged (τ = 1: hard
copy) every ``target_network_frequency`` updates; MinAtar observations get the CNN torso.

Loss terms (``QLossTerm``) add to the TD loss; with ``demo_dataset`` (``DQfDFields``) the
default one is DQfD's large-margin supervised loss on the batch's demonstration rows
(``large_margin_term``), the demonstrations living in a replay partition that is never
overwritten (``off_policy.demo_partition``).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import optax

from jaxrl import losses
from jaxrl.envs.spaces import Discrete
from jaxrl.models import make_q_network
from jaxrl.replay import Sample
from jaxrl.training import off_policy, optim, pretrain
from jaxrl.training.agent import Agent, Metrics
from jaxrl.training.config import hyper, static
from jaxrl.training.extensions import RewardTransform
from jaxrl.training.off_policy import ReplayExtensions, TrainState

__all__ = ["Behaviour", "DQfDFields", "NextValue", "QConfig", "QLossTerm", "greedy_next_value",
           "large_margin_term", "linear_epsilon", "make_q_agent"]


class QConfig(off_policy.OffPolicyConfig):
    """Fields shared by the Q-learning agents (DQN, soft Q). Defaults: rl-zoo's CartPole-v1 DQN
    entry (batch 64, update-to-data ratio 1/2, 256-256 MLP) made stable: 2 updates every 4 steps
    instead of 128 every 256, 3-step targets, Polyak τ = 0.005 every update and the learning
    rate annealed from 5e-4 to 0. Some seeds can still collapse late (``docs/results.md``)."""

    batch_size: int = static(64, ">= 1")
    train_frequency: int = static(4, ">= 1")
    updates_per_step: int = static(2, ">= 1")
    n_step: int = static(3, ">= 1")
    log_frequency: int = static(2_048, ">= 1")
    dueling: bool = static(False)
    """dueling head V + A - mean A"""
    anneal_lr: bool = static(True)
    """decay the learning rate linearly to 0 over the run"""
    learning_rate: float = hyper(5e-4, "> 0")
    """Adam step size"""
    max_grad_norm: float = hyper(10.0, "> 0")
    """global gradient-norm clip"""


class DQfDFields(off_policy.DemoReplayFields):
    """Deep Q-learning from demonstrations (Hester et al. 2018; course notes 004): the
    demonstration partition of the replay buffer and the large-margin loss on its rows."""

    demo_margin: float = hyper(0.8, ">= 0")
    """margin l(a_E, a) of the large-margin loss for actions other than the expert's"""


NextValue = Callable[[jax.Array, jax.Array], jax.Array]
"""``next_value(next_q_online [B, A], next_q_target [B, A]) -> v(s') [B]`` of a variant."""

Behaviour = Callable[[jax.Array, jax.Array, jax.Array], jax.Array]
"""``behaviour(key, q_values [B, A], env_steps) -> actions [B]``: the exploration policy."""


QLossTerm = Callable[[jax.Array, Sample, jax.Array], tuple[jax.Array, Metrics]]
"""``term(q_values [B, A], sample, update_count) -> (loss, metrics)``: added to the TD loss
(``q_values`` = ``Q(sample.obs, ·)`` of the online parameters, differentiated through)."""


def large_margin_term(config: Any) -> QLossTerm:
    """``λ_k · mean over demonstration rows of max_a [Q(s, a) + l(a_E, a)] - Q(s, a_E)``
    (``pretrain.large_margin_loss``; ``λ_k`` from ``demo_coef`` / ``demo_decay``)."""
    def term(q_values: jax.Array, sample: Sample,
             update_count: jax.Array) -> tuple[jax.Array, Metrics]:
        margin = pretrain.demo_mean(
            pretrain.large_margin_loss(q_values, sample.action, config.demo_margin), sample.demo)
        return off_policy.demo_weight(config, update_count) * margin, {"demo_margin": margin}

    return term


def greedy_next_value(double_q: bool) -> NextValue:
    """``max_a Q_target(s', a)``, or with ``double_q`` ``Q_target(s', argmax_a Q(s', a))``."""
    if double_q:
        return losses.double_q_next_value
    return lambda next_q_online, next_q_target: next_q_target.max(-1)


def linear_epsilon(start_e: float | jax.Array, end_e: float | jax.Array,
                   duration: float | jax.Array, env_steps: jax.Array) -> jax.Array:
    """``ε_t = start_e + min(t / duration, 1) · (end_e - start_e)`` (``end_e`` if duration 0)."""
    fraction = jnp.where(duration > 0, jnp.clip(env_steps / jnp.maximum(duration, 1e-8), 0, 1),
                         1.0)
    return start_e + fraction * (end_e - start_e)


def make_q_agent(config: QConfig, env: Any, env_params: Any, algo: str, next_value: NextValue,
                 behaviour: Behaviour, reward_transform: RewardTransform | None = None,
                 extensions: ReplayExtensions | None = None,
                 loss_term: QLossTerm | None = None) -> Agent:
    """A Q-learning agent on the replay loop: Huber loss to ``r + γ_m v(s')``, plus
    ``loss_term`` (with ``demo_dataset``: ``large_margin_term`` unless given).

    Evaluation is greedy; ``act(..., deterministic=False)`` follows ``behaviour`` at the end
    of training.
    """
    parts = off_policy.setup(env, env_params, algo.upper(), Discrete)
    demos = off_policy.demo_partition(config, env, env_params)
    if loss_term is None and demos is not None:
        loss_term = large_margin_term(config)
    network = make_q_network(parts.observation_space, parts.action_space, config.hidden_sizes,
                             config.activation, config.dueling)
    optimizer = optim.adam(config.learning_rate, config.max_grad_norm,
                           config.total_gradient_steps if config.anneal_lr else None)

    def init(key, obs):
        params = network.init(key, obs[:1])
        return {"q": params}, {"q": params}, {"q": optimizer.init(params)}

    def explore(key, params, obs, env_steps):
        return behaviour(key, network.apply(params["q"], obs), env_steps)

    warmup = getattr(config, "critic_warmup", 0)  # DQN's pre-train & finetune (dqn.py)

    def loss_fn(params, target_params, sample: Sample,
                update_count: jax.Array) -> tuple[jax.Array, Metrics]:
        q_values = network.apply(params, sample.obs)
        q_taken = jnp.take_along_axis(q_values, sample.action[:, None], -1).squeeze(-1)
        next_q_online = jax.lax.stop_gradient(network.apply(params, sample.next_obs))
        next_q_target = network.apply(target_params, sample.next_obs)
        value = next_value(next_q_online, next_q_target)
        if warmup:  # evaluate the initial greedy policy: the frozen target picks a'
            initial_action = jnp.argmax(next_q_target, -1)[:, None]
            value = jnp.where(update_count <= warmup, jnp.take_along_axis(
                next_q_online, initial_action, -1).squeeze(-1), value)
        targets = losses.bellman_target(sample.reward, sample.discount, value)
        loss = optax.huber_loss(q_taken, targets, delta=1.0).mean()
        metrics = {"q_values": q_taken.mean()}
        if loss_term is not None:
            extra, extra_metrics = loss_term(q_values, sample, update_count)
            loss = loss + extra
            metrics.update(extra_metrics)
        return loss, {"loss": loss, **metrics}

    def gradient_step(key, state: TrainState, sample: Sample) -> tuple[TrainState, Metrics]:
        grads, metrics = jax.grad(loss_fn, has_aux=True)(
            state.params["q"], state.target_params["q"], sample, state.update_count)
        params, opt_state = optim.apply_gradients(optimizer, grads, state.opt_state["q"],
                                                  state.params["q"])
        target = optim.polyak_update(params, state.target_params["q"], config.tau,
                                     state.update_count, config.target_network_frequency)
        if warmup:  # frozen at the initial Q during the warm-up, then a copy of Q
            count = state.update_count
            target = jax.tree.map(lambda new, old, online: jnp.where(
                count < warmup, old, jnp.where(count == warmup, online, new)),
                target, state.target_params["q"], params)
        metrics["grad_norm"] = optim.grad_norm(grads)
        return state.replace(params={"q": params}, target_params={"q": target},
                             opt_state={"q": opt_state}), metrics

    def act(params, obs, key, deterministic=False):
        q_values = network.apply(params["q"], obs)
        if deterministic:
            return jnp.argmax(q_values, -1).astype(jnp.int32)
        return behaviour(key, q_values, jnp.asarray(config.total_timesteps, jnp.float32))

    hooks = off_policy.OffPolicyHooks(init=init, explore=explore, gradient_step=gradient_step,
                                      act=act)
    return off_policy.make_off_policy_agent(config, parts, env_params, hooks, reward_transform,
                                            extensions, demos)
