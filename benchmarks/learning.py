"""Learning results and speed of jaxrl's agents (default configs unless stated).

Each case trains 4 seeds vmapped in one compiled call and records compile seconds, run seconds,
environment steps per second (all seeds together) and the final return (mean over seeds of the
last 5 updates' ``episode_return``). Results go to ``benchmarks/results/learning_<backend>.json``
and a Markdown table is printed.

    python benchmarks/learning.py [--only ppo/CartPole-v1] [--seeds 4]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import jax
import numpy as np
from measure import compile_and_run, machine

from jaxrl import envs
from jaxrl.agents import ALGORITHMS, dqn, ppo, sac, trpo

ONLINE_DISCRETE = ("reinforce", "a2c", "npg", "trpo", "ppo", "dqn", "soft_q")

# (algorithm, env id) -> (config, env kwargs); None means the algorithm's default Config.
CASES: dict[tuple[str, str], tuple[object | None, dict]] = {
    **{(algo, "CartPole-v1"): (None, {}) for algo in ONLINE_DISCRETE},
    **{(algo, "Pendulum-v1"): (
        ALGORITHMS[algo].Config(hidden_sizes=(64, 64), batch_size=128), {})
       for algo in ("ddpg", "td3", "sac")},
    ("dqn", "Breakout-MinAtar"): (
        dqn.Config(total_timesteps=200_000, buffer_size=100_000, learning_starts=5_000,
                   train_frequency=4, updates_per_step=1, batch_size=64, hidden_sizes=(128,),
                   log_frequency=5_000, exploration_fraction=0.2, end_e=0.01,
                   learning_rate=3e-4), {}),
    ("sac", "brax/inverted_pendulum"): (
        sac.Config(total_timesteps=30_000, hidden_sizes=(64, 64), batch_size=128), {}),
    ("ppo", "Pendulum-v1"): (
        ppo.Config(total_timesteps=1_000_000, num_envs=16, num_steps=128, update_epochs=10,
                   num_minibatches=8, normalize_obs=True, normalize_reward=True,
                   learning_rate=3e-4, gamma=0.99, gae_lambda=0.95), {}),
    ("trpo", "Pendulum-v1"): (
        trpo.Config(total_timesteps=1_000_000, num_envs=16, num_steps=256, normalize_obs=True,
                    normalize_reward=True, gae_lambda=0.95, max_kl=0.02), {}),
    ("ppo", "brax/inverted_pendulum"): (
        ppo.Config(total_timesteps=1_000_000, num_envs=64, num_steps=32, update_epochs=10,
                   num_minibatches=16, normalize_obs=True, learning_rate=3e-4, gamma=0.99,
                   gae_lambda=0.95), {}),
}


def run_case(algo: str, env_id: str, config, env_kwargs: dict, seeds: int) -> dict:
    module = ALGORITHMS[algo]
    config = module.Config() if config is None else config
    env, params = envs.make(env_id, **env_kwargs)
    agent = module.make_agent(config, env, params)
    keys = jax.numpy.stack([jax.random.key(s) for s in range(seeds)])
    (_, metrics), timings, _ = compile_and_run(
        jax.vmap(module.make_train(config, env, params)), keys)
    compile_seconds, run_seconds = timings["compile_s"], timings["run_s"]
    returns = np.asarray(metrics["episode_return"])
    steps = agent.initial_steps + agent.num_updates * agent.steps_per_update
    per_seed = returns[:, -5:].mean(axis=1)
    evaluation = {}
    if "eval_return" in metrics:
        eval_per_seed = np.asarray(metrics["eval_return"])[:, -5:].mean(axis=1)
        evaluation = {"eval_return_mean": float(eval_per_seed.mean()),
                      "eval_return_std": float(eval_per_seed.std())}
    return {"algo": algo, "env": env_id, "seeds": seeds, "env_steps_per_seed": steps,
            "compile_seconds": round(compile_seconds, 2), "run_seconds": round(run_seconds, 2),
            "env_steps_per_second": round(steps * seeds / run_seconds),
            "final_return_mean": float(per_seed.mean()),
            "final_return_std": float(per_seed.std()),
            "final_return_per_seed": per_seed.tolist(), **evaluation,
            "config": {k: getattr(config, k) for k in config.__dataclass_fields__}}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    names = [f"{algo}/{env_id}" for algo, env_id in CASES]
    parser.add_argument("--only", action="append", choices=names, help="ALGO/ENV (repeatable)")
    parser.add_argument("--seeds", type=int, default=4)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    rows = []
    for name in args.only or names:
        algo, env_id = name.split("/", 1)
        config, env_kwargs = CASES[(algo, env_id)]
        row = run_case(algo, env_id, config, env_kwargs, args.seeds)
        print(f"{algo} {env_id}: return {row['final_return_mean']:.1f} ± "
              f"{row['final_return_std']:.1f}, "
              f"{row['env_steps_per_second']:,} steps/s, compile {row['compile_seconds']} s",
              flush=True)
        rows.append(row)
    out = args.out or Path(__file__).parent / "results" / f"learning_{jax.default_backend()}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    if out.exists():  # keep the rows of cases not rerun (--only)
        fresh = {(row["algo"], row["env"]) for row in rows}
        kept = [row for row in json.loads(out.read_text())["rows"]
                if (row["algo"], row["env"]) not in fresh]
        rows = kept + rows
    out.write_text(json.dumps({"machine": machine(), "rows": rows}, indent=2) + "\n")
    print(f"\n| algorithm | env | return ({args.seeds} seeds, last 5 updates) | env steps "
          "| env steps/s | compile s |")
    print("|---|---|---|---|---|---|")
    for row in rows:
        print(f"| {row['algo']} | {row['env']} | {row['final_return_mean']:.1f} ± "
              f"{row['final_return_std']:.1f} | {row['env_steps_per_seed']:,} "
              f"| {row['env_steps_per_second']:,} | {row['compile_seconds']} |")
    print(f"\nwrote {out}")


if __name__ == "__main__":
    main()
