"""Test-wide settings. Eigen's matmuls run on one thread (``--xla_cpu_multi_thread_eigen=false``):
pytest-xdist already runs one worker per core, and the tiny networks in tests gain nothing
from splitting a matmul. XLA's runtime keeps its default pool (one thread per core) for running
independent kernels side by side: a pool of one per worker (``JAXRL_CPU_THREADS=1``, see
``jaxrl.backend.set_cpu_threads``) was no faster for ``test_determinism.py`` (218 against 197 s
with ``-n 2``) and slower for the 4-seed DQN learning test (180 against 141 s, run alone).

One compile cache per test session: many tests compile the same small programs in different
processes (the xdist workers, and the ``jaxrl`` CLI subprocesses that ``test_cli`` and others
start), so the session shares JAX's persistent compilation cache through a fresh temporary
directory. It starts empty (nothing from ``~/.cache`` or an earlier session leaks in), is handed
to subprocesses through ``$JAXRL_COMPILE_CACHE`` and is deleted when the session ends. A cached
program is the same executable, so every bitwise test holds either way; ``test_cli`` checks the
cache itself with directories of its own. ``JAXRL_TEST_COMPILE_CACHE=off`` runs without it.

The suite lowers JAX's threefry hash unrolled on CPU (``$JAXRL_CPU_THREEFRY=unrolled``, see
``jaxrl.backend.set_cpu_threefry``; subprocesses inherit it): the random bits are identical and
whole runs bitwise equal (``test_backend`` checks both), and the compile-bound suite ran ≈ 14 %
faster with it. ``JAXRL_CPU_THREEFRY=rolled pytest ...`` runs the suite with JAX's default.
"""

import os
import shutil
import tempfile

os.environ.setdefault(
    "XLA_FLAGS", "--xla_cpu_multi_thread_eigen=false")
os.environ.setdefault("JAX_PLATFORMS", "cpu")
os.environ.setdefault("JAXRL_CPU_THREEFRY", "unrolled")

_SESSION_CACHE = "JAXRL_TEST_SESSION_CACHE"
"""Set by the controlling pytest process for its xdist workers: the session's cache directory."""


def pytest_configure(config):
    from jaxrl.backend import COMPILE_CACHE_ENV, enable_compile_cache

    if os.environ.get("JAXRL_TEST_COMPILE_CACHE", "").strip().lower() == "off":
        os.environ[COMPILE_CACHE_ENV] = "off"
        return
    if not hasattr(config, "workerinput"):  # the controller, or a run without xdist
        directory = tempfile.mkdtemp(prefix="jaxrl-test-xla-")
        config._jaxrl_session_cache = directory
        os.environ[_SESSION_CACHE] = directory
    # Workers inherit both variables; CLI subprocesses read $JAXRL_COMPILE_CACHE.
    os.environ[COMPILE_CACHE_ENV] = os.environ[_SESSION_CACHE]
    enable_compile_cache()


def pytest_unconfigure(config):
    directory = getattr(config, "_jaxrl_session_cache", None)
    if directory:
        shutil.rmtree(directory, ignore_errors=True)
