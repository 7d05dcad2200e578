"""Learning from demonstrations: env steps to a threshold with and without each technique.

PPO on ``--env`` from scratch, pre-trained on the scripted expert's demonstrations
(``pretrain_dataset``, behaviour cloning inside ``init``, then ``critic_warmup`` rollouts fitting
the critic), with the hybrid objective (``demo_dataset``, ``λ_k = demo_coef · demo_decay^k``),
and both. Each is one ``jit(vmap(train))`` over ``--seeds`` seeds (``split(key(0), seeds)``);
its greedy policy is evaluated on 8 episodes after every update (``eval_return``).

- ``MountainCar-v0``: the threshold is the flag reached (``eval_return > -200``, the time limit).
- ``Pendulum-v1``: the normalised score ``100 (R - R_random) / (R_expert - R_random)`` with the
  reference returns ``jaxrl dataset`` measured (16 episodes each), threshold ``--threshold``.

The demonstrations are ``--demo-steps`` transitions of the scripted expert
(``envs.experts``, ε-greedy / Gaussian noise as ``jaxrl dataset --policy expert
--expert-algo scripted``); they cost no env steps of the learner. ``steps`` counts the learner's
env steps, the critic warm-up's included. Also reported: the score at the first update and the
lowest score over the first 10 % of updates (does finetuning drop below the pretrained policy?).

``--family replay_pretrain``: pre-train & finetune of the replay agents (``pretrain_dataset``:
behaviour cloning inside ``init``, then ``critic_warmup`` gradient steps): DQN on
``MountainCar-v0``, TD3 on ``Pendulum-v1``, each against itself from scratch; rows keyed
``"<env> <algo> pretrain"``.

Every run also records the greedy policy's score right after ``init`` (``initial_score``: the
pretrained policy before any finetuning update), the largest drop below it over the first 10 %
of updates (``max_drop_first_10pct``) and its per-update curve (``curve``); ``--plot`` draws
the curves to ``docs/images/demos_curves.png``.

``--family offline_online`` (``Pendulum-v1``): IQL (or ``--offline-algo awac``) offline →
online finetuning. One offline run (``--offline-steps`` gradient steps, seed 0) on the
demonstrations, then ``--steps`` env steps of ``--init-from`` that run (its networks copied, the
dataset kept as half of every batch), ``--seeds`` online seeds; row
``"<env> <algo> offline → online"``: the score at update 1 is the first
online evaluation (after ``log_frequency`` steps), the offline run's final score is recorded too.

``--family hybrid``: PPO from scratch against the hybrid objective alone at each
``--hybrid λ0,DECAY`` or ``λ0,DECAY,STEPS,LR`` (with ``demo_gradient_steps`` STEPS at
``demo_learning_rate`` LR: supervised steps of their own after every update; rows keyed
``"<env> hybrid <steps> steps"``; ``--skip-scratch``: the hybrid settings only). Also
recorded: the imitation term ``demo_nll`` at the first and last update.

``--family replay``: demonstrations in the replay buffer instead (a partition never
overwritten, ``demo_ratio`` of every batch): DQN against DQfD (the large-margin loss) on
``MountainCar-v0``, SAC against SAC + demonstrations (the hybrid actor objective) on
``Pendulum-v1``; rows keyed ``"<env> <algo>"``. ``steps`` counts the learner's env steps, its
random warm-up included.

Writes ``benchmarks/results/demos_cpu.json`` (merged per env) and ``demos_cpu.md``::

    python benchmarks/demos.py --env MountainCar-v0 --steps 100000 --seeds 2
    python benchmarks/demos.py --env Pendulum-v1 --steps 200000 --seeds 2
    python benchmarks/demos.py --family replay --env MountainCar-v0 --steps 30000 --seeds 4
    python benchmarks/demos.py --family replay --env Pendulum-v1 --steps 6000 --seeds 4
    python benchmarks/demos.py --family offline_online --env Pendulum-v1 --steps 3000 --seeds 2
    python benchmarks/demos.py --family replay_pretrain --env Pendulum-v1 --steps 6000 --seeds 4
    python benchmarks/demos.py --plot
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from functools import partial
from pathlib import Path

import jax
import numpy as np

from jaxrl import datasets, envs, runner
from jaxrl.agents import awac, dqn, iql, ppo, sac, td3
from jaxrl.datasets.generation import generate
from jaxrl.evaluation import evaluate

RESULTS = Path(__file__).parent / "results"
PLOT = Path(__file__).parents[1] / "docs" / "images" / "demos_curves.png"

CONFIGS = {
    "MountainCar-v0": ppo.Config(num_envs=16, num_steps=64, update_epochs=4, num_minibatches=4,
                                 hidden_sizes=(64, 64), learning_rate=3e-4, gamma=0.99,
                                 gae_lambda=0.95, eval_episodes=8),
    "Pendulum-v1": ppo.Config(num_envs=16, num_steps=128, update_epochs=10, num_minibatches=8,
                              normalize_obs=True, normalize_reward=True, learning_rate=3e-4,
                              gamma=0.99, gae_lambda=0.95, eval_episodes=8),
}


# Networks of 64-64 and SAC batches of 128: sized for a shared 2-core CPU.
REPLAY_CONFIGS = {
    "MountainCar-v0": (dqn, dqn.Config(hidden_sizes=(64, 64), learning_starts=1_000,
                                       log_frequency=2_048, eval_episodes=8)),
    "Pendulum-v1": (sac, sac.Config(hidden_sizes=(64, 64), batch_size=128, learning_starts=500,
                                    log_frequency=500, eval_episodes=8)),
}


# Pre-train & finetune of the replay agents: behaviour cloning inside init, then a critic
# warm-up (DQN: evaluation of the initial greedy policy; TD3: the critics alone).
PRETRAIN_REPLAY_CONFIGS = {
    "MountainCar-v0": (dqn, REPLAY_CONFIGS["MountainCar-v0"][1]),
    "Pendulum-v1": (td3, td3.Config(hidden_sizes=(64, 64), batch_size=128, learning_starts=500,
                                    log_frequency=500, eval_episodes=8)),
}


def replay_pretrain_techniques(env_id: str, demos: str) -> dict[str, dict]:
    """The replay agent from scratch and pre-trained (2,000 BC steps, 1,000 warm-up steps; DQN
    explores at ε = 0.1 → 0.04 instead of 1 → 0.04, not to discard its pretrained policy)."""
    pretrain = {"pretrain_dataset": demos, "pretrain_steps": 2000, "critic_warmup": 1000}
    if env_id == "MountainCar-v0":
        return {"dqn": {}, "dqn pretrain": {**pretrain, "start_e": 0.1},
                "dqn pretrain warm-up 4000": {**pretrain, "start_e": 0.1,
                                              "critic_warmup": 4000},
                "dqn pretrain + dqfd": {**pretrain, "start_e": 0.1, "demo_dataset": demos,
                                        "demo_ratio": 0.25, "demo_margin": 0.8}}
    return {"td3": {}, "td3 pretrain": pretrain,
            "td3 pretrain warm-up 3000": {**pretrain, "critic_warmup": 3000}}


# The offline run and its online continuation share the networks and the batch size.
OFFLINE_ONLINE = {
    name: (module, module.Config(hidden_sizes=(64, 64), batch_size=128, eval_episodes=8,
                                 log_frequency=500, buffer_size=20_000, offline_ratio=0.5))
    for name, module in (("iql", iql), ("awac", awac))}


def offline_online_runs(env_id: str, demos: str, directory: Path, offline_steps: int,
                        result: dict, score, algo: str = "iql") -> dict:
    """The offline ``algo`` run (seed 0, in ``directory``) and the online config continuing
    it."""
    module, base = OFFLINE_ONLINE[algo]
    out = directory / f"{algo}-offline"
    start = time.perf_counter()
    offline = runner.run(algo, env_id, base.replace(
        total_gradient_steps=offline_steps, log_frequency=offline_steps), seeds=1,
        dataset=demos, out=out, progress=False)
    returns = np.asarray(jax.device_get(offline.metrics["eval_return"]))
    result["offline"] = {"gradient_steps": offline_steps,
                         "final_score": rounded(score(returns[:, -1])),
                         "wall_s": round(time.perf_counter() - start, 1)}
    print(env_id, algo, "offline", result["offline"], flush=True)
    return {f"{algo} offline → online": (module, base, {"init_from": str(out)})}


def replay_techniques(env_id: str, demos: str) -> dict[str, dict]:
    """Plain agent and with the demonstrations in its replay buffer (a quarter of each batch)."""
    if env_id == "MountainCar-v0":
        return {"dqn": {}, "dqfd": {"demo_dataset": demos, "demo_ratio": 0.25,
                                     "demo_coef": 1.0, "demo_margin": 0.8}}
    return {"sac": {}, "sac+demos": {"demo_dataset": demos, "demo_ratio": 0.25,
                                     "demo_coef": 1.0, "demo_decay": 0.9}}


def techniques(demos: str) -> dict[str, dict]:
    pretrain = {"pretrain_dataset": demos, "pretrain_steps": 2000, "critic_warmup": 4}
    hybrid = {"demo_dataset": demos, "demo_coef": 0.1, "demo_decay": 0.98}
    return {"scratch": {}, "pretrain": pretrain, "hybrid": hybrid,
            "pretrain+hybrid": {**pretrain, **hybrid}}


def hybrid_settings(demos: str, settings: list[str], scratch: bool = True) -> dict[str, dict]:
    """Scratch (unless not ``scratch``) and the hybrid objective alone at each ``λ0,decay`` of
    ``settings``."""
    runs = {"scratch": {}} if scratch else {}
    for setting in settings:
        coef, decay, *extra = map(float, setting.split(","))
        name, fields = f"hybrid λ0={coef:g} decay={decay:g}", {}
        if extra:  # demonstration steps of their own: STEPS per update at step size LR
            steps, learning_rate = int(extra[0]), extra[1]
            name += f" +{steps} demo steps lr={learning_rate:g}"
            fields = {"demo_gradient_steps": steps, "demo_learning_rate": learning_rate}
        runs[name] = {"demo_dataset": demos, "demo_coef": coef, "demo_decay": decay, **fields}
    return runs


def rounded(values: np.ndarray) -> list[float]:
    return [round(float(value), 1) for value in values]


def first_reaching(steps: np.ndarray, scores: np.ndarray, threshold: float) -> int | None:
    reached = np.flatnonzero(scores >= threshold)
    return int(steps[reached[0]]) if reached.size else None


def start_and_train(agent, env, env_params, episodes: int, key: jax.Array):
    """The greedy policy's mean return right after ``init`` (the pretrained policy, before any
    finetuning update; ``episodes`` episodes) and ``train(key)``'s metrics (the same ``init``)."""
    state = agent.init(key)
    initial = evaluate(jax.random.fold_in(key, 1), env, env_params,
                       lambda k, obs: agent.act(state, obs, k, True), episodes,
                       int(env_params.max_steps_in_episode))
    _, metrics = jax.lax.scan(lambda s, _: agent.update(s), state, None,
                              length=agent.num_updates)
    return initial, metrics


def run_env(env_id: str, total_steps: int, seeds: int, demo_steps: int,
            threshold: float, family: str = "ppo", offline_steps: int = 5_000,
            hybrid: list[str] | None = None, offline_algo: str = "iql",
            scratch: bool = True, only: list[str] | None = None) -> dict:
    env, env_params = envs.make(env_id)
    demonstrations = generate(env_id, "expert", demo_steps, expert_algo="scripted")
    reference = demonstrations.metadata["reference_returns"]
    directory = Path(tempfile.mkdtemp(prefix="jaxrl-demos-"))
    demo_file = str(datasets.save(directory / f"{env_id}.npz", demonstrations))
    if env_id == "MountainCar-v0":
        def score(returns):
            return returns

        threshold, unit = -199.99, "eval_return (> -200: flag reached)"
    else:
        def score(returns):
            return 100 * (returns - reference["random"]) / (reference["expert"]
                                                             - reference["random"])

        unit = "normalised score"
    result = {"env": env_id, "steps": total_steps, "seeds": seeds, "demo_steps": demo_steps,
              "reference_returns": reference, "threshold": threshold, "score": unit, "runs": {}}
    make_kwargs = {}
    if family == "offline_online":
        runs = offline_online_runs(env_id, demo_file, directory, offline_steps, result, score,
                                   offline_algo)
        make_kwargs = {"dataset": datasets.load(demo_file)}
    elif family == "replay":
        module, base = REPLAY_CONFIGS[env_id]
        runs = {name: (module, base, fields)
                for name, fields in replay_techniques(env_id, demo_file).items()}
    elif family == "replay_pretrain":
        module, base = PRETRAIN_REPLAY_CONFIGS[env_id]
        runs = {name: (module, base, fields)
                for name, fields in replay_pretrain_techniques(env_id, demo_file).items()}
    else:
        chosen = (hybrid_settings(demo_file, hybrid, scratch) if family == "hybrid"
                  else techniques(demo_file))
        runs = {name: (ppo, CONFIGS[env_id], fields) for name, fields in chosen.items()}
    if only:
        runs = {name: run for name, run in runs.items() if name in only}
    for name, (module, base, fields) in runs.items():
        config = base.replace(total_timesteps=total_steps, **fields)
        agent = module.make_agent(config, env, env_params, **make_kwargs)
        start = time.perf_counter()
        initial, metrics = jax.jit(jax.vmap(partial(start_and_train, agent, env, env_params,
                                                    config.eval_episodes)))(
            jax.random.split(jax.random.key(0), seeds))
        metrics = jax.device_get(metrics)
        seconds = time.perf_counter() - start
        scores = score(np.asarray(metrics["eval_return"]))
        initial = score(np.asarray(initial))
        steps = np.asarray(metrics["step"])
        early = max(1, scores.shape[1] // 10)
        result["runs"][name] = {
            "steps_to_threshold": [first_reaching(steps[i], scores[i], threshold)
                                   for i in range(seeds)],
            "initial_score": rounded(initial),
            "first_score": rounded(scores[:, 0]),
            "min_first_10pct": rounded(scores[:, :early].min(1)),
            "max_drop_first_10pct": rounded(initial - scores[:, :early].min(1)),
            "final_score": rounded(scores[:, -1]),
            "seeds": seeds,
            "wall_s": round(seconds, 1),
            "curve": {"step": steps[0].tolist(),
                      "score": [rounded(row) for row in scores]}}
        if "demo_nll" in metrics:  # the imitation term, first and last update (seed mean)
            nll = np.asarray(metrics["demo_nll"]).reshape(seeds, steps.shape[1], -1).mean((0, 2))
            result["runs"][name]["demo_nll_first_last"] = rounded(nll[[0, -1]])
        print(env_id, name, result["runs"][name], flush=True)
    return result


def markdown(results: dict) -> str:
    lines = ["| env | technique | env steps to threshold (per seed) | score before update 1 | "
             "score at update 1 | min over first 10 % | final score | wall s |",
             "| --- | --- | --- | --- | --- | --- | --- | --- |"]
    for env_id, result in results.items():
        for name, run in result["runs"].items():
            steps = ", ".join("–" if s is None else f"{s:,}" for s in run["steps_to_threshold"])
            lines.append(f"| {env_id} | {name} | {steps} | "
                         f"{', '.join(map(str, run.get('initial_score', ['–'])))} | "
                         f"{', '.join(map(str, run['first_score']))} | "
                         f"{', '.join(map(str, run['min_first_10pct']))} | "
                         f"{', '.join(map(str, run['final_score']))} | {run['wall_s']} |")
    return "\n".join(lines) + "\n"


def plot(results: dict) -> None:
    """Score against env steps (seed mean, min–max band) of every stored run with curves, one
    panel per entry, the threshold dashed; written to ``PLOT``."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    entries = {name: result for name, result in results.items()
               if any("curve" in run for run in result["runs"].values())}
    figure, axes = plt.subplots(1, len(entries), figsize=(5 * len(entries), 3.6), squeeze=False)
    for axis, (name, result) in zip(axes[0], entries.items(), strict=True):
        for technique, run in result["runs"].items():
            if "curve" not in run:
                continue
            steps = np.asarray(run["curve"]["step"])
            scores = np.asarray(run["curve"]["score"])
            line, = axis.plot(steps, scores.mean(0), label=f"{technique} ({len(scores)} seeds)")
            axis.fill_between(steps, scores.min(0), scores.max(0), alpha=0.2,
                              color=line.get_color())
        axis.axhline(result["threshold"], color="grey", linestyle="--", linewidth=1)
        axis.set(title=f"{name} ppo" if name in CONFIGS else name, xlabel="env steps",
                 ylabel=result["score"].split(" (")[0])
        axis.legend(fontsize=7)
    figure.tight_layout()
    PLOT.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(PLOT, dpi=110)
    print("wrote", PLOT)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--env", choices=sorted(CONFIGS), required=True)
    parser.add_argument("--family", choices=("ppo", "hybrid", "replay", "replay_pretrain",
                                             "offline_online"),
                        default="ppo",
                        help="ppo: pre-train / hybrid; replay: DQfD (MountainCar) or SAC + "
                             "demonstrations (Pendulum); replay_pretrain: DQN (MountainCar) "
                             "or TD3 (Pendulum) pre-trained; offline_online: IQL offline → "
                             "online (Pendulum)")
    parser.add_argument("--hybrid", action="append", default=[], metavar="λ0,DECAY[,STEPS,LR]",
                        help="hybrid family: a demo_coef,demo_decay setting, optionally with "
                             "demo_gradient_steps,demo_learning_rate (repeatable)")
    parser.add_argument("--skip-scratch", action="store_true",
                        help="hybrid family: the hybrid settings only")
    parser.add_argument("--offline-steps", type=int, default=5_000,
                        help="gradient steps of the offline run (offline_online)")
    parser.add_argument("--offline-algo", choices=sorted(OFFLINE_ONLINE), default="iql",
                        help="offline_online: the algorithm run offline, then online")
    parser.add_argument("--steps", type=int, default=100_000)
    parser.add_argument("--seeds", type=int, default=2)
    parser.add_argument("--demo-steps", type=int, default=10_000)
    parser.add_argument("--threshold", type=float, default=80.0,
                        help="normalised-score threshold (Pendulum-v1)")
    parser.add_argument("--only", action="append", default=[], metavar="NAME",
                        help="run only this technique (repeatable; rows merged into the "
                             "stored entry)")
    parser.add_argument("--plot", action="store_true",
                        help="only draw the stored curves to " + str(PLOT))
    args = parser.parse_args()
    RESULTS.mkdir(exist_ok=True)
    path = RESULTS / "demos_cpu.json"
    if args.plot:
        plot(json.loads(path.read_text()))
        return
    name = args.env
    if args.family == "replay":
        name = f"{args.env} {REPLAY_CONFIGS[args.env][0].__name__.rsplit('.', 1)[-1]}"
    elif args.family == "replay_pretrain":
        algo = PRETRAIN_REPLAY_CONFIGS[args.env][0].__name__.rsplit('.', 1)[-1]
        name = f"{args.env} {algo} pretrain"
    elif args.family == "offline_online":
        name = f"{args.env} {args.offline_algo} offline → online"
    elif args.family == "hybrid":
        name = f"{args.env} hybrid {args.steps:,} steps"
    result = run_env(args.env, args.steps, args.seeds, args.demo_steps, args.threshold,
                     args.family, args.offline_steps, args.hybrid,
                     args.offline_algo, not args.skip_scratch, args.only)
    # Merged when written: another run of this script may have added its rows meanwhile (and
    # runs of one entry, e.g. hybrid runs of one length or --only, add their rows to it).
    results = json.loads(path.read_text()) if path.exists() else {}
    if name in results:
        result["runs"] = {**results[name]["runs"], **result["runs"]}
    results[name] = result
    path.write_text(json.dumps(results, indent=2) + "\n")
    (RESULTS / "demos_cpu.md").write_text(markdown(results))
    print(markdown(results))


if __name__ == "__main__":
    main()
