"""``benchmarks/suite.py``: a suite stopped by its deadline and continued ends where an
uninterrupted one does (the runner's checkpoints carry it across calls), and its record/table.

One microscopic PPO case on CartPole (three runner compiles of a 2-env, 8-unit program).
"""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.xdist_group("suite_runner")

BENCHMARKS = Path(__file__).resolve().parent.parent / "benchmarks"


def _load_suite():
    spec = importlib.util.spec_from_file_location("benchmarks_suite", BENCHMARKS / "suite.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules["benchmarks_suite"] = module
    spec.loader.exec_module(module)
    return module


suite = _load_suite()

MICRO = suite.Case(
    "ppo-micro", "ppo", "CartPole-v1",
    {"total_timesteps": 2 * 8 * 6, "num_envs": 2, "num_steps": 8, "num_minibatches": 1,
     "update_epochs": 1, "hidden_sizes": (8,)},
    {}, published=500.0, source="test", seeds=2, reward_scale=2.0, target=1e9)


@pytest.mark.slow
def test_a_suite_stopped_by_its_deadline_and_continued_equals_an_uninterrupted_one(tmp_path):
    whole = suite.run_suite([MICRO], tmp_path / "whole", command="whole", progress=False)
    assert whole["cases"]["ppo-micro"]["finished"]

    pieces = tmp_path / "pieces"
    first = suite.run_suite([MICRO], pieces, deadline=0.0, command="piece 1", progress=False)
    record = first["cases"]["ppo-micro"]
    assert not record["finished"] and 0 < record["steps_done"] < 96  # one chunk, then stopped
    last = suite.run_suite([MICRO], pieces, command="piece 2", progress=False)
    assert last["cases"]["ppo-micro"]["finished"]
    assert last["cases"]["ppo-micro"]["steps_done"] == 96

    def read(root: Path) -> bytes:
        return (root / "ppo-micro" / "metrics.csv").read_bytes()

    assert read(pieces) == read(tmp_path / "whole")
    for name in ("final_return_mean", "final_return_std", "env_steps"):
        assert last["cases"]["ppo-micro"][name] == whole["cases"]["ppo-micro"][name]

    # Each piece is recorded with its machine, versions and command; a third call is a no-op.
    stored = json.loads((pieces / "suite.json").read_text())
    assert [p["command"] for p in stored["pieces"]] == ["piece 1", "piece 2"]
    assert {"jax"} <= set(stored["pieces"][0]["versions"]) and stored["pieces"][0]["machine"]
    again = suite.run_suite([MICRO], pieces, command="piece 3", progress=False)
    assert again["pieces"][-1]["ran"] == {}
    table = (pieces / "results.md").read_text()
    assert "| CartPole-v1 | ppo |" in table and "500 (test)" in table and "piece 2" in table
    # Returns are reported in the env's units: the reward scale is divided out.
    assert last["cases"]["ppo-micro"]["final_return_mean"] <= 500


def test_every_suite_case_builds_a_valid_config_and_twin():
    for cases in suite.SUITES.values():
        for case in cases:
            for twin in (False, True):
                config = suite.case_config(case, twin)
                config.validate()
                assert config.total_timesteps >= config.num_envs
