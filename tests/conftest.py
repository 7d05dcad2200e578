"""Test-wide settings, and a short guide to writing tests that keep the suite fast.

The guide
---------
The suite must stay inside CI's budget on a 2-core CPU (README's command, slow tests included):
almost all of its time is XLA compiling small programs, so a test costs about one compilation
per distinct program it builds.

- **Two tiers.** ``-m "not slow"`` is the development loop (about 3 minutes at ``-n 2``): every
  oracle (hand-worked values in a comment), probe env, loss, env and unit test, and the
  whole-agent checks (determinism, CLI flows, checkpoints, demonstrations) of one
  representative per family. ``@pytest.mark.slow`` marks the learning tests and the
  whole-agent checks of the other algorithms: a test that compiles a whole training run for
  more than about 2.5 s of CPU (``JAXRL_TEST_PROFILE``) and is not the first of its kind goes
  there. README's command runs both tiers, so every check still runs in CI.
- **Learning tests are ``@pytest.mark.slow``, one per family** (on-policy, off-policy,
  offline/imitation, and each later family): a family's slow tests take at most 60 s together
  at ``-n 2``. Size them with the smallest config that clears the threshold on the tested seeds
  (run it), and put further learning results in ``benchmarks/`` instead of a second slow test.
- **A new agent** gets one tiny config in ``tests/agent_configs.py`` (a few updates of tiny
  networks, an even number of updates); ``test_determinism.py`` then checks it (same key
  bitwise, vmapped ≈ single, resume bitwise, no key reuse) with no new test code.
- **Compile once, test many.** A module-scoped fixture holding one jitted function that takes
  the config as an argument (``run`` in ``test_a2c.py`` / ``test_reinforce.py``) serves every
  test with the same shapes: numeric hyperparameters are pytree leaves, so changing them does
  not compile again. Mark a module whose fixtures compile with ``pytest.mark.xdist_group`` so
  that one worker builds them (README's command runs ``--dist loadgroup``).
  ``helpers.strongly_typed`` makes a state match the types ``checkpoint.restore`` returns, so a
  resumed half-run reuses the compiled function.
- **In-process CLI.** Call ``jaxrl.cli.main([...])`` unless the test is about the process itself
  (signals, the console script); a subprocess compiles everything again (the compile cache
  below shortens that, it does not remove it).

Settings
--------
Eigen's matmuls run on one thread (``--xla_cpu_multi_thread_eigen=false``): pytest-xdist
already runs one worker per core, and the tiny networks in tests gain nothing from splitting a
matmul. LLVM skips its expensive optimisation passes (``--xla_llvm_disable_expensive_passes``):
the suite mostly compiles small programs it runs briefly, and the saving in compile time costs
the slow learning tests no run time (measured in benchmarks/RESULTS.md). For the same reason
XLA's backend optimisation level is 0 (``--xla_backend_optimization_level=0``: about a fifth
less CPU for the compile-bound tests) and XLA:CPU emits its fused kernels the older way
(``--xla_cpu_use_fusion_emitters=false``: the MLIR fusion emitters cost these small programs
about half their compile time), and in one piece (``--xla_cpu_parallel_codegen_split_count=1``:
XLA:CPU otherwise splits a program's LLVM module into parts compiled on a thread pool, which
only adds work when every core already runs a worker). A learning test whose run, not its
compile, dominates compiles its training with ``helpers.optimised_jit`` (XLA's defaults:
level 3, the fusion emitters on): unoptimised code would run it 2-4 times slower, and its
threshold was measured with optimised code. XLA's runtime keeps its default pool
(``jaxrl.backend.set_cpu_threads`` explains the choice). Setting ``XLA_FLAGS`` yourself
replaces these flags; subprocesses inherit them. ``JAXRL_TEST_PROFILE=DIR`` records each test's
CPU and compile time (see below).

One compile cache per test session: many tests compile the same small programs in different
processes (the xdist workers, and the ``jaxrl`` CLI subprocesses that ``test_cli`` and others
start), so the session shares JAX's persistent compilation cache through a fresh temporary
directory. It starts empty (nothing from ``~/.cache`` or an earlier session leaks in), is handed
to subprocesses through ``$JAXRL_COMPILE_CACHE`` and is deleted when the session ends. A cached
program is the same executable, so every bitwise test holds either way; ``test_cli`` checks the
cache itself with directories of its own. ``JAXRL_TEST_COMPILE_CACHE=off`` runs without it.

The suite lowers JAX's threefry hash unrolled on CPU (``$JAXRL_CPU_THREEFRY=unrolled``, see
``jaxrl.backend.set_cpu_threefry``; subprocesses inherit it): the random bits are identical and
whole runs bitwise equal (``test_backend`` checks both), and the compile-bound suite runs faster
with it. ``JAXRL_CPU_THREEFRY=rolled pytest ...`` runs the suite with JAX's default.
"""

import os
import shutil
import tempfile

import pytest

os.environ.setdefault(
    "XLA_FLAGS", "--xla_cpu_multi_thread_eigen=false --xla_llvm_disable_expensive_passes=true"
    " --xla_backend_optimization_level=0 --xla_cpu_use_fusion_emitters=false"
    " --xla_cpu_parallel_codegen_split_count=1")
os.environ.setdefault("JAX_PLATFORMS", "cpu")
os.environ.setdefault("JAXRL_CPU_THREEFRY", "unrolled")

_SESSION_CACHE = "JAXRL_TEST_SESSION_CACHE"
"""Set by the controlling pytest process for its xdist workers: the session's cache directory."""


def pytest_configure(config):
    _check_test_groups(config)
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


def _check_test_groups(config):
    """Refuse ``--dist loadgroup`` where pytest-xdist cannot group the tests: xdist 3.8 marks a
    grouped test by renaming its node id, which pytest 9.2 no longer reads, so every group would
    silently spread over all workers, each compiling the group's fixtures again."""
    if config.getoption("dist", "no") != "loadgroup":
        return
    version = tuple(int(part) for part in pytest.__version__.split(".")[:2])
    if version >= (9, 2):
        raise pytest.UsageError(
            f"pytest {pytest.__version__} ignores pytest-xdist's test groups (--dist loadgroup):"
            f' install the pinned version with pip install -c constraints.txt "pytest<9.2"')


_PROFILE_ENV = "JAXRL_TEST_PROFILE"
"""A directory: each pytest process writes there, per test, the CPU seconds it took and the
seconds JAX spent tracing, lowering and compiling (``benchmarks/suite_profile.py`` sums them)."""


class _CompileProfile:
    """Per-test CPU time and JAX's compile-pipeline durations (``jax.monitoring`` events)."""

    EVENTS = {"/jax/core/compile/jaxpr_trace_duration": "trace",
              "/jax/core/compile/jaxpr_to_mlir_module_duration": "lower",
              "/jax/core/compile/backend_compile_duration": "compile"}

    def __init__(self, directory: str):
        import jax

        self.directory = directory
        self.rows: dict[str, dict[str, float]] = {}
        self.current: dict[str, float] | None = None
        jax.monitoring.register_event_duration_secs_listener(self.on_event)

    def on_event(self, event: str, duration: float, **_: object) -> None:
        name = self.EVENTS.get(event)
        if name is not None and self.current is not None:
            self.current[name] = self.current.get(name, 0.0) + duration
            if name == "compile":
                self.current["compiles"] = self.current.get("compiles", 0) + 1

    @pytest.hookimpl(hookwrapper=True)
    def pytest_runtest_protocol(self, item, nextitem):
        import time

        self.current = self.rows.setdefault(item.nodeid, {})
        start = time.process_time()
        yield
        self.current["cpu"] = time.process_time() - start
        self.current = None

    def pytest_sessionfinish(self, session):
        import json

        os.makedirs(self.directory, exist_ok=True)
        path = os.path.join(self.directory, f"profile-{os.getpid()}.json")
        with open(path, "w") as file:
            json.dump(self.rows, file, indent=0)


@pytest.hookimpl(trylast=True)
def pytest_sessionstart(session):
    """With ``$JAXRL_TEST_PROFILE`` set, profile in each process that runs tests (an xdist
    worker, or a run without xdist; not xdist's controller)."""
    directory = os.environ.get(_PROFILE_ENV)
    config = session.config
    runs_tests = hasattr(config, "workerinput") or not config.getoption("numprocesses", None)
    if directory and runs_tests:
        config.pluginmanager.register(_CompileProfile(directory), "jaxrl-profile")
