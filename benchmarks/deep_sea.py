"""DeepSea: episodes to solve against the grid size, scored as bsuite's ``deep_sea`` analysis.

bsuite's protocol (``bsuite/experiments/deep_sea/analysis.py``): an episode is *bad* when the
agent leaves the optimal (diagonal) path; a run *solves* size ``N`` at the first episode where
the running fraction of bad episodes ``total_bad_episodes / episode`` drops below 0.9; the score
of a size is 1 when it is solved within ``2^N + 100`` episodes (beating dithering). bsuite
runs 10k episodes per size; here each size gets ``--episodes`` episodes (CPU budget), read at the
end of every logged update (``--log-episodes`` episodes apart: the episode count is that
coarse). Each seed draws its own action mapping (env params vmapped with the keys).

Agents: ``dqn`` (ε from 1 to 0.05 over the first 10 % of the run), ``count_dqn`` (the same with
``bonus=count``, MBIE-EB 1/√N), ``bootstrapped_dqn`` (10 heads, prior scale 3), ``ppo`` and
``rnd_ppo`` (PPO with ``bonus=rnd``), ``rnd_ppo_heads`` (the same with ``intrinsic_head``: a
second value head, γ_I = 0.99, non-episodic intrinsic returns), ``rnd_ppo_paper`` (the same with
the RND paper's discounts γ_E = 0.999, γ_I = 0.99 and its advantage weights 2 A_E + A_I, i.e.
β = 0.5; run it longer with ``--episodes``). Each (agent, size) is one
compiled call with the seeds vmapped; results go to ``benchmarks/results/deep_sea.json``
(resumable: finished pairs are skipped) and ``deep_sea.png``::

    python benchmarks/deep_sea.py --sizes 6 10 14 20 --seeds 3 --episodes 800
    python benchmarks/deep_sea.py --agents rnd_ppo_paper --sizes 6 10 14 20 --episodes 2000
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import jax
import numpy as np

from jaxrl import envs
from jaxrl.agents import bootstrapped_dqn, dqn, ppo
from jaxrl.envs.deep_sea import episode_counts
from jaxrl.training.agent import as_typed_key

RESULTS = Path(__file__).parent / "results"
AGENTS = ("bootstrapped_dqn", "count_dqn", "dqn", "rnd_ppo", "ppo", "rnd_ppo_heads",
          "rnd_ppo_paper")


def configure(agent: str, size: int, episodes: int, log_episodes: int):
    """``(module, config)`` of ``agent`` for a run of ``episodes`` episodes of ``size`` steps."""
    steps = size * episodes
    replay = dict(total_timesteps=steps + 4 * size, learning_starts=4 * size,
                  buffer_size=steps + 4 * size, log_frequency=size * log_episodes,
                  eval_episodes=0, hidden_sizes=(32,), n_step=1, batch_size=64,
                  train_frequency=size, updates_per_step=size, learning_rate=1e-3,
                  anneal_lr=False, tau=1.0, target_network_frequency=4)
    dithering = dict(start_e=1.0, end_e=0.05, exploration_fraction=0.1)
    on_policy = dict(total_timesteps=steps, num_envs=1, num_steps=size * log_episodes,
                     num_minibatches=1, update_epochs=4, hidden_sizes=(32,),
                     learning_rate=1e-3, ent_coef=0.01, anneal_lr=False)
    if agent == "bootstrapped_dqn":
        return bootstrapped_dqn, bootstrapped_dqn.Config(**replay, num_heads=10,
                                                         prior_scale=3.0, mask_prob=0.5)
    if agent == "dqn":
        return dqn, dqn.Config(**replay, **dithering)
    if agent == "count_dqn":
        return dqn, dqn.Config(**replay, **dithering, bonus="count", bonus_scale=0.1)
    if agent == "ppo":
        return ppo, ppo.Config(**on_policy)
    if agent == "rnd_ppo":
        return ppo, ppo.Config(**on_policy, bonus="rnd", bonus_scale=0.1)
    if agent == "rnd_ppo_heads":
        return ppo, ppo.Config(**on_policy, bonus="rnd", bonus_scale=0.1, intrinsic_head=True)
    if agent == "rnd_ppo_paper":
        return ppo, ppo.Config(**on_policy, bonus="rnd", bonus_scale=0.5, intrinsic_head=True,
                               gamma=0.999, intrinsic_gamma=0.99)
    raise ValueError(f"unknown agent {agent!r}; choose from {', '.join(AGENTS)}")


def run(agent: str, size: int, seeds: int, episodes: int, log_episodes: int) -> dict:
    """One compiled call: ``seeds`` runs, each on its own action mapping."""
    module, config = configure(agent, size, episodes, log_episodes)
    env, params = envs.make("DeepSea-v0", size=size)
    keys = jax.random.split(jax.random.key(0), seeds)
    tasks = jax.vmap(env.sample_task, (0, None))(jax.random.split(jax.random.key(1), seeds),
                                                 params)

    def train(key, task):
        built = module.make_agent(config, env, task)

        def step(state, _):
            state, _ = built.update(state)
            return state, episode_counts(state)

        return jax.lax.scan(step, built.init(as_typed_key(key)), None,
                            length=built.num_updates)[1]

    start = time.perf_counter()
    counts = jax.block_until_ready(jax.jit(jax.vmap(train))(keys, tasks))
    seconds = time.perf_counter() - start
    finished, bad = (np.asarray(c) for c in counts)  # [seeds, updates]
    fraction = np.where(finished > 0, bad / np.maximum(finished, 1), 1.0)
    below = fraction < 0.9
    solved = below.any(1)
    first = np.where(solved, finished[np.arange(seeds), below.argmax(1)], finished[:, -1])
    return {"agent": agent, "size": size, "seeds": seeds, "episodes": int(finished[0, -1]),
            "solved": solved.tolist(), "episodes_to_solve": first.tolist(),
            "final_bad_fraction": fraction[:, -1].round(3).tolist(),
            "beats_dithering": (solved & (first < 2.0 ** size + 100)).tolist(),
            "seconds": round(seconds, 1), "config": {k: v for k, v in vars(config).items()
                                                     if isinstance(v, int | float | str)}}


def plot(results: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4))
    for index, agent in enumerate(AGENTS):
        rows = sorted((r for r in results if r["agent"] == agent), key=lambda r: r["size"])
        for row in rows:
            offset = (index - 2) * 0.15
            for solved, first in zip(row["solved"], row["episodes_to_solve"], strict=True):
                ax.scatter(row["size"] + offset, first, color=f"C{index}",
                           marker="o" if solved else "x", s=18,
                           label=agent if row is rows[0] and first == row[
                               "episodes_to_solve"][0] else None)
    sizes = np.arange(4, 21)
    ax.plot(sizes, 2.0 ** sizes, "k--", alpha=0.4, label="2^N (dithering)")
    ax.set_yscale("log")
    ax.set_xlabel("DeepSea size N")
    ax.set_ylabel("episodes until < 90% bad episodes (x: unsolved)")
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=120)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[6, 10, 14, 20])
    parser.add_argument("--agents", nargs="+", default=list(AGENTS), choices=AGENTS)
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--episodes", type=int, default=800)
    parser.add_argument("--log-episodes", type=int, default=10)
    parser.add_argument("--out", default=str(RESULTS / "deep_sea.json"))
    args = parser.parse_args()
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    results = json.loads(out.read_text()) if out.exists() else []
    for size in args.sizes:
        for agent in args.agents:
            if any(r["agent"] == agent and r["size"] == size for r in results):
                continue
            row = run(agent, size, args.seeds, args.episodes, args.log_episodes)
            results.append(row)
            out.write_text(json.dumps(results, indent=1))
            print(f"N={size:3d} {agent:17s} solved {sum(row['solved'])}/{row['seeds']} "
                  f"episodes {row['episodes_to_solve']} ({row['seconds']} s)", flush=True)
    plot(results, out.with_suffix(".png"))


if __name__ == "__main__":
    main()
