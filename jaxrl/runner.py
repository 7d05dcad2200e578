"""Run an algorithm on an env for several seeds in chunks: progress, CSV, plot, config record.

The CLI is a thin layer over ``run``; notebooks can call it too::

    from jaxrl.runner import run
    result = run("ppo", "CartPole-v1", ppo.Config(total_timesteps=100_000), seeds=4, out="runs/x")

Seed rule: seed ``s`` trains from ``jax.random.key(s)``; ``seeds=N`` trains ``seed … seed+N-1``
vmapped in one compiled call, so any seed of a multi-seed run can be reproduced alone.

Reliability: the whole train state of every run is checkpointed under ``out/checkpoints/``
between chunks (``jaxrl.checkpoint``, atomic); ``resume_run(out)`` continues a stopped run and
ends with the same ``metrics.csv`` bytes and final state as an uninterrupted one; Ctrl-C saves a
checkpoint first (``RunInterrupted``); a NaN/Inf loss or parameter stops the run
(``TrainingDiverged``) before anything of the bad chunk is written. Env-step counts are Python
ints derived on the host (``env_steps``), exact past 2^31.
"""

from __future__ import annotations

import contextlib
import csv
import dataclasses
import datetime as dt
import functools
import importlib.metadata
import io
import itertools
import json
import math
import os
import re
import shlex
import shutil
import signal
import subprocess
import threading
import time
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from jaxrl import checkpoint, envs, parallel
from jaxrl.agents import get_algorithm
from jaxrl.backend import cpu_threads, cpu_threefry

__all__ = ["KEEP_CHECKPOINTS", "NAN_ALLOWED_METRICS", "RUN_IDENTITY", "RunInterrupted",
           "RunResult", "RunSpec", "TrainingDiverged", "agent_factory", "chunk_length",
           "default_checkpoint_every", "default_out_dir", "env_steps", "latest_checkpoint",
           "params_finite", "read_run", "resume_run", "run", "seed_keys", "setting_label",
           "sweep_settings"]

VERSIONED_PACKAGES = ("jaxrl", "jax", "jaxlib", "flax", "optax", "chex", "distrax", "gymnax",
                      "brax", "numpy")


@dataclasses.dataclass
class RunResult:
    """What ``run`` returns: final states and metrics ``[settings * seeds, updates]``."""

    train_state: Any
    metrics: dict[str, np.ndarray]
    steps: np.ndarray
    out: Path | None
    compile_seconds: float
    run_seconds: float
    settings: list[dict[str, float]] = dataclasses.field(default_factory=lambda: [{}])
    resumed_updates: int = 0
    """updates restored from a checkpoint (``run(..., resume=True)``), not timed"""

    @property
    def steps_per_second(self) -> float:
        """Environment steps per second summed over every run (settings × seeds), counting
        only the updates this call ran."""
        runs = next(iter(self.metrics.values())).shape[0]
        restored = int(self.steps[self.resumed_updates - 1]) if self.resumed_updates else 0
        return (int(self.steps[-1]) - restored) * runs / max(self.run_seconds, 1e-9)


def seed_keys(seed: int, seeds: int) -> jax.Array:
    """Typed keys for seeds ``seed … seed+seeds-1``: seed ``s`` → ``jax.random.key(s)``."""
    return jnp.stack([jax.random.key(seed + i) for i in range(seeds)])


def chunk_length(num_updates: int, target_chunks: int = 50) -> int:
    """Updates per compiled call: ``ceil(num_updates / target_chunks)``, so the progress bar
    moves about ``target_chunks`` times (the last chunk may be partial)."""
    return max(1, math.ceil(num_updates / target_chunks))


def default_out_dir(algo: str, env_id: str) -> Path:
    """``runs/<algo>-<env>-<YYYYmmdd-HHMMSS>`` with the env id made path-safe."""
    safe_env = re.sub(r"[^A-Za-z0-9_.-]+", "_", env_id)
    stamp = dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    return Path("runs") / f"{algo}-{safe_env}-{stamp}"


def _versions() -> dict[str, str]:
    versions = {}
    for name in VERSIONED_PACKAGES:
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            versions[name] = "not installed"
    return versions


def _git_revision() -> str | None:
    try:
        result = subprocess.run(["git", "rev-parse", "HEAD"], cwd=Path(__file__).parent,
                                capture_output=True, text=True, timeout=5, check=False)
    except (OSError, subprocess.SubprocessError):
        return None
    return result.stdout.strip() or None


def config_to_dict(config: Any) -> dict[str, Any]:
    """A JSON-ready dict of a Config's fields (tuples become lists)."""
    return {f.name: getattr(config, f.name) for f in dataclasses.fields(config)}


def _format(value: Any) -> str:
    value = float(value)
    return "nan" if math.isnan(value) else format(value, ".9g")


def _write_json_atomic(path: Path, payload: dict[str, Any]) -> None:
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(json.dumps(payload, indent=2, default=str) + "\n")
    os.replace(tmp, path)


def plot_returns(steps: np.ndarray, returns: np.ndarray, path: Path, title: str,
                 labels: list[str] | None = None) -> None:
    """Mean ± std over seeds of ``returns [groups, seeds, updates]`` (or ``[seeds, updates]``)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    if returns.ndim == 2:
        returns = returns[None]
    fig, ax = plt.subplots(figsize=(6, 4))
    for i, group in enumerate(returns):
        with warnings.catch_warnings():  # all-NaN columns before the first finished episode
            warnings.simplefilter("ignore", RuntimeWarning)
            mean = np.nanmean(group, axis=0)
            std = np.nanstd(group, axis=0)
        label = labels[i] if labels else f"mean ± std over {group.shape[0]} seed(s)"
        ax.plot(steps, mean, label=label)
        ax.fill_between(steps, mean - std, mean + std, alpha=0.25)
    ax.set_xlabel("environment steps")
    ax.set_ylabel("episode return")
    ax.set_title(title)
    ax.legend(loc="best")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def sweep_settings(config: Any, sweep: dict[str, list[float]] | None) -> list[dict[str, float]]:
    """The grid of swept values, one dict per setting (``[{}]`` without a sweep).

    Only numeric leaves can be swept: static fields decide shapes and would need a separate
    compilation per value. Raises ``ValueError`` naming the sweepable fields otherwise.
    """
    if not sweep:
        return [{}]
    static = {f.name for f in dataclasses.fields(config) if not f.metadata.get("pytree_node", True)}
    numeric = [f.name for f in dataclasses.fields(config) if f.name not in static]
    for name, values in sweep.items():
        if name not in numeric:
            kind = "a static (shape-deciding) field" if name in static else "not a config field"
            raise ValueError(f"cannot sweep {name!r}: {kind}; sweepable fields: "
                             f"{', '.join(numeric)}")
        if not values:
            raise ValueError(f"--sweep {name} needs at least one value")
    names = list(sweep)
    return [dict(zip(names, combo, strict=True))
            for combo in itertools.product(*(sweep[n] for n in names))]


def setting_label(setting: dict[str, float]) -> str:
    """``"learning_rate=0.001, gamma=0.99"`` (empty for no sweep)."""
    return ", ".join(f"{k}={v:g}" for k, v in setting.items())


NAN_ALLOWED_METRICS = ("episode_return", "eval_return")
"""Metrics that are legitimately NaN (no finished episode yet); every other float metric must
stay finite."""

KEEP_CHECKPOINTS = 2
"""Checkpoints kept under ``DIR/checkpoints/`` (older ones are deleted after each save)."""

RUN_IDENTITY = ("algo", "env", "env_kwargs", "seeds", "config", "sweep", "dataset")
"""The ``config.json`` fields that define a run: a resume must match them exactly."""


class TrainingDiverged(ValueError):
    """A loss-like metric or the parameters became NaN/Inf; nothing after the last checkpoint
    was kept."""


class RunInterrupted(KeyboardInterrupt):
    """Ctrl-C during ``run``: a checkpoint was saved at the next chunk boundary."""

    def __init__(self, algo: str, out: Path, checkpoint_path: Path, updates: int):
        self.algo, self.out, self.checkpoint, self.updates = algo, out, checkpoint_path, updates
        super().__init__(f"interrupted after update {updates}; checkpoint saved in "
                         f"{checkpoint_path}; resume with: {self.resume_command}")

    @property
    def resume_command(self) -> str:
        """The shell command that continues the run."""
        return f"jaxrl train {self.algo} --resume {shlex.quote(str(self.out))}"


@dataclasses.dataclass(frozen=True)
class RunSpec:
    """What ``config.json`` says a run is: enough to resume it or rebuild its agent."""

    algo: str
    env_id: str
    env_kwargs: dict[str, Any]
    config: Any
    seed: int
    seeds: int
    sweep: dict[str, list[float]]
    checkpoint_every: int | None
    devices: int
    dataset: str | None = None


def env_steps(updates: int, steps_per_update: int, initial_steps: int = 0) -> int:
    """Env steps of one run after ``updates`` updates: ``initial_steps + updates ·
    steps_per_update``, a Python int on the host (device counters are int32 without x64 and
    would wrap past 2^31 steps)."""
    return int(initial_steps) + int(updates) * int(steps_per_update)


def agent_factory(module: Any, env_id: str, env: Any, env_params: Any,
                  dataset: str | Path | None = None) -> Callable[..., Any]:
    """``module.make_agent``; for offline algorithms (``OFFLINE = True``) with the dataset file
    loaded, checked against the env and bound as ``dataset=``."""
    if not getattr(module, "OFFLINE", False):
        if dataset is not None:
            raise ValueError("--dataset is for offline algorithms (bc, ...); drop it")
        return module.make_agent
    from jaxrl import datasets

    if dataset is None:
        raise ValueError("this algorithm learns from a dataset: pass --dataset FILE.npz (make "
                         "one with `jaxrl dataset --env ENV --policy expert --steps N --out F`)")
    loaded = datasets.load(dataset, env, env_params, env_id)
    return functools.partial(module.make_agent, dataset=loaded)


def default_checkpoint_every(total_steps: int) -> int:
    """About ten checkpoints per run: ``ceil(total_steps / 10)`` env steps."""
    return max(1, -(-int(total_steps) // 10))


def read_run(out: str | Path) -> RunSpec:
    """Parse ``out/config.json`` (``CheckpointError`` if it is missing or unreadable)."""
    out = Path(out)
    path = out / "config.json"
    if not path.is_file():
        raise checkpoint.CheckpointError(f"{out} holds no run ({path} is missing)")
    try:
        record = json.loads(path.read_text())
        module = get_algorithm(record["algo"])
        config = module.Config(**{name: tuple(value) if isinstance(value, list) else value
                                  for name, value in record["config"].items()})
        devices = record.get("devices")
        return RunSpec(algo=record["algo"], env_id=record["env"],
                       env_kwargs=record.get("env_kwargs", {}), config=config,
                       seed=record["seeds"][0], seeds=len(record["seeds"]),
                       sweep=record.get("sweep", {}),
                       checkpoint_every=record.get("checkpoint_every"),
                       devices=devices.get("count", 1) if isinstance(devices, dict) else 1,
                       dataset=record.get("dataset"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError, KeyError, IndexError,
            TypeError, ValueError) as error:
        raise checkpoint.CheckpointError(f"{path} is corrupt ({type(error).__name__}: "
                                         f"{error})") from None


def latest_checkpoint(out: str | Path) -> Path:
    """The newest ``out/checkpoints/update_*`` (``CheckpointError`` if there is none)."""
    directory = Path(out) / "checkpoints"
    found = sorted((int(path.name.removeprefix("update_")), path)
                   for path in directory.glob("update_*") if path.name[7:].isdigit())
    if not found:
        raise checkpoint.CheckpointError(
            f"{out} has no checkpoint to resume from (the run stopped before its first one); "
            "start it again with a new --out")
    return found[-1][1]


def _identity(record: dict[str, Any]) -> dict[str, Any]:
    return json.loads(json.dumps({k: record.get(k) for k in RUN_IDENTITY}, default=str))


def _check_same_run(out: Path, record: dict[str, Any]) -> None:
    stored = json.loads((out / "config.json").read_text())
    expected, found = _identity(record), _identity(stored)
    for name in RUN_IDENTITY:
        if expected[name] != found[name]:
            if isinstance(found[name], dict) and isinstance(expected[name], dict):
                fields = sorted(k for k in found[name].keys() | expected[name].keys()
                                if found[name].get(k) != expected[name].get(k))
                name = f"{name} ({', '.join(fields)})"
            raise checkpoint.CheckpointError(
                f"{out} holds a different run: its {name} differs from the one requested; "
                f"resume it with `jaxrl train {found['algo']} --resume {out}` alone")


def _entry_name(entry: Any) -> str:
    for attribute in ("name", "key", "idx"):
        if hasattr(entry, attribute):
            return str(getattr(entry, attribute))
    return str(entry)


def params_finite(train_state: Any) -> jax.Array:
    """Whether every floating leaf under a top-level field whose name contains ``params``
    (``params``, ``target_params``, ``actor_params``, …) is finite; True if there is none."""
    leaves = [leaf for path, leaf in jax.tree_util.tree_flatten_with_path(train_state)[0]
              if path and "params" in _entry_name(path[0])
              and jnp.issubdtype(leaf.dtype, jnp.floating)]
    if not leaves:
        return jnp.ones((), bool)
    return jnp.stack([jnp.isfinite(leaf).all() for leaf in leaves]).all()


def _check_finite(metrics: dict[str, np.ndarray], finite: np.ndarray, first: int,
                  run_labels: list[tuple[dict[str, float], int]], steps: np.ndarray,
                  last_checkpoint: Path | None) -> None:
    first_bad = None  # (update offset, run, metric)
    for name in sorted(metrics):
        values = metrics[name]
        if name in NAN_ALLOWED_METRICS or not np.issubdtype(values.dtype, np.floating):
            continue
        runs, offsets = np.nonzero(~np.isfinite(values))
        if runs.size:
            i = np.lexsort((runs, offsets))[0]
            candidate = (int(offsets[i]), int(runs[i]), name)
            first_bad = candidate if first_bad is None else min(first_bad, candidate)
    kept = (f"the last good checkpoint is {last_checkpoint}" if last_checkpoint
            else "no checkpoint was written before it")
    if first_bad is not None:
        offset, run_index, name = first_bad
        setting, seed = run_labels[run_index]
        where = f"seed {seed}" + (f" [{setting_label(setting)}]" if setting else "")
        raise TrainingDiverged(
            f"training diverged: {name} = {metrics[name][run_index, offset]} at update "
            f"{first + offset + 1} (env step {int(steps[first + offset])}) of {where}; {kept}; "
            "lower the learning rate or check the reward and observation scales")
    if not finite.all():
        run_index = int(np.flatnonzero(~finite)[0])
        setting, seed = run_labels[run_index]
        where = f"seed {seed}" + (f" [{setting_label(setting)}]" if setting else "")
        last = first + next(iter(metrics.values())).shape[1]
        raise TrainingDiverged(
            f"training diverged: the parameters of {where} became non-finite during updates "
            f"{first + 1}-{last}; {kept}; lower the learning rate")


class _InterruptFlag:
    requested = False


@contextlib.contextmanager
def _deferred_interrupt(enabled: bool) -> Iterator[_InterruptFlag]:
    """Turn the first Ctrl-C into a flag the chunk loop checks (a second one stops at once)."""
    flag = _InterruptFlag()
    if not enabled or threading.current_thread() is not threading.main_thread():
        yield flag
        return
    previous = signal.getsignal(signal.SIGINT)

    def handler(signum, frame):
        if flag.requested:
            signal.signal(signal.SIGINT, previous)
            raise KeyboardInterrupt
        flag.requested = True
        os.write(2, b"\njaxrl: saving a checkpoint after the current chunk "
                    b"(Ctrl-C again to stop without one)\n")

    signal.signal(signal.SIGINT, handler)
    try:
        yield flag
    finally:
        signal.signal(signal.SIGINT, previous)


def _csv_rows(metrics: dict[str, np.ndarray], columns: list[str], first: int, active: int,
              steps: np.ndarray, run_labels: list[tuple[dict[str, float], int]],
              swept: list[str]) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    for offset in range(active):
        for b, (setting, run_seed) in enumerate(run_labels):
            writer.writerow([int(steps[first + offset]), run_seed,
                             *(_format(setting[k]) for k in swept),
                             *(_format(metrics[k][b, offset]) for k in columns)])
    return buffer.getvalue()


def _resume_metrics(path: Path, header: str, rows: int, runs: int,
                    info: dict[str, Any], columns: list[str],
                    steps: np.ndarray) -> tuple[int, dict[str, np.ndarray]]:
    """Keep the header and the first ``rows`` rows of ``metrics.csv``: ``(their byte length,
    metrics [runs, rows / runs])`` parsed back (9 significant digits round-trip float32)."""
    try:
        lines = path.read_bytes().splitlines(keepends=True)
    except OSError as error:
        raise checkpoint.CheckpointError(f"cannot read {path} ({error})") from None
    kept = lines[:rows + 1]
    if (len(kept) < rows + 1 or not kept[-1].endswith(b"\n")
            or kept[0].decode(errors="replace").rstrip("\r\n") != header):
        raise checkpoint.CheckpointError(
            f"{path} does not hold the {rows} rows its last checkpoint covers; the run "
            "directory is corrupt")
    updates = rows // runs
    table = list(csv.reader(io.StringIO(b"".join(kept[1:]).decode())))
    offset = len(header.split(",")) - len(columns)
    try:
        values = np.array([row[offset:] for row in table], dtype=np.float64)
    except ValueError:
        raise checkpoint.CheckpointError(f"{path} is corrupt (non-numeric values)") from None
    values = values.reshape(updates, runs, len(columns)).transpose(1, 0, 2)
    metrics = {}
    for name, spec in info.items():
        if name in columns:
            metrics[name] = values[..., columns.index(name)].astype(spec.dtype)
        else:  # "step": not in the CSV, derived on the host
            metrics[name] = np.broadcast_to(steps[:updates], (runs, updates)).astype(spec.dtype)
    return sum(len(line) for line in kept), metrics


def _host_tree(placement: parallel.Placement, tree: Any) -> Any:
    """Every leaf gathered to the host (typed keys travel as key data and stay typed)."""
    leaves, treedef = jax.tree.flatten(tree)
    impls = [jax.random.key_impl(leaf)
             if jax.dtypes.issubdtype(leaf.dtype, jax.dtypes.prng_key) else None
             for leaf in leaves]
    data = placement.fetch([jax.random.key_data(leaf) if impl else leaf
                            for leaf, impl in zip(leaves, impls, strict=True)])
    return jax.tree.unflatten(treedef, [
        jax.random.wrap_key_data(leaf, impl=impl) if impl else leaf
        for leaf, impl in zip(data, impls, strict=True)])


def _save_checkpoint(out: Path, states: Any, updates: int, metadata: dict[str, Any],
                     write: bool) -> Path:
    path = out / "checkpoints" / f"update_{updates:010d}"
    if write:
        checkpoint.save(path, states, {**metadata, "updates": updates})
        older = sorted(p for p in path.parent.glob("update_*") if p.name[7:].isdigit())
        for stale in older[:-KEEP_CHECKPOINTS]:
            doomed = stale.with_name(f".{stale.name}.deleting")
            os.rename(stale, doomed)  # never a half-deleted checkpoint under a valid name
            shutil.rmtree(doomed)
    return path


def run(algo: str, env_id: str, config: Any, *, seed: int = 0, seeds: int = 1,
        out: str | Path | None = None, env_kwargs: dict[str, Any] | None = None,
        sweep: dict[str, list[float]] | None = None, progress: bool = True,
        on_chunk: Callable[[int, dict[str, np.ndarray]], None] | None = None,
        devices: int | str = 1, checkpoint_every: int | None = None,
        resume: bool = False, dataset: str | Path | None = None) -> RunResult:
    """Train ``algo`` on ``env_id`` for every sweep setting × ``seeds`` seeds in one vmapped call.

    ``sweep`` maps numeric Config fields to lists of values; the grid (every combination) is
    crossed with the seeds, and each setting uses the same seed keys. Writes ``config.json``,
    ``metrics.csv`` (``step, seed``, the swept fields, ``episode_return``, then the other metrics;
    one row per setting per seed per update), ``timings.json``, ``returns.png`` (one curve per
    setting) and ``checkpoints/update_<N>/`` (``jaxrl.checkpoint``; the last
    ``KEEP_CHECKPOINTS`` are kept). ``out=None`` writes nothing. Bad input raises ``ValueError``
    before anything is written. Metrics come back as ``[settings * seeds, updates]`` arrays
    (setting-major). ``devices`` (``"all"`` or a count) shards the runs, or a single run's envs,
    over a device mesh (``jaxrl.parallel``); in a multi-host run only process 0 writes files.

    Checkpoints are written at the first chunk boundary after every ``checkpoint_every`` env
    steps (default: ``default_checkpoint_every``, about ten per run; 0: only at the end), at the
    end, and on Ctrl-C, which then raises ``RunInterrupted``. ``resume=True`` continues the run
    in ``out`` (same arguments, see ``resume_run``) from its newest checkpoint: rows of
    ``metrics.csv`` after it are dropped and recomputed, so the files and final state equal an
    uninterrupted run's bitwise. After each chunk, a non-finite metric (other than
    ``NAN_ALLOWED_METRICS``) or parameter raises ``TrainingDiverged`` without writing the bad
    chunk.
    """
    module = get_algorithm(algo)
    if seeds < 1:
        raise ValueError(f"--seeds must be >= 1, got {seeds}")
    if checkpoint_every is not None and checkpoint_every < 0:
        raise ValueError(f"--checkpoint-every must be >= 0 env steps (0: only at the end), got "
                         f"{checkpoint_every}")
    if resume and out is None:
        raise ValueError("resume=True needs out=DIR, the directory of the run to continue")
    env, env_params = envs.make(env_id, **(env_kwargs or {}))
    settings = sweep_settings(config, sweep)
    configs = [config.replace(**setting) for setting in settings]
    if hasattr(module, "check_config"):
        for setting_config in configs:
            module.check_config(setting_config)
    make_agent = agent_factory(module, env_id, env, env_params, dataset)
    agent = make_agent(config, env, env_params)
    swept = list(settings[0])
    placement = parallel.Placement.create(devices, runs=len(settings) * seeds, seeds=seeds,
                                          settings=len(settings),
                                          num_envs=getattr(config, "num_envs", None))
    out_path = Path(out) if out is not None else None
    out_dir = out_path if out_path is not None and parallel.is_main_process() else None
    total_steps = env_steps(agent.num_updates, agent.steps_per_update, agent.initial_steps)
    every = default_checkpoint_every(total_steps) if checkpoint_every is None else checkpoint_every
    record = {
        "algo": algo, "env": env_id, "env_kwargs": env_kwargs or {}, "seed": seed,
        "seeds": list(range(seed, seed + seeds)), "config": config_to_dict(config),
        "sweep": sweep or {}, "seed_rule": "seed s trains from jax.random.key(s)",
        "checkpoint_every": every, "versions": _versions(), "git_revision": _git_revision(),
        "devices": placement.describe(),
        **({"dataset": str(Path(dataset).resolve())} if dataset is not None else {}),
    }
    resume_from = None
    if resume:
        read_run(out_path)
        _check_same_run(out_path, record)
        resume_from = latest_checkpoint(out_path)
    elif out_dir is not None:
        if (out_dir / "config.json").exists():
            raise ValueError(f"output directory {out_dir} already holds a run; "
                             f"pass a different --out or continue it with --resume {out_dir}")
        out_dir.mkdir(parents=True, exist_ok=True)
        _write_json_atomic(out_dir / "config.json", record)

    chunk = chunk_length(agent.num_updates)
    num_chunks = -(-agent.num_updates // chunk)
    # Run b = setting * seeds + seed_index; without a sweep the config is a closure constant.
    batched_configs = None
    if swept:
        batched_configs = jax.tree.map(lambda *leaves: jnp.repeat(jnp.stack(leaves), seeds, 0),
                                       *configs)

    def agent_for(run_config):
        return agent if run_config is None else make_agent(run_config, env, env_params)

    def run_chunk(run_configs, states, num_active):
        # The last chunk may be partial: its surplus updates are computed and discarded, so
        # every chunk shares one compilation.
        def one_run(run_config, state):
            update = agent_for(run_config).update

            def step(state, index):
                new_state, metrics = update(state)
                active = index < num_active
                state = jax.tree.map(lambda new, old: jnp.where(active, new, old),
                                     new_state, state)
                return state, metrics

            state, metrics = jax.lax.scan(step, state, jnp.arange(chunk))
            return state, metrics, params_finite(state)

        return jax.vmap(one_run, in_axes=(0 if swept else None, 0))(run_configs, states)

    def init_runs(run_configs, keys):
        return jax.vmap(lambda c, k: agent_for(c).init(k),
                        in_axes=(0 if swept else None, 0))(run_configs, keys)

    keys, batched_configs = placement.shard((jnp.tile(seed_keys(seed, seeds), len(settings)),
                                             batched_configs))
    runs = len(settings) * seeds
    run_labels = [(settings[b // seeds], seed + b % seeds) for b in range(runs)]
    steps = (agent.initial_steps
             + np.arange(1, agent.num_updates + 1, dtype=np.int64) * agent.steps_per_update)
    metadata = {name: record.get(name) for name in RUN_IDENTITY} | {
        "num_updates": agent.num_updates, "chunk_updates": chunk,
        "runs": [{"seed": s, "setting": setting} for setting, s in run_labels]}
    compile_start = time.perf_counter()
    start_updates = 0
    if resume_from is not None:
        stored = checkpoint.read_metadata(resume_from)
        if any(_identity(stored)[name] != _identity(record)[name] for name in RUN_IDENTITY):
            raise checkpoint.CheckpointError(f"checkpoint {resume_from} belongs to a different "
                                             f"run than {out_path}/config.json")
        start_updates = int(stored.get("updates", -1))
        if start_updates == agent.num_updates:
            raise ValueError(f"the run in {out_path} is already complete ({start_updates} "
                             "updates); nothing to resume")
        if start_updates <= 0 or start_updates % chunk:
            raise checkpoint.CheckpointError(f"checkpoint {resume_from} is corrupt: it records "
                                             f"{start_updates} updates")
        like = jax.eval_shape(init_runs, batched_configs, keys)
        states = placement.shard(checkpoint.restore(resume_from, like=like))
    else:
        init_fn = placement.compile(init_runs, batched_configs, keys)
        states = init_fn(batched_configs, keys)
    chunk_fn = placement.compile(run_chunk, batched_configs, states, chunk, donate_argnums=1)
    compile_seconds = time.perf_counter() - compile_start

    metric_info = chunk_fn.out_info[1]
    columns = ["episode_return", *sorted(k for k in metric_info
                                         if k not in ("step", "episode_return"))]
    header = ",".join(["step", "seed", *swept, *columns])
    collected: list[dict[str, np.ndarray]] = []
    csv_file = None
    if resume_from is not None:
        csv_length, earlier = _resume_metrics(out_path / "metrics.csv", header,
                                              start_updates * runs, runs, metric_info, columns,
                                              steps)
        collected.append(earlier)
    if out_dir is not None:
        if resume_from is not None:
            for leftover in (out_dir / "checkpoints").glob(".update_*"):
                shutil.rmtree(leftover, ignore_errors=True)  # a save or delete cut short
            csv_file = open(out_dir / "metrics.csv", "r+", newline="")  # noqa: SIM115
            csv_file.truncate(csv_length)
            csv_file.seek(csv_length)
        else:
            csv_file = open(out_dir / "metrics.csv", "w", newline="")  # noqa: SIM115
            csv_file.write(header + "\r\n")

    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    bar = Progress(TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
                   TextColumn("{task.fields[sps]} steps/s"),
                   TextColumn("return {task.fields[ret]}"),
                   TimeElapsedColumn(), TimeRemainingColumn(), disable=not progress)
    last_checkpoint = resume_from
    saved_steps = env_steps(start_updates, agent.steps_per_update, agent.initial_steps)
    run_start = time.perf_counter()
    try:
        with _deferred_interrupt(out_path is not None) as interrupt, bar:
            task = bar.add_task(f"{algo} {env_id}", total=total_steps, sps="-", ret="-",
                                completed=saved_steps if start_updates else 0)
            for chunk_index in range(start_updates // chunk, num_chunks):
                first = chunk_index * chunk
                active = min(chunk, agent.num_updates - first)
                states, metrics, finite = chunk_fn(batched_configs, states, active)
                metrics = {k: v[:, :active] for k, v in placement.fetch(metrics).items()}
                _check_finite(metrics, placement.fetch(finite), first, run_labels, steps,
                              last_checkpoint)
                collected.append(metrics)
                if csv_file is not None:
                    csv_file.write(_csv_rows(metrics, columns, first, active, steps,
                                             run_labels, swept))
                    csv_file.flush()
                updates = first + active
                done_steps = env_steps(updates, agent.steps_per_update, agent.initial_steps)
                stop = interrupt.requested and updates < agent.num_updates
                if out_path is not None and (updates == agent.num_updates or stop or (
                        every and done_steps // every > saved_steps // every)):
                    if csv_file is not None:
                        os.fsync(csv_file.fileno())  # the rows a checkpoint covers are on disk
                    last_checkpoint = _save_checkpoint(out_path, _host_tree(placement, states),
                                                       updates, metadata, out_dir is not None)
                    saved_steps = done_steps
                elapsed = time.perf_counter() - run_start
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore", RuntimeWarning)
                    current = np.nanmean(metrics["episode_return"][:, -1])
                run_steps = done_steps - env_steps(start_updates, agent.steps_per_update,
                                                   agent.initial_steps)
                bar.update(task, completed=done_steps,
                           sps=f"{run_steps * runs / max(elapsed, 1e-9):,.0f}",
                           ret="-" if np.isnan(current) else f"{current:.1f}")
                if on_chunk is not None:
                    on_chunk(chunk_index, metrics)
                if stop:
                    raise RunInterrupted(algo, out_path, last_checkpoint, updates)
    finally:
        if csv_file is not None:
            csv_file.close()
    jax.block_until_ready(states)
    run_seconds = time.perf_counter() - run_start
    metrics = {k: np.concatenate([c[k] for c in collected], axis=1) for k in collected[0]}
    result = RunResult(states, metrics, steps, out_dir, compile_seconds, run_seconds, settings,
                       resumed_updates=start_updates)
    if out_dir is not None:
        _write_json_atomic(out_dir / "timings.json", {
            "compile_seconds": compile_seconds, "run_seconds": run_seconds,
            "env_steps_per_second": result.steps_per_second, "runs": runs, "seeds": seeds,
            "settings": len(settings), "total_env_steps_per_run": total_steps,
            "chunk_updates": chunk, "resumed_from_update": start_updates,
            # compile_seconds is short when the programs came from this on-disk cache.
            "compile_cache": jax.config.jax_compilation_cache_dir,
            # Which threefry lowering compiled it on CPU (same results; compile / run time differ).
            "cpu_threefry": cpu_threefry(),
            # XLA:CPU's thread-pool size ($JAXRL_CPU_THREADS); None: one thread per core.
            "cpu_threads": cpu_threads(),
        })
        returns = metrics["episode_return"].reshape(len(settings), seeds, -1)
        plot_returns(steps, returns, out_dir / "returns.png", f"{algo} on {env_id}",
                     [setting_label(s) for s in settings] if swept else None)
    return result


def resume_run(out: str | Path, *, progress: bool = True,
               on_chunk: Callable[[int, dict[str, np.ndarray]], None] | None = None,
               devices: int | str | None = None) -> RunResult:
    """Continue the run in ``out`` from its newest checkpoint with the algorithm, env, config,
    seeds, sweep and checkpoint interval recorded in ``out/config.json`` (``devices``: the
    recorded count unless given)."""
    spec = read_run(out)
    return run(spec.algo, spec.env_id, spec.config, seed=spec.seed, seeds=spec.seeds, out=out,
               env_kwargs=spec.env_kwargs, sweep=spec.sweep or None, progress=progress,
               on_chunk=on_chunk, devices=spec.devices if devices is None else devices,
               checkpoint_every=spec.checkpoint_every, resume=True, dataset=spec.dataset)
