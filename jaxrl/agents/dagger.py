"""DAgger: dataset aggregation (Ross, Gordon & Bagnell, 2011).

Course notes, imitation learning chapter (Algorithm "DAgger"). Behaviour cloning trains on the
expert's state distribution but is tested on its own, where small mistakes compound. DAgger
closes the gap by labelling the learner's own states with the expert:

1. roll out the current policy ``π_i`` for ``num_steps`` steps in ``num_envs`` envs
   (round 0 rolls out the expert itself: ``β_0 = 1``, ``β_i = 0`` afterwards);
2. label every visited state with the expert's action ``a* = expert(s)``;
3. aggregate: ``D ← D ∪ {(s, a*)}`` in a fixed-capacity on-device buffer
   (``num_rounds · num_envs · num_steps`` slots, filled round by round);
4. train ``π_{i+1}`` by ``train_steps`` BC gradient steps (``jaxrl.losses.offline.bc_loss``) on
   minibatches drawn uniformly from the filled part of ``D`` (continuing from ``π_i``).

One ``update`` is one round, all inside jit; its metrics hold the BC loss and ``eval_return``
(evaluation of the greedy learner after the round). ``step`` counts expert labels. The expert is
any ``expert(obs [B, ...]) -> actions [B]``: a trained jaxrl policy's ``act`` or a scripted
function (default: ``jaxrl.envs.experts.scripted_expert(env)``). The env state carries over between
rounds, so later rounds see states later in the episodes.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
from flax import struct

from jaxrl.backend import ONE_OFF_UNROLL
from jaxrl.envs import ClipAction
from jaxrl.envs.experts import Expert, scripted_expert
from jaxrl.envs.spaces import Box, Discrete
from jaxrl.evaluation import evaluate
from jaxrl.losses.offline import bc_loss
from jaxrl.models import ImitationPolicy, imitation_action
from jaxrl.rollout import reset_envs, rollout
from jaxrl.training.agent import Agent, Metrics, as_typed_key, train_from_agent
from jaxrl.training.config import check_config, hyper, static
from jaxrl.training.offline import ImitationConfig, eval_window
from jaxrl.training.optim import apply_gradients, flat_adam

__all__ = ["Config", "TrainState", "make_agent", "make_train"]


class Config(ImitationConfig):
    """DAgger hyperparameters. Static fields decide shapes (and the buffer's capacity)."""

    batch_size: int = static(128, ">= 1")
    hidden_sizes: tuple[int, ...] = static((64, 64))
    num_rounds: int = static(10, ">= 1")
    """rounds of collect, label, aggregate, train"""
    num_envs: int = static(8, ">= 1")
    """parallel environments"""
    num_steps: int = static(32, ">= 1")
    """steps per environment per round (labels per round = num_envs * num_steps)"""
    train_steps: int = static(500, ">= 1")
    """BC gradient steps per round"""
    learning_rate: float = hyper(1e-3, "> 0")
    """Adam step size"""

    @property
    def labels_per_round(self) -> int:
        return self.num_envs * self.num_steps


class TrainState(struct.PyTreeNode):
    """Policy, optimiser, the aggregated dataset and the env batch: everything to continue."""

    params: Any
    opt_state: Any
    buffer_obs: jax.Array
    buffer_action: jax.Array
    env_state: Any
    obs: jax.Array
    key: jax.Array
    round: jax.Array


def make_agent(config: Config, env: Any, env_params: Any, expert: Expert | None = None) -> Agent:
    """Build DAgger's pure ``init`` / ``update`` / ``act`` (see the module docstring)."""
    check_config(config)
    expert = scripted_expert(env) if expert is None else expert
    observation_space = env.observation_space(env_params)
    action_space = env.action_space(env_params)
    if not isinstance(action_space, Discrete | Box):
        raise TypeError(f"dagger supports Discrete and Box action spaces, got {action_space}")
    discrete = isinstance(action_space, Discrete)
    if not discrete:
        env = ClipAction(env)
    network = ImitationPolicy(action_space, tuple(config.hidden_sizes), config.activation)
    optimizer = flat_adam(config.learning_rate)
    per_round = config.labels_per_round
    capacity = config.num_rounds * per_round
    action_dtype = jnp.int32 if discrete else jnp.float32

    def init(key: jax.Array) -> TrainState:
        key, init_key, reset_key = jax.random.split(as_typed_key(key), 3)
        obs, env_state = reset_envs(reset_key, env, env_params, config.num_envs)
        params = network.init(init_key, obs[:1])
        return TrainState(
            params=params, opt_state=optimizer.init(params),
            buffer_obs=jnp.zeros((capacity, *observation_space.shape), jnp.float32),
            buffer_action=jnp.zeros((capacity, *action_space.shape), action_dtype),
            env_state=env_state, obs=obs, key=key, round=jnp.zeros((), jnp.int32))

    def learner_action(params, obs, key, deterministic):
        return imitation_action(network.apply(params, obs), key, discrete, deterministic)

    def update(state: TrainState) -> tuple[TrainState, Metrics]:
        key, rollout_key, train_key, eval_key = jax.random.split(state.key, 4)

        def behaviour(_, obs):
            learner = learner_action(state.params, obs, None, True)
            return jnp.where(state.round == 0, expert(obs), learner).astype(action_dtype), {}

        env_state, obs, traj = rollout(rollout_key, env, env_params, state.env_state, state.obs,
                                       behaviour, config.num_steps)
        visited = traj.obs.reshape((per_round, *observation_space.shape))
        start = state.round * per_round
        buffer_obs = jax.lax.dynamic_update_slice_in_dim(state.buffer_obs, visited, start, 0)
        buffer_action = jax.lax.dynamic_update_slice_in_dim(
            state.buffer_action, expert(visited).astype(action_dtype), start, 0)
        filled = start + per_round

        def loss_fn(params, index):
            return bc_loss(network.apply(params, buffer_obs[index]), buffer_action[index],
                           discrete)

        def gradient_step(carry, step_key):
            params, opt_state = carry
            index = jax.random.randint(step_key, (config.batch_size,), 0, filled)
            loss, grads = jax.value_and_grad(loss_fn)(params, index)
            return apply_gradients(optimizer, grads, opt_state, params), loss

        (params, opt_state), losses = jax.lax.scan(
            gradient_step, (state.params, state.opt_state),
            jax.random.split(train_key, config.train_steps))
        eval_return = evaluate(eval_key, env, env_params,
                               lambda k, o: learner_action(params, o, k, True),
                               config.eval_episodes, eval_window(env_params), ONE_OFF_UNROLL)
        new_round = state.round + 1
        metrics = {"loss": losses.mean(), "eval_return": eval_return,
                   "step": new_round * per_round}
        return TrainState(params=params, opt_state=opt_state, buffer_obs=buffer_obs,
                          buffer_action=buffer_action, env_state=env_state, obs=obs, key=key,
                          round=new_round), metrics

    def act(state: TrainState, obs: jax.Array, key: jax.Array,
            deterministic: bool = False) -> jax.Array:
        return learner_action(state.params, obs, key, deterministic)

    return Agent(init=init, update=update, act=act, num_updates=config.num_rounds,
                 steps_per_update=per_round)


def make_train(config: Config, env: Any, env_params: Any, expert: Expert | None = None):
    """``train(key) -> (TrainState, metrics)``: all DAgger rounds as one pure function."""
    return train_from_agent(make_agent(config, env, env_params, expert))
