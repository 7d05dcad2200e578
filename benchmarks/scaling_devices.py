"""Seeds vs time with the runs sharded over 1 and 8 (forced) CPU devices.

Each device count runs in its own process started with
``XLA_FLAGS=--xla_force_host_platform_device_count=K`` (the flag must be set before jax starts),
trains PPO on CartPole-v1 for every ``--seeds`` value through ``jaxrl.runner.run(devices=K)`` and
reports compile seconds, run seconds and env steps/s over all seeds. The 8-device metrics are
compared with the 1-device ones (max |difference| of ``episode_return`` over every seed and
update): sharding must not change the results beyond float rounding.

Forced host devices share the same CPU cores, so 8 devices gain at most the threads that run
their shards side by side (a 2-core machine: both cores instead of mostly one): this measures
correctness and the cost of the sharded program, not hardware scaling. On accelerators run
``jaxrl train ppo --seeds N --devices all`` instead. Results go to
``benchmarks/results/scaling_devices_cpu.json``::

    python benchmarks/scaling_devices.py [--seeds 8 16 32 64] [--total-timesteps 8192]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
from pathlib import Path

DEVICE_COUNTS = (1, 8)
RESULTS = Path(__file__).parent / "results" / "scaling_devices_cpu.json"
NOTE = ("Forced host-platform devices share the same CPU cores: 8 devices can only win by running "
        "their shards on separate threads (both cores of a 2-core machine instead of mostly one), "
        "never by more hardware. The rows check that sharded runs match unsharded ones and "
        "measure the sharded program's cost; timings on a shared machine (see the load average) "
        "are noisy. Real speedups need accelerators (jaxrl train --devices all).")


def worker(devices: int, seeds: list[int], total_timesteps: int) -> dict:
    """Train PPO for every seed count on ``devices`` devices of this process (run in a child)."""
    import jax

    from jaxrl.agents import ppo
    from jaxrl.runner import run

    config = ppo.Config(total_timesteps=total_timesteps, num_envs=8, num_steps=64,
                        update_epochs=2, num_minibatches=4)
    rows = []
    for count in seeds:
        result = run("ppo", "CartPole-v1", config, seeds=count, out=None, progress=False,
                     devices=devices)
        rows.append({"devices": devices, "seeds": count,
                     "compile_seconds": round(result.compile_seconds, 3),
                     "run_seconds": round(result.run_seconds, 3),
                     "env_steps_per_second": round(result.steps_per_second),
                     "episode_return": result.metrics["episode_return"].tolist()})
    return {"rows": rows, "config": {"algo": "ppo", "env": "CartPole-v1",
                                     "total_timesteps": total_timesteps, "num_envs": 8,
                                     "num_steps": 64, "update_epochs": 2, "num_minibatches": 4},
            "device_kind": jax.devices()[0].device_kind, "jax": jax.__version__}


def machine() -> dict:
    """CPU model, core count, load average and Python version of this machine."""
    cpu = platform.processor()
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.exists():
        cpu = next((line.split(":", 1)[1].strip() for line in cpuinfo.read_text().splitlines()
                    if line.startswith("model name")), cpu)
    return {"cpu": cpu, "cores": os.cpu_count(), "python": platform.python_version()}


def max_difference(a: list, b: list) -> float:
    """``max |a - b|`` over entries where both are numbers; NaN positions must agree."""
    import numpy as np

    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    if not np.array_equal(np.isnan(a), np.isnan(b)):
        return float("inf")
    both = ~np.isnan(a)
    return float(np.max(np.abs(a[both] - b[both]), initial=0.0))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[8, 16, 32, 64],
                        help="seed counts (multiples of 8)")
    parser.add_argument("--total-timesteps", type=int, default=8192,
                        help="env steps per seed (8 envs x 64 steps per update)")
    parser.add_argument("--out", type=Path, default=RESULTS)
    parser.add_argument("--worker", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if any(count % max(DEVICE_COUNTS) for count in args.seeds):
        parser.error(f"--seeds must be multiples of {max(DEVICE_COUNTS)}, got {args.seeds}")
    if args.worker is not None:
        print(json.dumps(worker(args.worker, args.seeds, args.total_timesteps)))
        return

    load_start = os.getloadavg()
    runs = {}
    for devices in DEVICE_COUNTS:
        env = {**os.environ, "JAX_PLATFORMS": "cpu",
               "XLA_FLAGS": f"--xla_force_host_platform_device_count={devices}"}
        command = [sys.executable, __file__, "--worker", str(devices), "--total-timesteps",
                   str(args.total_timesteps), "--seeds", *map(str, args.seeds)]
        output = subprocess.run(command, env=env, capture_output=True, text=True, check=True)
        runs[devices] = json.loads(output.stdout.strip().splitlines()[-1])

    rows = []
    for one, many in zip(runs[1]["rows"], runs[max(DEVICE_COUNTS)]["rows"], strict=True):
        difference = max_difference(one["episode_return"], many["episode_return"])
        for row in (one, many):
            rows.append({**{k: v for k, v in row.items() if k != "episode_return"},
                         "max_abs_return_difference_vs_1_device": difference})
    report = {"benchmark": "seeds vs time, runs sharded over forced CPU devices",
              "note": NOTE, "machine": {**machine(), "load_average_start": load_start,
                                        "load_average_end": os.getloadavg(),
                                        "device_kind": runs[1]["device_kind"],
                                        "jax": runs[1]["jax"]},
              "config": runs[1]["config"], "rows": rows}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n")

    print("| devices | seeds | compile s | run s | env steps/s | max Δ return vs 1 device |\n"
          "|---|---|---|---|---|---|")
    for row in rows:
        print(f"| {row['devices']} | {row['seeds']} | {row['compile_seconds']:.1f} | "
              f"{row['run_seconds']:.2f} | {row['env_steps_per_second']:,} | "
              f"{row['max_abs_return_difference_vs_1_device']:.2g} |")
    print(f"\n{NOTE}\nwrote {args.out}")


if __name__ == "__main__":
    main()
