"""Adapter from MuJoCo Playground's DM Control suite to the jaxrl protocol: ``playground/<Name>``.

MuJoCo Playground (``pip install "jaxrl[playground]"``, package ``mujoco_playground``) is the
MJX successor to Brax's environments. Its bare ``MjxEnv`` (``reset(rng) -> State``,
``step(State, action) -> State``) reports true termination in ``State.done`` and leaves the time
limit and resets to its training wrappers; jaxrl uses the bare env and its own
``TimeLimitedEnv``, so a time-limit end is ``truncated`` (bootstrap), a terminal state
``terminated``, and ``info["final_obs"]`` keeps the episode's last observation.

Only the DM Control suite tasks are registered: their MJCF files ship inside the package
(locomotion and manipulation tasks fetch MuJoCo Menagerie at run time). The ids are registered
only when ``mujoco_playground`` is installed (found without importing it); it is imported when
an env is built. ``max_steps_in_episode`` defaults to the task's ``episode_length``; every other
keyword is a Playground config override (e.g. ``impl``). ``impl`` defaults to ``"jax"`` (MJX on
any backend): Playground 0.2.0's default, ``"warp"``, needs NVIDIA Warp and a GPU.
"""

from __future__ import annotations

import importlib.util
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from flax import struct

from jaxrl.envs.core import TimeLimitedEnv
from jaxrl.envs.registry import register
from jaxrl.envs.spaces import Box, Space

__all__ = ["DEFAULT_IMPL", "PLAYGROUND_ENVS", "PlaygroundEnv", "PlaygroundParams"]

DEFAULT_IMPL = "jax"

PLAYGROUND_ENVS = (
    "AcrobotSwingup", "AcrobotSwingupSparse", "BallInCup", "CartpoleBalance",
    "CartpoleBalanceSparse", "CartpoleSwingup", "CartpoleSwingupSparse", "CheetahRun",
    "FingerSpin", "FingerTurnEasy", "FingerTurnHard", "FishSwim", "HopperHop", "HopperStand",
    "HumanoidStand", "HumanoidWalk", "HumanoidRun", "PendulumSwingup", "PointMass",
    "ReacherEasy", "ReacherHard", "SwimmerSwimmer6", "WalkerRun", "WalkerStand", "WalkerWalk",
)
"""Playground 0.2.0's DM Control suite tasks (state observations), registered as
``playground/<Name>``."""


class PlaygroundParams(struct.PyTreeNode):
    """The physics lives in the env object; params hold only the time limit."""

    max_steps_in_episode: int = struct.field(pytree_node=False, default=1000)


class PlaygroundEnv(TimeLimitedEnv):
    """Wraps ``mujoco_playground.dm_control_suite.load(name, config_overrides=...)``."""

    max_unroll = 1
    """Loops over physics steps are never unrolled (as ``BraxEnv``)."""

    def __init__(self, name: str, **config_overrides: Any):
        try:
            from mujoco_playground import dm_control_suite
        except ImportError as error:  # pragma: no cover - the id is registered only if found
            raise ValueError(f"playground/{name} needs MuJoCo Playground: "
                             "pip install 'jaxrl[playground]'") from error
        self.name = name
        config_overrides.setdefault("impl", DEFAULT_IMPL)
        self.config_overrides = config_overrides
        self.playground_env = dm_control_suite.load(name, config_overrides=config_overrides)
        if not isinstance(self.playground_env.observation_size, int):
            raise ValueError(f"playground/{name} has dict observations "
                             f"({self.playground_env.observation_size}); jaxrl takes arrays")

    def __repr__(self) -> str:
        return f"PlaygroundEnv({self.name!r})"

    @property
    def episode_length(self) -> int:
        """The task's own time limit (control steps)."""
        return int(self.playground_env._config.episode_length)

    def reset_env(self, key: jax.Array, params: PlaygroundParams):
        state = self.playground_env.reset(_raw_key(key))
        return state.obs, state

    def step_env(self, key: jax.Array, state, action: jax.Array, params: PlaygroundParams):
        next_state = self.playground_env.step(state, action)
        return (next_state.obs, next_state, next_state.reward, next_state.done > 0.5, {})

    def observation_space(self, params: PlaygroundParams) -> Space:
        return Box(-np.inf, np.inf, (self.playground_env.observation_size,), jnp.float32)

    def action_space(self, params: PlaygroundParams) -> Space:
        return Box(-1.0, 1.0, (self.playground_env.action_size,), jnp.float32)


def _raw_key(key: jax.Array) -> jax.Array:
    """Playground splits ``rng`` with ``jax.random.split`` and stores it in ``State.info``:
    hand it a raw uint32 key (jaxrl passes typed keys)."""
    if jax.dtypes.issubdtype(key.dtype, jax.dtypes.prng_key):
        return jax.random.key_data(key)
    return key


def _factory(name: str):
    def factory(max_steps_in_episode: int | None = None,
                **config_overrides: Any) -> tuple[PlaygroundEnv, PlaygroundParams]:
        env = PlaygroundEnv(name, **config_overrides)
        limit = env.episode_length if max_steps_in_episode is None else max_steps_in_episode
        return env, PlaygroundParams(max_steps_in_episode=limit)

    return factory


if importlib.util.find_spec("mujoco_playground") is not None:
    for _name in PLAYGROUND_ENVS:
        register(f"playground/{_name}", _factory(_name))
