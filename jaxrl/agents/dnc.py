"""Divide-and-Conquer RL (Ghosh et al., 2018): local policies per initial-state context and a
global policy distilled from them.

Course notes §11.1.5 "Divide and Conquer Reinforcement Learning" (Algorithm 23). Loop:

1. optimise each local policy ``π_i(a|s)`` on initial states of its context ``i`` w.r.t.
   ``r̃_i(s, a) = r(s, a) + λ_i log π_θ(a|s)`` (``losses.kl_augmented_rewards``), minus
   ``α`` times its mean KL to the other local policies on its own states (Ghosh et al.'s
   penalty, which keeps the local policies close enough for one policy to mimic them all);
2. train the global policy ``π_θ`` on those samples to mimic each local policy:
   ``min_θ Σ_i E_{s ~ π_i} KL(π_i(·|s) ‖ π_θ(·|s))`` (``training.meta.mimic_kl``);
3. update ``λ_i``: doubled where ``E_{π_i} KL(π_i ‖ π_θ)`` exceeds ``1.5 · target_kl``,
   halved below ``target_kl / 1.5`` (the adaptive KL-penalty rule).

The initial states: the env is a task family seen through ``training.meta.TaskEnv`` with the
task's params in the observation (course notes §22: multi-task RL is single-task RL whose first
state draws the MDP), so the initial state ``s_0 = (obs_0, ω)`` tells the task. The contexts are
``num_contexts`` k-means clusters of ``ω`` over ``kmeans_samples`` draws at ``init`` (as Ghosh
et al. partition initial states); each local policy samples its episodes' tasks from its
cluster (``training.meta.sample_in_region``). Every policy sees the whole state, so the global
policy can tell the contexts apart. Local steps are the policy gradient of
``training.meta.episode_objective`` on ``r̃`` (reward-to-go, leave-one-out baseline).

Metrics: ``local_return`` (the local policies' episodes, true reward; also ``episode_return``),
``global_return`` (the global policy's own episodes on tasks of every context), ``distill_kl``
(``Σ_i E KL(π_i ‖ π_θ)`` on the fresh states, before the global steps), ``pairwise_kl`` and
``lambda`` (means over contexts). ``act`` is the global policy, in ``wrap_env(config, env)``.
``num_contexts=1`` is one policy trained on all initial states directly (``λ`` then only
shapes the reward).
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
from flax import struct

from jaxrl.losses.meta import distillation_kl, kl_augmented_rewards
from jaxrl.training import meta
from jaxrl.training.agent import Agent, as_typed_key, train_from_agent
from jaxrl.training.config import check_config, hyper, static
from jaxrl.training.optim import flat_adam

__all__ = ["Config", "TrainState", "make_agent", "make_train", "wrap_env"]


class Config(meta.MimicConfig):
    """Local policies per context (the per-task policies), a global policy (the mimicking
    policy), adaptive λ. Defaults: PointNav-v0 goals."""

    num_contexts: int = static(4, ">= 1")
    """initial-state contexts (one local policy each): k-means clusters of the task params"""
    global_learning_rate: float = hyper(3e-3, "> 0")
    """global policy's Adam step size"""
    initial_lambda: float = hyper(0.01, ">= 0")
    """λ_i at the start: weight of log π_θ in the local reward"""
    target_kl: float = hyper(0.1, "> 0")
    """λ_i doubles above 1.5 · target_kl of E_{π_i} KL(π_i ‖ π_θ), halves below target_kl / 1.5"""
    pairwise_kl_coef: float = hyper(0.01, ">= 0")
    """α: weight of a local policy's mean KL to the others, on its states"""
    kmeans_samples: int = static(256, ">= 1")
    """tasks drawn at init to find the contexts"""
    candidates: int = static(64, ">= 1")
    """draws per sampled task, the first in the context kept (at least 8 · num_contexts)"""
    global_hidden_sizes: tuple[int, ...] = static((64, 64))
    """global policy MLP widths"""

    @property
    def steps_per_update(self) -> int:
        """Local policies' env steps of one update."""
        return self.num_contexts * self.num_envs * self.horizon

    def validate(self) -> None:
        """Two episodes per batch; enough draws per context; one update fits the run."""
        meta.check_num_envs(self.num_envs)
        if self.kmeans_samples < self.num_contexts:
            raise ValueError(f"kmeans_samples = {self.kmeans_samples} must be >= num_contexts "
                             f"= {self.num_contexts}")
        if self.candidates < 8 * self.num_contexts:
            raise ValueError(f"candidates = {self.candidates} must be >= 8 · num_contexts = "
                             f"{8 * self.num_contexts} (so a draw in each context is nearly "
                             "certain)")
        self.check_one_update("num_contexts", self.num_contexts)


class TrainState(struct.PyTreeNode):
    """Context centres, local policies (stacked ``[K, ...]``), the global policy, λ, key."""

    centres: jax.Array
    local_params: Any
    local_opt_state: Any
    global_params: Any
    global_opt_state: Any
    lambdas: jax.Array
    key: jax.Array


def wrap_env(config: Config, env: Any) -> meta.TaskEnv:
    """The env the global policy acts in: a task of ``env``'s family drawn at each reset, its
    params in the observation."""
    def sample_task(key, env_params):
        return meta.task_sampler(env, env_params)(key)

    return meta.TaskEnv(env, sample_task, task_in_obs=True)


def make_agent(config: Config, env: Any, env_params: Any) -> Agent:
    """Divide-and-Conquer RL on ``env``'s task family (module docstring)."""
    check_config(config)
    sample_task = meta.task_sampler(env, env_params)
    meta.check_horizon(config.horizon, env_params)
    conditioned = meta.TaskEnv(env, None, task_in_obs=True)
    local = meta.make_policy(conditioned, env_params, config.hidden_sizes, config.activation)
    global_policy = meta.make_policy(conditioned, env_params, config.global_hidden_sizes,
                                     config.activation)
    local_optimizer = flat_adam(config.learning_rate, max_grad_norm=config.max_grad_norm)
    global_optimizer = flat_adam(config.global_learning_rate, max_grad_norm=config.max_grad_norm)
    num_contexts, num_envs = config.num_contexts, config.num_envs

    def init(key):
        key, task_key, local_key, global_key = jax.random.split(as_typed_key(key), 4)
        tasks = jax.vmap(sample_task)(jax.random.split(task_key, config.kmeans_samples))
        centres = meta.kmeans(jax.vmap(meta.task_features)(tasks), num_contexts)
        obs = jnp.zeros((1, *conditioned.observation_space(env_params).shape), jnp.float32)
        local_params = jax.vmap(local.init, in_axes=(0, None))(
            jax.random.split(local_key, num_contexts), obs)
        global_params = global_policy.init(global_key, obs)
        return TrainState(centres, local_params, jax.vmap(local_optimizer.init)(local_params),
                          global_params, global_optimizer.init(global_params),
                          jnp.full((num_contexts,), config.initial_lambda, jnp.float32), key)

    def pairwise_kl(params, all_params, obs, alive, index):
        """Mean over the other local policies ``j`` of ``E KL(π_i ‖ π_j)`` on ``π_i``'s states."""
        if num_contexts == 1:
            return jnp.zeros(())
        others = jax.vmap(lambda other: distillation_kl(
            local.apply(params, obs), local.apply(other, obs), alive))(
                jax.lax.stop_gradient(all_params))
        return (others.sum() - others[index]) / (num_contexts - 1)

    def update(state):
        key, task_key, local_key, global_key = jax.random.split(state.key, 4)
        region_keys = jax.random.split(task_key, (num_contexts, num_envs))
        regions = jnp.broadcast_to(jnp.arange(num_contexts)[:, None], (num_contexts, num_envs))
        tasks = jax.vmap(jax.vmap(lambda k, r: meta.sample_in_region(
            k, sample_task, state.centres, r, config.candidates)))(region_keys, regions) if (
                num_contexts > 1) else jax.vmap(jax.vmap(sample_task))(region_keys)
        episodes = meta.sample_episodes(local_key, local, state.local_params, env, tasks,
                                        num_envs, config.horizon, task_in_obs=True, per_env=True)
        global_log_probs = global_policy.apply(state.global_params, episodes.obs).log_prob(
            episodes.action)
        shaped = episodes.replace(reward=kl_augmented_rewards(
            episodes.reward, global_log_probs, state.lambdas[None, :, None]))

        def penalty(params, own, index):
            return config.pairwise_kl_coef * pairwise_kl(params, state.local_params, own.obs,
                                                         own.alive, index)

        local_params, local_opt_state = meta.policy_gradient_step(
            local, local_optimizer, state.local_params, state.local_opt_state, shaped,
            config.normalize_advantages, penalty)

        by_context = jax.tree.map(lambda x: jnp.moveaxis(x, 1, 0), episodes)  # [K, H, N]

        def mimic(params):
            return meta.mimic_kl(local, state.local_params, by_context.obs, global_policy,
                                 params, by_context.obs, by_context.alive)

        global_params, global_opt_state, kl = meta.distill_step(
            global_optimizer, state.global_params, state.global_opt_state, mimic,
            config.distill_steps)
        context_kl = jax.vmap(lambda params, obs, alive: distillation_kl(
            local.apply(params, obs), global_policy.apply(global_params, obs), alive))(
                state.local_params, by_context.obs, by_context.alive)
        lambdas = meta.adaptive_coefficient(state.lambdas, context_kl, config.target_kl)
        pairwise = jax.vmap(pairwise_kl, in_axes=(0, None, 0, 0, 0))(
            state.local_params, state.local_params, by_context.obs, by_context.alive,
            jnp.arange(num_contexts))
        broadcast = jax.tree.map(lambda leaf: jnp.broadcast_to(leaf, (num_contexts,
                                                                      *leaf.shape)),
                                 global_params)
        global_episodes = meta.sample_episodes(global_key, global_policy, broadcast, env, tasks,
                                               num_envs, config.horizon, task_in_obs=True,
                                               per_env=True)
        local_return = episodes.returns.mean()
        metrics = {"local_return": local_return, "episode_return": local_return,
                   "global_return": global_episodes.returns.mean(), "distill_kl": kl,
                   "pairwise_kl": pairwise.mean(), "lambda": state.lambdas.mean()}
        return TrainState(state.centres, local_params, local_opt_state, global_params,
                          global_opt_state, lambdas, key), metrics

    def act(state, obs, key, deterministic=False):
        distribution = global_policy.apply(state.global_params, obs)
        return distribution.mode() if deterministic else distribution.sample(seed=key)

    return Agent(init=init, update=update, act=act,
                 num_updates=config.total_timesteps // config.steps_per_update,
                 steps_per_update=config.steps_per_update)


def make_train(config: Config, env: Any, env_params: Any):
    """``train(key) -> (train_state, metrics)``: ``init`` and a scan of ``update``."""
    return train_from_agent(make_agent(config, env, env_params))
