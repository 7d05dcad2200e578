"""Gradient-based meta-RL: adaptation curves of MAML, first-order MAML and Reptile against a
multi-task policy without adaptation and a policy trained from scratch.

Each task family (``--env``: ``PointNav-v0`` goals, or ``Pendulum-v1`` with mass and length
uniform in [0.5, 1.5]) is trained for ``--updates`` meta-updates of ``--tasks`` tasks × 10
episodes of ``--horizon`` steps per inner step (one inner step) on ``--seeds`` seeds (one vmapped
call per variant). Each trained meta-policy then adapts to ``HELD_OUT`` tasks it never saw
(drawn with another key) with 0–3 policy-gradient steps of 10 episodes each
(``training.meta.adaptation_returns``); "scratch" is the same adaptation from a fresh random
init. The multi-task baseline is PPO (``agents.multitask``) with the task hidden, trained for
the same env steps as MAML, evaluated on ``HELD_OUT`` fresh tasks (it does not adapt: its row
is flat). Returns are undiscounted sums over the ``--horizon`` steps.

Writes ``benchmarks/results/meta_cpu_<env>.json`` and ``.md``::

    python benchmarks/meta_learning.py --env PointNav-v0 --updates 40 --seeds 2
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

from jaxrl import envs
from jaxrl.agents import maml, multitask
from jaxrl.evaluation import evaluate
from jaxrl.training import meta
from jaxrl.training.agent import policy_fn

RESULTS = Path(__file__).parent / "results"
HELD_OUT = 64
STEPS = 3


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--env", default="PointNav-v0")
    parser.add_argument("--updates", type=int, default=40)
    parser.add_argument("--tasks", type=int, default=20)
    parser.add_argument("--horizon", type=int, default=20)
    parser.add_argument("--seeds", type=int, default=2)
    args = parser.parse_args()

    env, params = envs.make(args.env, max_steps_in_episode=args.horizon)
    base = maml.Config(meta_batch_size=args.tasks, num_envs=10, horizon=args.horizon,
                       learning_rate=3e-3, hidden_sizes=(32, 32))
    base = base.replace(total_timesteps=base.steps_per_update * args.updates)
    sample_task = meta.task_sampler(env, params)
    held_out = jax.vmap(sample_task)(jax.random.split(jax.random.key(123), HELD_OUT))
    policy = meta.make_policy(env, params, base.hidden_sizes, base.activation)

    @jax.jit
    def curve(policy_params, key):
        return meta.adaptation_returns(policy, policy_params, key, env, held_out, steps=STEPS,
                                       inner_lr=base.inner_lr, num_envs=base.num_envs,
                                       horizon=base.horizon).mean(0)

    seeds = jax.random.split(jax.random.key(0), args.seeds)
    result = {"env": args.env, "horizon": args.horizon, "tasks_per_update": args.tasks,
              "updates": args.updates, "seeds": args.seeds, "env_steps": base.total_timesteps,
              "held_out_tasks": HELD_OUT, "inner_lr": base.inner_lr, "curves": {},
              "seconds": {}}
    for variant in meta.VARIANTS:
        config = base.replace(variant=variant)
        start = time.perf_counter()
        states, metrics = jax.jit(jax.vmap(maml.make_train(config, env, params)))(seeds)
        jax.block_until_ready(metrics)
        result["seconds"][variant] = time.perf_counter() - start
        result["curves"][variant] = [
            np.asarray(curve(jax.tree.map(lambda x, i=i: x[i], states.params),
                             jax.random.key(7))).tolist() for i in range(args.seeds)]
        print(variant, result["curves"][variant], f"{result['seconds'][variant]:.0f}s",
              flush=True)
    fresh = [policy.init(key, jnp.zeros((1, *env.observation_space(params).shape)))
             for key in seeds]
    result["curves"]["scratch"] = [np.asarray(curve(p, jax.random.key(7))).tolist()
                                   for p in fresh]

    ppo = multitask.Config(task_in_obs=False, total_timesteps=base.total_timesteps,
                           hidden_sizes=(32, 32))
    agent = multitask.make_agent(ppo, env, params)
    start = time.perf_counter()
    states, _ = jax.jit(jax.vmap(multitask.make_train(ppo, env, params)))(seeds)
    jax.block_until_ready(states)
    result["seconds"]["multitask"] = time.perf_counter() - start
    sample_held_out = meta.fixed_tasks(params, [
        jax.tree.map(lambda x, i=i: x[i], held_out) for i in range(HELD_OUT)])
    wrapped = meta.TaskEnv(env, lambda key, env_params: sample_held_out(key), False)
    scores = []
    for i in range(args.seeds):
        act, _ = policy_fn(agent, jax.tree.map(lambda x, i=i: x[i], states), False)
        score = evaluate(jax.random.key(7), wrapped, params,
                         lambda key, obs, act=act: act(key, obs, None, ())[0], HELD_OUT,
                         args.horizon + 1)
        scores.append([float(score)] * (STEPS + 1))
    result["curves"]["multitask"] = scores
    print("multitask", scores[0][0], flush=True)

    name = f"meta_cpu_{args.env.split('-')[0].lower()}"
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / f"{name}.json").write_text(json.dumps(result, indent=1))
    rows = [f"{args.env}, horizon {args.horizon}: mean return on {HELD_OUT} held-out tasks "
            f"after k inner steps (mean ± std over {args.seeds} seeds; "
            f"{base.total_timesteps:,} env steps of training)", "",
            "| method | k=0 | k=1 | k=2 | k=3 | train s |", "| --- | --- | --- | --- | --- | --- |"]
    for method, curves in result["curves"].items():
        values = np.asarray(curves)
        cells = " | ".join(f"{m:.2f} ± {s:.2f}" for m, s in zip(values.mean(0), values.std(0),
                                                                 strict=True))
        seconds = result["seconds"].get(method)
        rows.append(f"| {method} | {cells} | {f'{seconds:.0f}' if seconds else '–'} |")
    (RESULTS / f"{name}.md").write_text("\n".join(rows) + "\n")
    print("\n".join(rows))


if __name__ == "__main__":
    main()
