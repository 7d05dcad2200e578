"""Loggers beside ``metrics.csv``: TensorBoard (tensorboardX) and Weights & Biases.

``metrics.csv`` is always written and stays the source of truth; ``jaxrl train ... --log
tensorboard,wandb`` adds mirrors of it. Every logger receives each chunk's metrics as they
arrive (``[runs, updates]`` arrays) and logs, per update at its env step, the mean and the
standard deviation over the seeds of each sweep setting (``<setting>/<metric>/mean``, or
``<metric>/mean`` without a sweep), and with ``per_seed`` every run's own value
(``<metric>/seed_<s>``). The config goes in at the start, the timings at the end.

Resuming never duplicates or rewinds a step: the runner drops the CSV rows after the
checkpoint and recomputes them, so the loggers are told the first step they will see again —
TensorBoard purges the events from that step on (``SummaryWriter(purge_step=...)``); a W&B run
is resumed under its recorded id and rewound to that step (``wandb.init(resume_from=...)``).
The extras are optional: ``pip install "jaxrl[log]"``.
"""

from __future__ import annotations

import importlib.util
import json
import os
import secrets
import warnings
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any, Protocol

import numpy as np

__all__ = ["LOGGERS", "Logger", "RunInfo", "TensorBoardLogger", "WandbLogger", "check_loggers",
           "open_loggers"]

LOGGERS = ("csv", "tensorboard", "wandb")
"""The names ``--log`` accepts; ``csv`` (``metrics.csv``) is always on."""

_PACKAGES = {"tensorboard": "tensorboardX", "wandb": "wandb"}


def check_loggers(names: str | Iterable[str]) -> tuple[str, ...]:
    """The validated logger names (a comma-separated string or a sequence), ``csv`` first.

    ``ValueError`` names the valid loggers for an unknown one, and the ``pip install`` to run
    for one whose package is missing."""
    if isinstance(names, str):
        names = [name for name in names.split(",") if name.strip()]
    chosen = ["csv"]
    for name in (name.strip().lower() for name in names):
        if name not in LOGGERS:
            raise ValueError(f"unknown logger {name!r} in --log; choose from "
                             f"{', '.join(LOGGERS)} (comma-separated)")
        if name not in chosen:
            chosen.append(name)
    for name in chosen[1:]:
        if importlib.util.find_spec(_PACKAGES[name]) is None:
            raise ValueError(f"--log {name} needs {_PACKAGES[name]}, which is not installed: "
                             f'pip install "jaxrl[log]"')
    return tuple(chosen)


class RunInfo(Protocol):
    """What a logger needs to know about the run (the runner's plan provides it)."""

    steps: np.ndarray  # env steps (or gradient steps) after each update
    run_labels: list[tuple[dict[str, float], int]]  # (sweep setting, seed) of each run
    record: dict[str, Any]  # config.json


class Logger(Protocol):
    """A sink for each chunk's metrics (``[runs, updates]`` arrays, updates ``first`` to
    ``first + active``) and, at the end, the run's timings."""

    def write(self, metrics: dict[str, np.ndarray], first: int, active: int) -> None: ...

    def close(self, timings: dict[str, Any] | None = None) -> None: ...


def _groups(run_labels: list[tuple[dict[str, float], int]]) -> list[tuple[str, list[int]]]:
    """``(tag prefix, run indices)`` per sweep setting (one group with no prefix without a
    sweep), in run order."""
    groups: dict[str, list[int]] = {}
    for index, (setting, _) in enumerate(run_labels):
        prefix = ",".join(f"{k}={v:g}" for k, v in setting.items())
        groups.setdefault(f"{prefix}/" if prefix else "", []).append(index)
    return list(groups.items())


def _scalars(metrics: dict[str, np.ndarray], offset: int, run_labels, groups,
             per_seed: bool) -> dict[str, float]:
    """The scalars of one update: mean and std over each setting's seeds, and per seed."""
    values = {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN before a first episode ends
        for name, array in metrics.items():
            column = np.asarray(array[:, offset], np.float64)
            for prefix, runs in groups:
                values[f"{prefix}{name}/mean"] = float(np.nanmean(column[runs]))
                values[f"{prefix}{name}/std"] = float(np.nanstd(column[runs]))
                if per_seed:
                    for run in runs:
                        values[f"{prefix}{name}/seed_{run_labels[run][1]}"] = float(column[run])
    return values


class TensorBoardLogger:
    """Scalars under ``out/tensorboard`` at each update's env step; the config as text."""

    def __init__(self, out_dir: Path, info: RunInfo, start_updates: int, per_seed: bool):
        from tensorboardX import SummaryWriter

        self.info, self.per_seed = info, per_seed
        self.groups = _groups(info.run_labels)
        purge = int(info.steps[start_updates]) if start_updates else None
        self.writer = SummaryWriter(str(out_dir / "tensorboard"), purge_step=purge)
        if not start_updates:
            self.writer.add_text("config", f"```\n{json.dumps(info.record, indent=2)}\n```", 0)

    def write(self, metrics: dict[str, np.ndarray], first: int, active: int) -> None:
        for offset in range(active):
            step = int(self.info.steps[first + offset])
            for tag, value in _scalars(metrics, offset, self.info.run_labels, self.groups,
                                       self.per_seed).items():
                if np.isfinite(value):  # the return is NaN until a first episode ends
                    self.writer.add_scalar(tag, value, step)
        self.writer.flush()

    def close(self, timings: dict[str, Any] | None = None) -> None:
        if timings:
            self.writer.add_text("timings", f"```\n{json.dumps(timings, indent=2)}\n```",
                                 int(self.info.steps[-1]))
        self.writer.close()


class WandbLogger:
    """One W&B run per jaxrl run (its id kept in ``out/wandb_id``), ``env_step`` as the step.

    ``$WANDB_PROJECT`` (default ``jaxrl``) and ``$WANDB_MODE`` (``offline`` logs without an
    account) apply as usual."""

    def __init__(self, out_dir: Path, info: RunInfo, start_updates: int, per_seed: bool):
        import wandb

        self.info, self.per_seed = info, per_seed
        self.groups = _groups(info.run_labels)
        id_file = out_dir / "wandb_id"
        if start_updates and id_file.exists():
            run_id = id_file.read_text().strip()
            step = int(info.steps[start_updates])
            resume = {"resume_from": f"{run_id}?_step={step}"}
        else:
            run_id = secrets.token_hex(8)
            id_file.write_text(run_id + "\n")
            resume = {"id": run_id}
        self.run = wandb.init(project=os.environ.get("WANDB_PROJECT", "jaxrl"),
                              name=out_dir.name, dir=str(out_dir), config=info.record,
                              **resume)

    def write(self, metrics: dict[str, np.ndarray], first: int, active: int) -> None:
        for offset in range(active):
            step = int(self.info.steps[first + offset])
            self.run.log(_scalars(metrics, offset, self.info.run_labels, self.groups,
                                  self.per_seed), step=step)

    def close(self, timings: dict[str, Any] | None = None) -> None:
        if timings:
            self.run.summary.update({f"timings/{k}": v for k, v in timings.items()
                                     if isinstance(v, (int, float))})
        self.run.finish()


def open_loggers(names: Sequence[str], out_dir: Path | None, info: RunInfo,
                 start_updates: int, per_seed: bool = False) -> list[Logger]:
    """The loggers named in ``names`` besides ``csv`` (which the runner writes itself), opened
    on ``out_dir``; none where ``out_dir`` is ``None`` (no output, or not process 0)."""
    if out_dir is None:
        return []
    classes = {"tensorboard": TensorBoardLogger, "wandb": WandbLogger}
    return [classes[name](out_dir, info, start_updates, per_seed)
            for name in check_loggers(names) if name != "csv"]
