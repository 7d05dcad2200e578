"""Offline datasets: generate them with jaxrl's own agents, save and load them with validation.

A dataset is a flat table of ``N`` transitions stored in an ``.npz`` file:

====================  ==========================  ===============================================
key                   dtype, shape                meaning
====================  ==========================  ===============================================
``observations``      float32 ``[N, *obs]``       state the action was taken in
``actions``           int32 ``[N]`` / float32     executed action (continuous: clipped to bounds)
``rewards``           float32 ``[N]``
``next_observations`` float32 ``[N, *obs]``       next state; the final obs at episode ends
``terminated``        bool ``[N]``                true terminal state (no bootstrap)
``truncated``         bool ``[N]``                time limit or end of the collected segment
``log_probs``         float32 ``[N]``             behaviour log-probability of the action
``metadata``          JSON string                 env, policy kind, steps, behaviour description
====================  ==========================  ===============================================

Transitions are env-major: each collecting env's steps are contiguous and its last step is marked
``truncated`` (unless it terminated), so every episode ends with ``terminated | truncated`` and
episodes can be cut out of the flat table (``episode_bounds``).

Behaviour policies and their log-probabilities (``log_probs``):

- ``random``: uniform over the action space (``-log n`` / ``-Σ log(high - low)``).
- ``expert``: the algorithm ``expert_algo`` trained for ``expert_steps`` env steps by
  ``jaxrl.runner.run``. With ``noise=None`` an on-policy actor-critic (PPO, A2C, REINFORCE) acts
  with its own stochastic policy and stores its own log-prob. Otherwise (or for agents without a
  distribution) the behaviour is the expert's deterministic action plus noise: ε-greedy with
  ``ε = noise`` for discrete actions, ``π_b(a|s) = (1 - ε) 1[a = a*(s)] + ε / n``; for continuous
  actions ``u ~ N(a*(s), (noise · (high - low) / 2)²)`` per dimension, executed as
  ``clip(u, low, high)``. ``expert_algo="scripted"`` uses the env's hand-written expert
  (``SCRIPTED_EXPERTS``: CartPole-v1, Pendulum-v1, PointGoal-v0) with that noise rule (default
  0.1) instead of training one: expert data in seconds.
- ``medium``: the same algorithm and behaviour rule, trained for ``medium_fraction`` (default
  0.25) of ``expert_steps`` — a partially trained agent.
- ``mixed``: the collecting envs split in thirds (env ``i`` uses component ``i mod 3``): random,
  medium, expert. Each transition's log-prob is that of the component that acted.

Continuous actions are always stored clipped to the bounds while the log-prob is the density of
the sample *before* clipping, so it stays finite for actions at the bounds.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import distrax
import jax
import jax.numpy as jnp
import numpy as np
from flax import struct

from jaxrl import envs
from jaxrl.envs import goal as goal_env
from jaxrl.envs.spaces import Box, Discrete, Space
from jaxrl.evaluation import evaluate
from jaxrl.rollout import reset_envs, rollout

__all__ = ["ARRAY_KEYS", "DEFAULT_NOISE", "EXPERT_CONFIGS", "POLICY_KINDS", "SCRIPTED",
           "SCRIPTED_EXPERTS", "Dataset", "PolicyFn", "Transitions", "agent_policy",
           "behaviour_of", "collect", "episode_bounds", "generate", "load", "noisy_policy",
           "random_policy", "save", "scripted_expert", "train_expert", "validate"]

ARRAY_KEYS = ("observations", "actions", "rewards", "next_observations", "terminated",
              "truncated", "log_probs")
POLICY_KINDS = ("expert", "medium", "random", "mixed")
DEFAULT_NOISE = 0.1
"""Behaviour noise (ε, or σ as a fraction of the half-range) where ``noise=None`` asks for the
deterministic expert plus noise (``noisy_policy``)."""
SCRIPTED = "scripted"
"""``expert_algo`` naming the env's hand-written expert (``SCRIPTED_EXPERTS``), not an agent."""

PolicyFn = Callable[[jax.Array], distrax.Distribution]
"""Batched observations ``[B, ...]`` → the behaviour distribution over (pre-clip) actions."""


def _cartpole_expert(obs: jax.Array) -> jax.Array:
    """Push toward where the pole falls: ``a = 1[0.1 x + 0.5 ẋ + 3 θ + θ̇ > 0]`` (returns 500)."""
    weights = jnp.array([0.1, 0.5, 3.0, 1.0], jnp.float32)
    return (obs @ weights > 0).astype(jnp.int32)


def _pendulum_expert(obs: jax.Array) -> jax.Array:
    """Swing up by energy shaping, balance by PD control (mean return ≈ -124 over 64 episodes).

    With ``θ`` from upright, Pendulum-v1's dynamics ``θ̈ = 15 sin θ + 3u`` conserve
    ``E = θ̇² / 2 + 15 (cos θ - 1)`` (0 upright at rest) up to ``Ė = 3 u θ̇``. Within 37° of upright
    (``cos θ > 0.8``) ``u = -(10 θ + 3 θ̇)``; elsewhere ``u = -E θ̇`` drives ``E`` to 0 (pumping
    when low, braking when high; a pendulum at rest at the bottom is kicked). Clipped to ±2.
    """
    cos, sin, theta_dot = obs[..., 0], obs[..., 1], obs[..., 2]
    energy = 0.5 * theta_dot**2 + 15.0 * (cos - 1.0)
    balance = -(10.0 * jnp.arctan2(sin, cos) + 3.0 * theta_dot)
    pump = -energy * jnp.where(jnp.abs(theta_dot) < 1e-3, 1.0, theta_dot)
    return jnp.clip(jnp.where(cos > 0.8, balance, pump), -2.0, 2.0)[..., None]


SCRIPTED_EXPERTS: dict[str, Callable[[jax.Array], jax.Array]] = {
    "CartPole-v1": _cartpole_expert,
    "Pendulum-v1": _pendulum_expert,
    "PointGoal-v0": goal_env.point_goal_expert,
}
"""Hand-written experts ``expert(obs [B, ...]) -> actions`` (``[B]`` discrete, ``[B, *shape]``
continuous, in the env's own units) for DAgger, datasets and tests."""


def scripted_expert(env: Any) -> Callable[[jax.Array], jax.Array]:
    """The scripted expert of ``env`` (looked up by its ``env_id``); ``ValueError`` if none."""
    env_id = getattr(env, "env_id", None)
    if env_id not in SCRIPTED_EXPERTS:
        raise ValueError(f"no scripted expert for {env_id or env!r}; scripted experts exist for "
                         f"{', '.join(SCRIPTED_EXPERTS)} (or pass expert=... in Python)")
    return SCRIPTED_EXPERTS[env_id]


class Transitions(struct.PyTreeNode):
    """The dataset's arrays on device (same order as the file), e.g. closed over by an agent."""

    obs: jax.Array
    action: jax.Array
    reward: jax.Array
    next_obs: jax.Array
    terminated: jax.Array
    truncated: jax.Array
    log_prob: jax.Array

    @property
    def size(self) -> int:
        return self.reward.shape[0]


@dataclasses.dataclass(frozen=True)
class Dataset:
    """Host (numpy) arrays of ``ARRAY_KEYS`` plus ``metadata``; see the module docstring."""

    observations: np.ndarray
    actions: np.ndarray
    rewards: np.ndarray
    next_observations: np.ndarray
    terminated: np.ndarray
    truncated: np.ndarray
    log_probs: np.ndarray
    metadata: dict[str, Any] = dataclasses.field(default_factory=dict)

    def __len__(self) -> int:
        return int(self.rewards.shape[0])

    def transitions(self) -> Transitions:
        """The arrays as a ``Transitions`` of device arrays."""
        return Transitions(*(jnp.asarray(getattr(self, key)) for key in ARRAY_KEYS))

    def episode_returns(self) -> np.ndarray:
        """Undiscounted return of every episode (segments ending in terminated | truncated)."""
        starts, ends = episode_bounds(self.terminated | self.truncated)
        cumulative = np.concatenate([[0.0], np.cumsum(self.rewards, dtype=np.float64)])
        return cumulative[ends + 1] - cumulative[starts]


def episode_bounds(done: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(starts, ends)``: inclusive index ranges of the episodes of a flat env-major table;
    ``done[i]`` ends an episode at ``i``; the table's last index always ends one."""
    done = np.asarray(done, bool).copy()
    done[-1] = True
    ends = np.flatnonzero(done)
    starts = np.concatenate([[0], ends[:-1] + 1])
    return starts, ends


# ---------------------------------------------------------------------------------------------
# Validation, saving, loading


def _fail(key: str, problem: str) -> ValueError:
    return ValueError(f"dataset key {key!r}: {problem}")


def validate(dataset: Dataset, env: Any = None, env_params: Any = None,
             env_id: str | None = None) -> None:
    """Check lengths, shapes, dtypes, finiteness and (given ``env``) the env's spaces.

    Raises ``ValueError`` naming the key and what is wrong; ``env_id`` must match the env the
    dataset was collected on (``metadata["env"]``) when both are known.
    """
    size = len(dataset)
    if dataset.rewards.ndim != 1 or size == 0:
        raise _fail("rewards", f"must be a non-empty vector [N], got shape {dataset.rewards.shape}")
    for key in ARRAY_KEYS:
        array = getattr(dataset, key)
        if array.ndim == 0 or array.shape[0] != size:
            raise _fail(key, f"has {array.shape[0] if array.ndim else 0} entries, rewards has "
                             f"{size}; every array needs one entry per transition")
    for key in ("rewards", "terminated", "truncated", "log_probs"):
        if getattr(dataset, key).ndim != 1:
            raise _fail(key, f"must have shape [N], got {getattr(dataset, key).shape}")
    if dataset.next_observations.shape != dataset.observations.shape:
        raise _fail("next_observations", f"shape {dataset.next_observations.shape} differs from "
                                         f"observations {dataset.observations.shape}")
    for key in ("terminated", "truncated"):
        if getattr(dataset, key).dtype != np.bool_:
            raise _fail(key, f"must be bool, got {getattr(dataset, key).dtype}")
    for key in ("observations", "next_observations", "rewards", "log_probs"):
        array = getattr(dataset, key)
        if not np.issubdtype(array.dtype, np.floating):
            raise _fail(key, f"must be floating point, got {array.dtype}")
    if not (np.issubdtype(dataset.actions.dtype, np.integer)
            or np.issubdtype(dataset.actions.dtype, np.floating)):
        raise _fail("actions", f"must be integer (discrete) or float (continuous), got "
                               f"{dataset.actions.dtype}")
    for key in ("observations", "actions", "rewards", "next_observations", "log_probs"):
        array = getattr(dataset, key)
        if np.issubdtype(array.dtype, np.floating) and not np.isfinite(array).all():
            bad = int(np.flatnonzero(~np.isfinite(array.reshape(size, -1)).all(1))[0])
            raise _fail(key, f"holds a non-finite value (first at transition {bad})")
    recorded = dataset.metadata.get("env")
    if env_id is not None and recorded is not None and recorded != env_id:
        raise ValueError(f"dataset was collected on {recorded!r}, not {env_id!r}; "
                         f"pass --env {recorded}")
    if env is not None:
        _check_spaces(dataset, env.observation_space(env_params), env.action_space(env_params))


def _check_spaces(dataset: Dataset, observation_space: Space, action_space: Space) -> None:
    obs_shape = tuple(dataset.observations.shape[1:])
    if obs_shape != tuple(observation_space.shape):
        raise _fail("observations", f"shape per transition {obs_shape} does not match the env's "
                                    f"observation space {tuple(observation_space.shape)}")
    actions = dataset.actions
    if isinstance(action_space, Discrete):
        if actions.ndim != 1 or not np.issubdtype(actions.dtype, np.integer):
            raise _fail("actions", f"the env has discrete actions: expected integer [N], got "
                                   f"{actions.dtype} {actions.shape}")
        if actions.min() < 0 or actions.max() >= action_space.n:
            raise _fail("actions", f"values must lie in [0, {action_space.n}), got "
                                   f"[{actions.min()}, {actions.max()}]")
    else:
        if tuple(actions.shape[1:]) != tuple(action_space.shape):
            raise _fail("actions", f"shape per transition {tuple(actions.shape[1:])} does not "
                                   f"match the env's action space {tuple(action_space.shape)}")
        if not np.issubdtype(actions.dtype, np.floating):
            raise _fail("actions", f"the env has continuous actions: expected float, got "
                                   f"{actions.dtype}")
        low, high = np.asarray(action_space.low), np.asarray(action_space.high)
        if (actions < low - 1e-5).any() or (actions > high + 1e-5).any():
            raise _fail("actions", f"values must lie within the action bounds [{low}, {high}]")


def save(path: str | Path, dataset: Dataset) -> Path:
    """Validate and write ``dataset`` to ``path`` (``.npz``) atomically (temporary file, then
    ``os.replace``): a reader never sees a half-written file."""
    validate(dataset)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    arrays = {key: getattr(dataset, key) for key in ARRAY_KEYS}
    with open(tmp, "wb") as file:
        np.savez(file, **arrays, metadata=np.array(json.dumps(dataset.metadata, default=str)))
    os.replace(tmp, path)
    return path


def load(path: str | Path, env: Any = None, env_params: Any = None,
         env_id: str | None = None) -> Dataset:
    """Read and ``validate`` a dataset (against ``env``'s spaces when given).

    Float arrays come back float32, discrete actions int32, flags bool.
    """
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"no dataset file at {path}; create one with "
                         "`jaxrl dataset --env ENV --policy expert --steps N --out FILE.npz`")
    try:
        with np.load(path, allow_pickle=False) as file:
            contents = {key: file[key] for key in file.files}
    except (OSError, ValueError) as error:
        raise ValueError(f"{path} is not a readable .npz dataset ({error})") from None
    missing = [key for key in (*ARRAY_KEYS, "metadata") if key not in contents]
    if missing:
        raise ValueError(f"dataset {path} lacks key(s) {', '.join(missing)}; expected "
                         f"{', '.join((*ARRAY_KEYS, 'metadata'))}")
    try:
        metadata = json.loads(str(contents["metadata"]))
    except json.JSONDecodeError:
        raise _fail("metadata", "is not a JSON string") from None
    dataset = Dataset(**{key: contents[key] for key in ARRAY_KEYS}, metadata=metadata)
    validate(dataset, env, env_params, env_id)
    cast = {key: getattr(dataset, key).astype(np.float32)
            for key in ("observations", "rewards", "next_observations", "log_probs")}
    actions = dataset.actions
    cast["actions"] = (actions.astype(np.int32) if np.issubdtype(actions.dtype, np.integer)
                       else actions.astype(np.float32))
    return dataclasses.replace(dataset, **cast)


# ---------------------------------------------------------------------------------------------
# Behaviour policies


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
    """The behaviour of one trained agent and its description (see the module docstring)."""
    from jaxrl.training import on_policy

    action_space = env.action_space(env_params)
    if noise is None and isinstance(train_state, on_policy.TrainState):
        network = on_policy.setup(config, env, env_params).network

        def own(obs: jax.Array) -> distrax.Distribution:
            if config.normalize_obs:
                obs = train_state.rollout.obs_stats.normalize(obs)
            return network.apply(train_state.params, obs, method="policy")

        return own, "the agent's own stochastic policy"
    noise = DEFAULT_NOISE if noise is None else noise
    agent = module.make_agent(config, env, env_params)

    def greedy(obs: jax.Array) -> jax.Array:
        return agent.act(train_state, obs, jax.random.key(0), True)

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
    from jaxrl.agents import ALGORITHMS, get_algorithm

    if kind == "random":
        return random_policy(env.action_space(env_params)), "uniform over the action space", {}
    if kind == "expert" and expert_run is not None:
        from jaxrl.policy import load_policy

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
    from jaxrl.agents import get_algorithm
    from jaxrl.runner import run

    module = get_algorithm(algo)
    config = module.Config(**EXPERT_CONFIGS.get((algo, env_id), {}))
    if steps is not None:
        config = config.replace(total_timesteps=steps)
    result = run(algo, env_id, config, seed=seed, out=None, env_kwargs=env_kwargs,
                 progress=False)
    return module, config, jax.tree.map(lambda x: x[0], result.train_state)


# ---------------------------------------------------------------------------------------------
# Collection


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
