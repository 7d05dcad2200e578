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

from jaxrl import envs
from jaxrl.agents import get_algorithm

__all__ = ["RunResult", "chunk_length", "default_out_dir", "run", "seed_keys"]

VERSIONED_PACKAGES = ("jaxrl", "jax", "jaxlib", "flax", "optax", "chex", "distrax", "gymnax",
                      "brax", "numpy")


@dataclasses.dataclass
class RunResult:
    """What ``run`` returns: final states (batched over seeds), metrics ``[seeds, updates]``."""

    train_state: Any
    metrics: dict[str, np.ndarray]
    steps: np.ndarray
    out: Path | None
    compile_seconds: float
    run_seconds: float

    @property
    def steps_per_second(self) -> float:
        seeds = next(iter(self.metrics.values())).shape[0]
        return float(self.steps[-1]) * seeds / max(self.run_seconds, 1e-9)


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


def run(algo: str, env_id: str, config: Any, *, seed: int = 0, seeds: int = 1,
        out: str | Path | None = None, env_kwargs: dict[str, Any] | None = None,
        progress: bool = True,
        on_chunk: Callable[[int, dict[str, np.ndarray]], None] | None = None) -> RunResult:
    """Train ``algo`` on ``env_id`` for ``seeds`` seeds (vmapped) and record the run in ``out``.

    Writes ``config.json``, ``metrics.csv`` (columns ``step, seed, episode_return`` then the other
    metrics, one row per seed per update), ``timings.json`` and ``returns.png``. ``out=None``
    writes nothing. Raises ``ValueError`` for bad input before anything is written.
    """
    module = get_algorithm(algo)
    if seeds < 1:
        raise ValueError(f"--seeds must be >= 1, got {seeds}")
    env, env_params = envs.make(env_id, **(env_kwargs or {}))
    if hasattr(module, "check_config"):
        module.check_config(config)
    agent = module.make_agent(config, env, env_params)
    out_dir = Path(out) if out is not None else None
    if out_dir is not None:
        if (out_dir / "config.json").exists():
            raise ValueError(f"output directory {out_dir} already holds a run; "
                             "pass a different --out")
        out_dir.mkdir(parents=True, exist_ok=True)
        _write_json_atomic(out_dir / "config.json", {
            "algo": algo, "env": env_id, "env_kwargs": env_kwargs or {}, "seed": seed,
            "seeds": list(range(seed, seed + seeds)), "config": config_to_dict(config),
            "seed_rule": "seed s trains from jax.random.key(s)",
            "versions": _versions(), "git_revision": _git_revision(),
            "devices": [str(d) for d in jax.devices()],
        })

    chunk = chunk_length(agent.num_updates)
    num_chunks = -(-agent.num_updates // chunk)

    def run_chunk(states, num_active):
        # The last chunk may be partial: its surplus updates are computed and discarded, so
        # every chunk shares one compilation.
        def one_seed(state):
            def step(state, index):
                new_state, metrics = agent.update(state)
                active = index < num_active
                state = jax.tree.map(lambda new, old: jnp.where(active, new, old),
                                     new_state, state)
                return state, metrics

            return jax.lax.scan(step, state, jnp.arange(chunk))

        return jax.vmap(one_seed)(states)

    keys = seed_keys(seed, seeds)
    compile_start = time.perf_counter()
    init_fn = jax.jit(jax.vmap(agent.init)).lower(keys).compile()
    states = init_fn(keys)
    chunk_fn = jax.jit(run_chunk, donate_argnums=0).lower(states, chunk).compile()
    compile_seconds = time.perf_counter() - compile_start

    steps = np.arange(1, agent.num_updates + 1, dtype=np.int64) * agent.steps_per_update
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
                states, metrics = chunk_fn(states, active)
                metrics = {k: np.asarray(v)[:, :active] for k, v in metrics.items()}
                collected.append(metrics)
                if writer is not None:
                    if chunk_index == 0:
                        others = sorted(k for k in metrics if k not in ("step", "episode_return"))
                        writer.writerow(["step", "seed", "episode_return", *others])
                    for offset in range(active):
                        for seed_index in range(seeds):
                            writer.writerow([int(steps[first + offset]), seed + seed_index,
                                             *(_format(metrics[k][seed_index, offset])
                                               for k in ("episode_return", *others))])
                    csv_file.flush()
                done_steps = int(steps[first + active - 1])
                elapsed = time.perf_counter() - run_start
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore", RuntimeWarning)
                    current = np.nanmean(metrics["episode_return"][:, -1])
                bar.update(task, completed=done_steps,
                           sps=f"{done_steps * seeds / max(elapsed, 1e-9):,.0f}",
                           ret="-" if np.isnan(current) else f"{current:.1f}")
                if on_chunk is not None:
                    on_chunk(chunk_index, metrics)
    finally:
        if csv_file is not None:
            csv_file.close()
    jax.block_until_ready(states)
    run_seconds = time.perf_counter() - run_start
    metrics = {k: np.concatenate([c[k] for c in collected], axis=1) for k in collected[0]}
    result = RunResult(states, metrics, steps, out_dir, compile_seconds, run_seconds)
    if out_dir is not None:
        _write_json_atomic(out_dir / "timings.json", {
            "compile_seconds": compile_seconds, "run_seconds": run_seconds,
            "env_steps_per_second": result.steps_per_second, "seeds": seeds,
            "total_env_steps_per_seed": total_steps, "chunk_updates": chunk,
        })
        plot_returns(steps, metrics["episode_return"], out_dir / "returns.png",
                     f"{algo} on {env_id}")
    return result
