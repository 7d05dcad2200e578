"""Learning suites against published returns, run in resumable, deadline-bounded pieces.

GPU time comes in short pieces (about 15 minutes of one GPU). A suite is a list of cases
(algorithm, env, config, seeds, env steps, published return and its source); each case is an
ordinary ``jaxrl.runner`` run directory under ``OUT/<case>/``, checkpointed by the runner, so a
call that reaches its deadline stops at a chunk boundary with every case resumable, and the next
call continues it (``runner.iterate(..., resume=True)``: the finished run equals an
uninterrupted one bitwise)::

    python benchmarks/suite.py --suite brax|minatar|playground [--twin cpu] \
        --deadline SECONDS --out DIR

Every call ("piece") appends its machine, versions, command, start/end and the steps it ran to
``OUT/suite.json`` and rewrites ``OUT/results.md``: env, algorithm, jaxrl return (mean over seeds
of the last 5 updates' ``episode_return``), published return and source, env steps, wall time
(all pieces, compiles included), env steps/s (all seeds, compiles excluded), peak device memory
(where the backend reports it), and the wall time to the case's stated target return.

``--twin cpu`` runs each case's CPU twin (same algorithm, env and settings, few envs and steps)
into its own directory: these run in the smoke suite and on any laptop. The mapping of each
published setting to jaxrl's config fields is written beside the cases (``BRAX_PPO_MAPPING``)
and in docs/benchmarks.md ("Published results at accelerator scale").
"""

from __future__ import annotations

import argparse
import csv
import dataclasses
import json
import math
import os
import platform
import shlex
import shutil
import sys
import time
import warnings
from pathlib import Path
from typing import Any

import jax
import numpy as np

from jaxrl import envs, registry, runner
from jaxrl.envs.wrappers import ScaleReward
from jaxrl.run_dir import latest_checkpoint, versions, write_json_atomic

__all__ = ["BRAX_PPO_MAPPING", "Case", "SUITES", "case_config", "main", "results_table",
           "run_suite", "scaled_env_id"]

RETURN_WINDOW = 5
"""updates averaged for a case's final return (as ``benchmarks/learning.py``)"""


@dataclasses.dataclass(frozen=True)
class Case:
    """One suite entry. ``config`` is the accelerator-scale config (field overrides of the
    algorithm's ``Config``); ``twin`` overrides it for the CPU twin. ``reward_scale`` multiplies
    the env's reward during training (Brax's ``reward_scaling``); returns are reported unscaled.
    ``target`` is the stated return whose wall time to reach is reported."""

    name: str
    algo: str
    env_id: str
    config: dict[str, Any]
    twin: dict[str, Any]
    published: float | None
    source: str
    env_kwargs: dict[str, Any] = dataclasses.field(default_factory=dict)
    twin_env_kwargs: dict[str, Any] | None = None
    seeds: int = 4
    twin_seeds: int = 2
    reward_scale: float = 1.0
    target: float | None = None
    note: str = ""


def scaled_env_id(env_id: str, scale: float) -> str:
    """Register (once) and return ``"<env_id>*<scale>"``: ``env_id`` with every reward times
    ``scale`` (``ScaleReward``), so the runner records and resumes it like any env id."""
    if scale == 1.0:
        return env_id
    scaled = f"{env_id}*{scale:g}"
    if scaled not in envs.list_envs():
        def factory(**kwargs: Any) -> tuple[Any, Any]:
            env, params = envs.make(env_id, **kwargs)
            return ScaleReward(env, scale), params

        envs.register(scaled, factory)
    return scaled


def case_config(case: Case, twin: bool) -> Any:
    """The case's ``Config`` (the twin's overrides applied for the CPU twin)."""
    fields = {**case.config, **(case.twin if twin else {})}
    fields = {k: tuple(v) if isinstance(v, list) else v for k, v in fields.items()}
    return registry.get(case.algo).load().Config(**fields)


# --- the suites -----------------------------------------------------------------------------

BRAX_NOTEBOOK = "Brax training notebook"

BRAX_PPO_MAPPING = {
    "num_timesteps": "total_timesteps",
    "num_envs": "num_envs",
    "batch_size × num_minibatches × unroll_length / num_envs": "num_steps (steps per env per "
    "update: ant 2048·32·5/4096 = 80), so one update sees the same 327,680 transitions",
    "num_minibatches": "num_minibatches (minibatch = batch_size · unroll_length transitions)",
    "num_updates_per_batch": "update_epochs",
    "discounting": "gamma",
    "gae_lambda (0.95)": "gae_lambda",
    "learning_rate (constant)": "learning_rate, anneal_lr = False",
    "entropy_cost": "ent_coef",
    "clipping_epsilon (0.3)": "clip_eps",
    "vf_loss_coefficient (0.5, on ½·MSE)": "vf_coef (0.5, on ½·MSE)",
    "max_grad_norm (None)": "max_grad_norm = 1e9 (no clip in effect)",
    "normalize_advantage": "norm_adv",
    "normalize_observations": "normalize_obs",
    "reward_scaling": "the env id's reward scale (scaled_env_id); returns reported unscaled",
    "policy (32,)×4 / value (256,)×5, swish": "hidden_sizes (one size for both: (32,)×4 "
    "policy-sized; stated), activation = swish",
    "GAE over each 5-step unroll, bootstrapped from V at its end": "GAE over the whole "
    "num_steps rollout (80 steps): same data, a longer λ-return (less bias, more variance); "
    "Brax's truncation at unroll ends is not reproduced",
    "bootstrap_on_timeout (False)": "jaxrl bootstraps V(final_obs) at truncation (time limit)",
}
"""Brax PPO keyword → jaxrl PPO ``Config`` field (docs/benchmarks.md repeats it)."""


def _brax_ppo(num_timesteps: int, num_envs: int, batch_size: int, unroll_length: int,
              num_minibatches: int, num_updates_per_batch: int, discounting: float,
              learning_rate: float, entropy_cost: float) -> dict[str, Any]:
    steps_per_update = batch_size * num_minibatches * unroll_length
    return {"total_timesteps": num_timesteps, "num_envs": num_envs,
            "num_steps": steps_per_update // num_envs, "num_minibatches": num_minibatches,
            "update_epochs": num_updates_per_batch, "gamma": discounting, "gae_lambda": 0.95,
            "learning_rate": learning_rate, "anneal_lr": False, "ent_coef": entropy_cost,
            "clip_eps": 0.3, "vf_coef": 0.5, "max_grad_norm": 1e9, "norm_adv": True,
            "normalize_obs": True, "hidden_sizes": (32, 32, 32, 32), "activation": "swish"}


def _brax_sac(num_timesteps: int, num_envs: int, batch_size: int, grad_updates_per_step: int,
              discounting: float, learning_rate: float) -> dict[str, Any]:
    return {"total_timesteps": num_timesteps, "num_envs": num_envs, "batch_size": batch_size,
            "updates_per_step": grad_updates_per_step, "gamma": discounting,
            "policy_lr": learning_rate, "q_lr": learning_rate, "buffer_size": 1_048_576,
            "learning_starts": 8192, "hidden_sizes": (256, 256), "log_frequency": 65_536,
            "eval_episodes": 0}


_PPO_TWIN = {"total_timesteps": 4 * 16 * 4, "num_envs": 4, "num_steps": 16, "num_minibatches": 2,
             "update_epochs": 2, "hidden_sizes": (16, 16)}
_SAC_TWIN = {"total_timesteps": 256 + 4 * 64, "num_envs": 2, "batch_size": 32,
             "updates_per_step": 1, "buffer_size": 1024, "learning_starts": 256,
             "log_frequency": 64, "hidden_sizes": (16, 16)}
_BRAX_TWIN_ENV = {"backend": "spring", "max_steps_in_episode": 64}

BRAX = [
    Case("ppo-ant", "ppo", "brax/ant",
         _brax_ppo(50_000_000, 4096, 2048, 5, 32, 4, 0.97, 3e-4, 1e-2), _PPO_TWIN,
         published=6000.0, source="the target issue 38 names for Brax's ant (not yet checked "
         "against the notebook's curve)", env_kwargs={"backend": "positional"},
         twin_env_kwargs=_BRAX_TWIN_ENV, reward_scale=10.0, target=6000.0,
         note="Brax's published settings; positional backend as the notebook"),
    Case("ppo-halfcheetah", "ppo", "brax/halfcheetah",
         _brax_ppo(10_000_000, 2048, 512, 20, 32, 8, 0.95, 3e-4, 1e-3), _PPO_TWIN,
         published=None, source=f"{BRAX_NOTEBOOK}'s settings; no return at 10M",
         env_kwargs={"backend": "positional"},
         twin_env_kwargs=_BRAX_TWIN_ENV, note="REDUCED budget: 10M of Brax's 50M steps"),
    Case("ppo-humanoid", "ppo", "brax/humanoid",
         _brax_ppo(10_000_000, 2048, 1024, 10, 32, 8, 0.97, 3e-4, 1e-3), _PPO_TWIN,
         published=None, source=f"{BRAX_NOTEBOOK}'s settings; no return at 10M",
         env_kwargs={"backend": "positional"},
         twin_env_kwargs=_BRAX_TWIN_ENV, reward_scale=0.1,
         note="REDUCED budget: 10M of Brax's 50M steps"),
    Case("sac-hopper", "sac", "brax/hopper",
         _brax_sac(1_048_576, 128, 512, 64, 0.997, 6e-4), _SAC_TWIN, published=None,
         source=f"{BRAX_NOTEBOOK}'s SAC settings (6.55M steps)", seeds=1,
         env_kwargs={"backend": "positional"}, twin_env_kwargs=_BRAX_TWIN_ENV, twin_seeds=1,
         reward_scale=30.0, note="REDUCED budget: 1M of 6.55M steps; jaxrl's SAC has no "
         "observation normalisation (Brax's does)"),
    Case("sac-walker2d", "sac", "brax/walker2d",
         _brax_sac(1_048_576, 128, 128, 32, 0.997, 6e-4), _SAC_TWIN, published=None,
         source=f"{BRAX_NOTEBOOK}'s SAC settings (7.86M steps)", seeds=1,
         env_kwargs={"backend": "positional"}, twin_env_kwargs=_BRAX_TWIN_ENV, twin_seeds=1,
         reward_scale=5.0, note="REDUCED budget: 1M of 7.86M steps; no observation "
         "normalisation in jaxrl's SAC"),
]

GYMNAX_SOURCE = "gymnax README: PPO at gymnax-blines' settings"
MINATAR_PPO = {"total_timesteps": 10_000_000, "num_envs": 64, "num_steps": 128,
               "num_minibatches": 8, "update_epochs": 4, "learning_rate": 5e-4,
               "anneal_lr": True, "gamma": 0.999, "gae_lambda": 0.95, "clip_eps": 0.2,
               "ent_coef": 0.01, "vf_coef": 0.5, "max_grad_norm": 0.5,
               "hidden_sizes": (256, 256), "activation": "relu"}
_MINATAR_TWIN = {"total_timesteps": 8 * 32 * 4, "num_envs": 8, "num_steps": 32,
                 "num_minibatches": 2, "update_epochs": 2, "hidden_sizes": (32, 32)}
MINATAR = [
    Case(f"ppo-{game.lower()}", "ppo", f"{game}-MinAtar", MINATAR_PPO, _MINATAR_TWIN,
         published=published, source=GYMNAX_SOURCE, target=published,
         note="gymnax-blines' MLP policy on the flattened grid")
    for game, published in (("Asterix", 15.0), ("Breakout", 28.0), ("Freeway", 58.0),
                            ("SpaceInvaders", 131.0))
]

PLAYGROUND_SOURCE = "MuJoCo Playground paper (arXiv:2502.08844), DM Control PPO curves"
_PLAYGROUND_PPO = {"num_envs": 2048, "num_steps": 1024 * 32 * 30 // 2048, "num_minibatches": 32,
                   "update_epochs": 16, "gamma": 0.995, "gae_lambda": 0.95,
                   "learning_rate": 1e-3, "anneal_lr": False, "ent_coef": 1e-2, "clip_eps": 0.3,
                   "vf_coef": 0.5, "max_grad_norm": 1e9, "norm_adv": True,
                   "normalize_obs": True, "hidden_sizes": (32, 32, 32, 32),
                   "activation": "swish"}
_PLAYGROUND_TWIN = {"total_timesteps": 2 * 16 * 2, "num_envs": 2, "num_steps": 16,
                    "num_minibatches": 2, "update_epochs": 1, "hidden_sizes": (8,)}
PLAYGROUND = [
    Case("ppo-cartpolebalance", "ppo", "playground/CartpoleBalance",
         {**_PLAYGROUND_PPO, "total_timesteps": 20_000_000}, _PLAYGROUND_TWIN,
         published=None, source=PLAYGROUND_SOURCE,
         reward_scale=10.0, twin_env_kwargs={"max_steps_in_episode": 32},
         note="REDUCED budget: 20M of Playground's 60M steps"),
    Case("ppo-cheetahrun", "ppo", "playground/CheetahRun",
         {**_PLAYGROUND_PPO, "total_timesteps": 20_000_000}, _PLAYGROUND_TWIN,
         published=None, source=PLAYGROUND_SOURCE,
         reward_scale=10.0, twin_env_kwargs={"max_steps_in_episode": 32},
         note="REDUCED budget: 20M of Playground's 60M steps"),
]

SUITES: dict[str, list[Case]] = {"brax": BRAX, "minatar": MINATAR, "playground": PLAYGROUND}


# --- running --------------------------------------------------------------------------------

def machine() -> dict[str, Any]:
    """The machine a piece ran on."""
    device = jax.devices()[0]
    return {"backend": jax.default_backend(), "device": getattr(device, "device_kind", str(device)),
            "devices": jax.device_count(), "cpu_count": os.cpu_count(),
            "platform": platform.platform(), "python": platform.python_version(),
            "hostname": platform.node()}


def peak_memory_bytes() -> int | None:
    """Peak bytes in use on device 0 since the process started, where the backend reports it
    (GPU/TPU); None on CPU."""
    stats = jax.devices()[0].memory_stats() or {}
    return stats.get("peak_bytes_in_use")


def _read_state(path: Path) -> dict[str, Any]:
    return json.loads(path.read_text()) if path.exists() else {"pieces": [], "cases": {}}


def _finished_on_disk(case_dir: Path) -> bool:
    """Whether the newest checkpoint in ``case_dir`` is the run's last update."""
    from jaxrl import checkpoint

    newest = latest_checkpoint(case_dir)
    if newest is None:
        return False
    metadata = checkpoint.read_metadata(newest)
    return int(metadata.get("updates", -1)) == int(metadata.get("num_updates", -2))


def final_return(case_dir: Path, scale: float) -> tuple[float, float, int, dict[int, float]]:
    """Mean and std over seeds of the last ``RETURN_WINDOW`` updates' ``episode_return`` in
    ``metrics.csv`` (unscaled by ``scale``), the last step, and the mean over seeds per step."""
    with warnings.catch_warnings():  # no finished episode yet: NaN, not a warning
        warnings.simplefilter("ignore", RuntimeWarning)
        return _final_return(case_dir, scale)


def _final_return(case_dir: Path, scale: float) -> tuple[float, float, int, dict[int, float]]:
    with open(case_dir / "metrics.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    by_seed: dict[str, list[tuple[int, float]]] = {}
    for row in rows:
        value = float(row["episode_return"]) if row["episode_return"] else math.nan
        by_seed.setdefault(row["seed"], []).append((int(row["step"]), value / scale))
    per_seed = [np.nanmean([v for _, v in values[-RETURN_WINDOW:]]) for values in
                by_seed.values()]
    steps = sorted({s for values in by_seed.values() for s, _ in values})
    curve = {s: float(np.nanmean([v for values in by_seed.values() for t, v in values if t == s]))
             for s in steps}
    return float(np.nanmean(per_seed)), float(np.nanstd(per_seed)), steps[-1], curve


def run_case(case: Case, twin: bool, case_dir: Path, deadline_at: float, record: dict[str, Any],
             progress: bool) -> bool:
    """Run (or continue) ``case`` in ``case_dir`` until it finishes or the next chunk would end
    past ``deadline_at`` (``time.monotonic()``); at least one chunk runs per call. Updates
    ``record`` (the case's entry in suite.json); returns whether the case finished."""
    config = case_config(case, twin)
    env_kwargs = (case.twin_env_kwargs if twin and case.twin_env_kwargs is not None
                  else case.env_kwargs)
    seeds = case.twin_seeds if twin else case.seeds
    env_id = scaled_env_id(case.env_id, case.reward_scale)
    resume = (case_dir / "config.json").exists()
    if resume and latest_checkpoint(case_dir) is None:  # stopped before its first checkpoint
        shutil.rmtree(case_dir)
        resume = False
    start = time.monotonic()
    if resume and _finished_on_disk(case_dir):  # finished, but suite.json was not written
        record.update(finished=True, steps_done=final_return(case_dir, case.reward_scale)[2])
        return True
    first_at = last_at = None
    chunks_after_first = steps_after_first = previous_step = 0
    finished = False
    last_chunk_seconds = 0.0
    for chunk in runner.iterate(case.algo, env_id, config, seed=0, seeds=seeds, out=case_dir,
                                env_kwargs=env_kwargs, resume=resume, progress=progress):
        now = time.monotonic()
        if first_at is None:
            first_at = now
        else:
            last_chunk_seconds = now - last_at
            chunks_after_first += 1
            steps_after_first += int(chunk.steps[-1]) - previous_step
        last_at, previous_step = now, int(chunk.steps[-1])
        record["steps_done"] = int(chunk.steps[-1])
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            mean_now = float(np.nanmean(chunk.metrics["episode_return"][:, -1]))
        mean_now /= case.reward_scale
        if (case.target is not None and "target_reached" not in record
                and np.isfinite(mean_now) and mean_now >= case.target):
            record["target_reached"] = {"step": int(chunk.steps[-1]), "wall_seconds": round(
                record.get("wall_seconds", 0.0) + now - start, 2)}
        if chunk.done:  # leave before the runner's returns.png / timings.json: the suite
            finished = True  # records its own timings (suite.json), and plotting costs CPU
            break
        if now + last_chunk_seconds > deadline_at:
            break  # iterate checkpoints the last chunk when closed
    wall = time.monotonic() - start
    record["wall_seconds"] = round(record.get("wall_seconds", 0.0) + wall, 2)
    record["first_chunk_seconds"] = round(first_at - start, 2) if first_at else None
    if chunks_after_first:
        record["run_seconds"] = round(record.get("run_seconds", 0.0) + last_at - first_at, 2)
        record["timed_steps"] = record.get("timed_steps", 0) + steps_after_first
    peak = peak_memory_bytes()
    if peak is not None:
        record["peak_memory_bytes"] = max(record.get("peak_memory_bytes", 0), peak)
    record["finished"] = finished
    return finished


def run_suite(cases: list[Case], out: str | Path, *, twin: bool = False,
              deadline: float = math.inf, command: str | None = None,
              progress: bool = True) -> dict[str, Any]:
    """Run every unfinished case of ``cases`` into ``out/<case.name>`` until ``deadline``
    seconds from now; record the piece in ``out/suite.json`` and write ``out/results.md``.
    Returns the suite record."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    state_path = out / "suite.json"
    state = _read_state(state_path)
    deadline_at = time.monotonic() + deadline
    piece = {"machine": machine(), "versions": versions(), "twin": twin,
             "command": command or shlex.join(sys.argv), "deadline_seconds": deadline,
             "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "ran": {}}
    ran_anything, start_cost = False, 0.0
    for case in cases:
        record = state["cases"].setdefault(case.name, {})
        if record.get("finished"):
            continue
        # After the first case, start another only if its compile and first chunk (as last
        # measured, else the largest of this call's) fit before the deadline.
        cost = record.get("first_chunk_seconds") or start_cost
        if ran_anything and time.monotonic() + cost >= deadline_at:
            break
        before = record.get("steps_done", 0)
        run_case(case, twin, out / case.name, deadline_at, record, progress)
        ran_anything = True
        start_cost = max(start_cost, record.get("first_chunk_seconds") or 0.0)
        piece["ran"][case.name] = [before, record.get("steps_done", before)]
        mean, std, steps, _ = final_return(out / case.name, case.reward_scale)
        record.update(final_return_mean=mean, final_return_std=std, env_steps=steps)
        write_json_atomic(state_path, state)  # a piece killed later keeps this case's progress
    piece["ended"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    state["pieces"].append(piece)
    write_json_atomic(state_path, state)
    (out / "results.md").write_text(results_table(cases, state, twin))
    return state


def results_table(cases: list[Case], state: dict[str, Any], twin: bool) -> str:
    """The markdown results table of a suite record."""
    lines = ["| env | algorithm | jaxrl return | published return (source) | env steps | "
             "seeds | wall s | env steps/s | peak memory | time to target | notes |",
             "|---|---|---|---|---|---|---|---|---|---|---|"]
    for case in cases:
        record = state["cases"].get(case.name, {})
        if "final_return_mean" in record:
            result = f"{record['final_return_mean']:.1f} ± {record['final_return_std']:.1f}"
        else:
            result = "not run"
        total = case_config(case, twin).total_timesteps
        steps = f"{record.get('steps_done', 0):,} / {total:,}"
        seeds = case.twin_seeds if twin else case.seeds
        rate = (f"{record['timed_steps'] * seeds / record['run_seconds']:,.0f}"
                if record.get("run_seconds") else "-")
        peak = (f"{record['peak_memory_bytes'] / 2**30:.2f} GiB"
                if record.get("peak_memory_bytes") else "n/a")
        reached = record.get("target_reached")
        to_target = (f"{reached['wall_seconds']:.0f} s ({reached['step']:,} steps)" if reached
                     else ("not reached" if case.target is not None else "-"))
        published = "-" if case.published is None else f"{case.published:g}"
        kwargs = case.twin_env_kwargs if twin and case.twin_env_kwargs is not None else \
            case.env_kwargs
        backend = f"backend {kwargs['backend']}; " if "backend" in kwargs else ""
        note = ("CPU twin; " if twin else "") + backend + case.note
        lines.append(f"| {case.env_id} | {case.algo} | {result} | {published} ({case.source}) "
                     f"| {steps} | {seeds} | {record.get('wall_seconds', 0):.0f} | {rate} "
                     f"| {peak} | {to_target} | {note} |")
    pieces = state.get("pieces", [])
    lines += ["", f"{len(pieces)} piece(s):"]
    for piece in pieces:
        m = piece["machine"]
        lines.append(f"- {piece['started']}–{piece.get('ended', '?')} on {m['device']} "
                     f"({m['backend']}), jax {piece['versions'].get('jax')}: "
                     f"`{piece['command']}`")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--suite", choices=sorted(SUITES), required=True)
    parser.add_argument("--twin", choices=["cpu"], help="run the CPU twins (few envs, steps)")
    parser.add_argument("--deadline", type=float, default=math.inf,
                        help="stop at the first chunk boundary that the next chunk would cross, "
                             "this many seconds from now (at least one chunk runs)")
    parser.add_argument("--out", type=Path, help="suite directory (default "
                        "benchmarks/results/suite_<suite>[_cpu])")
    parser.add_argument("--only", action="append", help="case name (repeatable)")
    parser.add_argument("--quiet", action="store_true", help="no progress output")
    args = parser.parse_args(argv)
    twin = args.twin == "cpu"
    cases = SUITES[args.suite]
    if args.only:
        unknown = sorted(set(args.only) - {c.name for c in cases})
        if unknown:
            parser.error(f"unknown case(s) {unknown}; {args.suite}: "
                         f"{', '.join(c.name for c in cases)}")
        cases = [c for c in cases if c.name in args.only]
    if args.suite == "playground":
        from jaxrl.envs import playground_env  # noqa: F401  (registers playground/<EnvName>)
    out = args.out or (Path(__file__).parent / "results" /
                       f"suite_{args.suite}{'_cpu' if twin else ''}")
    state = run_suite(cases, out, twin=twin, deadline=args.deadline,
                      command=shlex.join(["python", *sys.argv]), progress=not args.quiet)
    print((out / "results.md").read_text())
    left = [c.name for c in cases if not state["cases"].get(c.name, {}).get("finished")]
    print(f"unfinished: {', '.join(left)} (run the same command again)" if left
          else "every case finished")


if __name__ == "__main__":
    main()
