"""Natural-gradient building blocks for NPG and TRPO, on flat parameter vectors.

Course notes: CS 285 (Preston Fu), §9 "Advanced Policy Gradients", *Natural gradient*; CS 234 /
224R / 285 notes, §1.10 "TRPO and PPO". The policy step solves

    max_θ' gᵀ(θ' - θ)  subject to  KL(π_θ ‖ π_θ') ≈ ½ (θ' - θ)ᵀ F (θ' - θ) ≤ δ,

whose solution is ``θ' = θ + sqrt(2δ / sᵀFs) · s`` with ``s = F⁻¹ g`` (Kakade, 2001; Schulman et
al., 2015). ``F`` is the Fisher information matrix, which equals the Hessian of the mean KL at
``θ' = θ``; it is never formed: ``conjugate_gradient`` solves ``F s = g`` from Fisher-vector
products ``F v = ∇(∇KL · v)`` (``fisher_vector_product``, a forward-over-reverse ``jax.jvp`` of
``jax.grad``). TRPO then backtracks along the step until the surrogate improves and the exact
mean KL is within δ (``backtracking_line_search``).

Everything here is pure and uses only ``lax`` control flow with static iteration counts, so it
is safe under ``jax.jit`` and ``jax.vmap`` (numeric arguments such as ``max_kl`` may be tracers).
Parameters are flat vectors; use ``jax.flatten_util.ravel_pytree`` for a network's pytree.

The agent NPG and TRPO share (``make_natural_gradient_agent``), one update:

1. collect a rollout of ``π_θ`` (``on_policy.collect``); ``Â = GAE(γ, λ)``, normalised over the
   batch;
2. ``g = ∇L`` of the surrogate ``L(θ') = E[π_θ'(a|s) / π_θ(a|s) · Â]``, ``s = CG(F + cI, g)``
   (``cg_iters`` iterations, ``c = cg_damping``), full step ``sqrt(2δ / sᵀ(F + cI)s) s``;
3. the agent's *step rule* (``StepRule``): NPG takes the step, TRPO backtracks;
4. fit ``V`` separately: ``value_epochs`` passes of Adam minibatch regression on ``Â + V_old``;
5. evaluate (``eval_episodes > 0``) as every on-policy agent.

Pre-train & finetune (course notes 004; ``on_policy.PretrainConfig``, as the gradient agents):
``init_from`` a ``bc`` run (discrete actions) copies its actor, ``pretrain_dataset`` clones
the actor by maximum likelihood inside ``init``, and ``critic_warmup`` rollouts of that policy
then run step 4 alone (``on_policy.start_from_demonstrations``), so the first trust-region step
is taken with a critic that has evaluated the pretrained policy; their env steps count in
``initial_steps`` and the ``step`` metric.

Only the actor's parameters enter the natural gradient: ``on_policy.split_actor_critic`` splits
the actor-critic variables into the policy's and the value function's trees (``TrainState``
keeps them apart), and ``ravel_pytree`` flattens the actor's alone, so the conjugate-gradient
vectors carry no critic coordinates. Networks are memoryless ``ActorCritic``s.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
from flax import struct
from jax.flatten_util import ravel_pytree

from jaxrl import losses
from jaxrl.training import on_policy
from jaxrl.training.agent import Agent, Metrics, as_typed_key, train_from_agent
from jaxrl.training.config import check_config, hyper, static
from jaxrl.training.extensions import RewardTransform
from jaxrl.training.optim import flat_adam

__all__ = ["Evaluate", "NaturalGradientConfig", "StepResult", "StepRule", "TrainState",
           "backtracking_line_search", "conjugate_gradient", "entry_points",
           "fisher_vector_product", "make_natural_gradient_agent", "max_kl_step"]

MatVec = Callable[[jax.Array], jax.Array]


class StepResult(NamedTuple):
    """Outcome of one policy step (all scalars except ``params``)."""

    params: jax.Array
    """the new flat parameters (the old ones where the step was rejected)"""
    step_fraction: jax.Array
    """fraction of the full step taken; 0 when rejected"""
    num_backtracks: jax.Array
    """candidates rejected before the accepted one (all of them when rejected)"""
    improvement: jax.Array
    """surrogate improvement ``L(θ_new) - L(θ_old)``"""
    kl: jax.Array
    """mean ``KL(π_old ‖ π_new)``"""


def conjugate_gradient(matvec: MatVec, b: jax.Array, iters: int,
                       residual_tol: float = 1e-10) -> jax.Array:
    """Approximately solve ``A x = b`` for symmetric positive-definite ``A``, given ``v ↦ A v``.

    Runs exactly ``iters`` (static) iterations from ``x = 0``; once ``rᵀr ≤ residual_tol`` the
    remaining iterations leave ``x`` unchanged (no division by a vanishing residual). In exact
    arithmetic an ``n × n`` system is solved in at most ``n`` iterations.
    """

    def step(carry, _):
        x, residual, direction, residual_sq = carry
        product = matvec(direction)
        active = residual_sq > residual_tol
        curvature = jnp.vdot(direction, product)
        alpha = jnp.where(active, residual_sq / jnp.where(active, curvature, 1.0), 0.0)
        x = x + alpha * direction
        residual = residual - alpha * product
        new_residual_sq = jnp.vdot(residual, residual)
        beta = jnp.where(active, new_residual_sq / jnp.where(active, residual_sq, 1.0), 0.0)
        direction = residual + beta * direction
        return (x, residual, direction, jnp.where(active, new_residual_sq, residual_sq)), None

    init = (jnp.zeros_like(b), b, b, jnp.vdot(b, b))
    (x, *_), _ = jax.lax.scan(step, init, None, length=iters)
    return x


def fisher_vector_product(mean_kl: Callable[[jax.Array], jax.Array], params: jax.Array,
                          damping: float | jax.Array = 0.0) -> MatVec:
    """``v ↦ (F + damping·I) v`` with ``F = ∇²_θ' mean_kl(θ')`` at ``θ' = params``.

    ``mean_kl(θ')`` must be the mean ``KL(π_old ‖ π_θ')`` with ``π_old`` held fixed (computed
    from ``params`` outside the function); its Hessian at ``params`` is the Fisher matrix.
    Each product is one forward-over-reverse pass: ``jax.jvp(jax.grad(mean_kl), (params,), (v,))``.
    """
    kl_gradient = jax.grad(mean_kl)

    def product(vector: jax.Array) -> jax.Array:
        return jax.jvp(kl_gradient, (params,), (vector,))[1] + damping * vector

    return product


def max_kl_step(direction: jax.Array, fisher_direction: jax.Array,
                max_kl: float | jax.Array) -> jax.Array:
    """The step ``sqrt(2δ / sᵀFs) · s`` whose quadratic KL estimate ``½ sᵀFs`` equals δ.

    ``fisher_direction`` is ``F s``. A non-positive ``sᵀFs`` (a zero gradient) gives a zero step.
    """
    curvature = jnp.vdot(direction, fisher_direction)
    scale = jnp.where(curvature > 0, jnp.sqrt(2.0 * max_kl / jnp.where(curvature > 0,
                                                                       curvature, 1.0)), 0.0)
    return scale * direction


def backtracking_line_search(evaluate: Callable[[jax.Array], tuple[jax.Array, jax.Array]],
                             params: jax.Array, full_step: jax.Array,
                             max_kl: float | jax.Array, backtrack_coef: float | jax.Array,
                             backtrack_iters: int) -> StepResult:
    """TRPO's line search: the first ``θ + c^k · full_step``, ``k = 0 … backtrack_iters - 1``,
    with surrogate improvement ``> 0`` and mean KL ``≤ max_kl``; ``θ`` itself if none is.

    ``evaluate(θ') -> (L(θ') - L(θ), mean KL(π_θ ‖ π_θ'))``. A ``lax.while_loop`` stops at the
    first accepted candidate (under ``vmap`` it runs until every member has stopped).
    """

    def candidate(k):
        return params + backtrack_coef ** k * full_step

    def searching(carry):
        k, accepted, _, _ = carry
        return ~accepted & (k < backtrack_iters)

    def try_candidate(carry):
        k, _, _, _ = carry
        improvement, kl = evaluate(candidate(k))
        accepted = (improvement > 0) & (kl <= max_kl)
        return k + jnp.where(accepted, 0, 1), accepted, improvement, kl

    zero = jnp.zeros((), params.dtype)
    k, accepted, improvement, kl = jax.lax.while_loop(
        searching, try_candidate, (jnp.zeros((), jnp.int32), jnp.bool_(False), zero, zero))
    return StepResult(
        params=jnp.where(accepted, candidate(k), params),
        step_fraction=jnp.where(accepted, backtrack_coef ** k, 0.0).astype(params.dtype),
        num_backtracks=k,
        improvement=jnp.where(accepted, improvement, 0.0),
        kl=jnp.where(accepted, kl, 0.0))


Evaluate = Callable[[jax.Array], tuple[jax.Array, jax.Array]]
"""``evaluate(θ') = (L(θ') - L(θ), mean KL(π_θ ‖ π_θ'))`` on the current batch."""

StepRule = Callable[[Any, jax.Array, jax.Array, jax.Array, Evaluate], StepResult]
"""``rule(config, θ, s, full_step, evaluate) -> StepResult``: how far along ``s`` to go
(``full_step`` is the max-KL step ``sqrt(2δ / sᵀFs) s``)."""


class NaturalGradientConfig(on_policy.PretrainConfig):
    """Hyperparameters NPG and TRPO share, with pre-train & finetune (init_from,
    pretrain_dataset, critic_warmup). Static fields decide shapes."""

    total_timesteps: int = static(200_000, ">= 1")
    num_steps: int = static(512, ">= 1")
    num_minibatches: int = static(16, ">= 1")
    """value-regression minibatches per pass; must divide num_envs * num_steps"""
    cg_iters: int = static(10, ">= 1")
    """conjugate-gradient iterations for s = F⁻¹g"""
    value_epochs: int = static(5, ">= 1")
    """passes of value-function regression over each rollout"""
    gae_lambda: float = hyper(0.98, "[0, 1]")
    """GAE λ"""
    max_kl: float = hyper(0.01, "> 0")
    """trust-region size δ: bound on the mean KL(π_old ‖ π_new) of a policy step"""
    cg_damping: float = hyper(0.1, ">= 0")
    """damping c added to the Fisher matrix: CG solves (F + c I) s = g"""
    vf_learning_rate: float = hyper(3e-3, "> 0")
    """Adam step size (eps 1e-5) of the value-function regression"""


class TrainState(struct.PyTreeNode):
    """Everything a run needs to continue: checkpoint this and training resumes exactly."""

    actor_params: Any
    critic_params: Any
    critic_opt_state: Any
    rollout: on_policy.RolloutState
    key: jax.Array
    update_count: jax.Array


def make_natural_gradient_agent(config: NaturalGradientConfig, env: Any, env_params: Any,
                                step_rule: StepRule, algo: str,
                                reward_transform: RewardTransform | None = None) -> Agent:
    """The agent of the module docstring with policy steps chosen by ``step_rule``."""
    parts = on_policy.setup(config, env, env_params, algo, reward_transform=reward_transform)
    network = parts.network
    optimizer = flat_adam(config.vf_learning_rate, eps=1e-5)
    warmup_steps = config.critic_warmup * config.batch_size  # env steps init takes

    def init(key: jax.Array) -> TrainState:
        key, init_key, reset_key = jax.random.split(as_typed_key(key), 3)
        rollout_state = on_policy.init_rollout(reset_key, config, parts, env_params)
        params = on_policy.init_network(init_key, network, rollout_state)
        key, params, rollout_state = on_policy.start_from_demonstrations(
            key, params, rollout_state, config, parts, env_params, warm_up_critic,
            optimizer.init(on_policy.split_actor_critic(params)[1]))
        actor_params, critic_params = on_policy.split_actor_critic(params)
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
        fisher_product = fisher_vector_product(mean_kl, params, config.cg_damping)
        direction = conjugate_gradient(fisher_product, gradient, config.cg_iters)
        full_step = max_kl_step(direction, fisher_product(direction), config.max_kl)

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

    def advantages_of(batch: on_policy.Batch) -> jax.Array:
        return losses.gae(batch.reward, batch.value, batch.next_value,
                          batch.discounts(config.gamma), batch.done, config.gae_lambda)

    def fit_value(key: jax.Array, critic_params: Any, opt_state: Any, batch: on_policy.Batch,
                  advantages: jax.Array) -> tuple[Any, Any, Metrics]:
        """``value_epochs`` passes of Adam regression of ``V`` on ``Â + V_old``."""
        return on_policy.gradient_epochs(
            key, critic_params, opt_state, {"obs": batch.obs, "targets": advantages + batch.value},
            value_loss, optimizer, config.value_epochs, config.num_minibatches)

    def warm_up_critic(key: jax.Array, params: Any, opt_state: Any,
                       batch: on_policy.Batch) -> tuple[Any, Any]:
        """``critic_warmup``: the update's value regression alone, the actor left as is."""
        actor_params, critic_params = on_policy.split_actor_critic(params)
        critic_params, opt_state, _ = fit_value(key, critic_params, opt_state, batch,
                                                advantages_of(batch))
        return on_policy.merge_actor_critic(actor_params, critic_params), opt_state

    def update(state: TrainState) -> tuple[TrainState, Metrics]:
        key, rollout_key, value_key, eval_key = on_policy.split_update_key(state.key, config)
        rollout_state, batch, reward_metrics = on_policy.collect(
            rollout_key, state.rollout, config, parts, env_params,
            on_policy.merge_actor_critic(state.actor_params, state.critic_params))
        advantages = advantages_of(batch)
        normalized = (advantages - advantages.mean()) / (advantages.std() + 1e-8)
        actor_params, metrics = policy_update(state.actor_params, batch, normalized)
        critic_params, opt_state, value_stats = fit_value(
            value_key, state.critic_params, state.critic_opt_state, batch, advantages)
        update_count = state.update_count + 1
        metrics = {**metrics, "value_loss": value_stats["value_loss"], **reward_metrics}
        metrics = on_policy.report(metrics, config, parts, env_params, eval_key, actor_params,
                                   rollout_state, update_count)
        if config.critic_warmup:
            metrics["step"] = metrics["step"] + warmup_steps
        return TrainState(actor_params=actor_params, critic_params=critic_params,
                          critic_opt_state=opt_state, rollout=rollout_state, key=key,
                          update_count=update_count), metrics

    return on_policy.agent_from(config, parts, init, update, lambda state: state.actor_params,
                                initial_steps=warmup_steps)


def entry_points(step_rule: StepRule, algo: str) -> tuple[Callable[..., Agent],
                                                          Callable[..., Any]]:
    """``(make_agent, make_train)`` of the natural-gradient algorithm that steps by
    ``step_rule``: ``make_agent(config, env, env_params, reward_transform=None) -> Agent``
    (``check_config`` first) and ``make_train(...) -> train(key)``, as for every agent."""

    def make_agent(config: NaturalGradientConfig, env: Any, env_params: Any,
                   reward_transform: RewardTransform | None = None) -> Agent:
        check_config(config)
        return make_natural_gradient_agent(config, env, env_params, step_rule, algo,
                                           reward_transform)

    def make_train(config: NaturalGradientConfig, env: Any, env_params: Any,
                   reward_transform: RewardTransform | None = None
                   ) -> Callable[[jax.Array], tuple[TrainState, Metrics]]:
        return train_from_agent(make_agent(config, env, env_params, reward_transform))

    make_agent.__doc__ = f"Build {algo}'s ``init`` / ``update`` / ``act`` (``training.agent``)."
    make_train.__doc__ = (f"``train(key) -> (TrainState, metrics)``: the whole {algo} run, "
                          "every metric with a leading ``[num_updates]`` axis.")
    return make_agent, make_train
