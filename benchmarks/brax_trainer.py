"""jaxrl's PPO beside Brax's own trainer (``brax.training.agents.ppo.train``) in one process.

Same env, physics backend and settings (Brax's PPO keywords, mapped to jaxrl's fields by
``suite._brax_ppo``, see docs/benchmarks.md), one seed each. Reports per trainer: compile
seconds, env steps/s after compiling, wall seconds (compile included) to a stated return, the
final return and peak device memory where the backend reports it. Writes
``benchmarks/results/brax_trainer_<backend>.json`` and prints a markdown table.

    python benchmarks/brax_trainer.py [--env inverted_pendulum] [--backend spring] \
        [--steps 300000] [--num-envs 128] [--batch-size 64] [--target 500]

Returns: Brax's are its evaluation episodes (stochastic policy, ``num_eval_envs`` of them,
``num_evals`` times); jaxrl's are its training episodes (mean over the last 5 updates), both in
the env's reward units (reward scaling divided out).
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import jax
import numpy as np
from suite import _brax_ppo, machine, peak_memory_bytes, scaled_env_id

from jaxrl import runner
from jaxrl.agents import ppo
from jaxrl.envs.brax_env import quiet_brax
from jaxrl.run_dir import versions


def brax_run(args: argparse.Namespace) -> dict:
    with quiet_brax():
        from brax import envs as brax_envs
        from brax.training.agents.ppo import train as brax_ppo

        env = brax_envs.get_environment(args.env, backend=args.backend)
    times, returns, steps = [], [], []
    start = time.perf_counter()

    def progress(step, metrics):
        times.append(time.perf_counter() - start)
        returns.append(float(metrics["eval/episode_reward"]))
        steps.append(int(step))

    brax_ppo.train(environment=env, num_timesteps=args.steps, episode_length=1000,
                   num_envs=args.num_envs, batch_size=args.batch_size,
                   unroll_length=args.unroll_length, num_minibatches=args.num_minibatches,
                   num_updates_per_batch=args.epochs, discounting=args.gamma,
                   learning_rate=args.learning_rate, entropy_cost=args.entropy,
                   reward_scaling=args.reward_scaling, normalize_observations=True,
                   num_evals=args.num_evals, num_eval_envs=args.num_eval_envs, seed=0,
                   progress_fn=progress)
    total = time.perf_counter() - start
    # progress_fn runs after the first (untrained) evaluation, then after each training epoch
    # of num_timesteps / (num_evals - 1) steps: the first epoch's time holds the compile.
    epoch_times = np.diff(times)
    steady = float(np.median(epoch_times[1:])) if len(epoch_times) > 1 else float("nan")
    epoch_steps = steps[1] - steps[0] if len(steps) > 1 else 0
    compile_seconds = float(times[0] + epoch_times[0] - steady) if len(epoch_times) else total
    reached = next((t for t, r in zip(times, returns, strict=True) if r >= args.target), None)
    return {"trainer": "brax.training.agents.ppo.train", "env_steps": steps[-1],
            "compile_seconds": round(compile_seconds, 1), "wall_seconds": round(total, 1),
            "env_steps_per_second": round(epoch_steps / steady) if epoch_steps else None,
            "final_return": returns[-1], "curve": list(zip(steps, returns, strict=True)),
            "seconds_to_target": None if reached is None else round(reached, 1),
            "peak_memory_bytes": peak_memory_bytes()}


def jaxrl_run(args: argparse.Namespace) -> dict:
    fields = _brax_ppo(args.steps, args.num_envs, args.batch_size, args.unroll_length,
                       args.num_minibatches, args.epochs, args.gamma, args.learning_rate,
                       args.entropy)
    config = ppo.Config(**fields)
    env_id = scaled_env_id(f"brax/{args.env}", args.reward_scaling)
    times, returns = [], []
    start = time.perf_counter()

    def on_chunk(index, metrics):
        times.append(time.perf_counter() - start)
        with np.errstate(all="ignore"):
            returns.append(float(np.nanmean(metrics["episode_return"][:, -1]))
                           / args.reward_scaling)

    result = runner.run("ppo", env_id, config, seed=0, seeds=1, progress=False,
                        on_chunk=on_chunk, env_kwargs={"backend": args.backend})
    total = time.perf_counter() - start
    final = np.asarray(result.metrics["episode_return"])[0, -5:]
    reached = next((t for t, r in zip(times, returns, strict=True) if r >= args.target), None)
    return {"trainer": "jaxrl ppo (runner.run)", "env_steps": int(result.steps[-1]),
            "compile_seconds": round(result.compile_seconds, 1), "wall_seconds": round(total, 1),
            "env_steps_per_second": round(result.steps_per_second),
            "final_return": float(np.nanmean(final)) / args.reward_scaling,
            "seconds_to_target": None if reached is None else round(reached, 1),
            "peak_memory_bytes": peak_memory_bytes(), "config": fields}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--env", default="inverted_pendulum")
    parser.add_argument("--backend", default="spring")
    parser.add_argument("--steps", type=int, default=300_000)
    parser.add_argument("--num-envs", type=int, default=128)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--unroll-length", type=int, default=5)
    parser.add_argument("--num-minibatches", type=int, default=8)
    parser.add_argument("--epochs", type=int, default=4)
    parser.add_argument("--gamma", type=float, default=0.97)
    parser.add_argument("--learning-rate", type=float, default=3e-4)
    parser.add_argument("--entropy", type=float, default=1e-2)
    parser.add_argument("--reward-scaling", type=float, default=10.0)
    parser.add_argument("--num-evals", type=int, default=6)
    parser.add_argument("--num-eval-envs", type=int, default=16)
    parser.add_argument("--target", type=float, default=500.0)
    parser.add_argument("--only", choices=["brax", "jaxrl"])
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    rows = []
    if args.only in (None, "brax"):
        rows.append(brax_run(args))
        print(json.dumps({k: v for k, v in rows[-1].items() if k != "curve"}), flush=True)
    if args.only in (None, "jaxrl"):
        rows.append(jaxrl_run(args))
        print(json.dumps({k: v for k, v in rows[-1].items() if k != "config"}), flush=True)
    out = args.out or (Path(__file__).parent / "results" /
                       f"brax_trainer_{args.env}_{jax.default_backend()}.json")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"machine": machine(), "versions": versions(),
                               "settings": vars(args) | {"out": str(out)}, "rows": rows},
                              indent=2) + "\n")
    print(f"\n| trainer | env steps | return | compile s | env steps/s | s to {args.target:g} "
          "| wall s |\n|---|---|---|---|---|---|---|")
    for row in rows:
        print(f"| {row['trainer']} | {row['env_steps']:,} | {row['final_return']:.1f} "
              f"| {row['compile_seconds']} | {row['env_steps_per_second']:,} "
              f"| {row['seconds_to_target']} | {row['wall_seconds']} |")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
