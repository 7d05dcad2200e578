"""Backend-dependent settings: how far to unroll the loops over environment steps, the XLA
options a training program compiles with on a CPU (``compiler_options``), the
on-disk cache of compiled programs (``enable_compile_cache``), how XLA:CPU computes the
threefry hash behind ``jax.random`` (``set_cpu_threefry``) and how many threads XLA:CPU runs a
program's kernels on (``set_cpu_threads``).

A ``lax.scan`` compiles to an XLA while loop. On a GPU each trip is launched from the host, so a
loop whose body is one env step of a few envs is dominated by launch latency; unrolling ``u``
bodies per trip divides the trips by ``u``, at the price of a longer compile. Only the training
rollouts' env-step loops are unrolled: unrolling the gradient loops too made compiles far longer
for little speed. On a CPU a trip is cheap and unrolling only slows things down, so the CPU
default is 1. ``JAXRL_SCAN_UNROLL=1`` trades the GPU speed-up for the shorter compile, e.g. in a
notebook or a short run. The measurements are in ``benchmarks/RESULTS.md`` ("One GPU: env-step
loops unrolled"; "Measurements formerly in docstrings").
"""

from __future__ import annotations

import contextlib
import importlib.util
import math
import os
import re
import sys
import threading
import warnings
from collections.abc import Iterator
from functools import partial
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

__all__ = ["ACCELERATOR_UNROLL", "COMPILE_CACHE_ENV", "CPU_THREADS_ENV", "CPU_THREEFRY_ENV",
           "CPU_LAPACK_HANG_JAXLIB", "DEFAULT_COMPILE_CACHE", "EMITTERS_OFF_STEPS",
           "ONE_OFF_UNROLL", "SHORT_RUN_STEPS", "UNROLL_ENV", "XLA_CPU_THREADS_ENV",
           "compiler_options", "cpu_threads",
           "cpu_threads_from_env", "cpu_threefry", "cpu_threefry_from_env",
           "enable_compile_cache", "env_unroll_limit", "filtered_stderr", "gradient_steps",
           "lapack_qr_hangs", "orthogonal_gram_schmidt",
           "scan_unroll", "set_cpu_threads", "set_cpu_threefry"]

ACCELERATOR_UNROLL = 16
"""Env steps per loop trip on GPU / TPU: the fastest of the unrolls ``benchmarks/unroll.py``
compares (its results are in ``benchmarks/RESULTS.md``)."""
ONE_OFF_UNROLL = 1
"""Unroll of the env loops that run once per logged row or once per run: agents' evaluations
between updates and an off-policy agent's warm-up. They stay rolled: unrolling them saved no
run time and multiplied the off-policy agents' compile time (``benchmarks/RESULTS.md``, "One
GPU: the full suite")."""
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


SHORT_RUN_STEPS = 4_000
"""``compiler_options``: programs of at most this many gradient steps (summed over their
vmapped runs) compile at XLA:CPU's backend optimisation level 0, longer ones at level 1."""
EMITTERS_OFF_STEPS = 32_000
"""``compiler_options``: programs of at most this many gradient steps (summed over their
vmapped runs) compile with XLA:CPU's older fusion emitters, longer ones with the MLIR ones."""
_XLA_OPTIONS = ("xla_backend_optimization_level", "xla_cpu_use_fusion_emitters")


def compiler_options(backend: str | None = None,
                     expected_steps: int | None = None) -> dict[str, Any] | None:
    """Per-``jax.jit`` XLA options that shorten compile + run on the CPU backend:
    ``jax.jit(f, compiler_options=compiler_options("cpu", steps))``.

    XLA:CPU's defaults (backend optimisation level 3, MLIR fusion emitters) spend most of a
    short RL run's wall time compiling: the agents' programs are many small kernels in nested
    loops. ``expected_steps`` is the program's gradient steps summed over its vmapped runs
    (None: unknown), and picks the cheapest setting for that length:

    - at most ``SHORT_RUN_STEPS``: level 0 without the fusion emitters (the shortest compile;
      its gradient steps run several times slower, which a short program does not notice);
    - at most ``EMITTERS_OFF_STEPS``: level 1 without the fusion emitters (a shorter compile
      than the defaults at the same run time);
    - longer, or unknown: level 1 with the emitters (a shorter compile than the defaults at the
      same run time; without the emitters many vmapped seeds run slower).

    The in-process A/B behind these thresholds is in ``docs/performance.md``. Returns None
    (XLA's own defaults) on other backends (``backend`` None: JAX's default backend) and where
    ``$XLA_FLAGS`` already sets either option: the user's (or the test suite's) flags win.
    The options are part of the compiled program, so one setting gives bitwise reproducible
    results; different settings agree up to float rounding.
    """
    backend = backend or jax.default_backend()
    flags = os.environ.get("XLA_FLAGS", "")
    if backend != "cpu" or any(option in flags for option in _XLA_OPTIONS):
        return None
    short = expected_steps is not None and expected_steps <= SHORT_RUN_STEPS
    emitters = expected_steps is None or expected_steps > EMITTERS_OFF_STEPS
    return {"xla_backend_optimization_level": 0 if short else 1,
            "xla_cpu_use_fusion_emitters": emitters}


def gradient_steps(config: Any, num_updates: int) -> int | None:
    """Gradient steps of one run of ``config`` (``num_updates`` calls of its agent's update):
    ``num_updates · update_epochs · num_minibatches`` for epoch-based agents (the on-policy
    family), ``num_updates · iterations_per_update · updates_per_step`` for the replay family;
    None for agents with neither. The run length ``compiler_options`` is chosen from."""
    if hasattr(config, "update_epochs"):
        return num_updates * config.update_epochs * getattr(config, "num_minibatches", 1)
    if hasattr(config, "updates_per_step"):
        return num_updates * config.iterations_per_update * config.updates_per_step
    return None


COMPILE_CACHE_ENV = "JAXRL_COMPILE_CACHE"
"""Environment variable naming the compile cache directory (``off`` disables it)."""
DEFAULT_COMPILE_CACHE = "~/.cache/jaxrl/xla"
COMPILE_CACHE_MAX_BYTES = 2 * 1024**3
"""Size cap of a cache this module turns on (JAX evicts the least recently used entries; it
needs the ``filelock`` package for that)."""
_OFF = ("", "0", "off", "false", "none", "no")
CPU_LAPACK_HANG_JAXLIB = (0, 10)
"""The first jaxlib (major, minor) whose CPU LAPACK kernels can deadlock when several batched
factorisations run at once (issue 39, ``docs/performance.md``, "JAX versions"): from it on,
``orthogonal`` initialisation avoids LAPACK (``lapack_qr_hangs``)."""


def _installed_jaxlib() -> str:
    import jaxlib

    return jaxlib.__version__


def _platform() -> str:
    """The platform JAX compiles for, without starting a backend where ``jax_platforms`` names
    it (starting one fixes XLA:CPU's thread pool, see ``set_cpu_threads``)."""
    try:
        from jax._src import xla_bridge

        if xla_bridge.backends_are_initialized():
            return jax.default_backend()
    except (ImportError, AttributeError):
        pass
    platforms = (jax.config.jax_platforms or "").split(",")[0].strip().lower()
    return platforms or jax.default_backend()


def lapack_qr_hangs(platform: str | None = None, jaxlib_version: str | None = None) -> bool:
    """Whether jaxlib's batched QR factorisation can deadlock on ``platform`` (None: the one JAX
    compiles for) with ``jaxlib_version`` (None: the installed jaxlib).

    True on the CPU from jaxlib ``CPU_LAPACK_HANG_JAXLIB`` (0.10) on. There a batched QR
    (``jax.nn.initializers.orthogonal`` under ``vmap``) splits its batch over XLA:CPU's
    intra-op threads and blocks its own thread until the parts are done; when as many QRs run
    at once as there are threads, every thread waits and the program never finishes
    (``benchmarks/cpu_hang.py --shape qr``; ``docs/performance.md``, "JAX versions"). jaxrl's
    ``orthogonal`` initialiser then draws the same matrices without LAPACK
    (``orthogonal_gram_schmidt``). Programs read back from JAX's persistent compilation cache
    met the deadlock more often, so it once kept jaxrl's compile cache off; without the QR
    they run like fresh compiles. GPU / TPU programs are not affected.
    """
    platform = (platform or _platform()).lower()
    version = jaxlib_version if jaxlib_version is not None else _installed_jaxlib()
    parts = re.match(r"(\d+)\.(\d+)", version)
    release = (int(parts[1]), int(parts[2])) if parts else (0, 0)
    return platform == "cpu" and release >= CPU_LAPACK_HANG_JAXLIB


def _orthonormal_columns(z: jax.Array) -> jax.Array:
    """``Q`` of ``z = QR`` (``z`` tall, ``[n, m]`` with ``n ≥ m``) with ``R``'s diagonal
    positive: classical Gram–Schmidt with every projection done twice (CGS2), which keeps ``Q``
    orthonormal to rounding for any full-rank ``z``. A loop of matrix-vector products, so no
    LAPACK kernel runs."""
    highest = jax.lax.Precision.HIGHEST

    def column(j: jax.Array, q: jax.Array) -> jax.Array:
        v = jax.lax.dynamic_index_in_dim(z, j, axis=1, keepdims=False)
        for _ in range(2):  # columns of q from j on are still zero
            v = v - jnp.matmul(q, jnp.matmul(v, q, precision=highest), precision=highest)
        return jax.lax.dynamic_update_index_in_dim(q, v / jnp.sqrt(jnp.sum(v * v)), j, axis=1)

    return jax.lax.fori_loop(0, z.shape[1], column, jnp.zeros_like(z))


def orthogonal_gram_schmidt(scale: float = 1.0, column_axis: int = -1) -> Any:
    """``jax.nn.initializers.orthogonal(scale, column_axis)`` without a QR factorisation: the
    same Gaussian draw, orthonormalised by Gram–Schmidt (``_orthonormal_columns``), gives the
    same matrix to float32 rounding (the ``Q`` with positive ``R`` diagonal is unique). It
    exists for the platforms where the batched LAPACK QR deadlocks (``lapack_qr_hangs``)."""

    def init(key: jax.Array, shape: tuple[int, ...], dtype: Any = None) -> jax.Array:
        dtype = jnp.float32 if dtype is None else dtype
        if len(shape) < 2:
            raise ValueError("orthogonal initializer requires at least a 2D shape")
        n_cols = shape[column_axis]
        n_rows = math.prod(shape) // n_cols
        z = jax.random.normal(key, (max(n_rows, n_cols), min(n_rows, n_cols)), dtype)
        q = _orthonormal_columns(z)
        if n_rows < n_cols:
            q = q.T
        q = jnp.reshape(q, tuple(np.delete(shape, column_axis)) + (n_cols,))
        return jnp.array(scale, dtype) * jnp.moveaxis(q, -1, column_axis)

    return init


def enable_compile_cache(path: str | os.PathLike[str] | None = None) -> Path | None:
    """Keep compiled programs on disk (JAX's persistent compilation cache), so a run repeated
    with the same config, env, shapes and JAX version skips XLA compilation.

    The directory is ``path``, else ``$JAXRL_COMPILE_CACHE``, else ``~/.cache/jaxrl/xla``;
    ``off`` (or ``0``, ``none``) disables it. A cache the user already configured
    (``JAX_COMPILATION_CACHE_DIR`` or ``jax.config``) is kept. Only
    compilations that take longer than ``jax_persistent_cache_min_compile_time_secs`` (1 s) are
    stored; the cache is capped at ``COMPILE_CACHE_MAX_BYTES`` where the ``filelock`` package
    is installed. Call it before the first compilation: JAX decides once per process whether
    to use a cache. The ``jaxrl`` CLI calls it on start. Returns the directory in use, or None
    (off, or the directory cannot be created: a warning says why). A cached program is the
    same executable, so results are bitwise those of a fresh compile.
    """
    configured = jax.config.jax_compilation_cache_dir
    if configured:
        return Path(configured)
    explicit = os.fspath(path) if path is not None else os.environ.get(COMPILE_CACHE_ENV)
    choice = DEFAULT_COMPILE_CACHE if explicit is None else explicit
    if choice.strip().lower() in _OFF:
        return None
    directory = Path(choice).expanduser()
    try:
        directory.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        warnings.warn(f"compile cache off: cannot create {directory} ({error}); set "
                      f"${COMPILE_CACHE_ENV} to a writable directory or to 'off'", stacklevel=2)
        return None
    # JAX enforces a size cap only with the `filelock` package; without it the cache grows
    # until the directory is deleted.
    if jax.config.jax_compilation_cache_max_size < 0 and importlib.util.find_spec("filelock"):
        jax.config.update("jax_compilation_cache_max_size", COMPILE_CACHE_MAX_BYTES)
    jax.config.update("jax_compilation_cache_dir", str(directory))
    return directory


CPU_THREEFRY_ENV = "JAXRL_CPU_THREEFRY"
"""Environment variable read when ``jaxrl`` is imported: ``unrolled`` calls
``set_cpu_threefry("unrolled")``; unset or ``rolled`` leaves JAX's default."""
_THREEFRY_MODES = ("rolled", "unrolled")
_cpu_threefry = "rolled"


def cpu_threefry() -> str:
    """The threefry lowering this process uses on CPU: ``"rolled"`` (JAX's) or ``"unrolled"``."""
    return _cpu_threefry


def set_cpu_threefry(mode: str) -> str:
    """Choose how XLA:CPU computes threefry, the hash behind every ``jax.random`` draw and
    split; returns the previous mode. Affects programs lowered afterwards, in this process.

    ``"rolled"`` (JAX's CPU default): the hash's 20 rounds as a 5-trip while loop, one loop per
    draw. ``"unrolled"``: the 20 rounds as straight-line code, as JAX lowers them on GPU / TPU;
    XLA then fuses a draw with its neighbours. The random bits are identical either way (a test
    checks splits, uniforms, normals and permutations bit for bit; whole training runs are
    bitwise equal). Compiles get shorter and draws faster, but with XLA's default thread pool a
    one-seed on-policy run can get slower: with the hash's loops gone, a rollout step holds
    more kernels that do not depend on each other, and XLA:CPU hands those to a second thread,
    which for microsecond kernels costs more than it gains. With one thread
    (``set_cpu_threads(1)``) the unrolled hash is the faster one there too. An env loop unrolled
    on a CPU (``$JAXRL_SCAN_UNROLL`` > 1) compiles longer with it and is no longer bitwise equal
    to the rolled loop: without the hash's loop as a barrier, consecutive env steps fuse. Hence
    an opt-in: it suits notebooks and tests, where compile time dominates
    (``docs/performance.md``; the measurements are in ``benchmarks/RESULTS.md``).

    Uses JAX's internal lowering hooks (``jax._src.prng``, ``jax._src.random.threefry2x32``
    from jax 0.10); where a JAX version lacks them a
    ``RuntimeError`` says so. No effect on GPU / TPU, which always use the unrolled form.
    """
    global _cpu_threefry
    if mode not in _THREEFRY_MODES:
        raise ValueError(f"cpu threefry must be one of {_THREEFRY_MODES}, got {mode!r}")
    try:
        from jax.interpreters import mlir
        try:  # jax 0.10 moved the threefry primitive and its lowering to jax._src.random
            from jax._src.random import threefry2x32 as prng
        except ImportError:
            from jax._src import prng

        rule = mlir.lower_fun(partial(prng._threefry2x32_lowering,
                                      use_rolled_loops=mode == "rolled"),
                              multiple_results=True)
        mlir.register_lowering(prng.threefry2x32_p, rule, platform="cpu")
    except (ImportError, AttributeError, TypeError) as error:
        raise RuntimeError(f"this JAX version ({jax.__version__}) does not expose the threefry "
                           f"lowering jaxrl replaces ({error}); leave ${CPU_THREEFRY_ENV} "
                           "unset") from error
    previous, _cpu_threefry = _cpu_threefry, mode
    return previous


def cpu_threefry_from_env() -> None:
    """Apply ``$JAXRL_CPU_THREEFRY`` (called when ``jaxrl`` is imported); ``ValueError`` for a
    value other than ``rolled`` / ``unrolled``."""
    choice = os.environ.get(CPU_THREEFRY_ENV, "").strip().lower()
    if not choice:
        return
    if choice not in _THREEFRY_MODES:
        raise ValueError(f"${CPU_THREEFRY_ENV} must be 'rolled' or 'unrolled', got {choice!r}")
    if choice != _cpu_threefry:
        set_cpu_threefry(choice)


CPU_THREADS_ENV = "JAXRL_CPU_THREADS"
"""Environment variable read when ``jaxrl`` is imported: a positive integer calls
``set_cpu_threads`` with it; unset leaves XLA's default."""
XLA_CPU_THREADS_ENV = "PJRT_NPROC"
"""The variable XLA's CPU client reads, once, when JAX creates it: the size of its thread pool."""


def cpu_threads() -> int | None:
    """The size of XLA:CPU's thread pool requested for this process (``$PJRT_NPROC``), or None
    for XLA's default: one thread per CPU core the process may run on."""
    value = os.environ.get(XLA_CPU_THREADS_ENV, "").strip()
    return int(value) if value.isdigit() and int(value) > 0 else None


def _positive_threads(value: Any, source: str) -> int:
    try:
        threads = int(value) if not isinstance(value, (bool, float)) else 0
    except (TypeError, ValueError):
        threads = 0
    if threads < 1:
        raise ValueError(f"{source} must be a positive integer (threads), got {value!r}")
    return threads


def set_cpu_threads(threads: int) -> None:
    """Size the thread pool XLA:CPU runs a program's kernels on (``threads`` ≥ 1).

    XLA's CPU runtime runs the kernels of one program that do not depend on each other
    concurrently, on a pool of one thread per core. A kernel of a small program (one seed, a
    few envs) takes microseconds, and handing kernels between threads can cost more than
    running them side by side gains; larger batches gain from the pool. So it is a choice per
    workload: ``JAXRL_CPU_THREADS=1`` for one or a few seeds on a CPU, the default for many
    (``docs/performance.md``; the measurements are in ``benchmarks/RESULTS.md``).
    Results do not depend on it (a test trains a run under 1 and 2 threads bitwise equal).

    Sets ``$PJRT_NPROC``, which XLA reads when JAX creates its CPU backend: call it before the
    first JAX computation or device query, or set ``$JAXRL_CPU_THREADS`` before starting
    Python (``jaxrl`` applies it on import; the CLI, benchmarks and notebooks all honour it).
    Asking for a different size once the backend exists raises ``RuntimeError``. No effect on
    GPU / TPU programs.
    """
    threads = _positive_threads(threads, "cpu threads")
    try:
        from jax._src import xla_bridge

        started = xla_bridge.backends_are_initialized()
    except (ImportError, AttributeError):  # a JAX without the hook: assume not started
        started = False
    if started and cpu_threads() != threads:
        raise RuntimeError(
            f"JAX's CPU backend already started with "
            f"{cpu_threads() or 'one thread per core'}; set ${CPU_THREADS_ENV}={threads} "
            "before starting Python, or call set_cpu_threads before the first JAX computation")
    os.environ[XLA_CPU_THREADS_ENV] = str(threads)


def cpu_threads_from_env() -> None:
    """Apply ``$JAXRL_CPU_THREADS`` (called when ``jaxrl`` is imported); ``ValueError`` for a
    value that is not a positive integer."""
    choice = os.environ.get(CPU_THREADS_ENV, "").strip()
    if choice:
        set_cpu_threads(_positive_threads(choice, f"${CPU_THREADS_ENV}"))


HARMLESS_STDERR = (
    # XLA logs this for every executable read back from the persistent compile cache.
    re.compile(r"pjrt_executable\.cc.*Assume version compatibility"),
)
"""Lines of XLA's C++ logging that jaxrl's own calls trigger and that say nothing actionable."""


@contextlib.contextmanager
def filtered_stderr(patterns: tuple[re.Pattern[str], ...] = HARMLESS_STDERR) -> Iterator[None]:
    """Run the block with file descriptor 2 read through a pipe: every line is passed on to the
    real stderr at once, except lines matching ``patterns``. For XLA's C++ log lines, which
    bypass Python's ``warnings`` and logging."""
    sys.stderr.flush()
    saved = os.dup(2)
    read_end, write_end = os.pipe()

    def forward() -> None:
        with os.fdopen(read_end, "rb") as lines:
            for line in lines:
                if not any(pattern.search(line.decode(errors="replace"))
                           for pattern in patterns):
                    os.write(saved, line)

    thread = threading.Thread(target=forward, name="jaxrl-stderr-filter", daemon=True)
    thread.start()
    os.dup2(write_end, 2)
    os.close(write_end)
    try:
        yield
    finally:
        sys.stderr.flush()
        os.dup2(saved, 2)  # closes the pipe's last write end: the thread reads to its end
        thread.join()
        os.close(saved)
