"""PETS and the MBRL ladder on Pendulum-v1 against SAC: env steps to an episode return of −200.

Each case trains ``--seeds`` seeds in one ``jax.jit(jax.vmap(train))`` call and records every
update's ``episode_return`` (one Pendulum episode = 200 steps = one update of the model-based
agents, the model refitted after each) against env steps (random warm-up counted), the env
steps at which a training episode first reaches −200, and compile and run seconds. SAC runs the
same way (its random warm-up counted; ``episode_return`` logged every 1,000 steps)::

    python benchmarks/model_based.py                  # writes results/model_based_cpu.{json,md}
    python benchmarks/model_based.py --seeds 4 --only "pets (TS-∞)" --only sac

Model-based cases share one CPU-sized planner (``PLANNER``): 5 × 64-wide PETS members, CEM
with population 100, 10 elites, 3 iterations, horizon 15, the known Pendulum reward; MBRL uses
one deterministic model (``ensemble_size = 1``, one particle). ``world_model`` plans in a
4- (or 8-) dimensional latent space with its learned reward head (64 × 64 networks, 500 fit
steps per update). ``--random``
adds the return of uniform random actions (the baseline the world model must beat).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

from jaxrl import envs
from jaxrl.agents import dyna, mbrl, pets, sac, world_model

PLANNER = {"random_steps": 200, "num_steps": 200, "population": 100, "elites": 10,
           "iterations": 3, "horizon": 15, "model_steps": 200}
CASES = {
    "pets (TS-∞)": (pets, {**PLANNER, "num_particles": 5, "propagation": "tsinf"}),
    "pets (TS-1)": (pets, {**PLANNER, "num_particles": 5, "propagation": "ts1"}),
    "mbrl v0.5": (mbrl, {**PLANNER, "version": "0.5"}),
    "mbrl v1.0": (mbrl, {**PLANNER, "version": "1.0"}),
    "mbrl v1.5": (mbrl, {**PLANNER, "version": "1.5"}),
    "sac": (sac, {"learning_starts": 1_000, "log_frequency": 1_000, "eval_episodes": 0}),
    "world_model": (world_model, {**PLANNER, "model_steps": 500, "latent_dim": 4}),
    "world_model (latent 8)": (world_model, {**PLANNER, "model_steps": 500, "latent_dim": 8}),
}
TARGET = -200.0
RESULTS = Path(__file__).parent / "results"


def run_case(name: str, seeds: int, model_based_steps: int, sac_steps: int) -> dict:
    module, kwargs = CASES[name]
    steps = sac_steps if module is sac else model_based_steps
    return pendulum_case(name, module, kwargs, seeds, steps, "episode_return")


def pendulum_case(name: str, module, kwargs: dict, seeds: int, steps: int, metric: str) -> dict:
    """One vmapped Pendulum-v1 run of ``module`` (``split(key(0), seeds)``): the ``metric``
    curve against env steps (warm-up counted), the env steps at which it first reaches
    ``TARGET``, compile and run seconds. ``benchmarks/model_policy.py`` shares it."""
    env, params = envs.make("Pendulum-v1")
    config = module.Config(**kwargs, total_timesteps=steps)
    agent = module.make_agent(config, env, params)
    train = jax.jit(jax.vmap(module.make_train(config, env, params)))
    keys = jax.random.split(jax.random.key(0), seeds)
    start = time.perf_counter()
    compiled = train.lower(keys).compile()
    compile_s = time.perf_counter() - start
    start = time.perf_counter()
    _, metrics = jax.block_until_ready(compiled(keys))
    run_s = time.perf_counter() - start
    returns = np.asarray(metrics[metric])  # [seeds, updates]
    env_steps = agent.initial_steps + agent.steps_per_update * np.arange(1, returns.shape[1] + 1)
    reached = [int(env_steps[np.argmax(row >= TARGET)]) if (row >= TARGET).any() else None
               for row in returns]
    return {"case": name, "config": dict(kwargs), "seeds": seeds,
            "env_steps": env_steps.tolist(), metric: returns.tolist(),
            "steps_to_target": reached, "final_return": returns[:, -1].tolist(),
            "compile_s": compile_s, "run_s": run_s}


def random_case(env_id: str = "Pendulum-v1", episodes: int = 16, steps: int = 200) -> dict:
    """The mean return of uniform random actions over ``episodes`` episodes of ``env_id``
    (the first ``steps`` steps; an episode that ends stops counting)."""
    env, params = envs.make(env_id)
    space = env.action_space(params)

    @jax.jit
    def returns(key):
        def episode(key):
            reset_key, key = jax.random.split(key)
            obs, state = env.reset(reset_key, params)

            def step(carry, key):
                state, total, alive = carry
                action_key, step_key = jax.random.split(key)
                _, state, reward, terminated, truncated, _ = env.step(
                    step_key, state, space.sample(action_key), params)
                return (state, total + alive * reward, alive & ~(terminated | truncated)), None

            init = (state, jnp.zeros(()), jnp.ones((), bool))
            return jax.lax.scan(step, init, jax.random.split(key, steps))[0][1]

        return jax.vmap(episode)(jax.random.split(key, episodes))

    values = np.asarray(returns(jax.random.key(0)))
    return {"case": "random actions", "env": env_id, "episodes": episodes,
            "mean": float(values.mean()), "std": float(values.std())}


CATCH = {"random_steps": 90, "num_steps": 90, "horizon": 10, "population": 100, "elites": 10,
         "iterations": 3}
"""world_model on Catch-bsuite: 10 episodes (9 steps each) between two fits."""


def catch_case(seeds: int, steps: int = 1_800) -> dict:
    """world_model (defaults, ``CATCH``) on Catch-bsuite's 10×5 grid observations: the mean
    training return per update (10 episodes) against uniform random actions'."""
    env, params = envs.make("Catch-bsuite")
    config = world_model.Config(**CATCH, total_timesteps=steps)
    keys = jax.random.split(jax.random.key(0), seeds)
    start = time.perf_counter()
    compiled = jax.jit(jax.vmap(world_model.make_train(config, env, params))).lower(
        keys).compile()
    compile_s = time.perf_counter() - start
    start = time.perf_counter()
    _, metrics = jax.block_until_ready(compiled(keys))
    returns = np.asarray(metrics["episode_return"])
    return {"case": "world_model on Catch-bsuite", "config": CATCH, "seeds": seeds,
            "env_steps": steps + CATCH["random_steps"], "episode_return": returns.tolist(),
            "last_half_mean": returns[:, returns.shape[1] // 2:].mean(1).tolist(),
            "random": random_case("Catch-bsuite", 256, 9), "compile_s": compile_s,
            "run_s": time.perf_counter() - start}


def dyna_case(seeds: int, steps: int = 3_000) -> dict:
    """Dyna-Q (10 planning steps) and Q-learning (0) on Gridworld-v0, same seeds: the real
    steps after which the greedy policy first succeeds in at least half of 16 episodes."""
    env, params = envs.make("Gridworld-v0")
    keys = jax.random.split(jax.random.key(0), seeds)
    row = {"case": "dyna", "seeds": seeds, "real_steps": steps}
    for planning_steps in (10, 0):
        config = dyna.Config(total_timesteps=steps, num_steps=100,
                             planning_steps=planning_steps, eval_episodes=16)
        _, metrics = jax.jit(jax.vmap(dyna.make_train(config, env, params)))(keys)
        solved = np.asarray(metrics["eval_return"]) >= 0.5
        row[f"planning_steps={planning_steps}"] = [
            int(100 * (np.argmax(s) + 1)) if s.any() else None for s in solved]
    return row


def markdown(rows: list[dict]) -> str:
    lines = ["| case | seeds | env steps | final episode return (per seed) | env steps to −200 "
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
    parser.add_argument("--only", action="append", choices=sorted(CASES))
    parser.add_argument("--model-based-steps", type=int, default=1_200,
                        help="env steps after the 200 random ones")
    parser.add_argument("--sac-steps", type=int, default=10_000)
    parser.add_argument("--dyna-seeds", type=int, default=4, help="0: skip Dyna-Q")
    parser.add_argument("--catch-seeds", type=int, default=0,
                        help="world_model on Catch-bsuite with this many seeds (0: skip)")
    parser.add_argument("--skip-pendulum", action="store_true",
                        help="run no Pendulum case (only Dyna-Q / Catch / random)")
    parser.add_argument("--random", action="store_true",
                        help="also measure uniform random actions' return")
    parser.add_argument("--out", default=str(RESULTS / "model_based_cpu"))
    args = parser.parse_args()
    rows = []
    for name in [] if args.skip_pendulum else args.only or CASES:
        rows.append(run_case(name, args.seeds, args.model_based_steps, args.sac_steps))
        print(markdown(rows[-1:]).splitlines()[-1], flush=True)
    dyna_row = dyna_case(args.dyna_seeds) if args.dyna_seeds else None
    random_row = random_case() if args.random else None
    catch_row = catch_case(args.catch_seeds) if args.catch_seeds else None
    machine = {"processor": platform.processor() or platform.machine(),
               "cpus": os.cpu_count(), "load_average": os.getloadavg(),
               "jax": jax.__version__}
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.with_suffix(".json").write_text(json.dumps({"machine": machine, "rows": rows,
                                                    "dyna": dyna_row, "random": random_row,
                                                    "catch": catch_row},
                                                   indent=1))
    text = markdown(rows) + "\n"
    if catch_row:
        text += (f"\nworld_model on Catch-bsuite ({catch_row['seeds']} seeds, "
                 f"{catch_row['env_steps']:,} env steps): mean return over the last half of "
                 f"training {', '.join(f'{r:.2f}' for r in catch_row['last_half_mean'])}; "
                 f"uniform random actions {catch_row['random']['mean']:.2f}\n")
    if random_row:
        text += (f"\nUniform random actions: {random_row['mean']:.0f} ± {random_row['std']:.0f} "
                 f"over {random_row['episodes']} episodes\n")
    if dyna_row:
        text += (f"\nDyna-Q on Gridworld-v0 ({dyna_row['seeds']} seeds): real steps until the "
                 f"greedy policy succeeds in ≥ 50 % of 16 episodes: planning_steps=10: "
                 f"{dyna_row['planning_steps=10']}, Q-learning (0): "
                 f"{dyna_row['planning_steps=0']}\n")
    out.with_suffix(".md").write_text(text)
    print(text)


if __name__ == "__main__":
    main()
