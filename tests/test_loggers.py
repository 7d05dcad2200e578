"""Loggers beside metrics.csv (``jaxrl.loggers``): after a crash past the last checkpoint and a
resume, TensorBoard holds the CSV's mean, std and per-seed values once at every update's step
(nothing duplicated or rewound), W&B ran offline and resumed under its id, and bad ``--log``
values fail in one line. The runs use the shapes of ``test_checkpoint``'s tiny PPO run (the
session's compile cache then serves them)."""

from __future__ import annotations

import json
import struct
from pathlib import Path

import numpy as np
import pytest
from tensorboardX.proto import event_pb2

from jaxrl import loggers, runner
from jaxrl.agents import ppo
from jaxrl.cli import main

pytestmark = pytest.mark.xdist_group("loggers")

TINY = ppo.Config(total_timesteps=6 * 4 * 8, num_envs=4, num_steps=8, update_epochs=1,
                  hidden_sizes=(8,))
EVERY = 2 * 4 * 8  # a checkpoint after updates 2, 4 and 6


class Crash(Exception):
    """Stands in for a process that dies after writing rows past its last checkpoint."""


def tiny_run(out: Path, **kwargs) -> runner.RunResult:
    return runner.run("ppo", "CartPole-v1", TINY, seeds=2, out=out, progress=False,
                      checkpoint_every=EVERY, **kwargs)


def read_scalars(directory: Path) -> dict[str, list[tuple[int, float]]]:
    """Scalars of every event file under ``directory`` as TensorBoard shows them: a
    ``SessionLog.START`` at step ``s`` (``SummaryWriter(purge_step=s)``) drops the events at
    steps ≥ ``s`` written before it."""
    scalars: dict[str, list[tuple[int, float]]] = {}
    for path in sorted(directory.glob("events.out.tfevents.*")):
        data = path.read_bytes()
        offset = 0
        while offset < len(data):  # TFRecord: u64 length, u32 crc, payload, u32 crc
            (length,) = struct.unpack("<Q", data[offset:offset + 8])
            event = event_pb2.Event.FromString(data[offset + 12:offset + 12 + length])
            offset += 16 + length
            if event.HasField("session_log") and event.session_log.status == 1:  # START
                for tag in scalars:
                    scalars[tag] = [(s, v) for s, v in scalars[tag] if s < event.step]
            for value in event.summary.value:
                if value.HasField("simple_value"):
                    scalars.setdefault(value.tag, []).append((event.step, value.simple_value))
    return scalars


@pytest.fixture(scope="module")
def resumed(tmp_path_factory) -> runner.RunResult:
    """A run with both loggers that dies after update 5 (its rows and scalars written, the last
    checkpoint at update 4), then resumed."""
    out = tmp_path_factory.mktemp("loggers") / "run"
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("WANDB_MODE", "offline")
        patch.setenv("WANDB_SILENT", "true")

        def crash_after_update_5(chunk_index, metrics):
            if chunk_index == 4:
                raise Crash

        with pytest.raises(Crash):
            tiny_run(out, log="tensorboard,wandb", log_per_seed=True,
                     on_chunk=crash_after_update_5)
        (out / "first_wandb_id").write_text((out / "wandb_id").read_text())
        return runner.resume_run(out, progress=False)  # the recorded loggers come back


@pytest.mark.slow
def test_tensorboard_logs_every_step_once_with_the_mean_and_std_over_seeds(resumed):
    assert resumed.resumed_updates == 4
    scalars = read_scalars(resumed.out / "tensorboard")
    steps = [int(s) for s in resumed.steps]
    assert set(scalars) >= {f"{name}/mean" for name in resumed.metrics}
    entropy = resumed.metrics["entropy"]  # [seeds, updates], as metrics.csv holds it
    for tag in ("entropy/mean", "entropy/std", "entropy/seed_0", "entropy/seed_1"):
        assert [s for s, _ in scalars[tag]] == steps, tag
    np.testing.assert_allclose([v for _, v in scalars["entropy/mean"]], entropy.mean(0),
                               rtol=1e-6)
    np.testing.assert_allclose([v for _, v in scalars["entropy/std"]], entropy.std(0),
                               rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose([v for _, v in scalars["entropy/seed_1"]], entropy[1],
                               rtol=1e-6)
    assert json.loads((resumed.out / "config.json").read_text())["log"] == [
        "csv", "tensorboard", "wandb"]


@pytest.mark.slow
def test_wandb_runs_offline_and_resumes_under_its_id(resumed):
    run_id = (resumed.out / "wandb_id").read_text().strip()
    assert (resumed.out / "first_wandb_id").read_text().strip() == run_id
    runs = sorted(p.name for p in (resumed.out / "wandb").glob("offline-run-*"))
    assert len(runs) == 2 and all(name.endswith(run_id) for name in runs)


def test_bad_loggers_say_what_to_change(monkeypatch, capsys):
    with pytest.raises(ValueError, match="unknown logger 'mlflow'.*csv, tensorboard, wandb"):
        loggers.check_loggers("tensorboard,mlflow")
    assert loggers.check_loggers(" tensorboard ,csv") == ("csv", "tensorboard")
    monkeypatch.setattr(loggers.importlib.util, "find_spec", lambda name: None)
    with pytest.raises(ValueError, match=r'needs wandb.*pip install "jaxrl\[log\]"'):
        loggers.check_loggers(["wandb"])
    assert main(["train", "ppo", "--log", "wandb", "--no-progress"]) == 2
    error = capsys.readouterr().err.strip().splitlines()
    assert len(error) == 1 and error[0].startswith("jaxrl: error: --log wandb needs wandb")
