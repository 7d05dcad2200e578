"""A run directory: what ``config.json`` records, its checkpoints and its ``metrics.csv``.

``DIR/config.json`` holds the run's identity (``RUN_IDENTITY``: algorithm, env and its
arguments, seeds, config, sweep, dataset) plus versions and the git revision; ``read_run`` reads
it back, also as written by earlier releases (renamed config fields through the config class's
``LEGACY_NAMES``, renamed metrics through ``LEGACY_METRICS``). ``DIR/checkpoints/update_<N>/``
are ``jaxrl.checkpoint`` saves (the newest ``KEEP_CHECKPOINTS`` kept). ``DIR/metrics.csv`` has
one row per run per update; a resumed run keeps the rows its checkpoint covers.
"""

from __future__ import annotations

import csv
import dataclasses
import datetime as dt
import importlib.metadata
import io
import json
import math
import os
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import numpy as np

from jaxrl import checkpoint, registry
from jaxrl.training.config import config_from_dict, config_to_dict

__all__ = ["KEEP_CHECKPOINTS", "LEGACY_METRICS", "PATH_FIELDS", "PATH_LIST_FIELDS", "RUN_IDENTITY",
           "MetricsFile", "RunSpec", "check_same_run", "csv_rows", "default_out_dir",
           "git_revision", "identity", "latest_checkpoint", "read_run", "resolve_paths",
           "resume_metrics", "return_metric", "save_checkpoint", "versions", "write_json_atomic"]


VERSIONED_PACKAGES = ("jaxrl", "jax", "jaxlib", "flax", "optax", "chex", "distrax", "gymnax",
                      "brax", "numpy")

PATH_FIELDS = ("init_from", "pretrain_dataset", "demo_dataset", "reward_from_run")
PATH_LIST_FIELDS = ("teachers",)
"""Config fields that hold several paths (``distill --teachers``), made absolute the same way."""
"""Config fields that name files (``jaxrl.training.pretrain``); ``config.json`` records them as
absolute paths."""


def resolve_paths(config: Any) -> Any:
    """``config`` with its set ``PATH_FIELDS`` and ``PATH_LIST_FIELDS`` made absolute (a resume
    from elsewhere finds them); configs without them come back unchanged."""
    paths: dict[str, Any] = {name: str(Path(getattr(config, name)).resolve())
                             for name in PATH_FIELDS if getattr(config, name, "")}
    paths.update({name: tuple(str(Path(path).resolve()) for path in getattr(config, name))
                  for name in PATH_LIST_FIELDS if getattr(config, name, ())})
    return config.replace(**paths) if paths else config


def default_out_dir(algo: str, env_id: str) -> Path:
    """``runs/<algo>-<env>-<YYYYmmdd-HHMMSS>`` with the env id made path-safe."""
    safe_env = re.sub(r"[^A-Za-z0-9_.-]+", "_", env_id)
    stamp = dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    return Path("runs") / f"{algo}-{safe_env}-{stamp}"


def versions() -> dict[str, str]:
    """Installed versions of the packages a result depends on (``VERSIONED_PACKAGES``)."""
    versions = {}
    for name in VERSIONED_PACKAGES:
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            versions[name] = "not installed"
    return versions


def git_revision() -> str | None:
    """The commit jaxrl runs from, or ``None`` outside a git checkout."""
    try:
        result = subprocess.run(["git", "rev-parse", "HEAD"], cwd=Path(__file__).parent,
                                capture_output=True, text=True, timeout=5, check=False)
    except (OSError, subprocess.SubprocessError):
        return None
    return result.stdout.strip() or None


def format_value(value: Any) -> str:
    value = float(value)
    return "nan" if math.isnan(value) else format(value, ".9g")


def write_json_atomic(path: Path, payload: dict[str, Any]) -> None:
    """Write ``payload`` as JSON through a temporary file and a rename: a reader sees the old
    file or the new one, never half of one."""
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(json.dumps(payload, indent=2, default=str) + "\n")
    os.replace(tmp, path)


KEEP_CHECKPOINTS = 2
"""Checkpoints kept under ``DIR/checkpoints/`` (older ones are deleted after each save)."""


RUN_IDENTITY = ("algo", "env", "env_kwargs", "seeds", "config", "sweep", "dataset")
"""The ``config.json`` fields that define a run: a resume must match them exactly."""


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
    log: tuple[str, ...] = ("csv",)
    log_per_seed: bool = False


def read_run(out: str | Path) -> RunSpec:
    """Parse ``out/config.json`` (``CheckpointError`` if it is missing or unreadable)."""
    out = Path(out)
    path = out / "config.json"
    if not path.is_file():
        raise checkpoint.CheckpointError(f"{out} holds no run ({path} is missing)")
    try:
        record = json.loads(path.read_text())
        config = config_from_dict(registry.get(record["algo"]).load().Config, record["config"])
        devices = record.get("devices")
        return RunSpec(algo=record["algo"], env_id=record["env"],
                       env_kwargs=record.get("env_kwargs", {}), config=config,
                       seed=record["seeds"][0], seeds=len(record["seeds"]),
                       sweep=record.get("sweep", {}),
                       checkpoint_every=record.get("checkpoint_every"),
                       devices=devices.get("count", 1) if isinstance(devices, dict) else 1,
                       dataset=record.get("dataset"),
                       log=tuple(record.get("log", ("csv",))),
                       log_per_seed=bool(record.get("log_per_seed", False)))
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


def identity(record: dict[str, Any]) -> dict[str, Any]:
    """The ``RUN_IDENTITY`` fields of a ``config.json`` (or checkpoint) record, with the config
    read through its class: renamed fields (``LEGACY_NAMES``) and fields added since the run
    was written (at their defaults) compare equal."""
    identity = {k: record.get(k) for k in RUN_IDENTITY}
    if isinstance(identity["config"], dict) and identity["algo"] in registry.names():
        try:
            config_class = registry.get(identity["algo"]).load().Config
            identity["config"] = config_to_dict(config_from_dict(config_class, identity["config"]))
        except (TypeError, ValueError):
            pass  # a corrupt record stays as it is and compares unequal
    return json.loads(json.dumps(identity, default=str))


def check_same_run(out: Path, record: dict[str, Any]) -> None:
    """Raise ``CheckpointError`` naming the first field of ``RUN_IDENTITY`` in which the run
    stored in ``out`` differs from ``record`` (the run a resume asks for)."""
    stored = json.loads((out / "config.json").read_text())
    expected, found = identity(record), identity(stored)
    for name in RUN_IDENTITY:
        if expected[name] != found[name]:
            if isinstance(found[name], dict) and isinstance(expected[name], dict):
                fields = sorted(k for k in found[name].keys() | expected[name].keys()
                                if found[name].get(k) != expected[name].get(k))
                name = f"{name} ({', '.join(fields)})"
            raise checkpoint.CheckpointError(
                f"{out} holds a different run: its {name} differs from the one requested; "
                f"resume it with `jaxrl train {found['algo']} --resume {out}` alone")


def csv_rows(metrics: dict[str, np.ndarray], columns: list[str], first: int, active: int,
              steps: np.ndarray, run_labels: list[tuple[dict[str, float], int]],
              swept: list[str]) -> str:
    """``metrics.csv`` lines for updates ``first`` to ``first + active`` of every run: step,
    seed, the swept settings, then ``columns``."""
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    for offset in range(active):
        for b, (setting, run_seed) in enumerate(run_labels):
            writer.writerow([int(steps[first + offset]), run_seed,
                             *(format_value(setting[k]) for k in swept),
                             *(format_value(metrics[k][b, offset]) for k in columns)])
    return buffer.getvalue()


LEGACY_METRICS = {"episode_return": "eval_return"}
"""Metric names of earlier releases: offline agents wrote their evaluation return under
``episode_return``. A resumed run's ``metrics.csv`` header is rewritten to today's names."""


def legacy_header(stored: str, header: str) -> bool:
    """Whether ``stored`` is ``header`` written with the old names of ``LEGACY_METRICS``."""
    renamed = [LEGACY_METRICS.get(name, name) if name not in header.split(",") else name
               for name in stored.split(",")]
    return stored != header and ",".join(renamed) == header


def resume_metrics(path: Path, header: str, rows: int, runs: int,
                    info: dict[str, Any], columns: list[str],
                    steps: np.ndarray) -> tuple[int, dict[str, np.ndarray]]:
    """Keep the header and the first ``rows`` rows of ``metrics.csv``: ``(their byte length,
    metrics [runs, rows / runs])`` parsed back (9 significant digits round-trip float32). A
    header with ``LEGACY_METRICS`` names is rewritten in place (atomically) first."""
    try:
        lines = path.read_bytes().splitlines(keepends=True)
    except OSError as error:
        raise checkpoint.CheckpointError(f"cannot read {path} ({error})") from None
    kept = lines[:rows + 1]
    stored_header = kept[0].decode(errors="replace").rstrip("\r\n") if kept else ""
    if len(kept) == rows + 1 and legacy_header(stored_header, header):
        kept[0] = (header + "\r\n").encode()
        tmp = path.with_suffix(".csv.tmp")
        tmp.write_bytes(b"".join(kept))
        os.replace(tmp, path)
        stored_header = header
    if len(kept) < rows + 1 or not kept[-1].endswith(b"\n") or stored_header != header:
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


def save_checkpoint(out: Path, states: Any, updates: int, metadata: dict[str, Any],
                     write: bool) -> Path:
    """Save ``states`` as ``out/checkpoints/update_N`` (on the writing process only) and keep
    the newest ``KEEP_CHECKPOINTS``; the path is returned on every process."""
    path = out / "checkpoints" / f"update_{updates:010d}"
    if write:
        checkpoint.save(path, states, {**metadata, "updates": updates})
        older = sorted(p for p in path.parent.glob("update_*") if p.name[7:].isdigit())
        for stale in older[:-KEEP_CHECKPOINTS]:
            doomed = stale.with_name(f".{stale.name}.deleting")
            os.rename(stale, doomed)  # never a half-deleted checkpoint under a valid name
            shutil.rmtree(doomed)
    return path


def return_metric(metrics: Any) -> str:
    """The return a run reports first (progress bar, summary, plot, first CSV column):
    ``episode_return`` of the training episodes where the agent has them, else the
    evaluation's ``eval_return`` (offline agents)."""
    return "episode_return" if "episode_return" in metrics else "eval_return"


class MetricsFile:
    """``metrics.csv``: one row per run per update, appended chunk by chunk (fsynced before a
    checkpoint that covers it); resuming keeps the rows a checkpoint covers and drops the rest."""

    def __init__(self, metric_info: dict[str, Any], swept: list[str], steps: np.ndarray,
                 run_labels: list[tuple[dict[str, float], int]]):
        self.info, self.swept, self.steps, self.run_labels = metric_info, swept, steps, run_labels
        self.runs = len(run_labels)
        first = return_metric(metric_info)
        self.columns = [first, *sorted(k for k in metric_info if k not in ("step", first))]
        self.header = ",".join(["step", "seed", *swept, *self.columns])
        self.file = None

    def open(self, out_dir: Path | None, resume_from: Path | None, out_path: Path | None,
             start_updates: int) -> list[dict[str, np.ndarray]]:
        """Open the file; returns the metrics of the kept rows (empty for a new run)."""
        collected = []
        csv_length = None
        if resume_from is not None:
            csv_length, earlier = resume_metrics(
                out_path / "metrics.csv", self.header, start_updates * self.runs, self.runs,
                self.info, self.columns, self.steps)
            collected.append(earlier)
        if out_dir is None:
            return collected
        if resume_from is not None:
            for leftover in (out_dir / "checkpoints").glob(".update_*"):
                shutil.rmtree(leftover, ignore_errors=True)  # a save or delete cut short
            self.file = open(out_dir / "metrics.csv", "r+", newline="")  # noqa: SIM115
            self.file.truncate(csv_length)
            self.file.seek(csv_length)
        else:
            self.file = open(out_dir / "metrics.csv", "w", newline="")  # noqa: SIM115
            self.file.write(self.header + "\r\n")
        return collected

    def append(self, metrics: dict[str, np.ndarray], first: int, active: int) -> None:
        if self.file is not None:
            self.file.write(csv_rows(metrics, self.columns, first, active, self.steps,
                                     self.run_labels, self.swept))
            self.file.flush()

    def sync(self) -> None:
        if self.file is not None:
            os.fsync(self.file.fileno())

    def close(self) -> None:
        if self.file is not None:
            self.file.close()
