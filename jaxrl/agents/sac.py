"""Soft Actor-Critic (Haarnoja et al., 2018) with twin critics and automatic entropy tuning.

Course notes, maximum-entropy off-policy actor-critic: a tanh-squashed Gaussian policy
``a = tanh(u)``, ``u ~ N(μ(s), σ(s)²)`` (``jaxrl.models.TanhNormal``: its log-prob includes the
tanh Jacobian, computed stably, and stays finite for actions at ±1) and two critics regressing to
``y = r + γ_m (1 - terminated) [min_i Q_target,i(s', a') - α log π(a'|s')]``, ``a' ~ π(·|s')``.
The actor minimises ``E[α log π(a|s) - min_i Q_i(s, a)]`` with reparameterised samples; with
``autotune`` the temperature follows ``J(α) = -E[log α (log π + H̄)]``, target entropy
``H̄ = -|A|``, so α rises when the policy's entropy falls below ``H̄``. Critic targets are
Polyak-averaged at rate τ; actions live in ``[-1, 1]`` and are rescaled to the env's bounds.

Demonstrations (course notes 004, data initialisation and the hybrid objective): with
``demo_dataset`` they sit in a replay partition that is never overwritten, ``demo_ratio`` of
every batch comes from it, and the actor adds ``λ_k · (-log π(a_E|s))`` on those rows
(``demo_coef``, ``demo_decay``; ``training.actor_critic``). ``init_from`` a ``bc`` run of
Box actions starts from its policy (pre-train & finetune; ``pretrain.tanh_actor_from_run``);
``pretrain_dataset`` fits the actor inside ``init`` instead, by maximum likelihood of its
tanh-Gaussian on the demonstrated actions in ``[-1, 1]`` (``pretrain.clone_into``).
``critic_warmup`` gradient steps then fit the critics to that policy's own soft values (targets
with ``a' ~ π(·|s')``) before its first update, so early updates do not follow untrained critics.
"""

from __future__ import annotations

from typing import Any

from jaxrl.envs.spaces import Box
from jaxrl.models import make_tanh_gaussian_actor
from jaxrl.training import off_policy, pretrain
from jaxrl.training.actor_critic import SACConfig, actor_template, sac_hooks
from jaxrl.training.agent import Agent, train_from_agent
from jaxrl.training.config import check_config, static
from jaxrl.training.extensions import RewardTransform
from jaxrl.training.off_policy import ReplayExtensions, TrainState

__all__ = ["Config", "TrainState", "make_agent", "make_train"]


class Config(SACConfig, off_policy.DemoReplayFields, pretrain.ReplayPretrainFields):
    """SAC hyperparameters (CleanRL names); defaults sized for Pendulum-v1; demo_ fields:
    demonstrations in the replay buffer and the hybrid objective."""

    init_from: str = static("")
    """start from the policy of this run directory (a bc run, Box actions): its actor's torso
    and mean copied, the log-std layer and critics fresh (docs/demonstrations.md)"""
    reward_from_run: str = static("")
    """learn the reward of this airl run directory (its first seed's state reward g(s)) instead
    of the env's: AIRL's reward transfer, e.g. to changed dynamics (--env-arg); the env's
    reward is still reported as episode_return and eval_return (docs/inverse-rl.md)"""


def make_agent(config: Config, env: Any, env_params: Any,
               reward_transform: RewardTransform | None = None,
               extensions: ReplayExtensions | None = None) -> Agent:
    """Build SAC's ``init`` / ``update`` / ``act`` (see ``jaxrl.training.agent``)."""
    check_config(config)
    if config.reward_from_run:
        from jaxrl.training.adversarial import reward_from_run

        if reward_transform is not None or config.bonus != "none":
            raise ValueError("--reward-from-run replaces the reward: drop the other reward "
                             "transform (--bonus)")
        reward_transform = reward_from_run(config.reward_from_run, env, env_params)
    parts = off_policy.setup(env, env_params, "SAC", Box)
    initial_actor = None
    if config.init_from:
        initial_actor = pretrain.tanh_actor_from_run(config.init_from, env, env_params,
                                                     actor_template(config, parts),
                                                     config.activation)
    hooks = sac_hooks(config, parts, initial_actor, config.critic_warmup)
    agent = off_policy.make_off_policy_agent(config, parts, env_params, hooks,
                                             reward_transform, extensions,
                                             off_policy.demo_partition(config, env, env_params))
    actor = make_tanh_gaussian_actor(parts.observation_space, parts.action_space,
                                     config.hidden_sizes, config.activation)
    return pretrain.clone_into(agent, "actor", lambda params, obs, action: actor.apply(
        params, obs).log_prob(action), config, env, env_params)


def make_train(config: Config, env: Any, env_params: Any,
               reward_transform: RewardTransform | None = None,
               extensions: ReplayExtensions | None = None):
    """``train(key) -> (TrainState, metrics)``: the whole SAC run as one pure function."""
    return train_from_agent(make_agent(config, env, env_params, reward_transform, extensions))
