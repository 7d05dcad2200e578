"""RL² (Duan et al., 2016; Wang et al., 2016): meta-reinforcement learning with a recurrent
policy trained by PPO across trials of a task family.

Course notes (CS 285, §15 "Transfer & Multi-task Learning", multi-task meta-learning:
"RNN-based meta-learning"): the "fast" learner is the recurrent policy's hidden state, the
"slow" one its weights. A trial is ``episodes_per_trial`` episodes on one task drawn at its
start (``envs.meta.TrialEnv``); the policy reads ``[o_t, a_{t-1}, r_{t-1}, d_{t-1}]`` and keeps
its hidden state across the trial's episodes (it is reset only at trial ends), and PPO
(``training.proximal``) maximises the trial's return::

    max_θ E_{task} E_{τ ~ π_θ, trial} [ Σ_{t < trial length} γ^t r_t ]

so the policy learns to explore in early episodes and exploit later ones. ``recurrent="none"``
trains the same agent with a feed-forward policy (same inputs, no memory): the baseline that
cannot adapt to the task. Task families: envs with ``sample_task`` (``KArmedBandit-v0``,
``PointNav-v0``). ``trial_regret`` measures a bandit policy's regret curve.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp

from jaxrl.envs.meta import TrialEnv, is_task_family
from jaxrl.envs.spaces import Box
from jaxrl.envs.wrappers import RescaleAction
from jaxrl.rollout import rollout_with_carry
from jaxrl.training import on_policy, proximal
from jaxrl.training.agent import Agent, policy_fn, train_from_agent
from jaxrl.training.config import check_config, hyper, static

__all__ = ["Config", "TrainState", "make_agent", "make_train", "trial_regret", "wrap_env"]

TrainState = on_policy.TrainState


class Config(proximal.ProximalConfig):
    """RL² hyperparameters: PPO's (training.proximal) plus the trial. Static fields decide
    shapes.

    Defaults are sized for 2-armed Bernoulli bandits with 10-pull trials: 64 envs × one trial
    per rollout, a GRU of 64 units, 4 epochs of 4 minibatches of whole env sequences.

    Long trials (e.g. 100 pulls) need the rewards scaled (--normalize-reward): the value targets
    grow with the trial's return, and without scaling their squared error dominates the
    gradient that the policy and value heads share through the cell (the global-norm clip then
    shrinks the policy gradient's part of each step), so the policy stays at chance
    (benchmarks/RESULTS.md).
    """

    episodes_per_trial: int = static(10, ">= 1")
    """episodes of one task per trial (the hidden state is reset only between trials)"""
    recurrent: str = static("gru", ("none", "gru", "lstm"))
    """the policy's cell: gru or lstm; none trains a feed-forward baseline (no memory)"""
    total_timesteps: int = static(400_000, ">= 1")
    num_envs: int = static(64, ">= 1")
    num_steps: int = static(10, ">= 1")
    num_minibatches: int = static(4, ">= 1")
    update_epochs: int = static(4, ">= 1")
    hidden_sizes: tuple[int, ...] = static((64,))
    learning_rate: float = hyper(3e-3, "> 0")
    ent_coef: float = hyper(0.01, ">= 0")
    gamma: float = hyper(0.99, "[0, 1]")
    gae_lambda: float = hyper(0.95, "[0, 1]")

    SUPPORTS_MEMORY = True


class _UnitBoxActions(RescaleAction):
    """``RescaleAction`` to ``[-1, 1]`` where the env's actions are a ``Box`` (decided per
    params, at trace time); discrete actions pass through."""

    def action_space(self, params: Any) -> Any:
        space = self.env.action_space(params)
        return super().action_space(params) if isinstance(space, Box) else space

    def step(self, key: jax.Array, state: Any, action: jax.Array, params: Any):
        if isinstance(self.env.action_space(params), Box):
            return super().step(key, state, action, params)
        return self.env.step(key, state, action, params)


def wrap_env(config: Config, env: Any) -> TrialEnv:
    """The env the agent acts in: ``TrialEnv(env, episodes_per_trial)``, continuous actions
    rescaled to ``[-1, 1]`` (``RescaleAction``) so that the Gaussian policy's unit initial std
    spans the action range and the previous action enters the input at unit scale (PointNav's
    actions are displacements in ``[-0.1, 0.1]²``: unscaled, nearly every initial action would be
    clipped to a corner). Evaluate a trained RL² policy there (its inputs are the trial's)."""
    if not is_task_family(env):
        raise TypeError(f"rl2 trains on a task family (an env with sample_task(key, "
                        f"env_params)); {env!r} is not one. Task families: KArmedBandit-v0, "
                        f"PointNav-v0")
    return TrialEnv(_UnitBoxActions(env), config.episodes_per_trial)


def make_agent(config: Config, env: Any, env_params: Any) -> Agent:
    """RL²'s ``init`` / ``update`` / ``act`` on trials of the task family ``env``: PPO with a
    recurrent actor-critic on ``TrialEnv(env, episodes_per_trial)``. ``act`` takes the trial's
    inputs (``TrialEnv``'s observations) and the carry of the trial."""
    check_config(config)
    parts = on_policy.setup(config, wrap_env(config, env), env_params, "RL²")
    # Evaluation runs whole trials: episodes_per_trial episodes of the env's length.
    parts = parts._replace(eval_steps=config.episodes_per_trial * (parts.eval_steps - 1) + 1)
    return proximal.make_agent(config, parts, env_params)


def make_train(config: Config, env: Any, env_params: Any):
    """``train(key) -> (TrainState, metrics)``: the whole RL² run as one pure function;
    ``episode_return`` is the return of a trial."""
    return train_from_agent(make_agent(config, env, env_params))


def trial_regret(agent: Agent, state: Any, env: Any, env_params: Any, key: jax.Array,
                 episodes_per_trial: int, num_trials: int,
                 deterministic: bool = False) -> jax.Array:
    """Mean cumulative regret ``[episodes_per_trial]`` of ``agent``'s policy on
    ``num_trials`` trials of single-step episodes (bandits: ``info["regret"]``, the expected
    regret ``max_b μ_b - μ_a`` of each pull), one fresh task per trial."""
    trials = TrialEnv(env, episodes_per_trial)
    reset_key, rollout_key = jax.random.split(key)
    obs, env_state = jax.vmap(trials.reset, in_axes=(0, None))(
        jax.random.split(reset_key, num_trials), env_params)
    act, initial_carry = policy_fn(agent, state, deterministic)

    def policy(key, obs, env_state, carry):
        action, carry = act(key, obs, env_state, carry)
        return action, {}, carry

    carry = initial_carry(num_trials)
    *_, transitions = rollout_with_carry(rollout_key, trials, env_params, env_state, obs, carry,
                                         policy, episodes_per_trial, carry, unroll=1)
    return jnp.cumsum(transitions.info["regret"].mean(axis=1))
