"""MPC on the true simulator: return against planning budget and time per action.

Each case evaluates ``jaxrl.agents.mpc`` (``planner``, ``horizon`` H, ``population`` P,
``iterations`` I) for one full episode in each of ``episodes`` envs from random starts
(``jax.random.key(1)``) and prints one markdown row: mean ± std and minimum of the returns,
the budget ``P · H · I`` (simulated steps per decision), compile seconds and milliseconds per
decision step of the whole env batch (all envs plan at once, vmapped)::

    python benchmarks/planning.py                 # CartPole-v1 and Pendulum-v1
    python benchmarks/planning.py --brax          # brax/inverted_pendulum too
"""

from __future__ import annotations

import argparse
import time

import jax

from jaxrl import envs
from jaxrl.agents import mpc
from jaxrl.evaluation import episode_returns
from jaxrl.training.agent import policy_fn

CARTPOLE = [dict(planner="shooting", horizon=h, population=p)
            for h in (30, 60, 100) for p in (16, 32, 64)] + [
    dict(planner="cem", horizon=100, population=64, elites=8, iterations=3),
    dict(planner="mppi", horizon=60, population=64, iterations=2, temperature=0.5, noise=0.1)]
PENDULUM = [dict(planner="shooting", horizon=30, population=p) for p in (100, 400)] + [
    dict(planner=name, horizon=h, population=p, iterations=i)
    for name in ("cem", "mppi") for h, p, i in ((15, 50, 2), (30, 50, 3), (30, 100, 3))]
BRAX = [dict(planner="shooting", horizon=10, population=16),
        dict(planner="cem", horizon=10, population=16, elites=4, iterations=2)]


def measure(env_id: str, episodes: int, **config) -> str:
    env, params = envs.make(env_id)
    agent = mpc.make_agent(mpc.Config(**config), env, params)
    act, initial_carry = policy_fn(agent, None, True)
    steps = int(params.max_steps_in_episode)
    run = jax.jit(lambda key: episode_returns(key, env, params, act, episodes, steps, 1,
                                              initial_carry=initial_carry))
    start = time.perf_counter()
    compiled = run.lower(jax.random.key(1)).compile()
    compile_s = time.perf_counter() - start
    start = time.perf_counter()
    returns, finished = jax.block_until_ready(compiled(jax.random.key(1)))
    run_s = time.perf_counter() - start
    returns = returns[finished]
    budget = config["population"] * config["horizon"] * config.get("iterations", 1)
    if config["planner"] == "shooting":
        budget = (config["population"] + 1) * config["horizon"]
    settings = ", ".join(f"{k}={v}" for k, v in config.items() if k != "planner")
    return (f"| {env_id} | {config['planner']} | {settings} | {budget} | "
            f"{returns.mean():.1f} ± {returns.std():.1f} | {returns.min():.1f} | "
            f"{int(finished.sum())}/{episodes} | {compile_s:.1f} | {1e3 * run_s / steps:.2f} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--brax", action="store_true", help="also brax/inverted_pendulum")
    parser.add_argument("--episodes", type=int, default=8)
    parser.add_argument("--only", choices=("shooting", "cem", "mppi"), help="one planner")
    args = parser.parse_args()
    print("| env | planner | settings | P·H·I | return | min | finished | compile s "
          "| ms / step |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    cases = [("CartPole-v1", c) for c in CARTPOLE] + [("Pendulum-v1", c) for c in PENDULUM]
    if args.brax:
        cases += [("brax/inverted_pendulum", c) for c in BRAX]
    if args.only:
        cases = [(env_id, c) for env_id, c in cases if c["planner"] == args.only]
    for env_id, config in cases:
        print(measure(env_id, args.episodes, **config), flush=True)


if __name__ == "__main__":
    main()
