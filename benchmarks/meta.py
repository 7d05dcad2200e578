"""RL² on task families: bandit regret against UCB1, Thompson sampling and a feed-forward agent,
and PointNav's second episode of a trial against its first.

Bandits (``--bandits``): ``KArmedBandit-v0`` with ``--arms`` Bernoulli arms, trials of
``--pulls`` pulls (one pull per episode), tasks ``μ ~ U(0, 1)^k``. RL² (GRU) and the same agent
without memory (``recurrent="none"``, the previous action and reward still in its input) train
for ``--steps`` env steps on ``--seeds`` seeds (one vmapped call each); each trained policy's
regret curve is averaged over 4000 fresh tasks (``rl2.trial_regret``), UCB1's and Thompson's
over the same number (``jaxrl.bandits``). PointNav (``--pointnav``): RL² on trials of 2 episodes
of ``--horizon`` steps; the mean return of each episode of a trial over 1000 fresh goals.

Writes ``benchmarks/results/meta_<case>.json`` and prints markdown rows::

    python benchmarks/meta.py --bandits --arms 2 --pulls 10 --steps 200000 --seeds 2
    python benchmarks/meta.py --bandits --arms 5 --pulls 100 --steps 5000000 --seeds 4
    python benchmarks/meta.py --pointnav --horizon 20 --steps 2000000 --seeds 2
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

from jaxrl import bandits, envs
from jaxrl.agents import rl2
from jaxrl.envs.meta import TrialEnv
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


def bandit_case(arms: int, pulls: int, steps: int, seeds: int) -> dict:
    env, params = envs.make("KArmedBandit-v0", num_arms=arms)
    config = rl2.Config(total_timesteps=steps, episodes_per_trial=pulls, num_steps=pulls)
    result = {"arms": arms, "pulls": pulls, "steps": steps, "seeds": seeds}
    for name, recurrent in (("rl2", "gru"), ("feed_forward", "none")):
        agent, states, seconds = train(config.replace(recurrent=recurrent), env, params, seeds)
        final = [float(rl2.trial_regret(agent, seed_state(states, i), env, params,
                                        jax.random.key(1), pulls, TASKS)[-1])
                 for i in range(seeds)]
        result[name] = {"regret": final, "train_seconds": seconds}

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
    return result


def episode_returns_in_trials(agent, state, env, params, horizon: int) -> list[float]:
    trials = TrialEnv(env, 2)
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
    return [float(np.where(in_trial & (episode == i), rewards, 0.0).sum(0).mean())
            for i in (0, 1)]


def pointnav_case(horizon: int, steps: int, seeds: int) -> dict:
    env, params = envs.make("PointNav-v0", max_steps_in_episode=horizon)
    config = rl2.Config(total_timesteps=steps, episodes_per_trial=2, num_steps=2 * horizon,
                        num_envs=32, learning_rate=1e-3, ent_coef=0.0)
    agent, states, seconds = train(config, env, params, seeds)
    per_seed = [episode_returns_in_trials(agent, seed_state(states, i), env, params, horizon)
                for i in range(seeds)]
    return {"horizon": horizon, "steps": steps, "seeds": seeds, "train_seconds": seconds,
            "episode_returns": per_seed}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bandits", action="store_true")
    parser.add_argument("--pointnav", action="store_true")
    parser.add_argument("--arms", type=int, default=2)
    parser.add_argument("--pulls", type=int, default=10)
    parser.add_argument("--horizon", type=int, default=20)
    parser.add_argument("--steps", type=int, default=200_000)
    parser.add_argument("--seeds", type=int, default=2)
    args = parser.parse_args()
    RESULTS.mkdir(exist_ok=True)
    if args.bandits:
        result = bandit_case(args.arms, args.pulls, args.steps, args.seeds)
        name = f"meta_bandit_{args.arms}x{args.pulls}"
        (RESULTS / f"{name}.json").write_text(json.dumps(result, indent=1))
        mean = {k: np.mean(result[k]["regret"]) for k in ("rl2", "feed_forward")}
        print(f"| {args.arms}-armed, {args.pulls} pulls | {args.steps} | {args.seeds} | "
              f"{mean['rl2']:.3f} | {mean['feed_forward']:.3f} | {result['thompson']:.3f} | "
              f"{result['ucb1']:.3f} | {result['chance']:.3f} |")
    if args.pointnav:
        result = pointnav_case(args.horizon, args.steps, args.seeds)
        (RESULTS / f"meta_pointnav_{args.horizon}.json").write_text(json.dumps(result, indent=1))
        for seed, (first, second) in enumerate(result["episode_returns"]):
            print(f"| PointNav-v0, H={args.horizon} | seed {seed} | {first:.2f} | {second:.2f} |")


if __name__ == "__main__":
    main()
