"""Task families as env params, and the trials of RL² (course notes, meta-learning chapter:
"RNN-based meta-learning").

A task family is one env whose params hold the task; ``env.sample_task(key, env_params) ->
env_params`` draws a task of the family (the other params kept). gymnax's meta envs draw the task
inside ``reset``, so a multi-episode trial on one task cannot be written with them; these can.

- ``KArmedBandit-v0``: ``k`` arms with means ``arm_means`` in the params; a pull of arm ``a``
  pays a Bernoulli(``μ_a``) reward (``reward_kind="bernoulli"``, tasks ``μ ~ U(0, 1)^k``) or a
  Gaussian ``N(μ_a, reward_std²)`` one (``"gaussian"``, tasks ``μ ~ N(0, 1)^k``). Each pull is
  one episode (``max_steps_in_episode`` 1, as in Duan et al.'s RL² bandits); the observation is
  a constant. ``info["regret"]`` is ``max_b μ_b - μ_a``, the pull's expected regret.
- ``PointNav-v0`` (Finn et al., 2017, "2D Navigation"): a point starts at the origin; actions
  are displacements in ``[-0.1, 0.1]²``; the reward is ``-‖p - g‖²`` for the goal ``g`` in the
  params, drawn uniformly from ``[-0.5, 0.5]²``; the episode terminates within 0.01 of the goal
  and is truncated after ``max_steps_in_episode`` (100) steps. The observation is the position:
  the goal is only known from the rewards.
- ``PendulumStarts-v0``: Pendulum-v1 whose task is the initial angle ``θ_0 ~ U[-π, π]``
  (``PendulumStarts`` below: Divide-and-Conquer RL's contexts); dynamics, reward
  and observation are Pendulum-v1's, its env args too.

``TrialEnv`` turns a task family into RL²'s problem (Duan et al., 2016): a trial is
``episodes_per_trial`` episodes on one task drawn at the trial's start, and the input is the
env's observation followed by the previous action (one-hot for discrete actions), reward and
episode-end flag. To the agent a trial is one episode: the episodes inside it run on without a
boundary (their ends reach the policy only through the flag), so its memory is kept and its
return is the trial's; the trial's last step terminates (the trial's horizon is fixed, nothing
follows it).
"""

from __future__ import annotations

import math
from typing import Any

import jax
import jax.numpy as jnp
from flax import struct

from jaxrl.envs.core import TimeLimitedEnv, select_tree
from jaxrl.envs.registry import make, register
from jaxrl.envs.spaces import Box, Discrete

__all__ = ["BanditParams", "KArmedBandit", "PendulumStarts", "PointNav", "PointNavParams",
           "StartParams", "TrialEnv", "TrialState", "is_task_family"]

REWARD_KINDS = ("bernoulli", "gaussian")


class BanditParams(struct.PyTreeNode):
    """``KArmedBandit``'s params: the task (arm means) and how rewards are drawn."""

    arm_means: jax.Array
    """``μ [k]``: the mean reward of each arm (the task)"""
    reward_std: float = 1.0
    """std of the Gaussian rewards"""
    reward_kind: str = struct.field(pytree_node=False, default="bernoulli")
    """"bernoulli" or "gaussian" rewards"""
    max_steps_in_episode: int = struct.field(pytree_node=False, default=1)
    """pulls per episode"""


class KArmedBandit(TimeLimitedEnv):
    """See the module docstring; ``env_id`` is ``"KArmedBandit-v0"``."""

    env_id = "KArmedBandit-v0"

    def __init__(self, num_arms: int = 2):
        if num_arms < 2:
            raise ValueError(f"a bandit needs num_arms >= 2, got {num_arms}")
        self.num_arms = num_arms

    def __repr__(self) -> str:
        return f"KArmedBandit(num_arms={self.num_arms})"

    def reset_env(self, key: jax.Array, params: BanditParams) -> tuple[jax.Array, jax.Array]:
        return jnp.ones((1,), jnp.float32), jnp.zeros((), jnp.int32)

    def step_env(self, key: jax.Array, state: jax.Array, action: jax.Array,
                 params: BanditParams):
        mean = params.arm_means[action]
        if params.reward_kind == "bernoulli":
            reward = jax.random.bernoulli(key, mean).astype(jnp.float32)
        else:
            reward = mean + params.reward_std * jax.random.normal(key)
        regret = params.arm_means.max() - mean
        return (jnp.ones((1,), jnp.float32), state, reward, jnp.zeros((), bool),
                {"regret": regret.astype(jnp.float32)})

    def sample_task(self, key: jax.Array, params: BanditParams) -> BanditParams:
        """Arm means ``U(0, 1)^k`` (Bernoulli) or ``N(0, 1)^k`` (Gaussian)."""
        shape = (self.num_arms,)
        means = (jax.random.uniform(key, shape) if params.reward_kind == "bernoulli"
                 else jax.random.normal(key, shape))
        return params.replace(arm_means=means)

    def observation_space(self, params: Any) -> Box:
        return Box(0.0, 1.0, (1,), jnp.float32)

    def action_space(self, params: Any) -> Discrete:
        return Discrete(self.num_arms)


class PointNavParams(struct.PyTreeNode):
    """``PointNav``'s params: the task (the goal) and the time limit."""

    goal: jax.Array
    """``g [2]``: the goal position (the task)"""
    max_steps_in_episode: int = struct.field(pytree_node=False, default=100)


class PointNav(TimeLimitedEnv):
    """See the module docstring; ``env_id`` is ``"PointNav-v0"``."""

    env_id = "PointNav-v0"
    max_action = 0.1
    goal_tolerance = 0.01

    def __repr__(self) -> str:
        return "PointNav()"

    def reset_env(self, key: jax.Array, params: PointNavParams) -> tuple[jax.Array, jax.Array]:
        position = jnp.zeros((2,), jnp.float32)
        return position, position

    def step_env(self, key: jax.Array, position: jax.Array, action: jax.Array,
                 params: PointNavParams):
        position = position + jnp.clip(action, -self.max_action, self.max_action)
        distance = jnp.linalg.norm(position - params.goal)
        return position, position, -distance ** 2, distance < self.goal_tolerance, {}

    def sample_task(self, key: jax.Array, params: PointNavParams) -> PointNavParams:
        """A goal uniform in ``[-0.5, 0.5]²``."""
        return params.replace(goal=jax.random.uniform(key, (2,), minval=-0.5, maxval=0.5))

    def observation_space(self, params: Any) -> Box:
        return Box(-jnp.inf, jnp.inf, (2,), jnp.float32)

    def action_space(self, params: Any) -> Box:
        return Box(-self.max_action, self.max_action, (2,), jnp.float32)


def is_task_family(env: Any) -> bool:
    """Whether ``env`` draws tasks: it has ``sample_task(key, env_params) -> env_params``."""
    return callable(getattr(env, "sample_task", None))


class TrialState(struct.PyTreeNode):
    """``TrialEnv``'s state: the inner env's state, the trial's task, episodes finished."""

    env_state: Any
    task: Any
    """the env params of this trial's task"""
    episode: jax.Array
    """episodes finished in this trial"""


class TrialEnv:
    """RL²'s trials of ``episodes_per_trial`` episodes of a task family (module docstring).

    Observation ``[obs (flattened), previous action (one-hot if discrete), previous reward,
    previous episode end]``, zeros after the trial's start. Never truncates: a trial ends by
    termination after its last episode.
    """

    def __init__(self, env: Any, episodes_per_trial: int):
        if not is_task_family(env):
            raise TypeError(f"{env!r} is not a task family (it has no sample_task(key, "
                            f"env_params)); task families: KArmedBandit-v0, PointNav-v0")
        if episodes_per_trial < 1:
            raise ValueError(f"episodes_per_trial must be >= 1, got {episodes_per_trial}")
        self.env = env
        self.episodes_per_trial = episodes_per_trial

    def __repr__(self) -> str:
        return f"TrialEnv({self.env!r}, episodes_per_trial={self.episodes_per_trial})"

    def _action_features(self, action: jax.Array, params: Any) -> jax.Array:
        space = self.env.action_space(params)
        if isinstance(space, Discrete):
            return jax.nn.one_hot(action, space.n, dtype=jnp.float32)
        return jnp.asarray(action, jnp.float32).reshape(-1)

    def _input(self, obs: jax.Array, action_features: jax.Array, reward: jax.Array,
               done: jax.Array) -> jax.Array:
        return jnp.concatenate([jnp.asarray(obs, jnp.float32).reshape(-1), action_features,
                                jnp.stack([reward, done]).astype(jnp.float32)])

    def _fresh(self, key: jax.Array, params: Any) -> tuple[jax.Array, TrialState]:
        task_key, reset_key = jax.random.split(key)
        task = self.env.sample_task(task_key, params)
        obs, env_state = self.env.reset(reset_key, task)
        no_action = jnp.zeros((self._action_size(params),), jnp.float32)
        state = TrialState(env_state=env_state, task=task, episode=jnp.zeros((), jnp.int32))
        zero = jnp.zeros((), jnp.float32)
        return self._input(obs, no_action, zero, zero), state

    def reset(self, key: jax.Array, params: Any) -> tuple[jax.Array, TrialState]:
        """A new trial: a task drawn with ``sample_task``, then the env's reset on it."""
        return self._fresh(key, params)

    def step(self, key: jax.Array, state: TrialState, action: jax.Array, params: Any):
        step_key, trial_key = jax.random.split(key)
        obs, env_state, reward, terminated, truncated, info = self.env.step(
            step_key, state.env_state, action, state.task)
        info = dict(info)
        episode_done = terminated | truncated
        episode = state.episode + episode_done.astype(jnp.int32)
        trial_done = episode >= self.episodes_per_trial
        action_features = self._action_features(action, params)
        final_obs = self._input(info.pop("final_obs"), action_features, reward, episode_done)
        next_obs = self._input(obs, action_features, reward, episode_done)
        fresh_obs, fresh_state = self._fresh(trial_key, params)
        state = select_tree(trial_done, fresh_state,
                            TrialState(env_state=env_state, task=state.task, episode=episode))
        info["final_obs"] = final_obs
        return (jnp.where(trial_done, fresh_obs, next_obs), state, reward, trial_done,
                jnp.zeros((), bool), info)

    def max_truncations(self, params: Any, num_steps: int) -> int:
        """0: a trial never truncates (see ``rollout.bootstrap_values``)."""
        return 0

    def _action_size(self, params: Any) -> int:
        space = self.env.action_space(params)
        return space.n if isinstance(space, Discrete) else math.prod(space.shape)

    def observation_space(self, params: Any) -> Box:
        obs_size = math.prod(self.env.observation_space(params).shape)
        return Box(-jnp.inf, jnp.inf, (obs_size + self._action_size(params) + 2,), jnp.float32)

    def action_space(self, params: Any) -> Any:
        return self.env.action_space(params)


def _bandit_factory(num_arms: int = 2, reward_kind: str = "bernoulli",
                    **kwargs: Any) -> tuple[KArmedBandit, BanditParams]:
    if reward_kind not in REWARD_KINDS:
        raise ValueError(f"reward_kind must be one of {', '.join(REWARD_KINDS)}, got "
                         f"{reward_kind!r}")
    env = KArmedBandit(num_arms)
    means = jnp.linspace(0.25, 0.75, num_arms) if reward_kind == "bernoulli" else jnp.linspace(
        -1.0, 1.0, num_arms)
    return env, BanditParams(arm_means=kwargs.pop("arm_means", means), reward_kind=reward_kind,
                             **kwargs)


def _point_nav_factory(**kwargs: Any) -> tuple[PointNav, PointNavParams]:
    goal = kwargs.pop("goal", jnp.array([0.3, -0.2], jnp.float32))
    return PointNav(), PointNavParams(goal=jnp.asarray(goal, jnp.float32), **kwargs)


class StartParams(struct.PyTreeNode):
    """``PendulumStarts``' params: Pendulum-v1's and the task, the initial angle."""

    physics: Any
    """gymnax Pendulum-v1's params"""
    start_angle: jax.Array
    """``θ_0``: the angle every episode of this task starts at (0: upright)"""

    @property
    def max_steps_in_episode(self) -> Any:
        return self.physics.max_steps_in_episode


class PendulumStarts(TimeLimitedEnv):
    """Pendulum-v1 as a family of initial states (Divide-and-Conquer RL's contexts, course notes
    §11.1.5): the task is the initial angle ``θ_0 ~ U[-π, π]`` (Pendulum-v1's own draw), the
    initial velocity stays Pendulum's ``U[-1, 1]``; dynamics and reward are Pendulum's. Made
    with ``PendulumStarts.make(**pendulum_kwargs) -> (env, params)``."""

    env_id = "Pendulum-v1"

    def __init__(self, pendulum: Any):
        self.pendulum = pendulum

    def __repr__(self) -> str:
        return "PendulumStarts()"

    @classmethod
    def make(cls, **kwargs: Any) -> tuple[PendulumStarts, StartParams]:
        pendulum, params = make("Pendulum-v1", **kwargs)
        return cls(pendulum), StartParams(params, jnp.zeros((), jnp.float32))

    def sample_task(self, key: jax.Array, params: StartParams) -> StartParams:
        return params.replace(start_angle=jax.random.uniform(key, (), minval=-jnp.pi,
                                                             maxval=jnp.pi))

    def reset_env(self, key: jax.Array, params: StartParams) -> tuple[jax.Array, Any]:
        _, state = self.pendulum.reset_env(key, params.physics)
        state = state.replace(theta=params.start_angle)
        return self.pendulum.gymnax_env.get_obs(state), state

    def step_env(self, key: jax.Array, state: Any, action: jax.Array, params: StartParams):
        return self.pendulum.step_env(key, state, action, params.physics)

    def observation_space(self, params: StartParams) -> Box:
        return self.pendulum.observation_space(params.physics)

    def action_space(self, params: StartParams) -> Box:
        return self.pendulum.action_space(params.physics)


def _pendulum_starts_factory(**kwargs: Any) -> tuple[PendulumStarts, StartParams]:
    return PendulumStarts.make(**kwargs)


register("KArmedBandit-v0", _bandit_factory)
register("PointNav-v0", _point_nav_factory)
register("PendulumStarts-v0", _pendulum_starts_factory)
