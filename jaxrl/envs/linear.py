"""``LinearSystem-v0``: a discrete-time linear system with quadratic cost, LQR's own problem.

Course notes §10 (Optimal Control and Planning, the linear case)::

    x_{t+1} = A x_t + B u_t + σ ε_t,    ε_t ~ N(0, I)
    r_t     = -(x_tᵀ Q x_t + u_tᵀ R u_t)

``A [n, n]``, ``B [n, m]``, ``Q [n, n]`` (positive semi-definite), ``R [m, m]`` (positive
definite) and the noise scale ``σ = noise_std`` are env params (leaves, so a batch of systems
vmaps). The observation is the state ``x`` itself; an episode starts from ``x_0 ~ N(0,
init_std² I)`` and is truncated after ``max_steps_in_episode`` steps (``TimeLimitedEnv``); there
is no terminal state. Actions lie in the wide box ``[-action_bound, action_bound]^m`` and are
clipped to it, so samplers and rescaling wrappers have a range; the LQR solution is exact
wherever its actions stay inside it. Every step is differentiable in ``x`` and ``u``.

The default system is a double integrator (position, velocity; a force), ``dt = 0.1``::

    A = [[1, dt], [0, 1]],  B = [[dt²/2], [dt]],  Q = I,  R = 0.1 I

``make("LinearSystem-v0", A=..., B=..., Q=..., R=..., noise_std=0.1)`` sets any of them
(nested lists or arrays); ``Q`` and ``R`` default to identities of the system's sizes (``R``
scaled by 0.1).
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from flax import struct

from jaxrl.envs.core import TimeLimitedEnv
from jaxrl.envs.registry import register
from jaxrl.envs.spaces import Box

__all__ = ["LinearSystem", "LinearSystemParams", "LinearSystemState", "linear_system_params"]

_DT = 0.1


class LinearSystemParams(struct.PyTreeNode):
    """The system ``(A, B)``, its cost ``(Q, R)``, the noise and start scales, the time limit."""

    A: jax.Array
    B: jax.Array
    Q: jax.Array
    R: jax.Array
    noise_std: jax.Array | float = 0.0
    init_std: jax.Array | float = 1.0
    action_bound: float = struct.field(pytree_node=False, default=50.0)
    max_steps_in_episode: int = struct.field(pytree_node=False, default=200)


class LinearSystemState(struct.PyTreeNode):
    """The state ``x [n]`` (also the observation)."""

    x: jax.Array


def linear_system_params(A: Any = None, B: Any = None, Q: Any = None, R: Any = None,
                         **kwargs: Any) -> LinearSystemParams:
    """Params with the double integrator's ``A``, ``B`` and identity costs where not given;
    ``ValueError`` for matrices whose shapes do not fit together."""
    # numpy, not jax: building params must not start the XLA backend at import time.
    A = np.asarray([[1.0, _DT], [0.0, 1.0]] if A is None else A, np.float32)
    B = np.asarray([[_DT**2 / 2], [_DT]] if B is None else B, np.float32)
    if B.ndim == 1:
        B = B[:, None]
    n, m = B.shape
    Q = np.eye(n, dtype=np.float32) if Q is None else np.asarray(Q, np.float32)
    R = 0.1 * np.eye(m, dtype=np.float32) if R is None else np.asarray(R, np.float32)
    if A.shape != (n, n) or Q.shape != (n, n) or R.shape != (m, m):
        raise ValueError(f"LinearSystem-v0 needs A [n, n], B [n, m], Q [n, n], R [m, m]; got "
                         f"A {A.shape}, B {B.shape}, Q {Q.shape}, R {R.shape}")
    return LinearSystemParams(A=A, B=B, Q=Q, R=R, **kwargs)


class LinearSystem(TimeLimitedEnv):
    """See the module docstring; ``env_id`` is ``"LinearSystem-v0"``."""

    env_id = "LinearSystem-v0"

    def __repr__(self) -> str:
        return "LinearSystem()"

    def reset_env(self, key: jax.Array,
                  params: LinearSystemParams) -> tuple[jax.Array, LinearSystemState]:
        x = params.init_std * jax.random.normal(key, (params.A.shape[0],), jnp.float32)
        return x, LinearSystemState(x=x)

    def step_env(self, key: jax.Array, state: LinearSystemState, action: jax.Array,
                 params: LinearSystemParams):
        u = jnp.clip(jnp.reshape(action, (params.B.shape[1],)), -params.action_bound,
                     params.action_bound)
        x = state.x
        reward = -(x @ params.Q @ x + u @ params.R @ u)
        noise = params.noise_std * jax.random.normal(key, x.shape, x.dtype)
        next_x = params.A @ x + params.B @ u + noise
        return next_x, LinearSystemState(x=next_x), reward, jnp.zeros((), bool), {}

    def observation_space(self, params: LinearSystemParams) -> Box:
        return Box(-jnp.inf, jnp.inf, (params.A.shape[0],), jnp.float32)

    def action_space(self, params: LinearSystemParams) -> Box:
        return Box(-params.action_bound, params.action_bound, (params.B.shape[1],), jnp.float32)


def _factory(**kwargs: Any) -> tuple[LinearSystem, LinearSystemParams]:
    return LinearSystem(), linear_system_params(**kwargs)


register("LinearSystem-v0", _factory, provides=("differentiable",))
