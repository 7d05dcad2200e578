"""The benchmark harness (``benchmarks/run.py``) on microscopic cases, so it cannot rot silently.

Only jaxrl's side runs here (no peer venvs); timings are never asserted, only that every row
field is there and consistent. The FLOP counter is checked against hand counts.
"""

from __future__ import annotations

import importlib.util
import json
import math
import sys
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxrl.backend import cpu_threads, cpu_threefry, gradient_steps

BENCHMARKS = Path(__file__).resolve().parent.parent / "benchmarks"


def _load(name: str, path: Path):
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


harness = _load("benchmarks_run", BENCHMARKS / "run.py")
measure = sys.modules["measure"]

TINY_PPO = {"total_timesteps": 256, "num_envs": 4, "num_steps": 16, "update_epochs": 2,
            "num_minibatches": 2, "hidden_sizes": [8], "activation": "tanh"}


def test_matmul_flops_counts_every_scan_iteration_and_the_dearer_cond_branch():
    def f(x, w):
        def body(carry, _):
            return jnp.tanh(carry @ w), None

        carry, _ = jax.lax.scan(body, x, None, length=7)
        return jax.lax.cond(carry.sum() > 0, lambda: carry @ w, lambda: carry)

    x, w = jnp.ones((8, 16)), jnp.ones((16, 16))
    _, _, jaxpr = measure.compile_and_run(f, x, w)
    one_dot = 2 * 8 * 16 * 16  # 2 · |output [8, 16]| · contracted 16
    assert measure.matmul_flops(jaxpr) == (8 * one_dot, 0)  # 7 scan iterations + the cond
    # XLA's cost analysis counts the scan body once: why the harness walks the jaxpr instead.
    xla = jax.jit(f).lower(x, w).compile().cost_analysis()["flops"]
    assert xla < 3 * one_dot


def test_matmul_flops_of_a_convolution_matches_xla():
    image, kernel = jnp.ones((2, 10, 10, 4)), jnp.ones((3, 3, 4, 5))

    def conv(image, kernel):
        return jax.lax.conv_general_dilated(image, kernel, (1, 1), "VALID",
                                            dimension_numbers=("NHWC", "HWIO", "NHWC"))

    _, _, jaxpr = measure.compile_and_run(conv, image, kernel)
    expected = 2 * (2 * 8 * 8 * 5) * (3 * 3 * 4)  # 2 · |output| · window · input features
    assert measure.matmul_flops(jaxpr) == (expected, 0)
    assert jax.jit(conv).lower(image, kernel).compile().cost_analysis()["flops"] == expected


@pytest.mark.slow
def test_jaxrl_case_row_has_every_field_and_consistent_throughput():
    case = harness.Case("jaxrl", "ppo", "CartPole-v1", 2, TINY_PPO)
    row = harness.run_jaxrl_case(case)
    updates = 256 // (4 * 16)
    assert row["env_steps_per_seed"] == 256
    assert row["updates_per_seed"] == updates
    assert row["gradient_steps_per_seed"] == updates * 2 * 2
    assert min(row["compile_s"], row["compile_cpu_s"], row["run_s"], row["run_cpu_s"]) > 0
    assert row["matmul_flops"] > 0 and row["while_loops"] == 0
    assert row["final_return"] is None or math.isfinite(row["final_return"])
    assert set(row["machine"]) >= {"cpu", "cores", "loadavg", "jax", "backend"}
    assert row["cpu_threefry"] == cpu_threefry()
    # Time to result: compile + the first call (cold cache); the harness's own evaluation.
    first_run = row["run_s_all"][0] if "run_s_all" in row else row["run_s"]
    assert row["time_to_result_s"] == pytest.approx(row["compile_s"] + first_run)
    assert row["time_to_result_cpu_s"] > row["compile_cpu_s"]
    assert 0 < row["fair_return"] <= 500 and row["fair_return_std"] >= 0
    assert row["fair_return_kind"] == measure.EVAL_KIND
    assert row["compiler_options"] is None  # the suite's XLA_FLAGS set the level: kept
    assert row["machine"]["xla_cpu_threads"] == cpu_threads()
    derived = harness.derive({**row, "seeds": 2}, matmul_peak=1e9)
    assert derived["env_steps_per_s"] == pytest.approx(256 * 2 / row["run_s"])
    assert derived["updates_per_s"] == pytest.approx(updates * 4 * 2 / row["run_s"])
    assert derived["matmul_peak_fraction"] == pytest.approx(
        row["matmul_flops"] / row["run_s"] / 1e9)


def test_greedy_returns_score_first_episodes_to_the_time_limit():
    from jaxrl import envs

    env, params = envs.make("CartPole-v1")
    key = jax.random.key(0)
    left = measure.greedy_returns(lambda obs: jnp.zeros(obs.shape[0], jnp.int32),
                                  env.gymnax_env, params, key, episodes=4)
    assert left.shape == (4,) and bool(jnp.all((left > 5) & (left < 20)))  # falls at once
    balance = measure.greedy_returns(lambda obs: (obs[:, 2] + obs[:, 3] > 0).astype(jnp.int32),
                                     env.gymnax_env, params, key, episodes=4)
    assert bool(jnp.all(balance > left))


def test_compiler_options_follow_the_run_length_and_defer_to_xla_flags(monkeypatch):
    from jaxrl.backend import EMITTERS_OFF_STEPS, SHORT_RUN_STEPS, compiler_options

    monkeypatch.delenv("XLA_FLAGS", raising=False)
    level = "xla_backend_optimization_level"
    assert compiler_options("cpu", SHORT_RUN_STEPS)[level] == 0
    assert compiler_options("cpu", SHORT_RUN_STEPS + 1) == {
        level: 1, "xla_cpu_use_fusion_emitters": False}
    assert compiler_options("cpu", EMITTERS_OFF_STEPS + 1) == {
        level: 1, "xla_cpu_use_fusion_emitters": True}
    assert compiler_options("cpu") == compiler_options("cpu", EMITTERS_OFF_STEPS + 1)
    assert compiler_options("gpu", 10) is None
    monkeypatch.setenv("XLA_FLAGS", "--xla_backend_optimization_level=3")
    assert compiler_options("cpu", 10) is None


def test_env_only_reference_counts_whole_rollouts():
    config = {"total_timesteps": 100, "num_envs": 4, "num_steps": 8}
    row = harness.run_jaxrl_case(harness.Case("reference", "env_only", "CartPole-v1", 1, config))
    assert row["env_steps_per_seed"] == 3 * 4 * 8  # whole rollouts of 32 steps within 100
    assert row["run_s"] > 0


def test_off_policy_gradient_steps_follow_the_config():
    from jaxrl.agents import dqn

    config = dqn.Config(train_frequency=4, updates_per_step=2, log_frequency=64)
    # 64 / (4 · 1 env) = 16 training phases per update, 2 gradient steps each.
    assert gradient_steps(config, num_updates=10) == 10 * 16 * 2


def test_unknown_algorithm_is_a_skipped_row():
    row = harness.run_jaxrl_case(harness.Case("jaxrl", "nope", "CartPole-v1", 1, {}))
    assert row["status"] == "skipped" and "no 'nope'" in row["note"]


def test_a_failing_case_becomes_an_error_row(tmp_path):
    script = tmp_path / "crash.py"
    script.write_text("import sys\nsys.exit('peer exploded')\n")
    case = harness.Case("rejax", "ppo", "CartPole-v1", 1, {})
    row = harness.run_case(case, sys.executable, script, timeout=60)
    assert row["status"] == "error"
    assert row["note"] == "exit 1: peer exploded"


def test_targets_report_ratios_pass_miss_and_missing_rows():
    def row(framework, seeds, sps, compile_s, run_s=1.0):
        return {"framework": framework, "algo": "ppo", "env": "CartPole-v1", "seeds": seeds,
                "config": TINY_PPO, "status": "ok", "env_steps_per_s": sps,
                "compile_s": compile_s, "run_s": run_s}

    rows = [row("jaxrl", 1, 300.0, 10.0), row("rejax", 1, 100.0, 5.0),
            row("jaxrl", 64, 240.0, 12.0)]
    goals = {g["target"]: g for g in harness.targets(rows, backend="cpu")}
    timed = [{**rows[0], "time_to_result_s": 3.0, "fair_return": 500.0, "compiler_options": {
        "xla_backend_optimization_level": 1, "xla_cpu_use_fusion_emitters": False}},
             {**rows[1], "time_to_result_s": 5.0, "fair_return": 250.0}]
    ttr = [g for g in harness.targets(timed, backend="cpu")
           if g["target"] == "time to result ≤ 0.7× peer"]
    assert ttr[0]["ratio"] == pytest.approx(0.6) and ttr[0]["result"] == "PASS"
    columns = harness.markdown(timed, [])
    assert "| time to result s |" in columns and "| fair return |" in columns
    assert "| ok (XLA level 1, emitters off) | 10.0 (—) | 1.00 | 3.0 |" in columns
    assert "| 250.0 |" in columns
    assert goals["PPO env steps/s ≥ 1.5× peer"]["ratio"] == pytest.approx(3.0)
    assert goals["PPO env steps/s ≥ 1.5× peer"]["result"] == "PASS"
    assert goals["compile s ≤ peer"]["ratio"] == pytest.approx(2.0)
    assert goals["compile s ≤ peer"]["result"] == "MISS"
    scaling = goals["64 seeds keep per-sample throughput (SPS 64 / SPS 1 ≥ 1)"]
    assert scaling["ratio"] == pytest.approx(0.8) and scaling["result"] == "MISS"
    table = harness.markdown([{**r, "machine": None} for r in rows], list(goals.values()))
    assert "| PPO env steps/s ≥ 1.5× peer | ppo CartPole-v1 1 seed(s) vs rejax | 3.00 | PASS |" \
        in table
    gpu = harness.targets(rows[:2], backend="gpu")
    assert gpu[-1]["result"] == "n/a"  # no 64-seed row to compare
    unrolled = harness.markdown([{**rows[0], "scan_unroll": 16}, {**rows[1], "scan_unroll": 1}],
                                [])
    assert "| jaxrl | ppo | CartPole-v1 | 1 | ok (unroll 16) |" in unrolled
    assert "| rejax | ppo | CartPole-v1 | 1 | ok |" in unrolled
    threefry = harness.markdown([{**rows[0], "cpu_threefry": "unrolled"},
                                 {**rows[1], "cpu_threefry": "rolled"}], [])
    assert "| jaxrl | ppo | CartPole-v1 | 1 | ok (threefry unrolled) |" in threefry
    assert "| rejax | ppo | CartPole-v1 | 1 | ok |" in threefry
    one_thread = {"loadavg": [1.0, 1.0, 1.0], "xla_cpu_threads": 1}
    threads = harness.markdown([{**rows[0], "machine": one_thread},
                                {**rows[1], "machine": {**one_thread, "xla_cpu_threads": None}}],
                               [])
    assert "| jaxrl | ppo | CartPole-v1 | 1 | ok (1 XLA:CPU thread) |" in threads
    assert "| rejax | ppo | CartPole-v1 | 1 | ok |" in threads
    both = harness.markdown([{**rows[0], "machine": one_thread, "cpu_threefry": "unrolled"}], [])
    assert "| jaxrl | ppo | CartPole-v1 | 1 | ok (threefry unrolled, 1 XLA:CPU thread) |" in both


def test_targets_over_rounds_take_the_median_ratio_and_show_the_range():
    def row(round_, framework, seeds, sps, compile_s):
        return {"round": round_, "framework": framework, "algo": "ppo", "env": "CartPole-v1",
                "seeds": seeds, "config": TINY_PPO, "status": "ok", "env_steps_per_s": sps,
                "compile_s": compile_s, "run_s": 1.0, "machine": None}

    # Rounds are compared within themselves: round 2's fast rejax row never meets round 1's.
    rows = [row(1, "jaxrl", 1, 160.0, 6.0), row(1, "rejax", 1, 100.0, 5.0),
            row(2, "rejax", 1, 200.0, 5.0), row(2, "jaxrl", 1, 280.0, 6.0),
            row(3, "jaxrl", 1, 150.0, 6.0), row(3, "rejax", 1, 100.0, 7.5)]
    goals = {g["target"]: g for g in harness.targets(rows, backend="cpu")}
    sps = goals["PPO env steps/s ≥ 1.5× peer"]
    assert sps["ratios"] == pytest.approx([1.6, 1.4, 1.5])
    assert sps["ratio"] == pytest.approx(1.5) and sps["result"] == "PASS"  # median ≥ 1.5
    compile_goal = goals["compile s ≤ peer"]
    assert compile_goal["ratios"] == pytest.approx([1.2, 1.2, 0.8])
    assert compile_goal["ratio"] == pytest.approx(1.2) and compile_goal["result"] == "MISS"
    # no 64-seed row in any round: still one n/a target, not one per round
    scaling = [g for g in goals.values() if g["target"].startswith("64 seeds")]
    assert len(scaling) == 1 and scaling[0]["result"] == "n/a"
    table = harness.markdown(rows, list(goals.values()))
    assert ("| PPO env steps/s ≥ 1.5× peer | ppo CartPole-v1 1 seed(s) vs rejax "
            "| 1.50 (1.40–1.60, 3 rounds) | PASS |") in table
    assert table.splitlines()[0].startswith("| round | framework |")
    assert "| 2 | rejax | ppo | CartPole-v1 | 1 | ok |" in table
    # one round: the table and targets look as before
    single = harness.targets(rows[:2], backend="cpu")
    assert "ratios" not in single[0] and single[0]["ratio"] == pytest.approx(1.6)
    assert harness.markdown(rows[:2], single).startswith("| framework |")


_CASE_ROWS: dict[str, dict] = {}
"""Rows of the cases already run in a subprocess by this module's tests, by case and arguments."""


@pytest.fixture
def run_case_once(monkeypatch) -> list[str]:
    """``harness.run_case`` run once per case and module, then read from the stored row; the
    names of the cases asked for, in order. The dense-matmul reference that every
    ``harness.main`` measures first runs through a real subprocess (the path every case takes:
    its payload, the printed row); other jaxrl cases run the subprocess's body,
    ``run_jaxrl_case``, in this process (each process imports jax and compiles its case
    again)."""
    run_case, asked = harness.run_case, []

    def once(case, python, script, timeout=harness.CASE_TIMEOUT_S,
             repeats=harness.RUN_REPEATS):
        asked.append(case.name)
        key = json.dumps([case.name, case.config, python, str(script), timeout, repeats],
                         sort_keys=True, default=str)
        if key not in _CASE_ROWS:
            if case == harness.MATMUL or case.framework not in ("jaxrl", "reference"):
                _CASE_ROWS[key] = run_case(case, python, script, timeout, repeats)
            else:
                _CASE_ROWS[key] = {"status": "ok", **harness.run_jaxrl_case(case, repeats)}
        return dict(_CASE_ROWS[key])

    monkeypatch.setattr(harness, "run_case", once)
    return asked


def test_rounds_repeat_the_cases_in_alternating_order(tmp_path, monkeypatch, run_case_once):
    out = tmp_path / "r.json"
    config = {"total_timesteps": 64, "num_envs": 2, "num_steps": 8}
    cases = [harness.Case("reference", "env_only", "CartPole-v1", n, config) for n in (1, 2)]
    monkeypatch.setitem(harness.CASES, "smoke", [harness.MATMUL, *cases])
    assert harness.main(["--suite", "smoke", "--rounds", "2", "--repeats", "1",
                         "--out", str(out)]) == 0
    result = json.loads(out.read_text())
    assert result["complete"] is True and result["rounds"] == 2
    assert [(r["round"], r["algo"], r["seeds"]) for r in result["rows"]] == [
        (1, "matmul", 1), (1, "env_only", 1), (1, "env_only", 2),
        (2, "env_only", 2), (2, "env_only", 1)]  # the reference once; round 2 reversed
    assert run_case_once == [case.name for case in (harness.MATMUL, *cases, *cases[::-1])]
    assert all(r["status"] == "ok" for r in result["rows"])
    assert out.with_suffix(".md").read_text().startswith("| round |")
    with pytest.raises(SystemExit):
        harness.main(["--rounds", "0", "--out", str(tmp_path / "x.json")])


def test_full_suite_on_a_gpu_puts_the_1024_seed_pair_after_the_other_ppo_pairs():
    names = [c.name for c in harness.suite_cases("full", backend="gpu")]
    ppo = [n for n in names if "/ppo/CartPole-v1/" in n]
    assert ppo[-2:] == ["jaxrl/ppo/CartPole-v1/1024", "rejax/ppo/CartPole-v1/1024"]
    assert names.index(ppo[-1]) + 1 == names.index("jaxrl/dqn/CartPole-v1/1")
    assert not any("/1024" in n for n in (c.name for c in harness.suite_cases("full")))


def test_deadline_skips_the_remaining_cases_and_still_writes_the_results(tmp_path,
                                                                         run_case_once):
    out = tmp_path / "r.json"
    assert harness.main(["--suite", "smoke", "--only", "env_only", "--deadline", "1e-9",
                         "--out", str(out)]) == 0
    result = json.loads(out.read_text())
    assert result["complete"] is True
    assert [r["status"] for r in result["rows"]] == ["ok", "skipped"]  # matmul reference first
    assert "--deadline" in result["rows"][1]["note"]
    assert out.with_suffix(".md").exists()


def test_peer_python_needs_a_known_peer_and_a_path(tmp_path, run_case_once):
    with pytest.raises(SystemExit):
        harness.main(["--peer-python", "cleanrl=/usr/bin/python3", "--only", "nothing",
                      "--out", str(tmp_path / "r.json")])


unroll = _load("benchmarks_unroll", BENCHMARKS / "unroll.py")


def test_unroll_recommends_the_smallest_unroll_within_five_percent_of_the_best():
    def rows(times):  # {unroll: (run_s of case a, run_s of case b)}
        return [{"case": c, "unroll": u, "run_s": t[i]} for u, t in times.items()
                for i, c in enumerate("ab")]

    assert unroll.recommend(rows({1: (1.0, 1.0), 8: (0.62, 0.80), 16: (0.60, 0.78)})) == 8
    assert unroll.recommend(rows({1: (1.0, 1.0), 8: (0.9, 0.9), 16: (0.5, 0.5)})) == 16
    assert unroll.recommend(rows({1: (1.0, 1.0), 4: (1.2, 1.1)})) == 1
    # a case measured for only some unrolls is left out of the comparison
    partial = rows({1: (1.0, 1.0), 4: (0.5, 0.5)}) + [{"case": "c", "unroll": 1, "run_s": 9.0}]
    assert unroll.recommend(partial) == 4


@pytest.mark.slow
def test_unroll_sweep_writes_rows_and_a_recommendation(tmp_path, monkeypatch):
    monkeypatch.setitem(unroll.CASES, "tiny", ("ppo", "CartPole-v1", 2, TINY_PPO))
    monkeypatch.setenv("JAXRL_SCAN_UNROLL", "1")  # the sweep sets it; restored after the test
    out = tmp_path / "unroll.json"
    result = unroll.main(["--unrolls", "1,2", "--cases", "tiny", "--repeats", "1",
                          "--out", str(out)])
    saved = json.loads(out.read_text())
    assert saved["recommended"] == result["recommended"] in (1, 2)
    assert [(r["case"], r["unroll"]) for r in saved["rows"]] == [("tiny", 1), ("tiny", 2)]
    assert all(r["run_s"] > 0 and r["env_steps_per_s"] > 0 for r in saved["rows"])
    with pytest.raises(SystemExit):
        unroll.main(["--cases", "nope"])


def test_set_overrides_a_field_only_where_the_config_has_it(tmp_path, run_case_once):
    out = tmp_path / "r.json"
    assert harness.main(["--suite", "full", "--only", "jaxrl/sac", "--only",
                         "jaxrl/ppo/CartPole-v1/1", "--set", "log_frequency=250", "--set",
                         "hidden_sizes=[8, 8]", "--deadline", "1e-9", "--out", str(out)]) == 0
    rows = {r["algo"]: r for r in json.loads(out.read_text())["rows"][1:]}
    assert rows["sac"]["config"]["log_frequency"] == 250
    assert rows["sac"]["config"]["hidden_sizes"] == [8, 8]
    assert rows["ppo"]["config"]["hidden_sizes"] == [8, 8]
    assert "log_frequency" not in rows["ppo"]["config"]  # PPO has no such field: left out


@pytest.mark.parametrize("spec", ["log_frequency=abc", "=3", "log_freq=250"])
def test_set_refuses_bad_values_and_fields_no_case_has(spec, tmp_path, capsys):
    with pytest.raises(SystemExit):
        harness.main(["--suite", "full", "--only", "jaxrl/sac", "--set", spec,
                      "--out", str(tmp_path / "r.json")])
    assert "--set" in capsys.readouterr().err
    assert not (tmp_path / "r.json").exists()


def test_trace_summary_totals_spans_and_top_names(tmp_path):
    import gzip

    events = [
        {"ph": "M", "pid": 1, "name": "process_name", "args": {"name": "/device:GPU:0"}},
        {"ph": "M", "pid": 1, "tid": 7, "name": "thread_name", "args": {"name": "Stream #7"}},
        {"ph": "X", "pid": 1, "tid": 7, "ts": 10.0, "dur": 2.0, "name": "gemm",
         "args": {"hlo_op": "dot.1"}},
        {"ph": "X", "pid": 1, "tid": 7, "ts": 20.0, "dur": 3.0, "name": "gemm",
         "args": {"hlo_op": "dot.2"}},
        {"ph": "X", "pid": 1, "tid": 7, "ts": 30.0, "dur": 1.0, "name": "add"},
        {"ph": "X", "pid": 2, "tid": 1, "ts": 0.0, "dur": 50.0, "name": "host"},
        {"ph": "i", "pid": 1, "tid": 7, "ts": 5.0, "name": "instant, not counted"},
    ]
    path = tmp_path / "t.trace.json.gz"
    with gzip.open(path, "wt") as f:
        json.dump({"traceEvents": events}, f)
    summary = measure.trace_summary(path, top=1)
    host, gpu = summary["threads"]  # sorted by total time: the 50 µs host event first
    assert (host["process"], host["thread"], host["total_us"]) == ("2", "1", 50.0)
    assert (gpu["process"], gpu["thread"]) == ("/device:GPU:0", "Stream #7")
    # 2 + 3 + 1 µs of kernels between 10 and 31 µs: busy 6 of a 21 µs span.
    assert (gpu["events"], gpu["total_us"], gpu["span_us"]) == (3, 6.0, 21.0)
    assert gpu["top"] == [{"name": "gemm", "count": 2, "total_us": 5.0,
                           "args": {"hlo_op": "dot.1"}}]


@pytest.mark.slow
def test_bandit_regret_benchmark_writes_curves_a_bound_and_a_plot(tmp_path):
    bandit_benchmark = _load("benchmarks_bandits", BENCHMARKS / "bandits.py")
    out, png = tmp_path / "regret.json", tmp_path / "regret.png"
    assert bandit_benchmark.main(["--seeds", "3", "--pulls", "20", "--out", str(out),
                                  "--plot", str(png)]) == 0
    results = json.loads(out.read_text())
    assert set(results["tasks"]) == {"2-armed", "10-armed"} and png.stat().st_size > 0
    assert results["pull"] == list(range(1, 21))
    for task in results["tasks"].values():
        for curve in task["strategies"].values():
            mean = curve["mean"]  # cumulative regret: starts ≥ 0, never decreases
            assert len(mean) == 20 and mean[0] >= 0 and (np.diff(mean) >= 0).all()
    # Auer et al.'s bound for one gap of 0.5 at t = 20: 8 ln 20 / 0.5 + (1 + π²/3) · 0.5.
    bound = results["tasks"]["2-armed"]["ucb1_bound"][-1]
    assert math.isclose(bound, 16 * math.log(20) + 0.5 + math.pi ** 2 / 6, abs_tol=5e-4)  # 3 dp
