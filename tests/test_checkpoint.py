"""Checkpoints: the ``jaxrl.checkpoint`` format (round trip, atomicity, corruption, mismatch),
and what the runner builds on it — resume equals an uninterrupted run byte for byte, Ctrl-C
saves a checkpoint, the NaN/Inf guard stops a diverging run, saved policies load and evaluate.

Runner tests share one tiny PPO config (6 updates of 4 envs × 8 steps, two seeds, a checkpoint
every 2 updates) so that each ``run`` compiles in seconds.
"""

from __future__ import annotations

import csv
import json
import shutil
import signal
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import struct
from helpers import leaves_equal

from jaxrl import checkpoint, run_dir, runner
from jaxrl.agents import ppo
from jaxrl.plots import LivePlot
from jaxrl.policy import evaluate_policy, evaluate_run, load_policy

# One xdist group (README's command runs ``--dist loadgroup``): the module's compiled fixtures
# are built once, on one worker.
pytestmark = pytest.mark.xdist_group("checkpoint")


class State(struct.PyTreeNode):
    params: Any
    key: jax.Array
    other_key: jax.Array
    count: jax.Array
    done: jax.Array
    empty: jax.Array


def make_state() -> State:
    return State(
        params={"dense": {"kernel": jnp.arange(6.0).reshape(2, 3), "bias": jnp.zeros(3)}},
        key=jax.random.split(jax.random.key(3), 2),
        other_key=jax.random.key(4, impl="rbg"),
        count=jnp.asarray(2**31 - 1, jnp.int32),
        done=jnp.array([True, False]),
        empty=jnp.zeros((0, 5)))


# ----------------------------------------------------------------------------------------------
# The format


def test_round_trip_is_bitwise_and_keeps_key_implementations(tmp_path):
    state = make_state()
    checkpoint.save(tmp_path / "ckpt", state, {"algo": "test", "updates": 7})
    restored = checkpoint.restore(tmp_path / "ckpt", like=jax.eval_shape(lambda: state))
    assert leaves_equal(restored, state)
    assert jax.dtypes.issubdtype(restored.key.dtype, jax.dtypes.prng_key)
    assert str(jax.random.key_impl(restored.key)) == "threefry2x32"
    assert str(jax.random.key_impl(restored.other_key)) == "rbg"
    assert restored.empty.shape == (0, 5)
    assert restored.count.dtype == jnp.int32 and int(restored.count) == 2**31 - 1
    # The restored keys continue the same random stream.
    np.testing.assert_array_equal(jax.random.uniform(restored.key[1], (3,)),
                                  jax.random.uniform(state.key[1], (3,)))
    assert checkpoint.read_metadata(tmp_path / "ckpt") == {"algo": "test", "updates": 7}


def test_restore_without_like_gives_arrays_by_tree_path(tmp_path):
    state = make_state()
    checkpoint.save(tmp_path / "ckpt", state)
    flat = checkpoint.restore(tmp_path / "ckpt")
    assert set(flat) == {".params['dense']['bias']", ".params['dense']['kernel']", ".key",
                         ".other_key", ".count", ".done", ".empty"}
    np.testing.assert_array_equal(flat[".params['dense']['kernel']"], np.arange(6.0).reshape(2, 3))


def test_saving_over_an_existing_checkpoint_is_refused(tmp_path):
    checkpoint.save(tmp_path / "ckpt", make_state())
    with pytest.raises(checkpoint.CheckpointError, match="already exists"):
        checkpoint.save(tmp_path / "ckpt", make_state())


def test_crash_after_the_arrays_are_written_leaves_no_valid_checkpoint(tmp_path, monkeypatch):
    def crash(path, text):
        assert any((p / "arrays").is_dir() for p in tmp_path.glob(".ckpt.tmp-*"))
        raise OSError("simulated crash while writing the manifest")

    monkeypatch.setattr(checkpoint, "_write_synced", crash)
    with pytest.raises(OSError, match="simulated crash"):
        checkpoint.save(tmp_path / "ckpt", make_state())
    assert not (tmp_path / "ckpt").exists()
    assert not checkpoint.is_checkpoint(tmp_path / "ckpt")
    assert list(tmp_path.iterdir()) == []  # the temporary directory is gone too


def test_a_killed_save_is_invisible_to_resume(tmp_path):
    # SIGKILL before the rename leaves only a hidden temporary directory behind.
    out = tmp_path / "run"
    checkpoint.save(out / "checkpoints" / "update_0000000002", make_state())
    partial = out / "checkpoints" / ".update_0000000004.tmp-deadbeef"
    shutil.copytree(out / "checkpoints" / "update_0000000002", partial)
    (partial / "checkpoint.json").unlink()
    assert run_dir.latest_checkpoint(out).name == "update_0000000002"
    assert not checkpoint.is_checkpoint(partial)


# orbax leaves an asyncio callback behind when tensorstore rejects the truncated file.
@pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")
def test_missing_corrupt_and_mismatched_checkpoints_raise_clear_errors(tmp_path):
    like = jax.eval_shape(make_state)
    with pytest.raises(checkpoint.CheckpointError, match="no checkpoint at"):
        checkpoint.restore(tmp_path / "nothing", like=like)

    checkpoint.save(tmp_path / "garbled", make_state())
    (tmp_path / "garbled" / "checkpoint.json").write_text('{"schema_version": 1, "lea')
    with pytest.raises(checkpoint.CheckpointError, match="corrupt"):
        checkpoint.restore(tmp_path / "garbled", like=like)

    checkpoint.save(tmp_path / "truncated", make_state())
    for data in (tmp_path / "truncated" / "arrays").rglob("*"):
        if data.is_file() and data.parent.name == "d":
            data.write_bytes(data.read_bytes()[: len(data.read_bytes()) // 2])
    with pytest.raises(checkpoint.CheckpointError, match="corrupt"):
        checkpoint.restore(tmp_path / "truncated", like=like)

    checkpoint.save(tmp_path / "ok", make_state())
    wider = make_state().replace(params={"dense": {"kernel": jnp.zeros((2, 4)),
                                                   "bias": jnp.zeros(3)}})
    with pytest.raises(checkpoint.CheckpointError, match="does not match.*kernel"):
        checkpoint.restore(tmp_path / "ok", like=jax.eval_shape(lambda: wider))
    manifest = json.loads((tmp_path / "ok" / "checkpoint.json").read_text())
    manifest["schema_version"] = 99
    (tmp_path / "ok" / "checkpoint.json").write_text(json.dumps(manifest))
    with pytest.raises(checkpoint.CheckpointError, match="schema version 99"):
        checkpoint.restore(tmp_path / "ok", like=like)


def test_a_flipped_byte_in_the_arrays_is_caught_by_the_checksum(tmp_path, monkeypatch):
    checkpoint.save(tmp_path / "ckpt", make_state())
    manifest = json.loads((tmp_path / "ckpt" / "checkpoint.json").read_text())
    manifest["leaves"][0]["sha256"] = "0" * 64  # as if the stored bytes had changed
    (tmp_path / "ckpt" / "checkpoint.json").write_text(json.dumps(manifest))
    with pytest.raises(checkpoint.CheckpointError, match=r"corrupt: leaf \.params"):
        checkpoint.restore(tmp_path / "ckpt", like=jax.eval_shape(make_state))


# ----------------------------------------------------------------------------------------------
# Host-side counters and the finiteness check


def test_env_steps_are_exact_python_ints_past_int32():
    # 2^40 updates of 4096 steps plus a warm-up: no run needed, and no int32 wrap-around.
    steps = runner.env_steps(2**40, 4096, initial_steps=10_000)
    assert steps == 2**52 + 10_000
    assert isinstance(steps, int)
    assert runner.env_steps(3, 128) == 384
    assert runner.default_checkpoint_every(2048) == 205
    assert runner.default_checkpoint_every(5) == 1


def test_params_finite_checks_only_params_like_fields():
    state = make_state()
    assert bool(runner.params_finite(state))
    broken = state.replace(params={"dense": {"kernel": jnp.full((2, 3), jnp.inf),
                                             "bias": jnp.zeros(3)}})
    assert not bool(runner.params_finite(broken))

    class Targets(struct.PyTreeNode):
        target_params: Any
        episode_return: jax.Array

    assert not bool(runner.params_finite(Targets(jnp.array([0.0, jnp.nan]), jnp.zeros(()))))
    # A NaN outside the parameters (the return metric before an episode ends) is fine.
    assert bool(runner.params_finite(Targets(jnp.zeros(2), jnp.full((), jnp.nan))))


# ----------------------------------------------------------------------------------------------
# The runner: resume, Ctrl-C, divergence


TINY = ppo.Config(total_timesteps=6 * 4 * 8, num_envs=4, num_steps=8, update_epochs=1,
                  hidden_sizes=(8,))
EVERY = 2 * 4 * 8  # env steps: a checkpoint after updates 2, 4 and 6


def tiny_run(out: Path, **kwargs) -> runner.RunResult:
    return runner.run("ppo", "CartPole-v1", kwargs.pop("config", TINY), seeds=2, out=out,
                      progress=False, checkpoint_every=EVERY, **kwargs)


@pytest.fixture(scope="module")
def reference(tmp_path_factory) -> tuple[Path, runner.RunResult]:
    out = tmp_path_factory.mktemp("checkpoint") / "reference"
    return out, tiny_run(out)


def test_checkpoints_follow_the_schedule_and_the_last_ones_are_kept(reference):
    out, result = reference
    names = sorted(p.name for p in (out / "checkpoints").iterdir())
    assert names == ["update_0000000004", "update_0000000006"]  # KEEP_CHECKPOINTS = 2
    metadata = checkpoint.read_metadata(out / "checkpoints" / "update_0000000006")
    assert metadata["updates"] == 6
    assert metadata["algo"] == "ppo" and metadata["config"]["num_envs"] == 4
    assert [r["seed"] for r in metadata["runs"]] == [0, 1]
    assert json.loads((out / "config.json").read_text())["checkpoint_every"] == EVERY
    final = checkpoint.restore(out / "checkpoints" / "update_0000000006",
                               like=result.train_state)
    assert leaves_equal(final, result.train_state)


def test_ctrl_c_and_a_stopped_notebook_loop_resume_to_the_uninterrupted_run(reference,
                                                                             tmp_path):
    # Stopped twice off the every-2-updates schedule: Ctrl-C in ``run`` after update 3, then a
    # ``break`` in a resumed notebook loop after update 5; ``resume_run`` finishes the run.
    ref_out, ref = reference
    out, plot = tmp_path / "run", LivePlot()
    handler = signal.getsignal(signal.SIGINT)  # SIG_IGN where pytest started in the background

    def press_ctrl_c(chunk_index, metrics):
        if chunk_index == 1:  # after update 2; the run stops at the next chunk boundary
            signal.raise_signal(signal.SIGINT)

    with pytest.raises(runner.RunInterrupted) as interrupted:
        tiny_run(out, on_chunk=press_ctrl_c)
    assert interrupted.value.updates == 3
    assert interrupted.value.resume_command == f"jaxrl train ppo --resume {out}"
    assert f"jaxrl train ppo --resume {out}" in str(interrupted.value)
    assert (out / "checkpoints" / "update_0000000003").is_dir()
    assert signal.getsignal(signal.SIGINT) is handler  # restored
    # A partial row, as if the process had died while writing, is dropped too.
    with open(out / "metrics.csv", "a") as file:
        file.write("128,0,12.5,0.1")
    chunks = []
    for chunk in runner.iterate("ppo", "CartPole-v1", TINY, seeds=2, out=out, progress=False,
                                checkpoint_every=EVERY, resume=True):
        plot.update(chunk)
        chunks.append(chunk)
        assert chunk.metrics["episode_return"].shape == (2, chunk.active)
        if chunk.first + chunk.active == 5:
            break  # stopping checkpoints update 5
    assert chunks[0].first == 3
    assert (out / "checkpoints" / "update_0000000005").is_dir()
    np.testing.assert_array_equal(np.concatenate(plot.steps), ref.steps[3:5])
    np.testing.assert_array_equal(np.concatenate(plot.values, axis=1),
                                  ref.metrics["episode_return"][:, 3:5])
    assert plot.figure().axes[0].get_ylabel() == "episode return"
    assert leaves_equal(chunks[-1].train_state, checkpoint.restore(
        out / "checkpoints" / "update_0000000005", like=ref.train_state))
    resumed = runner.resume_run(out, progress=False)
    assert resumed.resumed_updates == 5
    assert (out / "metrics.csv").read_bytes() == (ref_out / "metrics.csv").read_bytes()
    assert leaves_equal(resumed.train_state, ref.train_state)
    assert leaves_equal(resumed.metrics, ref.metrics)
    assert (out / "returns.png").is_file() and (out / "timings.json").is_file()


def test_resume_of_a_different_run_is_refused(reference):
    out, _ = reference
    with pytest.raises(checkpoint.CheckpointError, match=r"different run.*learning_rate"):
        tiny_run(out, config=TINY.replace(learning_rate=3e-4), resume=True)
    with pytest.raises(checkpoint.CheckpointError, match=r"different run.*env"):
        runner.run("ppo", "Acrobot-v1", TINY, seeds=2, out=out, progress=False,
                   checkpoint_every=EVERY, resume=True)
    with pytest.raises(ValueError, match="already complete"):
        runner.resume_run(out, progress=False)


def _stopped_copy(reference_out: Path, destination: Path) -> Path:
    """The reference run as if it had been killed after update 5 (last checkpoint: 4)."""
    shutil.copytree(reference_out, destination)
    shutil.rmtree(destination / "checkpoints" / "update_0000000006")
    return destination


def test_resume_from_a_corrupt_checkpoint_is_refused(reference, tmp_path):
    out = _stopped_copy(reference[0], tmp_path / "garbled")
    (out / "checkpoints" / "update_0000000004" / "checkpoint.json").write_text("{not json")
    with pytest.raises(checkpoint.CheckpointError, match="corrupt"):
        runner.resume_run(out, progress=False)

    out = _stopped_copy(reference[0], tmp_path / "short_csv")
    lines = (out / "metrics.csv").read_bytes().splitlines(keepends=True)
    (out / "metrics.csv").write_bytes(b"".join(lines[:4]))  # fewer rows than the checkpoint
    with pytest.raises(checkpoint.CheckpointError, match="metrics.csv"):
        runner.resume_run(out, progress=False)

    out = _stopped_copy(reference[0], tmp_path / "no_checkpoint")
    shutil.rmtree(out / "checkpoints")
    with pytest.raises(checkpoint.CheckpointError, match="no checkpoint"):
        runner.resume_run(out, progress=False)


def test_diverging_run_stops_naming_update_and_metric_and_keeps_the_good_checkpoint(tmp_path):
    # Adam at lr 1e30 makes update 2 non-finite; update 1 is still finite. The rate is a leaf
    # of the config: the run is the reference's program.
    out = tmp_path / "diverged"
    unstable = TINY.replace(learning_rate=1e30)
    with pytest.raises(runner.TrainingDiverged) as diverged:
        runner.run("ppo", "CartPole-v1", unstable, seeds=2, out=out, progress=False,
                   checkpoint_every=4 * 8)
    message = str(diverged.value)
    # Several metrics are NaN at update 2 (grad_norm, and approx_kl, which PPO measures on the
    # update's non-finite policy); the message names the first in alphabetical order.
    assert "update 2 " in message and "approx_kl = nan" in message
    assert "seed 0" in message
    assert "update_0000000001" in message
    assert sorted(p.name for p in (out / "checkpoints").iterdir()) == ["update_0000000001"]
    with open(out / "metrics.csv", newline="") as file:
        rows = list(csv.reader(file))
    assert [row[:2] for row in rows[1:]] == [["32", "0"], ["32", "1"]]  # the bad update unwritten
    assert all(np.isfinite(float(v)) for row in rows[1:] for v in row[3:])
    assert not (out / "timings.json").exists()


# ----------------------------------------------------------------------------------------------
# Saved policies


def test_load_policy_restores_one_seed_with_a_jittable_act(reference):
    out, result = reference
    policy = load_policy(out, seed=1)
    assert (policy.algo, policy.env_id, policy.seed, policy.updates) == ("ppo", "CartPole-v1", 1, 6)
    assert leaves_equal(policy.params, jax.tree.map(lambda x: x[1], result.train_state))
    act = jax.jit(policy.act, static_argnames="deterministic")
    obs = jax.random.normal(jax.random.key(0), (5, 4))
    actions = act(policy.params, obs, jax.random.key(1), deterministic=True)
    assert actions.shape == (5,) and set(np.asarray(actions)) <= {0, 1}
    with pytest.raises(ValueError, match="seeds 0..1, not seed 7"):
        load_policy(out, seed=7)


def test_evaluation_runs_every_episode_to_its_end(reference):
    out, _ = reference
    policy = load_policy(out, seed=0)
    returns = evaluate_policy(policy, jax.random.key(0), 6, deterministic=True)
    assert returns.shape == (6,)  # CartPole ends within 500 steps: every episode finished
    assert (returns >= 1).all() and (returns <= 500).all()
    rows = evaluate_run(out, episodes=6, eval_seed=0)
    assert [row["seed"] for row in rows] == [0, 1]
    assert rows[0]["deterministic"]["mean"] == pytest.approx(returns.mean())
    assert rows[0]["deterministic"]["episodes"] == rows[0]["stochastic"]["episodes"] == 6
