"""Proximal Policy Optimisation (Schulman et al., 2017) with the details that make it work.

Course notes, actor-critic chapter: the clipped surrogate
``L^CLIP = E[min(ρ_t A_t, clip(ρ_t, 1-ε, 1+ε) A_t)]`` with ``A_t`` from GAE, a value loss and an
entropy bonus. The rest follows the "37 implementation details" list: orthogonal init
(√2 / 0.01 / 1), Adam with eps 1e-5, linear learning-rate annealing, advantage normalisation per
minibatch, optional value clipping, global gradient-norm clipping, and batch-level
observation / reward normalisation for continuous control. Time-limit truncation bootstraps from
``V(final_obs)``; only termination stops bootstrapping.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import optax
from flax import struct

from jaxrl import losses
from jaxrl.agents import on_policy
from jaxrl.agents.base import Agent, Metrics, as_typed_key, check_ranges, train_from_agent
from jaxrl.rollout import shuffled_minibatches

__all__ = ["Config", "TrainState", "check_config", "make_agent", "make_train", "validate"]


class Config(struct.PyTreeNode):
    """PPO hyperparameters (CleanRL / PureJaxRL names). Static fields decide shapes.

    Defaults are rl-zoo's classic-control settings (8 envs × 32 steps, 20 full-batch epochs,
    γ 0.98, λ 0.8, lr 1e-3 annealed, no entropy bonus): they solve CartPole-v1 on every seed we
    tried. For continuous control see ``benchmarks/ppo_results.py`` (normalisation, more envs).
    """

    total_timesteps: int = struct.field(pytree_node=False, default=500_000)
    """environment steps per seed (rounded down to whole rollouts)"""
    num_envs: int = struct.field(pytree_node=False, default=8)
    """parallel environments"""
    num_steps: int = struct.field(pytree_node=False, default=32)
    """steps per environment per rollout"""
    update_epochs: int = struct.field(pytree_node=False, default=20)
    """passes over each rollout"""
    num_minibatches: int = struct.field(pytree_node=False, default=1)
    """minibatches per epoch; must divide num_envs * num_steps"""
    hidden_sizes: tuple[int, ...] = struct.field(pytree_node=False, default=(64, 64))
    """hidden layer widths of the actor and critic MLPs"""
    activation: str = struct.field(pytree_node=False, default="tanh")
    """tanh, relu, swish, gelu or elu"""
    anneal_lr: bool = struct.field(pytree_node=False, default=True)
    """decay the learning rate linearly to 0"""
    norm_adv: bool = struct.field(pytree_node=False, default=True)
    """normalise advantages per minibatch"""
    clip_vloss: bool = struct.field(pytree_node=False, default=False)
    """clip the value loss around the old values (by clip_eps)"""
    normalize_obs: bool = struct.field(pytree_node=False, default=False)
    """normalise observations with batch-level running statistics"""
    normalize_reward: bool = struct.field(pytree_node=False, default=False)
    """scale rewards by the std of the discounted return"""
    learning_rate: float = 1e-3
    """Adam step size (eps 1e-5)"""
    gamma: float = 0.98
    """discount factor"""
    gae_lambda: float = 0.8
    """GAE λ"""
    clip_eps: float = 0.2
    """PPO ratio clip ε"""
    ent_coef: float = 0.0
    """entropy bonus coefficient"""
    vf_coef: float = 0.5
    """value loss coefficient"""
    max_grad_norm: float = 0.5
    """global gradient-norm clip"""

    @property
    def batch_size(self) -> int:
        return self.num_envs * self.num_steps

    @property
    def minibatch_size(self) -> int:
        return self.batch_size // self.num_minibatches

    @property
    def num_updates(self) -> int:
        return self.total_timesteps // self.batch_size


class TrainState(struct.PyTreeNode):
    """Everything a PPO run needs to continue: checkpoint this and training resumes exactly."""

    params: Any
    opt_state: Any
    rollout: on_policy.RolloutState
    key: jax.Array
    update_count: jax.Array


def validate(config: Config) -> None:
    """Check the static (shape-deciding) fields; raise ``ValueError`` saying what to change."""
    on_policy.validate_rollout(config)
    for name in ("update_epochs", "num_minibatches"):
        if getattr(config, name) < 1:
            raise ValueError(f"{name} must be >= 1, got {getattr(config, name)}")
    if config.batch_size % config.num_minibatches:
        raise ValueError(
            f"num_envs * num_steps = {config.num_envs} * {config.num_steps} = {config.batch_size} "
            f"is not divisible by num_minibatches = {config.num_minibatches}; change one of them")


def check_config(config: Config) -> None:
    """Range checks of the numeric hyperparameters of one concrete config (CLI / ``runner.run``).

    ``make_agent`` never reads numeric fields in Python (they may be traced in a sweep), so this
    is a separate call for configs that hold plain numbers.
    """
    validate(config)
    check_ranges(config, learning_rate="> 0", gamma="[0, 1]", gae_lambda="[0, 1]",
                 clip_eps="> 0", ent_coef=">= 0", vf_coef=">= 0", max_grad_norm="> 0")


def make_agent(config: Config, env: Any, env_params: Any) -> Agent:
    """Build PPO's pure ``init`` / ``update`` / ``act`` for ``env`` (see ``jaxrl.agents.base``)."""
    validate(config)
    parts = on_policy.setup(config, env, env_params, "PPO")
    network = parts.network
    num_updates = config.num_updates
    steps_per_epoch = config.num_minibatches * config.update_epochs

    def learning_rate(count: jax.Array) -> jax.Array:
        if not config.anneal_lr:
            return jnp.asarray(config.learning_rate, jnp.float32)
        fraction = 1.0 - (count // steps_per_epoch) / num_updates
        return config.learning_rate * fraction

    optimizer = optax.chain(optax.clip_by_global_norm(config.max_grad_norm),
                            optax.adam(learning_rate, eps=1e-5))

    def init(key: jax.Array) -> TrainState:
        key = as_typed_key(key)
        key, init_key, reset_key = jax.random.split(key, 3)
        rollout_state = on_policy.init_rollout(reset_key, config, parts, env_params)
        params = network.init(init_key, rollout_state.obs[:1])
        return TrainState(params=params, opt_state=optimizer.init(params), rollout=rollout_state,
                          key=key, update_count=jnp.zeros((), jnp.int32))

    def loss_fn(params, minibatch):
        dist, values = network.apply(params, minibatch["obs"])
        log_probs = dist.log_prob(minibatch["action"])
        advantages = minibatch["advantages"]
        if config.norm_adv:
            advantages = (advantages - advantages.mean()) / (advantages.std() + 1e-8)
        policy_loss = losses.ppo_clip_loss(log_probs, minibatch["log_prob"], advantages,
                                           config.clip_eps)
        value_loss = losses.value_loss(
            values, minibatch["targets"], minibatch["value"] if config.clip_vloss else None,
            config.clip_eps if config.clip_vloss else None)
        entropy = dist.entropy().mean()
        total = policy_loss + config.vf_coef * value_loss - config.ent_coef * entropy
        return total, {
            "loss": total, "policy_loss": policy_loss, "value_loss": value_loss,
            "entropy": entropy,
            "approx_kl": losses.approx_kl(log_probs, minibatch["log_prob"]),
            "clip_fraction": losses.clip_fraction(log_probs, minibatch["log_prob"],
                                                  config.clip_eps),
        }

    def gradient_step(carry, minibatch):
        params, opt_state = carry
        grads, stats = jax.grad(loss_fn, has_aux=True)(params, minibatch)
        updates, opt_state = optimizer.update(grads, opt_state, params)
        return (optax.apply_updates(params, updates), opt_state), stats

    def update(state: TrainState) -> tuple[TrainState, Metrics]:
        key, rollout_key, epochs_key = jax.random.split(state.key, 3)
        rollout_state, batch = on_policy.collect(rollout_key, state.rollout, config, parts,
                                                 env_params, state.params)
        advantages = losses.gae(batch.reward, batch.value, batch.next_value,
                                batch.discounts(config.gamma), batch.done, config.gae_lambda)
        samples = {"obs": batch.obs, "action": batch.action, "log_prob": batch.log_prob,
                   "value": batch.value, "advantages": advantages,
                   "targets": advantages + batch.value}

        def epoch(carry, epoch_key):
            minibatches = shuffled_minibatches(epoch_key, samples, config.num_minibatches)
            return jax.lax.scan(gradient_step, carry, minibatches)

        (params, opt_state), stats = jax.lax.scan(
            epoch, (state.params, state.opt_state),
            jax.random.split(epochs_key, config.update_epochs))
        update_count = state.update_count + 1
        metrics = jax.tree.map(jnp.mean, stats)
        metrics["episode_return"] = rollout_state.last_episode_return
        metrics["step"] = update_count * config.batch_size
        return TrainState(params=params, opt_state=opt_state, rollout=rollout_state, key=key,
                          update_count=update_count), metrics

    act_with = on_policy.make_act(config, parts)

    def act(state: TrainState, obs: jax.Array, key: jax.Array,
            deterministic: bool = False) -> jax.Array:
        return act_with(state.params, state.rollout, obs, key, deterministic)

    return Agent(init=init, update=update, act=act, num_updates=num_updates,
                 steps_per_update=config.batch_size)


def make_train(config: Config, env: Any, env_params: Any):
    """``train(key) -> (TrainState, metrics)``: the whole PPO run as one pure function.

    Every metric has a leading ``[num_updates]`` axis (``[seeds, num_updates]`` under vmap).
    """
    return train_from_agent(make_agent(config, env, env_params))
