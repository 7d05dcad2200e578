"""Gradient-based meta-RL family code: task families, the policy, episodes, inner-loop
adaptation by ``jax.grad`` through the update, and the per-task meta-gradient of MAML,
first-order MAML and Reptile.

Course notes §22 "Transfer Learning and Meta-Learning" ("Gradient-based meta RL"): with
``J_i(θ)`` the expected return of ``π_θ`` on task ``i`` and one inner step
``θ'_i = θ + α ∇_θ J_i(θ)`` (``K`` steps: repeat), MAML ascends

    Σ_i ∇_θ J_i(θ'_i) = Σ_i (I + α ∇²J_i(θ)) ∇J_i(θ'_i).

Each ``∇J`` is estimated from ``num_envs`` sampled episodes of ``horizon`` steps with the DiCE
objective (``losses.meta``), so differentiating the inner update a second time includes the
sampling term of the inner policy gradient. Variants (``meta_gradient``):

- ``"maml"``: the second-order meta-gradient above, by ``jax.grad`` through the ``K`` updates;
- ``"fomaml"``: first-order MAML, ``∇J_i(θ'_i)`` applied to ``θ`` (the Jacobian ``∂θ'/∂θ``
  taken as ``I``);
- ``"reptile"`` (Nichol et al., 2018): ``K + 1`` plain inner steps, direction ``θ'_i - θ``.

A task family is a batch of env params (gymnax params are pytrees, so tasks vmap like seeds):
envs with ``sample_task`` (``PointNav-v0``, ``KArmedBandit-v0``) draw their own; for gymnax
envs without one, ``TASK_SAMPLERS`` randomises physical params (``Pendulum-v1``: mass ``m`` and
length ``l`` uniform in ``[0.5, 1.5]``, domain randomisation). Brax envs are not supported:
their system is not a pytree of task parameters that this module can resample.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from functools import partial
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
from flax import struct

from jaxrl.envs.core import select_tree
from jaxrl.envs.meta import PendulumStarts, StartParams, is_task_family
from jaxrl.envs.spaces import Box, Discrete
from jaxrl.envs.wrappers import ClipAction
from jaxrl.losses.meta import dice_objective, distillation_kl, leave_one_out_mean
from jaxrl.models.actor_critic import make_torso
from jaxrl.models.heads import CategoricalHead, GaussianHead
from jaxrl.rollout import rollout
from jaxrl.training.config import ACTIVATIONS, BaseConfig, hyper, static

__all__ = ["RUN_LENGTH_FIELDS", "TASK_SAMPLERS", "VARIANTS", "Episodes", "MimicConfig",
           "PendulumStarts", "Policy", "StartParams", "TaskEnv", "TaskState", "Teachers", "adapt",
           "adaptation_returns", "adaptive_coefficient", "check_horizon", "check_num_envs",
           "check_task_shapes", "distill_step", "episode_objective", "explore", "fixed_tasks",
           "kmeans", "load_teachers", "make_policy", "meta_gradient", "mimic_kl", "mimic_nll",
           "policy_gradient_step", "sample_episodes", "sample_in_region", "task_features",
           "task_sampler", "with_task_features"]

VARIANTS = ("maml", "fomaml", "reptile")

TaskSampler = Callable[[jax.Array], Any]
"""``sample(key) -> env_params`` of one task."""


def _pendulum_task(key: jax.Array, params: Any) -> Any:
    """Pendulum-v1 with mass and length uniform in ``[0.5, 1.5]`` (defaults 1, 1)."""
    mass_key, length_key = jax.random.split(key)
    return params.replace(m=jax.random.uniform(mass_key, (), minval=0.5, maxval=1.5),
                          l=jax.random.uniform(length_key, (), minval=0.5, maxval=1.5))


TASK_SAMPLERS: dict[str, Callable[[jax.Array, Any], Any]] = {"Pendulum-v1": _pendulum_task}
"""``env id -> sample(key, env_params) -> env_params``: task families made from gymnax envs
by randomising their params."""


def _env_id(env: Any) -> str:
    return str(getattr(env, "env_id", None) or getattr(env, "name", None) or repr(env))


def check_task_shapes(env_params: Any, task: Any, what: str = "a sampled task") -> None:
    """``ValueError`` unless ``task`` has ``env_params``' structure and leaf shapes (tasks are
    vmapped, so every task of a family must share them)."""
    expected, treedef = jax.tree.flatten(env_params)
    got, task_treedef = jax.tree.flatten(task)
    if treedef != task_treedef:
        raise ValueError(f"{what} has env params of another structure than the env's: "
                         f"{task_treedef} vs {treedef}")
    for path_leaf, want, have in zip(jax.tree_util.tree_leaves_with_path(env_params), expected,
                                     got, strict=True):
        if jnp.shape(want) != jnp.shape(have):
            name = jax.tree_util.keystr(path_leaf[0])
            raise ValueError(f"task params must share shapes: {what}'s {name} has shape "
                             f"{jnp.shape(have)}, the env's {jnp.shape(want)}")


def check_num_envs(num_envs: int) -> None:
    """``ValueError`` unless each batch holds 2 episodes at least (the leave-one-out baseline)."""
    if num_envs < 2:
        raise ValueError(f"num_envs must be >= 2 (the leave-one-out baseline needs two "
                         f"episodes per batch), got {num_envs}")



class MimicConfig(BaseConfig):
    """The fields of an agent that trains several policies by policy gradient, one per task or
    context (distill's teachers, dnc's local policies), and one policy to mimic them."""

    total_timesteps: int = static(240_000, ">= 1")
    """env steps of the per-task policies in all (each update takes steps_per_update)"""
    num_envs: int = static(10, ">= 1")
    """episodes per task per update (the baseline needs 2); the mimicking policy runs as many"""
    horizon: int = static(20, ">= 1")
    """steps of each episode (at most the env's time limit)"""
    learning_rate: float = hyper(3e-3, "> 0")
    """per-task policies' Adam step size"""
    distill_steps: int = static(4, ">= 1")
    """mimicking policy's steps per update, each on all the per-task policies' states of that
    update"""
    max_grad_norm: float = hyper(1.0, "> 0")
    """each gradient's global norm is clipped to this"""
    normalize_advantages: bool = static(True)
    """scale each batch's rewards by the std of its advantages (a reward-scale-free step)"""
    hidden_sizes: tuple[int, ...] = static((32, 32))
    """per-task policy MLP widths"""
    activation: str = static("tanh", ACTIVATIONS)
    """MLP activation"""

    def check_one_update(self, policies: str, count: int) -> None:
        """``ValueError`` unless each batch holds two episodes and ``total_timesteps`` covers
        one update of ``count`` policies (``policies`` names that count in the message)."""
        check_num_envs(self.num_envs)
        steps = count * self.num_envs * self.horizon
        if self.total_timesteps < steps:
            raise ValueError(f"total_timesteps = {self.total_timesteps} is smaller than one "
                             f"update ({policies} · num_envs · horizon = {steps}); raise "
                             "total_timesteps")


def check_horizon(horizon: int, env_params: Any) -> None:
    """``ValueError`` where episodes of ``horizon`` steps exceed the env's time limit."""
    limit = getattr(env_params, "max_steps_in_episode", None)
    if isinstance(limit, int) and horizon > limit:
        raise ValueError(f"horizon = {horizon} exceeds the env's time limit "
                         f"max_steps_in_episode = {limit}; lower horizon")


def task_sampler(env: Any, env_params: Any) -> TaskSampler:
    """The task family of ``env``: its ``sample_task``, else ``TASK_SAMPLERS[env id]``;
    ``ValueError`` naming the supported envs otherwise (and saying Brax is not supported)."""
    if is_task_family(env):
        def sample(key):
            return env.sample_task(key, env_params)
    elif _env_id(env) in TASK_SAMPLERS:
        randomise = TASK_SAMPLERS[_env_id(env)]

        def sample(key):
            return randomise(key, env_params)
    else:
        brax = " (Brax envs are not supported: domain randomisation here resamples gymnax env " \
               "params)" if hasattr(env, "brax_env") else ""
        raise ValueError(f"{_env_id(env)} is not a task family{brax}; meta-learning agents "
                         f"train on PointNav-v0, KArmedBandit-v0 (their own sample_task) or "
                         f"{', '.join(TASK_SAMPLERS)} (randomised params)")
    check_task_shapes(env_params, jax.eval_shape(sample, jax.random.key(0)))
    return sample


def fixed_tasks(env_params: Any, tasks: Sequence[Any]) -> TaskSampler:
    """A task family of the given env params (e.g. held-out tasks), drawn uniformly;
    ``ValueError`` when they do not share the env's shapes."""
    if not tasks:
        raise ValueError("fixed_tasks needs at least one task")
    for i, task in enumerate(tasks):
        check_task_shapes(env_params, task, f"task {i}")
    stacked = jax.tree.map(lambda *leaves: jnp.stack([jnp.asarray(x) for x in leaves]), *tasks)

    def sample(key):
        index = jax.random.randint(key, (), 0, len(tasks))
        return jax.tree.map(lambda leaf: leaf[index], stacked)

    return sample


def task_features(task: Any) -> jax.Array:
    """The task's numeric env params, raveled into one float vector (what a task-conditioned
    policy reads; constant params are constant inputs)."""
    leaves = [jnp.asarray(leaf, jnp.float32).reshape(-1) for leaf in jax.tree.leaves(task)]
    return jnp.concatenate(leaves) if leaves else jnp.zeros((0,), jnp.float32)


class Policy(nn.Module):
    """``π(·|s) = head(torso(s))``: a categorical or diagonal-Gaussian distribution."""

    torso: nn.Module
    head: nn.Module

    def __call__(self, obs: jax.Array):
        return self.head(self.torso(obs))


def make_policy(env: Any, env_params: Any, hidden_sizes: Sequence[int],
                activation: str) -> Policy:
    """An MLP policy; a Gaussian's initial std is a quarter of the action box's width, so early
    episodes explore the whole box without saturating it."""
    space = env.action_space(env_params)
    if isinstance(space, Discrete):
        head: nn.Module = CategoricalHead(space.n)
    elif isinstance(space, Box) and len(space.shape) == 1:
        width = np.mean(np.asarray(space.high, np.float32) - np.asarray(space.low, np.float32))
        head = GaussianHead(space.shape[0], init_log_std=float(np.log(width / 4)))
    else:
        raise TypeError(f"meta-learning agents need Discrete or vector Box actions, got {space}")
    return Policy(make_torso(env.observation_space(env_params), hidden_sizes, activation), head)


class TaskState(struct.PyTreeNode):
    """``TaskEnv``'s state: the inner env's state and its episode's task."""

    env_state: Any
    task: Any
    """the env params of this episode's task"""


class TaskEnv:
    """A task family as one env whose state carries the task: ``reset(key, env_params)`` draws
    a task with ``sample_task(key, env_params)``, ``step`` runs the env on the state's task (a
    fresh task at each episode end; the same one again where ``sample_task`` is None). The
    observation is the env's (flattened), followed by ``task_features`` of the task when
    ``task_in_obs``. Each env of a batch so holds its own task in one rollout."""

    def __init__(self, env: Any, sample_task: Callable[[jax.Array, Any], Any] | None,
                 task_in_obs: bool):
        self.env = env
        self.sample_task = sample_task
        self.task_in_obs = task_in_obs

    def __repr__(self) -> str:
        return f"TaskEnv({self.env!r}, task_in_obs={self.task_in_obs})"

    def _obs(self, obs: jax.Array, task: Any) -> jax.Array:
        obs = jnp.asarray(obs, jnp.float32).reshape(-1)
        return jnp.concatenate([obs, task_features(task)]) if self.task_in_obs else obs

    def reset_to(self, key: jax.Array, task: Any) -> tuple[jax.Array, TaskState]:
        """A fresh episode on ``task``."""
        obs, env_state = self.env.reset(key, task)
        return self._obs(obs, task), TaskState(env_state, task)

    def reset(self, key: jax.Array, params: Any) -> tuple[jax.Array, TaskState]:
        task_key, reset_key = jax.random.split(key)
        return self.reset_to(reset_key, self.sample_task(task_key, params))

    def step(self, key: jax.Array, state: TaskState, action: jax.Array, params: Any):
        step_key, reset_key = jax.random.split(key)
        obs, env_state, reward, terminated, truncated, info = self.env.step(
            step_key, state.env_state, action, state.task)
        info = dict(info)
        info["final_obs"] = self._obs(info["final_obs"], state.task)
        fresh_obs, fresh_state = (self.reset_to(reset_key, state.task) if self.sample_task is None
                                  else self.reset(reset_key, params))
        done = terminated | truncated
        next_state = select_tree(done, fresh_state, TaskState(env_state, state.task))
        next_obs = jnp.where(done, fresh_obs, self._obs(obs, state.task))
        return next_obs, next_state, reward, terminated, truncated, info

    def max_truncations(self, params: Any, num_steps: int) -> int | None:
        """The inner env's bound (every task keeps the family's time limit)."""
        bound = getattr(self.env, "max_truncations", None)
        return bound(params, num_steps) if bound is not None else None

    def observation_space(self, params: Any) -> Box:
        size = jax.eval_shape(lambda: self.reset_to(jax.random.key(0), params)[0]).shape
        return Box(-jnp.inf, jnp.inf, size, jnp.float32)

    def action_space(self, params: Any) -> Any:
        return self.env.action_space(params)


class Episodes(struct.PyTreeNode):
    """``num_envs`` episodes of ``horizon`` steps from reset, time-major ``[H, N, ...]``;
    ``alive`` is 0 after an episode terminated (what follows the env's reset is ignored).
    ``sample_episodes`` returns them for a batch of tasks, ``[H, M, N, ...]``."""

    obs: jax.Array
    action: jax.Array
    reward: jax.Array
    alive: jax.Array

    @property
    def returns(self) -> jax.Array:
        """Undiscounted return of each episode ``[..., N]``."""
        return (self.reward * self.alive).sum(0)


def sample_episodes(key: jax.Array, policy: Policy | None, params: Any, env: Any, tasks: Any,
                    num_envs: int, horizon: int, task_in_obs: bool = False,
                    per_env: bool = False,
                    act: Callable[[Any, jax.Array, jax.Array], jax.Array] | None = None
                    ) -> Episodes:
    """Roll out ``π_{params_i}`` on task ``i`` for ``M`` tasks at once (``params`` and ``tasks``
    stacked ``[M, ...]``; ``per_env``: ``tasks [M, N, ...]``, one per episode of policy ``i``):
    ``Episodes [H, M, N]``. One rollout of ``M · N`` envs, each holding its task in its state
    (``TaskEnv``, the task's features in the observation where ``task_in_obs``); no gradient
    flows through the sampling. ``act(params_i, obs [N, ...], key) -> actions`` replaces
    sampling ``policy`` where given (saved runs' policies, ``load_teachers``)."""
    num_tasks = jax.tree.leaves(params)[0].shape[0]
    if per_env:
        env_tasks = jax.tree.map(lambda leaf: leaf.reshape(-1, *leaf.shape[2:]), tasks)
    else:
        env_tasks = jax.tree.map(lambda leaf: jnp.repeat(leaf, num_envs, axis=0), tasks)
    first_task = jax.tree.map(lambda leaf: leaf[0], env_tasks)
    task_env = TaskEnv(ClipAction(env) if isinstance(env.action_space(first_task), Box) else env,
                       None, task_in_obs=task_in_obs)
    params = jax.lax.stop_gradient(params)
    reset_key, run_key = jax.random.split(key)
    obs, env_state = jax.vmap(task_env.reset_to)(
        jax.random.split(reset_key, num_tasks * num_envs), env_tasks)

    def sample(p, o, k):
        return policy.apply(p, o).sample(seed=k)

    def act_all(key, obs):
        per_task = obs.reshape(num_tasks, num_envs, *obs.shape[1:])
        actions = jax.vmap(sample if act is None else act)(
            params, per_task, jax.random.split(key, num_tasks))
        return actions.reshape(num_tasks * num_envs, *actions.shape[2:]), {}

    _, _, steps = rollout(run_key, task_env, None, env_state, obs, act_all, horizon)
    ended = steps.terminated.astype(jnp.float32)
    alive = jnp.cumprod(jnp.concatenate([jnp.ones_like(ended[:1]), 1.0 - ended[:-1]]), axis=0)

    def per_task(x):
        return x.reshape(horizon, num_tasks, num_envs, *x.shape[2:])

    return Episodes(per_task(steps.obs), per_task(steps.action), per_task(steps.reward),
                    per_task(alive))


def episode_objective(policy: Policy, params: Any, episodes: Episodes,
                      normalize: bool = True) -> jax.Array:
    """The DiCE estimate of ``J(θ) / H`` (``losses.dice_objective``; the return per step, so
    the step size does not scale with the horizon ``H``), averaged over the episodes, with the
    leave-one-out baseline ``b_t`` (the other episodes' mean reward-to-go at ``t``).

    ``normalize`` divides rewards and baselines by the std of the advantages ``G_t - b_t``
    (a constant): a step size that does not depend on the reward scale.
    """
    log_probs = policy.apply(params, episodes.obs).log_prob(episodes.action) * episodes.alive
    rewards = episodes.reward * episodes.alive
    reward_to_go = jnp.flip(jnp.cumsum(jnp.flip(rewards, 0), 0), 0)
    baselines = leave_one_out_mean(reward_to_go, axis=1) * episodes.alive
    if normalize:
        advantages = reward_to_go - baselines
        scale = jax.lax.stop_gradient(jnp.sqrt(
            (advantages ** 2 * episodes.alive).sum() / episodes.alive.sum()) + 1e-8)
        rewards, baselines = rewards / scale, baselines / scale
    return dice_objective(log_probs, rewards, baselines).mean() / episodes.reward.shape[0]


def adapt(objective: Callable[[Any, Any], jax.Array], params: Any, batches: Sequence[Any],
          inner_lr: float | jax.Array, first_order: bool = False) -> Any:
    """``θ_{k+1} = θ_k + α ∇_θ Ĵ(θ_k; batch_k)`` for each batch: ``θ_K``. ``objective(params,
    batch) -> Ĵ``. Differentiable in ``params`` (second order); ``first_order`` stops the
    gradient of each inner step, so ``∂θ_K/∂θ = I``. ``ValueError`` where a leaf of ``params``
    is not floating point: such an inner learner has no gradient to step along or through."""
    fixed = [jax.tree_util.keystr(path) for path, leaf in
             jax.tree_util.tree_leaves_with_path(params)
             if not jnp.issubdtype(jnp.result_type(leaf), jnp.inexact)]
    if fixed:
        raise ValueError(f"the inner learner must be differentiable in its parameters, but "
                         f"{', '.join(fixed)} {'is' if len(fixed) == 1 else 'are'} not floating "
                         "point; give the meta-learner real-valued parameters")
    for batch in batches:
        grads = jax.grad(objective)(params, batch)
        if first_order:
            grads = jax.lax.stop_gradient(grads)
        params = jax.tree.map(lambda p, g: p + inner_lr * g, params, grads)
    return params


def explore(policy: Policy, params: Any, key: jax.Array, env: Any, tasks: Any, *, steps: int,
            inner_lr: float | jax.Array, num_envs: int, horizon: int,
            normalize: bool = True) -> tuple[list[Episodes], Any]:
    """For each of the ``M`` stacked ``tasks``: sample episodes with ``θ_0 = params``, take an
    inner step on them, sample with ``θ_1``, … ``steps`` times: ``([Episodes [H, M, N] of θ_0,
    …, θ_steps], θ_steps [M, ...])``. No gradient flows here: the meta-gradient re-runs the inner
    steps on these fixed episodes (``adapt``), so it never differentiates through the env."""
    num_tasks = jax.tree.leaves(tasks)[0].shape[0]
    params = jax.tree.map(lambda leaf: jnp.broadcast_to(leaf, (num_tasks, *leaf.shape)),
                          jax.lax.stop_gradient(params))
    objective = partial(episode_objective, policy, normalize=normalize)
    batches = []
    for step_key in jax.random.split(key, steps + 1):
        batches.append(sample_episodes(step_key, policy, params, env, tasks, num_envs, horizon))
        if len(batches) <= steps:
            params = jax.vmap(lambda p, episodes: adapt(objective, p, [episodes], inner_lr,
                                                        first_order=True),
                              in_axes=(0, 1))(params, batches[-1])
    return batches, params


def meta_gradient(policy: Policy, params: Any, key: jax.Array, env: Any, tasks: Any, *,
                  variant: str, inner_steps: int, inner_lr: float | jax.Array, num_envs: int,
                  horizon: int, normalize: bool = True) -> tuple[Any, jax.Array]:
    """The variant's meta-ascent direction averaged over the ``M`` stacked ``tasks`` (module
    docstring) and the mean episode return of each task after ``k = 0..inner_steps`` inner
    steps ``[M, inner_steps + 1]`` (``k = 0``: pre-adaptation)."""
    objective = partial(episode_objective, policy, normalize=normalize)
    batches, adapted = explore(policy, params, key, env, tasks, steps=inner_steps,
                               inner_lr=inner_lr, num_envs=num_envs, horizon=horizon,
                               normalize=normalize)
    returns = jnp.stack([episodes.returns.mean(-1) for episodes in batches], axis=1)
    if variant == "reptile":
        adapted = jax.vmap(lambda p, episodes: adapt(objective, p, [episodes], inner_lr, True),
                           in_axes=(0, 1))(adapted, batches[-1])
        return jax.tree.map(lambda a, p: (a - p).mean(0), adapted, params), returns

    def task_objective(params, task_batches):
        adapted = adapt(objective, params, task_batches[:-1], inner_lr, variant == "fomaml")
        return objective(adapted, task_batches[-1])

    grads = jax.vmap(jax.grad(task_objective), in_axes=(None, 1))(params, batches)
    return jax.tree.map(lambda g: g.mean(0), grads), returns


def adaptation_returns(policy: Policy, params: Any, key: jax.Array, env: Any, tasks: Any, *,
                       steps: int, inner_lr: float | jax.Array, num_envs: int, horizon: int,
                       normalize: bool = True) -> jax.Array:
    """Mean episode return on each of the stacked ``tasks`` after ``k = 0..steps``
    policy-gradient steps from ``params`` ``[M, steps + 1]``: adaptation curves."""
    batches, _ = explore(policy, params, key, env, tasks, steps=steps, inner_lr=inner_lr,
                         num_envs=num_envs, horizon=horizon, normalize=normalize)
    return jnp.stack([episodes.returns.mean(-1) for episodes in batches], axis=1)


# --- distillation and Divide-and-Conquer RL: several policies and one that mimics them ------

def policy_gradient_step(policy: Policy, optimizer: Any, params: Any, opt_state: Any,
                         episodes: Episodes, normalize: bool = True,
                         penalty: Callable[[Any, Episodes, jax.Array], jax.Array] | None = None
                         ) -> tuple[Any, Any]:
    """One optimiser step of each of ``M`` policies (``params``, ``opt_state`` stacked
    ``[M, ...]``) ascending its own ``episode_objective`` on its episodes ``[H, M, N]``, minus
    ``penalty(params_i, episodes_i, i)`` where given (DnC's KL between local policies)."""
    def step(params, opt_state, episodes, index):
        def loss(params):
            value = -episode_objective(policy, params, episodes, normalize)
            return value if penalty is None else value + penalty(params, episodes, index)

        updates, opt_state = optimizer.update(jax.grad(loss)(params), opt_state, params)
        return jax.tree.map(jnp.add, params, updates), opt_state

    num_policies = jax.tree.leaves(params)[0].shape[0]
    return jax.vmap(step, in_axes=(0, 0, 1, 0))(params, opt_state, episodes,
                                                 jnp.arange(num_policies))


RUN_LENGTH_FIELDS = ("total_timesteps", "total_gradient_steps", "log_frequency", "eval_episodes")
"""Config fields in which teacher runs may differ (they do not change how a policy acts)."""


class Teachers(struct.PyTreeNode):
    """Fixed teachers from saved runs (``load_teachers``): ``act(state_i, obs, key)`` is the
    runs' stochastic policy, ``states`` and ``tasks`` (each run's env params) stacked
    ``[M, ...]``."""

    tasks: Any
    states: Any
    act: Callable[[Any, jax.Array, jax.Array], jax.Array] = struct.field(pytree_node=False)


def load_teachers(run_dirs: Sequence[str], env: Any, env_params: Any, horizon: int) -> Teachers:
    """The policies of saved jaxrl runs (each run's first seed, newest checkpoint) as fixed
    teachers, one per run, each on its run's env params (its task: e.g. ppo runs of
    ``PointNav-v0`` with ``--env-arg goal=...``). ``ValueError`` naming the ``--teachers`` run
    that is missing, trained on another env, acts with memory or on the env state, has env
    params of other shapes or a time limit under ``horizon``, or whose algorithm or network
    differs from the first run's (``RUN_LENGTH_FIELDS`` may differ)."""
    from pathlib import Path

    from jaxrl import registry
    from jaxrl.checkpoint import CheckpointError
    from jaxrl.policy import load_policy
    from jaxrl.run_dir import read_run

    if not run_dirs:
        raise ValueError("--teachers needs at least one run directory")
    here = _env_id(env)
    policies = []
    for run_dir in run_dirs:
        flag = f"--teachers {run_dir}"
        if not Path(run_dir).is_dir():
            raise ValueError(f"{flag}: no run directory there")
        try:
            trained_on = read_run(run_dir).env_id
            if trained_on != here:
                raise ValueError(f"that run trained on {trained_on!r}, not {here!r}; pass "
                                 f"--env {trained_on} or runs of {here}")
            policy = load_policy(run_dir)
        except (CheckpointError, OSError, ValueError) as error:
            raise ValueError(f"{flag}: {error}") from None
        wrapped = getattr(registry.get(policy.algo).load(), "wrap_env", None) is not None
        if policy.agent.initial_carry is not None or policy.agent.acts_on_env_state or wrapped:
            raise ValueError(f"{flag}: a {policy.algo} run, whose policy has memory, reads the "
                             f"env state or acts in a wrapped env; teachers are memoryless "
                             f"policies of the env's observation (e.g. ppo runs)")
        check_task_shapes(env_params, policy.env_params, flag)
        limit = getattr(policy.env_params, "max_steps_in_episode", None)
        if isinstance(limit, int) and horizon > limit:
            raise ValueError(f"{flag}: horizon = {horizon} exceeds that run's time limit "
                             f"max_steps_in_episode = {limit}; lower horizon")
        policies.append(policy)
    first = policies[0]
    for run_dir, policy in zip(run_dirs[1:], policies[1:], strict=True):
        mine, theirs = _static_fields(first.config), _static_fields(policy.config)
        differ = sorted(name for name in set(mine) | set(theirs) if name not in
                        RUN_LENGTH_FIELDS and mine.get(name) != theirs.get(name))
        shapes = [jax.tree.map(jnp.shape, p.params) for p in (first, policy)]
        if policy.algo != first.algo or differ or shapes[0] != shapes[1]:
            what = (f"{policy.algo} vs {first.algo}" if policy.algo != first.algo else
                    ", ".join(f"{name} {theirs.get(name)} vs {mine.get(name)}"
                              for name in differ) or "parameter shapes")
            raise ValueError(f"--teachers {run_dir} and {run_dirs[0]}: incompatible networks "
                             f"({what}); teachers must be runs of one algorithm and config")
    shape = env.observation_space(env_params).shape
    agent_act = first.act

    def act(state, obs, key):
        return agent_act(state, obs.reshape(obs.shape[0], *shape), key, False)

    def stack(*leaves):
        return jnp.stack([jnp.asarray(leaf) for leaf in leaves])

    return Teachers(jax.tree.map(stack, *[p.env_params for p in policies]),
                    jax.tree.map(stack, *[p.params for p in policies]), act)


def _static_fields(config: Any) -> dict[str, Any]:
    """A config's shape-deciding (static) fields: what must agree for one ``act`` to serve."""
    return {field.name: getattr(config, field.name) for field in dataclasses.fields(config)
            if not field.metadata.get("pytree_node", True)}


def mimic_nll(student: Policy, student_params: Any, student_obs: jax.Array,
              actions: jax.Array, weights: jax.Array) -> jax.Array:
    """``-E[log π_S(a | s)]`` over teachers' states and sampled actions ``a ~ π_i(·|s)``
    (``[M, H, N, ...]``, weighted by ``weights``): in expectation ``KL(π_i ‖ π_S) + H(π_i)``,
    the KL's gradient, for teachers whose distribution is not at hand (saved runs of any
    algorithm act by sampling)."""
    log_probs = student.apply(student_params, student_obs).log_prob(actions)
    return -(log_probs * weights).sum() / jnp.maximum(weights.sum(), 1.0)


def with_task_features(obs: jax.Array, tasks: Any, per_env: bool = False) -> jax.Array:
    """Observations ``[H, M, N, d]`` of tasks ``[M]`` (``per_env``: ``[M, N]``) followed by
    each task's ``task_features``: what ``TaskEnv(task_in_obs=True)`` shows a policy."""
    features = jax.vmap(jax.vmap(task_features))(tasks) if per_env else jax.vmap(
        task_features)(tasks)[:, None]
    features = jnp.broadcast_to(features, (*obs.shape[:-1], features.shape[-1]))
    return jnp.concatenate([obs, features], axis=-1)


def mimic_kl(teacher: Policy, teacher_params: Any, teacher_obs: jax.Array, student: Policy,
             student_params: Any, student_obs: jax.Array, weights: jax.Array) -> jax.Array:
    """``losses.meta.distillation_kl`` of ``M`` teachers (``teacher_params [M, ...]``, their
    inputs ``[M, ...]``) to one student (its inputs ``[M, ...]``: the same states, as the
    student sees them), over all ``M`` teachers' states weighted by ``weights [M, ...]``."""
    def weighted_sum(params, obs, own_obs, weight):
        kl = distillation_kl(teacher.apply(params, obs), student.apply(student_params, own_obs),
                             weight)
        return kl * jnp.maximum(weight.sum(), 1.0)

    sums = jax.vmap(weighted_sum)(teacher_params, teacher_obs, student_obs, weights)
    return sums.sum() / jnp.maximum(weights.sum(), 1.0)


def distill_step(optimizer: Any, params: Any, opt_state: Any,
                 loss: Callable[[Any], jax.Array], steps: int) -> tuple[Any, Any, jax.Array]:
    """``steps`` full-batch optimiser steps on ``loss(params)`` (a student's ``mimic_kl``):
    ``(params, opt_state, the loss before the first step)``."""
    def step(carry, _):
        params, opt_state = carry
        value, grads = jax.value_and_grad(loss)(params)
        updates, opt_state = optimizer.update(grads, opt_state, params)
        return (jax.tree.map(jnp.add, params, updates), opt_state), value

    (params, opt_state), values = jax.lax.scan(step, (params, opt_state), None, length=steps)
    return params, opt_state, values[0]


def adaptive_coefficient(coefficient: jax.Array, kl: jax.Array,
                         target: jax.Array | float) -> jax.Array:
    """The adaptive KL-penalty rule (Schulman et al., 2017, as DnC's penalty): double the
    coefficient where ``kl > 1.5 · target``, halve it where ``kl < target / 1.5``."""
    return jnp.where(kl > 1.5 * target, 2.0 * coefficient,
                     jnp.where(kl < target / 1.5, 0.5 * coefficient, coefficient))


def kmeans(points: jax.Array, num_clusters: int, iterations: int = 20) -> jax.Array:
    """Lloyd's k-means on ``points [P, f]`` from the first ``num_clusters`` points (a random
    sample where the points are): the centres ``[K, f]``; an empty cluster keeps its centre.
    DnC partitions the initial states into contexts this way (Ghosh et al., 2018)."""
    def step(centres, _):
        nearest = jnp.argmin(((points[:, None] - centres[None]) ** 2).sum(-1), axis=1)
        members = jax.nn.one_hot(nearest, num_clusters)
        counts = members.sum(0)
        means = (members.T @ points) / jnp.maximum(counts, 1.0)[:, None]
        return jnp.where(counts[:, None] > 0, means, centres), None

    centres, _ = jax.lax.scan(step, points[:num_clusters], None, length=iterations)
    return centres


def sample_in_region(key: jax.Array, sample_task: TaskSampler, centres: jax.Array,
                     region: jax.Array, candidates: int) -> Any:
    """A task whose ``task_features`` lie nearest ``centres[region]``: the first of
    ``candidates`` draws of ``sample_task`` that does (the first draw if none does, which
    ``candidates ≥ 8 K`` makes rare: ``(1 - 1/K)^{8K} < e^{-8}`` for equal regions)."""
    tasks = jax.vmap(sample_task)(jax.random.split(key, candidates))
    features = jax.vmap(task_features)(tasks)
    nearest = jnp.argmin(((features[:, None] - centres[None]) ** 2).sum(-1), axis=1)
    index = jnp.argmax(nearest == region)
    return jax.tree.map(lambda leaf: leaf[index], tasks)
