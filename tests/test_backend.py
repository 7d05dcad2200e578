"""``jaxrl.backend``: ``scan_unroll``'s defaults per backend, the override, env limits; an
unrolled rollout equals the rolled one bitwise, and PPO trained with it up to float rounding.
``set_cpu_threefry``: both lowerings draw the same bits and train the same run bitwise.
``set_cpu_threads``: XLA starts the asked-for threads, and the run is bitwise the same."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import warnings

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from helpers import optimised_jit

from jaxrl import envs
from jaxrl.agents import dqn, ppo
from jaxrl.backend import (
    ACCELERATOR_UNROLL,
    CPU_THREADS_ENV,
    CPU_THREEFRY_ENV,
    UNROLL_ENV,
    XLA_CPU_THREADS_ENV,
    cpu_threads,
    cpu_threads_from_env,
    cpu_threefry,
    cpu_threefry_from_env,
    env_unroll_limit,
    scan_unroll,
    set_cpu_threads,
    set_cpu_threefry,
)
from jaxrl.envs import EpisodeStatistics
from jaxrl.rollout import random_permutation, reset_envs, rollout


@pytest.fixture
def threefry():
    """``set_cpu_threefry`` for one test; the suite's mode (conftest) is restored after it."""
    suite_mode = cpu_threefry()
    yield set_cpu_threefry
    set_cpu_threefry(suite_mode)


def test_cpu_default_is_one(monkeypatch):
    monkeypatch.delenv(UNROLL_ENV, raising=False)
    assert jax.default_backend() == "cpu"
    assert scan_unroll(128) == 1


def test_accelerator_default_is_capped_by_length_and_limit(monkeypatch):
    monkeypatch.delenv(UNROLL_ENV, raising=False)
    monkeypatch.setattr(jax, "default_backend", lambda: "gpu")
    assert scan_unroll(128) == ACCELERATOR_UNROLL
    assert scan_unroll(3) == 3
    assert scan_unroll(128, limit=1) == 1
    assert scan_unroll(128, limit=None) == ACCELERATOR_UNROLL


@pytest.mark.parametrize("value, expected", [("4", 4), ("1", 1), ("1000", 128)])
def test_override_applies_on_every_backend(monkeypatch, value, expected):
    monkeypatch.setenv(UNROLL_ENV, value)
    assert scan_unroll(128) == expected
    assert scan_unroll(128, limit=2) == min(expected, 2)


@pytest.mark.parametrize("value", ["0", "-3", "eight", ""])
def test_bad_override_says_what_to_set(monkeypatch, value):
    monkeypatch.setenv(UNROLL_ENV, value)
    with pytest.raises(ValueError, match="JAXRL_SCAN_UNROLL must be a positive integer"):
        scan_unroll(8)


def test_brax_limit_is_forwarded_through_wrappers():
    from jaxrl.envs.brax_env import BraxEnv

    assert BraxEnv.max_unroll == 1
    fake = type("FakeBrax", (), {"max_unroll": 1})()
    assert env_unroll_limit(EpisodeStatistics(fake)) == 1
    env, _ = envs.make("CartPole-v1")
    assert env_unroll_limit(EpisodeStatistics(env)) is None


def _cartpole_rollout(num_steps: int):
    env, params = envs.make("CartPole-v1")
    env = EpisodeStatistics(env)
    obs, state = reset_envs(jax.random.key(0), env, params, 3)

    def policy(key, obs):
        return jax.random.bernoulli(key, 0.5, obs.shape[:1]).astype(jnp.int32), {
            "mean_obs": obs.mean(-1)}

    # Optimised as users compile it: at level 0 XLA fuses the two loops differently.
    return optimised_jit(lambda k: rollout(k, env, params, state, obs, policy, num_steps))(
        jax.random.key(1))


@pytest.mark.slow
def test_unrolled_rollout_is_bitwise_equal(monkeypatch, threefry):
    # With JAX's rolled threefry loop between consecutive steps, XLA cannot fuse one step's
    # physics into the next, so the unrolled loop computes exactly the same floats.
    threefry("rolled")
    monkeypatch.setenv(UNROLL_ENV, "1")
    rolled = _cartpole_rollout(31)
    monkeypatch.setenv(UNROLL_ENV, "2")  # 2 does not divide 31: a remainder trip too
    unrolled = _cartpole_rollout(31)
    for a, b in zip(jax.tree.leaves(rolled), jax.tree.leaves(unrolled), strict=True):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))


PPO_FIELDS = {"total_timesteps": 2 * 4 * 16, "num_envs": 4, "num_steps": 16, "update_epochs": 2,
              "num_minibatches": 2, "hidden_sizes": (16,)}
"""Two updates of PPO on CartPole-v1: the run the unroll, threefry and thread-pool tests train."""
PPO_CONFIG = ppo.Config(**PPO_FIELDS)


def _train_ppo(**jit_options):
    env, params = envs.make("CartPole-v1")
    return jax.jit(ppo.make_train(PPO_CONFIG, env, params), **jit_options)(jax.random.key(3))


def _digest(run) -> str:
    """SHA-256 of a run's every leaf (keys as their data): equal digests are bitwise-equal runs.
    ``_THREADS_SCRIPT`` computes the same."""
    leaves = [jax.random.key_data(x) if jnp.issubdtype(x.dtype, jax.dtypes.prng_key) else x
              for x in jax.tree.leaves(run)]
    return hashlib.sha256(b"".join(np.asarray(x).tobytes() for x in leaves)).hexdigest()


@pytest.fixture(scope="module")
def rolled_ppo_run():
    """PPO trained in this process with the CPU's default rolled env loop and the suite's
    settings: the unrolled run's reference, and the run that ``_THREADS_SCRIPT`` repeats in a
    process with another thread pool (one compilation for both tests). With the threefry
    lowering it was trained with, which that process must use too."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv(UNROLL_ENV, "1")
        return cpu_threefry(), _train_ppo()


# One xdist group for the two tests that share ``rolled_ppo_run``: one worker trains it.
@pytest.mark.slow
@pytest.mark.xdist_group("backend_ppo")
def test_unrolled_ppo_training_matches_up_to_rounding(monkeypatch, rolled_ppo_run):
    # XLA fuses the unrolled body differently: rounding differs in the last bits (~1e-6).
    # 8 trips of 2 steps: on a CPU the fully unrolled 16-step rollout alone took 45 s to compile
    # (4.5 s rolled, 8.8 s at unroll 4); the property is the same for any unroll.
    monkeypatch.setenv(UNROLL_ENV, "2")
    state, metrics = _train_ppo()
    _, (rolled_state, rolled_metrics) = rolled_ppo_run
    rolled = jax.tree.leaves((rolled_state.params, rolled_metrics))
    for a, b in zip(rolled, jax.tree.leaves((state.params, metrics)), strict=True):
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-4, atol=1e-6)


def _scans(jaxpr) -> list[tuple[int, int]]:
    """``(length, unroll)`` of every ``lax.scan`` in a (closed) jaxpr, nested ones included."""
    found = []
    for eqn in jaxpr.eqns:
        if eqn.primitive.name == "scan":
            found.append((eqn.params["length"], int(eqn.params["unroll"])))
        for value in eqn.params.values():
            for inner in value if isinstance(value, (tuple, list)) else (value,):
                if hasattr(inner, "eqns"):
                    found += _scans(inner)
                elif hasattr(inner, "jaxpr") and hasattr(inner.jaxpr, "eqns"):
                    found += _scans(inner.jaxpr)
    return found


def test_one_off_env_loops_of_off_policy_agents_stay_rolled(monkeypatch):
    # The warm-up rollout and the evaluation between updates run once per run / logged row:
    # unrolling them saved nothing but made DQN CartPole compile in 33.9 s instead of 5.4 s on
    # an H200. With the env-step unroll forced to 16 only the training rollout (4 steps) unrolls.
    config = dqn.Config(total_timesteps=2_048, learning_starts=512, train_frequency=4,
                        log_frequency=1_024, eval_episodes=2, hidden_sizes=(16,))
    env, params = envs.make("CartPole-v1")
    monkeypatch.setenv(UNROLL_ENV, "16")
    scans = _scans(jax.make_jaxpr(dqn.make_train(config, env, params))(jax.random.key(0)).jaxpr)
    lengths = {length for length, _ in scans}
    assert {512, 500} <= lengths  # the warm-up rollout and the evaluation (CartPole's limit)
    assert {(length, unroll) for length, unroll in scans if unroll > 1} == {(4, 4)}


def test_rollout_unroll_argument_overrides_the_backend_default(monkeypatch):
    env, params = envs.make("CartPole-v1")
    obs, state = reset_envs(jax.random.key(0), env, params, 2)

    def policy(key, obs):
        return jnp.zeros(obs.shape[:1], jnp.int32), {}

    def program_size(unroll: int | None) -> int:
        return len(jax.jit(lambda k: rollout(k, env, params, state, obs, policy, 32,
                                             unroll=unroll)).lower(jax.random.key(1)).as_text())

    monkeypatch.setenv(UNROLL_ENV, "8")
    assert program_size(1) < program_size(None)
    monkeypatch.setenv(UNROLL_ENV, "1")
    assert program_size(8) > program_size(None)


def _draws(keys: jax.Array) -> dict[str, jax.Array]:
    """A few of every kind of draw the agents make, for 3 vmapped keys."""
    def one(key):
        split_key, uniform_key, normal_key, bits_key, choice_key, perm_key = jax.random.split(
            key, 6)
        return {"split": jax.random.key_data(jax.random.split(split_key, (3, 5))),
                "uniform": jax.random.uniform(uniform_key, (7,)),
                "normal": jax.random.normal(normal_key, (4, 3)),
                "bits": jax.random.bits(bits_key, (513,)),
                "categorical": jax.random.categorical(choice_key, jnp.zeros((9, 4))),
                "permutation": random_permutation(perm_key, 512)}
    return jax.vmap(one)(keys)


def test_cpu_threefry_lowerings_draw_the_same_bits(threefry):
    keys = jax.random.split(jax.random.key(5), 3)
    texts, draws = {}, {}
    for mode in ("rolled", "unrolled"):
        threefry(mode)
        assert cpu_threefry() == mode
        program = jax.jit(lambda k: _draws(k))  # a new function: lowered in this mode
        texts[mode] = program.lower(keys).as_text()
        draws[mode] = jax.tree.map(np.asarray, program(keys))
    assert "stablehlo.while" in texts["rolled"]
    assert "stablehlo.while" not in texts["unrolled"]
    for name, rolled in draws["rolled"].items():
        np.testing.assert_array_equal(rolled, draws["unrolled"][name], err_msg=name)


@pytest.mark.slow
def test_cpu_threefry_lowerings_train_the_same_run_bitwise(threefry):
    from helpers import key_data, leaves_equal

    runs = []
    for mode in ("rolled", "unrolled"):
        threefry(mode)
        # XLA:CPU's default fusion emitters, which the suite's flags turn off (conftest.py):
        # the older ones fuse the two lowerings' programs differently, so runs round apart.
        runs.append(key_data(_train_ppo(
            compiler_options={"xla_cpu_use_fusion_emitters": True})))
    assert leaves_equal(*runs)


def test_cpu_threefry_rejects_unknown_modes(monkeypatch):
    with pytest.raises(ValueError, match="rolled.*unrolled.*got 'fast'"):
        set_cpu_threefry("fast")
    monkeypatch.setenv(CPU_THREEFRY_ENV, "Fast")
    with pytest.raises(ValueError, match="JAXRL_CPU_THREEFRY must be 'rolled' or 'unrolled'"):
        cpu_threefry_from_env()


@pytest.mark.parametrize("value", ["unrolled", "rolled", ""])
def test_cpu_threefry_env_variable_applies_on_import(value):
    environment = {**os.environ, CPU_THREEFRY_ENV: value}
    result = subprocess.run(
        [sys.executable, "-c", "import jaxrl.backend as b; print(b.cpu_threefry())"],
        env=environment, capture_output=True, text=True, check=True, timeout=120)
    assert result.stdout.strip() == (value or "rolled")


def test_importing_jaxrl_without_the_variable_does_not_import_jax():
    # The CLI's help and env listing start without jax; the variable's check must not pull it in.
    environment = {k: v for k, v in os.environ.items()
                   if k not in (CPU_THREEFRY_ENV, CPU_THREADS_ENV)}
    result = subprocess.run(
        [sys.executable, "-c", "import sys, jaxrl.cli; print('jax' in sys.modules)"],
        env=environment, capture_output=True, text=True, check=True, timeout=120)
    assert result.stdout.strip() == "False"


def test_cpu_threads_rejects_bad_sizes_and_a_change_after_the_backend_started(monkeypatch):
    for bad in (0, -2, "two", 1.5, True, None):
        with pytest.raises(ValueError, match="cpu threads must be a positive integer"):
            set_cpu_threads(bad)
    monkeypatch.setenv(CPU_THREADS_ENV, "0")
    with pytest.raises(ValueError, match="JAXRL_CPU_THREADS must be a positive integer"):
        cpu_threads_from_env()
    jax.devices()  # the CPU backend exists from here on
    monkeypatch.setenv(XLA_CPU_THREADS_ENV, "2")
    assert cpu_threads() == 2
    set_cpu_threads(2)  # the size it started with: nothing to change
    with pytest.raises(RuntimeError, match=r"already started with 2; set \$JAXRL_CPU_THREADS=3"):
        set_cpu_threads(3)
    assert cpu_threads() == 2
    monkeypatch.delenv(XLA_CPU_THREADS_ENV)
    assert cpu_threads() is None


_THREADS_SCRIPT = f"""
import hashlib, os
import jax, jax.numpy as jnp, numpy as np
import jaxrl
from jaxrl import envs
from jaxrl.agents import ppo

config = ppo.Config(**{PPO_FIELDS!r})
env, params = envs.make("CartPole-v1")
run = jax.jit(ppo.make_train(config, env, params))(jax.random.key(3))
leaves = [jax.random.key_data(x) if jnp.issubdtype(x.dtype, jax.dtypes.prng_key) else x
          for x in jax.tree.leaves(run)]
digest = hashlib.sha256(b"".join(np.asarray(x).tobytes() for x in leaves)).hexdigest()
names = [open(f"/proc/self/task/{{t}}/comm").read().strip() for t in os.listdir("/proc/self/task")]
print(os.environ["PJRT_NPROC"], names.count("tf_XLAEigen"), digest)
"""


def _xla_pool_threads() -> int:
    tasks = os.listdir("/proc/self/task")
    return [open(f"/proc/self/task/{t}/comm").read().strip() for t in tasks].count("tf_XLAEigen")


@pytest.mark.slow
@pytest.mark.xdist_group("backend_ppo")
@pytest.mark.skipif(not os.path.isdir("/proc/self/task"), reason="counts threads through /proc")
def test_cpu_threads_env_variable_sizes_xla_pool_and_leaves_the_run_bitwise_equal(
        rolled_ppo_run):
    # XLA names its pool's threads tf_XLAEigen; a jaxlib that stopped reading $PJRT_NPROC
    # would start one per core and fail here. The same run trained in this process, whose pool
    # has XLA's default size (a thread per core), is the bitwise reference.
    threefry, reference = rolled_ppo_run
    environment = {**os.environ, CPU_THREADS_ENV: "1", UNROLL_ENV: "1",
                   CPU_THREEFRY_ENV: threefry}
    environment.pop(XLA_CPU_THREADS_ENV, None)
    result = subprocess.run([sys.executable, "-c", _THREADS_SCRIPT], env=environment,
                            capture_output=True, text=True, check=True, timeout=300)
    threads, pool, digest = result.stdout.split()
    assert (threads, pool) == ("1", "1")
    if XLA_CPU_THREADS_ENV not in os.environ and (os.cpu_count() or 1) > 1:
        # XLA's default pool: the reference ran on another pool size than the subprocess
        assert _xla_pool_threads() > 1
    assert digest == _digest(reference)


def test_lapack_qr_hangs_on_the_cpu_from_jaxlib_0_10():
    from jaxrl.backend import lapack_qr_hangs

    for version in ("0.10.0", "0.10.2", "0.10.3.dev20261201", "0.11.0", "1.0"):
        assert lapack_qr_hangs("cpu", version), version
        assert not lapack_qr_hangs("gpu", version) and not lapack_qr_hangs("tpu", version)
    for version in ("0.8.1", "0.9.2", "0.9.10"):
        assert not lapack_qr_hangs("cpu", version), version
    assert lapack_qr_hangs("CPU", "0.10.2")


def test_compile_cache_default_directory_explicit_choices_and_off(tmp_path, monkeypatch):
    from jaxrl import backend

    session_cache = jax.config.jax_compilation_cache_dir  # conftest's
    max_size = jax.config.jax_compilation_cache_max_size
    jax.config.update("jax_compilation_cache_dir", None)
    monkeypatch.setenv("HOME", str(tmp_path))  # the default directory under this test's home
    monkeypatch.delenv(backend.COMPILE_CACHE_ENV, raising=False)
    default = tmp_path / ".cache" / "jaxrl" / "xla"
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error")  # on by default, on every jaxlib: no warning
            assert backend.enable_compile_cache() == default
        assert default.is_dir()
        assert backend.enable_compile_cache(tmp_path / "other") == default  # a configured one
        jax.config.update("jax_compilation_cache_dir", None)
        forced = tmp_path / "forced"  # a directory named in the environment
        monkeypatch.setenv(backend.COMPILE_CACHE_ENV, str(forced))
        assert backend.enable_compile_cache() == forced and forced.is_dir()
        jax.config.update("jax_compilation_cache_dir", None)
        assert backend.enable_compile_cache(tmp_path / "argument") == tmp_path / "argument"
        jax.config.update("jax_compilation_cache_dir", None)
        monkeypatch.setenv(backend.COMPILE_CACHE_ENV, "off")
        assert backend.enable_compile_cache() is None
        assert jax.config.jax_compilation_cache_dir is None
    finally:
        jax.config.update("jax_compilation_cache_dir", session_cache)
        jax.config.update("jax_compilation_cache_max_size", max_size)


@pytest.mark.parametrize("shape", [(4, 64), (64, 64), (64, 2), (1, 7), (3, 3, 4, 16),
                                   (3, 3, 16, 4)])
def test_gram_schmidt_orthogonal_init_draws_flax_s_matrices_without_a_qr(shape):
    # Same key → the matrix jax's QR-based initialiser draws (the Q with a positive R diagonal
    # is unique), orthonormal along the smaller side, also under vmap, and no LAPACK call.
    from jaxrl.backend import orthogonal_gram_schmidt

    mine, flax_s = orthogonal_gram_schmidt(0.5), jax.nn.initializers.orthogonal(0.5)
    keys = jax.random.split(jax.random.key(3), 3)
    ours = jax.jit(jax.vmap(lambda key: mine(key, shape)))(keys)
    theirs = jax.vmap(lambda key: flax_s(key, shape))(keys)
    np.testing.assert_allclose(ours, theirs, atol=2e-6)
    flat = np.asarray(ours[0]).reshape(-1, shape[-1]) / 0.5
    gram = flat.T @ flat if flat.shape[0] >= flat.shape[1] else flat @ flat.T
    np.testing.assert_allclose(gram, np.eye(len(gram)), atol=1e-5)
    hlo = jax.jit(lambda key: mine(key, shape)).lower(keys[0]).as_text()
    assert "custom_call" not in hlo and "lapack" not in hlo


def test_jaxrl_s_orthogonal_init_avoids_lapack_where_the_qr_deadlocks(monkeypatch):
    from jaxrl import backend
    from jaxrl.models import orthogonal

    key, shape = jax.random.key(0), (8, 8)
    monkeypatch.setattr(backend, "lapack_qr_hangs", lambda *args: True)
    assert "custom_call" not in jax.jit(lambda k: orthogonal(2.0)(k, shape)).lower(key).as_text()
    monkeypatch.setattr(backend, "lapack_qr_hangs", lambda *args: False)
    np.testing.assert_array_equal(orthogonal(2.0)(key, shape),
                                  jax.nn.initializers.orthogonal(2.0)(key, shape))
