"""jaxrl: functional deep RL in JAX."""

import os as _os

__version__ = "0.1.0"

# $JAXRL_CPU_THREADS and $JAXRL_CPU_THREEFRY (jaxrl.backend) apply when jaxrl is imported; jax
# is imported for them only where they are set, so `jaxrl --help` / `jaxrl envs` start without jax.
if _os.environ.get("JAXRL_CPU_THREADS", "").strip():
    from jaxrl.backend import cpu_threads_from_env as _cpu_threads_from_env

    _cpu_threads_from_env()  # see jaxrl.backend.set_cpu_threads
if _os.environ.get("JAXRL_CPU_THREEFRY", "").strip():
    from jaxrl.backend import cpu_threefry_from_env as _cpu_threefry_from_env

    _cpu_threefry_from_env()  # see jaxrl.backend.set_cpu_threefry
