"""Backend-dependent loop settings: how far to unroll the loops over environment steps.

A ``lax.scan`` compiles to an XLA while loop. On a GPU each trip is launched from the host, so a
loop whose body is one env step of a few envs is dominated by launch latency; unrolling ``u``
bodies per trip divides the trips by ``u``. Measured on an H200 (PPO CartPole-v1, 4 envs × 128
steps, ``benchmarks/results/unroll_gpu.json``): unroll 1 / 8 / 16 ran 111k / 138k / 165k env
steps/s for one seed and 5.8M / 7.4M / 7.9M for 64 seeds, and compiled in 7.9 / 11.0 / 15.9 s.
Only env-step loops (rollouts, evaluation) are unrolled: unrolling PPO's gradient loops as well
made 64 seeds compile for over 2 minutes. On a CPU a trip is cheap and unrolling only slows
things down (measured here: the rollout unrolled 8× ran 25 % slower and compiled in twice the
time), so the CPU default is 1. ``JAXRL_SCAN_UNROLL=1`` trades the GPU speed-up for the shorter
compile, e.g. in a notebook.
"""

from __future__ import annotations

import os
from typing import Any

import jax

__all__ = ["ACCELERATOR_UNROLL", "UNROLL_ENV", "env_unroll_limit", "scan_unroll"]

ACCELERATOR_UNROLL = 16
"""Env steps per loop trip on GPU / TPU: the fastest of 1 / 8 / 16 on an H200
(``benchmarks/unroll.py``)."""
UNROLL_ENV = "JAXRL_SCAN_UNROLL"
"""Environment variable that overrides the unroll on every backend (read at trace time)."""


def scan_unroll(length: int, limit: int | None = None) -> int:
    """Bodies per trip for a ``lax.scan`` of ``length`` steps on the default backend.

    ``1`` on a CPU, ``min(length, ACCELERATOR_UNROLL)`` elsewhere; ``$JAXRL_SCAN_UNROLL = u``
    (a positive integer) gives ``min(length, u)`` everywhere. ``limit`` caps the result: loops
    over environment steps pass ``env_unroll_limit(env)``. Unrolling runs the same operations in
    fewer loop trips; XLA may fuse them differently, so results agree up to float rounding (a
    CartPole rollout is bitwise equal; PPO's parameters after training to ≈ 1e-6).
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
