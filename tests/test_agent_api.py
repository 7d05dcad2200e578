"""The agent API's extension points and the registry: planners that act from the env state
(a toy random-shooting agent, ``tests/toy_agents.py``) through evaluation, the runner,
``load_policy`` and ``jaxrl eval``; the registry's capability errors and the README table it
generates; env arguments from the CLI; old run directories that still resume."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import jax
import numpy as np
import pytest
import toy_agents

from jaxrl import cli, envs, registry, run_dir, runner
from jaxrl.evaluation import evaluate
from jaxrl.policy import evaluate_run, load_policy
from jaxrl.training.agent import policy_fn
from jaxrl.training.config import BaseConfig, check_config

README = Path(__file__).parents[1] / "README.md"
LEGACY = Path(__file__).parent / "data" / "legacy"


@pytest.fixture
def toy_registered(monkeypatch):
    toy = registry.Algorithm("toy_shooting", "toy_agents", "planning", "random shooting (test)",
                             "planning", actions=(registry.DISCRETE,),
                             needs=frozenset({registry.ENV_STATE}))
    monkeypatch.setitem(registry._REGISTRY, toy.name, toy)
    return toy


def test_planner_on_env_state_evaluates_through_policy_fn():
    env, env_params = envs.make("CartPole-v1")
    agent = toy_agents.make_agent(toy_agents.Config(), env, env_params)
    assert agent.acts_on_env_state and agent.initial_carry is None
    act, initial_carry = policy_fn(agent, None, True)
    score = jax.jit(lambda key: evaluate(key, env, env_params, act, 4, 501,
                                         initial_carry=initial_carry))(jax.random.key(0))
    assert float(score) > 150.0  # a uniformly random policy scores ≈ 22


@pytest.mark.slow
def test_planner_runs_saves_and_evaluates_like_any_agent(toy_registered, tmp_path):
    config = toy_agents.Config(total_timesteps=2 * 64 * 2)
    result = runner.run("toy_shooting", "CartPole-v1", config, out=tmp_path / "run",
                        progress=False)
    assert result.metrics["episode_return"].shape == (1, 2)
    policy = load_policy(tmp_path / "run")
    assert policy.agent.acts_on_env_state and policy.updates == 2
    rows = evaluate_run(tmp_path / "run", episodes=3)
    assert rows[0]["deterministic"]["episodes"] == 3
    assert rows[0]["deterministic"]["mean"] > 150.0


def test_every_registered_algorithm_has_the_agent_api():
    for algorithm in registry.algorithms():
        module = algorithm.load()
        assert issubclass(module.Config, BaseConfig), algorithm.name
        assert callable(module.make_agent) and callable(module.make_train), algorithm.name
        check_config(module.Config())  # the defaults lie in their declared ranges
        assert getattr(module, "check_config", check_config) is check_config, (
            f"{algorithm.name}: ranges live on the config's fields, not in its own check")


def test_no_algorithm_module_imports_another():
    modules = {a.module for a in registry.algorithms()}
    for algorithm in registry.algorithms():
        source = Path(algorithm.load().__file__).read_text()
        imported = set(re.findall(r"^from (jaxrl\.agents\.\w+) import|^from jaxrl\.agents import "
                                  r"(\w+)", source, re.M))
        others = {m or f"jaxrl.agents.{name}" for m, name in imported} & modules
        assert not others - {algorithm.module}, f"{algorithm.name} imports {others}"


def test_readme_algorithm_table_is_the_registry():
    text = README.read_text()
    table = text.split("<!-- algorithms:begin -->")[1].split("<!-- algorithms:end -->")[0]
    assert table.strip() == registry.markdown_table(), (
        "README's algorithm table is generated: python -c 'from jaxrl import registry; "
        "print(registry.markdown_table())'")


def test_capability_errors_say_what_fits():
    env, env_params = envs.make("CartPole-v1")
    with pytest.raises(TypeError, match=r"sac needs continuous actions.*dqn, soft_q"):
        registry.check_env(registry.get("sac"), "CartPole-v1", env, env_params)
    env, env_params = envs.make("Acrobot-v1")
    with pytest.raises(ValueError, match=r"no scripted expert; these envs have one: CartPole-v1"):
        registry.check_env(registry.get("dagger"), "Acrobot-v1", env, env_params)
    tabular = registry.Algorithm("vi_test", "x", "planning", "", "", needs=frozenset(
        {registry.TABULAR_ENV}))
    with pytest.raises(ValueError, match="plans with the exact transition table"):
        registry.check_env(tabular, "Acrobot-v1", env, env_params)


def test_dataset_needs_come_from_the_registry(tmp_path):
    with pytest.raises(ValueError, match="bc learns from a dataset: pass --dataset"):
        runner.run("bc", "CartPole-v1", registry.get("bc").load().Config(), progress=False)
    with pytest.raises(ValueError, match="ppo does not learn from a dataset"):
        runner.agent_factory("ppo", "CartPole-v1", None, None, dataset=tmp_path / "x.npz")


def test_env_args_are_parsed_and_recorded(tmp_path):
    assert cli.parse_env_args(("size=20", "deterministic=false", "name=abc")) == {
        "size": 20, "deterministic": False, "name": "abc"}
    with pytest.raises(ValueError, match="expected NAME=VALUE"):
        cli.parse_env_args(("size",))
    out = tmp_path / "deepsea"
    code = cli.main(["train", "ppo", "--env", "DeepSea-bsuite", "--env-arg", "size=5",
                     "--total-timesteps", "64", "--num-envs", "2", "--num-steps", "16",
                     "--update-epochs", "1", "--hidden-sizes", "8", "--no-progress",
                     "--out", str(out)])
    assert code == 0
    assert json.loads((out / "config.json").read_text())["env_kwargs"] == {"size": 5}
    policy = load_policy(out)
    assert policy.env_params.max_steps_in_episode == 5  # DeepSea's episode length is its size
    assert cli.main(["train", "ppo", "--env", "CartPole-v1", "--env-arg", "size=5"]) == 2


def _relocate(run: Path, dataset: Path) -> None:
    """Point a copied legacy run at the copied dataset (the record holds absolute paths)."""
    for path in [run / "config.json", *run.glob("checkpoints/*/checkpoint.json")]:
        record = json.loads(path.read_text())
        target = record["metadata"] if "metadata" in record else record
        if target.get("dataset"):
            target["dataset"] = str(dataset.resolve())
        path.write_text(json.dumps(record, indent=1) + "\n")


@pytest.mark.parametrize("name", [pytest.param("bc-run", marks=pytest.mark.slow), "ppo-run"])
def test_run_directories_of_the_previous_release_still_resume(name, tmp_path):
    """Runs written by jaxrl 0.1 (commit 48e34b9; offline field names ``total_steps``,
    ``eval_every``, ``eval_envs``; offline evaluation returns under ``episode_return``) resume
    from their checkpoints with today's names, keep the rows those cover, and evaluate.

    The recomputed rows are not compared with the old ones: the fixture was written on another
    machine with XLA's default threading, and resume is bitwise on one machine. That today's
    code computes what 0.1 computed was checked against runs of 0.1 when the code moved."""
    shutil.copytree(LEGACY, tmp_path / "legacy")
    run = tmp_path / "legacy" / name
    _relocate(run, tmp_path / "legacy" / "cartpole_scripted.npz")
    old_rows = (run / "metrics.csv").read_bytes().splitlines(keepends=True)
    newest = run_dir.latest_checkpoint(run)
    shutil.rmtree(newest)
    spec = run_dir.read_run(run)
    if name == "bc-run":
        assert (spec.config.total_gradient_steps, spec.config.log_frequency,
                spec.config.eval_episodes) == (8, 2, 2)
    resumed = runner.resume_run(run, progress=False)
    updates = int(newest.name.removeprefix("update_"))
    assert resumed.resumed_updates == updates - 1
    rows = (run / "metrics.csv").read_bytes().splitlines(keepends=True)
    kept = 1 + (updates - 1) * spec.seeds
    assert rows[1:kept] == old_rows[1:kept] and len(rows) == len(old_rows)
    header = rows[0].decode()
    assert header == old_rows[0].decode().replace("episode_return", "eval_return") if (
        name == "bc-run") else header == old_rows[0].decode()
    for metric, values in resumed.metrics.items():  # returns are NaN before an episode ends
        assert np.isfinite(values[:, -1]).all(), metric
    assert evaluate_run(run, episodes=2)[0]["deterministic"]["episodes"] >= 1
    assert run_dir.latest_checkpoint(run).name == newest.name
