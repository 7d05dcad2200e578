"""Measurements shared by every benchmark runner: jaxrl's (``run.py``) and the peers'.

Imports only the standard library, numpy and jax, so the peer runners can load it inside their
own virtualenvs (rejax, sbx). One case runs in one fresh process; the runner ends by printing
``BENCH_ROW {json}``, which ``run.py`` reads back.

- ``compile_and_run``: lower + compile seconds, then run seconds up to ``block_until_ready``.
- ``matmul_flops``: dense matmul FLOPs of a function, walking its jaxpr and multiplying every
  ``scan`` body by its length. XLA's ``cost_analysis`` counts a loop body once, and one PPO
  update holds three nested scans (rollout steps, epochs, minibatches), so it undercounts by
  orders of magnitude; the jaxpr count is exact for ``dot_general`` / convolutions.
- ``JAXRL_BENCH_PROFILE=DIR``: each case also writes its optimised HLO, a ``jax.profiler``
  trace of one extra call to ``DIR`` (after the timed calls) and ``trace_summary`` of it.
- ``greedy_returns``: the one evaluation every framework's trained policy gets (the
  ``fair_return`` column): deterministic actions, ``EVAL_EPISODES`` episodes, untimed.
- ``peak_host_mib`` (``ru_maxrss`` of this process), ``device_memory`` (where the backend
  reports it), ``machine`` (CPU model, cores, load average, jax version and backend).
"""

from __future__ import annotations

import json
import math
import os
import platform
import resource
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import jax
import jax.extend.core
import jax.numpy as jnp
import numpy as np

__all__ = ["EVAL_EPISODES", "EVAL_KIND", "ROW_PREFIX", "compile_and_run", "cpu_model",
           "device_memory", "emit", "greedy_returns", "machine", "matmul_flops",
           "measure_matmul_peak", "nanmean", "peak_host_mib", "timed"]

ROW_PREFIX = "BENCH_ROW "
PROFILE_ENV = "JAXRL_BENCH_PROFILE"
"""If set (a directory), each case also writes its optimised HLO and a profiler trace there."""
CASE_ENV = "JAXRL_BENCH_CASE"
"""The case's name as a file stem (set by ``run.py`` for every case subprocess)."""


def cpu_model() -> str:
    """The ``model name`` line of ``/proc/cpuinfo`` (``platform.processor()`` elsewhere)."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def machine() -> dict[str, Any]:
    """CPU model, core count, load average now, jax version, backend and devices, and the size
    of XLA:CPU's thread pool where ``$PJRT_NPROC`` set it (None: one thread per core).

    Reads ``$PJRT_NPROC`` itself rather than calling ``jaxrl.backend.cpu_threads``: peers'
    runners call this too, and importing jaxrl there would apply ``$JAXRL_CPU_THREEFRY`` to
    the peer's process."""
    threads = os.environ.get("PJRT_NPROC", "").strip()
    return {"cpu": cpu_model(), "cores": os.cpu_count(), "loadavg": list(os.getloadavg()),
            "jax": jax.__version__, "backend": jax.default_backend(),
            "devices": [str(d) for d in jax.devices()], "python": platform.python_version(),
            "xla_cpu_threads": int(threads) if threads.isdigit() else None}


def peak_host_mib() -> float:
    """Peak resident memory of this process in MiB (Linux reports ``ru_maxrss`` in KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def device_memory() -> dict[str, float] | None:
    """Peak / in-use bytes of device 0 in MiB where the backend reports them (GPU); None on CPU."""
    stats = jax.devices()[0].memory_stats()
    if not stats:
        return None
    keys = ("peak_bytes_in_use", "bytes_in_use", "bytes_limit")
    return {k.replace("bytes", "mib"): stats[k] / 2**20 for k in keys if k in stats}


REPEAT_BUDGET_S = 8.0
"""``compile_and_run`` stops repeating once its timed calls add up to this many seconds: a run
that long already spans a neighbour's bursts, and a second call would only lengthen the suite."""


def compile_and_run(fn: Callable[..., Any], *args: Any, repeats: int = 1,
                    compiler_options: dict[str, Any] | None = None,
                    ) -> tuple[Any, dict[str, float], Any]:
    """``(output, timings, jaxpr)`` of ``jax.jit(fn)(*args)``.

    ``timings``: ``compile_s`` (tracing, lowering and XLA compilation) and ``run_s`` (one call
    of the compiled executable until every output is ready, ``block_until_ready``), wall-clock;
    ``compile_cpu_s`` / ``run_cpu_s`` are this process's CPU seconds over the same spans (all
    threads), which other processes on a shared machine disturb less than wall time. With
    ``repeats`` > 1 the executable runs up to that many times (same inputs, same output; fewer
    once the calls add up to ``REPEAT_BUDGET_S``) and ``run_s`` / ``run_cpu_s`` are those of the
    fastest call (``run_s_all`` lists every call), which filters out a noisy neighbour's bursts;
    compilation is measured once either way.

    ``time_to_result_s`` (``_cpu_s``) is what a user waits for: ``compile_s`` plus the *first*
    call's run, as a fresh process with no compile cache pays it (``run.py`` starts every case
    in one, with JAX's persistent cache off). ``compiler_options`` go to ``jax.jit``.
    """
    wall, cpu = time.perf_counter(), time.process_time()
    jitted = jax.jit(fn, compiler_options=compiler_options) if compiler_options else jax.jit(fn)
    traced = jitted.trace(*args)
    compiled = traced.lower().compile()
    timings: dict[str, Any] = {"compile_s": time.perf_counter() - wall,
                               "compile_cpu_s": time.process_time() - cpu}
    runs = []
    for _ in range(max(1, repeats)):
        wall, cpu = time.perf_counter(), time.process_time()
        output = jax.block_until_ready(compiled(*args))
        runs.append((time.perf_counter() - wall, time.process_time() - cpu))
        if sum(wall for wall, _ in runs) >= REPEAT_BUDGET_S:
            break
    timings["run_s"], timings["run_cpu_s"] = min(runs)
    timings["time_to_result_s"] = timings["compile_s"] + runs[0][0]
    timings["time_to_result_cpu_s"] = timings["compile_cpu_s"] + runs[0][1]
    if repeats > 1:
        timings["run_s_all"] = [wall for wall, _ in runs]
    profile_dir = os.environ.get(PROFILE_ENV)
    if profile_dir:  # after the timed calls, so the trace never slows the numbers
        _profile(compiled, args, Path(profile_dir) / os.environ.get(CASE_ENV, "case"))
    return output, timings, traced.jaxpr


def timed(fn: Callable[..., Any], *args: Any) -> tuple[Any, float, float]:
    """``(output, compile seconds, run seconds)`` of ``jax.jit(fn)(*args)``: ``compile_and_run``
    for scripts that need only the two wall-clock spans."""
    output, timings, _ = compile_and_run(fn, *args)
    return output, timings["compile_s"], timings["run_s"]


def _profile(compiled: Any, args: tuple[Any, ...], prefix: Path) -> None:
    """Write the optimised HLO (``<prefix>.hlo.txt``), a trace of one more call
    (``<prefix>.trace.json.gz``, Perfetto / Chrome format) of ``compiled`` and its
    ``trace_summary`` (``<prefix>.summary.json``)."""
    import glob
    import shutil
    import tempfile

    prefix.parent.mkdir(parents=True, exist_ok=True)
    Path(f"{prefix}.hlo.txt").write_text(compiled.as_text())
    with tempfile.TemporaryDirectory() as logdir:
        with jax.profiler.trace(logdir, create_perfetto_trace=True):
            jax.block_until_ready(compiled(*args))
        traces = glob.glob(f"{logdir}/**/*.trace.json.gz", recursive=True)
        if traces:
            shutil.copy(traces[0], f"{prefix}.trace.json.gz")
            summary = trace_summary(traces[0])
            Path(f"{prefix}.summary.json").write_text(json.dumps(summary, indent=1))


def trace_summary(path: str | os.PathLike[str], top: int = 40) -> dict[str, Any]:
    """Per (process, thread) of a Perfetto / Chrome trace (``.json.gz``): the number of complete
    events, their summed duration, the span from the first start to the last end (µs; their
    ratio is how busy the thread was), and the ``top`` event names by summed duration with their
    counts and the first one's ``args`` (on a GPU: each kernel's HLO op). Small enough to read
    where a whole trace (hundreds of MB for a long run) is not."""
    import gzip
    from collections import defaultdict

    with gzip.open(path, "rt") as f:
        events = json.load(f)["traceEvents"]
    processes, threads = {}, {}
    for e in events:
        if e.get("ph") == "M" and e.get("name") == "process_name":
            processes[e["pid"]] = e["args"]["name"]
        elif e.get("ph") == "M" and e.get("name") == "thread_name":
            threads[(e["pid"], e["tid"])] = e["args"]["name"]
    groups: dict[tuple, dict[str, Any]] = defaultdict(
        lambda: {"events": 0, "total_us": 0.0, "start": math.inf, "end": -math.inf,
                 "names": defaultdict(lambda: [0, 0.0, None])})
    for e in events:
        if e.get("ph") != "X":
            continue
        group = groups[(e["pid"], e.get("tid"))]
        duration = float(e.get("dur", 0.0))
        group["events"] += 1
        group["total_us"] += duration
        group["start"] = min(group["start"], float(e["ts"]))
        group["end"] = max(group["end"], float(e["ts"]) + duration)
        entry = group["names"][e["name"]]
        entry[0] += 1
        entry[1] += duration
        if entry[2] is None:
            entry[2] = {k: str(v)[:200] for k, v in (e.get("args") or {}).items()}
    out = []
    for (pid, tid), group in groups.items():
        names = sorted(group["names"].items(), key=lambda item: -item[1][1])[:top]
        out.append({"process": processes.get(pid, str(pid)), "thread": threads.get((pid, tid),
                                                                                   str(tid)),
                    "events": group["events"], "total_us": round(group["total_us"], 1),
                    "span_us": round(group["end"] - group["start"], 1),
                    "top": [{"name": name[:160], "count": count, "total_us": round(total, 1),
                             "args": args} for name, (count, total, args) in names]})
    return {"threads": sorted(out, key=lambda t: -t["total_us"])}


def _dot_flops(eqn: Any) -> int:
    (lhs_contract, _), _ = eqn.params["dimension_numbers"]
    lhs_shape = eqn.invars[0].aval.shape
    contracted = math.prod(lhs_shape[d] for d in lhs_contract)
    return 2 * math.prod(eqn.outvars[0].aval.shape) * contracted


def _conv_flops(eqn: Any) -> int:
    # 2 · outputs · (kernel window · input features per group); the kernel is [O, I/g, *window]
    # in the canonical layout, whatever the dimension numbers, so its size / O is that product.
    kernel = eqn.invars[1].aval.shape
    out_features = kernel[eqn.params["dimension_numbers"].rhs_spec[0]]
    return 2 * math.prod(eqn.outvars[0].aval.shape) * math.prod(kernel) // out_features


def _sub_jaxprs(value: Any) -> list[Any]:
    if isinstance(value, jax.extend.core.ClosedJaxpr):
        return [value.jaxpr]
    if isinstance(value, jax.extend.core.Jaxpr):
        return [value]
    if isinstance(value, tuple | list):
        return [j for item in value for j in _sub_jaxprs(item)]
    return []


def _jaxpr_flops(jaxpr: Any, counts: dict[str, int]) -> int:
    total = 0
    for eqn in jaxpr.eqns:
        name = eqn.primitive.name
        if name == "dot_general":
            total += _dot_flops(eqn)
        elif name == "conv_general_dilated":
            total += _conv_flops(eqn)
        elif name == "cond":
            total += max(_jaxpr_flops(b.jaxpr, counts) for b in eqn.params["branches"])
        elif name == "scan":
            total += eqn.params["length"] * _jaxpr_flops(eqn.params["jaxpr"].jaxpr, counts)
        else:
            if name == "while":
                counts["while_loops"] += 1
            for value in eqn.params.values():
                total += sum(_jaxpr_flops(sub, counts) for sub in _sub_jaxprs(value))
    return total


def matmul_flops(jaxpr: Any) -> tuple[int, int]:
    """``(flops, while_loops)``: matmul FLOPs of a (closed) jaxpr with every ``scan`` body
    counted ``length`` times, and the number of ``while`` loops met (their bodies, whose trip
    count is unknown, are counted once).

    ``dot_general``: ``2 · |output| · ∏ contracted lhs dims``; ``conv_general_dilated``:
    ``2 · |output| · kernel window · input features per group`` (padding taps included); a
    ``cond`` counts its most expensive branch, an upper bound where a run mostly takes a cheap
    one (rejax's off-policy agents branch on "buffer filled yet" every step; jaxrl's fill the
    buffer in ``init`` and never branch). Elementwise work is left out: the figure is compared
    with dense matmul throughput.
    """
    counts = {"while_loops": 0}
    inner = jaxpr.jaxpr if isinstance(jaxpr, jax.extend.core.ClosedJaxpr) else jaxpr
    return _jaxpr_flops(inner, counts), counts["while_loops"]


def measure_matmul_peak(size: int | None = None, repeats: int = 5) -> float:
    """Dense float32 matmul FLOP/s of this machine: the best of ``repeats`` timed
    ``[size, size] @ [size, size]`` products (``2 · size³`` FLOPs each; ``size`` 2048 on a
    CPU, 8192 on an accelerator, where a smaller product is launch-bound). float32 at jax's
    default precision, the precision the agents' matmuls run at (TF32 on recent GPUs)."""
    if size is None:
        size = 2048 if jax.default_backend() == "cpu" else 8192
    a = jax.random.normal(jax.random.key(0), (size, size), jnp.float32)
    b = jax.random.normal(jax.random.key(1), (size, size), jnp.float32)
    product = jax.jit(jnp.dot)
    jax.block_until_ready(product(a, b))
    best = math.inf
    for _ in range(repeats):
        start = time.perf_counter()
        jax.block_until_ready(product(a, b))
        best = min(best, time.perf_counter() - start)
    return 2 * size**3 / best


EVAL_EPISODES = 128
"""Episodes per seed of the harness's own evaluation (``greedy_returns``), every framework."""
EVAL_KIND = (f"greedy policy, {EVAL_EPISODES} episodes per seed (benchmarks/measure.py "
             "greedy_returns), mean over seeds")


def greedy_returns(act: Callable[[jax.Array], jax.Array], env: Any, env_params: Any,
                   key: jax.Array, episodes: int = EVAL_EPISODES) -> jax.Array:
    """The undiscounted return of the first episode of each of ``episodes`` envs that act
    with ``act(obs [episodes, ...]) -> actions [episodes, ...]`` (a deterministic policy: the
    argmax of Q, the mode of a policy distribution), ``[episodes]``.

    ``env`` is a *gymnax* environment (``reset(key, params)``, ``step(key, state, action,
    params)`` returning ``(obs, state, reward, done, info)`` in gymnax 0.0.9, ``(obs, state,
    reward, terminated, truncated, info)`` in 1.x; both reset on their own): jaxrl's
    ``GymnaxEnv.gymnax_env`` or the env a peer trains on, so every framework's policy is
    scored by the same code on the same dynamics, after training and untimed. Each env runs
    ``params.max_steps_in_episode`` steps; rewards count until its first ``done``.
    """
    steps = int(env_params.max_steps_in_episode)
    reset_keys = jax.random.split(jax.random.fold_in(key, 0), episodes)
    obs, state = jax.vmap(env.reset, in_axes=(0, None))(reset_keys, env_params)

    def step(carry, step_key):
        obs, state, total, running = carry
        action = act(obs)
        out = jax.vmap(env.step, in_axes=(0, 0, 0, None))(
            jax.random.split(step_key, episodes), state, action, env_params)
        obs, state, reward = out[:3]
        # gymnax 1.x: (..., terminated, truncated, info); 0.0.9 (rejax's): (..., done, info)
        done = out[3] | out[4] if len(out) == 6 else out[3]
        total = total + jnp.where(running, reward, 0.0)
        return (obs, state, total, running & ~done.astype(bool)), None

    init = (obs, state, jnp.zeros((episodes,), jnp.float32), jnp.ones((episodes,), bool))
    (_, _, total, _), _ = jax.lax.scan(step, init,
                                       jax.random.split(jax.random.fold_in(key, 1), steps))
    return total


def nanmean(values: Any) -> float | None:
    """Mean of the finite entries (None when there are none: no episode finished)."""
    values = np.asarray(values, dtype=np.float64)
    finite = values[np.isfinite(values)]
    return float(finite.mean()) if finite.size else None


def emit(row: dict[str, Any]) -> None:
    """Add peak host / device memory and the load average now; print the row for ``run.py``."""
    row = {**row, "peak_host_mib": round(peak_host_mib(), 1), "device_memory": device_memory(),
           "loadavg_end": list(os.getloadavg())}
    sys.stdout.write(ROW_PREFIX + json.dumps(row, default=str) + "\n")
    sys.stdout.flush()
