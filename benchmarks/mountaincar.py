"""MountainCar-v0 with and without an exploration bonus: how often the greedy policy reaches
the flag (issue 32, "sparse continuous observations").

The reward is −1 per step until the car reaches the flag (``position ≥ 0.5``) or 200 steps
pass, so an episode's return is above −200 exactly when it reached the flag. Until an agent
gets there every state looks alike to it; a SimHash count bonus (``bonus=hash``,
``jaxrl.exploration``: ``r + β / √N(φ(s))``) makes rarely visited (position, velocity) cells
look better than visited ones, so the greedy policy itself swings further each episode.

Agents (``--agents``): ``dqn`` (``QConfig``'s defaults with a 64-64 network, or ``--preset
fast``: batch 128, constant learning rate 1e-3, ε 1 → 0.05 over 10 % of the run), ``hash_dqn``
(the same with ``bonus=hash``, ``--hash-bits`` bits, MBIE-EB ``1/√N``, β = ``--bonus-scale``),
``rnd_dqn`` (the same with ``bonus=rnd``), ``ppo`` and ``hash_ppo`` (``benchmarks/demos.py``'s
MountainCar PPO, without and with the hash bonus). After every ``--eval-every`` env steps the
greedy policy plays ``--eval-episodes`` fresh episodes; a seed *succeeds* at the first
evaluation where at least 90 % of them reach the flag. Each agent is one compiled call with its
``--seeds`` seeds vmapped (``split(key(0), seeds)``). Writes
``benchmarks/results/mountaincar.json`` (resumable: finished agents are skipped unless
``--force``), ``mountaincar.md`` and ``mountaincar.png``::

    nice python benchmarks/mountaincar.py --seeds 4 --steps 100000
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

import jax
import numpy as np

from jaxrl import envs
from jaxrl.agents import dqn, ppo
from jaxrl.evaluation import episode_returns
from jaxrl.training.agent import Agent, as_typed_key, policy_fn

RESULTS = Path(__file__).parent / "results"
AGENTS = ("dqn", "hash_dqn", "rnd_dqn", "ppo", "hash_ppo")
ENV = "MountainCar-v0"
FLAG_FRACTION = 0.9


def configure(agent: str, args: argparse.Namespace) -> tuple[Any, Any]:
    """``(module, config)`` of ``agent``: every DQN the same network, replay and ε schedule
    (``--preset``), every PPO the settings of ``benchmarks/demos.py``'s MountainCar row."""
    replay = dict(total_timesteps=args.steps, learning_starts=1_000, buffer_size=args.steps,
                  log_frequency=args.eval_every, eval_episodes=0, hidden_sizes=(64, 64))
    if args.preset == "fast":
        replay.update(batch_size=128, learning_rate=1e-3, anneal_lr=False, start_e=1.0,
                      end_e=0.05, exploration_fraction=0.1)
    on_policy = dict(total_timesteps=args.steps, num_envs=16, num_steps=64, update_epochs=4,
                     num_minibatches=4, hidden_sizes=(64, 64), learning_rate=3e-4, gamma=0.99,
                     gae_lambda=0.95)
    hashed = dict(bonus="hash", hash_bits=args.hash_bits, bonus_form="mbie_eb",
                  bonus_scale=args.bonus_scale)
    configs = {"dqn": (dqn, dqn.Config(**replay)),
               "hash_dqn": (dqn, dqn.Config(**replay, **hashed)),
               "rnd_dqn": (dqn, dqn.Config(**replay, bonus="rnd", bonus_scale=args.bonus_scale)),
               "ppo": (ppo, ppo.Config(**on_policy)),
               "hash_ppo": (ppo, ppo.Config(**on_policy, **hashed))}
    if agent not in configs:
        raise ValueError(f"unknown agent {agent!r}; choose from {', '.join(AGENTS)}")
    return configs[agent]


def make_run(built: Agent, env: Any, params: Any, eval_every: int, eval_episodes: int):
    """``run(key) -> (flag fraction, mean eval return, training episode return)``, each
    ``[evaluations]``: the greedy policy plays ``eval_episodes`` fresh episodes after every
    ``eval_every`` env steps' worth of updates; and the env steps of each evaluation."""
    max_steps = int(params.max_steps_in_episode)
    updates_per_eval = max(1, eval_every // built.steps_per_update)
    evaluations = built.num_updates // updates_per_eval

    def run(key):
        key, eval_key = jax.random.split(as_typed_key(key))

        def interval(state, step_key):
            state, metrics = jax.lax.scan(lambda s, _: built.update(s), state, None,
                                          length=updates_per_eval)
            policy, initial_carry = policy_fn(built, state, True)
            returns, finished = episode_returns(step_key, env, params, policy, eval_episodes,
                                                max_steps, initial_carry=initial_carry)
            flag = (finished & (returns > -max_steps)).mean()
            return state, (flag, returns.mean(), metrics["episode_return"][-1])

        return jax.lax.scan(interval, built.init(key),
                            jax.random.split(eval_key, evaluations))[1]

    steps = built.initial_steps + built.steps_per_update * updates_per_eval * np.arange(
        1, evaluations + 1)
    return run, steps


def run(agent: str, args: argparse.Namespace) -> dict:
    """One compiled call: ``args.seeds`` runs of ``agent``, each evaluated as it trains."""
    module, config = configure(agent, args)
    env, params = envs.make(ENV)
    train, steps = make_run(module.make_agent(config, env, params), env, params,
                            args.eval_every, args.eval_episodes)
    keys = jax.random.split(jax.random.key(0), args.seeds)
    start = time.perf_counter()
    flag, eval_return, episode_return = (np.asarray(x) for x in jax.block_until_ready(
        jax.jit(jax.vmap(train))(keys)))  # each [seeds, evaluations]
    seconds = time.perf_counter() - start
    reached = flag >= FLAG_FRACTION
    succeeded = reached.any(1)
    first = np.where(succeeded, steps[reached.argmax(1)], -1)
    return {"agent": agent, "preset": args.preset, "env": ENV, "seeds": args.seeds,
            "env_steps": int(steps[-1]),
            "eval_episodes": args.eval_episodes, "succeeded": succeeded.tolist(),
            "steps_to_flag": first.tolist(), "steps": steps.tolist(),
            "flag_fraction": flag.round(3).tolist(),
            "final_flag_fraction": flag[:, -1].round(3).tolist(),
            "final_eval_return": eval_return[:, -1].round(1).tolist(),
            "eval_return": eval_return.round(1).tolist(),
            "episode_return": np.nan_to_num(episode_return, nan=-200.0).round(1).tolist(),
            "seconds": round(seconds, 1),
            "config": {k: v for k, v in vars(config).items()
                       if isinstance(v, int | float | str | tuple)}}


def markdown(results: list[dict]) -> str:
    """One row per agent: seeds that reached ≥ 90 % flag episodes, when, and the final state."""
    lines = [f"MountainCar-v0, greedy policy, a seed succeeds at the first evaluation where "
             f"≥ {FLAG_FRACTION:.0%} of its episodes reach the flag (return > −200).", "",
             "| agent | bonus | seeds succeeded | env steps to ≥ 90 % flag (per seed) | "
             "flag fraction, mean of the last 5 evaluations | final flag fraction | "
             "final eval return | env steps | wall s |",
             "| --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
    for row in results:
        config = row["config"]
        bonus = config["bonus"]
        if bonus == "hash":
            bonus = f"hash {config['hash_bits']} bits, β {config['bonus_scale']}"
        elif bonus == "rnd":
            bonus = f"rnd, β {config['bonus_scale']}"
        first = ", ".join(f"{s:,}" if s >= 0 else "–" for s in row["steps_to_flag"])
        late = ", ".join(f"{np.mean(f[-5:]):.2f}" for f in row["flag_fraction"])
        fractions = ", ".join(f"{f:.2f}" for f in row["final_flag_fraction"])
        returns = ", ".join(f"{r:.1f}" for r in row["final_eval_return"])
        agent = row["agent"]
        if agent.endswith("dqn"):
            agent = f"{agent} ({row.get('preset', 'defaults')})"
        lines.append(f"| {agent} | {bonus} | {sum(row['succeeded'])}/{row['seeds']} | "
                     f"{first} | {late} | {fractions} | {returns} | {row['env_steps']:,} | "
                     f"{row['seconds']} |")
    return "\n".join(lines) + "\n"


def plot(results: list[dict], path: Path) -> None:
    """Flag fraction of the greedy policy against env steps: each seed thin, the mean thick."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 3.5))
    for index, row in enumerate(results):
        fractions = np.asarray(row["flag_fraction"])
        for seed in fractions:
            ax.plot(row["steps"], seed, color=f"C{index}", alpha=0.3, lw=0.8)
        ax.plot(row["steps"], fractions.mean(0), color=f"C{index}", lw=2,
                label=f"{row['agent']} ({row.get('preset', 'defaults')})")
    ax.axhline(FLAG_FRACTION, color="k", ls="--", alpha=0.4)
    ax.set_xlabel("env steps")
    ax.set_ylabel("evaluation episodes reaching the flag")
    ax.set_title("MountainCar-v0, greedy policy")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--agents", nargs="+", default=["dqn", "hash_dqn"], choices=AGENTS)
    parser.add_argument("--seeds", type=int, default=4)
    parser.add_argument("--steps", type=int, default=100_000)
    parser.add_argument("--eval-every", type=int, default=5_000)
    parser.add_argument("--eval-episodes", type=int, default=20)
    parser.add_argument("--hash-bits", type=int, default=16)
    parser.add_argument("--bonus-scale", type=float, default=1.0)
    parser.add_argument("--preset", default="defaults", choices=("defaults", "fast"),
                        help="DQN settings: QConfig's defaults with a 64-64 network, or 'fast' "
                        "(batch 128, constant learning rate 1e-3, ε 1 → 0.05 over 10 %%)")
    parser.add_argument("--force", action="store_true", help="rerun agents already in --out")
    parser.add_argument("--out", default=str(RESULTS / "mountaincar.json"))
    args = parser.parse_args()
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    results = json.loads(out.read_text()) if out.exists() else []
    for agent in args.agents:
        def same(r, agent=agent):
            return r["agent"] == agent and r.get("preset", "defaults") == args.preset

        if any(same(r) for r in results) and not args.force:
            continue
        row = run(agent, args)
        results = [r for r in results if not same(r)] + [row]
        out.write_text(json.dumps(results, indent=1))
        print(f"{agent:9s} succeeded {sum(row['succeeded'])}/{row['seeds']} at "
              f"{row['steps_to_flag']}; final flag fraction {row['final_flag_fraction']} "
              f"({row['seconds']} s)", flush=True)
    out.with_suffix(".md").write_text(markdown(results))
    plot(results, out.with_suffix(".png"))


if __name__ == "__main__":
    main()
