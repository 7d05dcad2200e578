"""Maximum-entropy inverse RL on the env's exact transition table (Ziebart et al., 2008).

Course notes §20 (Inverse RL) and Algorithm 25 (§14.1.1): ψ ← ψ + η ∇_ψ L with
``∇_ψ L = Σ_{s,a} (D_E(s, a) − Σ_t μ_t(s, a)) ∇_ψ r_ψ(s, a)``, the expert's visitation counts
minus those of the soft-optimal trajectory distribution of ``r_ψ``. ``objective="finite_horizon"``
computes ``μ_t ∝ α_t β_t`` by the backward and forward messages of the notes (``jaxrl.irl``);
``"discounted"`` uses soft value iteration and the soft-optimal policy's discounted occupancy
(maximum causal entropy), whose fixed point matches the expert's occupancy under the true,
possibly slippery, dynamics. The reward ``r_ψ`` is linear (one weight per state or state-action
pair) or an MLP over the one-hot state (and action); it is 0 on terminal states, which end the
episode. The learned policy is the soft-optimal policy of ``r_ψ`` (soft value iteration,
temperature 1, discount ``gamma``). Needs a tabular env and a dataset of demonstrations.

Metrics of each logged row: ``feature_gap`` ``½ Σ_{s,a} |D_E − E[D]|`` over non-terminal pairs
(0 when the expected visitation matches the expert's), ``log_likelihood`` (finite horizon) and,
with ``eval_episodes > 0``, ``eval_return`` of the greedy learned policy in real episodes.
"""

from __future__ import annotations

from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
from flax import struct

from jaxrl import irl
from jaxrl.backend import ONE_OFF_UNROLL
from jaxrl.datasets import Dataset, episode_bounds
from jaxrl.envs.tabular import state_index, tabular_mdp
from jaxrl.evaluation import evaluate
from jaxrl.models.torsos import MLP
from jaxrl.training.agent import Agent, Metrics, as_typed_key, train_from_agent
from jaxrl.training.config import (
    ACTIVATIONS,
    BaseConfig,
    check_config,
    check_log_frequency,
    hyper,
    static,
)
from jaxrl.training.offline import device_dataset
from jaxrl.training.optim import apply_gradients, flat_adam

__all__ = ["OFFLINE", "Config", "TrainState", "make_agent", "make_train"]

OFFLINE = True
"""The runner passes ``dataset=`` to ``make_agent``."""


class Config(BaseConfig):
    """MaxEnt IRL hyperparameters."""

    total_gradient_steps: int = static(500, ">= 1")
    """reward gradient steps of the whole run"""
    log_frequency: int = static(50, ">= 1")
    """gradient steps per logged row; the policy is evaluated at each"""
    objective: str = static("finite_horizon", ("finite_horizon", "discounted"))
    """finite_horizon: forward/backward messages over the episode; discounted: soft VI"""
    horizon: int = static(0, ">= 0")
    """T of the finite-horizon messages (0: the env's time limit)"""
    features: str = static("state_action", ("state", "state_action"))
    """state: r_ψ(s') of the state entered, r(s, a) = Σ_s' P(s'|s, a) r_ψ(s'); state_action:
    r_ψ(s, a) of the one-hot state and action"""
    reward_model: str = static("linear", ("linear", "mlp"))
    """linear: one weight per feature; mlp: a network over the one-hot features"""
    hidden_sizes: tuple[int, ...] = static((32,))
    """hidden layer widths of the mlp reward"""
    activation: str = static("tanh", ACTIVATIONS)
    """activation of the mlp reward"""
    num_sweeps: int = static(200, ">= 1")
    """soft value-iteration sweeps (the discounted objective and the learned policy)"""
    eval_episodes: int = static(16, ">= 0")
    """real episodes the learned policy is evaluated on at each logged row (0: none)"""
    gamma: float = hyper(0.95, "[0, 1]")
    """discount of the discounted objective and of the learned policy's soft value iteration"""
    learning_rate: float = hyper(0.05, "> 0")
    """Adam step size on the reward parameters"""

    def validate(self) -> None:
        """``log_frequency <= total_gradient_steps`` (one logged row at least)."""
        super().validate()
        check_log_frequency(self)


class TrainState(struct.PyTreeNode):
    """Reward parameters, their optimiser state, the learned policy ``[S, A]``, key, steps."""

    params: Any
    opt_state: Any
    policy: jax.Array
    key: jax.Array
    step: jax.Array


class _MLPReward(nn.Module):
    hidden_sizes: tuple[int, ...]
    activation: str

    @nn.compact
    def __call__(self, features: jax.Array) -> jax.Array:
        return nn.Dense(1)(MLP(self.hidden_sizes, self.activation)(features))[..., 0]


def make_agent(config: Config, env: Any, env_params: Any, dataset: Dataset | None = None) -> Agent:
    """Build MaxEnt IRL's ``init`` / ``update`` / ``act``; ``TypeError`` for an env without an
    exact table, ``ValueError`` for a dataset that does not fit the env."""
    check_config(config)
    data = device_dataset(dataset, env, env_params, "maxent_irl")
    mdp = tabular_mdp(env, env_params, config.gamma)
    num_states, num_actions = mdp.num_states, mdp.num_actions
    horizon = config.horizon or int(getattr(env_params, "max_steps_in_episode", 100))
    discounted = config.objective == "discounted"

    starts, ends = episode_bounds(np.asarray(dataset.terminated | dataset.truncated))
    episode_start = np.repeat(starts, ends - starts + 1)
    states = np.asarray(state_index(mdp, data.obs))
    expert = jnp.asarray(irl.expert_counts(
        states, np.asarray(dataset.actions), episode_start, num_states, num_actions,
        gamma=float(config.gamma) if discounted else None))

    live = jnp.ones(num_states) if mdp.terminal is None else (~mdp.terminal).astype(jnp.float32)
    eye_s, eye_a = jnp.eye(num_states), jnp.eye(num_actions)
    if config.features == "state":
        inputs = eye_s
    else:
        inputs = jnp.concatenate([jnp.repeat(eye_s[:, None], num_actions, 1),
                                  jnp.broadcast_to(eye_a, (num_states, num_actions,
                                                           num_actions))], -1)
    if config.reward_model == "linear":
        def raw_reward(params):  # ψᵀ f with one-hot f: the weight of the state (and action)
            return params

        def init_params(key):
            shape = (num_states,) if config.features == "state" else (num_states, num_actions)
            return jnp.zeros(shape, jnp.float32)
    else:
        network = _MLPReward(tuple(config.hidden_sizes), config.activation)

        def raw_reward(params):
            return network.apply(params, inputs)

        def init_params(key):
            return network.init(key, inputs)

    def reward_table(params) -> jax.Array:
        reward = raw_reward(params)
        if config.features == "state":
            reward = mdp.P @ reward
        return reward * live[:, None]

    optimizer = flat_adam(config.learning_rate)

    def soft_policy(reward: jax.Array) -> jax.Array:
        return irl.discounted_visitation(mdp, reward, 1.0, config.num_sweeps)[1]

    def gradient_step(carry, _):
        params, opt_state = carry
        reward = reward_table(params)
        if discounted:
            expected = irl.discounted_visitation(mdp, reward, 1.0, config.num_sweeps)[0]
        else:
            expected = irl.expected_counts(mdp, reward, horizon)
        ascent = irl.reward_gradient(reward_table, params, expert, expected)
        params, opt_state = apply_gradients(optimizer, jax.tree.map(jnp.negative, ascent),
                                            opt_state, params)
        gap = 0.5 * jnp.abs((expert - expected) * live[:, None]).sum()
        return (params, opt_state), gap

    def act(state: TrainState, obs: jax.Array, key: jax.Array,
            deterministic: bool = False) -> jax.Array:
        probs = state.policy[state_index(mdp, obs)]
        if deterministic:
            return jnp.argmax(probs, -1).astype(jnp.int32)
        return jax.random.categorical(key, jnp.log(probs)).astype(jnp.int32)

    def init(key: jax.Array) -> TrainState:
        key, init_key = jax.random.split(as_typed_key(key))
        params = init_params(init_key)
        return TrainState(params, optimizer.init(params), soft_policy(reward_table(params)), key,
                          jnp.zeros((), jnp.int32))

    def update(state: TrainState) -> tuple[TrainState, Metrics]:
        key, eval_key = jax.random.split(state.key)
        (params, opt_state), gaps = jax.lax.scan(
            gradient_step, (state.params, state.opt_state), None, length=config.log_frequency)
        reward = reward_table(params)
        new = TrainState(params, opt_state, soft_policy(reward), key,
                         state.step + config.log_frequency)
        metrics = {"feature_gap": gaps[-1], "step": new.step}
        if not discounted:
            metrics["log_likelihood"] = (expert * reward).sum() - irl.log_partition(
                mdp, reward, horizon)
        if config.eval_episodes > 0:
            metrics["eval_return"] = evaluate(
                eval_key, env, env_params, lambda k, obs: act(new, obs, k, True),
                config.eval_episodes, horizon + 1, ONE_OFF_UNROLL)
        return new, metrics

    return Agent(init=init, update=update, act=act,
                 num_updates=config.total_gradient_steps // config.log_frequency,
                 steps_per_update=config.log_frequency, step_unit="gradient steps")


def make_train(config: Config, env: Any, env_params: Any, dataset: Dataset | None = None):
    """``train(key) -> (TrainState, metrics)``: the whole MaxEnt IRL run as one pure function."""
    return train_from_agent(make_agent(config, env, env_params, dataset))
