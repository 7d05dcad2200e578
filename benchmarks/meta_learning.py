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

Other experiments (``--experiment``), each writing ``meta_cpu_<experiment>_<env>.json / .md``:

- ``distill``: ``agents.distill`` on ``--tasks`` tasks (teachers learn for the first two thirds
  of ``--updates``): each task's teacher against the student, on fresh episodes of each task;
- ``dnc``: ``agents.dnc`` with 4 contexts against one policy trained on all initial states
  (``num_contexts=1``), the same env steps: the global and local returns; ``--starts``:
  ``Pendulum-v1`` whose contexts are regions of the initial angle (``meta.PendulumStarts``);
- ``finetune`` (forward transfer, course notes §22): multi-task PPO with the task hidden
  (domain randomisation) pretrained for ``--updates`` PPO updates on the family, then finetuned
  for half as many (all its weights; or "policy only": its policy mean, with a fresh critic
  and action std) on a held-out target task (``TARGETS``: ``PointNav-v0``
  goal (0.45, -0.45); ``Pendulum-v1`` m = l = 1.6, outside the source range) against PPO from
  scratch there: env steps until the training return reaches ``--threshold``.
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
from jaxrl.agents import distill, dnc, maml, multitask
from jaxrl.evaluation import evaluate
from jaxrl.training import meta
from jaxrl.training.agent import policy_fn

RESULTS = Path(__file__).parent / "results"
HELD_OUT = 64
STEPS = 3


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--experiment", default="adapt",
                        choices=("adapt", "distill", "dnc", "finetune"))
    parser.add_argument("--env", default="PointNav-v0")
    parser.add_argument("--updates", type=int, default=40)
    parser.add_argument("--tasks", type=int, default=20)
    parser.add_argument("--horizon", type=int, default=20)
    parser.add_argument("--seeds", type=int, default=2)
    parser.add_argument("--threshold", type=float, default=-400.0)
    parser.add_argument("--variants", default=",".join(meta.VARIANTS),
                        help="adapt: the meta-learners to train, comma-separated")
    parser.add_argument("--skip-multitask", action="store_true",
                        help="adapt: leave out the multi-task PPO baseline")
    parser.add_argument("--suffix", default="", help="appended to the result files' name")
    parser.add_argument("--starts", action="store_true",
                        help="dnc on Pendulum-v1: contexts are initial-angle regions "
                             "(training.meta.PendulumStarts) instead of task params")
    parser.add_argument("--inner-lr", type=float, default=0.01, help="adapt: inner step size α")
    parser.add_argument("--learning-rate", type=float, default=3e-3,
                        help="adapt: outer Adam step size β")
    parser.add_argument("--inner-steps", type=int, default=1,
                        help="adapt: inner steps while meta-training")
    parser.add_argument("--num-envs", type=int, default=10,
                        help="adapt: episodes per task per inner step")
    args = parser.parse_args()
    {"adapt": adaptation, "distill": distillation, "dnc": divide_and_conquer,
     "finetune": finetune}[args.experiment](args)


def adaptation(args: argparse.Namespace) -> None:
    """The adaptation curves (module docstring)."""
    env, params = envs.make(args.env, max_steps_in_episode=args.horizon)
    base = maml.Config(meta_batch_size=args.tasks, num_envs=args.num_envs, horizon=args.horizon,
                       learning_rate=args.learning_rate, inner_lr=args.inner_lr,
                       inner_steps=args.inner_steps, hidden_sizes=(32, 32))
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
              "held_out_tasks": HELD_OUT, "inner_lr": base.inner_lr,
              "learning_rate": base.learning_rate, "inner_steps": base.inner_steps,
              "num_envs": base.num_envs, "curves": {},
              "seconds": {}}
    for variant in args.variants.split(","):
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

    if not args.skip_multitask:
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
    if args.variants != ",".join(meta.VARIANTS) or args.skip_multitask:
        name += f"_{args.variants.replace(',', '_')}_{args.updates}"
    name += args.suffix
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


def _write(name: str, result: dict, rows: list[str]) -> None:
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / f"{name}.json").write_text(json.dumps(result, indent=1))
    (RESULTS / f"{name}.md").write_text("\n".join(rows) + "\n")
    print("\n".join(rows), flush=True)


def _cell(values) -> str:
    values = np.asarray(values, np.float64)
    return f"{np.nanmean(values):.2f} ± {np.nanstd(values):.2f}"


def distillation(args: argparse.Namespace) -> None:
    """Teachers against the distilled student, per task (module docstring)."""
    env, params = envs.make(args.env, max_steps_in_episode=args.horizon)
    config = distill.Config(num_tasks=args.tasks, num_envs=10, horizon=args.horizon,
                            teacher_updates=2 * args.updates // 3)
    config = config.replace(total_timesteps=config.steps_per_update * args.updates)
    teacher = meta.make_policy(env, params, config.hidden_sizes, config.activation)
    student = meta.make_policy(meta.TaskEnv(env, None, True), params,
                               config.student_hidden_sizes, config.activation)
    start = time.perf_counter()
    states, metrics = jax.jit(jax.vmap(distill.make_train(config, env, params)))(
        jax.random.split(jax.random.key(0), args.seeds))
    jax.block_until_ready(metrics)
    seconds = time.perf_counter() - start

    @jax.jit
    def scores(state, key):
        teacher_key, student_key = jax.random.split(key)
        student_params = jax.tree.map(lambda x: jnp.broadcast_to(x, (args.tasks, *x.shape)),
                                      state.student_params)
        return (meta.sample_episodes(teacher_key, teacher, state.teacher_params, env,
                                     state.tasks, 50, args.horizon).returns.mean(-1),
                meta.sample_episodes(student_key, student, student_params, env, state.tasks,
                                     50, args.horizon, task_in_obs=True).returns.mean(-1))

    per_seed = [scores(jax.tree.map(lambda x, i=i: x[i], states), jax.random.key(7))
                for i in range(args.seeds)]
    teachers = np.stack([np.asarray(t) for t, _ in per_seed])
    students = np.stack([np.asarray(s) for _, s in per_seed])
    kl = np.asarray(metrics["distill_kl"])
    result = {"env": args.env, "horizon": args.horizon, "tasks": args.tasks,
              "updates": args.updates, "teacher_updates": config.teacher_updates,
              "seeds": args.seeds, "env_steps": config.total_timesteps, "seconds": seconds,
              "teacher_scores": teachers.tolist(), "student_scores": students.tolist(),
              "distill_kl": kl.tolist(),
              "teacher_return": np.asarray(metrics["teacher_return"]).tolist(),
              "student_return": np.asarray(metrics["student_return"]).tolist()}
    frozen = config.teacher_updates
    rows = [f"{args.env}, horizon {args.horizon}: {args.tasks} tasks, teachers trained for "
            f"{frozen} of {args.updates} updates ({config.total_timesteps:,} teacher env steps),"
            f" {args.seeds} seeds, {seconds:.0f} s; mean return of 50 fresh episodes per task "
            "(mean ± std over seeds)", "",
            "| task | teacher | student |", "| --- | --- | --- |"]
    rows += [f"| {i} | {_cell(teachers[:, i])} | {_cell(students[:, i])} |"
             for i in range(args.tasks)]
    rows += [f"| all | {_cell(teachers.mean(1))} | {_cell(students.mean(1))} |", "",
             f"KL(teachers ‖ student): {_cell(kl[:, frozen - 1])} when the teachers stop, "
             f"{_cell(kl[:, -1])} at the end (peak {_cell(kl.max(1))})"]
    _write(f"meta_cpu_distill_{args.env.split('-')[0].lower()}", result, rows)


def divide_and_conquer(args: argparse.Namespace) -> None:
    """DnC with 4 contexts against one policy on all initial states (module docstring)."""
    if args.starts:
        if args.env != "Pendulum-v1":
            raise SystemExit("--starts: initial-angle regions are made for Pendulum-v1")
        env, params = meta.PendulumStarts.make(max_steps_in_episode=args.horizon)
    else:
        env, params = envs.make(args.env, max_steps_in_episode=args.horizon)
    result = {"env": args.env, "horizon": args.horizon, "updates": args.updates,
              "seeds": args.seeds, "runs": {}}
    rows = []
    for contexts in (4, 1):
        config = dnc.Config(num_contexts=contexts, num_envs=40 // contexts,
                            horizon=args.horizon)
        config = config.replace(total_timesteps=config.steps_per_update * args.updates)
        start = time.perf_counter()
        _, metrics = jax.jit(jax.vmap(dnc.make_train(config, env, params)))(
            jax.random.split(jax.random.key(0), args.seeds))
        jax.block_until_ready(metrics)
        run = {name: np.asarray(value).tolist() for name, value in metrics.items()}
        run["seconds"] = time.perf_counter() - start
        run["env_steps"] = config.total_timesteps
        result["runs"][contexts] = run
        print(contexts, run["seconds"], flush=True)
    starts = ", contexts: initial-angle regions (PendulumStarts)" if args.starts else ""
    rows = [f"{args.env}{starts}, horizon {args.horizon}: {args.updates} updates of 40 episodes "
            f"({result['runs'][4]['env_steps']:,} env steps), {args.seeds} seeds; mean "
            "return of the last 5 updates (mean ± std over seeds)", "",
            "| method | global policy | local policies | KL(local ‖ global) | λ | train s |",
            "| --- | --- | --- | --- | --- | --- |"]
    for contexts, label in ((4, "DnC, 4 contexts"), (1, "one policy, all initial states")):
        run = result["runs"][contexts]
        last = {name: np.asarray(run[name])[:, -5:].mean(1) for name in
                ("global_return", "local_return", "distill_kl", "lambda")}
        rows.append(f"| {label} | {_cell(last['global_return'])} | "
                    f"{_cell(last['local_return'])} | {_cell(last['distill_kl'])} | "
                    f"{_cell(last['lambda'])} | {run['seconds']:.0f} |")
    _write(f"meta_cpu_dnc_{args.env.split('-')[0].lower()}{'_starts' if args.starts else ''}"
           f"{args.suffix}", result, rows)


class _FixedTask:
    """``env`` whose task family is one task (``task``): the finetuning target."""

    def __init__(self, env, task):
        self.env, self.task = env, task

    def sample_task(self, key, env_params):
        return self.task

    def __getattr__(self, name):
        return getattr(self.env, name)


TARGETS = {"Pendulum-v1": {"m": 1.6, "l": 1.6}, "PointNav-v0": {"goal": [0.45, -0.45]}}


def finetune(args: argparse.Namespace) -> None:
    """Forward transfer: pretrained on the randomised family, finetuned on a held-out target,
    against PPO from scratch (module docstring)."""
    env, params = envs.make(args.env, max_steps_in_episode=args.horizon)
    target = params.replace(**{k: jnp.asarray(v, jnp.float32)
                               for k, v in TARGETS[args.env].items()})
    ppo = multitask.Config(task_in_obs=False, hidden_sizes=(64, 64))
    pretrain = ppo.replace(total_timesteps=ppo.batch_size * args.updates)
    seeds = jax.random.split(jax.random.key(0), args.seeds)
    start = time.perf_counter()
    pretrained, pre_metrics = jax.jit(jax.vmap(multitask.make_train(pretrain, env, params)))(
        seeds)
    jax.block_until_ready(pretrained)
    seconds = {"pretrain": time.perf_counter() - start}
    tune = ppo.replace(total_timesteps=ppo.batch_size * args.updates // 2)
    agent = multitask.make_agent(tune, _FixedTask(env, target), params)

    def run(key, init_params, policy_only=False):
        state = agent.init(key)
        if init_params is not None and policy_only:  # fresh critic and action std
            fresh = state.params["params"]
            head = {**init_params["params"]["policy_head"],
                    "log_std": fresh["policy_head"]["log_std"]}
            init_params = {"params": {**fresh, "actor_torso": init_params["params"]["actor_torso"],
                                      "policy_head": head}}
        if init_params is not None:
            state = state.replace(params=init_params)
        return jax.lax.scan(lambda s, _: agent.update(s), state, None,
                            length=agent.num_updates)[1]["episode_return"]

    curves = {}
    for method, init, policy_only in (("finetune", pretrained.params, False),
                                      ("finetune policy only", pretrained.params, True),
                                      ("scratch", None, False)):
        start = time.perf_counter()
        keys = jax.random.split(jax.random.key(1), args.seeds)
        curves[method] = np.asarray(
            jax.jit(jax.vmap(lambda k, p, only=policy_only: run(k, p, only)))(keys, init)
            if init is not None else jax.jit(jax.vmap(lambda k: run(k, None)))(keys))
        seconds[method] = time.perf_counter() - start
        print(method, curves[method][:, ::10], flush=True)

    def steps_to(curve):
        hits = np.flatnonzero(curve >= args.threshold)
        return int((hits[0] + 1) * tune.batch_size) if hits.size else None

    result = {"env": args.env, "target": TARGETS[args.env], "threshold": args.threshold,
              "pretrain_steps": pretrain.total_timesteps, "tune_steps": tune.total_timesteps,
              "seeds": args.seeds, "seconds": seconds,
              "pretrain_return": np.asarray(pre_metrics["episode_return"]).tolist(),
              "curves": {m: c.tolist() for m, c in curves.items()},
              "steps_to_threshold": {m: [steps_to(c) for c in curves[m]] for m in curves}}
    rows = [f"{args.env}, target {TARGETS[args.env]} (held out): env steps until the training "
            f"return reaches {args.threshold:g}, per seed (— not within "
            f"{tune.total_timesteps:,}); pretraining: {pretrain.total_timesteps:,} steps of "
            "multi-task PPO, task hidden, on the randomised family", "",
            "| method | steps to threshold | first update's return | last 5 updates' return |",
            "| --- | --- | --- | --- |"]
    for method, curve in curves.items():
        reached = ", ".join(f"{s:,}" if s else "—" for s in result["steps_to_threshold"][method])
        rows.append(f"| {method} | {reached} | {_cell(curve[:, 0])} | "
                    f"{_cell(curve[:, -5:].mean(1))} |")
    _write(f"meta_cpu_finetune_{args.env.split('-')[0].lower()}", result, rows)


if __name__ == "__main__":
    main()
