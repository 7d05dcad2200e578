"""Deep Q-Networks (Mnih et al., 2015) with double Q, dueling heads and n-step targets.

Course notes, value-based chapter (fitted Q-iteration → Q-learning with a replay buffer and a
target network): minimise the Huber loss between ``Q(s, a)`` and
``y = Σ_{k<m} γ^k r_{t+k} + γ^m (1 - terminated) max_a' Q_target(s', a')``, with ``s'`` the real
final observation where an episode was truncated. Switches: ``double_q`` evaluates the online
network's greedy action with the target network (van Hasselt et al., 2016), ``dueling`` splits
the head into ``V + A - mean A`` (Wang et al., 2016), ``n_step`` uses m ≤ n-step returns.
Exploration is ε-greedy with ε decayed linearly over ``exploration_fraction`` of the run; the
target network is Polyak-averaged (τ = 1: hard copy) every ``target_network_frequency`` updates.

Defaults start from rl-zoo's CartPole-v1 settings; plain DQN there oscillates between 500 and
collapse, so they add frequent small training phases, 3-step targets, soft target updates and
learning-rate annealing, which hold 500 at the end of 100k steps (see ``QConfig``). MinAtar
observations get the CNN torso.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import optax
from flax import struct

from jaxrl import losses
from jaxrl.envs.spaces import Discrete
from jaxrl.models import make_q_network
from jaxrl.replay import Sample
from jaxrl.training import off_policy, optim
from jaxrl.training.agent import Agent, Metrics, train_from_agent
from jaxrl.training.config import check_ranges
from jaxrl.training.optim import grad_norm

__all__ = ["Config", "NextValue", "QConfig", "TrainState", "check_config", "check_q_ranges",
           "greedy_next_value", "make_agent", "make_q_agent", "make_train", "validate"]

TrainState = off_policy.TrainState


class QConfig(off_policy.OffPolicyConfig):
    """Fields shared by the Q-learning agents (DQN, soft Q). Defaults: rl-zoo's CartPole-v1 DQN
    entry (batch 64, update-to-data ratio 1/2, 256-256 MLP) made stable: 2 updates every 4 steps
    instead of 128 every 256, 3-step targets, Polyak τ = 0.005 every update and the learning
    rate annealed from 5e-4 to 0. After 100k steps most seeds hold 500, but one seed in four can
    collapse late (seed-dependent; batch 128 moved which seed, at twice the cost per update)."""

    total_timesteps: int = struct.field(pytree_node=False, default=100_000)
    """environment steps per seed, the random-action warm-up included"""
    batch_size: int = struct.field(pytree_node=False, default=64)
    """transitions per gradient step"""
    train_frequency: int = struct.field(pytree_node=False, default=4)
    """vectorised env steps between training phases"""
    updates_per_step: int = struct.field(pytree_node=False, default=2)
    """gradient updates per training phase"""
    log_frequency: int = struct.field(pytree_node=False, default=2_048)
    """env steps per logged row (one update of the agent API; evaluation runs at each)"""
    n_step: int = struct.field(pytree_node=False, default=3)
    """steps per bootstrapped target (stops early at episode ends)"""
    dueling: bool = struct.field(pytree_node=False, default=False)
    """dueling head V + A - mean A"""
    anneal_lr: bool = struct.field(pytree_node=False, default=True)
    """decay the learning rate linearly to 0 over the run"""
    learning_rate: float = 5e-4
    """Adam step size"""
    tau: float = 0.005
    """target-network Polyak rate (1: hard copy)"""
    target_network_frequency: int = 1
    """gradient updates between target-network updates"""
    max_grad_norm: float = 10.0
    """global gradient-norm clip"""


class Config(QConfig):
    """DQN hyperparameters (CleanRL names; defaults solve CartPole-v1 in 100k steps)."""

    double_q: bool = struct.field(pytree_node=False, default=True)
    """double Q-learning target"""
    start_e: float = 1.0
    """initial exploration ε"""
    end_e: float = 0.04
    """final exploration ε"""
    exploration_fraction: float = 0.16
    """fraction of total_timesteps over which ε decays linearly"""


def validate(config: Config) -> None:
    """Check the static (shape-deciding) fields; raise ``ValueError`` saying what to change."""
    off_policy.validate_off_policy(config)


def check_config(config: Config) -> None:
    """Range checks of one concrete config's numeric hyperparameters (CLI / ``runner.run``)."""
    validate(config)
    check_q_ranges(config)
    check_ranges(config, start_e="[0, 1]", end_e="[0, 1]", exploration_fraction="[0, 1]")


def check_q_ranges(config: QConfig) -> None:
    """Range checks of the fields every Q-learning config has."""
    check_ranges(config, learning_rate="> 0", gamma="[0, 1]", tau="[0, 1]",
                 target_network_frequency="> 0", max_grad_norm="> 0")


NextValue = Callable[[jax.Array, jax.Array], jax.Array]
"""``next_value(next_q_online, next_q_target) -> v(s')`` of a Q-learning variant."""


def greedy_next_value(config: Config) -> NextValue:
    """``max_a Q_target(s', a)``, or the double-Q value with ``config.double_q``."""
    if config.double_q:
        return losses.double_q_next_value
    return lambda next_q_online, next_q_target: next_q_target.max(-1)


def make_q_agent(config: Any, env: Any, env_params: Any, algo: str, next_value: NextValue,
                 behaviour: Callable[[jax.Array, jax.Array, jax.Array], jax.Array]) -> Agent:
    """A Q-learning agent on the shared off-policy loop: Huber loss to ``r + γ_m v(s')``.

    ``behaviour(key, q_values [B, A], env_steps) -> actions`` explores; evaluation is greedy
    and ``act(..., deterministic=False)`` follows ``behaviour`` at the end of training.
    """
    parts = off_policy.setup(env, env_params, algo.upper(), Discrete)
    network = make_q_network(parts.observation_space, parts.action_space, config.hidden_sizes,
                             config.activation, getattr(config, "dueling", False))
    optimizer = optim.adam(config.learning_rate, config.max_grad_norm,
                                config.total_gradient_steps if config.anneal_lr else None)

    def init(key, obs):
        params = network.init(key, obs[:1])
        return {"q": params}, {"q": params}, {"q": optimizer.init(params)}

    def explore(key, params, obs, env_steps):
        return behaviour(key, network.apply(params["q"], obs), env_steps)

    def loss_fn(params, target_params, sample: Sample) -> tuple[jax.Array, Metrics]:
        q_values = network.apply(params, sample.obs)
        q_taken = jnp.take_along_axis(q_values, sample.action[:, None], -1).squeeze(-1)
        next_q_online = jax.lax.stop_gradient(network.apply(params, sample.next_obs))
        next_q_target = network.apply(target_params, sample.next_obs)
        targets = losses.bellman_target(sample.reward, sample.discount,
                                        next_value(next_q_online, next_q_target))
        loss = optax.huber_loss(q_taken, targets, delta=1.0).mean()
        return loss, {"loss": loss, "q_values": q_taken.mean()}

    def gradient_step(key, state: TrainState, sample: Sample) -> tuple[TrainState, Metrics]:
        grads, metrics = jax.grad(loss_fn, has_aux=True)(state.params["q"],
                                                         state.target_params["q"], sample)
        updates, opt_state = optimizer.update(grads, state.opt_state["q"], state.params["q"])
        params = optax.apply_updates(state.params["q"], updates)
        target = optim.polyak_update(params, state.target_params["q"], config.tau,
                                          state.update_count, config.target_network_frequency)
        metrics["grad_norm"] = grad_norm(grads)
        return state.replace(params={"q": params}, target_params={"q": target},
                             opt_state={"q": opt_state}), metrics

    def act(params, obs, key, deterministic=False):
        q_values = network.apply(params["q"], obs)
        if deterministic:
            return jnp.argmax(q_values, -1).astype(jnp.int32)
        return behaviour(key, q_values, jnp.asarray(config.total_timesteps, jnp.float32))

    hooks = off_policy.OffPolicyHooks(init=init, explore=explore, gradient_step=gradient_step,
                                      act=act)
    return off_policy.make_off_policy_agent(config, parts, env_params, hooks)


def make_agent(config: Config, env: Any, env_params: Any) -> Agent:
    """Build DQN's ``init`` / ``update`` / ``act`` (see ``jaxrl.training.agent``)."""
    validate(config)

    def epsilon_greedy(key, q_values, env_steps):
        epsilon = off_policy.linear_epsilon(config.start_e, config.end_e,
                                            config.exploration_fraction * config.total_timesteps,
                                            env_steps)
        # One uniform draw for both coins (one threefry call instead of three on CPU).
        num_actions = q_values.shape[-1]
        uniform = jax.random.uniform(key, (2, *q_values.shape[:-1]))
        explore = uniform[0] < epsilon
        random_actions = jnp.minimum(jnp.floor(uniform[1] * num_actions), num_actions - 1)
        return jnp.where(explore, random_actions, jnp.argmax(q_values, -1)).astype(jnp.int32)

    return make_q_agent(config, env, env_params, "dqn", greedy_next_value(config),
                        epsilon_greedy)


def make_train(config: Config, env: Any, env_params: Any):
    """``train(key) -> (TrainState, metrics)``: the whole DQN run as one pure function."""
    return train_from_agent(make_agent(config, env, env_params))
