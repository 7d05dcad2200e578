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
from jaxrl.agents.base import Agent, Metrics, as_typed_key, train_from_agent
from jaxrl.envs import ClipAction, EpisodeStatistics, RunningMeanStd, discounted_return_trace
from jaxrl.envs.spaces import Box, Discrete
from jaxrl.models import make_actor_critic
from jaxrl.rollout import episode_return_metric, reset_envs, rollout, shuffled_minibatches

__all__ = ["Config", "TrainState", "check_config", "make_agent", "make_train", "validate"]


class Config(struct.PyTreeNode):
    """PPO hyperparameters (CleanRL / PureJaxRL names). Static fields decide shapes."""

    total_timesteps: int = struct.field(pytree_node=False, default=500_000)
    """environment steps per seed (rounded down to whole rollouts)"""
    num_envs: int = struct.field(pytree_node=False, default=4)
    """parallel environments"""
    num_steps: int = struct.field(pytree_node=False, default=128)
    """steps per environment per rollout"""
    update_epochs: int = struct.field(pytree_node=False, default=10)
    """passes over each rollout"""
    num_minibatches: int = struct.field(pytree_node=False, default=4)
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
    learning_rate: float = 2.5e-4
    """Adam step size (eps 1e-5)"""
    gamma: float = 0.99
    """discount factor"""
    gae_lambda: float = 0.95
    """GAE λ"""
    clip_eps: float = 0.2
    """PPO ratio clip ε"""
    ent_coef: float = 0.01
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
    env_state: Any
    obs: jax.Array
    obs_stats: RunningMeanStd
    return_stats: RunningMeanStd
    return_trace: jax.Array
    key: jax.Array
    update_count: jax.Array
    last_episode_return: jax.Array


def validate(config: Config) -> None:
    """Check the static (shape-deciding) fields; raise ``ValueError`` saying what to change."""
    for name in ("num_envs", "num_steps", "update_epochs", "num_minibatches"):
        if getattr(config, name) < 1:
            raise ValueError(f"{name} must be >= 1, got {getattr(config, name)}")
    if config.batch_size % config.num_minibatches:
        raise ValueError(
            f"num_envs * num_steps = {config.num_envs} * {config.num_steps} = {config.batch_size} "
            f"is not divisible by num_minibatches = {config.num_minibatches}; change one of them")
    if config.num_updates < 1:
        raise ValueError(
            f"total_timesteps = {config.total_timesteps} is smaller than one rollout "
            f"(num_envs * num_steps = {config.batch_size}); raise total_timesteps")


def check_config(config: Config) -> None:
    """Range checks of the numeric hyperparameters of one concrete config (CLI / ``runner.run``).

    ``make_agent`` never reads numeric fields in Python (they may be traced in a sweep), so this
    is a separate call for configs that hold plain numbers.
    """
    validate(config)
    checks = {
        "learning_rate": config.learning_rate > 0, "gamma": 0 <= config.gamma <= 1,
        "gae_lambda": 0 <= config.gae_lambda <= 1, "clip_eps": config.clip_eps > 0,
        "ent_coef": config.ent_coef >= 0, "vf_coef": config.vf_coef >= 0,
        "max_grad_norm": config.max_grad_norm > 0,
    }
    allowed = {"learning_rate": "> 0", "gamma": "in [0, 1]", "gae_lambda": "in [0, 1]",
               "clip_eps": "> 0", "ent_coef": ">= 0", "vf_coef": ">= 0", "max_grad_norm": "> 0"}
    for name, ok in checks.items():
        if not ok:
            raise ValueError(f"{name} must be {allowed[name]}, got {getattr(config, name)}")


def make_agent(config: Config, env: Any, env_params: Any) -> Agent:
    """Build PPO's pure ``init`` / ``update`` / ``act`` for ``env`` (see ``jaxrl.agents.base``)."""
    validate(config)
    action_space = env.action_space(env_params)
    observation_space = env.observation_space(env_params)
    if not isinstance(action_space, Discrete | Box):
        raise TypeError(f"PPO supports Discrete and Box action spaces, got {action_space}")
    if isinstance(action_space, Box):
        env = ClipAction(env)
    env = EpisodeStatistics(env)
    network = make_actor_critic(observation_space, action_space, config.hidden_sizes,
                                config.activation)
    num_updates = config.num_updates
    steps_per_epoch = config.num_minibatches * config.update_epochs

    def learning_rate(count: jax.Array) -> jax.Array:
        if not config.anneal_lr:
            return jnp.asarray(config.learning_rate, jnp.float32)
        fraction = 1.0 - (count // steps_per_epoch) / num_updates
        return config.learning_rate * fraction

    optimizer = optax.chain(optax.clip_by_global_norm(config.max_grad_norm),
                            optax.adam(learning_rate, eps=1e-5))

    def normalize(stats: RunningMeanStd, obs: jax.Array) -> jax.Array:
        return stats.normalize(obs) if config.normalize_obs else obs

    def init(key: jax.Array) -> TrainState:
        key = as_typed_key(key)
        key, init_key, reset_key = jax.random.split(key, 3)
        obs, env_state = reset_envs(reset_key, env, env_params, config.num_envs)
        params = network.init(init_key, obs[:1])
        return TrainState(
            params=params, opt_state=optimizer.init(params), env_state=env_state, obs=obs,
            obs_stats=RunningMeanStd.create(observation_space.shape),
            return_stats=RunningMeanStd.create(),
            return_trace=jnp.zeros((config.num_envs,), jnp.float32), key=key,
            update_count=jnp.zeros((), jnp.int32),
            last_episode_return=jnp.full((), jnp.nan, jnp.float32))

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

        def policy(key, obs):
            dist, value = network.apply(state.params, normalize(state.obs_stats, obs))
            action, log_prob = dist.sample_and_log_prob(seed=key)
            return action, {"log_prob": log_prob, "value": value}

        env_state, obs, traj = rollout(rollout_key, env, env_params, state.env_state, state.obs,
                                       policy, config.num_steps)
        obs_batch = normalize(state.obs_stats, traj.obs)
        next_values = network.apply(state.params, normalize(state.obs_stats, traj.next_obs),
                                    method="value")
        rewards, return_trace, return_stats = traj.reward, state.return_trace, state.return_stats
        if config.normalize_reward:
            trace, return_trace = discounted_return_trace(rewards, traj.done, config.gamma,
                                                          return_trace)
            return_stats = return_stats.update(trace)
            rewards = return_stats.scale(rewards)
        discounts = config.gamma * (1.0 - traj.terminated)
        advantages = losses.gae(rewards, traj.extras["value"], next_values, discounts, traj.done,
                                config.gae_lambda)
        batch = {"obs": obs_batch, "action": traj.action, "log_prob": traj.extras["log_prob"],
                 "value": traj.extras["value"], "advantages": advantages,
                 "targets": advantages + traj.extras["value"]}

        def epoch(carry, epoch_key):
            minibatches = shuffled_minibatches(epoch_key, batch, config.num_minibatches)
            return jax.lax.scan(gradient_step, carry, minibatches)

        (params, opt_state), stats = jax.lax.scan(
            epoch, (state.params, state.opt_state),
            jax.random.split(epochs_key, config.update_epochs))
        obs_stats = state.obs_stats.update(traj.obs) if config.normalize_obs else state.obs_stats
        episode_return = episode_return_metric(traj.info, state.last_episode_return)
        update_count = state.update_count + 1
        metrics = jax.tree.map(jnp.mean, stats)
        metrics["episode_return"] = episode_return
        metrics["step"] = update_count * config.batch_size
        new_state = TrainState(
            params=params, opt_state=opt_state, env_state=env_state, obs=obs,
            obs_stats=obs_stats, return_stats=return_stats, return_trace=return_trace, key=key,
            update_count=update_count, last_episode_return=episode_return)
        return new_state, metrics

    def act(state: TrainState, obs: jax.Array, key: jax.Array,
            deterministic: bool = False) -> jax.Array:
        dist = network.apply(state.params, normalize(state.obs_stats, obs), method="policy")
        action = dist.mode() if deterministic else dist.sample(seed=key)
        if isinstance(action_space, Box):
            action = jnp.clip(action, action_space.low, action_space.high)
        return action

    return Agent(init=init, update=update, act=act, num_updates=num_updates,
                 steps_per_update=config.batch_size)


def make_train(config: Config, env: Any, env_params: Any):
    """``train(key) -> (TrainState, metrics)``: the whole PPO run as one pure function.

    Every metric has a leading ``[num_updates]`` axis (``[seeds, num_updates]`` under vmap).
    """
    return train_from_agent(make_agent(config, env, env_params))
