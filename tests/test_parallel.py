"""Tests for ``jaxrl.parallel``: runs and envs sharded over a device mesh, multi-host launch.

The pytest process already imported jax with one CPU device, so the sharded runs happen in
subprocesses started with ``XLA_FLAGS=--xla_force_host_platform_device_count=8`` (or 2 per process
for the two-process multi-host run). This file is also the subprocesses' script:
``python tests/test_parallel.py single-host OUT`` writes ``OUT/results.json`` and run directories
that the tests below read.
"""

from __future__ import annotations

import contextlib
import csv
import io
import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import jax
import numpy as np
import pytest

from jaxrl import parallel

# One xdist group (README's command runs ``--dist loadgroup``): the module-scoped ``single``
# fixture (a subprocess compiling the 8-device runs, ≈ 50 s) then runs on one worker only,
# instead of once on every worker that draws one of its tests.
pytestmark = pytest.mark.xdist_group("parallel")

# 2 updates of 8 envs × 16 steps: compilation dominates; 8 envs split over 8 devices.
TINY = {"total_timesteps": 256, "num_envs": 8, "num_steps": 16, "hidden_sizes": (16,)}
TINY_PPO = {**TINY, "update_epochs": 1, "num_minibatches": 2}
TINY_FLAGS = ["--env", "CartPole-v1", "--total-timesteps", "256", "--num-envs", "8",
              "--num-steps", "16", "--hidden-sizes", "16", "--update-epochs", "1",
              "--num-minibatches", "2", "--no-progress"]
# The suite's XLA flags (tests/conftest.py), kept in the subprocesses beside the device count.
XLA_SUITE_FLAGS = os.environ.get("XLA_FLAGS", "")


# ----------------------------------------------------------------------------------------------
# Subprocess side


def _shard_layout(tree, axis: int = 0) -> list[dict]:
    """Per leaf: its devices and the ``[start, stop)`` of ``axis`` each device holds."""
    layout = []
    for leaf in jax.tree.leaves(tree):
        if jax.dtypes.issubdtype(leaf.dtype, jax.dtypes.prng_key):
            leaf = jax.random.key_data(leaf)
        size = leaf.shape[axis]
        layout.append({
            "shape": list(leaf.shape),
            "devices": sorted(d.id for d in leaf.sharding.device_set),
            "slices": sorted([shard.index[axis].start or 0, shard.index[axis].stop or size]
                             for shard in leaf.addressable_shards)})
    return layout


def _error(call) -> str:
    try:
        call()
    except ValueError as error:
        return str(error)
    return "no error"


def single_host(out: Path) -> None:
    """8 forced CPU devices: runner with 1 and 8 devices, a single run's envs over 8 devices,
    A2C's ``jit(vmap(train))`` sharded and not, and the divisibility errors."""
    from jax._src import xla_bridge

    from jaxrl import envs, runner
    from jaxrl.agents import ALGORITHMS, a2c, ppo  # noqa: F401 (imported for the check below)
    from jaxrl.cli import main

    # Checked before this process creates its first array: see test_importing_jaxrl_leaves_...
    results = {"backend_started_by_imports": xla_bridge.backends_are_initialized()}
    config = ppo.Config(**TINY_PPO)
    results["device_count"] = jax.device_count()
    runner.run("ppo", "CartPole-v1", config, seeds=8, out=out / "devices1", progress=False)
    sharded = runner.run("ppo", "CartPole-v1", config, seeds=8, out=out / "devices8",
                         progress=False, devices="all")
    results["runs_layout"] = _shard_layout(sharded.train_state)
    single = runner.run("ppo", "CartPole-v1", config, seeds=1, out=out / "envs8",
                        progress=False, devices=8)
    rollout = single.train_state.rollout
    results["envs_layout"] = _shard_layout((rollout.obs, rollout.env_state), axis=1)

    env, env_params = envs.make("CartPole-v1")
    train = jax.vmap(a2c.make_train(a2c.Config(**TINY), env, env_params))
    keys = runner.seed_keys(0, 8)
    _, reference = jax.jit(train)(keys)
    placement = parallel.Placement.create("all", runs=8)
    _, metrics = placement.compile(train, placement.shard(keys))(placement.shard(keys))
    results["a2c_layout"] = _shard_layout(metrics)
    results["a2c_max_difference"] = {
        name: float(np.nanmax(np.abs(np.asarray(reference[name]) - np.asarray(metrics[name])),
                              initial=0.0)) for name in reference}

    results["seeds_error"] = _error(lambda: runner.run(
        "ppo", "CartPole-v1", config, seeds=6, out=out / "seeds6", progress=False, devices=4))
    results["seeds_error_wrote"] = (out / "seeds6").exists()
    results["sweep_error"] = _error(lambda: runner.run(
        "ppo", "CartPole-v1", config, seeds=3, sweep={"learning_rate": [1e-3, 3e-4]},
        out=None, progress=False, devices=4))
    results["envs_error"] = _error(lambda: runner.run(
        "ppo", "CartPole-v1", config.replace(num_envs=6), seeds=1, out=None, progress=False,
        devices=4))
    stderr = io.StringIO()
    with contextlib.redirect_stderr(stderr):
        results["cli_code"] = main(["train", "ppo", *TINY_FLAGS, "--seeds", "6", "--devices", "4",
                                    "--out", str(out / "cli")])
    results["cli_stderr"] = stderr.getvalue()
    (out / "results.json").write_text(json.dumps(results))


# ----------------------------------------------------------------------------------------------
# Test side


def _run_script(*args: str, devices: int) -> subprocess.Popen:
    env = {**os.environ, "JAX_PLATFORMS": "cpu",
           "XLA_FLAGS": f"--xla_force_host_platform_device_count={devices} {XLA_SUITE_FLAGS}"}
    return subprocess.Popen([sys.executable, __file__, *args], env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)


def _finish(*processes: subprocess.Popen, timeout: float = 600) -> list[str]:
    """Outputs of ``processes``; all are killed if one fails or the time runs out (a process of
    a multi-host run whose partner died would otherwise wait at a barrier)."""
    outputs = []
    try:
        for process in processes:
            output, _ = process.communicate(timeout=timeout)
            assert process.returncode == 0, output[-4000:]
            outputs.append(output)
    finally:
        for process in processes:
            if process.poll() is None:
                process.kill()
                process.communicate()
    return outputs


def read_metrics(path: Path) -> tuple[list[str], np.ndarray]:
    with open(path, newline="") as file:
        rows = list(csv.reader(file))
    return rows[0], np.array(rows[1:], dtype=np.float64)


@pytest.fixture(scope="module")
def single(tmp_path_factory) -> tuple[Path, dict]:
    out = tmp_path_factory.mktemp("parallel")
    _finish(_run_script("single-host", str(out), devices=8))
    return out, json.loads((out / "results.json").read_text())


@pytest.mark.slow
def test_subprocess_sees_eight_devices(single):
    _, results = single
    assert results["device_count"] == 8


def _assert_one_slice_per_device(layout: list[dict], size: int, axis: int = 0) -> None:
    for leaf in layout:
        assert leaf["shape"][axis] == size
        assert leaf["devices"] == list(range(8))
        step = size // 8
        assert leaf["slices"] == [[i * step, (i + 1) * step] for i in range(8)], leaf


@pytest.mark.slow
def test_runner_gives_every_device_one_seed(single):
    _, results = single
    _assert_one_slice_per_device(results["runs_layout"], size=8)


@pytest.mark.slow
def test_runner_on_eight_devices_writes_the_same_metrics_as_on_one(single):
    out, _ = single
    header1, rows1 = read_metrics(out / "devices1" / "metrics.csv")
    header8, rows8 = read_metrics(out / "devices8" / "metrics.csv")
    assert header1 == header8
    np.testing.assert_array_equal(rows1[:, :2], rows8[:, :2])  # step, seed
    np.testing.assert_allclose(rows1, rows8, rtol=1e-5, atol=1e-6, equal_nan=True)


@pytest.mark.slow
def test_config_json_records_devices(single):
    out, _ = single
    one = json.loads((out / "devices1" / "config.json").read_text())["devices"]
    eight = json.loads((out / "devices8" / "config.json").read_text())["devices"]
    envs = json.loads((out / "envs8" / "config.json").read_text())["devices"]
    assert (one["count"], one["platform"], one["layout"]) == (1, "cpu", "runs")
    assert (eight["count"], eight["ids"], eight["layout"]) == (8, list(range(8)), "runs")
    assert eight["kind"] == one["kind"] and eight["processes"] == 1
    assert (envs["count"], envs["layout"]) == (8, "envs")


@pytest.mark.slow
def test_single_run_shards_its_envs_over_the_devices(single):
    _, results = single
    # Env states and observations [1 run, 8 envs, ...] after training: the env axis stays split
    # (reset_envs constrains it; XLA propagates it through the rollout scans), one env a device.
    layout = results["envs_layout"]
    assert layout[0]["shape"] == [1, 8, 4]  # obs; then CartPole's state fields [1, 8]
    assert len(layout) > 1
    _assert_one_slice_per_device(layout, size=8, axis=1)


@pytest.mark.slow
def test_single_run_over_eight_devices_equals_seed_0_on_one(single):
    out, _ = single
    header, rows = read_metrics(out / "envs8" / "metrics.csv")
    _, reference = read_metrics(out / "devices1" / "metrics.csv")
    seed0 = reference[reference[:, header.index("seed")] == 0]
    np.testing.assert_allclose(rows, seed0, rtol=1e-4, atol=1e-5, equal_nan=True)


@pytest.mark.slow
def test_sharded_vmapped_train_equals_unsharded(single):
    _, results = single
    _assert_one_slice_per_device(results["a2c_layout"], size=8)
    assert results["a2c_max_difference"]["episode_return"] <= 1e-4
    assert max(results["a2c_max_difference"].values()) <= 1e-4


@pytest.mark.slow
def test_seeds_must_divide_over_devices(single):
    _, results = single
    assert results["seeds_error"] == (
        "--seeds 6 over 4 devices: choose a multiple of 4 or --devices 1/2/3/6 "
        "(every device trains the same number of runs)")
    assert not results["seeds_error_wrote"]
    assert results["sweep_error"].startswith(
        "2 sweep settings × 3 seeds = 6 runs over 4 devices: choose --seeds as a multiple of 2")
    assert results["envs_error"].startswith(
        "a single run over 4 devices shards its 6 envs: choose --num-envs as a multiple of 4")


@pytest.mark.slow
def test_cli_reports_indivisible_seeds(single):
    out, results = single
    assert results["cli_code"] == 2
    assert results["cli_stderr"].startswith("jaxrl: error: --seeds 6 over 4 devices")
    assert not (out / "cli").exists()


# ----------------------------------------------------------------------------------------------
# In-process checks (one device)


def test_resolve_devices_rejects_bad_counts():
    with pytest.raises(ValueError, match=r"--devices must be 'all' or a positive integer"):
        parallel.resolve_devices("many")
    with pytest.raises(ValueError, match=r"--devices 2: choose 1 to 1"):
        parallel.resolve_devices(2)
    assert parallel.resolve_devices("1") == jax.devices()[:1]


def test_check_divisible_names_the_fix():
    parallel.check_divisible(8, 4, seeds=8)
    with pytest.raises(ValueError, match=r"^--seeds 6 over 4 devices: choose a multiple of 4"):
        parallel.check_divisible(6, 4, seeds=6)


def test_placement_on_one_device_keeps_the_run_axis_whole():
    placement = parallel.Placement.create(1, runs=3)
    keys = placement.shard(jax.random.split(jax.random.key(0), 3))
    doubled = placement.compile(lambda k: jax.random.key_data(k) * 2, keys)(keys)
    assert not placement.shard_envs
    assert doubled.sharding == placement.batch_sharding
    np.testing.assert_array_equal(
        doubled, 2 * jax.random.key_data(jax.random.split(jax.random.key(0), 3)))


def test_initialize_distributed_needs_all_three_settings(monkeypatch):
    for name in ("JAX_COORDINATOR_ADDRESS", "JAX_NUM_PROCESSES", "JAX_PROCESS_ID"):
        monkeypatch.delenv(name, raising=False)
    assert parallel.initialize_distributed() is False
    with pytest.raises(ValueError, match=r"needs --num-processes and --process-id"):
        parallel.initialize_distributed("localhost:1234", num_processes=2)
    with pytest.raises(ValueError, match=r"--process-id must be in 0 … 1, got 2"):
        parallel.initialize_distributed("localhost:1234", num_processes=2, process_id=2)


# ----------------------------------------------------------------------------------------------
# Multi-host: two local processes, 2 CPU devices each, gloo collectives


@pytest.mark.slow
def test_importing_jaxrl_leaves_the_backend_uninitialised(single):
    # jax.distributed.initialize must run before the XLA backend starts, and the CLI imports
    # every algorithm (to build its flags) first: no module may create a jax array on import.
    # The single-host subprocess imports jaxrl's CLI, runner and algorithms first and checks.
    _, results = single
    assert results["backend_started_by_imports"] is False, (
        "importing jaxrl started the XLA backend (a module-level jnp array?): use NumPy "
        "constants so that multi-host runs can still call jax.distributed.initialize")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("localhost", 0))
        return sock.getsockname()[1]


@pytest.mark.slow  # two more processes compiling the run: ~40 s on a quiet 2-core CPU
def test_two_processes_train_one_sharded_batch_and_process_0_writes(single, tmp_path):
    reference_dir, _ = single
    port = _free_port()
    processes = [
        subprocess.Popen(
            [sys.executable, "-m", "jaxrl.cli", "train", "ppo", *TINY_FLAGS, "--seeds", "4",
             "--devices", "all", "--coordinator", f"localhost:{port}", "--num-processes", "2",
             "--process-id", str(i), "--out", str(tmp_path / f"process{i}")],
            env={**os.environ, "JAX_PLATFORMS": "cpu",
                 "XLA_FLAGS": f"--xla_force_host_platform_device_count=2 {XLA_SUITE_FLAGS}"},
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        for i in range(2)]
    outputs = _finish(*processes, timeout=300)
    assert "results in" in outputs[0] and "results in" not in outputs[1]
    assert not (tmp_path / "process1").exists()
    devices = json.loads((tmp_path / "process0" / "config.json").read_text())["devices"]
    assert (devices["count"], devices["processes"], devices["layout"]) == (4, 2, "runs")
    header, rows = read_metrics(tmp_path / "process0" / "metrics.csv")
    _, reference = read_metrics(reference_dir / "devices1" / "metrics.csv")
    seed = header.index("seed")
    np.testing.assert_array_equal(np.unique(rows[:, seed]), [0, 1, 2, 3])
    np.testing.assert_allclose(rows, reference[reference[:, seed] < 4], rtol=1e-5, atol=1e-6,
                               equal_nan=True)


if __name__ == "__main__":
    if sys.argv[1] == "single-host":
        single_host(Path(sys.argv[2]))
    else:
        raise SystemExit(f"unknown scenario {sys.argv[1]!r}")
