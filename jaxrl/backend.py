"""Backend-dependent loop settings: how far to unroll the loops over environment steps.

A ``lax.scan`` compiles to an XLA while loop. On a CPU a trip is cheap and unrolling only
lengthens compilation (measured here on PPO CartPole, 4 envs × 128 steps: unrolling the rollout
8× ran 25 % slower and took twice as long to compile, 2× ran 2 % slower). On a GPU each trip is
launched from the host, so a small loop body (one env step of a few envs, one minibatch step)
is dominated by launch latency (measured on an H200: 128 rollout trips took 7.4 ms of an
11 ms PPO update); unrolling ``u`` bodies per trip divides the trips by ``u``.
"""

from __future__ import annotations

import os
from typing import Any

import jax

__all__ = ["ACCELERATOR_UNROLL", "UNROLL_ENV", "env_unroll_limit", "scan_unroll"]

ACCELERATOR_UNROLL = 8
"""Loop bodies per trip on GPU / TPU (``benchmarks/unroll.py`` sweeps it)."""
UNROLL_ENV = "JAXRL_SCAN_UNROLL"
"""Environment variable that overrides the unroll on every backend (read at trace time)."""


def scan_unroll(length: int, limit: int | None = None) -> int:
    """Bodies per trip for a ``lax.scan`` of ``length`` steps on the default backend.

    ``1`` on a CPU, ``min(length, ACCELERATOR_UNROLL)`` elsewhere; ``$JAXRL_SCAN_UNROLL = u``
    (a positive integer) gives ``min(length, u)`` everywhere. ``limit`` caps the result: loops
    over environment steps pass ``env_unroll_limit(env)``. Unrolling never changes what is
    computed, only how many loop trips XLA runs.
    """
    override = os.environ.get(UNROLL_ENV)
    if override is not None:
        try:
            unroll = int(override)
        except ValueError:
            unroll = 0
        if unroll < 1:
            raise ValueError(f"${UNROLL_ENV} must be a positive integer, got {override!r}")
    else:
        unroll = 1 if jax.default_backend() == "cpu" else ACCELERATOR_UNROLL
    return max(1, min(length, unroll, limit or unroll))


def env_unroll_limit(env: Any) -> int | None:
    """The env's ``max_unroll`` attribute (wrappers forward it), None where it has none.

    Environments whose step is a large graph (Brax physics) set ``max_unroll = 1``: their step
    outlasts a loop trip's launch, so unrolling it would only multiply compile time.
    """
    return getattr(env, "max_unroll", None)
