"""Soft Q-learning (Haarnoja et al., 2017) for discrete actions.

Course notes, maximum-entropy RL: the soft Bellman backup replaces ``max`` by a log-sum-exp at
temperature α, ``y = r + γ_m (1 - terminated) · α log Σ_a' exp(Q_target(s', a') / α)``, and the
policy is the Boltzmann distribution ``π(a|s) ∝ exp(Q(s, a) / α)``, which both explores (it is
the behaviour policy; no ε) and is optimal for the entropy-regularised objective. α → 0
recovers Q-learning. Everything else (replay, n-step windows, Huber loss, target network) is
shared with DQN (``training.q_learning``).

Pre-train & finetune (course notes 004) is DQN's (``pretrain.q_start``): ``init_from`` a ``bc``
run of discrete actions starts ``Q`` and its target at BC's logits, ``pretrain_dataset`` fits
them inside ``init`` by maximum likelihood of ``softmax_a Q(s, a)`` (temperature 1, the logits'
own scale; the Boltzmann policy at α < 1 is a sharper version with the same greedy action), and
``critic_warmup`` gradient steps evaluate the initial greedy policy before the soft backup takes
over (the target network frozen at the initial ``Q``, ``training.q_learning``).
"""

from __future__ import annotations

from typing import Any

import distrax
import jax
import jax.numpy as jnp

from jaxrl import losses
from jaxrl.models import make_q_network
from jaxrl.training import pretrain
from jaxrl.training.agent import Agent, train_from_agent
from jaxrl.training.config import check_config, hyper, static
from jaxrl.training.extensions import RewardTransform
from jaxrl.training.off_policy import ReplayExtensions, TrainState
from jaxrl.training.q_learning import QConfig, make_q_agent

__all__ = ["Config", "TrainState", "make_agent", "make_train"]


class Config(QConfig, pretrain.ReplayPretrainFields):
    """Soft Q-learning hyperparameters: DQN's, with the temperature `alpha` instead of ε;
    init_from, pretrain_ fields and critic_warmup: pre-train & finetune."""

    alpha: float = hyper(0.05, "> 0")
    """entropy temperature α of the soft backup and the Boltzmann policy"""
    init_from: str = static("")
    """start Q (and its target) at the logits of this run directory's policy (a bc run,
    discrete actions): its greedy policy (docs/demonstrations.md)"""


def make_agent(config: Config, env: Any, env_params: Any,
               reward_transform: RewardTransform | None = None,
               extensions: ReplayExtensions | None = None) -> Agent:
    """Build soft Q-learning's ``init`` / ``update`` / ``act`` (see ``jaxrl.training.agent``)."""
    check_config(config)

    def boltzmann(key, q_values, env_steps):
        return distrax.Categorical(logits=q_values / config.alpha).sample(seed=key).astype(
            jnp.int32)

    def soft_next_value(next_q_online: jax.Array, next_q_target: jax.Array) -> jax.Array:
        return losses.soft_value(next_q_target, config.alpha)

    agent = make_q_agent(config, env, env_params, "soft_q", soft_next_value, boltzmann,
                         reward_transform, extensions)
    network = make_q_network(env.observation_space(env_params), env.action_space(env_params),
                             config.hidden_sizes, config.activation, config.dueling)
    return pretrain.q_start(agent, network, config, env, env_params)


def make_train(config: Config, env: Any, env_params: Any,
               reward_transform: RewardTransform | None = None,
               extensions: ReplayExtensions | None = None):
    """``train(key) -> (TrainState, metrics)``: the whole soft Q-learning run as one function."""
    return train_from_agent(make_agent(config, env, env_params, reward_transform, extensions))
