"""Policy distillation: per-task teachers and one task-conditioned student that mimics them.

Course notes §15 "Transfer & Multi-task Learning" (multi-task transfer: "model distillation")
and §11.2 ("use distillation: train a global policy with supervised learning to mimic each
policy"). ``num_tasks`` tasks are drawn from the env's task family at ``init``; each has its own
teacher ``π_i(a|s)`` (the task hidden, as a single-task expert), all trained in the same jit,
vmapped over tasks, by the policy gradient of ``training.meta.episode_objective``
(reward-to-go with a leave-one-out baseline). After each teacher step the student
``π_S(a | s, ω)``, which reads the task's params ``ω`` in its input, takes ``distill_steps``
supervised steps on the teachers' states::

    min_S  Σ_i E_{s ~ π_i, task i} [ KL(π_i(·|s) ‖ π_S(·|s, ω_i)) ]      (losses.distillation_kl)

Teachers and student learn together in one run, so the student mimics the current teachers;
``teacher_updates`` freezes the teachers after that many updates, and the student then distils
fixed experts.

``teachers`` (``--teachers RUN_DIR [RUN_DIR ...]``) distils finished jaxrl runs instead: one
teacher per run (its first seed, e.g. ``ppo`` runs of ``PointNav-v0`` on different
``--env-arg goal=...``), on that run's env params as its task (``training.meta.load_teachers``:
one error line for a run of another env, a policy with memory, or runs of different networks).
They stay fixed; any algorithm's policy only samples actions, so the student minimises the
cross-entropy ``-E_{s ~ π_i, a ~ π_i(·|s)} log π_S(a | s, ω_i)`` (``meta.mimic_nll``), whose
expectation is the KL above plus the teachers' (constant) entropy: the same gradient.

Metrics: ``teacher_return`` and ``student_return`` (mean episode return on the tasks, the
student's from its own episodes), ``distill_kl`` (the KL on the teachers' fresh states before
the student's steps; ``distill_nll``, the cross-entropy, with saved teachers) and
``episode_return`` (the teachers', the training episodes). ``act`` is
the student: it acts in ``wrap_env(config, env)``, whose observations carry the task.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
from flax import struct

from jaxrl.envs.core import select_tree
from jaxrl.training import meta
from jaxrl.training.agent import Agent, as_typed_key, train_from_agent
from jaxrl.training.config import check_config, hyper, static
from jaxrl.training.optim import flat_adam

__all__ = ["Config", "TrainState", "make_agent", "make_train", "wrap_env"]


class Config(meta.MimicConfig):
    """Teachers per task (the per-task policies) and a task-conditioned student (the mimicking
    policy). Defaults: PointNav-v0 goals."""

    num_tasks: int = static(8, ">= 1")
    """tasks (one teacher each), drawn from the family at init"""
    student_learning_rate: float = hyper(3e-3, "> 0")
    """student's Adam step size"""
    teacher_updates: int = static(0, ">= 0")
    """the teachers stop learning after this many updates (0: they learn the whole run); the
    student then distils fixed teachers"""
    student_hidden_sizes: tuple[int, ...] = static((64, 64))
    """student MLP widths"""
    teachers: tuple[str, ...] = static(())
    """saved jaxrl runs (one env, one algorithm and network; memoryless): one fixed teacher per
    run, on that run's env params; replaces num_tasks and the teachers trained here"""

    @property
    def task_count(self) -> int:
        """Tasks, one teacher each: the saved runs' count, else ``num_tasks``."""
        return len(self.teachers) or self.num_tasks

    @property
    def steps_per_update(self) -> int:
        """Teachers' env steps of one update."""
        return self.task_count * self.num_envs * self.horizon

    def validate(self) -> None:
        """Two episodes per batch at least (the baseline); one update fits the run; saved
        teachers do not learn."""
        if self.teachers and self.teacher_updates:
            raise ValueError("teacher_updates stops teachers trained here; teachers from saved "
                             "runs (--teachers) never learn: drop --teacher-updates")
        self.check_one_update("tasks", self.task_count)


class TrainState(struct.PyTreeNode):
    """The tasks, the teachers (stacked ``[num_tasks, ...]``), the student and the key."""

    tasks: Any
    teacher_params: Any
    teacher_opt_state: Any
    student_params: Any
    student_opt_state: Any
    key: jax.Array
    update_count: jax.Array
    saved_teachers: Any = ()
    """with ``teachers``: the saved runs' train states, stacked and fixed (``teacher_params``
    is then empty); their own metrics, such as a NaN return before a first episode, stay in them"""


def wrap_env(config: Config, env: Any) -> meta.TaskEnv:
    """The env the student acts in: a task of ``env``'s family drawn at each reset, its params
    appended to the observation."""
    def sample_task(key, env_params):
        return meta.task_sampler(env, env_params)(key)

    return meta.TaskEnv(env, sample_task, task_in_obs=True)


def make_agent(config: Config, env: Any, env_params: Any) -> Agent:
    """Distillation on ``num_tasks`` tasks of ``env``'s family, or from the saved runs
    ``teachers`` (module docstring)."""
    check_config(config)
    sample_task = meta.task_sampler(env, env_params)
    meta.check_horizon(config.horizon, env_params)
    saved = (meta.load_teachers(config.teachers, env, env_params, config.horizon)
             if config.teachers else None)
    num_tasks = config.task_count
    teacher = meta.make_policy(env, env_params, config.hidden_sizes, config.activation)
    conditioned = meta.TaskEnv(env, None, task_in_obs=True)
    student = meta.make_policy(conditioned, env_params, config.student_hidden_sizes,
                               config.activation)
    teacher_optimizer = flat_adam(config.learning_rate, max_grad_norm=config.max_grad_norm)
    student_optimizer = flat_adam(config.student_learning_rate,
                                  max_grad_norm=config.max_grad_norm)
    rollout = dict(num_envs=config.num_envs, horizon=config.horizon)

    def init(key):
        key, task_key, teacher_key, student_key = jax.random.split(as_typed_key(key), 4)
        student_params = student.init(student_key, jnp.zeros(
            (1, *conditioned.observation_space(env_params).shape), jnp.float32))
        if saved is not None:
            return TrainState(saved.tasks, (), (), student_params,
                              student_optimizer.init(student_params), key,
                              jnp.zeros((), jnp.int32), saved.states)
        tasks = jax.vmap(sample_task)(jax.random.split(task_key, num_tasks))
        obs = jnp.zeros((1, *env.observation_space(env_params).shape), jnp.float32)
        teachers = jax.vmap(teacher.init, in_axes=(0, None))(
            jax.random.split(teacher_key, num_tasks), obs)
        return TrainState(tasks, teachers, jax.vmap(teacher_optimizer.init)(teachers),
                          student_params, student_optimizer.init(student_params), key,
                          jnp.zeros((), jnp.int32))

    def update(state):
        key, teacher_key, student_key = jax.random.split(state.key, 3)
        if saved is not None:
            episodes = meta.sample_episodes(teacher_key, None, state.saved_teachers, env,
                                            state.tasks, act=saved.act, **rollout)
            teachers, teacher_opt_state = state.teacher_params, state.teacher_opt_state
        else:
            episodes = meta.sample_episodes(teacher_key, teacher, state.teacher_params, env,
                                            state.tasks, **rollout)
            teachers, teacher_opt_state = meta.policy_gradient_step(
                teacher, teacher_optimizer, state.teacher_params, state.teacher_opt_state,
                episodes, config.normalize_advantages)
        if config.teacher_updates:
            learning = state.update_count < config.teacher_updates
            teachers, teacher_opt_state = select_tree(
                learning, (teachers, teacher_opt_state),
                (state.teacher_params, state.teacher_opt_state))
        by_task = jax.tree.map(lambda x: jnp.moveaxis(x, 1, 0), episodes)  # [M, H, N]
        student_obs = jnp.moveaxis(meta.with_task_features(episodes.obs, state.tasks), 1, 0)

        def loss(params):
            if saved is not None:
                return meta.mimic_nll(student, params, student_obs, by_task.action,
                                      by_task.alive)
            return meta.mimic_kl(teacher, state.teacher_params, by_task.obs, student, params,
                                 student_obs, by_task.alive)

        student_params, student_opt_state, kl = meta.distill_step(
            student_optimizer, state.student_params, state.student_opt_state, loss,
            config.distill_steps)
        broadcast = jax.tree.map(lambda leaf: jnp.broadcast_to(leaf, (num_tasks, *leaf.shape)),
                                 student_params)
        student_episodes = meta.sample_episodes(student_key, student, broadcast, env,
                                                state.tasks, task_in_obs=True, **rollout)
        teacher_return = episodes.returns.mean()
        metrics = {"teacher_return": teacher_return, "episode_return": teacher_return,
                   "student_return": student_episodes.returns.mean(),
                   "distill_nll" if saved is not None else "distill_kl": kl}
        return TrainState(state.tasks, teachers, teacher_opt_state, student_params,
                          student_opt_state, key, state.update_count + 1,
                          state.saved_teachers), metrics

    def act(state, obs, key, deterministic=False):
        distribution = student.apply(state.student_params, obs)
        return distribution.mode() if deterministic else distribution.sample(seed=key)

    return Agent(init=init, update=update, act=act,
                 num_updates=config.total_timesteps // config.steps_per_update,
                 steps_per_update=config.steps_per_update)


def make_train(config: Config, env: Any, env_params: Any):
    """``train(key) -> (train_state, metrics)``: ``init`` and a scan of ``update``."""
    return train_from_agent(make_agent(config, env, env_params))
