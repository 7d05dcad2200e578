"""Regret curves of the bandit agents: UCB1, Thompson sampling and ε-greedy on
``KArmedBandit-v0`` (issue 32; course notes §17.2).

Two tasks, every strategy on the same seeds and tasks:

- ``2-armed``: Bernoulli arms with means 0.25 and 0.75 (the env's default task, the one
  ``tests/test_exploration.py`` checks UCB1 on), drawn beside Auer et al.'s (2002, Theorem 1)
  bound on UCB1's expected regret ``8 Σ ln t / Δ + (1 + π²/3) Σ Δ``.
- ``10-armed``: Bernoulli arms with means ``U(0, 1)``, a fresh task per seed
  (``KArmedBandit.sample_task``), so the curves average over tasks as well as rewards.

Each strategy's cumulative expected regret ``Σ_t max μ − μ_{a_t}`` comes from
``jaxrl.bandits.regret_curve`` (the same strategies the ``ucb`` / ``thompson`` / ``egreedy``
agents run), vmapped over seeds in one jitted call per strategy and task. Writes the mean and
standard deviation over seeds at about 200 pulls (``pull``) to ``--out`` (JSON) and a two-panel
plot of every pull to ``--plot``.

    python benchmarks/bandits.py --seeds 64 --pulls 2000
"""

from __future__ import annotations

import argparse
import json
import math
import time
from pathlib import Path

import jax
import numpy as np

from jaxrl import bandits, envs

ROOT = Path(__file__).resolve().parent.parent


def strategies(num_arms: int, epsilon: float) -> dict[str, bandits.BanditStrategy]:
    """The three strategies of the bandit agents, by the names the plot shows."""
    return {"UCB1": bandits.ucb1(num_arms), "Thompson": bandits.thompson(num_arms),
            f"ε-greedy (ε = {epsilon:g})": bandits.epsilon_greedy(num_arms, epsilon)}


def regret_curves(num_arms: int, sample_tasks: bool, seeds: int, pulls: int,
                  epsilon: float) -> dict[str, dict]:
    """Per strategy, ``{"mean", "std"}`` of the cumulative regret over ``seeds`` (length
    ``pulls``) and the seconds the jitted call took; the task per seed is the env's default
    (``sample_tasks`` False) or a ``sample_task`` draw from the seed's key."""
    env, default = envs.make("KArmedBandit-v0", num_arms=num_arms)
    keys = jax.random.split(jax.random.key(0), seeds)
    out = {}
    for name, strategy in strategies(num_arms, epsilon).items():
        def run(key, strategy=strategy):
            task_key, run_key = jax.random.split(key)
            params = env.sample_task(task_key, default) if sample_tasks else default
            return bandits.regret_curve(run_key, strategy, env, params, pulls)

        started = time.perf_counter()
        curves = np.asarray(jax.jit(jax.vmap(run))(keys))
        out[name] = {"mean": curves.mean(0).tolist(), "std": curves.std(0).tolist(),
                     "final": [float(curves[:, -1].mean()), float(curves[:, -1].std())],
                     "seconds": time.perf_counter() - started}
    return out


def ucb1_bound(pulls: int, gaps: list[float]) -> list[float]:
    """Auer et al. (2002), Theorem 1, at every pull ``t``: ``8 Σ ln t / Δ + (1 + π²/3) Σ Δ``."""
    t = np.arange(1, pulls + 1)
    return (8 * np.log(t) * sum(1 / g for g in gaps)
            + (1 + math.pi ** 2 / 3) * sum(gaps)).tolist()


def thinned(results: dict, points: int = 200) -> dict:
    """``results`` with every curve at about ``points`` pulls (``"pull"``: their 1-based
    numbers, the last pull included) and 3 decimals, for a JSON file of a few tens of kB."""
    pulls = results["pulls"]
    index = sorted(set(np.linspace(0, pulls - 1, min(points, pulls)).round().astype(int)))
    out = {**results, "pull": [int(i) + 1 for i in index], "tasks": {}}
    for task, curves in results["tasks"].items():
        out["tasks"][task] = {**curves, "strategies": {
            name: {**curve, "mean": [round(curve["mean"][i], 3) for i in index],
                   "std": [round(curve["std"][i], 3) for i in index]}
            for name, curve in curves["strategies"].items()}}
        if "ucb1_bound" in curves:
            out["tasks"][task]["ucb1_bound"] = [round(curves["ucb1_bound"][i], 3) for i in index]
    return out


def plot(results: dict, path: Path) -> None:
    """One panel per task: mean cumulative regret ± one standard deviation over seeds."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(1, len(results["tasks"]), figsize=(10, 3.8))
    for axis, (task, curves) in zip(axes, results["tasks"].items(), strict=True):
        for name, curve in curves["strategies"].items():
            mean, std = np.asarray(curve["mean"]), np.asarray(curve["std"])
            t = np.arange(1, len(mean) + 1)
            axis.plot(t, mean, label=name)
            axis.fill_between(t, mean - std, mean + std, alpha=0.2)
        if "ucb1_bound" in curves:
            axis.plot(np.arange(1, len(curves["ucb1_bound"]) + 1), curves["ucb1_bound"], "k--",
                      label="UCB1 bound (Auer et al.)")
            axis.set_ylim(0, 2.5 * max(max(c["mean"]) for c in curves["strategies"].values()))
        axis.set_title(f"{task}: {curves['description']}")
        axis.set_xlabel("pulls")
        axis.set_ylabel("cumulative expected regret")
        axis.legend(fontsize=8)
    figure.suptitle(f"KArmedBandit-v0, mean ± std over {results['seeds']} seeds", fontsize=10)
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=110)
    plt.close(figure)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=64)
    parser.add_argument("--pulls", type=int, default=2000)
    parser.add_argument("--epsilon", type=float, default=0.1)
    parser.add_argument("--out", type=Path,
                        default=ROOT / "benchmarks" / "results" / "bandit_regret.json")
    parser.add_argument("--plot", type=Path, default=ROOT / "docs" / "images" / "bandit_regret.png")
    args = parser.parse_args(argv)
    if args.seeds < 1 or args.pulls < 2:
        parser.error("--seeds must be at least 1 and --pulls at least 2")

    results = {"seeds": args.seeds, "pulls": args.pulls, "epsilon": args.epsilon,
               "jax": jax.__version__, "tasks": {}}
    two = regret_curves(2, False, args.seeds, args.pulls, args.epsilon)
    results["tasks"]["2-armed"] = {"description": "Bernoulli means 0.25, 0.75",
                                   "strategies": two, "ucb1_bound": ucb1_bound(args.pulls, [0.5])}
    ten = regret_curves(10, True, args.seeds, args.pulls, args.epsilon)
    results["tasks"]["10-armed"] = {"description": "Bernoulli means U(0, 1), a task per seed",
                                    "strategies": ten}
    plot(results, args.plot)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    temporary = args.out.with_suffix(".tmp")
    temporary.write_text(json.dumps(thinned(results)) + "\n")
    temporary.replace(args.out)  # never a half-written file
    for task, curves in results["tasks"].items():
        for name, curve in curves["strategies"].items():
            mean, std = curve["final"]
            print(f"{task:9s} {name:20s} regret after {args.pulls} pulls: {mean:7.1f} ± {std:5.1f}")
        if "ucb1_bound" in curves:
            print(f"{task:9s} {'UCB1 bound':20s} {curves['ucb1_bound'][-1]:7.1f}")
    print(f"wrote {args.out} and {args.plot}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
