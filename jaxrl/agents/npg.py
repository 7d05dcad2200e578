"""Natural policy gradient (Kakade, 2001), and the natural-gradient agent TRPO builds on.

Course notes: CS 285 (Preston Fu), §9 "Advanced Policy Gradients", *Natural gradient*. With the
importance-sampled surrogate ``L(θ') = E[π_θ'(a|s) / π_θ(a|s) · Â]`` (its gradient at ``θ' = θ``
is the policy gradient ``g``) and the Fisher matrix ``F`` (the Hessian of the mean
``KL(π_θ ‖ π_θ')`` at ``θ' = θ``), the update

    θ ← θ + α s,   s = F⁻¹ g,   α = sqrt(2δ / sᵀ F s)

maximises the linearised surrogate inside the quadratic trust region ``½ Δθᵀ F Δθ ≤ δ``
(δ = ``max_kl``); ``step_size > 0`` takes a fixed ``α`` instead. ``s`` comes from
``cg_iters`` conjugate-gradient iterations on damped Fisher-vector products ``(F + c I) v``,
``c = cg_damping`` (``jaxrl.training.natural_gradient``); no dense Fisher is formed. One update:

1. roll out ``π_θ`` (``on_policy.collect``); ``Â = GAE(γ, λ)``, normalised over the batch;
2. ``g = ∇L``, ``s = CG(F + cI, g)``, full step ``sqrt(2δ / sᵀ(F + cI)s) s``;
3. the *step rule*: NPG takes the step as is; TRPO (``jaxrl.agents.trpo``) backtracks;
4. fit ``V`` separately: ``value_epochs`` passes of Adam minibatch regression on ``Â + V_old``.

Only the actor's parameters enter the natural gradient: ``on_policy.split_actor_critic`` splits
the actor-critic variables into the policy's and the value function's trees (``TrainState``
keeps them apart), and ``ravel_pytree`` flattens the actor's alone, so the conjugate-gradient
vectors carry no critic coordinates. Truncated episodes bootstrap from ``V(final_obs)``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
from flax import struct
from jax.flatten_util import ravel_pytree

from jaxrl import losses
from jaxrl.training import natural_gradient as ng
from jaxrl.training import on_policy
from jaxrl.training.agent import Agent, Metrics, as_typed_key, train_from_agent
from jaxrl.training.config import check_ranges
from jaxrl.training.optim import flat_adam

__all__ = ["RANGES", "Config", "Evaluate", "NaturalGradientConfig", "StepRule", "TrainState",
           "check_config", "make_agent", "make_natural_gradient_agent", "make_train",
           "natural_step", "validate"]

Evaluate = Callable[[jax.Array], tuple[jax.Array, jax.Array]]
"""``evaluate(θ') = (L(θ') - L(θ), mean KL(π_θ ‖ π_θ'))`` on the current batch."""


class NaturalGradientConfig(struct.PyTreeNode):
    """Hyperparameters NPG and TRPO share. Static fields decide shapes."""

    total_timesteps: int = struct.field(pytree_node=False, default=200_000)
    """environment steps per seed (rounded down to whole rollouts)"""
    num_envs: int = struct.field(pytree_node=False, default=8)
    """parallel environments"""
    num_steps: int = struct.field(pytree_node=False, default=512)
    """steps per environment per rollout"""
    cg_iters: int = struct.field(pytree_node=False, default=10)
    """conjugate-gradient iterations for s = F⁻¹g"""
    value_epochs: int = struct.field(pytree_node=False, default=5)
    """passes of value-function regression over each rollout"""
    num_minibatches: int = struct.field(pytree_node=False, default=16)
    """value-regression minibatches per pass; must divide num_envs * num_steps"""
    hidden_sizes: tuple[int, ...] = struct.field(pytree_node=False, default=(64, 64))
    """hidden layer widths of the actor and critic MLPs"""
    activation: str = struct.field(pytree_node=False, default="tanh")
    """tanh, relu, swish, gelu or elu"""
    normalize_obs: bool = struct.field(pytree_node=False, default=False)
    """normalise observations with batch-level running statistics"""
    normalize_reward: bool = struct.field(pytree_node=False, default=False)
    """scale rewards by the std of the discounted return"""
    gamma: float = 0.99
    """discount factor"""
    gae_lambda: float = 0.98
    """GAE λ"""
    max_kl: float = 0.01
    """trust-region size δ: bound on the mean KL(π_old ‖ π_new) of a policy step"""
    cg_damping: float = 0.1
    """damping c added to the Fisher matrix: CG solves (F + c I) s = g"""
    vf_learning_rate: float = 3e-3
    """Adam step size (eps 1e-5) of the value-function regression"""

    @property
    def batch_size(self) -> int:
        return self.num_envs * self.num_steps

    @property
    def num_updates(self) -> int:
        return self.total_timesteps // self.batch_size


class Config(NaturalGradientConfig):
    """NPG hyperparameters. Static fields decide shapes."""

    step_size: float = 0.0
    """fixed step α of θ += α F⁻¹g; 0 takes the max-KL step α = sqrt(2 max_kl / gᵀF⁻¹g)"""


class TrainState(struct.PyTreeNode):
    """Everything a run needs to continue: checkpoint this and training resumes exactly."""

    actor_params: Any
    critic_params: Any
    critic_opt_state: Any
    rollout: on_policy.RolloutState
    key: jax.Array
    update_count: jax.Array


StepRule = Callable[[Any, jax.Array, jax.Array, jax.Array, Evaluate], ng.StepResult]
"""``rule(config, θ, s, full_step, evaluate) -> StepResult``: how far along ``s`` to go
(``full_step`` is the max-KL step ``sqrt(2δ / sᵀFs) s``)."""

RANGES = {"gamma": "[0, 1]", "gae_lambda": "[0, 1]", "max_kl": "> 0", "cg_damping": ">= 0",
          "vf_learning_rate": "> 0"}
"""Allowed ranges of the shared numeric fields (``base.check_ranges``)."""


def validate(config: NaturalGradientConfig) -> None:
    """Check the static (shape-deciding) fields; raise ``ValueError`` saying what to change."""
    on_policy.validate_rollout(config, "cg_iters", "value_epochs")


def check_config(config: Config) -> None:
    """Range checks of the numeric fields of one concrete config (CLI / ``runner.run``)."""
    validate(config)
    check_ranges(config, **RANGES, step_size=">= 0")


def natural_step(config: Config, params: jax.Array, direction: jax.Array, full_step: jax.Array,
                 evaluate: Evaluate) -> ng.StepResult:
    """NPG's step rule: ``θ + full_step``, or ``θ + α s`` with a fixed ``α = step_size > 0``."""
    step = jnp.where(config.step_size > 0, config.step_size * direction, full_step)
    improvement, kl = evaluate(params + step)
    return ng.StepResult(params=params + step, step_fraction=jnp.ones((), params.dtype),
                         num_backtracks=jnp.zeros((), jnp.int32), improvement=improvement, kl=kl)


def make_natural_gradient_agent(config: NaturalGradientConfig, env: Any, env_params: Any,
                                step_rule: StepRule, algo: str) -> Agent:
    """The agent of the module docstring with policy steps chosen by ``step_rule``."""
    validate(config)
    parts = on_policy.setup(config, env, env_params, algo)
    network = parts.network
    optimizer = flat_adam(config.vf_learning_rate, eps=1e-5)

    def init(key: jax.Array) -> TrainState:
        key = as_typed_key(key)
        key, init_key, reset_key = jax.random.split(key, 3)
        rollout_state = on_policy.init_rollout(reset_key, config, parts, env_params)
        actor_params, critic_params = on_policy.split_actor_critic(
            network.init(init_key, rollout_state.obs[:1]))
        return TrainState(actor_params=actor_params, critic_params=critic_params,
                          critic_opt_state=optimizer.init(critic_params), rollout=rollout_state,
                          key=key, update_count=jnp.zeros((), jnp.int32))

    def policy_update(actor_params: Any, batch: on_policy.Batch,
                      advantages: jax.Array) -> tuple[Any, Metrics]:
        params, unravel = ravel_pytree(actor_params)

        def policy(flat_params):
            return network.apply(unravel(flat_params), batch.obs, method="policy")

        # π_old enters the objectives as constants: the KL's Hessian at θ_old is then F.
        old_policy = policy(params)
        old_log_prob = old_policy.log_prob(batch.action)

        def surrogate(flat_params):
            ratio = jnp.exp(policy(flat_params).log_prob(batch.action) - old_log_prob)
            return jnp.mean(ratio * advantages)

        def mean_kl(flat_params):
            return jnp.mean(old_policy.kl_divergence(policy(flat_params)))

        old_surrogate, gradient = jax.value_and_grad(surrogate)(params)
        fisher_product = ng.fisher_vector_product(mean_kl, params, config.cg_damping)
        direction = ng.conjugate_gradient(fisher_product, gradient, config.cg_iters)
        full_step = ng.max_kl_step(direction, fisher_product(direction), config.max_kl)

        def evaluate(flat_params):
            return surrogate(flat_params) - old_surrogate, mean_kl(flat_params)

        result = step_rule(config, params, direction, full_step, evaluate)
        return unravel(result.params), {
            "kl": result.kl, "surrogate_improvement": result.improvement,
            "step_fraction": result.step_fraction,
            "backtracks": result.num_backtracks.astype(jnp.float32),
            "entropy": jnp.mean(old_policy.entropy())}

    def value_loss(critic_params: Any,
                   minibatch: dict[str, jax.Array]) -> tuple[jax.Array, Metrics]:
        values = network.apply(critic_params, minibatch["obs"], method="value")
        loss = losses.value_loss(values, minibatch["targets"])
        return loss, {"value_loss": loss}

    def update(state: TrainState) -> tuple[TrainState, Metrics]:
        key, rollout_key, value_key = jax.random.split(state.key, 3)
        rollout_state, batch = on_policy.collect(
            rollout_key, state.rollout, config, parts, env_params,
            on_policy.merge_actor_critic(state.actor_params, state.critic_params))
        advantages = losses.gae(batch.reward, batch.value, batch.next_value,
                                batch.discounts(config.gamma), batch.done, config.gae_lambda)
        normalized = (advantages - advantages.mean()) / (advantages.std() + 1e-8)
        actor_params, metrics = policy_update(state.actor_params, batch, normalized)
        critic_params, opt_state, value_stats = on_policy.gradient_epochs(
            value_key, state.critic_params, state.critic_opt_state,
            {"obs": batch.obs, "targets": advantages + batch.value}, value_loss, optimizer,
            config.value_epochs, config.num_minibatches)
        update_count = state.update_count + 1
        metrics["value_loss"] = value_stats["value_loss"]
        metrics["episode_return"] = rollout_state.last_episode_return
        metrics["step"] = update_count * config.batch_size
        return TrainState(actor_params=actor_params, critic_params=critic_params,
                          critic_opt_state=opt_state, rollout=rollout_state, key=key,
                          update_count=update_count), metrics

    act_with = on_policy.make_act(config, parts)

    def act(state: TrainState, obs: jax.Array, key: jax.Array,
            deterministic: bool = False) -> jax.Array:
        return act_with(state.actor_params, state.rollout, obs, key, deterministic)

    return Agent(init=init, update=update, act=act, num_updates=config.num_updates,
                 steps_per_update=config.batch_size)


def make_agent(config: Config, env: Any, env_params: Any) -> Agent:
    """Build NPG's ``init`` / ``update`` / ``act`` (see ``jaxrl.training.agent``)."""
    return make_natural_gradient_agent(config, env, env_params, natural_step, "NPG")


def make_train(config: Config, env: Any,
               env_params: Any) -> Callable[[jax.Array], tuple[TrainState, Metrics]]:
    """``train(key) -> (TrainState, metrics)``: the whole NPG run as one pure function.

    Every metric has a leading ``[num_updates]`` axis (``[seeds, num_updates]`` under vmap).
    """
    return train_from_agent(make_agent(config, env, env_params))
