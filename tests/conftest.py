"""Test-wide settings. XLA is kept to one thread per process: pytest-xdist already runs one
worker per core, and the tiny networks in tests gain nothing from intra-op threads."""

import os

os.environ.setdefault(
    "XLA_FLAGS", "--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1")
os.environ.setdefault("JAX_PLATFORMS", "cpu")
# The CLI turns on a compile cache in ~/.cache; tests stay hermetic (test_cli checks the cache
# in a subprocess with its own directory).
os.environ["JAXRL_COMPILE_CACHE"] = "off"
