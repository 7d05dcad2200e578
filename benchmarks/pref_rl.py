"""Preference-based RL against the same agent on the true reward, at equal env steps.

``pref_rl`` (SAC on a reward model fitted to a synthetic teacher's segment preferences) and
``sac`` (the true reward) on Pendulum-v1, both vmapped over seeds, with the same SAC fields.
The normalised score is ``100 · (R_pref − R_random) / (R_sac − R_random)`` of the final
``eval_return`` (``R_random``: a uniformly random policy). Writes
``benchmarks/results/pref_rl_cpu.{json,md}``.

    python benchmarks/pref_rl.py [--seeds 4] [--steps 20000] [--max-queries 500]
        [--query-interval 8] [--ensemble-size 3] [--baseline OLD.json]

Seed ``i`` is ``jax.random.split(jax.random.key(0), n)[i]`` for every ``n > i`` (partitionable
threefry), so ``--first-seed 2 --seeds 2 --merge OLD.json`` runs seeds 2–3 only and appends
them to an earlier run of seeds 0–1 with the same settings. ``--baseline OLD.json`` takes the
SAC rows from an earlier run of this script with the same env, steps, seeds and evaluation
episodes instead of training SAC again (its runs are the same keys and fields).
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import jax
import numpy as np

from jaxrl import envs
from jaxrl.agents import pref_rl, sac
from jaxrl.evaluation import evaluate

RESULTS = Path(__file__).parent / "results"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--env", default="Pendulum-v1")
    parser.add_argument("--seeds", type=int, default=4)
    parser.add_argument("--steps", type=int, default=20_000)
    parser.add_argument("--max-queries", type=int, default=500)
    parser.add_argument("--query-interval", type=int, default=8)
    parser.add_argument("--ensemble-size", type=int, default=3)
    parser.add_argument("--eval-episodes", type=int, default=10)
    parser.add_argument("--out", default="pref_rl_cpu")
    parser.add_argument("--first-seed", type=int, default=0,
                        help="run seeds first-seed … first-seed + seeds - 1")
    parser.add_argument("--merge", default="",
                        help="an earlier JSON of this script (same settings, seeds before "
                             "--first-seed): its per-seed rows are prepended")
    parser.add_argument("--baseline", default="",
                        help="an earlier JSON of this script (same env, steps, seeds, eval "
                             "episodes): its SAC row is reused instead of training SAC again")
    args = parser.parse_args()
    env, env_params = envs.make(args.env)
    keys = jax.random.split(jax.random.key(0), args.first_seed + args.seeds)[args.first_seed:]
    earlier = json.loads(Path(args.merge).read_text()) if args.merge else None
    if earlier is not None and (earlier["steps"], earlier["seeds"]) != (args.steps,
                                                                         args.first_seed):
        raise ValueError(f"--merge {args.merge} holds {earlier['seeds']} seeds of "
                         f"{earlier['steps']} steps; expected {args.first_seed} of {args.steps}")
    shared = {"total_timesteps": args.steps, "buffer_size": args.steps,
              "log_frequency": max(args.steps // 10, 1), "eval_episodes": args.eval_episodes}
    rows = {}
    runs = [("sac (true reward)", sac, sac.Config(**shared)),
            (f"pref_rl ({args.max_queries} queries)", pref_rl,
             pref_rl.Config(**shared, max_queries=args.max_queries,
                            query_interval=args.query_interval,
                            ensemble_size=args.ensemble_size))]
    if args.baseline:
        baseline = json.loads(Path(args.baseline).read_text())
        settings = (baseline["env"], baseline["steps"], baseline["seeds"],
                    baseline["eval_episodes"])
        if settings != (args.env, args.steps, args.first_seed + args.seeds, args.eval_episodes):
            raise ValueError(f"--baseline {args.baseline} is (env, steps, seeds, eval episodes) "
                             f"= {settings}; this run's differ")
        rows["sac (true reward)"] = {**baseline["rows"]["sac (true reward)"],
                                     "from": args.baseline}
        runs = runs[1:]
    for name, module, config in runs:
        start = time.time()
        _, metrics = jax.jit(jax.vmap(module.make_train(config, env, env_params)))(keys)
        metrics = jax.device_get(metrics)
        rows[name] = {"eval_return": np.asarray(metrics["eval_return"]).tolist(),
                      "step": np.asarray(metrics["step"][0]).tolist(),
                      "wall_s": round(time.time() - start, 1)}
        if "queries" in metrics:
            rows[name]["queries"] = np.asarray(metrics["queries"])[:, -1].tolist()
            rows[name]["reward_accuracy"] = np.asarray(metrics["reward_accuracy"])[:, -1].tolist()
            rows[name]["reward_accuracy_curve"] = np.asarray(metrics["reward_accuracy"]).tolist()
        if earlier is not None:
            old = earlier["rows"][name]
            for field in ("eval_return", "queries", "reward_accuracy"):
                if field in rows[name]:
                    previous = old[field] if isinstance(old[field], list) else [old[field]] * (
                        args.first_seed)
                    rows[name][field] = previous + rows[name][field]
            rows[name]["wall_s"] = [old["wall_s"], rows[name]["wall_s"]]
        print(name, np.round(np.asarray(metrics["eval_return"])[:, -1], 1), flush=True)

    spaces = env.action_space(env_params)

    def random_policy(key, obs):
        return jax.random.uniform(key, (obs.shape[0], *spaces.shape), minval=spaces.low,
                                  maxval=spaces.high)

    total_seeds = args.first_seed + args.seeds
    random_return = float(evaluate(jax.random.key(1), env, env_params, random_policy,
                                   args.eval_episodes * total_seeds, 200))
    sac_final = np.mean([r[-1] for r in rows["sac (true reward)"]["eval_return"]])
    for row in rows.values():
        finals = np.asarray([r[-1] for r in row["eval_return"]])
        row["final"] = finals.tolist()
        row["normalised_score"] = float(100 * (finals.mean() - random_return)
                                        / (sac_final - random_return))
    payload = {"env": args.env, "seeds": total_seeds, "steps": args.steps,
               "max_queries": args.max_queries, "query_interval": args.query_interval,
               "ensemble_size": args.ensemble_size, "eval_episodes": args.eval_episodes,
               "random_return": random_return, "device": jax.devices()[0].device_kind,
               "rows": rows}
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / f"{args.out}.json").write_text(json.dumps(payload, indent=1))
    lines = [f"{args.env}, {args.steps} env steps, {total_seeds} seeds; random policy "
             f"{random_return:.1f}", "",
             "| agent | final eval_return | normalised score | queries | wall s |",
             "| --- | --- | --- | --- | --- |"]
    for name, row in rows.items():
        queries = np.max(row["queries"]) if "queries" in row else "–"
        lines.append(f"| {name} | {np.mean(row['final']):.1f} ± {np.std(row['final']):.1f} | "
                     f"{row['normalised_score']:.0f} | {queries} | {row['wall_s']} |")
    lines += ["", "Per seed (final eval_return): " + "; ".join(
        f"{name}: " + ", ".join(f"{r:.1f}" for r in row["final"]) for name, row in rows.items())]
    (RESULTS / f"{args.out}.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
