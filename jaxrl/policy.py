"""Load the policy of a saved run and evaluate it (``jaxrl eval DIR``).

In a notebook::

    from jaxrl.policy import load_policy
    policy = load_policy("runs/ppo-CartPole-v1-…", seed=0)       # newest checkpoint, seed 0
    act = jax.jit(policy.act, static_argnames="deterministic")
    action = act(policy.params, obs, jax.random.key(1), deterministic=True)

``policy.params`` is that seed's whole restored train state (what the agent's ``act`` reads:
parameters and, for on-policy agents, the observation-normalisation statistics); ``policy.act``
is the agent's ``act(train_state, obs, key, deterministic)``, pure and jit-able, for one
observation or a batch. Agents with memory or that plan on the env state act through
``policy.agent`` (``jaxrl.training.agent.policy_fn``), which evaluation does for every agent.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any, NamedTuple

import jax
import numpy as np

from jaxrl import checkpoint, envs, registry
from jaxrl.evaluation import episode_returns
from jaxrl.run_dir import latest_checkpoint, read_run
from jaxrl.runner import agent_factory, sweep_settings
from jaxrl.training.agent import Agent, policy_fn

__all__ = ["EVAL_STEP_MARGIN", "Policy", "evaluate_policy", "evaluate_run", "load_policy",
           "load_policies"]

EVAL_STEP_MARGIN = 10
"""Steps beyond the env's ``max_steps_in_episode`` an evaluation runs, so every env ends one."""


class Policy(NamedTuple):
    """A trained policy: ``act(params, obs, key, deterministic=False) -> action``."""

    act: Callable[[Any, jax.Array, jax.Array, bool], jax.Array]
    params: Any
    algo: str
    env_id: str
    env: Any
    env_params: Any
    config: Any
    seed: int
    setting: dict[str, float]
    updates: int
    agent: Agent
    """the configured agent (its acting protocol: memory, env state)"""


def load_policies(run_dir: str | Path, checkpoint_path: str | Path | None = None) -> list[Policy]:
    """Every run (sweep setting × seed, setting-major as in ``metrics.csv``) of ``run_dir``
    from its newest checkpoint (or ``checkpoint_path``); ``CheckpointError`` if none is valid."""
    spec = read_run(run_dir)
    path = Path(checkpoint_path) if checkpoint_path is not None else latest_checkpoint(run_dir)
    env, env_params = envs.make(spec.env_id, **spec.env_kwargs)
    settings = sweep_settings(spec.config, spec.sweep)
    make_agent = agent_factory(spec.algo, spec.env_id, env, env_params, spec.dataset)
    agents = [make_agent(spec.config.replace(**setting), env, env_params) for setting in settings]
    # An agent that acts in a wrapper of the env (RL²'s trials) is evaluated there.
    wrap_env = getattr(registry.get(spec.algo).load(), "wrap_env", None)
    if wrap_env is not None:
        env = wrap_env(spec.config, env)
    runs = len(settings) * spec.seeds
    single = jax.eval_shape(agents[0].init, jax.random.key(0))
    like = jax.tree.map(lambda s: jax.ShapeDtypeStruct((runs, *s.shape), s.dtype), single)
    states = checkpoint.restore(path, like=like)
    updates = int(checkpoint.read_metadata(path).get("updates", 0))
    leaves, treedef = jax.tree.flatten(states)
    policies = []
    for run_index in range(runs):
        setting_index, seed_index = divmod(run_index, spec.seeds)
        params = jax.tree.unflatten(treedef, [leaf[run_index] for leaf in leaves])
        policies.append(Policy(
            act=agents[setting_index].act, params=params,
            algo=spec.algo, env_id=spec.env_id, env=env, env_params=env_params,
            config=spec.config.replace(**settings[setting_index]), seed=spec.seed + seed_index,
            setting=settings[setting_index], updates=updates, agent=agents[setting_index]))
    return policies


def load_policy(run_dir: str | Path, seed: int | None = None, setting: int = 0,
                checkpoint_path: str | Path | None = None) -> Policy:
    """The policy of training seed ``seed`` (default: the run's first) and sweep setting index
    ``setting`` of ``run_dir``; ``ValueError`` naming the available seeds otherwise."""
    policies = load_policies(run_dir, checkpoint_path)
    seeds = sorted({p.seed for p in policies})
    settings = len(policies) // len(seeds)
    chosen = seeds[0] if seed is None else seed
    if chosen not in seeds:
        raise ValueError(f"{run_dir} trained seeds {seeds[0]}..{seeds[-1]}, not seed {seed}")
    if not 0 <= setting < settings:
        raise ValueError(f"setting must be in 0..{settings - 1} (the sweep grid of {run_dir}), "
                         f"got {setting}")
    return policies[setting * len(seeds) + seeds.index(chosen)]


def evaluate_policy(policy: Policy, key: jax.Array, episodes: int,
                    deterministic: bool) -> np.ndarray:
    """Returns of ``episodes`` episodes: ``episodes`` fresh envs, each run to the end of its first
    episode (within ``max_steps_in_episode + EVAL_STEP_MARGIN`` steps; ``evaluation``)."""
    if episodes < 1:
        raise ValueError(f"--episodes must be >= 1, got {episodes}")
    # An env that strings episodes into one (RL²'s trials) says how many.
    max_steps = (int(getattr(policy.env_params, "max_steps_in_episode", 1000))
                 * getattr(policy.env, "episodes_per_trial", 1))
    returns, finished = _evaluator(policy, episodes, max_steps + EVAL_STEP_MARGIN,
                                   deterministic)(policy.params, key)
    return np.asarray(returns)[np.asarray(finished)]


def _evaluator(policy: Policy, episodes: int, num_steps: int, deterministic: bool):
    def run(params, key):
        act, initial_carry = policy_fn(policy.agent, params, deterministic)
        return episode_returns(key, policy.env, policy.env_params, act, episodes, num_steps,
                               initial_carry=initial_carry)

    return jax.jit(run)


def evaluate_run(run_dir: str | Path, episodes: int = 10, seed: int | None = None,
                 eval_seed: int = 0) -> list[dict[str, Any]]:
    """Mean ± std return of every saved policy of ``run_dir`` (or only training seed ``seed``),
    deterministic and stochastic, over ``episodes`` episodes from ``jax.random.key(eval_seed)``.

    One dict per run: ``seed``, ``setting``, ``updates``, and ``deterministic`` / ``stochastic``
    each ``{"mean", "std", "episodes"}`` (episodes that finished).
    """
    if episodes < 1:
        raise ValueError(f"--episodes must be >= 1, got {episodes}")
    policies = load_policies(run_dir)
    if seed is not None:
        seeds = sorted({p.seed for p in policies})
        policies = [p for p in policies if p.seed == seed]
        if not policies:
            raise ValueError(f"{run_dir} trained seeds {seeds[0]}..{seeds[-1]}, not seed {seed}")
    max_steps = int(getattr(policies[0].env_params, "max_steps_in_episode", 1000))
    evaluators: dict[tuple[Any, ...], Any] = {}  # one compilation per sweep setting and mode
    results = []
    for policy in policies:
        row: dict[str, Any] = {"seed": policy.seed, "setting": policy.setting,
                               "updates": policy.updates}
        for mode in ("deterministic", "stochastic"):
            cache_key = (*policy.setting.items(), mode)
            if cache_key not in evaluators:
                evaluators[cache_key] = _evaluator(policy, episodes, max_steps + EVAL_STEP_MARGIN,
                                                   mode == "deterministic")
            returns, finished = evaluators[cache_key](policy.params, jax.random.key(eval_seed))
            done = np.asarray(returns)[np.asarray(finished)]
            row[mode] = {"mean": float(done.mean()) if done.size else float("nan"),
                         "std": float(done.std()) if done.size else float("nan"),
                         "episodes": int(done.size)}
        results.append(row)
    return results
