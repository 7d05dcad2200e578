"""Tests for the ``jaxrl`` command line and ``jaxrl.runner``.

The CLI runs in-process through ``jaxrl.cli.main`` (one subprocess test covers the installed
console script). Runs are tiny — compilation dominates — and the two-seed run is shared by the
tests that only read its output.
"""

from __future__ import annotations

import csv
import json
import os
import re
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from helpers import leaves_equal

from jaxrl import checkpoint, run_dir, runner
from jaxrl.agents import ppo
from jaxrl.cli import main

# One xdist group (README's command runs ``--dist loadgroup``): the module's compiled fixtures
# are built once, on one worker.
pytestmark = pytest.mark.xdist_group("cli")

# 2048 steps of 4 envs × 32 steps: 16 updates of 128 env steps each.
TINY_RUN = ["--env", "CartPole-v1", "--total-timesteps", "2048", "--num-envs", "4",
            "--num-steps", "32", "--no-progress"]
TINY_UPDATES = 16
TINY_BATCH = 128


def read_metrics(path: Path) -> tuple[list[str], np.ndarray]:
    """Header and rows of ``metrics.csv`` as float64 (``nan`` parses as NaN)."""
    with open(path, newline="") as file:
        rows = list(csv.reader(file))
    return rows[0], np.array(rows[1:], dtype=np.float64)


def train(out: Path, *flags: str) -> int:
    return main(["train", "ppo", *TINY_RUN, "--out", str(out), *flags])


@pytest.fixture(scope="module")
def two_seed_run(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("cli") / "run"
    assert train(out, "--seeds", "2") == 0
    return out


# ----------------------------------------------------------------------------------------------
# A successful run and what it records


def test_train_writes_config_json(two_seed_run):
    record = json.loads((two_seed_run / "config.json").read_text())
    assert record["algo"] == "ppo"
    assert record["env"] == "CartPole-v1"
    assert record["seeds"] == [0, 1]
    assert record["config"]["learning_rate"] == ppo.Config().learning_rate
    assert record["config"]["total_timesteps"] == 2048
    assert record["config"]["num_envs"] == 4
    assert "jax" in record["versions"]


def test_train_writes_one_metrics_row_per_seed_per_update(two_seed_run):
    header, rows = read_metrics(two_seed_run / "metrics.csv")
    assert header[:3] == ["step", "seed", "episode_return"]
    assert rows.shape == (2 * TINY_UPDATES, len(header))
    steps, seeds = rows[:, 0].astype(int), rows[:, 1].astype(int)
    assert set(seeds) == {0, 1}
    assert (steps % TINY_BATCH == 0).all()
    for seed in (0, 1):
        np.testing.assert_array_equal(steps[seeds == seed],
                                      TINY_BATCH * np.arange(1, TINY_UPDATES + 1))


def test_train_writes_plot_and_timings(two_seed_run):
    png = (two_seed_run / "returns.png").read_bytes()
    assert png.startswith(b"\x89PNG\r\n\x1a\n")
    assert len(png) > 1000
    timings = json.loads((two_seed_run / "timings.json").read_text())
    assert timings["seeds"] == 2
    assert timings["total_env_steps_per_run"] == 2048
    assert timings["runs"] == 2
    assert timings["env_steps_per_second"] > 0
    assert timings["cpu_threefry"] == (os.environ.get("JAXRL_CPU_THREEFRY") or "rolled")
    threads = os.environ.get("PJRT_NPROC")
    assert timings["cpu_threads"] == (int(threads) if threads else None)


# ----------------------------------------------------------------------------------------------
# Bad input: one line on stderr, non-zero exit, nothing written


def assert_one_line_error(capsys, *fragments: str) -> str:
    err = capsys.readouterr().err
    assert err.startswith("jaxrl: error:")
    assert "Traceback" not in err
    assert err.strip().count("\n") == 0
    for fragment in fragments:
        assert fragment in err
    return err


def test_unknown_algorithm(capsys, tmp_path):
    assert main(["train", "dqnn", *TINY_RUN, "--out", str(tmp_path / "run")]) != 0
    assert_one_line_error(capsys, "'dqnn'", "ppo")
    assert not (tmp_path / "run").exists()


def test_unknown_env_suggests_the_close_id(capsys, tmp_path):
    code = main(["train", "ppo", "--env", "CartPol-v1", "--out", str(tmp_path / "run"),
                 "--no-progress"])
    assert code != 0
    assert_one_line_error(capsys, "CartPol-v1", "CartPole-v1")
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize(("algo", "env_id", "hint"), [
    ("dqn", "Pendulum-v1", "continuous action space: reinforce, a2c, npg, trpo, ppo, ddpg, td3"),
    ("ddpg", "CartPole-v1", "discrete action space: reinforce, a2c, npg, trpo, ppo, dqn, soft_q"),
])
def test_algorithm_that_cannot_handle_the_action_space(capsys, tmp_path, algo, env_id, hint):
    code = main(["train", algo, "--env", env_id, "--out", str(tmp_path / "run"),
                 "--no-progress"])
    assert code != 0
    assert_one_line_error(capsys, f"{algo} needs", hint)
    assert not (tmp_path / "run").exists()


def test_num_minibatches_must_divide_batch(capsys, tmp_path):
    code = train(tmp_path / "run", "--num-envs", "3", "--num-steps", "5",
                 "--num-minibatches", "4")
    assert code != 0
    assert_one_line_error(capsys, "num_minibatches")
    assert not (tmp_path / "run").exists()


def test_negative_learning_rate(capsys, tmp_path):
    assert train(tmp_path / "run", "--learning-rate", "-1") != 0
    assert_one_line_error(capsys, "learning_rate")
    assert not (tmp_path / "run").exists()


def test_existing_run_directory_is_left_untouched(capsys, tmp_path):
    out = tmp_path / "run"
    out.mkdir()
    (out / "config.json").write_text('{"algo": "earlier run"}\n')
    (out / "metrics.csv").write_text("step,seed,episode_return\n128,0,9.5\n")
    before = {path.name: (path.read_bytes(), path.stat().st_mtime_ns) for path in out.iterdir()}
    assert train(out) != 0
    assert_one_line_error(capsys, "already holds a run")
    after = {path.name: (path.read_bytes(), path.stat().st_mtime_ns) for path in out.iterdir()}
    assert after == before


@pytest.mark.parametrize(("sweep", "fragment"), [
    ("num-envs=2,4", "static"), ("learnin-rate=1e-3", "not a config field"),
    ("learning-rate", "FIELD=V1,V2"), ("gamma=0.9,abc", "numbers"),
    ("learning-rate=-1,1e-3", "learning_rate"),
])
def test_bad_sweep_is_rejected(capsys, tmp_path, sweep, fragment):
    assert train(tmp_path / "run", "--sweep", sweep) != 0
    assert_one_line_error(capsys, fragment)
    assert not (tmp_path / "run").exists()


def test_misspelled_flag_exits_with_usage_error(capsys):
    assert main(["train", "ppo", "--lerning-rate", "1e-3"]) == 2
    assert_one_line_error(capsys, "Unrecognized options: --lerning-rate", "jaxrl train ppo --help")


# ----------------------------------------------------------------------------------------------
# Checkpoints, resume and eval (the two-seed run checkpoints every ceil(2048 / 10) = 205 steps:
# after updates 2, 4, 5, 7, 9, 10, 12, 13, 15 and 16; the last two are kept)


def test_train_keeps_the_last_two_checkpoints(two_seed_run):
    names = sorted(path.name for path in (two_seed_run / "checkpoints").iterdir())
    assert names == ["update_0000000015", "update_0000000016"]
    assert json.loads((two_seed_run / "config.json").read_text())["checkpoint_every"] == 205


def test_same_seed_and_sigkill_then_resume_give_identical_metrics_and_parameters(
        two_seed_run, tmp_path, capsys):
    # The child trains the two-seed run again from scratch in a process of its own: its rows
    # equal the shared run's bitwise (the same seed gives the same metrics), and so does the
    # whole run after the resume.
    out = tmp_path / "killed"
    argv = ["train", "ppo", *TINY_RUN, "--out", str(out), "--seeds", "2"]
    # The child pauses after update 6 (the last checkpoint is update 5) and is SIGKILLed there.
    child = subprocess.Popen([sys.executable, "-c", f"""
import sys, time
from jaxrl import cli, runner
run = runner.run
def pausing_run(*args, **kwargs):
    def pause(chunk_index, metrics):
        if chunk_index == 5:
            print("paused", flush=True)
            time.sleep(600)
    return run(*args, on_chunk=pause, **kwargs)
runner.run = pausing_run
sys.exit(cli.main({argv!r}))
"""], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert child.stdout.readline().strip() == "paused", child.stderr.read()
        child.kill()
    finally:
        child.wait(timeout=60)
    assert child.returncode == -signal.SIGKILL
    assert run_dir.latest_checkpoint(out).name == "update_0000000005"
    written = (out / "metrics.csv").read_bytes()
    assert written.count(b"\n") == 1 + 2 * 6  # update 6 was written after the last checkpoint
    assert (two_seed_run / "metrics.csv").read_bytes().startswith(written)
    assert main(["train", "ppo", "--resume", str(out), "--no-progress"]) == 0
    assert "final episode_return" in capsys.readouterr().out
    assert (out / "metrics.csv").read_bytes() == (two_seed_run / "metrics.csv").read_bytes()
    final = "checkpoints/update_0000000016"
    assert leaves_equal(checkpoint.restore(out / final), checkpoint.restore(two_seed_run / final))


@pytest.mark.slow
def test_ctrl_c_saves_a_checkpoint_and_a_seed_of_multi_seed_run_reproduces_alone(
        two_seed_run, capsys, tmp_path, monkeypatch):
    run = runner.run

    def run_with_ctrl_c(*args, **kwargs):
        def press(chunk_index, metrics):
            if chunk_index == 2:
                signal.raise_signal(signal.SIGINT)

        return run(*args, on_chunk=press, **kwargs)

    monkeypatch.setattr(runner, "run", run_with_ctrl_c)
    out = tmp_path / "alone"
    assert train(out, "--seed", "1", "--seeds", "1") == 130
    assert_one_line_error(capsys, "interrupted after update 4",
                          f"resume with: jaxrl train ppo --resume {out}")
    assert run_dir.latest_checkpoint(out).name == "update_0000000004"
    # The printed command finishes the run; it equals an uninterrupted one (test_checkpoint),
    # so seed 1 alone can be compared with seed 1 of the two-seed run.
    monkeypatch.undo()
    assert main(["train", "ppo", "--resume", str(out), "--no-progress"]) == 0
    _, alone = read_metrics(out / "metrics.csv")
    _, batched = read_metrics(two_seed_run / "metrics.csv")
    batched = batched[batched[:, 1] == 1]
    np.testing.assert_array_equal(alone[:, :2], batched[:, :2])
    # Vmapped matmuls round differently (loss differs by ~5e-7 at the first update), and PPO's
    # 20 epochs per update amplify that until a sampled action flips (measured: around update
    # 10 of 16), after which the runs are different runs. So the first updates agree closely.
    np.testing.assert_allclose(alone[:6, 2], batched[:6, 2], rtol=1e-4, equal_nan=True)


@pytest.mark.parametrize("flag", [["--seed", "3"], ["--learning-rate", "1e-3"],
                                  ["--out", "elsewhere"], ["--checkpoint-every", "10"]])
def test_resume_takes_no_other_flag(capsys, two_seed_run, flag):
    assert main(["train", "ppo", "--resume", str(two_seed_run), *flag]) != 0
    assert_one_line_error(capsys, "--resume takes no other flag", flag[0])


def test_resume_of_a_missing_mismatched_or_finished_run(capsys, two_seed_run, tmp_path):
    assert main(["train", "ppo", "--resume", str(tmp_path / "nothing")]) != 0
    assert_one_line_error(capsys, "holds no run")
    assert main(["train", "a2c", "--resume", str(two_seed_run)]) != 0
    assert_one_line_error(capsys, "holds a ppo run, not a2c", "jaxrl train ppo --resume")
    assert main(["train", "ppo", "--resume", str(two_seed_run)]) != 0
    assert_one_line_error(capsys, "already complete")
    edited = tmp_path / "edited"
    shutil.copytree(two_seed_run, edited)
    shutil.rmtree(edited / "checkpoints" / "update_0000000016")
    record = json.loads((edited / "config.json").read_text())
    record["config"]["gamma"] = 0.5  # config.json no longer matches its checkpoints
    (edited / "config.json").write_text(json.dumps(record))
    assert main(["train", "ppo", "--resume", str(edited), "--no-progress"]) != 0
    assert_one_line_error(capsys, "belongs to a different run")


# orbax leaves an asyncio callback behind when tensorstore rejects the damaged file.
@pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")
def test_resume_of_a_corrupt_checkpoint(capsys, two_seed_run, tmp_path):
    for damage in ("manifest", "arrays", "config"):
        out = tmp_path / damage
        shutil.copytree(two_seed_run, out)
        shutil.rmtree(out / "checkpoints" / "update_0000000016")
        if damage == "manifest":
            (out / "checkpoints" / "update_0000000015" / "checkpoint.json").write_text("{trunc")
        elif damage == "arrays":
            for data in (out / "checkpoints" / "update_0000000015" / "arrays").rglob("*"):
                if data.is_file() and data.parent.name == "d":
                    data.write_bytes(b"\0" * len(data.read_bytes()))
        else:
            (out / "config.json").write_text('{"algo": "ppo", "con')
        before = (out / "metrics.csv").read_bytes()
        assert main(["train", "ppo", "--resume", str(out), "--no-progress"]) != 0
        assert_one_line_error(capsys, "corrupt")
        assert (out / "metrics.csv").read_bytes() == before


def test_eval_prints_deterministic_and_stochastic_returns_per_seed(capsys, two_seed_run):
    assert main(["eval", str(two_seed_run), "--episodes", "4"]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert [line.split()[:2] for line in lines] == [["seed", "0"], ["seed", "1"]]
    for line in lines:
        assert "after 16 updates" in line and "over 4 episodes" in line
        assert re.search(r"deterministic \d+\.\d ± \d+\.\d, stochastic \d+\.\d ± \d+\.\d", line)
    assert main(["eval", str(two_seed_run), "--seed", "5"]) != 0
    assert_one_line_error(capsys, "not seed 5")


# ----------------------------------------------------------------------------------------------
# Other commands


def test_envs_lists_gymnax_and_brax_ids(capsys):
    assert main(["envs"]) == 0
    ids = capsys.readouterr().out.split()
    assert "CartPole-v1" in ids
    assert "brax/ant" in ids


def test_train_help_lists_config_flags(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["train", "ppo", "--help"])
    assert exit_info.value.code in (0, None)
    out = capsys.readouterr().out
    assert "--learning-rate" in out
    assert "--total-timesteps" in out


@pytest.mark.slow
def test_console_script_end_to_end_and_its_compile_cache(tmp_path):
    # Twice through the installed script with one compile cache: the first run fills the cache,
    # the second compiles nothing new (every program is a cache hit) and writes the same metrics.
    script = shutil.which("jaxrl", path=str(Path(sys.executable).parent))
    command = [script] if script else [sys.executable, "-m", "jaxrl.cli"]
    cache = tmp_path / "cache"
    env = {**os.environ, "JAXRL_COMPILE_CACHE": str(cache),
           "JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS": "0"}
    entries, metrics = [], []
    for name in ("first", "second"):
        out = tmp_path / name
        completed = subprocess.run(
            [*command, "train", "ppo", "--env", "CartPole-v1", "--total-timesteps", "64",
             "--num-envs", "2", "--num-steps", "8", "--num-minibatches", "1",
             "--update-epochs", "1", "--hidden-sizes", "8", "--out", str(out)],
            capture_output=True, text=True, timeout=300, check=False, env=env)
        assert completed.returncode == 0, completed.stderr
        summary = [line for line in completed.stdout.splitlines()
                   if line.startswith("final episode_return")]
        assert len(summary) == 1
        assert "env steps/s" in completed.stdout
        loaded = "loaded from the compile cache" in completed.stdout
        assert loaded == (name == "second"), completed.stdout
        assert "Assume version compatibility" not in completed.stderr
        _, rows = read_metrics(out / "metrics.csv")
        assert rows.shape[0] == 64 // 16
        assert json.loads((out / "timings.json").read_text())["compile_cache"] == str(cache)
        entries.append(sorted(p.name for p in cache.iterdir()))
        metrics.append((out / "metrics.csv").read_bytes())
    assert entries[0], "the first run stored no compiled program"
    assert entries[1] == entries[0]
    assert metrics[1] == metrics[0]


def test_compile_cache_off_or_unwritable_leaves_jax_alone(tmp_path, monkeypatch):
    import jax

    from jaxrl.backend import COMPILE_CACHE_ENV, enable_compile_cache

    # The test session configures a cache of its own (conftest): set it aside for this test.
    session_cache = jax.config.jax_compilation_cache_dir
    jax.config.update("jax_compilation_cache_dir", None)
    try:
        for off in ("off", "0", "None"):
            monkeypatch.setenv(COMPILE_CACHE_ENV, off)
            assert enable_compile_cache() is None
        blocker = tmp_path / "file"
        blocker.write_text("")
        with pytest.warns(UserWarning, match="compile cache off: cannot create"):
            assert enable_compile_cache(blocker / "cache") is None
        assert jax.config.jax_compilation_cache_dir is None
    finally:
        jax.config.update("jax_compilation_cache_dir", session_cache)


# ----------------------------------------------------------------------------------------------
# runner: chunking


def test_chunk_length_hand_values():
    # ceil(num_updates / 50): about 50 progress-bar updates, never an empty chunk.
    assert runner.chunk_length(976) == 20
    assert runner.chunk_length(97) == 2
    assert runner.chunk_length(1) == 1
    assert runner.chunk_length(50) == 1
    assert runner.chunk_length(51) == 2
    assert runner.chunk_length(10, target_chunks=3) == 4


def test_run_with_partial_last_chunk_records_every_update_once(tmp_path):
    # 408 / (1 env × 8 steps) = 51 updates in chunks of 2: the 26th chunk runs one update.
    config = ppo.Config(total_timesteps=408, num_envs=1, num_steps=8, num_minibatches=1,
                        update_epochs=1, hidden_sizes=(8,))
    assert config.num_updates == 51
    assert runner.chunk_length(51) == 2
    result = runner.run("ppo", "CartPole-v1", config, seed=5, seeds=2, out=tmp_path / "run",
                        progress=False)
    assert result.metrics["episode_return"].shape == (2, 51)
    np.testing.assert_array_equal(result.steps, 8 * np.arange(1, 52))
    # The surplus update of the last chunk is discarded, not applied.
    np.testing.assert_array_equal(result.train_state.update_count, [51, 51])
    _, rows = read_metrics(tmp_path / "run" / "metrics.csv")
    assert rows.shape[0] == 2 * 51
    for seed in (5, 6):
        np.testing.assert_array_equal(rows[rows[:, 1] == seed, 0], 8 * np.arange(1, 52))
    assert json.loads((tmp_path / "run" / "timings.json").read_text())["chunk_updates"] == 2


# ----------------------------------------------------------------------------------------------
# Sweeps: the grid of numeric values x seeds in one compiled call


@pytest.mark.slow
def test_sweep_runs_the_grid_times_seeds_and_matches_separate_runs(two_seed_run, tmp_path):
    out = tmp_path / "sweep"
    assert train(out, "--seeds", "2", "--sweep", "learning-rate=1e-3,3e-4",
                 "--sweep", "gamma=0.9,0.98") == 0
    header, rows = read_metrics(out / "metrics.csv")
    assert header[:5] == ["step", "seed", "learning_rate", "gamma", "episode_return"]
    assert rows.shape[0] == TINY_UPDATES * 4 * 2
    settings = {(lr, g) for lr, g in rows[:, 2:4]}
    assert settings == {(1e-3, 0.9), (1e-3, 0.98), (3e-4, 0.9), (3e-4, 0.98)}
    record = json.loads((out / "config.json").read_text())
    assert record["sweep"] == {"learning_rate": [1e-3, 3e-4], "gamma": [0.9, 0.98]}
    assert (out / "returns.png").stat().st_size > 0
    # One setting of the grid equals a plain run with that config (vmapped rounding aside):
    # the shared two-seed run has the defaults, which the grid includes.
    defaults = json.loads((two_seed_run / "config.json").read_text())["config"]
    assert (defaults["learning_rate"], defaults["gamma"]) == (1e-3, 0.98)
    _, plain = read_metrics(two_seed_run / "metrics.csv")
    loss_column = header.index("loss")
    chosen = rows[(rows[:, 2] == 1e-3) & (rows[:, 3] == 0.98)]
    np.testing.assert_array_equal(chosen[:, :2], plain[:, :2])  # step, seed
    np.testing.assert_allclose(chosen[:, loss_column], plain[:, loss_column - 2],
                               rtol=1e-4, atol=1e-5)
