"""Determinism of every registered algorithm (``agent_configs.TINY``): the same key gives
bitwise-identical runs, seed i of a vmapped batch matches a single run of seed i (metrics and
final state; allclose: batched matmuls may round differently on CPU), a run checkpointed halfway
with ``jaxrl.checkpoint`` and resumed equals the uninterrupted one bitwise, and no PRNG key is
used twice (``jax.debug_key_reuse`` on the unvmapped train; jax 0.9 misreports vmapped scans).

Each algorithm compiles three functions (init, half a run, the vmapped run) once, shared by its
tests (one xdist group per algorithm); the key-reuse check only traces.
"""

from __future__ import annotations

import functools
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from agent_configs import TINY
from helpers import half_run, key_data, leaves_equal, strongly_typed

from jaxrl import checkpoint, envs, registry
from jaxrl.datasets import Dataset
from jaxrl.envs.spaces import Box
from jaxrl.training.agent import Agent, train_from_agent

KEYS = (3, 4)


# Each algorithm's tests form one xdist group (README's command runs ``--dist loadgroup``), so
# one worker compiles that algorithm's functions once for all of them.
ALGOS = [pytest.param(algo, marks=pytest.mark.xdist_group(f"determinism-{algo}"))
         for algo in sorted(TINY)]


def test_every_algorithm_has_a_tiny_config():
    missing = sorted(set(registry.names()) - set(TINY))
    assert not missing, f"add tiny configs for {missing} to tests/agent_configs.py"
    assert not set(TINY) - set(registry.names()), "tests/agent_configs.py names unknown algorithms"


def tiny_dataset(env_id: str, size: int = 64) -> Dataset:
    """Random transitions shaped for ``env_id``: enough for offline agents to take a few steps."""
    env, env_params = envs.make(env_id)
    obs_shape = env.observation_space(env_params).shape
    space = env.action_space(env_params)
    rng = np.random.default_rng(0)
    actions = (rng.uniform(space.low, space.high, (size, *space.shape)).astype(np.float32)
               if isinstance(space, Box) else rng.integers(0, 2, size).astype(np.int32))
    terminated = np.zeros(size, bool)
    terminated[15::16] = True
    return Dataset(
        observations=rng.normal(size=(size, *obs_shape)).astype(np.float32),
        actions=actions,
        rewards=np.ones(size, np.float32),
        next_observations=rng.normal(size=(size, *obs_shape)).astype(np.float32),
        terminated=terminated, truncated=np.zeros(size, bool),
        log_probs=np.full(size, np.log(0.5), np.float32), metadata={"env": env_id})


class Compiled(NamedTuple):
    agent: Agent
    init: Any
    half: Any  # half of the run: num_updates / 2 updates
    batched: Any  # the whole run, vmapped over keys


@functools.cache
def compiled(algo: str) -> Compiled:
    env_id, kwargs = TINY[algo]
    algorithm = registry.get(algo)
    module = algorithm.load()
    env, env_params = envs.make(env_id)
    extra = {"dataset": tiny_dataset(env_id)} if registry.DATASET in algorithm.needs else {}
    agent = module.make_agent(module.Config(**kwargs), env, env_params, **extra)
    assert agent.num_updates >= 2 and agent.num_updates % 2 == 0, "TINY: an even num_updates"

    # Strong types: the checkpoint-restored state then reuses ``half`` instead of compiling again.
    return Compiled(agent, jax.jit(lambda key: strongly_typed(agent.init(key))), half_run(agent),
                    jax.jit(jax.vmap(train_from_agent(agent))))


def run_halves(algo: str, key: jax.Array) -> tuple[Any, Any, Any]:
    """``(halfway state, final state, metrics [num_updates])`` of one unvmapped run."""
    parts = compiled(algo)
    middle, first = parts.half(parts.init(key))
    final, second = parts.half(middle)
    metrics = jax.tree.map(lambda a, b: jnp.concatenate([a, b]), first, second)
    return middle, final, metrics


def float_metrics(metrics: dict[str, jax.Array]) -> dict[str, np.ndarray]:
    return {name: np.asarray(value) for name, value in metrics.items()
            if jnp.issubdtype(value.dtype, jnp.floating)}


@pytest.mark.parametrize("algo", ALGOS)
def test_same_key_gives_bitwise_identical_runs(algo):
    _, final, metrics = run_halves(algo, jax.random.key(KEYS[0]))
    _, again, metrics_again = run_halves(algo, jax.random.key(KEYS[0]))
    assert leaves_equal((final, metrics), (again, metrics_again))
    _, other, _ = run_halves(algo, jax.random.key(KEYS[1]))
    assert not leaves_equal(final, other)


@pytest.mark.parametrize("algo", ALGOS)
def test_keys_are_never_reused(algo):
    # Tracing is enough: the checker runs on the jaxpr of init + the scan of updates.
    with jax.debug_key_reuse(True):
        jax.jit(train_from_agent(compiled(algo).agent)).trace(jax.random.key(KEYS[0]))


@pytest.mark.parametrize("algo", ALGOS)
def test_vmapped_seed_matches_a_single_run(algo):
    keys = jnp.stack([jax.random.key(k) for k in KEYS])
    batched_state, batched = compiled(algo).batched(keys)
    for i, key in enumerate(keys):
        _, single_state, single = run_halves(algo, key)
        seed_i = jax.tree.map(lambda x, i=i: x[i], (key_data(batched_state), batched))
        for (path, value), expected in zip(jax.tree_util.tree_flatten_with_path(seed_i)[0],
                                           jax.tree.leaves(key_data((single_state, single))),
                                           strict=True):
            message = f"{algo} seed {KEYS[i]}: {jax.tree_util.keystr(path)}"
            if jnp.issubdtype(value.dtype, jnp.inexact):
                np.testing.assert_allclose(value, expected, rtol=1e-4, atol=1e-5,
                                           equal_nan=True, err_msg=message)
            else:
                np.testing.assert_array_equal(value, expected, err_msg=message)


@pytest.mark.parametrize("algo", ALGOS)
def test_resume_from_a_checkpoint_equals_the_uninterrupted_run(algo, tmp_path):
    middle, final, metrics = run_halves(algo, jax.random.key(KEYS[0]))
    checkpoint.save(tmp_path / "half", middle, {"algo": algo})
    restored = checkpoint.restore(tmp_path / "half", like=jax.eval_shape(lambda: middle))
    resumed, second = compiled(algo).half(restored)
    assert leaves_equal(resumed, final)
    half = compiled(algo).agent.num_updates // 2
    assert leaves_equal(second, jax.tree.map(lambda m: m[half:], metrics))
