"""jaxrl: functional deep RL in JAX."""

from jaxrl.backend import cpu_threefry_from_env as _cpu_threefry_from_env

__version__ = "0.1.0"

_cpu_threefry_from_env()  # $JAXRL_CPU_THREEFRY=unrolled: see jaxrl.backend.set_cpu_threefry
