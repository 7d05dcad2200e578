"""In-process A/B of XLA:CPU's compile levers on the smoke suite's cases (issue 40).

    python benchmarks/compile_levers.py --out benchmarks/results/compile_levers_cpu.json
    python benchmarks/compile_levers.py --only ppo/1 --levels 1 3 --emitters on

For every case (PPO CartPole-v1 at 1 and 64 vmapped seeds, DQN CartPole-v1: the configs of
``run.py``'s smoke suite) and every setting (``xla_backend_optimization_level`` 0 / 1 / 3 ×
``xla_cpu_use_fusion_emitters`` on / off, passed per ``jax.jit`` as ``compiler_options``), one
process compiles the case's vmapped ``train`` (wall and CPU seconds of trace + lower + XLA
compile) and runs it once (wall and CPU seconds), so time to result = compile + run. The
persistent compile cache is off; each setting is a new ``jax.jit``, so nothing is shared
between settings but the process's warm imports (the order alternates between rounds). Each
row also holds a hash of the trained parameters: a setting's results are bitwise reproducible
(``tests/test_determinism.py``), settings may differ from each other in float rounding.
Writes ``--out`` (JSON rows) and ``<out>.md`` (a table per case, the shortest time to result
in CPU seconds first).
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import json
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("JAX_ENABLE_COMPILATION_CACHE", "false")

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import jax  # noqa: E402
import numpy as np  # noqa: E402
import run  # noqa: E402

__all__ = ["CASES", "main", "measure_setting"]

CASES = {
    "ppo/1": (run.Case("jaxrl", "ppo", "CartPole-v1", 1, run.ppo_cartpole(65_536))),
    "ppo/64": (run.Case("jaxrl", "ppo", "CartPole-v1", 64, run.ppo_cartpole(65_536))),
    "dqn/1": (run.Case("jaxrl", "dqn", "CartPole-v1", 1, run.DQN_CARTPOLE_SHORT)),
}


def _digest(tree) -> str:
    h = hashlib.sha256()
    for leaf in jax.tree.leaves(tree):
        if jax.dtypes.issubdtype(leaf.dtype, jax.dtypes.prng_key):
            leaf = jax.random.key_data(leaf)
        h.update(np.asarray(leaf).tobytes())
    return h.hexdigest()[:16]


def measure_setting(case: run.Case, level: int, emitters: bool) -> dict:
    """Compile and run ``case`` once under one setting; wall and CPU seconds, params' hash."""
    from jaxrl import envs
    from jaxrl.agents import ALGORITHMS

    module = ALGORITHMS[case.algo]
    config = run.jaxrl_config(module, case.config)
    env, env_params = envs.make(case.env)
    train = jax.vmap(module.make_train(config, env, env_params))
    keys = jax.numpy.stack([jax.random.key(s) for s in range(case.seeds)])
    options = {"xla_backend_optimization_level": level, "xla_cpu_use_fusion_emitters": emitters}
    wall, cpu = time.perf_counter(), time.process_time()
    compiled = jax.jit(train, compiler_options=options).trace(keys).lower().compile()
    compile_s, compile_cpu_s = time.perf_counter() - wall, time.process_time() - cpu
    wall, cpu = time.perf_counter(), time.process_time()
    state, metrics = jax.block_until_ready(compiled(keys))
    run_s, run_cpu_s = time.perf_counter() - wall, time.process_time() - cpu
    returns = np.asarray(metrics["episode_return"])[:, -1]
    return {"case": f"{case.algo}/{case.seeds}", "level": level, "emitters": emitters,
            "compile_s": compile_s, "compile_cpu_s": compile_cpu_s, "run_s": run_s,
            "run_cpu_s": run_cpu_s, "time_to_result_s": compile_s + run_s,
            "time_to_result_cpu_s": compile_cpu_s + run_cpu_s,
            "params_sha256": _digest(state), "final_return": float(np.nanmean(returns)),
            "loadavg": list(os.getloadavg())}


def markdown(rows: list[dict]) -> str:
    """One table per case: the median over rounds per setting, the shortest time to result in
    CPU seconds first (on a shared machine wall time measures the neighbours as much)."""
    lines = []
    for case in dict.fromkeys(r["case"] for r in rows):
        settings: dict[tuple, list[dict]] = {}
        for r in rows:
            if r["case"] == case:
                settings.setdefault((r["level"], r["emitters"]), []).append(r)

        def median(rs, field):
            return float(np.median([r[field] for r in rs]))

        lines += [f"### {case}", "", "| level | fusion emitters | compile s (CPU s) | run s "
                  "(CPU s) | time to result s (CPU s) | params hash | rounds |",
                  "|---|---|---|---|---|---|---|"]
        for (level, emitters), rs in sorted(
                settings.items(), key=lambda item: median(item[1], "time_to_result_cpu_s")):
            lines.append(
                f"| {level} | {'on' if emitters else 'off'} "
                f"| {median(rs, 'compile_s'):.1f} ({median(rs, 'compile_cpu_s'):.1f}) "
                f"| {median(rs, 'run_s'):.2f} ({median(rs, 'run_cpu_s'):.2f}) "
                f"| {median(rs, 'time_to_result_s'):.1f} "
                f"({median(rs, 'time_to_result_cpu_s'):.1f}) "
                f"| {', '.join(sorted({r['params_sha256'] for r in rs}))} | {len(rs)} |")
        lines.append("")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=HERE / "results" / "compile_levers_cpu.json")
    parser.add_argument("--only", action="append", default=[], choices=list(CASES))
    parser.add_argument("--levels", type=int, nargs="+", default=[0, 1, 3])
    parser.add_argument("--emitters", nargs="+", default=["on", "off"], choices=["on", "off"])
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--total-timesteps", type=int, help="override (quick checks)")
    args = parser.parse_args(argv)
    settings = [(level, emitters == "on") for level in args.levels for emitters in args.emitters]
    rows = []
    for name in args.only or list(CASES):
        case = CASES[name]
        if args.total_timesteps:
            case = dataclasses.replace(case, config={**case.config,
                                                     "total_timesteps": args.total_timesteps})
        for k in range(args.rounds):
            for level, emitters in (settings if k % 2 == 0 else settings[::-1]):
                row = {**measure_setting(case, level, emitters), "round": k + 1}
                print(json.dumps(row), flush=True)
                rows.append(row)
                args.out.parent.mkdir(parents=True, exist_ok=True)
                args.out.write_text(json.dumps({"machine": run.measure.machine(),
                                                "rows": rows}, indent=1) + "\n")
    table = markdown(rows)
    args.out.with_suffix(".md").write_text(table)
    print(table)
    return 0


if __name__ == "__main__":
    sys.exit(main())
