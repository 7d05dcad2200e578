"""Stochastic actor-critic on the replay loop (SAC): shared config fields and hooks.

Course notes, maximum-entropy off-policy actor-critic: a tanh-squashed Gaussian policy
``a = tanh(u)``, ``u ~ N(μ(s), σ(s)²)`` (``jaxrl.models.TanhNormal``) and two critics regressing
to ``y = r + γ_m (1 - terminated) [min_i Q_target,i(s', a') - α log π(a'|s')]``,
``a' ~ π(·|s')``. The actor minimises ``E[α log π(a|s) - min_i Q_i(s, a)]`` with
reparameterised samples; with ``autotune`` the temperature follows
``J(α) = -E[log α (log π + H̄)]``, ``H̄ = -target_entropy_scale · |A|``.

With demonstrations in the batch (``Sample.demo``; ``off_policy.demo_partition``) the actor
minimises the hybrid objective of course notes 004, ``E[α log π - min_i Q_i] + λ_k · E_demo[-log
π(a_E|s)]`` (DAPG's term, Rajeswaran et al. 2018), ``λ_k`` from ``demo_coef`` / ``demo_decay``
(``off_policy.demo_weight``); the critics learn from the demonstration rows like any other.

``sac_hooks`` is the body of SAC's ``make_agent`` as ``OffPolicyHooks``, so that SAC itself and
the agents that put a learned model around it (MBPO, MVE with ``learner="sac"``) share one
update. TD3's and DDPG's update is ``training.deterministic``.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import optax

from jaxrl import losses
from jaxrl.models import CriticEnsemble, make_tanh_gaussian_actor
from jaxrl.replay import Sample
from jaxrl.training import off_policy, optim, pretrain
from jaxrl.training.agent import Metrics
from jaxrl.training.config import BaseConfig, hyper, static
from jaxrl.training.off_policy import OffPolicyHooks, OffPolicySetup, TrainState

__all__ = ["LEARNERS", "LearnerChoiceFields", "SACConfig", "actor_template", "sac_hooks"]


class SACConfig(off_policy.OffPolicyConfig):
    """SAC hyperparameters (CleanRL names); defaults sized for Pendulum-v1."""

    total_timesteps: int = static(30_000, ">= 1")
    autotune: bool = static(True)
    """learn α towards the target entropy -|A| (else α stays fixed)"""
    policy_lr: float = hyper(1e-3, "> 0")
    """Adam step size of the actor"""
    q_lr: float = hyper(1e-3, "> 0")
    """Adam step size of the critics and of log α"""
    alpha: float = hyper(0.2, "> 0")
    """entropy temperature α (its initial value with autotune)"""
    target_entropy_scale: float = hyper(1.0, ">= 0")
    """target entropy H̄ = -target_entropy_scale · |A|"""
    policy_frequency: int = hyper(1, ">= 1")
    """critic updates per actor (and α) update"""


LEARNERS = ("td3", "sac")
"""The replay learners an agent can put around its own part (mve's targets, dac's reward)."""


class LearnerChoiceFields(BaseConfig):
    """The fields of an agent built around a choice of TD3 or SAC (``learner``; mve, dac):
    both learners' settings, and one ``learning_rate`` for actor and critics, which the
    hooks read as ``policy_lr`` / ``q_lr``. Each agent sets ``learner``'s default."""

    learner: str = static("td3", LEARNERS)
    """the replay learner: td3 or sac"""
    policy_noise: float = hyper(0.2, ">= 0")
    """td3: std of the target-policy smoothing noise"""
    noise_clip: float = hyper(0.5, ">= 0")
    """td3: clip of the target-policy smoothing noise"""
    policy_frequency: int = hyper(2, ">= 1")
    """critic updates per actor (and, for td3, target) update"""
    autotune: bool = static(True)
    """sac: learn α towards the target entropy"""
    alpha: float = hyper(0.2, "> 0")
    """sac: entropy temperature α (its initial value with autotune)"""
    target_entropy_scale: float = hyper(1.0, ">= 0")
    """sac: target entropy H̄ = -target_entropy_scale · |A|"""

    @property
    def policy_lr(self) -> float:
        return self.learning_rate

    @property
    def q_lr(self) -> float:
        return self.learning_rate


def actor_template(config: Any, parts: OffPolicySetup) -> Any:
    """The shapes of SAC's actor parameters (``jax.ShapeDtypeStruct`` leaves)."""
    actor = make_tanh_gaussian_actor(parts.observation_space, parts.action_space,
                                     config.hidden_sizes, config.activation)
    obs = jnp.zeros((1, *parts.observation_space.shape), jnp.float32)
    return jax.eval_shape(actor.init, jax.random.key(0), obs)


def sac_hooks(config: Any, parts: OffPolicySetup, initial_actor: Any = None,
              critic_warmup: int = 0) -> OffPolicyHooks:
    """SAC's ``init`` / ``explore`` / ``gradient_step`` / ``act`` (module docstring).

    ``initial_actor`` (``{"torso": ..., "mean": ...}``, ``pretrain.tanh_actor_from_run``)
    replaces the actor's torso and mean layer at ``init``; its log-σ layer stays fresh.
    ``critic_warmup`` (SAC's field, default 0): the first that many gradient steps update the
    critics alone (actor and α held), so the critics evaluate the initial policy — their soft
    Bellman targets take ``a' ~ π(·|s')`` — before its first update (pre-train & finetune).

    ``config`` provides the ``SACConfig`` fields (``policy_lr``, ``q_lr``, ``alpha``,
    ``autotune``, ``target_entropy_scale``, ``policy_frequency``) and the replay family's
    (``hidden_sizes``, ``activation``, ``tau``, ``target_network_frequency``)."""
    actor = make_tanh_gaussian_actor(parts.observation_space, parts.action_space,
                                     config.hidden_sizes, config.activation)
    critic = CriticEnsemble(2, config.hidden_sizes, config.activation)
    optimizers = {"actor": optim.adam(config.policy_lr),
                  "critic": optim.adam(config.q_lr),
                  "log_alpha": optim.adam(config.q_lr)}
    target_entropy = -config.target_entropy_scale * parts.action_space.shape[0]

    def init(key, obs):
        actor_key, critic_key = jax.random.split(key)
        action = jnp.zeros((1, *parts.action_space.shape), jnp.float32)
        actor_params = actor.init(actor_key, obs[:1])
        if initial_actor is not None:
            head = {**actor_params["params"]["head"], "Dense_0": initial_actor["mean"]}
            actor_params = {"params": {"torso": initial_actor["torso"], "head": head}}
        params = {"actor": actor_params,
                  "critic": critic.init(critic_key, obs[:1], action),
                  "log_alpha": jnp.log(jnp.asarray(config.alpha, jnp.float32))}
        opt_state = {name: optimizers[name].init(p) for name, p in params.items()}
        return params, {"critic": params["critic"]}, opt_state

    def temperature(params) -> jax.Array:
        if config.autotune:
            return jnp.exp(params["log_alpha"])
        return jnp.asarray(config.alpha, jnp.float32)

    def explore(key, params, obs, env_steps):
        return actor.apply(params["actor"], obs).sample(seed=key)

    def critic_loss(critic_params, params, target_params, sample: Sample,
                    key) -> tuple[jax.Array, Metrics]:
        next_action, next_log_prob = actor.apply(params["actor"], sample.next_obs
                                                 ).sample_and_log_prob(seed=key)
        next_q = critic.apply(target_params["critic"], sample.next_obs, next_action).min(0)
        soft_next_value = next_q - temperature(params) * next_log_prob
        targets = losses.bellman_target(sample.reward, sample.discount, soft_next_value)
        q_values = critic.apply(critic_params, sample.obs, sample.action)
        loss = ((q_values - targets) ** 2).mean(-1).sum()
        return loss, {"critic_loss": loss, "q_values": q_values.mean()}

    def actor_loss(actor_params, critic_params, alpha, obs, key) -> tuple[jax.Array, jax.Array]:
        action, log_prob = actor.apply(actor_params, obs).sample_and_log_prob(seed=key)
        q_values = critic.apply(critic_params, obs, action).min(0)
        return (alpha * log_prob - q_values).mean(), log_prob

    def hybrid_actor_loss(actor_params, critic_params, alpha, sample: Sample, key,
                          update_count) -> tuple[jax.Array, tuple[jax.Array, jax.Array]]:
        """The actor loss plus ``λ_k · mean over demonstration rows of -log π(a_E|s)``."""
        loss, log_prob = actor_loss(actor_params, critic_params, alpha, sample.obs, key)
        nll = pretrain.demo_mean(-actor.apply(actor_params, sample.obs).log_prob(sample.action),
                                 sample.demo)
        return loss + off_policy.demo_weight(config, update_count) * nll, (log_prob, nll)

    def step(name, params, opt_state, grads):
        updates, new_opt = optimizers[name].update(grads, opt_state[name])
        return optax.apply_updates(params[name], updates), new_opt

    def gradient_step(key, state: TrainState, sample: Sample) -> tuple[TrainState, Metrics]:
        critic_key, actor_key = jax.random.split(key)
        params, opt_state = dict(state.params), dict(state.opt_state)
        grads, metrics = jax.grad(critic_loss, has_aux=True)(
            params["critic"], params, state.target_params, sample, critic_key)
        params["critic"], opt_state["critic"] = step("critic", params, opt_state, grads)

        delayed = optim.every(state.update_count, config.policy_frequency)
        if critic_warmup:  # the first critic_warmup gradient steps fit the critics alone
            delayed = jnp.logical_and(delayed, state.update_count > critic_warmup)
        alpha = temperature(params)
        if sample.demo is None:
            (loss, log_prob), grads = jax.value_and_grad(actor_loss, has_aux=True)(
                params["actor"], params["critic"], alpha, sample.obs, actor_key)
        else:
            (loss, (log_prob, nll)), grads = jax.value_and_grad(hybrid_actor_loss, has_aux=True)(
                params["actor"], params["critic"], alpha, sample, actor_key, state.update_count)
            metrics["demo_nll"] = nll
        new_actor = step("actor", params, opt_state, grads)
        alpha_loss, grads = jax.value_and_grad(losses.sac_alpha_loss)(
            params["log_alpha"], log_prob, target_entropy)
        new_alpha = step("log_alpha", params, opt_state, grads)
        if not config.autotune:
            new_alpha = (params["log_alpha"], opt_state["log_alpha"])
        (params["actor"], opt_state["actor"]), (params["log_alpha"], opt_state["log_alpha"]) = (
            optim.masked(delayed, new, (params[name], opt_state[name]))
            for name, new in (("actor", new_actor), ("log_alpha", new_alpha)))
        target = {"critic": optim.polyak_update(
            params["critic"], state.target_params["critic"], config.tau, state.update_count,
            config.target_network_frequency)}
        metrics.update(actor_loss=loss, alpha=alpha, alpha_loss=alpha_loss,
                       entropy=-log_prob.mean())
        return state.replace(params=params, target_params=target, opt_state=opt_state), metrics

    def act(params, obs, key, deterministic=False):
        policy = actor.apply(params["actor"], obs)
        return policy.mode() if deterministic else policy.sample(seed=key)

    return OffPolicyHooks(init=init, explore=explore, gradient_step=gradient_step, act=act)
