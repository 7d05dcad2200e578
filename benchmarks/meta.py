"""RL² on task families: bandit regret against UCB1, Thompson sampling and a feed-forward agent,
and PointNav's second episode of a trial against its first.

Bandits (``--bandits``): ``KArmedBandit-v0`` with ``--arms`` Bernoulli arms, trials of
``--pulls`` pulls (one pull per episode), tasks ``μ ~ U(0, 1)^k``. RL² (GRU) and the same agent
without memory (``recurrent="none"``, the previous action and reward still in its input) train
for ``--steps`` env steps on ``--seeds`` seeds (one vmapped call each); each trained policy's
regret curve is averaged over 4000 fresh tasks (``rl2.trial_regret``), UCB1's and Thompson's
over the same number (``jaxrl.bandits``). PointNav (``--pointnav``): RL² on trials of 2 episodes
of ``--horizon`` steps; the mean return of each episode of a trial over 1000 fresh goals
(deterministic policy) and the standard error of the second's gain.

Writes ``benchmarks/results/meta_<case>.json`` and prints markdown rows::

    python benchmarks/meta.py --bandits --arms 2 --pulls 10 --steps 80000 --seeds 2 \
        --set learning_rate=0.02 gamma=1.0 "hidden_sizes=(32,)" recurrent_size=32 --tag _tuned
    python benchmarks/meta.py --bandits --arms 5 --pulls 100 --steps 640000 --seeds 4 \
        --chunks 10 --set normalize_reward=True learning_rate=0.01 --tag _normrew
    python benchmarks/meta.py --pointnav --horizon 10 --steps 200000 --seeds 4

``--set FIELD=VALUE`` overrides ``rl2.Config`` fields; ``--chunks`` evaluates and saves the
JSON after each part of a bandit run (a run cut short leaves its partial result; ``curve`` lists
``[env steps, regret per seed]`` after each part).
"""

from __future__ import annotations

import argparse
import ast
import json
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

from jaxrl import bandits, envs
from jaxrl.agents import rl2
from jaxrl.rollout import rollout_with_carry
from jaxrl.training.agent import policy_fn

RESULTS = Path(__file__).parent / "results"
TASKS = 4000


def train(config: rl2.Config, env, params, seeds: int):
    agent = rl2.make_agent(config, env, params)
    start = time.perf_counter()
    states, metrics = jax.jit(jax.vmap(rl2.make_train(config, env, params)))(
        jax.random.split(jax.random.key(0), seeds))
    jax.block_until_ready(metrics)
    return agent, states, time.perf_counter() - start


def seed_state(states, i):
    return jax.tree.map(lambda x: x[i], states)


def train_in_chunks(config: rl2.Config, env, params, seeds: int, chunks: int, after_chunk):
    """The run of ``train`` cut into ``chunks`` compiled scans (the same updates; the last
    ``num_updates % chunks`` are dropped): ``after_chunk(agent, states, updates, seconds)``
    after each, so a long run leaves its partial results behind."""
    agent = rl2.make_agent(config, env, params)
    per_chunk = agent.num_updates // chunks

    def updates(state):
        return jax.lax.scan(lambda s, _: (agent.update(s)[0], None), state, None,
                            length=per_chunk)[0]

    run = jax.jit(jax.vmap(updates))
    start = time.perf_counter()
    states = jax.jit(jax.vmap(agent.init))(jax.random.split(jax.random.key(0), seeds))
    for chunk in range(chunks):
        states = jax.block_until_ready(run(states))
        after_chunk(agent, states, (chunk + 1) * per_chunk, time.perf_counter() - start)
    return agent, states, time.perf_counter() - start


def bandit_case(arms: int, pulls: int, steps: int, seeds: int, overrides: dict,
                agents: tuple[str, ...] = ("rl2", "feed_forward"), chunks: int = 1,
                save=lambda result: None) -> dict:
    env, params = envs.make("KArmedBandit-v0", num_arms=arms)
    config = rl2.Config(total_timesteps=steps, episodes_per_trial=pulls,
                        num_steps=pulls).replace(**overrides)
    result = {"arms": arms, "pulls": pulls, "steps": steps, "seeds": seeds,
              "overrides": overrides}

    def baseline(strategy):
        def one(key):
            task_key, run_key = jax.random.split(key)
            return bandits.regret_curve(run_key, strategy, env,
                                        env.sample_task(task_key, params), pulls)
        return float(jax.jit(jax.vmap(one))(jax.random.split(jax.random.key(1), TASKS))
                     .mean(0)[-1])

    result["ucb1"] = baseline(bandits.ucb1(arms))
    result["thompson"] = baseline(bandits.thompson(arms))
    result["chance"] = pulls * float(jnp.mean(jax.vmap(
        lambda k: (lambda m: m.max() - m.mean())(env.sample_task(k, params).arm_means))(
        jax.random.split(jax.random.key(2), TASKS))))
    recurrent = {"rl2": config.recurrent, "feed_forward": "none"}
    for name in agents:
        def after_chunk(agent, states, updates, seconds, name=name):
            regret = jax.jit(lambda state: rl2.trial_regret(
                agent, state, env, params, jax.random.key(1), pulls, TASKS)[-1])
            regrets = [float(regret(seed_state(states, i))) for i in range(seeds)]
            curve = result.get(name, {}).get("curve", [])
            result[name] = {"regret": regrets, "train_seconds": seconds,
                            "env_steps": updates * agent.steps_per_update,
                            "curve": [*curve, [updates * agent.steps_per_update, regrets]]}
            save(result)
            print(f"{name}: {result[name]}", flush=True)

        train_in_chunks(config.replace(recurrent=recurrent[name]), env, params, seeds, chunks,
                        after_chunk)
    return result


def episode_returns_in_trials(agent, state, config, env, params, horizon: int) -> list[float]:
    trials = rl2.wrap_env(config, env)
    reset_key, rollout_key = jax.random.split(jax.random.key(1))
    obs, env_state = jax.vmap(trials.reset, in_axes=(0, None))(
        jax.random.split(reset_key, 1000), params)
    act, initial_carry = policy_fn(agent, state, True)

    def policy(key, obs, env_state, carry):
        action, carry = act(key, obs, env_state, carry)
        return action, {}, carry

    carry = initial_carry(1000)
    *_, transitions = jax.jit(lambda o, s, c: rollout_with_carry(
        rollout_key, trials, params, s, o, c, policy, 2 * horizon, c, unroll=1))(
        obs, env_state, carry)
    rewards = np.asarray(transitions.reward)  # [2 · horizon, 1000]
    # The episode of each step: the end flags in the inputs so far; steps after the first
    # trial's end (an episode that reached its goal early) are left out.
    episode = np.cumsum(np.asarray(transitions.obs)[..., -1], axis=0)
    ended = np.cumsum(np.asarray(transitions.terminated), axis=0)
    in_trial = (ended - np.asarray(transitions.terminated)) == 0
    first, second = (np.where(in_trial & (episode == i), rewards, 0.0).sum(0) for i in (0, 1))
    # The standard error of the mean improvement over the trials (one goal each).
    gain_se = float(np.std(second - first) / np.sqrt(len(first)))
    return [float(first.mean()), float(second.mean()), gain_se]


def pointnav_case(horizon: int, steps: int, seeds: int, overrides: dict) -> dict:
    env, params = envs.make("PointNav-v0", max_steps_in_episode=horizon)
    config = rl2.Config(total_timesteps=steps, episodes_per_trial=2, num_steps=2 * horizon,
                        num_envs=32, learning_rate=1e-3, ent_coef=0.0).replace(**overrides)
    agent, states, seconds = train(config, env, params, seeds)
    per_seed = [episode_returns_in_trials(agent, seed_state(states, i), config, env, params,
                                          horizon)
                for i in range(seeds)]
    return {"horizon": horizon, "steps": steps, "seeds": seeds, "train_seconds": seconds,
            "overrides": overrides, "episode_returns": per_seed}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bandits", action="store_true")
    parser.add_argument("--pointnav", action="store_true")
    parser.add_argument("--arms", type=int, default=2)
    parser.add_argument("--pulls", type=int, default=10)
    parser.add_argument("--horizon", type=int, default=20)
    parser.add_argument("--steps", type=int, default=200_000)
    parser.add_argument("--seeds", type=int, default=2)
    parser.add_argument("--set", nargs="*", default=[], metavar="FIELD=VALUE",
                        help="rl2.Config overrides (Python literals)")
    parser.add_argument("--tag", default="", help="suffix of the result file's name")
    parser.add_argument("--agents", nargs="+", default=["rl2", "feed_forward"],
                        choices=["rl2", "feed_forward"], help="bandits: the agents to train")
    parser.add_argument("--chunks", type=int, default=1,
                        help="bandits: evaluate and save after each of this many parts of a run")
    args = parser.parse_args()
    overrides = {k: ast.literal_eval(v) for k, v in (item.split("=", 1) for item in args.set)}
    RESULTS.mkdir(exist_ok=True)
    if args.bandits:
        path = RESULTS / f"meta_bandit_{args.arms}x{args.pulls}{args.tag}.json"
        result = bandit_case(args.arms, args.pulls, args.steps, args.seeds, overrides,
                             tuple(args.agents), args.chunks,
                             lambda result: path.write_text(json.dumps(result, indent=1)))
        mean = {k: np.mean(result[k]["regret"]) if k in result else float("nan")
                for k in ("rl2", "feed_forward")}
        print(f"| {args.arms}-armed, {args.pulls} pulls | {args.steps} | {args.seeds} | "
              f"{mean['rl2']:.3f} | {mean['feed_forward']:.3f} | {result['thompson']:.3f} | "
              f"{result['ucb1']:.3f} | {result['chance']:.3f} |")
    if args.pointnav:
        result = pointnav_case(args.horizon, args.steps, args.seeds, overrides)
        (RESULTS / f"meta_pointnav_{args.horizon}{args.tag}.json").write_text(
            json.dumps(result, indent=1))
        for seed, (first, second, gain_se) in enumerate(result["episode_returns"]):
            print(f"| PointNav-v0, H={args.horizon} | seed {seed} | {first:.3f} | {second:.3f} "
                  f"| {second - first:.3f} ± {gain_se:.3f} |")


if __name__ == "__main__":
    main()
