"""Sweep the loop unroll (``jaxrl.backend.scan_unroll``) on this machine's backend.

    python benchmarks/unroll.py --out benchmarks/results/unroll_cpu.json
    python benchmarks/unroll.py --unrolls 1,4,8,16 --cases ppo1,ppo64,sac1 --out OUT.json

For each case and unroll ``u`` (set through ``$JAXRL_SCAN_UNROLL`` before tracing), one fresh
trace + compile and the fastest of ``--repeats`` calls: compile seconds, run seconds, env steps
and gradient updates per second. The cases are the harness's (``run.py``): PPO CartPole-v1
(4 envs × 128 steps, 4 epochs × 4 minibatches) for 1 and 64 seeds, DQN CartPole-v1 and SAC
Pendulum-v1 (one gradient step per env step at batch 256). Prints a table and writes JSON with
``recommended``: the smallest ``u`` whose geometric-mean speed-up over ``u = 1`` (run seconds,
all cases) is within 5 % of the best one's, i.e. the least compile time for nearly all the
speed. ``jaxrl.backend.ACCELERATOR_UNROLL`` was chosen this way on an H200.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import measure  # noqa: E402
from run import DQN_CARTPOLE_SHORT, SAC_PENDULUM, Case, ppo_cartpole, run_jaxrl_case  # noqa: E402

CASES: dict[str, tuple[str, str, int, dict[str, Any]]] = {
    "ppo1": ("ppo", "CartPole-v1", 1, ppo_cartpole(131_072)),
    "ppo64": ("ppo", "CartPole-v1", 64, ppo_cartpole(131_072)),
    "dqn1": ("dqn", "CartPole-v1", 1, DQN_CARTPOLE_SHORT),
    "sac1": ("sac", "Pendulum-v1", 1, SAC_PENDULUM),
}
TOLERANCE = 1.05
"""``recommended`` accepts a geometric-mean run time up to 5 % above the best unroll's."""


def measure_case(name: str, unroll: int, repeats: int) -> dict[str, Any]:
    """Compile and run case ``name`` with ``$JAXRL_SCAN_UNROLL = unroll`` (through the harness's
    ``run_jaxrl_case``, in this process); one result row."""
    from jaxrl.backend import UNROLL_ENV

    algo, env_id, seeds, config = CASES[name]
    os.environ[UNROLL_ENV] = str(unroll)
    row = run_jaxrl_case(Case("jaxrl", algo, env_id, seeds, config), repeats)
    return {"case": name, "unroll": unroll, "compile_s": row["compile_s"], "run_s": row["run_s"],
            "env_steps_per_s": seeds * row["env_steps_per_seed"] / row["run_s"]}


def recommend(rows: list[dict[str, Any]]) -> int:
    """Smallest unroll whose geometric-mean run time (relative to ``u = 1`` per case, over the
    cases measured for every unroll) is within ``TOLERANCE`` of the best unroll's."""
    unrolls = sorted({r["unroll"] for r in rows})
    cases = [c for c in dict.fromkeys(r["case"] for r in rows)
             if {r["unroll"] for r in rows if r["case"] == c} == set(unrolls)]
    if not cases:
        return unrolls[0]
    run = {(r["case"], r["unroll"]): r["run_s"] for r in rows}
    base = unrolls[0]
    score = {u: math.exp(sum(math.log(run[c, u] / run[c, base]) for c in cases) / len(cases))
             for u in unrolls}
    best = min(score.values())
    return min(u for u in unrolls if score[u] <= best * TOLERANCE)


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--unrolls", default="1,2,4,8,16",
                        help="comma-separated unrolls to try, first one is the baseline")
    parser.add_argument("--cases", default="ppo1,ppo64,dqn1,sac1",
                        help=f"comma-separated cases from: {', '.join(CASES)}")
    parser.add_argument("--repeats", type=int, default=2, help="timed calls per measurement")
    parser.add_argument("--out", type=Path, help="JSON file for the rows and the recommendation")
    args = parser.parse_args(argv)
    unrolls = [int(u) for u in args.unrolls.split(",")]
    cases = args.cases.split(",")
    unknown = [c for c in cases if c not in CASES]
    if unknown or any(u < 1 for u in unrolls):
        parser.error(f"cases must be among {', '.join(CASES)} (got {', '.join(unknown)}) and "
                     f"unrolls positive integers (got {args.unrolls})")
    result: dict[str, Any] = {"machine": measure.machine(), "rows": []}
    start = time.perf_counter()
    for name in cases:
        for unroll in unrolls:
            row = measure_case(name, unroll, args.repeats)
            result["rows"].append(row)
            print(f"{name:6s} unroll {unroll:3d}: compile {row['compile_s']:6.2f} s, run "
                  f"{row['run_s']:7.3f} s, {row['env_steps_per_s']:12,.0f} env steps/s",
                  flush=True)
    result["recommended"] = recommend(result["rows"])
    result["wall_s"] = time.perf_counter() - start
    print(f"recommended unroll: {result['recommended']}")
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        temporary = args.out.with_suffix(".tmp")
        temporary.write_text(json.dumps(result, indent=1))
        temporary.replace(args.out)
    return result


if __name__ == "__main__":
    main()
