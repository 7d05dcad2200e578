"""Policy learning with learned models on Pendulum-v1: MBPO, MVE, MBRL 2.0 against SAC.

Each case trains ``--seeds`` seeds (``split(key(0), seeds)``) in one ``jax.jit(jax.vmap(train))``
call on the same CPU-sized networks (``SMALL``: 64 × 64 actor and critics, batch 128, 500
random warm-up steps, a row logged every 250 env steps with 2 deterministic evaluation
episodes) and records ``eval_return`` against env steps (warm-up counted), the env steps at
which it first reaches −200, and compile and run seconds. The model-based agents share one
ensemble (``MODEL``: 5 × 64-wide probabilistic members refitted every 250 steps for 100
AdamW steps, the known Pendulum reward). PETS's numbers come from ``model_based.py``'s results
(``results/model_based_cpu.json``)::

    python benchmarks/model_policy.py                 # writes results/model_policy_cpu.{json,md}
    python benchmarks/model_policy.py --seeds 1 --only mbpo --only sac --steps 4000
"""

from __future__ import annotations

import argparse
import json
import os
import platform
from pathlib import Path

import jax
from model_based import pendulum_case  # benchmarks/ (run as a script)

from jaxrl.agents import mbpo, mbrl2, mve, sac

SMALL = {"hidden_sizes": (64, 64), "batch_size": 128, "learning_starts": 500,
         "log_frequency": 250, "eval_episodes": 2, "buffer_size": 20_000}
MODEL = {"ensemble_size": 5, "model_hidden_sizes": (64, 64), "model_steps": 100,
         "model_frequency": 250, "model_batch_size": 128}
CASES = {
    "mbpo": (mbpo, {**SMALL, **MODEL, "updates_per_step": 10, "real_ratio": 0.05,
                    "rollout_batch_size": 50, "rollout_length": 1,
                    "model_buffer_size": 10_000}),
    "mve": (mve, {**SMALL, **MODEL, "horizon": 3}),
    "mbrl2": (mbrl2, {**SMALL, **MODEL, "horizon": 5}),
    "sac": (sac, SMALL),
}
RESULTS = Path(__file__).parent / "results"


def run_case(name: str, seeds: int, steps: int, overrides: dict | None = None) -> dict:
    module, kwargs = CASES[name]
    return pendulum_case(name, module, {**kwargs, **(overrides or {})}, seeds, steps,
                         "eval_return")


def pets_rows() -> list[dict]:
    """PETS's rows of ``results/model_based_cpu.json`` (training-episode returns there)."""
    path = RESULTS / "model_based_cpu.json"
    if not path.exists():
        return []
    rows = json.loads(path.read_text())["rows"]
    return [row for row in rows if row["case"].startswith("pets")]


def markdown(rows: list[dict]) -> str:
    lines = ["| case | seeds | env steps | final return (per seed) | env steps to −200 "
             "(per seed) | compile s | run s |", "| --- | --- | --- | --- | --- | --- | --- |"]
    for row in rows:
        finals = ", ".join(f"{r:.0f}" for r in row["final_return"])
        reached = ", ".join("—" if s is None else f"{s:,}" for s in row["steps_to_target"])
        lines.append(f"| {row['case']} | {row['seeds']} | {row['env_steps'][-1]:,} | {finals} | "
                     f"{reached} | {row['compile_s']:.0f} | {row['run_s']:.0f} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=2)
    parser.add_argument("--steps", type=int, default=4_000, help="env steps, warm-up included")
    parser.add_argument("--only", action="append", choices=sorted(CASES))
    parser.add_argument("--out", default=str(RESULTS / "model_policy_cpu"))
    args = parser.parse_args()
    rows = []
    for name in args.only or CASES:
        rows.append(run_case(name, args.seeds, args.steps))
        print(markdown(rows[-1:]).splitlines()[-1], flush=True)
    machine = {"processor": platform.processor() or platform.machine(),
               "cpus": os.cpu_count(), "load_average": os.getloadavg(),
               "jax": jax.__version__}
    pets = pets_rows()
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.with_suffix(".json").write_text(json.dumps({"machine": machine, "rows": rows,
                                                    "pets": pets}, indent=1))
    text = markdown(rows) + "\n"
    if pets:
        text += ("\nPETS (from results/model_based_cpu.json; training-episode returns, 200 "
                 "random steps + 1,200): " + "; ".join(
                     f"{row['case']}: −200 at {row['steps_to_target']}" for row in pets) + "\n")
    out.with_suffix(".md").write_text(text)
    print(text)


if __name__ == "__main__":
    main()
