"""Environments: one protocol for gymnax, Brax and your own, with separate terminated/truncated.

>>> from jaxrl import envs
>>> env, params = envs.make("CartPole-v1")
>>> obs, state = env.reset(key, params)
>>> obs, state, reward, terminated, truncated, info = env.step(key, state, action, params)

See ``jaxrl.envs.core`` for the protocol's contract.
"""

from jaxrl.envs.brax_env import DEFAULT_BACKEND as BRAX_DEFAULT_BACKEND
from jaxrl.envs.brax_env import BraxEnv, BraxParams
from jaxrl.envs.core import Environment, TimeLimitedEnv, TimeLimitState
from jaxrl.envs.gymnax_env import GymnaxEnv
from jaxrl.envs.normalize import RunningMeanStd, discounted_return_trace
from jaxrl.envs.registry import (
    CAPABILITIES,
    capabilities,
    describe,
    list_envs,
    make,
    register,
)
from jaxrl.envs.spaces import Box, Discrete, Space
from jaxrl.envs.wrappers import (
    ClipAction,
    EpisodeStatistics,
    EpisodeStatisticsState,
    RescaleAction,
    ScaleReward,
    Wrapper,
)

__all__ = [
    "BRAX_DEFAULT_BACKEND", "CAPABILITIES", "Box", "BraxEnv", "BraxParams", "ClipAction",
    "Discrete", "Environment", "EpisodeStatistics", "EpisodeStatisticsState", "GymnaxEnv",
    "RescaleAction", "RunningMeanStd", "ScaleReward", "Space", "TimeLimitState", "TimeLimitedEnv",
    "Wrapper", "capabilities", "describe", "discounted_return_trace", "list_envs", "make",
    "register",
]

from jaxrl.envs import deep_sea as _deep_sea  # noqa: E402, F401  (registers DeepSea-v0)
from jaxrl.envs import goal as _goal  # noqa: E402, F401  (registers PointGoal-v0)
from jaxrl.envs import linear as _linear  # noqa: E402, F401  (registers LinearSystem-v0)
from jaxrl.envs import meta as _meta  # noqa: E402, F401  (KArmedBandit-v0, PointNav-v0)
from jaxrl.envs import pgx_env as _pgx_env  # noqa: E402, F401  (registers pgx/<game>)
from jaxrl.envs import playground_env as _playground_env  # noqa: E402, F401  (playground/<Name>)
from jaxrl.envs import tabular as _tabular  # noqa: E402, F401  (registers Gridworld-v0)
from jaxrl.envs import tokens as _tokens  # noqa: E402, F401  (registers Tokens-<task>-v0)
