"""Speed, memory and returns of jaxrl beside rejax and sbx, on one machine, in one run.

    python benchmarks/run.py --suite smoke --out benchmarks/results/smoke_cpu.json
    python benchmarks/run.py --suite full --out benchmarks/results/full_gpu.json   # a GPU box
    python benchmarks/run.py --suite smoke --only ppo/CartPole-v1                  # a subset

Every case (framework, algorithm, env, seeds, config) runs in a fresh subprocess, so its peak
host memory (``ru_maxrss``) is its own: jaxrl's cases in this interpreter, a peer's in the
peer's virtualenv, built on first use by ``benchmarks/peers/venvs.py`` and cached. A row holds
compile seconds (trace + lower + XLA compile), run seconds (one call to
``block_until_ready``), env steps/s and gradient updates/s (all seeds together), peak host and
device memory, the final return, the matmul FLOPs of the run and the achieved fraction of this
machine's dense-matmul FLOP/s, and the machine (CPU, cores, load average at start and end, jax
version and backend). ``time_to_result_s`` is what a user waits for: compile + the first call's
run, every case in a fresh process with JAX's persistent compile cache off; its ratio to the
peer's is a target (≤ ``TIME_TO_RESULT_GOAL``). ``fair_return`` scores every framework's trained
policies alike, after training and untimed: ``measure.greedy_returns`` (deterministic actions,
128 episodes per seed, the same gymnax env); ``final_return`` stays each framework's own
measure (jaxrl: the last training episode; rejax: its own 128-episode evaluation). jaxrl's
cases compile with ``jaxrl.backend.compiler_options`` (its CPU default), recorded in the row.
A case that cannot run (a peer venv that does not build, an algorithm
jaxrl does not have yet) becomes a row with ``status`` ``skipped`` or ``error`` and the reason;
the run goes on.

Writes ``--out`` (JSON: machine, targets, rows), ``<out>.md`` (the table and the targets) and
``<out>_scaling.png`` (seeds vs. run time and env steps/s). Targets are reported, never
asserted: shared machines are too noisy for timed assertions.

- ``smoke`` (about 4 minutes on a 2-core CPU, plus ≈ 10 s to build the rejax venv the first
  time): dense-matmul reference; env-only random-policy CartPole at PPO's batch; PPO
  CartPole-v1 (4 envs × 128 steps, 4 epochs × 4 minibatches) for 1, 4, 16, 64 vmapped seeds in
  jaxrl and 1 and 64 seeds in rejax with identical hyperparameters; DQN CartPole-v1 (20k
  gradient steps at batch 256) in jaxrl and rejax for the off-policy updates/s target.
- ``full`` (a GPU; about 8 minutes on one H200): the same PPO at 131k steps per seed for 1, 64
  and 256 seeds (and 1024 on a GPU) in jaxrl and rejax, DQN CartPole and SAC Pendulum against
  rejax, PPO on MinAtar Breakout and Brax ant with their env-only references, TD3 Pendulum
  against rejax, then sbx's DQN / SAC / TD3 (ordered by importance, for ``--deadline``).

``--rounds N`` runs the cases N times (every other round in reverse order) and reports each
target as the median of the rounds' ratios with their range: on a shared CPU one round's ratios
move by tens of percent, so one round's verdict near a goal is unreliable.

The JSON is rewritten after every case. ``--deadline S`` starts no case after S seconds,
``--repeats N`` sets the timed calls per case, ``--set FIELD=VALUE`` overrides a config field
(e.g. a shorter logging interval for a profile), ``--peer-python NAME=PYTHON`` runs a peer with a
given interpreter instead of building its venv (``offline_suite.sh`` uses it on a machine with
no package index), and ``JAXRL_BENCH_PROFILE=DIR`` saves each case's HLO, a profiler trace and
its summary.
``JAXRL_CPU_THREEFRY=unrolled`` compiles jaxrl's cases with the straight-line threefry, and
``JAXRL_CPU_THREADS=N`` gives XLA:CPU an N-thread pool in every case's process, peers' too
(``jaxrl.backend``); rows record both.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE / "peers"))

import measure  # noqa: E402
import venvs  # noqa: E402

__all__ = ["CASES", "Case", "derive", "fair_return", "main", "markdown", "run_case",
           "run_jaxrl_case", "selected_cases", "suite_cases", "targets"]

CASE_TIMEOUT_S = 1800
RUN_REPEATS = 2
"""Each compiled run is timed up to this many times (jaxrl and peers alike; once if a call takes
``measure.REPEAT_BUDGET_S`` or more); rows keep the fastest."""
OFF_POLICY = ("dqn", "sac", "td3")
EVAL_SEED = 1
"""Seed of the evaluation keys every framework's runner scores its trained policies with."""
COMPILE_CACHE_VARIABLES = ("JAX_COMPILATION_CACHE_DIR", "JAX_ENABLE_COMPILATION_CACHE",
                           "JAXRL_COMPILE_CACHE")
"""Dropped from every case's environment, which turns JAX's persistent compile cache off."""
TIME_TO_RESULT_GOAL = 0.7
"""Target: jaxrl's time to a result (compile + first run, cold cache) ≤ this × the peer's."""


@dataclasses.dataclass(frozen=True)
class Case:
    """One benchmark: ``framework`` is ``jaxrl``, a peer (``rejax``, ``sbx``) or ``reference``
    (``algo`` ``matmul``: dense-matmul FLOP/s; ``env_only``: random-policy env steps/s at the
    config's ``num_envs × num_steps`` batch and ``total_timesteps``). ``config`` uses jaxrl's
    Config field names; peers translate them (see their runners)."""

    framework: str
    algo: str
    env: str
    seeds: int
    config: dict[str, Any]
    gymnasium_env: str | None = None

    @property
    def name(self) -> str:
        return f"{self.framework}/{self.algo}/{self.env}/{self.seeds}"


def ppo_cartpole(total_timesteps: int) -> dict[str, Any]:
    """The PPO configuration both jaxrl and rejax run: rejax's semantics (no annealing, value
    clipping, advantage normalisation), tanh on both sides (rejax's default is swish)."""
    return {"total_timesteps": total_timesteps, "num_envs": 4, "num_steps": 128,
            "update_epochs": 4, "num_minibatches": 4, "gamma": 0.99, "gae_lambda": 0.95,
            "learning_rate": 2.5e-4, "clip_eps": 0.2, "ent_coef": 0.01, "vf_coef": 0.5,
            "max_grad_norm": 0.5, "activation": "tanh", "hidden_sizes": [64, 64],
            "anneal_lr": False, "clip_vloss": True, "norm_adv": True}


# Off-policy: one gradient step per env step at batch 256; jaxrl's periodic evaluation is off
# (rejax's is switched off too), and one logging interval is 10k steps. DQN: double Q, 1-step
# targets, constant learning rate, hard target copies every 500 steps (rejax's DQN).
DQN_CARTPOLE = {"total_timesteps": 101_000, "num_envs": 1, "buffer_size": 10_000,
                "batch_size": 256, "learning_starts": 1_000, "train_frequency": 1,
                "updates_per_step": 1, "log_frequency": 10_000, "eval_episodes": 0,
                "learning_rate": 2.5e-4, "gamma": 0.99, "tau": 1.0,
                "target_network_frequency": 500, "start_e": 1.0, "end_e": 0.05,
                "exploration_fraction": 0.5, "hidden_sizes": [64, 64], "activation": "relu",
                "n_step": 1, "double_q": True, "dueling": False, "anneal_lr": False,
                "max_grad_norm": 10.0}
DQN_CARTPOLE_SHORT = {**DQN_CARTPOLE, "total_timesteps": 21_000}
"""The smoke suite's off-policy check: 20k gradient steps at batch 256 (updates/s vs rejax)."""
OFF_POLICY_PENDULUM = {"total_timesteps": 11_000, "num_envs": 1, "buffer_size": 11_000,
                       "batch_size": 256, "learning_starts": 1_000, "train_frequency": 1,
                       "updates_per_step": 1, "log_frequency": 10_000, "eval_episodes": 0,
                       "gamma": 0.99, "tau": 0.005, "hidden_sizes": [64, 64],
                       "activation": "relu"}
SAC_PENDULUM = {**OFF_POLICY_PENDULUM, "policy_lr": 1e-3, "q_lr": 1e-3, "policy_frequency": 1}
TD3_PENDULUM = {**OFF_POLICY_PENDULUM, "learning_rate": 1e-3, "policy_frequency": 2,
                "policy_noise": 0.2, "noise_clip": 0.5, "exploration_noise": 0.1}
PPO_MINATAR = {"total_timesteps": 262_144, "num_envs": 64, "num_steps": 128,
               "update_epochs": 4, "num_minibatches": 8, "gamma": 0.99, "gae_lambda": 0.95,
               "learning_rate": 5e-4, "ent_coef": 0.01}
PPO_BRAX = {"total_timesteps": 262_144, "num_envs": 256, "num_steps": 32,
            "update_epochs": 4, "num_minibatches": 8, "gamma": 0.99, "gae_lambda": 0.95,
            "learning_rate": 3e-4, "normalize_obs": True}


def _ppo_scaling(total_timesteps: int, seeds: list[int], rejax_seeds: list[int]) -> list[Case]:
    """Env-only reference, then jaxrl and rejax PPO CartPole side by side per seed count (so a
    run cut short by ``--deadline`` still holds complete pairs)."""
    config = ppo_cartpole(total_timesteps)
    cases = [Case("reference", "env_only", "CartPole-v1", 1, config)]
    for n in seeds:
        cases.append(Case("jaxrl", "ppo", "CartPole-v1", n, config))
        if n in rejax_seeds:
            cases.append(Case("rejax", "ppo", "CartPole-v1", n, config))
    return cases


def _off_policy(algo: str, env: str, config: dict[str, Any], gymnasium_env: str,
                frameworks: tuple[str, ...] = ("jaxrl", "rejax", "sbx")) -> list[Case]:
    return [Case(framework, algo, env, 1, config, gymnasium_env) for framework in frameworks]


MATMUL = Case("reference", "matmul", "-", 1, {})
JAX_PEERS = ("jaxrl", "rejax")
FULL_PPO_STEPS = 131_072
"""PPO CartPole steps per seed in ``full`` (256 updates): sized so that the whole suite,
1024-seed runs included, fits a 15-minute lease of one GPU."""
CASES: dict[str, list[Case]] = {
    "smoke": [MATMUL, *_ppo_scaling(65_536, [1, 4, 16, 64], [1, 64]),
              *[Case(framework, "dqn", "CartPole-v1", 1, DQN_CARTPOLE_SHORT)
                for framework in ("jaxrl", "rejax")]],
    # Ordered by importance, for --deadline: the PPO and off-policy targets against rejax
    # first; sbx (Python-driven, ~200 updates/s on an H200) last, as its runs take minutes.
    "full": [
        MATMUL,
        *_ppo_scaling(FULL_PPO_STEPS, [1, 64, 256], [1, 64, 256]),
        *_off_policy("dqn", "CartPole-v1", DQN_CARTPOLE_SHORT, "CartPole-v1", JAX_PEERS),
        *_off_policy("sac", "Pendulum-v1", SAC_PENDULUM, "Pendulum-v1", JAX_PEERS),
        Case("reference", "env_only", "Breakout-MinAtar", 1, PPO_MINATAR),
        Case("jaxrl", "ppo", "Breakout-MinAtar", 4, PPO_MINATAR),
        Case("reference", "env_only", "brax/ant", 1, PPO_BRAX),
        Case("jaxrl", "ppo", "brax/ant", 1, PPO_BRAX),
        *_off_policy("td3", "Pendulum-v1", TD3_PENDULUM, "Pendulum-v1", JAX_PEERS),
        *_off_policy("sac", "Pendulum-v1", SAC_PENDULUM, "Pendulum-v1", ("sbx",)),
        *_off_policy("dqn", "CartPole-v1", DQN_CARTPOLE_SHORT, "CartPole-v1", ("sbx",)),
        *_off_policy("td3", "Pendulum-v1", TD3_PENDULUM, "Pendulum-v1", ("sbx",)),
    ],
}
GPU_EXTRA_SEEDS = [1024]


def suite_cases(suite: str, backend: str = "cpu") -> list[Case]:
    """The cases of ``suite``; on a GPU the full suite adds 1024-seed PPO runs."""
    if suite not in CASES:
        raise ValueError(f"unknown suite {suite!r}; choose one of: {', '.join(CASES)}")
    cases = list(CASES[suite])
    if suite == "full" and backend != "cpu":
        config = ppo_cartpole(FULL_PPO_STEPS)
        extra = [Case(f, "ppo", "CartPole-v1", n, config)
                 for n in GPU_EXTRA_SEEDS for f in ("jaxrl", "rejax")]
        at = max(i for i, c in enumerate(cases) if c.algo == "ppo" and c.env == "CartPole-v1")
        cases[at + 1:at + 1] = extra
    return cases


def selected_cases(suite: str, backend: str, only: list[str]) -> list[Case]:
    """``suite_cases`` whose name contains one of ``only`` (all of them when ``only`` is empty)."""
    return [c for c in suite_cases(suite, backend)
            if not only or any(part in c.name for part in only)]


# --- the jaxrl side (runs in the case's subprocess) ---------------------------------------------


def jaxrl_config(module: Any, config: dict[str, Any]) -> Any:
    """``module.Config`` from a case's JSON-style dict (lists become tuples); ``ValueError`` naming
    the fields ``module.Config`` lacks."""
    fields = {f.name for f in dataclasses.fields(module.Config)}
    unknown = sorted(set(config) - fields)
    if unknown:
        raise ValueError(f"{module.__name__}.Config has no field(s) {', '.join(unknown)}")
    return module.Config(**{k: tuple(v) if isinstance(v, list) else v for k, v in config.items()})


def _env_only(case: Case, repeats: int) -> dict[str, Any]:
    import jax

    from jaxrl import envs
    from jaxrl.rollout import reset_envs, rollout

    env, env_params = envs.make(case.env)
    num_envs, num_steps = case.config["num_envs"], case.config.get("num_steps", 1)
    chunks = case.config["total_timesteps"] // (num_envs * num_steps)
    space = env.action_space(env_params)

    def random_policy(key: jax.Array, obs: jax.Array) -> tuple[jax.Array, dict]:
        return jax.vmap(space.sample)(jax.random.split(key, obs.shape[0])), {}

    def run(key: jax.Array) -> jax.Array:
        reset_key, key = jax.random.split(key)
        obs, env_state = reset_envs(reset_key, env, env_params, num_envs)

        def chunk(carry, chunk_key):
            env_state, obs, traj = rollout(chunk_key, env, env_params, *carry, random_policy,
                                           num_steps)
            return (env_state, obs), traj.reward.sum()

        _, rewards = jax.lax.scan(chunk, (env_state, obs), jax.random.split(key, chunks))
        return rewards.sum()

    keys = jax.random.split(jax.random.key(0), case.seeds)
    _, timings, _ = measure.compile_and_run(jax.vmap(run), keys, repeats=repeats)
    return {**timings, "env_steps_per_seed": chunks * num_envs * num_steps}


def fair_return(agent: Any, state: Any, env: Any, env_params: Any, seeds: int
                ) -> dict[str, Any]:
    """``fair_return``: the trained policies (``state``, batched over ``seeds``) acting
    deterministically in ``measure.greedy_returns``, the evaluation every framework's runner
    uses (mean over the seeds' ``EVAL_EPISODES`` episodes each), after training, untimed.
    None (with ``fair_return_note``) for an env that is not gymnax's or a policy with memory."""
    import jax
    import numpy as np

    gymnax_env = getattr(env, "gymnax_env", None)
    if gymnax_env is None or agent.initial_carry is not None:
        return {"fair_return": None, "fair_return_note": "not a gymnax env, or a recurrent "
                                                         "policy: no common evaluation"}

    def score(one_state: Any, key: jax.Array) -> jax.Array:
        return measure.greedy_returns(lambda obs: agent.act(one_state, obs, key, True),
                                      gymnax_env, env_params, key)

    keys = jax.random.split(jax.random.key(EVAL_SEED), seeds)
    returns = np.asarray(jax.jit(jax.vmap(score))(state, keys))
    return {"fair_return": measure.nanmean(returns.mean(axis=-1)),
            "fair_return_std": float(returns.mean(axis=-1).std()),
            "fair_return_kind": measure.EVAL_KIND}


def run_jaxrl_case(case: Case, repeats: int = RUN_REPEATS) -> dict[str, Any]:
    """Measure one ``jaxrl`` or ``reference`` case in this process (see ``Case``), timing the
    compiled run ``repeats`` times (the row keeps the fastest call)."""
    import jax
    import numpy as np

    row: dict[str, Any] = {"machine": measure.machine()}
    if case.algo == "matmul":
        return {**row, "matmul_peak_flops_per_s": measure.measure_matmul_peak()}
    if case.algo == "env_only":
        return {**row, **_env_only(case, repeats)}
    from jaxrl import envs
    from jaxrl.agents import ALGORITHMS
    from jaxrl.backend import (
        compiler_options,
        cpu_threefry,
        env_unroll_limit,
        gradient_steps,
        scan_unroll,
    )

    if case.algo not in ALGORITHMS:
        return {**row, "status": "skipped",
                "note": f"jaxrl has no {case.algo!r} yet (have: {', '.join(ALGORITHMS)})"}
    module = ALGORITHMS[case.algo]
    config = jaxrl_config(module, case.config)
    env, env_params = envs.make(case.env)
    agent = module.make_agent(config, env, env_params)
    keys = jax.numpy.stack([jax.random.key(s) for s in range(case.seeds)])
    # jaxrl's CPU default: XLA options chosen from the program's gradient steps (all seeds).
    options = compiler_options(jax.default_backend(), case.seeds * (
        gradient_steps(config, agent.num_updates) or agent.num_updates))
    (state, metrics), timings, jaxpr = measure.compile_and_run(
        jax.vmap(module.make_train(config, env, env_params)), keys, repeats=repeats,
        compiler_options=options)
    flops, while_loops = measure.matmul_flops(jaxpr)
    returns = np.asarray(metrics["episode_return"])[:, -1]
    return {**row, **timings, **fair_return(agent, state, env, env_params, case.seeds),
            "env_steps_per_seed": (getattr(agent, "initial_steps", 0)
                                   + agent.num_updates * agent.steps_per_update),
            "updates_per_seed": agent.num_updates,
            "gradient_steps_per_seed": gradient_steps(config, agent.num_updates),
            "matmul_flops": flops, "while_loops": while_loops,
            "final_return": measure.nanmean(returns),
            "return_kind": "training: last episode_return metric, mean over seeds",
            "versions": {"jax": jax.__version__},
            "scan_unroll": scan_unroll(2**31, env_unroll_limit(env)),
            "cpu_threefry": cpu_threefry(), "compiler_options": options}


# --- the orchestrator ---------------------------------------------------------------------------


def _tail(text: str, lines: int = 4) -> str:
    kept = [line for line in text.splitlines()
            if line.strip() and not line.startswith("WARNING: Location")]
    return " | ".join(kept[-lines:])


def run_case(case: Case, python: str, script: Path, timeout: float = CASE_TIMEOUT_S,
             repeats: int = RUN_REPEATS) -> dict[str, Any]:
    """Run ``case`` as ``python script '<case json>'`` (timing its compiled run ``repeats``
    times) and return the ``BENCH_ROW`` it prints, or an ``error`` row with the reason (exit
    status and stderr tail, or the timeout)."""
    payload = json.dumps({**dataclasses.asdict(case), "repeats": repeats})
    start = time.perf_counter()
    try:
        # Cold compile caches: every case compiles from scratch, as a user's first run does.
        env = {k: v for k, v in os.environ.items() if k not in COMPILE_CACHE_VARIABLES}
        env.update({measure.CASE_ENV: case.name.replace("/", "_"),
                    "JAX_ENABLE_COMPILATION_CACHE": "false", "JAXRL_COMPILE_CACHE": "off"})
        result = subprocess.run([python, str(script), "--case", payload], capture_output=True,
                                text=True, timeout=timeout, check=False, cwd=HERE.parent,
                                env=env)
    except subprocess.TimeoutExpired:
        return {"status": "error", "note": f"timed out after {timeout:.0f} s"}
    wall_s = time.perf_counter() - start
    for line in reversed(result.stdout.splitlines()):
        if line.startswith(measure.ROW_PREFIX):
            row = json.loads(line[len(measure.ROW_PREFIX):])
            return {"status": "ok", **row, "wall_s": wall_s}
    return {"status": "error", "wall_s": wall_s,
            "note": f"exit {result.returncode}: {_tail(result.stderr + result.stdout)}"}


def derive(row: dict[str, Any], matmul_peak: float | None) -> dict[str, Any]:
    """Add throughput fields: ``env_steps_per_s = env_steps_per_seed · seeds / run_s``,
    ``updates_per_s = gradient_steps_per_seed · seeds / run_s``, ``matmul_flops_per_s =
    matmul_flops / run_s`` and its fraction of the machine's dense-matmul FLOP/s."""
    run_s, seeds = row.get("run_s"), row["seeds"]
    if not run_s:
        return row
    derived = {}
    if row.get("env_steps_per_seed"):
        derived["env_steps_per_s"] = row["env_steps_per_seed"] * seeds / run_s
    if row.get("gradient_steps_per_seed"):
        derived["updates_per_s"] = row["gradient_steps_per_seed"] * seeds / run_s
    if row.get("matmul_flops"):
        derived["matmul_flops_per_s"] = row["matmul_flops"] / run_s
        derived["matmul_flops_per_env_step"] = row["matmul_flops"] / (
            row["env_steps_per_seed"] * seeds)
        if matmul_peak:
            derived["matmul_peak_fraction"] = derived["matmul_flops_per_s"] / matmul_peak
    return {**row, **derived}


def _round(row: dict[str, Any]) -> int:
    """The row's round (``--rounds``); 1 for rows written before rounds existed."""
    return row.get("round", 1)


def _pairs(rows: list[dict[str, Any]], peer: str) -> list[tuple[dict, dict]]:
    def key(row):
        return (_round(row), row["algo"], row["env"], row["seeds"],
                json.dumps(row["config"], sort_keys=True))

    ours = {key(r): r for r in rows if r["framework"] == "jaxrl" and r["status"] == "ok"}
    return [(ours[key(r)], r) for r in rows
            if r["framework"] == peer and r["status"] == "ok" and key(r) in ours]


def _target(name: str, ratio: float | None, goal: float, at_least: bool, where: str
            ) -> dict[str, Any]:
    if ratio is None or not math.isfinite(ratio):
        return {"target": name, "where": where, "ratio": None, "result": "n/a"}
    passed = ratio >= goal if at_least else ratio <= goal
    return {"target": name, "where": where, "ratio": ratio, "goal": goal, "at_least": at_least,
            "result": "PASS" if passed else "MISS"}


def targets(rows: list[dict[str, Any]], backend: str) -> list[dict[str, Any]]:
    """The issue's targets as ratios with PASS / MISS (n/a where a row is missing).

    Each round (``--rounds``) is compared within itself, so both sides of a ratio ran minutes
    apart; over several rounds a target's ``ratio`` is the median of the rounds' ratios (kept
    in ``ratios``) and decides the result.
    """
    per_round = [_round_targets([r for r in rows if _round(r) == k], backend)
                 for k in sorted({_round(r) for r in rows})]
    if len(per_round) <= 1:
        return per_round[0] if per_round else _round_targets([], backend)
    combined: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for goals in per_round:
        for goal in goals:
            combined.setdefault((goal["target"], goal["where"]), []).append(goal)
    results = []
    for (name, where), goals in combined.items():
        ratios = [g["ratio"] for g in goals if g["ratio"] is not None]
        known = next((g for g in goals if g["ratio"] is not None), None)
        if known is None:
            results.append(_target(name, None, 0.0, True, where))
            continue
        median = statistics.median(ratios)
        results.append({**_target(name, median, known["goal"], known["at_least"], where),
                        "ratios": ratios})
    return results


def _round_targets(rows: list[dict[str, Any]], backend: str) -> list[dict[str, Any]]:
    """:func:`targets` for the rows of one round."""
    results = []
    for peer in ("rejax", "sbx"):
        for ours, theirs in _pairs(rows, peer):
            where = f"{ours['algo']} {ours['env']} {ours['seeds']} seed(s) vs {peer}"
            if ours["algo"] == "ppo":
                results.append(_target("PPO env steps/s ≥ 1.5× peer",
                                       ours["env_steps_per_s"] / theirs["env_steps_per_s"],
                                       1.5, True, where))
            if ours["algo"] in OFF_POLICY:
                ratio = (ours["updates_per_s"] / theirs["updates_per_s"]
                         if ours.get("updates_per_s") and theirs.get("updates_per_s") else None)
                results.append(_target("off-policy updates/s ≥ 2× peer", ratio, 2.0, True,
                                       where))
            if ours.get("time_to_result_s") and theirs.get("time_to_result_s"):
                results.append(_target(f"time to result ≤ {TIME_TO_RESULT_GOAL}× peer",
                                       ours["time_to_result_s"] / theirs["time_to_result_s"],
                                       TIME_TO_RESULT_GOAL, False, where))
            for field, label in (("compile_s", "compile s ≤ peer"),
                                 ("compile_cpu_s", "compile CPU s ≤ peer")):
                if ours.get(field) and theirs.get(field):
                    results.append(_target(label, ours[field] / theirs[field], 1.0, False,
                                           where))
    scaling = {r["seeds"]: r for r in rows if r["framework"] == "jaxrl" and r["algo"] == "ppo"
               and r["env"] == "CartPole-v1" and r["status"] == "ok"}
    one, many = scaling.get(1), scaling.get(64)
    if backend == "cpu":
        ratio = many["env_steps_per_s"] / one["env_steps_per_s"] if one and many else None
        results.append(_target("64 seeds keep per-sample throughput (SPS 64 / SPS 1 ≥ 1)",
                               ratio, 1.0, True, "jaxrl ppo CartPole-v1"))
    else:
        ratio = many["run_s"] / one["run_s"] if one and many else None
        results.append(_target("64 seeds cost ≤ 2× one seed (run s 64 / run s 1)", ratio, 2.0,
                               False, "jaxrl ppo CartPole-v1"))
    return results


def _fmt(value: Any, spec: str = ",.0f") -> str:
    return "—" if value is None else format(value, spec)


def _ratio_cell(goal: dict[str, Any]) -> str:
    """``1.23``, or over several rounds ``1.23 (1.10–1.40, 3 rounds)``: median (range)."""
    cell = _fmt(goal["ratio"], ".2f")
    ratios = goal.get("ratios") or []
    if len(ratios) > 1:
        cell += f" ({min(ratios):.2f}–{max(ratios):.2f}, {len(ratios)} rounds)"
    return cell


def markdown(rows: list[dict[str, Any]], goals: list[dict[str, Any]]) -> str:
    """The rows and targets as Markdown tables."""
    rounds = len({_round(r) for r in rows}) > 1  # --rounds: a leading "round" column
    lines = [("| round " if rounds else "") + "| framework | algo | env | seeds | status "
             "| compile s (CPU s) | run s | time to result s | env steps/s | updates/s "
             "| peak host MiB | device MiB | final return | fair return "
             "| matmul FLOP/s (% peak) | load avg start→end |",
             "|---" * (17 if rounds else 16) + "|"]
    for r in rows:
        load = (f"{r['machine']['loadavg'][0]:.1f}→{r['loadavg_end'][0]:.1f}"
                if r.get("machine") and r.get("loadavg_end") else "—")
        flops = "—"
        if r.get("matmul_flops_per_s"):
            flops = f"{r['matmul_flops_per_s'] / 1e9:.2f} G"
            if r.get("matmul_peak_fraction"):
                flops += f" ({100 * r['matmul_peak_fraction']:.1f}%)"
        elif r.get("matmul_peak_flops_per_s"):
            flops = f"peak {r['matmul_peak_flops_per_s'] / 1e9:.1f} G"
        device = (r.get("device_memory") or {}).get("peak_mib_in_use")
        # The JSON keeps the note's last lines; the table shows its final one (the message).
        note = (r.get("note") or "").split(" | ")[-1].strip()[:160]
        status = r["status"] if r["status"] == "ok" else f"{r['status']}: {note}"
        settings = []  # jaxrl.backend's settings that differ from the defaults
        if (r.get("scan_unroll") or 1) > 1:
            settings.append(f"unroll {r['scan_unroll']}")  # env-step loops
        options = r.get("compiler_options") or {}
        if options:  # jaxrl.backend.compiler_options: XLA:CPU's level and fusion emitters
            settings.append(f"XLA level {options.get('xla_backend_optimization_level')}"
                            + ("" if options.get("xla_cpu_use_fusion_emitters", True)
                               else ", emitters off"))
        if r.get("cpu_threefry") == "unrolled":
            settings.append("threefry unrolled")  # $JAXRL_CPU_THREEFRY
        threads = (r.get("machine") or {}).get("xla_cpu_threads")
        if threads:  # $JAXRL_CPU_THREADS: every framework's process
            settings.append(f"{threads} XLA:CPU thread{'s' if threads > 1 else ''}")
        if r["status"] == "ok" and settings:
            status += f" ({', '.join(settings)})"
        lines.append(
            (f"| {_round(r)} " if rounds else "") +
            f"| {r['framework']} | {r['algo']} | {r['env']} | {r['seeds']} | {status} "
            f"| {_fmt(r.get('compile_s'), '.1f')} ({_fmt(r.get('compile_cpu_s'), '.1f')}) "
            f"| {_fmt(r.get('run_s'), '.2f')} | {_fmt(r.get('time_to_result_s'), '.1f')} "
            f"| {_fmt(r.get('env_steps_per_s'))} | {_fmt(r.get('updates_per_s'))} "
            f"| {_fmt(r.get('peak_host_mib'))} | {_fmt(device)} "
            f"| {_fmt(r.get('final_return'), '.1f')} | {_fmt(r.get('fair_return'), '.1f')} "
            f"| {flops} | {load} |")
    lines += ["", "| target | where | ratio | result |", "|---|---|---|---|"]
    lines += [f"| {g['target']} | {g['where']} | {_ratio_cell(g)} | {g['result']} |"
              for g in goals]
    return "\n".join(lines) + "\n"


def plot_scaling(rows: list[dict[str, Any]], path: Path) -> bool:
    """Seeds vs. run seconds and env steps/s of PPO CartPole-v1 per framework (over several
    rounds, the median run); False if fewer than two seed counts ran."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    runs: dict[tuple[str, int], list[dict[str, Any]]] = {}
    for r in rows:
        if r["algo"] == "ppo" and r["env"] == "CartPole-v1" and r["status"] == "ok":
            runs.setdefault((r["framework"], r["seeds"]), []).append(r)
    series = {}  # per framework, one point per seed count: the round with the median run time
    for (framework, _), points in runs.items():
        points.sort(key=lambda r: r["run_s"])
        series.setdefault(framework, []).append(points[(len(points) - 1) // 2])
    if max((len(s) for s in series.values()), default=0) < 2:
        return False
    fig, (ax_time, ax_sps) = plt.subplots(1, 2, figsize=(10, 4))
    for framework, points in sorted(series.items()):
        points.sort(key=lambda r: r["seeds"])
        seeds = [r["seeds"] for r in points]
        ax_time.plot(seeds, [r["run_s"] for r in points], "o-", label=framework)
        ax_sps.plot(seeds, [r["env_steps_per_s"] for r in points], "o-", label=framework)
    steps = points[0]["env_steps_per_seed"]
    for ax, label in ((ax_time, "run seconds"), (ax_sps, "env steps/s (all seeds)")):
        ax.set_xscale("log", base=2)
        ax.set_yscale("log")
        ax.set_xlabel("seeds (vmapped, one call)")
        ax.set_ylabel(label)
        ax.grid(True, which="both", alpha=0.3)
        ax.legend()
    fig.suptitle(f"PPO CartPole-v1, {steps:,} env steps per seed")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return True


def _write_json(path: Path, payload: dict[str, Any]) -> None:
    partial = path.with_name(path.name + ".partial")
    partial.write_text(json.dumps(payload, indent=2, default=str) + "\n")
    partial.replace(path)


def _announce(row: dict[str, Any]) -> None:
    details = row.get("note") or ""
    if row["status"] == "ok":
        details = ", ".join(part for part in (
            f"compile {row['compile_s']:.1f} s" if row.get("compile_s") else "",
            f"run {row['run_s']:.2f} s" if row.get("run_s") else "",
            f"to result {row['time_to_result_s']:.1f} s" if row.get("time_to_result_s") else "",
            f"fair return {row['fair_return']:.1f}" if row.get("fair_return") is not None
            else "",
            f"{row['env_steps_per_s']:,.0f} steps/s" if row.get("env_steps_per_s") else "",
            f"{row['updates_per_s']:,.0f} updates/s" if row.get("updates_per_s") else "",
            f"return {row['final_return']:.1f}" if row.get("final_return") is not None else "",
            f"peak {row['matmul_peak_flops_per_s'] / 1e9:.1f} GFLOP/s"
            if row.get("matmul_peak_flops_per_s") else "") if part)
    print(f"{row['framework']}/{row['algo']}/{row['env']}/{row['seeds']}: {row['status']} "
          f"{details}", flush=True)


def main(argv: list[str] | None = None) -> int:
    """Run a suite (or, with ``--case``, one jaxrl case in this process: the subprocess side)."""
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--suite", choices=list(CASES), default="smoke")
    parser.add_argument("--out", type=Path, help="result JSON (default: "
                        "benchmarks/results/<suite>_<backend>.json)")
    parser.add_argument("--only", action="append", default=[],
                        help="run cases whose name framework/algo/env/seeds contains this "
                             "(repeatable)")
    parser.add_argument("--total-timesteps", type=int,
                        help="override every case's env steps per seed (quick harness checks)")
    parser.add_argument("--set", action="append", default=[], metavar="FIELD=VALUE",
                        help="override a config field (a JSON value, e.g. log_frequency=500) "
                             "in every case whose config has it (repeatable)")
    parser.add_argument("--timeout", type=float, default=CASE_TIMEOUT_S,
                        help="seconds per case")
    parser.add_argument("--repeats", type=int, default=RUN_REPEATS,
                        help="timed calls of each compiled run; rows keep the fastest (calls "
                             "stop once they add up to 8 s)")
    parser.add_argument("--rounds", type=int, default=1,
                        help="run the cases this many times (every other round in reverse "
                             "order); targets take the median of the rounds' ratios: on a noisy "
                             "machine one round's ratios move by tens of percent")
    parser.add_argument("--deadline", type=float,
                        help="seconds after which no new case starts (the rest become "
                             "'skipped' rows): fits a suite into a machine lease")
    parser.add_argument("--peer-python", action="append", default=[], metavar="NAME=PYTHON",
                        help="run peer NAME (rejax, sbx) with this interpreter instead of "
                             "building its venv (e.g. a wrapper that sets PYTHONPATH on a "
                             "machine without a package index)")
    parser.add_argument("--case", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.rounds < 1:
        parser.error(f"--rounds must be >= 1, got {args.rounds}")
    if args.case:
        fields = json.loads(args.case)
        repeats = fields.pop("repeats", RUN_REPEATS)
        measure.emit({"status": "ok", **run_jaxrl_case(Case(**fields), repeats)})
        return 0

    # Config overrides, applied to every selected case whose config has the field.
    overrides = {"total_timesteps": args.total_timesteps} if args.total_timesteps else {}
    named = set()
    for spec in args.set:
        field, _, value = spec.partition("=")
        named.add(field)
        try:
            overrides[field] = json.loads(value)
        except json.JSONDecodeError:
            parser.error(f"--set wants FIELD=VALUE with a JSON value (e.g. log_frequency=500, "
                         f"hidden_sizes=[64,64]); got {spec!r}")
        if not field:
            parser.error(f"--set wants FIELD=VALUE; got {spec!r}")
    # (The GPU suite's extra cases are PPO's, with the same fields.)
    known = {k for c in selected_cases(args.suite, "cpu", args.only) for k in c.config}
    unknown = sorted(named - known)
    if unknown:
        parser.error(f"--set {', '.join(unknown)}: no selected case's config has "
                     f"{'this field' if len(unknown) == 1 else 'these fields'}")

    # $JAXRL_CPU_THREADS sizes XLA:CPU's thread pool ($PJRT_NPROC) in every case's process,
    # the peers' included, so both sides of a comparison run with the same pool.
    from jaxrl.backend import cpu_threads_from_env

    cpu_threads_from_env()
    machine = run_case(MATMUL, sys.executable, Path(__file__), args.timeout)
    backend = (machine.get("machine") or {}).get("backend", "cpu")
    cases = [dataclasses.replace(c, config={**c.config, **{
        k: v for k, v in overrides.items() if k in c.config}})
             for c in selected_cases(args.suite, backend, args.only) if c != MATMUL]
    # (round, case): the dense-matmul reference once, first; then the rounds, every other one
    # in reverse order so that no case always runs right after the same neighbour.
    schedule = [(1, MATMUL)] + [(k, case) for k in range(1, args.rounds + 1)
                                for case in (cases if k % 2 else cases[::-1])]
    rows, peers = [], {}
    for spec in args.peer_python:
        name, _, python = spec.partition("=")
        if name not in venvs.PEERS or not python:
            parser.error(f"--peer-python wants NAME=PYTHON with NAME one of "
                         f"{', '.join(venvs.PEERS)}; got {spec!r}")
        peers[name] = (python, 0.0, None)
    out = args.out or HERE / "results" / f"{args.suite}_{backend}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    for round_, case in schedule:
        base = {**dataclasses.asdict(case), "suite": args.suite, "round": round_}
        if case == MATMUL:  # measured first, before the loop, to learn the backend
            row = machine
        elif args.deadline and time.perf_counter() - started > args.deadline:
            row = {"status": "skipped", "note": f"--deadline {args.deadline:g} s passed"}
        elif case.framework in ("jaxrl", "reference"):
            row = run_case(case, sys.executable, Path(__file__), args.timeout, args.repeats)
        else:
            if case.framework not in peers:
                try:
                    python, build_s = venvs.ensure_venv(case.framework)
                    peers[case.framework] = (str(python), build_s, None)
                except venvs.PeerUnavailable as error:
                    peers[case.framework] = (None, None, str(error))
            python, build_s, error = peers[case.framework]
            row = ({"status": "error", "note": error} if error else
                   run_case(case, python, venvs.runner_script(case.framework), args.timeout,
                            args.repeats))
            row["venv_build_s"] = build_s
        row = derive({**base, **row}, machine.get("matmul_peak_flops_per_s"))
        _announce(row)
        rows.append(row)
        goals = targets(rows, backend)
        # Rewritten after every case (complete: false until the last), via a temporary file
        # and a rename, so a run killed mid-way leaves a readable JSON of the cases done.
        _write_json(out, {
            "suite": args.suite, "rounds": args.rounds, "complete": len(rows) == len(schedule),
            "machine": machine.get("machine"),
            "loadavg_note": "os.getloadavg() at each case's start (machine.loadavg) and end "
                            "(loadavg_end); a load above the core count means the timings are "
                            "pessimistic",
            "total_wall_s": time.perf_counter() - started, "targets": goals, "rows": rows})
    table = markdown(rows, goals)
    out.with_suffix(".md").write_text(table)
    print("\n" + table)
    plot = out.with_name(out.stem + "_scaling.png")
    if plot_scaling(rows, plot):
        print(f"wrote {plot}")
    print(f"wrote {out} and {out.with_suffix('.md')} "
          f"({time.perf_counter() - started:.0f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
