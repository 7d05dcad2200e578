"""Run an algorithm on an env for several seeds in chunks: progress, CSV, plot, config record.

The CLI is a thin layer over ``run``; notebooks can call it too::

    from jaxrl.runner import run
    result = run("ppo", "CartPole-v1", ppo.Config(total_timesteps=100_000), seeds=4, out="runs/x")

Seed rule: seed ``s`` trains from ``jax.random.key(s)``; ``seeds=N`` trains ``seed … seed+N-1``
vmapped in one compiled call, so any seed of a multi-seed run can be reproduced alone.
"""

from __future__ import annotations

import csv
import dataclasses
import datetime as dt
import importlib.metadata
import itertools
import json
import math
import os
import re
import subprocess
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from jaxrl import envs, parallel
from jaxrl.agents import get_algorithm

__all__ = ["RunResult", "chunk_length", "default_out_dir", "run", "seed_keys", "setting_label",
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

    @property
    def steps_per_second(self) -> float:
        """Environment steps per second summed over every run (settings × seeds)."""
        runs = next(iter(self.metrics.values())).shape[0]
        return float(self.steps[-1]) * runs / max(self.run_seconds, 1e-9)


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


def run(algo: str, env_id: str, config: Any, *, seed: int = 0, seeds: int = 1,
        out: str | Path | None = None, env_kwargs: dict[str, Any] | None = None,
        sweep: dict[str, list[float]] | None = None, progress: bool = True,
        on_chunk: Callable[[int, dict[str, np.ndarray]], None] | None = None,
        devices: int | str = 1) -> RunResult:
    """Train ``algo`` on ``env_id`` for every sweep setting × ``seeds`` seeds in one vmapped call.

    ``sweep`` maps numeric Config fields to lists of values; the grid (every combination) is
    crossed with the seeds, and each setting uses the same seed keys. Writes ``config.json``,
    ``metrics.csv`` (``step, seed``, the swept fields, ``episode_return``, then the other metrics;
    one row per setting per seed per update), ``timings.json`` and ``returns.png`` (one curve per
    setting). ``out=None`` writes nothing. Bad input raises ``ValueError`` before anything is
    written. Metrics come back as ``[settings * seeds, updates]`` arrays (setting-major).
    ``devices`` (``"all"`` or a count) shards the runs, or a single run's envs, over a device
    mesh (``jaxrl.parallel``); in a multi-host run only process 0 writes files.
    """
    module = get_algorithm(algo)
    if seeds < 1:
        raise ValueError(f"--seeds must be >= 1, got {seeds}")
    env, env_params = envs.make(env_id, **(env_kwargs or {}))
    settings = sweep_settings(config, sweep)
    configs = [config.replace(**setting) for setting in settings]
    if hasattr(module, "check_config"):
        for setting_config in configs:
            module.check_config(setting_config)
    agent = module.make_agent(config, env, env_params)
    swept = list(settings[0])
    placement = parallel.Placement.create(devices, runs=len(settings) * seeds, seeds=seeds,
                                          settings=len(settings),
                                          num_envs=getattr(config, "num_envs", None))
    out_dir = Path(out) if out is not None and parallel.is_main_process() else None
    if out_dir is not None:
        if (out_dir / "config.json").exists():
            raise ValueError(f"output directory {out_dir} already holds a run; "
                             "pass a different --out")
        out_dir.mkdir(parents=True, exist_ok=True)
        _write_json_atomic(out_dir / "config.json", {
            "algo": algo, "env": env_id, "env_kwargs": env_kwargs or {}, "seed": seed,
            "seeds": list(range(seed, seed + seeds)), "config": config_to_dict(config),
            "sweep": sweep or {}, "seed_rule": "seed s trains from jax.random.key(s)",
            "versions": _versions(), "git_revision": _git_revision(),
            "devices": placement.describe(),
        })

    chunk = chunk_length(agent.num_updates)
    num_chunks = -(-agent.num_updates // chunk)
    # Run b = setting * seeds + seed_index; without a sweep the config is a closure constant.
    batched_configs = None
    if swept:
        batched_configs = jax.tree.map(lambda *leaves: jnp.repeat(jnp.stack(leaves), seeds, 0),
                                       *configs)

    def agent_for(run_config):
        return agent if run_config is None else module.make_agent(run_config, env, env_params)

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

            return jax.lax.scan(step, state, jnp.arange(chunk))

        return jax.vmap(one_run, in_axes=(0 if swept else None, 0))(run_configs, states)

    def init_runs(run_configs, keys):
        return jax.vmap(lambda c, k: agent_for(c).init(k),
                        in_axes=(0 if swept else None, 0))(run_configs, keys)

    keys, batched_configs = placement.shard((jnp.tile(seed_keys(seed, seeds), len(settings)),
                                             batched_configs))
    compile_start = time.perf_counter()
    init_fn = placement.compile(init_runs, batched_configs, keys)
    states = init_fn(batched_configs, keys)
    chunk_fn = placement.compile(run_chunk, batched_configs, states, chunk, donate_argnums=1)
    compile_seconds = time.perf_counter() - compile_start

    runs = len(settings) * seeds
    run_labels = [(settings[b // seeds], seed + b % seeds) for b in range(runs)]
    steps = (agent.initial_steps
             + np.arange(1, agent.num_updates + 1, dtype=np.int64) * agent.steps_per_update)
    total_steps = int(steps[-1])
    collected: list[dict[str, np.ndarray]] = []
    csv_file = writer = None
    if out_dir is not None:
        csv_file = open(out_dir / "metrics.csv", "w", newline="")  # noqa: SIM115
        writer = csv.writer(csv_file)

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
    run_start = time.perf_counter()
    try:
        with bar:
            task = bar.add_task(f"{algo} {env_id}", total=total_steps, sps="-", ret="-")
            for chunk_index in range(num_chunks):
                first = chunk_index * chunk
                active = min(chunk, agent.num_updates - first)
                states, metrics = chunk_fn(batched_configs, states, active)
                metrics = {k: v[:, :active] for k, v in placement.fetch(metrics).items()}
                collected.append(metrics)
                if writer is not None:
                    if chunk_index == 0:
                        others = sorted(k for k in metrics if k not in ("step", "episode_return"))
                        writer.writerow(["step", "seed", *swept, "episode_return", *others])
                    for offset in range(active):
                        for b, (setting, run_seed) in enumerate(run_labels):
                            writer.writerow([int(steps[first + offset]), run_seed,
                                             *(_format(setting[k]) for k in swept),
                                             *(_format(metrics[k][b, offset])
                                               for k in ("episode_return", *others))])
                    csv_file.flush()
                done_steps = int(steps[first + active - 1])
                elapsed = time.perf_counter() - run_start
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore", RuntimeWarning)
                    current = np.nanmean(metrics["episode_return"][:, -1])
                bar.update(task, completed=done_steps,
                           sps=f"{done_steps * runs / max(elapsed, 1e-9):,.0f}",
                           ret="-" if np.isnan(current) else f"{current:.1f}")
                if on_chunk is not None:
                    on_chunk(chunk_index, metrics)
    finally:
        if csv_file is not None:
            csv_file.close()
    jax.block_until_ready(states)
    run_seconds = time.perf_counter() - run_start
    metrics = {k: np.concatenate([c[k] for c in collected], axis=1) for k in collected[0]}
    result = RunResult(states, metrics, steps, out_dir, compile_seconds, run_seconds, settings)
    if out_dir is not None:
        _write_json_atomic(out_dir / "timings.json", {
            "compile_seconds": compile_seconds, "run_seconds": run_seconds,
            "env_steps_per_second": result.steps_per_second, "runs": runs, "seeds": seeds,
            "settings": len(settings), "total_env_steps_per_run": total_steps,
            "chunk_updates": chunk,
        })
        returns = metrics["episode_return"].reshape(len(settings), seeds, -1)
        plot_returns(steps, returns, out_dir / "returns.png", f"{algo} on {env_id}",
                     [setting_label(s) for s in settings] if swept else None)
    return result
