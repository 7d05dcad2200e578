"""Run one benchmark case with sbx (inside ``.venvs/sbx``) and print one ``BENCH_ROW``.

    .venvs/sbx/bin/python sbx_runner.py --case '<case json>'

sbx (Stable Baselines Jax) trains one seed at a time on gymnasium's version of the env, stepping
it in Python and jitting only the gradient steps; seeds run one after another. The case's
``config`` uses jaxrl's (CleanRL's) names, mapped to sbx's: ``train_frequency → train_freq``,
``target_network_frequency → target_update_interval``, ``start_e / end_e →
exploration_initial_eps / exploration_final_eps``, ``policy_frequency → policy_delay``,
``policy_noise / noise_clip → target_policy_noise / target_noise_clip``, ``hidden_sizes`` /
``activation`` → ``policy_kwargs``, SAC's ``policy_lr = q_lr → learning_rate``;
``updates_per_step`` becomes ``gradient_steps`` per ``train_freq`` env steps and TD3's
``exploration_noise`` a ``NormalActionNoise`` of that scale. Only
``num_envs = 1`` is supported.

Compile seconds: a throw-away model learns ``learning_starts + 2 · train_freq`` steps first,
which jit-compiles sbx's class-level update functions (the cache is shared by later models in
this process); run seconds are the full ``learn`` of a fresh model. The final return is
stable-baselines3's ``evaluate_policy`` over 10 deterministic episodes, mean over seeds.
"""

from __future__ import annotations

import importlib.metadata
import json
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import flax.linen as nn  # noqa: E402
import gymnasium  # noqa: E402
import measure  # noqa: E402
import numpy as np  # noqa: E402
import sbx  # noqa: E402
from stable_baselines3.common.evaluation import evaluate_policy  # noqa: E402
from stable_baselines3.common.noise import NormalActionNoise  # noqa: E402

RENAMES = {"train_frequency": "train_freq", "target_network_frequency": "target_update_interval",
           "start_e": "exploration_initial_eps", "end_e": "exploration_final_eps",
           "policy_frequency": "policy_delay", "policy_noise": "target_policy_noise",
           "noise_clip": "target_noise_clip", "updates_per_step": "gradient_steps"}
ALGOS = {"dqn": "DQN", "sac": "SAC", "td3": "TD3"}


def translate(algo: str, config: dict[str, Any]) -> tuple[dict[str, Any], int]:
    """``(sbx keyword arguments, total_timesteps)`` for a jaxrl-named ``config``."""
    if algo not in ALGOS:
        raise ValueError(f"sbx runner has no {algo!r}; choose one of: {', '.join(ALGOS)}")
    config = dict(config)
    if config.pop("num_envs", 1) != 1:
        raise ValueError("the sbx runner supports num_envs=1 only")
    total = config.pop("total_timesteps")
    for name in ("log_frequency", "eval_episodes"):  # jaxrl logging settings
        config.pop(name, None)
    for name, needed in (("n_step", 1), ("anneal_lr", False), ("dueling", False)):
        if config.pop(name, needed) != needed:
            raise ValueError(f"sbx {algo} supports only {name}={needed}")
    config.pop("double_q", None)  # sbx's DQN always uses plain max targets (noted in the row)
    if algo == "dqn":
        config.pop("max_grad_norm", None)  # sbx's DQN takes none (noted in the row)
    policy_kwargs = {"net_arch": list(config.pop("hidden_sizes", (64, 64))),
                     "activation_fn": getattr(nn, config.pop("activation", "relu"))}
    if "policy_lr" in config:
        policy_lr, q_lr = config.pop("policy_lr"), config.pop("q_lr")
        if policy_lr != q_lr:
            raise ValueError(f"sbx has one learning rate: set policy_lr = q_lr (got {policy_lr} "
                             f"and {q_lr})")
        config["learning_rate"] = policy_lr
    kwargs = {RENAMES.get(name, name): value for name, value in config.items()}
    return {**kwargs, "policy_kwargs": policy_kwargs}, total


def main(case: dict[str, Any]) -> None:
    """Train ``case["seeds"]`` seeds one after another; print the row."""
    algo_cls = getattr(sbx, ALGOS[case["algo"]])
    kwargs, total = translate(case["algo"], case["config"])
    machine = measure.machine()
    env_id = case.get("gymnasium_env") or case["env"]
    noise = kwargs.pop("exploration_noise", None)
    if noise is not None:  # Gaussian noise on actions scaled to [-1, 1], as in jaxrl's TD3
        dim = gymnasium.make(env_id).action_space.shape[0]
        kwargs["action_noise"] = NormalActionNoise(np.zeros(dim), noise * np.ones(dim))
    start = time.perf_counter()
    warmup_steps = kwargs.get("learning_starts", 100) + 2 * kwargs.get("train_freq", 1)
    algo_cls("MlpPolicy", env_id, seed=0, **kwargs).learn(warmup_steps)
    compile_s = time.perf_counter() - start
    run_s, returns = 0.0, []
    for seed in range(case.get("seed", 0), case.get("seed", 0) + case["seeds"]):
        model = algo_cls("MlpPolicy", env_id, seed=seed, **kwargs)
        start = time.perf_counter()
        model.learn(total)
        run_s += time.perf_counter() - start
        mean_return, _ = evaluate_policy(model, gymnasium.make(env_id), n_eval_episodes=10)
        returns.append(mean_return)
    trained = max(0, total - kwargs.get("learning_starts", 100))
    gradient_steps = trained // kwargs.get("train_freq", 1) * kwargs.get("gradient_steps", 1)
    measure.emit({
        "machine": machine, "compile_s": compile_s, "run_s": run_s,
        "env_steps_per_seed": total, "gradient_steps_per_seed": gradient_steps,
        "matmul_flops": None, "final_return": measure.nanmean(returns),
        "return_kind": "evaluation: 10 deterministic episodes (sb3 evaluate_policy), mean "
                       "over seeds", "note": "seeds run sequentially (sbx has no vmap)" + (
            "; plain (not double) Q targets, no gradient clipping" if case["algo"] == "dqn"
            else ""),
        "versions": {name: importlib.metadata.version(name)
                     for name in ("sbx-rl", "stable_baselines3", "gymnasium", "jax")},
    })


if __name__ == "__main__":
    main(json.loads(sys.argv[-1]))
