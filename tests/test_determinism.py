"""Determinism of every registered algorithm (``agent_configs.TINY``), on the vmapped program
the runner uses: the same keys give bitwise-identical runs, each seed's result does not depend
on its position in the batch or on its batch-mates (allclose: batched matmuls may round
differently on CPU), a run checkpointed halfway with ``jaxrl.checkpoint`` and resumed equals the
uninterrupted one bitwise, and no PRNG key is used twice (``jax.debug_key_reuse`` on the
unvmapped train; jax 0.9 misreports vmapped scans).

Each algorithm compiles the vmapped init and half-run once, shared by its tests (one xdist group
per algorithm). The unvmapped program (``train(key)`` in a notebook) is compiled and compared
with its seed of the batch for the first registered algorithm of each family: the family loop
is what decides how a seed's computation is batched, and a compile per algorithm costs the
suite more than it adds.
"""

from __future__ import annotations

import functools
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from agent_configs import TINY
from helpers import key_data, leaves_equal, strongly_typed
from preference_inputs import tiny_inputs

from jaxrl import checkpoint, envs, registry
from jaxrl.datasets import Dataset
from jaxrl.envs.spaces import Box
from jaxrl.training.agent import Agent, train_from_agent

KEYS = (3, 4)


def family_representatives() -> set[str]:
    """The first registered algorithm of each family: its unvmapped program is checked too, and
    its checks run in ``-m "not slow"``; the other algorithms' are slow-marked (conftest)."""
    first: dict[str, str] = {}
    for name in registry.names():
        first.setdefault(registry.get(name).family, name)
    return set(first.values())


# Each algorithm's tests form one xdist group (README's command runs ``--dist loadgroup``), so
# one worker compiles that algorithm's functions once for all of them.
ALGOS = [pytest.param(algo, marks=[pytest.mark.xdist_group(f"determinism-{algo}")]
                      + ([] if algo in family_representatives() else [pytest.mark.slow]))
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
    init: Any  # vmapped over keys
    half: Any  # vmapped half of the run: num_updates / 2 updates


@functools.cache
def compiled(algo: str) -> Compiled:
    env_id, kwargs = TINY[algo]
    algorithm = registry.get(algo)
    module = algorithm.load()
    env, env_params = envs.make(env_id)
    extra = {"dataset": tiny_dataset(env_id)} if registry.DATASET in algorithm.needs else {}
    if algorithm.family == "preferences":  # a reference, pairs or token demonstrations
        extra = tiny_inputs(algo, env, env_params)
    agent = module.make_agent(module.Config(**kwargs), env, env_params, **extra)
    assert agent.num_updates >= 2 and agent.num_updates % 2 == 0, "TINY: an even num_updates"

    def half(state):
        return jax.lax.scan(lambda s, _: agent.update(s), state, None,
                            length=agent.num_updates // 2)

    # Strong types: the checkpoint-restored state then reuses ``half`` instead of compiling again.
    return Compiled(agent, quick_jit(jax.vmap(lambda key: strongly_typed(agent.init(key)))),
                    quick_jit(jax.vmap(half)))


def quick_jit(function):
    """``jax.jit`` with XLA's backend optimisation off and the older fused-kernel emitters (the
    quickest compile, ``conftest.py``): these tiny runs are all compile, and every comparison
    here is between runs of the same compiled programs."""
    return jax.jit(function, compiler_options={"xla_backend_optimization_level": 0,
                                               "xla_cpu_use_fusion_emitters": False})


def batch(*seeds: int) -> jax.Array:
    return jnp.stack([jax.random.key(k) for k in seeds])


def run_halves(algo: str, keys: jax.Array) -> tuple[Any, Any, Any]:
    """``(halfway states, final states, metrics [seeds, num_updates])`` of one vmapped run; the
    final states and metrics as NumPy arrays (typed keys as their data), so that slicing and
    comparing them compiles nothing (eager JAX ops compile once per shape)."""
    parts = compiled(algo)
    middle, first = parts.half(parts.init(keys))
    final, second = parts.half(middle)
    first, second = host(first), host(second)
    metrics = jax.tree.map(lambda a, b: np.concatenate([a, b], axis=1), first, second)
    return middle, host(final), metrics


def host(tree: Any) -> Any:
    """``tree`` on the host as NumPy arrays, typed PRNG keys replaced by their data."""
    return jax.device_get(key_data(tree))


def seed(tree: Any, i: int) -> Any:
    return jax.tree.map(lambda x: x[i], tree)


UNDETERMINED = ("['key']['bias']",)
"""Parameters whose gradient is zero up to rounding: an attention key bias (softmax is
shift-invariant). Adam turns that rounding noise into steps of its full learning rate, so two
programs that round differently move them apart; ``assert_close`` skips them."""


def assert_close(actual: Any, expected: Any, what: str) -> None:
    """Leaf by leaf: floats allclose (batched matmuls may round differently), the rest equal."""
    for (path, value), want in zip(jax.tree_util.tree_flatten_with_path(key_data(actual))[0],
                                   jax.tree.leaves(key_data(expected)), strict=True):
        message = f"{what}: {jax.tree_util.keystr(path)}"
        if any(name in jax.tree_util.keystr(path) for name in UNDETERMINED):
            continue
        if jnp.issubdtype(value.dtype, jnp.inexact):
            np.testing.assert_allclose(value, want, rtol=1e-4, atol=1e-5, equal_nan=True,
                                       err_msg=message)
        else:
            np.testing.assert_array_equal(value, want, err_msg=message)


@pytest.mark.parametrize("algo", ALGOS)
def test_same_key_gives_bitwise_identical_runs(algo):
    _, final, metrics = run_halves(algo, batch(*KEYS))
    _, again, metrics_again = run_halves(algo, batch(*KEYS))
    assert leaves_equal((final, metrics), (again, metrics_again))
    assert not leaves_equal(seed(final, 0), seed(final, 1)), "two seeds gave the same run"


@pytest.mark.parametrize("algo", ALGOS)
def test_keys_are_never_reused(algo):
    # Tracing is enough: the checker runs on the jaxpr of init + the scan of updates.
    with jax.debug_key_reuse(True):
        jax.jit(train_from_agent(compiled(algo).agent)).trace(jax.random.key(KEYS[0]))


@pytest.mark.parametrize("algo", ALGOS)
def test_a_seed_does_not_depend_on_its_batch_position_or_batch_mates(algo):
    _, final, metrics = run_halves(algo, batch(*KEYS))
    _, swapped, swapped_metrics = run_halves(algo, batch(*reversed(KEYS)))
    for i in range(len(KEYS)):
        j = len(KEYS) - 1 - i
        assert_close(seed((swapped, swapped_metrics), j), seed((final, metrics), i),
                     f"{algo} seed {KEYS[i]} at position {j} vs {i}")


@pytest.mark.slow
@pytest.mark.parametrize("algo", [a for a in ALGOS if a.values[0] in family_representatives()])
def test_vmapped_seed_matches_a_single_run(algo):
    agent = compiled(algo).agent
    _, final, metrics = run_halves(algo, batch(*KEYS))
    single = host(quick_jit(train_from_agent(agent))(jax.random.key(KEYS[0])))
    assert_close(seed((final, metrics), 0), single, f"{algo} seed {KEYS[0]}")


@pytest.mark.parametrize("algo", ALGOS)
def test_resume_from_a_checkpoint_equals_the_uninterrupted_run(algo, tmp_path):
    middle, final, metrics = run_halves(algo, batch(*KEYS))
    checkpoint.save(tmp_path / "half", middle, {"algo": algo})
    restored = checkpoint.restore(tmp_path / "half", like=jax.eval_shape(lambda: middle))
    resumed, second = compiled(algo).half(restored)
    assert leaves_equal(host(resumed), final)
    half = compiled(algo).agent.num_updates // 2
    assert leaves_equal(host(second), jax.tree.map(lambda m: m[:, half:], metrics))
