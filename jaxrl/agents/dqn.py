"""Deep Q-Networks (Mnih et al., 2015) with double Q, dueling heads and n-step targets.

Course notes, value-based chapter (fitted Q-iteration → Q-learning with a replay buffer and a
target network): minimise the Huber loss between ``Q(s, a)`` and
``y = Σ_{k<m} γ^k r_{t+k} + γ^m (1 - terminated) max_a' Q_target(s', a')``, with ``s'`` the real
final observation where an episode was truncated. Switches: ``double_q`` evaluates the online
network's greedy action with the target network (van Hasselt et al., 2016), ``dueling`` splits
the head into ``V + A - mean A`` (Wang et al., 2016), ``n_step`` uses m ≤ n-step returns.
Exploration is ε-greedy with ε decayed linearly over ``exploration_fraction`` of the run; the
target network is Polyak-averaged (τ = 1: hard copy) every ``target_network_frequency`` updates.

Defaults start from rl-zoo's CartPole-v1 settings, where plain DQN oscillates between solving
the task and collapsing; they add frequent small training phases, 3-step targets, soft target
updates and learning-rate annealing to make it stable (see ``QConfig``; results in
``docs/results.md``). MinAtar observations get the CNN torso.

DQfD (Hester et al. 2018; course notes 004, demonstrations as off-policy data): with
``demo_dataset`` the demonstrations sit in a replay partition that is never overwritten,
``demo_ratio`` of every batch comes from it, and the loss adds
``λ_k · (max_a [Q(s, a) + l(a_E, a)] - Q(s, a_E))`` on those rows (``demo_margin``, ``demo_coef``,
``demo_decay``; ``training.q_learning.large_margin_term``).

Pre-train & finetune (course notes 004): ``init_from`` a ``bc`` run of discrete actions starts
``Q`` (and its target) at BC's logits, so the greedy policy is BC's from the first step
(``pretrain.q_network_from_run``, which says why logits); ``pretrain_dataset`` fits those logits
inside ``init`` instead, by maximum likelihood of the Boltzmann policy
``π(a|s) = softmax_a Q(s, a)`` on the demonstrations (``pretrain.clone_into``).
``critic_warmup`` then evaluates that initial greedy policy ``π_0`` before Q-learning's max
takes over: for the first that many gradient steps the target network stays at the initial
``Q_0`` and only picks the next action, ``y = r + γ_m Q(s', argmax_a Q_0(s', a))`` with the
online ``Q`` (no gradient) as the value, so ``Q`` fits ``Q^{π_0}`` (its greedy policy improves
on ``π_0``); then the target copies ``Q`` (``training.q_learning``).
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp

from jaxrl.models import make_q_network
from jaxrl.training import pretrain
from jaxrl.training.agent import Agent, train_from_agent
from jaxrl.training.config import check_config, hyper, static
from jaxrl.training.extensions import RewardTransform
from jaxrl.training.off_policy import ReplayExtensions, TrainState
from jaxrl.training.q_learning import (
    DQfDFields,
    QConfig,
    greedy_next_value,
    linear_epsilon,
    make_q_agent,
)

__all__ = ["Config", "TrainState", "make_agent", "make_train"]


class Config(QConfig, DQfDFields, pretrain.ReplayPretrainFields):
    """DQN hyperparameters (CleanRL names; defaults solve CartPole-v1 in 100k steps); the
    demo_ fields turn it into DQfD."""

    double_q: bool = static(True)
    """double Q-learning target"""
    start_e: float = hyper(1.0, "[0, 1]")
    """initial exploration ε"""
    end_e: float = hyper(0.04, "[0, 1]")
    """final exploration ε"""
    exploration_fraction: float = hyper(0.16, "[0, 1]")
    """fraction of total_timesteps over which ε decays linearly"""
    init_from: str = static("")
    """start Q (and its target) at the logits of this run directory's policy (a bc run,
    discrete actions; a plain, not dueling, head: pretrain.q_start checks it), its greedy
    policy (docs/demonstrations.md)"""


def make_agent(config: Config, env: Any, env_params: Any,
               reward_transform: RewardTransform | None = None,
               extensions: ReplayExtensions | None = None) -> Agent:
    """Build DQN's ``init`` / ``update`` / ``act`` (see ``jaxrl.training.agent``)."""
    check_config(config)

    def epsilon_greedy(key, q_values, env_steps):
        epsilon = linear_epsilon(config.start_e, config.end_e,
                                 config.exploration_fraction * config.total_timesteps, env_steps)
        # One uniform draw for both coins (one threefry call instead of three on CPU).
        num_actions = q_values.shape[-1]
        uniform = jax.random.uniform(key, (2, *q_values.shape[:-1]))
        explore = uniform[0] < epsilon
        random_actions = jnp.minimum(jnp.floor(uniform[1] * num_actions), num_actions - 1)
        return jnp.where(explore, random_actions, jnp.argmax(q_values, -1)).astype(jnp.int32)

    agent = make_q_agent(config, env, env_params, "dqn", greedy_next_value(config.double_q),
                         epsilon_greedy, reward_transform, extensions)
    network = make_q_network(env.observation_space(env_params), env.action_space(env_params),
                             config.hidden_sizes, config.activation, config.dueling)
    return pretrain.q_start(agent, network, config, env, env_params)  # init_from, pretrain_dataset


def make_train(config: Config, env: Any, env_params: Any,
               reward_transform: RewardTransform | None = None,
               extensions: ReplayExtensions | None = None):
    """``train(key) -> (TrainState, metrics)``: the whole DQN run as one pure function."""
    return train_from_agent(make_agent(config, env, env_params, reward_transform, extensions))
