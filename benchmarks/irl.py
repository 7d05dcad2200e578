"""Inverse RL benchmarks: tabular MaxEnt IRL on the slippery gridworld; GAIL / AIRL vs BC.

Gridworld-v0 (4x4, slip 0.2, γ = 0.95): the expert is the soft-optimal policy of the true reward
(soft value iteration, temperature 0.05); ``16 × 200`` of its transitions (``jaxrl.datasets.
generation.collect``) are the demonstrations. ``maxent_irl`` runs with each objective
(finite-horizon messages, discounted soft VI) and reward model; reported per data seed: the total
variation between the learned reward's soft-optimal policy's state occupancy and the expert's,
the Pearson correlation of the learned and true rewards after projecting out potential shaping
(weighted by the expert's state-action occupancy), the learned policy's mean return (16 real
episodes, deterministic) beside the expert's, and wall time (compile included) on this machine.
A figure of the true and recovered rewards (shaping removed, mean over actions) goes to
``docs/images/irl_gridworld.png``; numbers to ``benchmarks/results/irl_cpu.{json,md}``.

Pendulum-v1 (``--pendulum-steps > 0``): 4 episodes of the scripted expert
(``jaxrl.envs.experts.pendulum_expert``), subsampled every 20 steps (40 transitions), train GAIL,
AIRL and GCL (PPO with the learning benchmark's Pendulum settings, ``--pendulum-steps`` env
steps), DAC (one discriminator step per env step, ``--dac-steps`` env steps; ``dac``: the
TD3 learner, ``dac_sac``: SAC, the default) and BC (2,000 gradient steps) on them,
``--pendulum-seeds`` seeds vmapped in one compiled call each.
Score: ``irl.normalized_score`` of the final deterministic policy's mean return over 16 episodes
(random policy 0, expert 100).

Reward transfer (``--transfer-mass m > 0``): AIRL trained as above (``--pendulum-steps``) on
Pendulum-v1; its state reward ``g(s)`` (``airl.reward_transform``) re-optimised from scratch by
SAC (``--sac-steps``, MLP 64x64, batch 128) on Pendulum-v1 with pole mass ``m``; scored against
SAC on the true reward of the changed pendulum (same keys and budget; both SAC runs vmapped in
one compiled call) and the random policy there; the AIRL policy itself on the changed pendulum
is reported beside it.

    python benchmarks/irl.py [--seeds 3] [--steps 500] [--skip-gridworld]
        [--pendulum-steps 200000] [--pendulum-seeds 2] [--dac-steps 30000] [--only bc dac]
        [--transfer-mass 1.3 --sac-steps 15000] [--acrobot-steps 300000]

Acrobot-v1 (``--acrobot-steps > 0``, discrete actions): the expert is PPO trained here
(``ACROBOT_PPO``, ``--acrobot-expert-steps``), greedy; its first 4 episodes subsampled every 20
steps are the demonstrations of GAIL, AIRL (same PPO settings, ``--acrobot-steps``) and BC
(2,000 gradient steps); results to ``benchmarks/results/irl_acrobot.json`` (the last section of
``irl_cpu.md``). DAC is not run: its learners (SAC, TD3) act in Box spaces.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import distrax
import jax
import jax.numpy as jnp
import numpy as np

from jaxrl import dynamic_programming as dp
from jaxrl import envs, irl
from jaxrl.agents import airl, bc, dac, gail, gcl, maxent_irl, sac
from jaxrl.datasets import Dataset
from jaxrl.datasets.generation import collect
from jaxrl.envs.experts import pendulum_expert
from jaxrl.envs.tabular import state_index, tabular_mdp
from jaxrl.evaluation import evaluate
from jaxrl.training.extensions import RewardTransform

RESULTS = Path(__file__).parent / "results"
FIGURE = Path(__file__).parent.parent / "docs" / "images" / "irl_gridworld.png"
"""Shown by docs/inverse-rl.md."""
GAMMA, TEMPERATURE = 0.95, 0.05
VARIANTS = {
    "finite-horizon, linear (s, a)": {"objective": "finite_horizon"},
    "discounted, linear (s, a)": {"objective": "discounted"},
    "discounted, linear s'": {"objective": "discounted", "features": "state"},
    "finite-horizon, MLP (s, a)": {"objective": "finite_horizon", "reward_model": "mlp",
                                   "learning_rate": 0.01},
}


def expert_data(seed: int):
    env, params = envs.make("Gridworld-v0")
    mdp = tabular_mdp(env, params, GAMMA)
    policy = dp.soft_value_iteration(mdp, TEMPERATURE, 300).policy

    def expert(obs):
        return distrax.Categorical(probs=policy[state_index(mdp, obs)])

    arrays = jax.jit(lambda k: collect(k, env, params, [expert], 16, 200))(jax.random.key(seed))
    dataset = Dataset(**{k: np.asarray(v) for k, v in arrays.items()},
                      metadata={"env": "Gridworld-v0"})
    expert_return = float(jax.jit(lambda k: evaluate(
        k, env, params, lambda key, obs: jax.random.categorical(
            key, jnp.log(policy[state_index(mdp, obs)])), 256, 101))(jax.random.key(99)))
    return env, params, mdp, policy, dataset, expert_return


def learned_reward(config, state, mdp) -> jax.Array:
    live = (~mdp.terminal)[:, None]
    if config.reward_model == "mlp":  # r + γ P V − V = log π: the reward up to shaping
        return jnp.log(state.policy) * live
    if config.features == "state":
        return (mdp.P @ state.params) * live
    return state.params * live


def gridworld(seeds: int, steps: int) -> tuple[list[dict], dict]:
    rows, figure_rewards = [], {}
    for seed in range(seeds):
        env, params, mdp, expert, dataset, expert_return = expert_data(seed)
        weights = irl.state_action_visitation(mdp, expert)
        for name, overrides in VARIANTS.items():
            config = maxent_irl.Config(total_gradient_steps=steps, log_frequency=steps // 5,
                                       gamma=GAMMA, eval_episodes=256, **overrides)
            start = time.perf_counter()
            state, metrics = jax.jit(maxent_irl.make_train(config, env, params, dataset))(
                jax.random.key(seed))
            jax.block_until_ready(metrics)
            seconds = time.perf_counter() - start
            occupancy = dp.state_occupancy(mdp, state.policy)
            reward = learned_reward(config, state, mdp)
            rows.append({
                "variant": name, "seed": seed, "steps": steps, "wall_s": round(seconds, 2),
                "tv": float(0.5 * np.abs(occupancy - dp.state_occupancy(mdp, expert)).sum()),
                "correlation": float(irl.shaping_free_correlation(mdp, reward, mdp.R, weights)),
                "return": float(metrics["eval_return"][-1]), "expert_return": expert_return})
            print(rows[-1], flush=True)
            if seed == 0 and name == "finite-horizon, linear (s, a)":
                figure_rewards = {"true": irl.remove_shaping(mdp, mdp.R, weights),
                                  "recovered": irl.remove_shaping(mdp, reward, weights),
                                  "terminal": mdp.terminal}
    return rows, figure_rewards


def plot(rewards: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(7, 3.2))
    for ax, key in zip(axes, ("true", "recovered"), strict=True):
        grid = np.asarray(rewards[key]).mean(1)
        grid = np.where(np.asarray(rewards["terminal"]), np.nan, grid).reshape(4, 4)
        grid = (grid - np.nanmean(grid)) / np.nanstd(grid)
        image = ax.imshow(grid, cmap="viridis")
        ax.set_title(f"{key} reward (shaping removed, z-scored)", fontsize=8)
        ax.set_xticks([])
        ax.set_yticks([])
        fig.colorbar(image, ax=ax, fraction=0.046)
    fig.suptitle("MaxEnt IRL, Gridworld-v0 4x4 slippery (finite-horizon messages)", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=120)


def summary(rows: list[dict]) -> str:
    lines = ["| variant | seeds | TV(visitation) | shaping-free corr | return (expert) | wall s |",
             "| --- | --- | --- | --- | --- | --- |"]
    for name in VARIANTS:
        chosen = [r for r in rows if r["variant"] == name]
        tv, corr = (np.array([r[k] for r in chosen]) for k in ("tv", "correlation"))
        ret, exp = (np.array([r[k] for r in chosen]) for k in ("return", "expert_return"))
        lines.append(f"| {name} | {len(chosen)} | {tv.mean():.3f} ± {tv.std():.3f} | "
                     f"{corr.mean():.3f} ± {corr.std():.3f} | {ret.mean():.3f} ({exp.mean():.3f})"
                     f" | {np.mean([r['wall_s'] for r in chosen]):.1f} |")
    return "\n".join(lines)


def pendulum_data() -> tuple[Dataset, float, float]:
    """4 scripted-expert episodes (full; GAIL/AIRL subsample them), the expert's and the random
    policy's mean returns over 16 episodes."""
    env, params = envs.make("Pendulum-v1")

    def expert(obs):
        return distrax.MultivariateNormalDiag(pendulum_expert(obs), jnp.full((1,), 1e-3))

    arrays = jax.jit(lambda k: collect(k, env, params, [expert], 4, 200))(jax.random.key(0))
    dataset = Dataset(**{k: np.asarray(v) for k, v in arrays.items()},
                      metadata={"env": "Pendulum-v1"})
    space = env.action_space(params)

    def mean_return(policy):
        return float(jax.jit(lambda k: evaluate(k, env, params, policy, 16, 201))(
            jax.random.key(7)))

    return dataset, mean_return(lambda k, obs: pendulum_expert(obs)), mean_return(
        lambda k, obs: jax.random.uniform(k, (obs.shape[0], 1), minval=space.low,
                                          maxval=space.high))


def pendulum(steps: int, seeds: int, dac_steps: int, only: list[str] | None) -> list[dict]:
    env, params = envs.make("Pendulum-v1")
    dataset, expert_return, random_return = pendulum_data()
    sparse = Dataset(**{k: getattr(dataset, k)[::20] for k in (
        "observations", "actions", "rewards", "next_observations", "terminated", "truncated",
        "log_probs")}, metadata=dataset.metadata)
    ppo = ppo_imitation_config(steps)
    cases = {"bc": (bc, bc.Config(total_gradient_steps=2000, log_frequency=500, batch_size=40,
                                  eval_episodes=16, hidden_sizes=(64, 64)), sparse),
             "gail": (gail, gail.Config(**ppo), dataset),
             "airl": (airl, airl.Config(**ppo), dataset),
             "gcl": (gcl, gcl.Config(**ppo), dataset),
             **{name: (dac, dac.Config(total_timesteps=dac_steps, log_frequency=dac_steps // 4,
                                       eval_episodes=16, demo_subsample=20, disc_steps=1,
                                       learner=learner), dataset)
                for name, learner in (("dac", "td3"), ("dac_sac", "sac"))}}
    rows = []
    keys = jax.random.split(jax.random.key(0), seeds)
    for name, (module, config, data) in cases.items():
        if only and name not in only:
            continue
        agent = module.make_agent(config, env, params, dataset=data)
        start = time.perf_counter()

        def run(key, agent=agent, name=name):
            state, metrics = jax.lax.scan(lambda s, _: agent.update(s), agent.init(key), None,
                                          length=agent.num_updates)
            if "eval_return" in metrics:  # the loop's own evaluation (its action wrappers)
                return metrics["eval_return"][-1]
            return evaluate(jax.random.fold_in(key, 1), env, params,
                            lambda k, obs: agent.act(state, obs, k, True), 16, 201)

        returns = np.asarray(jax.jit(jax.vmap(run))(keys))
        seconds = time.perf_counter() - start
        scores = irl.normalized_score(returns, random_return, expert_return)
        rows.append({"algo": name, "seeds": seeds, "returns": returns.tolist(),
                     "scores": scores.tolist(), "expert_return": expert_return,
                     "random_return": random_return, "wall_s": round(seconds, 1),
                     "budget": ("2000 gradient steps" if name == "bc" else
                                f"{dac_steps if name.startswith('dac') else steps} env steps"),
                     "demonstrations": 40})
        print(rows[-1], flush=True)
    return rows


def ppo_imitation_config(steps: int) -> dict:
    """The learning benchmark's PPO Pendulum settings and the imitators' shared ones."""
    return {"total_timesteps": steps, "num_envs": 16, "num_steps": 128, "update_epochs": 10,
            "num_minibatches": 8, "normalize_obs": True, "normalize_reward": True,
            "learning_rate": 3e-4, "gamma": 0.99, "gae_lambda": 0.95, "demo_subsample": 20,
            "grad_penalty": 1.0}


def transfer(steps: int, seeds: int, sac_steps: int, mass: float) -> dict:
    """AIRL's ``g`` re-optimised by SAC on a pendulum of pole mass ``mass`` (module docstring)."""
    env, params = envs.make("Pendulum-v1")
    changed = params.replace(m=mass)
    dataset, _, _ = pendulum_data()
    keys = jax.random.split(jax.random.key(0), seeds)
    config = airl.Config(**ppo_imitation_config(steps))
    agent = airl.make_agent(config, env, params, dataset=dataset)
    start = time.perf_counter()

    def train_airl(key):
        state, _ = jax.lax.scan(lambda s, _: agent.update(s), agent.init(key), None,
                                length=agent.num_updates)
        policy_return = evaluate(jax.random.fold_in(key, 1), env, changed,
                                 lambda k, obs: agent.act(state, obs, k, True), 16, 201)
        return state, policy_return

    states, policy_returns = jax.jit(jax.vmap(train_airl))(keys)
    airl_seconds = time.perf_counter() - start
    sac_config = sac.Config(total_timesteps=sac_steps, log_frequency=sac_steps // 5,
                            eval_episodes=16, hidden_sizes=(64, 64), batch_size=128)

    def train_sac(key, airl_state, env_weight):
        """SAC on ``(1 − env_weight) g(s) + env_weight · r``: AIRL's reward (0) or the true
        one (1, the expert), so both compile as one program."""
        learned = airl.reward_transform(config, env, params, dataset, airl_state)

        def apply(state, traj, key):
            reward, state, metrics = learned.apply(state, traj, key)
            return (1 - env_weight) * reward + env_weight * traj.reward, state, metrics

        learner = sac.make_agent(sac_config, env, changed,
                                 reward_transform=RewardTransform(learned.init, apply))
        _, metrics = jax.lax.scan(lambda s, _: learner.update(s), learner.init(key), None,
                                  length=learner.num_updates)
        return metrics["eval_return"][-1]

    start = time.perf_counter()
    both = jax.tree.map(lambda x: jnp.concatenate([x, x]), (keys, states))
    returns = np.asarray(jax.jit(jax.vmap(train_sac))(
        *both, jnp.repeat(jnp.array([0.0, 1.0]), seeds)))
    transferred, experts = returns[:seeds], returns[seeds:]
    sac_seconds = time.perf_counter() - start
    space = env.action_space(params)
    random_return = float(jax.jit(lambda k: evaluate(
        k, env, changed, lambda key, obs: jax.random.uniform(
            key, (obs.shape[0], 1), minval=space.low, maxval=space.high), 16, 201))(
        jax.random.key(7)))
    expert_return = float(experts.mean())
    row = {"mass": mass, "seeds": seeds, "airl_steps": steps, "sac_steps": sac_steps,
           "transferred_returns": transferred.tolist(),
           "transferred_scores": irl.normalized_score(transferred, random_return,
                                                      expert_return).tolist(),
           "airl_policy_returns": np.asarray(policy_returns).tolist(),
           "airl_policy_scores": irl.normalized_score(np.asarray(policy_returns), random_return,
                                                      expert_return).tolist(),
           "expert_returns": experts.tolist(), "expert_return": expert_return,
           "random_return": random_return, "wall_s": {
               "airl": round(airl_seconds, 1),
               "sac_on_g_and_expert": round(sac_seconds, 1)}}
    print(row, flush=True)
    return row


def transfer_summary(row: dict) -> str:
    lines = ["| policy on the changed pendulum | return | normalised score (per seed) |",
             "| --- | --- | --- |"]
    for name, key in (("SAC on AIRL's g(s), from scratch", "transferred"),
                      ("AIRL's own PPO policy (no re-optimisation)", "airl_policy")):
        returns, scores = np.array(row[f"{key}_returns"]), np.array(row[f"{key}_scores"])
        lines.append(f"| {name} | {returns.mean():.1f} ± {returns.std():.1f} | "
                     f"{scores.mean():.1f} ± {scores.std():.1f} ("
                     + ", ".join(f"{x:.1f}" for x in scores) + ") |")
    lines.append(f"\nPole mass {row['mass']} (trained at 1.0); AIRL {row['airl_steps']} env "
                 f"steps, SAC {row['sac_steps']} env steps, {row['seeds']} seeds; expert (SAC "
                 f"on the true reward, same keys) {row['expert_return']:.1f}, random "
                 f"{row['random_return']:.1f}; wall s {row['wall_s']}.")
    return "\n".join(lines)


ACROBOT_PPO = {"num_envs": 16, "num_steps": 128, "update_epochs": 4, "num_minibatches": 4,
               "gamma": 0.99, "gae_lambda": 0.94, "normalize_obs": True}
"""PPO on Acrobot-v1 (rl-zoo's settings, shorter rollouts): the expert's and the imitators'."""


def acrobot(steps: int, seeds: int, expert_steps: int, only: list[str] | None) -> dict:
    """GAIL, AIRL and BC from 4 episodes of a PPO expert, every 20th step (module docstring)."""
    env, params = envs.make("Acrobot-v1")
    cache = RESULTS / f"irl_acrobot_demos_{expert_steps}.npz"
    if not cache.exists():  # the expert's 4 episodes, its and the random policy's returns
        greedy, _ = _acrobot_expert(env, params, expert_steps)
        arrays = jax.jit(lambda k: collect(k, env, params, [greedy], 1, 2000))(
            jax.random.key(0))
        done = np.flatnonzero(np.asarray(arrays["terminated"]) | np.asarray(arrays["truncated"]))
        end = int(done[3]) + 1  # the first 4 episodes

        def mean_return(policy):
            return float(jax.jit(lambda k: evaluate(k, env, params, policy, 16, 501))(
                jax.random.key(7)))

        np.savez(cache, **{k: np.asarray(v)[:end] for k, v in arrays.items()},
                 expert_return=mean_return(lambda k, obs: greedy(obs).mode()),
                 random_return=mean_return(
                     lambda k, obs: jax.random.randint(k, obs.shape[:1], 0, 3)))
    saved = np.load(cache)
    expert_return, random_return = float(saved["expert_return"]), float(saved["random_return"])
    dataset = Dataset(**{k: saved[k] for k in (
        "observations", "actions", "rewards", "next_observations", "terminated", "truncated",
        "log_probs")}, metadata={"env": "Acrobot-v1"})
    end = len(dataset.rewards)
    sparse = Dataset(**{k: getattr(dataset, k)[::20] for k in (
        "observations", "actions", "rewards", "next_observations", "terminated", "truncated",
        "log_probs")}, metadata=dataset.metadata)
    description = "greedy"
    imitation = {"total_timesteps": steps, **ACROBOT_PPO, "normalize_reward": True,
                 "demo_subsample": 20, "grad_penalty": 1.0}
    cases = {"bc": (bc, bc.Config(total_gradient_steps=2000, log_frequency=500,
                                  batch_size=len(sparse.rewards), eval_episodes=16,
                                  hidden_sizes=(64, 64)), sparse),
             "gail": (gail, gail.Config(**imitation), dataset),
             "gail_log_d": (gail, gail.Config(**imitation, reward_form="log_d"), dataset),
             "airl": (airl, airl.Config(**imitation), dataset)}
    keys = jax.random.split(jax.random.key(0), seeds)
    rows = []
    for name, (module, config, data) in cases.items():
        if only and name not in only:
            continue
        agent = module.make_agent(config, env, params, dataset=data)
        start = time.perf_counter()

        def run(key, agent=agent):
            state, metrics = jax.lax.scan(lambda s, _: agent.update(s), agent.init(key), None,
                                          length=agent.num_updates)
            if "eval_return" in metrics:
                return metrics["eval_return"][-1]
            return evaluate(jax.random.fold_in(key, 1), env, params,
                            lambda k, obs: agent.act(state, obs, k, True), 16, 501)

        returns = np.asarray(jax.jit(jax.vmap(run))(keys))
        rows.append({"algo": name, "seeds": seeds, "returns": returns.tolist(),
                     "scores": irl.normalized_score(returns, random_return,
                                                    expert_return).tolist(),
                     "budget": ("2000 gradient steps" if name == "bc" else f"{steps} env steps"),
                     "wall_s": round(time.perf_counter() - start, 1)})
        print(rows[-1], flush=True)
    return {"rows": rows, "expert_return": expert_return, "random_return": random_return,
            "expert": f"ppo, {expert_steps} env steps, {description}",
            "episode_steps": end,
            "demonstrations": len(sparse.rewards)}


def _acrobot_expert(env, params, steps: int):
    """PPO with ``ACROBOT_PPO`` trained for ``steps`` (seed 0): its greedy policy."""
    from jaxrl.agents import ppo

    config = ppo.Config(total_timesteps=steps, **ACROBOT_PPO)
    agent = ppo.make_agent(config, env, params)
    state, _ = jax.jit(ppo.make_train(config, env, params))(jax.random.key(100))

    def greedy(obs):
        action = agent.act(state, obs, jax.random.key(0), True)
        return distrax.Categorical(logits=jnp.log(jax.nn.one_hot(action, 3) + 1e-9))

    return greedy, "greedy"


def acrobot_summary(result: dict) -> str:
    lines = ["| algorithm | budget | seeds | return | normalised score (per seed) | wall s |",
             "| --- | --- | --- | --- | --- | --- |"]
    for row in result["rows"]:
        returns, scores = np.array(row["returns"]), np.array(row["scores"])
        lines.append(f"| {row['algo']} | {row['budget']} | {row['seeds']} | "
                     f"{returns.mean():.1f} ± {returns.std():.1f} | {scores.mean():.1f} ± "
                     f"{scores.std():.1f} (" + ", ".join(f"{x:.1f}" for x in scores)
                     + f") | {row['wall_s']} |")
    lines.append(f"\nExpert ({result['expert']}) {result['expert_return']:.1f}, random "
                 f"{result['random_return']:.1f} (16 episodes each); "
                 f"{result['demonstrations']} demonstration transitions (4 episodes of "
                 f"{result['episode_steps']} steps in all, every 20th).")
    return "\n".join(lines)


def pendulum_summary(rows: list[dict]) -> str:
    lines = ["| algorithm | budget | seeds | return | normalised score | wall s |",
             "| --- | --- | --- | --- | --- | --- |"]
    for row in rows:
        returns, scores = np.array(row["returns"]), np.array(row["scores"])
        lines.append(f"| {row['algo']} | {row['budget']} | {row['seeds']} | "
                     f"{returns.mean():.1f} ± {returns.std():.1f} | {scores.mean():.1f} ± "
                     f"{scores.std():.1f} | {row['wall_s']} |")
    row = rows[0]
    lines.append(f"\nExpert {row['expert_return']:.1f}, random {row['random_return']:.1f} "
                 "(16 episodes each); 40 demonstration transitions (4 episodes, every 20th).")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--steps", type=int, default=500)
    parser.add_argument("--pendulum-steps", type=int, default=200_000)
    parser.add_argument("--pendulum-seeds", type=int, default=2)
    parser.add_argument("--dac-steps", type=int, default=30_000)
    parser.add_argument("--only", nargs="*", default=None, help="algorithms of the Pendulum part")
    parser.add_argument("--skip-gridworld", action="store_true")
    parser.add_argument("--transfer-mass", type=float, default=0.0,
                        help="pole mass of the AIRL reward-transfer run (0: skip it)")
    parser.add_argument("--sac-steps", type=int, default=15_000)
    parser.add_argument("--acrobot-steps", type=int, default=0,
                        help="env steps of GAIL / AIRL on Acrobot-v1 (0: skip Acrobot)")
    parser.add_argument("--acrobot-expert-steps", type=int, default=500_000)
    args = parser.parse_args()
    RESULTS.mkdir(exist_ok=True)
    path = RESULTS / "irl_cpu.json"
    updates = {}
    if not args.skip_gridworld:
        rows, rewards = gridworld(args.seeds, args.steps)
        plot(rewards, FIGURE)
        updates["gridworld"] = rows
    acrobot_path = RESULTS / "irl_acrobot.json"
    if args.acrobot_steps > 0:
        result = acrobot(args.acrobot_steps, args.pendulum_seeds, args.acrobot_expert_steps,
                         args.only)
        if acrobot_path.exists():  # keep the rows of algorithms not rerun
            names = {row["algo"] for row in result["rows"]}
            result["rows"] = [row for row in json.loads(acrobot_path.read_text())["rows"]
                              if row["algo"] not in names] + result["rows"]
        acrobot_path.write_text(json.dumps(result, indent=1))
    if args.transfer_mass > 0:
        updates["transfer"] = transfer(args.pendulum_steps, args.pendulum_seeds, args.sac_steps,
                                       args.transfer_mass)
    elif args.pendulum_steps > 0 and args.acrobot_steps == 0:
        updates["pendulum"] = pendulum(args.pendulum_steps, args.pendulum_seeds,
                                       args.dac_steps, args.only)
    # Read the file only now: another run of this script may have written it meanwhile.
    results = json.loads(path.read_text()) if path.exists() else {}
    if "pendulum" in updates:
        rows = updates.pop("pendulum")
        kept = [r for r in results.get("pendulum", []) if r["algo"] not in {x["algo"]
                                                                          for x in rows}]
        results["pendulum"] = kept + rows
    results.update(updates)
    path.write_text(json.dumps(results, indent=1))
    text = "## MaxEnt IRL, Gridworld-v0 4x4 slippery\n\n" + summary(results["gridworld"])
    if "pendulum" in results:
        text += ("\n\n## Adversarial imitation vs BC, Pendulum-v1\n\n"
                 + pendulum_summary(results["pendulum"]))
    if "transfer" in results:
        text += ("\n\n## AIRL reward transfer, Pendulum-v1 with a changed pole mass\n\n"
                 + transfer_summary(results["transfer"]))
    if acrobot_path.exists():
        text += ("\n\n## GAIL / AIRL vs BC, Acrobot-v1 (discrete actions)\n\n"
                 + acrobot_summary(json.loads(acrobot_path.read_text())))
    (RESULTS / "irl_cpu.md").write_text(text + "\n")
    print(text)


if __name__ == "__main__":
    main()
