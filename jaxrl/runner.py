"""Run an algorithm on an env for several seeds in chunks: progress, CSV, plot, config record.

The CLI is a thin layer over ``run``; notebooks can call it too::

    from jaxrl.runner import run
    result = run("ppo", "CartPole-v1", ppo.Config(total_timesteps=100_000), seeds=4, out="runs/x")

Seed rule: seed ``s`` trains from ``jax.random.key(s)``; ``seeds=N`` trains ``seed … seed+N-1``
vmapped in one compiled call. Seed ``s`` of an ``N``-seed run is reproduced bitwise by
``seed=s, seeds=N``: one batch width compiles to the same kernels, and a seed's run does not
depend on its position or neighbours. Alone, or in a batch of another width, it rounds
differently and drifts from the batched run.

Reliability: the whole train state of every run is checkpointed under ``out/checkpoints/``
between chunks (``jaxrl.checkpoint``, atomic); ``resume_run(out)`` continues a stopped run and
ends with the same ``metrics.csv`` bytes and final state as an uninterrupted one; Ctrl-C saves a
checkpoint first (``RunInterrupted``); a NaN/Inf loss or parameter stops the run
(``TrainingDiverged``) before anything of the bad chunk is written. Env-step counts are Python
ints derived on the host (``env_steps``), exact past 2^31.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import itertools
import math
import os
import shlex
import signal
import threading
import time
import warnings
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from jaxrl import checkpoint, envs, parallel, registry
from jaxrl.backend import (
    compiler_options,
    cpu_threads,
    cpu_threefry,
    filtered_stderr,
    gradient_steps,
)
from jaxrl.loggers import Logger, check_loggers, open_loggers
from jaxrl.plots import default_smoothing, plot_returns
from jaxrl.run_dir import (
    RUN_IDENTITY,
    MetricsFile,
    check_same_run,
    git_revision,
    identity,
    latest_checkpoint,
    read_run,
    resolve_paths,
    save_checkpoint,
    versions,
    write_json_atomic,
)
from jaxrl.training.config import check_config, config_to_dict

__all__ = ["NAN_ALLOWED_METRICS", "Chunk", "RunInterrupted", "RunResult", "TrainingDiverged",
           "agent_factory", "chunk_length", "default_checkpoint_every", "env_steps", "iterate",
           "params_finite", "resume_run", "run", "seed_keys", "setting_label", "sweep_settings"]


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
    step_unit: str = "env steps"
    """what ``steps`` count (``Agent.step_unit``): env steps, or gradient steps offline"""
    compile_cache_hits: int = 0
    """programs loaded from the on-disk compile cache instead of compiled"""

    @property
    def steps_per_second(self) -> float:
        """Steps (``step_unit``) per second summed over every run (settings × seeds), counting
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


def env_steps(updates: int, steps_per_update: int, initial_steps: int = 0) -> int:
    """Env steps of one run after ``updates`` updates: ``initial_steps + updates ·
    steps_per_update``, a Python int on the host (device counters are int32 without x64 and
    would wrap past 2^31 steps)."""
    return int(initial_steps) + int(updates) * int(steps_per_update)


def agent_factory(algorithm: registry.Algorithm | str, env_id: str, env: Any, env_params: Any,
                  dataset: str | Path | None = None) -> Callable[..., Any]:
    """The algorithm's ``make_agent``; for one that needs a dataset (``registry.DATASET``) with
    the dataset file loaded, checked against the env and bound as ``dataset=``."""
    if isinstance(algorithm, str):
        algorithm = registry.get(algorithm)
    make_agent = algorithm.load().make_agent
    if registry.DATASET not in algorithm.needs:
        if dataset is not None:
            users = [a.name for a in registry.algorithms() if registry.DATASET in a.needs]
            raise ValueError(f"{algorithm.name} does not learn from a dataset; --dataset is for "
                             f"{', '.join(users)}: drop it")
        return make_agent
    if dataset is None:
        raise ValueError(f"{algorithm.name} learns from a dataset: pass --dataset FILE.npz (make "
                         f"one with `jaxrl dataset --env {env_id} --policy expert --steps N "
                         "--out FILE.npz`)")
    from jaxrl import datasets

    loaded = datasets.load(dataset, env, env_params, env_id)
    return functools.partial(make_agent, dataset=loaded)


def default_checkpoint_every(total_steps: int) -> int:
    """About ten checkpoints per run: ``ceil(total_steps / 10)`` env steps."""
    return max(1, -(-int(total_steps) // 10))


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


@dataclasses.dataclass
class _Plan:
    """Everything ``run`` decides before compiling: the env, the agent, the runs and the record
    that ``config.json`` holds."""

    algo: str
    env_id: str
    env: Any
    env_params: Any
    settings: list[dict[str, float]]
    configs: list[Any]
    make_agent: Callable[..., Any]
    agent: Any
    seed: int
    seeds: int
    placement: parallel.Placement
    record: dict[str, Any]
    checkpoint_every: int

    @property
    def swept(self) -> list[str]:
        return list(self.settings[0])

    @property
    def runs(self) -> int:
        return len(self.settings) * self.seeds

    @property
    def run_labels(self) -> list[tuple[dict[str, float], int]]:
        """``(setting, seed)`` of run ``b = setting_index * seeds + seed_index``."""
        return [(self.settings[b // self.seeds], self.seed + b % self.seeds)
                for b in range(self.runs)]

    @property
    def chunk(self) -> int:
        return chunk_length(self.agent.num_updates)

    @property
    def steps(self) -> np.ndarray:
        """Env steps after each update (int64, exact past 2^31)."""
        agent = self.agent
        return agent.initial_steps + np.arange(1, agent.num_updates + 1,
                                               dtype=np.int64) * agent.steps_per_update

    def env_steps(self, updates: int) -> int:
        return env_steps(updates, self.agent.steps_per_update, self.agent.initial_steps)

    @property
    def unit(self) -> str:
        return self.agent.step_unit


def _plan(algo: str, env_id: str, config: Any, *, seed: int, seeds: int,
          env_kwargs: dict[str, Any] | None, sweep: dict[str, list[float]] | None,
          devices: int | str, checkpoint_every: int | None,
          dataset: str | Path | None) -> _Plan:
    """Check the arguments (``ValueError`` / ``TypeError`` before anything is written), build
    the env and the agent, and the record of the run."""
    algorithm = registry.get(algo)
    if seeds < 1:
        raise ValueError(f"--seeds must be >= 1, got {seeds}")
    if checkpoint_every is not None and checkpoint_every < 0:
        raise ValueError(f"--checkpoint-every must be >= 0 env steps (0: only at the end), got "
                         f"{checkpoint_every}")
    env, env_params = envs.make(env_id, **(env_kwargs or {}))
    registry.check_env(algorithm, env_id, env, env_params)
    config = resolve_paths(config)  # config.json records where the demonstrations are
    settings = sweep_settings(config, sweep)
    configs = [config.replace(**setting) for setting in settings]
    for setting_config in configs:
        check_config(setting_config)
    if dataset is None and getattr(config, "init_from", "") and registry.DATASET in algorithm.needs:
        dataset = read_run(config.init_from).dataset  # an offline run continued on its data
    make_agent = agent_factory(algorithm, env_id, env, env_params, dataset)
    agent = make_agent(config, env, env_params)
    placement = parallel.Placement.create(devices, runs=len(settings) * seeds, seeds=seeds,
                                          settings=len(settings),
                                          num_envs=getattr(config, "num_envs", None))
    total_steps = env_steps(agent.num_updates, agent.steps_per_update, agent.initial_steps)
    every = default_checkpoint_every(total_steps) if checkpoint_every is None else checkpoint_every
    record = {
        "algo": algo, "env": env_id, "env_kwargs": env_kwargs or {}, "seed": seed,
        "seeds": list(range(seed, seed + seeds)), "config": config_to_dict(config),
        "sweep": sweep or {}, "seed_rule": "seed s trains from jax.random.key(s)",
        "checkpoint_every": every, "versions": versions(), "git_revision": git_revision(),
        "devices": placement.describe(),
        **({"dataset": str(Path(dataset).resolve())} if dataset is not None else {}),
    }
    return _Plan(algo, env_id, env, env_params, settings, configs, make_agent, agent, seed,
                 seeds, placement, record, every)


def _open_run_dir(plan: _Plan, out_path: Path | None, out_dir: Path | None,
                  resume: bool) -> Path | None:
    """Start the run directory (write ``config.json``) or, resuming, check it holds this run;
    returns the checkpoint to resume from (``None`` for a new run)."""
    if resume:
        read_run(out_path)
        check_same_run(out_path, plan.record)
        return latest_checkpoint(out_path)
    if out_dir is not None:
        if (out_dir / "config.json").exists():
            raise ValueError(f"output directory {out_dir} already holds a run; "
                             f"pass a different --out or continue it with --resume {out_dir}")
        out_dir.mkdir(parents=True, exist_ok=True)
        write_json_atomic(out_dir / "config.json", plan.record)
    return None


def _compile_runs(plan: _Plan, resume_from: Path | None, out_path: Path | None):
    """Compile the init and chunk programs; the initial states (restored when resuming).

    Returns ``(chunk_fn, states, batched_configs, start_updates)``. Every run of the batch
    (sweep settings × seeds) is one vmapped program; the last chunk may be partial, its surplus
    updates computed and discarded, so every chunk shares one compilation.
    """
    swept, chunk = plan.swept, plan.chunk
    # Run b = setting * seeds + seed_index; without a sweep the config is a closure constant.
    batched_configs = None
    if swept:
        batched_configs = jax.tree.map(
            lambda *leaves: jnp.repeat(jnp.stack(leaves), plan.seeds, 0), *plan.configs)

    def agent_for(run_config):
        return plan.agent if run_config is None else plan.make_agent(run_config, plan.env,
                                                                     plan.env_params)

    def run_chunk(run_configs, states, num_active):
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

    # XLA:CPU options for the whole run's length (all runs of the batch): a resume compiles the
    # same programs, so it stays bitwise; None off the CPU or where $XLA_FLAGS sets them.
    steps = gradient_steps(plan.configs[0], plan.agent.num_updates)
    options = compiler_options(None, None if steps is None else steps * plan.runs)
    placement = plan.placement
    keys, batched_configs = placement.shard(
        (jnp.tile(seed_keys(plan.seed, plan.seeds), len(plan.settings)), batched_configs))
    start_updates = 0
    if resume_from is not None:
        start_updates = _checkpoint_updates(plan, resume_from, out_path)
        like = jax.eval_shape(init_runs, batched_configs, keys)
        states = placement.shard(checkpoint.restore(resume_from, like=like))
    else:
        states = placement.compile(init_runs, batched_configs, keys,
                                   compiler_options=options)(batched_configs, keys)
    chunk_fn = placement.compile(run_chunk, batched_configs, states, chunk, donate_argnums=1,
                                 compiler_options=options)
    return chunk_fn, states, batched_configs, start_updates


def _checkpoint_updates(plan: _Plan, resume_from: Path, out_path: Path) -> int:
    """The updates ``resume_from`` covers, after checking it belongs to this run."""
    stored = checkpoint.read_metadata(resume_from)
    if any(identity(stored)[name] != identity(plan.record)[name] for name in RUN_IDENTITY):
        raise checkpoint.CheckpointError(f"checkpoint {resume_from} belongs to a different "
                                         f"run than {out_path}/config.json")
    updates = int(stored.get("updates", -1))
    if updates == plan.agent.num_updates:
        raise ValueError(f"the run in {out_path} is already complete ({updates} updates); "
                         "nothing to resume")
    if updates <= 0 or updates % plan.chunk:
        raise checkpoint.CheckpointError(f"checkpoint {resume_from} is corrupt: it records "
                                         f"{updates} updates")
    return updates


class _Progress:
    """What a run tells its user: "compiling…" (and whether the compile cache served it), the
    resume point, then a progress bar on a terminal (sized to its width) or, when output is
    piped, a plain line every tenth of the run. Silent with ``progress=False``."""

    def __init__(self, plan: _Plan, enabled: bool):
        from rich.console import Console

        self.plan, self.enabled = plan, enabled
        self.console = Console()
        self.total = plan.env_steps(plan.agent.num_updates)
        self.bar = self.task = None
        self.next_line = 0.0

    def say(self, message: str) -> None:
        if self.enabled:
            self.console.print(message, highlight=False, soft_wrap=True)

    def __enter__(self) -> _Progress:
        if self.enabled and self.console.is_terminal:
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

            columns = [TextColumn("[bold]{task.description}"), BarColumn(bar_width=None),
                       MofNCompleteColumn(), TextColumn("{task.fields[sps]}/s"),
                       TextColumn("return {task.fields[ret]}")]
            if self.console.width >= 100:
                from rich.progress import TimeElapsedColumn, TimeRemainingColumn

                columns += [TimeElapsedColumn(), TimeRemainingColumn()]
            self.bar = Progress(*columns, console=self.console, expand=True)
            self.bar.__enter__()
            self.task = self.bar.add_task(f"{self.plan.algo} {self.plan.env_id}",
                                          total=self.total, sps="-", ret="-")
        return self

    def __exit__(self, *exc_info: Any) -> None:
        if self.bar is not None:
            self.bar.__exit__(*exc_info)

    def update(self, done: int, steps_per_second: float, current: float) -> None:
        ret = "-" if np.isnan(current) else f"{current:.1f}"
        if self.bar is not None:
            self.bar.update(self.task, completed=done, sps=f"{steps_per_second:,.0f}", ret=ret)
        elif self.enabled and (done >= self.next_line * self.total or done == self.total):
            self.next_line = math.floor(10 * done / max(self.total, 1)) / 10 + 0.1
            self.say(f"{self.plan.algo} {self.plan.env_id}: {done:,}/{self.total:,} "
                     f"{self.plan.unit}, return {ret}, {steps_per_second:,.0f} "
                     f"{self.plan.unit}/s")


@contextlib.contextmanager
def _compile_cache_hits() -> Iterator[list[int]]:
    """Count the programs JAX loads from its persistent compile cache inside the block."""
    from jax import monitoring

    hits = [0]

    def listener(event: str, **kwargs: Any) -> None:
        if event == "/jax/compilation_cache/cache_hits":
            hits[0] += 1

    monitoring.register_event_listener(listener)
    try:
        yield hits
    finally:
        monitoring.unregister_event_listener(listener)


@dataclasses.dataclass(frozen=True)
class Chunk:
    """One chunk of a run, as ``iterate`` yields it: updates ``first`` to ``first + active``."""

    first: int
    active: int
    num_updates: int
    """updates in the whole run"""
    steps: np.ndarray
    """env (or gradient) steps after each of this chunk's updates ``[active]``"""
    metrics: dict[str, np.ndarray]
    """this chunk's metrics ``[runs, active]`` (the rows ``metrics.csv`` received)"""
    train_state: Any
    """the batched train state after the chunk (on its devices)"""

    @property
    def done(self) -> bool:
        return self.first + self.active == self.num_updates


@dataclasses.dataclass
class _Session:
    """A run between compiling and its last chunk: what the chunk loop reads and writes."""

    plan: _Plan
    chunk_fn: Any
    states: Any
    batched_configs: Any
    start_updates: int
    resume_from: Path | None
    out_path: Path | None
    out_dir: Path | None
    csv_file: MetricsFile
    collected: list
    loggers: list[Logger]
    reporter: _Progress
    compile_seconds: float
    compile_cache_hits: int
    run_start: float = 0.0
    timings: dict[str, Any] | None = None


def _chunks(session: _Session, interrupt: _InterruptFlag,
            save_on_close: bool) -> Iterator[Chunk]:
    """The chunk loop: run, check finiteness, write rows and logs, checkpoint, report progress,
    then yield the chunk. A requested interrupt (Ctrl-C) checkpoints and raises
    ``RunInterrupted`` after the yield. With ``save_on_close``, a consumer that stops early
    (``close()``: a ``break``, or an exception in its loop) gets a checkpoint of the last
    chunk it saw, unless one was just written."""
    plan, out_path, out_dir, csv_file = (session.plan, session.out_path, session.out_dir,
                                         session.csv_file)
    agent, placement = plan.agent, plan.placement
    chunk, steps, runs = plan.chunk, plan.steps, plan.runs
    num_chunks = -(-agent.num_updates // chunk)
    metadata = {name: plan.record.get(name) for name in RUN_IDENTITY} | {
        "num_updates": agent.num_updates, "chunk_updates": chunk,
        "runs": [{"seed": s, "setting": setting} for setting, s in plan.run_labels]}
    headline = csv_file.columns[0]
    last_checkpoint = session.resume_from
    saved_updates = session.start_updates
    saved_steps = plan.env_steps(session.start_updates)
    every = plan.checkpoint_every
    session.run_start = time.perf_counter()
    states = session.states
    updates = session.start_updates

    def save(updates):
        csv_file.sync()  # the rows a checkpoint covers are on disk
        return save_checkpoint(out_path, _host_tree(placement, states), updates, metadata,
                               out_dir is not None)

    try:
        for chunk_index in range(session.start_updates // chunk, num_chunks):
            first = chunk_index * chunk
            active = min(chunk, agent.num_updates - first)
            states, metrics, finite = session.chunk_fn(session.batched_configs, states, active)
            metrics = {k: v[:, :active] for k, v in placement.fetch(metrics).items()}
            _check_finite(metrics, placement.fetch(finite), first, plan.run_labels, steps,
                          last_checkpoint)
            session.collected.append(metrics)
            session.states = states
            csv_file.append(metrics, first, active)
            for logger in session.loggers:
                logger.write(metrics, first, active)
            updates = first + active
            done_steps = plan.env_steps(updates)
            stop = interrupt.requested and updates < agent.num_updates
            if out_path is not None and (updates == agent.num_updates or stop or (
                    every and done_steps // every > saved_steps // every)):
                last_checkpoint = save(updates)
                saved_steps, saved_updates = done_steps, updates
            elapsed = time.perf_counter() - session.run_start
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", RuntimeWarning)
                current = np.nanmean(metrics[headline][:, -1])
            run_steps = done_steps - plan.env_steps(session.start_updates)
            session.reporter.update(done_steps, run_steps * runs / max(elapsed, 1e-9), current)
            yield Chunk(first, active, agent.num_updates, steps[first:updates], metrics, states)
            if stop:
                raise RunInterrupted(plan.algo, out_path, last_checkpoint, updates)
    except GeneratorExit:
        if save_on_close and out_path is not None and updates > saved_updates:
            save(updates)
        raise


def _timings(plan: _Plan, result: RunResult) -> dict[str, Any]:
    """What ``timings.json`` holds."""
    return {
        "compile_seconds": result.compile_seconds, "run_seconds": result.run_seconds,
        f"{plan.unit}_per_second".replace(" ", "_"): result.steps_per_second, "runs": plan.runs,
        "seeds": plan.seeds, "settings": len(plan.settings),
        f"total_{plan.unit}_per_run".replace(" ", "_"): plan.env_steps(plan.agent.num_updates),
        "chunk_updates": plan.chunk, "resumed_from_update": result.resumed_updates,
        # compile_seconds is short when the programs came from this on-disk cache.
        "compile_cache": jax.config.jax_compilation_cache_dir,
        "compile_cache_hits": result.compile_cache_hits,
        # Which threefry lowering compiled it on CPU (same results; compile / run time differ).
        "cpu_threefry": cpu_threefry(),
        # XLA:CPU's thread-pool size ($JAXRL_CPU_THREADS); None: one thread per core.
        "cpu_threads": cpu_threads(),
    }


def _write_outputs(plan: _Plan, result: RunResult, out_dir: Path, window: int | None,
                   timings: dict[str, Any]) -> None:
    """``timings.json`` (``timings``) and ``returns.png``: the evaluation return where the agent
    logs one (training episodes as a lighter second curve), else the training episodes'
    return."""
    write_json_atomic(out_dir / "timings.json", timings)
    shape = (len(plan.settings), plan.seeds, -1)
    shown = "eval_return" if "eval_return" in result.metrics else "episode_return"
    training = (result.metrics["episode_return"].reshape(shape)
                if shown == "eval_return" and "episode_return" in result.metrics else None)
    plot_returns(plan.steps, result.metrics[shown].reshape(shape), out_dir / "returns.png",
                 f"{plan.algo} on {plan.env_id}",
                 [setting_label(s) for s in plan.settings] if plan.swept else None,
                 ylabel=shown.replace("_", " "), xlabel=plan.unit, training=training,
                 window=default_smoothing(plan.agent.num_updates) if window is None else window)


def run(algo: str, env_id: str, config: Any, *, seed: int = 0, seeds: int = 1,
        out: str | Path | None = None, env_kwargs: dict[str, Any] | None = None,
        sweep: dict[str, list[float]] | None = None, progress: bool = True,
        on_chunk: Callable[[int, dict[str, np.ndarray]], None] | None = None,
        devices: int | str = 1, checkpoint_every: int | None = None,
        resume: bool = False, dataset: str | Path | None = None,
        smooth: int | None = None, log: str | Sequence[str] = ("csv",),
        log_per_seed: bool = False) -> RunResult:
    """Train ``algo`` on ``env_id`` for every sweep setting × ``seeds`` seeds in one vmapped call.

    ``env_kwargs`` are the env's arguments (``envs.make``). ``sweep`` maps numeric Config fields
    to lists of values; the grid (every combination) is crossed with the seeds, and each setting
    uses the same seed keys. Writes ``config.json``, ``metrics.csv`` (``step, seed``, the swept
    fields, the return (``episode_return``, or ``eval_return`` for agents without training
    episodes), then the other metrics; one row per setting per seed per update),
    ``timings.json``, ``returns.png`` (one curve per setting, each seed smoothed over ``smooth``
    logged updates; default ``default_smoothing``) and ``checkpoints/update_<N>/``
    (``jaxrl.checkpoint``; the last ``KEEP_CHECKPOINTS`` are kept). ``out=None`` writes nothing.
    Bad input raises ``ValueError`` / ``TypeError`` before anything is written. Metrics come
    back as ``[settings * seeds, updates]`` arrays (setting-major). ``devices`` (``"all"`` or a
    count) shards the runs, or a single run's envs, over a device mesh (``jaxrl.parallel``); in
    a multi-host run only process 0 writes files.

    ``log`` adds loggers beside ``metrics.csv`` (``"tensorboard"``, ``"wandb"``; see
    ``jaxrl.loggers``), each logging the mean and std over seeds per update (and every seed's
    value with ``log_per_seed``); they are recorded in ``config.json``, so a resume keeps them.

    Checkpoints are written at the first chunk boundary after every ``checkpoint_every`` env
    steps (default: ``default_checkpoint_every``, about ten per run; 0: only at the end), at the
    end, and on Ctrl-C, which then raises ``RunInterrupted``. ``resume=True`` continues the run
    in ``out`` (same arguments, see ``resume_run``) from its newest checkpoint: rows of
    ``metrics.csv`` after it are dropped and recomputed, so the files and final state equal an
    uninterrupted run's bitwise. After each chunk, a non-finite metric (other than
    ``NAN_ALLOWED_METRICS``) or parameter raises ``TrainingDiverged`` without writing the bad
    chunk.
    """
    session = _start(algo, env_id, config, seed=seed, seeds=seeds, out=out, env_kwargs=env_kwargs,
                     sweep=sweep, progress=progress, devices=devices,
                     checkpoint_every=checkpoint_every, resume=resume, dataset=dataset, log=log,
                     log_per_seed=log_per_seed)
    try:
        with (_deferred_interrupt(session.out_path is not None) as interrupt,
              session.reporter):
            for chunk in _chunks(session, interrupt, save_on_close=False):
                if on_chunk is not None:
                    on_chunk(chunk.first // session.plan.chunk, chunk.metrics)
        return _finish(session, smooth)
    finally:
        _close(session)


def iterate(algo: str, env_id: str, config: Any, *, seed: int = 0, seeds: int = 1,
            out: str | Path | None = None, env_kwargs: dict[str, Any] | None = None,
            sweep: dict[str, list[float]] | None = None, progress: bool = True,
            devices: int | str = 1, checkpoint_every: int | None = None,
            resume: bool = False, dataset: str | Path | None = None,
            smooth: int | None = None, log: str | Sequence[str] = ("csv",),
            log_per_seed: bool = False) -> Iterator[Chunk]:
    """``run`` as an iterator: yields each ``Chunk`` (its metrics, steps and train state) as
    it arrives, for a notebook loop with a live plot (``jaxrl.plots.LivePlot``).

    The files are those of ``run`` with the same arguments. Stopping early (``break``, or an
    interrupt inside the loop) checkpoints the last chunk seen when ``out`` is given, so
    ``iterate(..., resume=True)`` (or ``resume_run``) continues it, and the finished run
    equals an uninterrupted one bitwise.
    """
    session = _start(algo, env_id, config, seed=seed, seeds=seeds, out=out, env_kwargs=env_kwargs,
                     sweep=sweep, progress=progress, devices=devices,
                     checkpoint_every=checkpoint_every, resume=resume, dataset=dataset, log=log,
                     log_per_seed=log_per_seed)
    try:
        with _deferred_interrupt(False) as interrupt, session.reporter:
            yield from _chunks(session, interrupt, save_on_close=True)
        _finish(session, smooth)
    finally:
        _close(session)


def _start(algo: str, env_id: str, config: Any, *, seed: int, seeds: int,
           out: str | Path | None, env_kwargs: dict[str, Any] | None,
           sweep: dict[str, list[float]] | None, progress: bool, devices: int | str,
           checkpoint_every: int | None, resume: bool, dataset: str | Path | None,
           log: str | Sequence[str], log_per_seed: bool) -> _Session:
    """Check the arguments, open the run directory, compile, open the CSV and the loggers."""
    if resume and out is None:
        raise ValueError("resume=True needs out=DIR, the directory of the run to continue")
    log = check_loggers(log)
    plan = _plan(algo, env_id, config, seed=seed, seeds=seeds, env_kwargs=env_kwargs,
                 sweep=sweep, devices=devices, checkpoint_every=checkpoint_every,
                 dataset=dataset)
    if log != ("csv",) or log_per_seed:
        plan.record.update(log=list(log), log_per_seed=log_per_seed)
    out_path = Path(out) if out is not None else None
    out_dir = out_path if out_path is not None and parallel.is_main_process() else None
    resume_from = _open_run_dir(plan, out_path, out_dir, resume)
    reporter = _Progress(plan, progress)
    if resume_from is not None:
        updates = int(checkpoint.read_metadata(resume_from).get("updates", 0))
        reporter.say(f"resuming {out_path} from update {updates} ({plan.unit[:-1]} "
                     f"{plan.env_steps(updates):,})")
    reporter.say(f"compiling {algo} on {env_id} ({plan.runs} run(s) in one program)…")

    compile_start = time.perf_counter()
    with _compile_cache_hits() as hits, filtered_stderr():
        chunk_fn, states, batched_configs, start_updates = _compile_runs(plan, resume_from,
                                                                         out_path)
    compile_seconds = time.perf_counter() - compile_start
    reporter.say(f"compiled in {compile_seconds:.1f} s" + (
        f" ({hits[0]} program(s) loaded from the compile cache)" if hits[0] else ""))

    csv_file = MetricsFile(chunk_fn.out_info[1], plan.swept, plan.steps, plan.run_labels)
    collected = csv_file.open(out_dir, resume_from, out_path, start_updates)
    session = _Session(plan, chunk_fn, states, batched_configs, start_updates, resume_from,
                       out_path, out_dir, csv_file, collected, [], reporter, compile_seconds,
                       hits[0])
    try:
        session.loggers = open_loggers(log, out_dir, plan, start_updates, log_per_seed)
    except BaseException:
        _close(session)
        raise
    return session


def _finish(session: _Session, smooth: int | None) -> RunResult:
    """The finished run's result; ``timings.json`` and ``returns.png`` when writing."""
    plan, collected = session.plan, session.collected
    jax.block_until_ready(session.states)
    run_seconds = time.perf_counter() - session.run_start
    metrics = {k: np.concatenate([c[k] for c in collected], axis=1) for k in collected[0]}
    result = RunResult(session.states, metrics, plan.steps, session.out_dir,
                       session.compile_seconds, run_seconds, plan.settings,
                       resumed_updates=session.start_updates, step_unit=plan.unit,
                       compile_cache_hits=session.compile_cache_hits)
    session.timings = _timings(plan, result)
    if session.out_dir is not None:
        _write_outputs(plan, result, session.out_dir, smooth, session.timings)
    return result


def _close(session: _Session) -> None:
    """Close the CSV and the loggers (with the timings of a finished run)."""
    session.csv_file.close()
    for logger in session.loggers:
        logger.close(session.timings)
    session.loggers = []


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
               checkpoint_every=spec.checkpoint_every, resume=True, dataset=spec.dataset,
               log=spec.log, log_per_seed=spec.log_per_seed)
