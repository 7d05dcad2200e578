"""Adapter from Brax environments to the jaxrl protocol.

Brax's ``AutoResetWrapper`` overwrites the last observation of an episode, and its
``EpisodeWrapper`` folds the time limit into ``done``. jaxrl uses the bare Brax environment, whose
``done`` is true termination only, and applies its own time limit and reset (``TimeLimitedEnv``),
so ``info["final_obs"]`` holds the real last observation.

Backend default: ``"spring"``, the cheapest Brax pipeline to compile and run on a CPU. Pass
``backend="generalized"`` (or ``"positional"``, ``"mjx"``) to ``jaxrl.envs.make`` for more
accurate physics, e.g. on a GPU.
"""

from __future__ import annotations

import contextlib
import io
import sys
import warnings
from collections.abc import Iterator

import jax
import jax.numpy as jnp
import numpy as np
from flax import struct

from jaxrl.envs.core import TimeLimitedEnv
from jaxrl.envs.spaces import Box, Space

__all__ = ["BraxEnv", "BraxParams", "DEFAULT_BACKEND", "BRAX_ENVS", "quiet_brax"]

DEFAULT_BACKEND = "spring"
BRAX_ENVS = ("ant", "halfcheetah", "hopper", "humanoid", "humanoidstandup", "inverted_pendulum",
             "inverted_double_pendulum", "pusher", "reacher", "swimmer", "walker2d")


class BraxParams(struct.PyTreeNode):
    """Brax environments keep their physics in the env object; params hold only the time limit."""

    max_steps_in_episode: int = struct.field(pytree_node=False, default=1000)


@contextlib.contextmanager
def quiet_brax() -> Iterator[None]:
    """Importing Brax (or ``brax.io``) and building a system print two known, harmless notices:
    MuJoCo's "Failed to import warp" / "Failed to import mujoco_warp" (an optional GPU backend; a
    ``print``) and Brax's "not actively being maintained" ``UserWarning``. Drop exactly those;
    anything else is printed as usual."""
    output = io.StringIO()
    try:
        with warnings.catch_warnings(), contextlib.redirect_stdout(output):
            warnings.filterwarnings("ignore", message="Brax System, piplines and environments",
                                    category=UserWarning)
            yield
    finally:
        sys.stdout.write("".join(line for line in output.getvalue().splitlines(True)
                                 if not (line.startswith("Failed to import ")
                                         and "warp" in line)))


class BraxEnv(TimeLimitedEnv):
    """Wraps ``brax.envs.get_environment(name, backend=...)`` (no Brax wrappers)."""

    max_unroll = 1
    """Loops over this env's steps are never unrolled (``jaxrl.backend.env_unroll_limit``): a
    physics step outlasts a loop trip's launch, and unrolling it multiplies compile time."""

    def __init__(self, name: str, backend: str = DEFAULT_BACKEND, **kwargs):
        self.name = name
        self.backend = backend
        with quiet_brax():
            from brax import envs as brax_envs  # imported lazily: Brax takes seconds to import

            self.brax_env = brax_envs.get_environment(name, backend=backend, **kwargs)

    def __repr__(self) -> str:
        return f"BraxEnv({self.name!r}, backend={self.backend!r})"

    def reset_env(self, key: jax.Array, params: BraxParams):
        state = self.brax_env.reset(key)
        return state.obs, state

    def step_env(self, key: jax.Array, state, action: jax.Array, params: BraxParams):
        next_state = self.brax_env.step(state, action)
        return next_state.obs, next_state, next_state.reward, next_state.done > 0.5, {}

    def observation_space(self, params: BraxParams) -> Space:
        return Box(-np.inf, np.inf, (self.brax_env.observation_size,), jnp.float32)

    def action_space(self, params: BraxParams) -> Space:
        return Box(-1.0, 1.0, (self.brax_env.action_size,), jnp.float32)
