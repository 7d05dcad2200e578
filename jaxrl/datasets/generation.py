"""Making offline datasets: behaviour policies, collection, and ``generate`` (``jaxrl dataset``).

This module sits above the agents and the runner (it trains or loads the experts it collects
with); the format it writes is ``jaxrl.datasets.format``.

Behaviour policies and their log-probabilities (``log_probs``):

- ``random``: uniform over the action space (``-log n`` / ``-Σ log(high - low)``).
- ``expert``: the algorithm ``expert_algo`` trained for ``expert_steps`` env steps by
  ``jaxrl.runner.run``. With ``noise=None`` an agent that exposes its action distribution
  (``Agent.behaviour``) acts with its own stochastic policy and stores its own log-prob.
  Otherwise (or for agents without one) the behaviour is the expert's deterministic action plus
  noise: ε-greedy with ``ε = noise`` for discrete actions,
  ``π_b(a|s) = (1 - ε) 1[a = a*(s)] + ε / n``; for continuous actions
  ``u ~ N(a*(s), (noise · (high - low) / 2)²)`` per dimension, executed as
  ``clip(u, low, high)``. ``expert_algo="scripted"`` uses the env's hand-written expert
  (``jaxrl.envs.experts``) with that noise rule (default ``DEFAULT_NOISE``) instead of training
  one: expert data in seconds.
- ``medium``: the same algorithm and behaviour rule, trained for ``medium_fraction`` (default
  0.25) of ``expert_steps`` — a partially trained agent.
- ``mixed``: the collecting envs split in thirds (env ``i`` uses component ``i mod 3``): random,
  medium, expert. Each transition's log-prob is that of the component that acted.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

import distrax
import jax
import jax.numpy as jnp
import numpy as np

from jaxrl import envs
from jaxrl.agents import ALGORITHMS, get_algorithm
from jaxrl.datasets.format import Dataset
from jaxrl.envs.experts import scripted_expert
from jaxrl.envs.spaces import Box, Discrete, Space
from jaxrl.evaluation import evaluate
from jaxrl.policy import load_policy
from jaxrl.rollout import reset_envs, rollout
from jaxrl.runner import run
from jaxrl.training.agent import policy_fn

__all__ = ["DEFAULT_NOISE", "EXPERT_CONFIGS", "POLICY_KINDS", "SCRIPTED", "PolicyFn",
           "agent_policy", "behaviour_of", "collect", "generate", "noisy_policy",
           "random_policy", "train_expert"]

POLICY_KINDS = ("expert", "medium", "random", "mixed")
DEFAULT_NOISE = 0.1
"""Behaviour noise (ε, or σ as a fraction of the half-range) where ``noise=None`` asks for the
deterministic expert plus noise (``noisy_policy``)."""
SCRIPTED = "scripted"
"""``expert_algo`` naming the env's hand-written expert (``jaxrl.envs.experts``), not an agent."""

PolicyFn = Callable[[jax.Array], distrax.Distribution]
"""Batched observations ``[B, ...]`` → the behaviour distribution over (pre-clip) actions."""


def random_policy(action_space: Space) -> PolicyFn:
    """Uniform over the action space (a ``Box`` needs finite bounds)."""
    if isinstance(action_space, Discrete):
        return lambda obs: distrax.Categorical(logits=jnp.zeros((obs.shape[0], action_space.n)))
    low = jnp.broadcast_to(jnp.asarray(action_space.low, jnp.float32), action_space.shape)
    high = jnp.broadcast_to(jnp.asarray(action_space.high, jnp.float32), action_space.shape)
    if not (np.isfinite(np.asarray(low)).all() and np.isfinite(np.asarray(high)).all()):
        raise ValueError("a random policy needs finite action bounds; this env's are "
                         f"[{action_space.low}, {action_space.high}]")
    return lambda obs: distrax.Independent(
        distrax.Uniform(jnp.broadcast_to(low, (obs.shape[0], *low.shape)),
                        jnp.broadcast_to(high, (obs.shape[0], *high.shape))), 1)


def noisy_policy(act: Callable[[jax.Array], jax.Array], action_space: Space,
                 noise: float) -> PolicyFn:
    """A deterministic ``act(obs) -> a*`` made stochastic: ε-greedy (``ε = noise``) for discrete
    actions, ``N(a*, (noise · (high - low) / 2)²)`` per dimension for continuous ones."""
    if isinstance(action_space, Discrete):
        def epsilon_greedy(obs: jax.Array) -> distrax.Distribution:
            greedy = jax.nn.one_hot(act(obs), action_space.n)
            return distrax.Categorical(probs=(1.0 - noise) * greedy + noise / action_space.n)

        return epsilon_greedy
    if noise <= 0:
        raise ValueError(f"continuous behaviour noise must be > 0 (a finite log-prob needs a "
                         f"density), got {noise}")
    scale = noise * (jnp.asarray(action_space.high) - jnp.asarray(action_space.low)) / 2

    def gaussian(obs: jax.Array) -> distrax.Distribution:
        mode = act(obs)
        return distrax.MultivariateNormalDiag(mode, jnp.broadcast_to(scale, mode.shape))

    return gaussian


def agent_policy(module: Any, config: Any, env: Any, env_params: Any, train_state: Any,
                 noise: float | None) -> tuple[PolicyFn, str]:
    """The behaviour of one trained agent and its description (see the module docstring):
    ``Agent.behaviour`` where ``noise`` is None and the agent has one, else ``noisy_policy``
    around its deterministic action (``training.agent.policy_fn``)."""
    agent = module.make_agent(config, env, env_params)
    if noise is None and agent.behaviour is not None:
        return (lambda obs: agent.behaviour(train_state, obs)), "the agent's own stochastic policy"
    if agent.initial_carry is not None or agent.acts_on_env_state:
        raise ValueError("datasets are collected with policies of the observation alone; this "
                         "agent has memory or reads the env state")
    noise = DEFAULT_NOISE if noise is None else noise
    policy, _ = policy_fn(agent, train_state, deterministic=True)

    def greedy(obs: jax.Array) -> jax.Array:
        return policy(jax.random.key(0), obs, None, ())[0]

    action_space = env.action_space(env_params)
    return noisy_policy(greedy, action_space, noise), _noise_rule(action_space, noise)


def _noise_rule(action_space: Space, noise: float) -> str:
    """How ``noisy_policy`` acts, for the dataset's metadata."""
    if isinstance(action_space, Discrete):
        return f"epsilon-greedy around the greedy action, epsilon = {noise:g}"
    return (f"greedy action + N(0, ({noise:g} (high - low) / 2)^2) noise, clipped; "
            "log-prob of the unclipped sample")


EXPERT_CONFIGS: dict[tuple[str, str], dict[str, Any]] = {
    ("ppo", "Pendulum-v1"): dict(
        num_envs=16, num_steps=128, update_epochs=10, num_minibatches=8, normalize_obs=True,
        normalize_reward=True, learning_rate=3e-4, gamma=0.99, gae_lambda=0.95),
}
"""Known-good overrides of an algorithm's default Config per env (``benchmarks/learning.py``)."""


def behaviour_of(kind: str, env_id: str, env: Any, env_params: Any, *, expert_algo: str = "ppo",
                 expert_steps: int | None = None, expert_run: str | None = None,
                 noise: float | None = None, medium_fraction: float = 0.25, seed: int = 0,
                 env_kwargs: dict[str, Any] | None = None) -> tuple[PolicyFn, str, dict]:
    """``(policy, description, provenance)`` of behaviour ``kind`` in ``random, medium, expert``.

    ``expert`` loads the newest checkpoint of ``expert_run`` (a ``jaxrl train`` run directory,
    via ``jaxrl.policy.load_policy``) when given, else the scripted expert
    (``expert_algo="scripted"``, no medium) or ``expert_algo`` trained for ``expert_steps``;
    ``medium`` trains it for ``medium_fraction`` of those steps.
    """
    if kind == "random":
        return random_policy(env.action_space(env_params)), "uniform over the action space", {}
    if kind == "expert" and expert_run is not None:
        loaded = load_policy(expert_run)
        if loaded.env_id != env_id:
            raise ValueError(f"--expert-run {expert_run} was trained on {loaded.env_id!r}, "
                             f"not {env_id!r}")
        policy, description = agent_policy(get_algorithm(loaded.algo), loaded.config, env,
                                           env_params, loaded.params, noise)
        return policy, description, {"run": str(expert_run), "algo": loaded.algo,
                                     "seed": loaded.seed, "updates": loaded.updates}
    if expert_algo == SCRIPTED:
        if kind != "expert":
            raise ValueError(f"the scripted expert has no partially trained ({kind}) version: "
                             "ask for the expert or random behaviour, or name an algorithm to "
                             "train (e.g. ppo)")
        noise = DEFAULT_NOISE if noise is None else noise
        action_space = env.action_space(env_params)
        return (noisy_policy(scripted_expert(env), action_space, noise),
                f"scripted expert: {_noise_rule(action_space, noise)}", {"algo": SCRIPTED})
    if expert_algo not in ALGORITHMS:
        raise ValueError(f"unknown expert algorithm {expert_algo!r}; choose {SCRIPTED} or one of: "
                         f"{', '.join(ALGORITHMS)}")
    full = expert_steps or get_algorithm(expert_algo).Config().total_timesteps
    steps = full if kind == "expert" else max(1, int(full * medium_fraction))
    module, config, state = train_expert(expert_algo, env_id, steps, seed, env_kwargs)
    policy, description = agent_policy(module, config, env, env_params, state, noise)
    return policy, description, {"algo": expert_algo, "env_steps": steps, "seed": seed}


def train_expert(algo: str, env_id: str, steps: int | None, seed: int = 0,
                 env_kwargs: dict[str, Any] | None = None) -> tuple[Any, Any, Any]:
    """Train ``algo`` on ``env_id`` for ``steps`` env steps (default: the Config's) through
    ``jaxrl.runner.run`` with ``out=None``: ``(module, config, train_state)`` of the one seed."""
    module = get_algorithm(algo)
    config = module.Config(**EXPERT_CONFIGS.get((algo, env_id), {}))
    if steps is not None:
        config = config.replace(total_timesteps=steps)
    result = run(algo, env_id, config, seed=seed, out=None, env_kwargs=env_kwargs,
                 progress=False)
    return module, config, jax.tree.map(lambda x: x[0], result.train_state)


def collect(key: jax.Array, env: Any, env_params: Any, components: Sequence[PolicyFn],
            num_envs: int, steps_per_env: int) -> dict[str, jax.Array]:
    """Roll out ``num_envs`` envs for ``steps_per_env`` steps with ``jaxrl.rollout.rollout``; env
    ``i`` acts with ``components[i mod len(components)]``. Returns the flat env-major arrays of
    ``ARRAY_KEYS`` (the last step of every env marked ``truncated`` unless it terminated)."""
    action_space = env.action_space(env_params)
    owner = jnp.arange(num_envs) % len(components)

    def policy(key, obs):
        samples, log_probs = [], []
        for component_key, component in zip(jax.random.split(key, len(components)), components,
                                            strict=True):
            sample, log_prob = component(obs).sample_and_log_prob(seed=component_key)
            samples.append(sample)
            log_probs.append(log_prob)
        action = jnp.stack(samples)[owner, jnp.arange(num_envs)]
        log_prob = jnp.stack(log_probs)[owner, jnp.arange(num_envs)]
        if isinstance(action_space, Box):
            action = jnp.clip(action, action_space.low, action_space.high)
        return action, {"log_prob": log_prob}

    reset_key, run_key = jax.random.split(key)
    obs, env_state = reset_envs(reset_key, env, env_params, num_envs)
    _, _, traj = rollout(run_key, env, env_params, env_state, obs, policy, steps_per_env)
    truncated = traj.truncated.at[-1].set(~traj.terminated[-1])

    def flat(x):  # [T, N, ...] → env-major [N·T, ...]
        return jnp.swapaxes(x, 0, 1).reshape((-1, *x.shape[2:]))

    return {"observations": flat(traj.obs), "actions": flat(traj.action),
            "rewards": flat(traj.reward), "next_observations": flat(traj.next_obs),
            "terminated": flat(traj.terminated), "truncated": flat(truncated),
            "log_probs": flat(traj.extras["log_prob"])}


def _mean_return(key: jax.Array, env: Any, env_params: Any, policy: PolicyFn,
                 action_space: Space, num_envs: int = 16) -> float:
    def act(key, obs):
        action = policy(obs).sample(seed=key)
        if isinstance(action_space, Box):
            action = jnp.clip(action, action_space.low, action_space.high)
        return action

    window = int(getattr(env_params, "max_steps_in_episode", 1000)) + 1
    return float(jax.jit(lambda k: evaluate(k, env, env_params, act, num_envs, window))(key))


def generate(env_id: str, policy: str, steps: int, *, expert_algo: str = "ppo",
             expert_steps: int | None = None, expert_run: str | None = None,
             noise: float | None = None, medium_fraction: float = 0.25, num_envs: int = 12,
             seed: int = 0, env_kwargs: dict[str, Any] | None = None) -> Dataset:
    """Collect at least ``steps`` transitions of behaviour ``policy`` (see the module docstring).

    ``steps`` is rounded up to a multiple of ``num_envs``. The metadata records the behaviour,
    the training runs, and the mean return (16 evaluation episodes) of the random policy and of
    each trained policy's behaviour (``reference_returns``) for normalised scores.
    """
    if policy not in POLICY_KINDS:
        raise ValueError(f"--policy must be one of {', '.join(POLICY_KINDS)}, got {policy!r}")
    if steps < 1 or num_envs < 1:
        raise ValueError(f"--steps and --num-envs must be >= 1, got {steps} and {num_envs}")
    if policy == "mixed" and num_envs < 3:
        raise ValueError(f"--policy mixed needs --num-envs >= 3 (one third each), got {num_envs}")
    if not 0 < medium_fraction <= 1:
        raise ValueError(f"medium_fraction must be in (0, 1], got {medium_fraction}")
    if noise is not None and not 0 <= noise <= 1:
        raise ValueError(f"--noise must be in [0, 1], got {noise}")
    env, env_params = envs.make(env_id, **(env_kwargs or {}))
    action_space = env.action_space(env_params)
    key = jax.random.key(seed)
    behaviours: dict[str, tuple[PolicyFn, str]] = {}
    training: dict[str, Any] = {}
    needed = {"expert": ["random", "expert"], "medium": ["random", "medium"], "random": ["random"],
              "mixed": ["random", "medium", "expert"]}[policy]
    for kind in needed:
        fn, description, training[kind] = behaviour_of(
            kind, env_id, env, env_params, expert_algo=expert_algo, expert_steps=expert_steps,
            expert_run=expert_run, noise=noise, medium_fraction=medium_fraction, seed=seed,
            env_kwargs=env_kwargs)
        behaviours[kind] = (fn, description)
    components = ["random", "medium", "expert"] if policy == "mixed" else [policy]
    steps_per_env = math.ceil(steps / num_envs)
    collect_key, *eval_keys = jax.random.split(key, 1 + len(behaviours))
    arrays = jax.jit(lambda k: collect(k, env, env_params,
                                       [behaviours[c][0] for c in components], num_envs,
                                       steps_per_env))(collect_key)
    reference = {kind: _mean_return(eval_key, env, env_params, fn, action_space)
                 for eval_key, (kind, (fn, _)) in zip(eval_keys, behaviours.items(), strict=True)}
    metadata = {
        "env": env_id, "env_kwargs": env_kwargs or {}, "policy": policy,
        "steps": num_envs * steps_per_env, "num_envs": num_envs, "seed": seed,
        "behaviour": {c: behaviours[c][1] for c in components},
        "behaviour_rule": "continuous actions stored clipped; log_probs are densities of the "
                          "pre-clip sample" if isinstance(action_space, Box) else
                          "log_probs are log pi_b(a|s) of the component that acted",
        "components": "env i uses components[i mod len(components)]",
        "component_order": components, "training": training, "reference_returns": reference,
    }
    return Dataset(**{k: np.asarray(v) for k, v in arrays.items()}, metadata=metadata)
