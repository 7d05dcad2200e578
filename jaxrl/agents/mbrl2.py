"""MBRL 2.0: backpropagate through a learned model into the policy.

Course notes 004 §11.1.1 (Algorithm 19, "Model-based RL version 2.0"): run a base policy and
collect ``D`` (the replay loop's random warm-up); then loop { learn the dynamics model ``f``
(a bootstrap ensemble refitted every ``model_frequency`` env steps, ``jaxrl.models.dynamics``);
backpropagate through ``f`` into the policy; run the policy and add what it visits to ``D`` }.

The policy ``π_θ`` is a tanh-squashed Gaussian whose actions are reparameterised,
``a = tanh(μ_θ(s) + σ_θ(s) ε)``, so the imagined return of an ``H``-step rollout through the
members' mean model, from replay states ``s_0``,

    ``J(θ) = E[Σ_{k<H} γ^k (r̂_k − α log π_θ(a_k|ŝ_k)) + γ^H V(ŝ_H)]``,

is differentiable in ``θ`` through every model step; the policy ascends it with its gradient
norm clipped (``max_grad_norm``): gradients through long model chains explode, and a learned
value ``V(ŝ_H) = min_i Q_i(ŝ_H, a_H) − α log π(a_H|ŝ_H)`` at the end replaces the rest of the
horizon, so ``H`` stays short. The twin critics learn that soft value on real transitions
(SAC's critic loss with a fixed ``α``). The reward (and termination) is the env's known
function where ``jaxrl.envs.rewards`` has one (``reward="auto"``), otherwise a model head.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import optax

from jaxrl import losses
from jaxrl.envs.spaces import Box
from jaxrl.models import CriticEnsemble, make_tanh_gaussian_actor
from jaxrl.replay import Sample
from jaxrl.training import off_policy, optim
from jaxrl.training.agent import Agent, Metrics, train_from_agent
from jaxrl.training.config import check_config, hyper, static
from jaxrl.training.model_based import (
    LearnedModelFields,
    make_policy_model,
    model_transition,
    refit_phase,
)
from jaxrl.training.off_policy import ReplayExtensions, TrainState

__all__ = ["Config", "TrainState", "make_agent", "make_train"]


class Config(off_policy.OffPolicyConfig, LearnedModelFields):
    """MBRL 2.0: the replay loop's fields, the ensemble's, the horizon and the policy's
    optimiser; sized for Pendulum-v1."""

    total_timesteps: int = static(4_000, ">= 1")
    learning_starts: int = static(500, ">= 0")
    log_frequency: int = static(250, ">= 1")
    buffer_size: int = static(20_000, ">= 1")
    batch_size: int = static(128, ">= 1")
    hidden_sizes: tuple[int, ...] = static((64, 64))
    horizon: int = static(5, ">= 1")
    """H: model steps the policy gradient flows through before the learned value"""
    policy_lr: float = hyper(3e-4, "> 0")
    """Adam step size of the policy"""
    q_lr: float = hyper(1e-3, "> 0")
    """Adam step size of the critics"""
    max_grad_norm: float = hyper(1.0, "> 0")
    """global-norm clip of the policy's gradient through the model"""
    alpha: float = hyper(0.05, ">= 0")
    """entropy bonus α of the imagined return and of the soft value"""


def make_agent(config: Config, env: Any, env_params: Any) -> Agent:
    """MBRL 2.0's ``init`` / ``update`` / ``act`` (module docstring). ``TypeError`` for
    discrete actions (the action must be differentiable) or non-vector observations."""
    check_config(config)
    parts = off_policy.setup(env, env_params, "mbrl2", Box)
    model = make_policy_model(config, env, env_params, parts)
    actor = make_tanh_gaussian_actor(parts.observation_space, parts.action_space,
                                     config.hidden_sizes, config.activation)
    critic = CriticEnsemble(2, config.hidden_sizes, config.activation)
    optimizers = {"actor": optim.adam(config.policy_lr, max_grad_norm=config.max_grad_norm),
                  "critic": optim.adam(config.q_lr)}

    def init(key, obs):
        actor_key, critic_key = jax.random.split(key)
        action = jnp.zeros((1, *parts.action_space.shape), jnp.float32)
        params = {"actor": actor.init(actor_key, obs[:1]),
                  "critic": critic.init(critic_key, obs[:1], action)}
        opt_state = {name: optimizers[name].init(p) for name, p in params.items()}
        return params, {"critic": params["critic"]}, opt_state

    def soft_value(actor_params, critic_params, obs, key) -> jax.Array:
        action, log_prob = actor.apply(actor_params, obs).sample_and_log_prob(seed=key)
        return critic.apply(critic_params, obs, action).min(0) - config.alpha * log_prob

    def critic_loss(critic_params, params, target_params, sample: Sample, key):
        next_value = soft_value(params["actor"], target_params["critic"], sample.next_obs, key)
        targets = losses.bellman_target(sample.reward, sample.discount, next_value)
        q_values = critic.apply(critic_params, sample.obs, sample.action)
        loss = ((q_values - targets) ** 2).mean(-1).sum()
        return loss, {"critic_loss": loss, "q_values": q_values.mean()}

    def imagined_return(actor_params, critic_params, model_state, obs, key):
        """``J(θ)`` of the module docstring, averaged over the batch of start states."""

        def step(carry, key):
            obs, total, discount = carry
            policy_key, model_key = jax.random.split(key)
            action, log_prob = actor.apply(actor_params, obs).sample_and_log_prob(
                seed=policy_key)
            next_obs, reward, terminated = model_transition(model, model_state, model_key, obs,
                                                            action, sample=False)
            total = total + discount * (reward - config.alpha * log_prob)
            discount = discount * config.gamma * (1.0 - terminated.astype(jnp.float32))
            return (next_obs, total, discount), None

        step_keys = jax.random.split(key, config.horizon + 1)
        start = (obs, jnp.zeros(obs.shape[0]), jnp.ones(obs.shape[0]))
        (last, total, discount), _ = jax.lax.scan(step, start, step_keys[:-1])
        total = total + discount * soft_value(actor_params, critic_params, last, step_keys[-1])
        return total.mean()

    def gradient_step(key, state: TrainState, sample: Sample) -> tuple[TrainState, Metrics]:
        critic_key, actor_key = jax.random.split(key)
        params, opt_state = dict(state.params), dict(state.opt_state)
        grads, metrics = jax.grad(critic_loss, has_aux=True)(
            params["critic"], params, state.target_params, sample, critic_key)
        params["critic"], opt_state["critic"] = optim.apply_gradients(
            optimizers["critic"], grads, opt_state["critic"], params["critic"])
        value, grads = jax.value_and_grad(imagined_return)(
            params["actor"], params["critic"], state.extension_state.model, sample.obs,
            actor_key)
        grads = jax.tree.map(jnp.negative, grads)
        params["actor"], opt_state["actor"] = optim.apply_gradients(
            optimizers["actor"], grads, opt_state["actor"], params["actor"])
        target = {"critic": optim.polyak_update(
            params["critic"], state.target_params["critic"], config.tau, state.update_count,
            config.target_network_frequency)}
        metrics.update(imagined_return=value, policy_grad_norm=optax.global_norm(grads))
        return state.replace(params=params, target_params=target, opt_state=opt_state), metrics

    def explore(key, params, obs, env_steps):
        return actor.apply(params["actor"], obs).sample(seed=key)

    def act(params, obs, key, deterministic=False):
        policy = actor.apply(params["actor"], obs)
        return policy.mode() if deterministic else policy.sample(seed=key)

    init_model, phase = refit_phase(config, model, config.steps_per_iteration)

    hooks = off_policy.OffPolicyHooks(init=init, explore=explore, gradient_step=gradient_step,
                                      act=act)
    return off_policy.make_off_policy_agent(config, parts, env_params, hooks,
                                            extensions=ReplayExtensions(init=init_model,
                                                                        phase=phase))


def make_train(config: Config, env: Any, env_params: Any):
    """``train(key) -> (TrainState, metrics)``: the whole MBRL 2.0 run as one pure function."""
    return train_from_agent(make_agent(config, env, env_params))
