"""Datasets: layout, behaviour log-probs, save/load round trip, every loader error, CLI."""

import dataclasses
import json
import zipfile

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxrl import datasets, envs
from jaxrl.cli import main
from jaxrl.datasets import generation
from jaxrl.envs import Box, Discrete, experts

# One xdist group (README's command runs ``--dist loadgroup``): the module's compiled fixtures
# are built once, on one worker.
pytestmark = pytest.mark.xdist_group("datasets")


@pytest.fixture(scope="module")
def cartpole():
    return envs.make("CartPole-v1")


@pytest.fixture(scope="module")
def random_cartpole():
    return generation.generate("CartPole-v1", "random", 200, num_envs=4, seed=3)


def small_dataset(**overrides) -> datasets.Dataset:
    """Three CartPole transitions: one episode of 2 steps (terminated) and a cut segment."""
    obs = np.arange(12, dtype=np.float32).reshape(3, 4) / 100
    fields = dict(observations=obs, actions=np.array([0, 1, 1], np.int32),
                  rewards=np.ones(3, np.float32), next_observations=obs + 0.01,
                  terminated=np.array([False, True, False]),
                  truncated=np.array([False, False, True]),
                  log_probs=np.full(3, np.log(0.5), np.float32),
                  metadata={"env": "CartPole-v1", "policy": "random"})
    fields.update(overrides)
    return datasets.Dataset(**fields)


def test_generated_random_dataset_layout(random_cartpole, cartpole):
    data = random_cartpole
    assert len(data) == 200  # 4 envs × 50 steps
    assert data.observations.shape == data.next_observations.shape == (200, 4)
    np.testing.assert_allclose(data.log_probs, np.log(0.5), rtol=1e-6)  # uniform over 2 actions
    done = data.terminated | data.truncated
    assert done.reshape(4, 50)[:, -1].all()  # every env's segment ends an episode
    # env-major: within an episode the next observation is the next row's observation
    inside = ~done[:-1]
    np.testing.assert_array_equal(data.next_observations[:-1][inside],
                                  data.observations[1:][inside])
    assert data.metadata["env"] == "CartPole-v1" and data.metadata["policy"] == "random"
    assert data.metadata["steps"] == 200
    datasets.validate(data, *cartpole, env_id="CartPole-v1")


def test_episode_bounds_and_returns():
    starts, ends = datasets.episode_bounds(np.array([False, True, False, False]))
    np.testing.assert_array_equal(starts, [0, 2])
    np.testing.assert_array_equal(ends, [1, 3])  # the table's end closes the last episode
    np.testing.assert_array_equal(small_dataset().episode_returns(), [2.0, 1.0])


def test_round_trip_is_exact_and_atomic(tmp_path, cartpole):
    original = small_dataset()
    path = datasets.save(tmp_path / "sub" / "data.npz", original)
    assert sorted(p.name for p in path.parent.iterdir()) == ["data.npz"]  # no temporary left
    loaded = datasets.load(path, *cartpole, env_id="CartPole-v1")
    for key in datasets.ARRAY_KEYS:
        np.testing.assert_array_equal(getattr(loaded, key), getattr(original, key))
        assert getattr(loaded, key).dtype == getattr(original, key).dtype
    assert loaded.metadata == original.metadata


def test_epsilon_greedy_log_probs_are_hand_worked():
    policy = generation.noisy_policy(lambda obs: jnp.zeros(obs.shape[0], jnp.int32), Discrete(4),
                                   0.2)
    dist = policy(jnp.zeros((1, 3)))
    # π_b(greedy) = 0.8 + 0.2 / 4 = 0.85, every other action 0.05
    np.testing.assert_allclose(jnp.exp(dist.log_prob(jnp.array([0]))), [0.85], rtol=1e-6)
    np.testing.assert_allclose(jnp.exp(dist.log_prob(jnp.array([3]))), [0.05], rtol=1e-6)


def test_gaussian_behaviour_log_probs_stay_finite_at_the_bounds():
    # The expert pushes at the bound +2 of Pendulum; half the samples are clipped to it.
    space = Box(-2.0, 2.0, (1,))
    policy = generation.noisy_policy(lambda obs: jnp.full((obs.shape[0], 1), 2.0), space, 0.1)
    dist = policy(jnp.zeros((1000, 3)))
    samples, log_probs = dist.sample_and_log_prob(seed=jax.random.key(0))
    assert np.isfinite(np.asarray(log_probs)).all()
    assert (np.asarray(samples) > 2.0).mean() > 0.4  # many would be clipped when executed
    # density of N(2, 0.2²) before clipping: log N(x) = -½((x-2)/0.2)² - log(0.2 √(2π))
    expected = -0.5 * ((samples[:, 0] - 2.0) / 0.2) ** 2 - np.log(0.2 * np.sqrt(2 * np.pi))
    np.testing.assert_allclose(log_probs, expected, rtol=1e-4, atol=1e-5)
    with pytest.raises(ValueError, match="noise must be > 0"):
        generation.noisy_policy(lambda obs: obs, space, 0.0)


def test_random_continuous_dataset_stores_clipped_actions_and_uniform_log_probs():
    data = generation.generate("Pendulum-v1", "random", 40, num_envs=2)
    assert data.actions.shape == (40, 1) and data.actions.dtype == np.float32
    assert (np.abs(data.actions) <= 2.0).all()
    np.testing.assert_allclose(data.log_probs, -np.log(4.0), rtol=1e-6)


def test_scripted_expert_datasets_need_no_training(cartpole):
    # CartPole's scripted expert with ε = 0: every action is its own, log π_b(a|s) = 0 (log 1).
    data = generation.generate("CartPole-v1", "expert", 200, expert_algo=generation.SCRIPTED,
                             noise=0.0, num_envs=2)
    expert = experts.scripted_expert(cartpole[0])
    np.testing.assert_array_equal(data.actions, expert(jnp.asarray(data.observations)))
    np.testing.assert_array_equal(data.log_probs, 0.0)
    assert data.metadata["training"]["expert"] == {"algo": "scripted"}
    assert data.metadata["behaviour"]["expert"] == (
        "scripted expert: epsilon-greedy around the greedy action, epsilon = 0")
    assert data.metadata["reference_returns"]["expert"] == 500.0
    # Pendulum's scripted dataset: test_cli_dataset_from_the_scripted_expert.
    for policy in ("medium", "mixed"):
        with pytest.raises(ValueError, match="scripted expert has no partially trained"):
            generation.generate("Pendulum-v1", policy, 30, expert_algo="scripted", num_envs=3)


# ----------------------------------------------------------------------------------------------
# Every loader error names the key and the problem


def _saved(tmp_path, **arrays) -> str:
    base = {key: getattr(small_dataset(), key) for key in datasets.ARRAY_KEYS}
    base["metadata"] = np.array(json.dumps({"env": "CartPole-v1"}))
    base.update(arrays)
    path = tmp_path / "bad.npz"
    np.savez(path, **{k: v for k, v in base.items() if v is not None})
    return str(path)


@pytest.mark.parametrize(("arrays", "message"), [
    ({"log_probs": None}, "lacks key.*log_probs"),
    ({"metadata": None}, "lacks key.*metadata"),
    ({"metadata": np.array("{not json")}, "'metadata': is not a JSON string"),
    ({"actions": np.array([0, 1], np.int32)}, "'actions': has 2 entries, rewards has 3"),
    ({"rewards": np.ones((3, 1), np.float32)}, r"'rewards': must be a non-empty vector"),
    ({"terminated": np.zeros((3, 2), bool)}, r"'terminated': must have shape \[N\]"),
    ({"next_observations": np.zeros((3, 5), np.float32)}, "'next_observations': shape"),
    ({"truncated": np.zeros(3, np.float32)}, "'truncated': must be bool"),
    ({"observations": np.zeros((3, 4), np.int32)}, "'observations': must be floating"),
    ({"actions": np.array(["a", "b", "c"])}, "'actions': must be integer"),
    ({"rewards": np.array([1.0, np.nan, 1.0], np.float32)}, "'rewards': holds a non-finite.*1"),
    ({"log_probs": np.array([0.0, 0.0, -np.inf], np.float32)}, "'log_probs': holds a non-finite"),
    ({"observations": np.zeros((3, 3), np.float32),
      "next_observations": np.zeros((3, 3), np.float32)}, "'observations': shape per transition"),
    ({"actions": np.array([0, 2, 1], np.int32)}, r"'actions': values must lie in \[0, 2\)"),
    ({"actions": np.zeros((3, 1), np.float32)}, "'actions': the env has discrete actions"),
])
def test_loader_errors_name_the_key(tmp_path, cartpole, arrays, message):
    with pytest.raises(ValueError, match=message):
        datasets.load(_saved(tmp_path, **arrays), *cartpole)


def test_loader_errors_for_files_and_envs(tmp_path, cartpole):
    with pytest.raises(ValueError, match="no dataset file.*jaxrl dataset"):
        datasets.load(tmp_path / "missing.npz")
    garbage = tmp_path / "garbage.npz"
    garbage.write_bytes(b"not a zip")
    with pytest.raises(ValueError, match="garbage.npz is not a valid .npz dataset"):
        datasets.load(garbage)
    with pytest.raises(ValueError, match="collected on 'CartPole-v1', not 'Acrobot-v1'"):
        datasets.load(_saved(tmp_path), *cartpole, env_id="Acrobot-v1")
    pendulum = envs.make("Pendulum-v1")
    continuous = dataclasses.replace(small_dataset(), observations=np.zeros((3, 3), np.float32),
                                     next_observations=np.zeros((3, 3), np.float32),
                                     actions=np.array([[0.0], [2.5], [0.0]], np.float32))
    with pytest.raises(ValueError, match="'actions': values must lie within the action bounds"):
        datasets.validate(continuous, *pendulum)


def _clear_error(path) -> str:
    """The message of the one ``ValueError`` that loading ``path`` raises (no other exception)."""
    try:
        datasets.load(path)
    except ValueError as error:
        assert type(error) is ValueError, type(error)
        return str(error)
    raise AssertionError(f"{path} loaded")


def test_loading_corrupt_files_raises_one_clear_error(tmp_path):
    valid = datasets.save(tmp_path / "valid.npz", small_dataset()).read_bytes()
    bad = tmp_path / "bad.npz"
    rng = np.random.default_rng(0)
    cut = sorted({0, 1, 4, 30, 100, len(valid) // 2, len(valid) - 22, len(valid) - 1})
    for size in cut:  # truncated: the zip directory at the end is gone
        bad.write_bytes(valid[:size])
        assert _clear_error(bad).startswith(f"{bad} is not a valid .npz dataset (")
    corrupted = bytearray(valid)
    corrupted[200:210] = rng.integers(0, 256, 10, dtype=np.uint8).tobytes()  # inside a member
    for content in (rng.integers(0, 256, 4096, dtype=np.uint8).tobytes(), bytes(corrupted)):
        bad.write_bytes(content)
        assert "is not a valid .npz dataset" in _clear_error(bad)
    np.save(tmp_path / "array.npy", np.zeros(3))  # one .npy array, not an archive
    assert "is not a valid .npz dataset" in _clear_error(tmp_path / "array.npy")
    np.savez(bad, observations=np.array([{"a": 1}, None], dtype=object))
    assert "'observations' holds Python objects" in _clear_error(bad)
    with zipfile.ZipFile(bad, "w") as archive:  # a zip, but of something else
        archive.writestr("readme.txt", "hello")
    assert "member 'readme.txt' is not a .npy array" in _clear_error(bad)


@pytest.mark.parametrize("arrays", [
    {"rewards": np.array(1.0, np.float32)},
    {"rewards": np.ones(3, np.complex64)},
    {"actions": np.array([True, False, True])},
    {"terminated": np.array([0, 1, 0], np.uint8)},
    {"observations": np.array([["a"] * 4] * 3)},
    {"log_probs": np.array(["x", "y", "z"])},
    {"metadata": np.array("[1, 2]")},
    {"metadata": np.arange(3.0)},
])
def test_loading_wrong_dtypes_and_shapes_names_the_key(tmp_path, arrays):
    assert "dataset key" in _clear_error(_saved(tmp_path, **arrays))


def test_generate_rejects_bad_arguments():
    with pytest.raises(ValueError, match="--policy must be one of"):
        generation.generate("CartPole-v1", "perfect", 10)
    with pytest.raises(ValueError, match="mixed needs --num-envs >= 3"):
        generation.generate("CartPole-v1", "mixed", 10, num_envs=2)


# ----------------------------------------------------------------------------------------------
# CLI


@pytest.mark.slow
def test_cli_dataset_trains_an_expert_and_writes_a_valid_file(tmp_path, capsys, cartpole):
    out = tmp_path / "expert.npz"
    code = main(["dataset", "--env", "CartPole-v1", "--policy", "expert", "--steps", "64",
                 "--expert-steps", "512", "--num-envs", "4", "--out", str(out)])
    assert code == 0
    assert f"wrote {out}: 64 transitions" in capsys.readouterr().out
    data = datasets.load(out, *cartpole, env_id="CartPole-v1")
    assert data.metadata["policy"] == "expert"
    assert data.metadata["training"]["expert"] == {"algo": "ppo", "env_steps": 512, "seed": 0}
    assert data.metadata["behaviour"]["expert"] == "the agent's own stochastic policy"
    assert set(data.metadata["reference_returns"]) == {"random", "expert"}
    assert (data.log_probs < 0).all() and (data.log_probs > np.log(0.5) - 1).all()


def test_cli_dataset_reports_bad_input(tmp_path, capsys):
    code = main(["dataset", "--env", "CartPole-v1", "--policy", "mixed", "--steps", "10",
                 "--num-envs", "2", "--out", str(tmp_path / "x.npz")])
    assert code == 2
    assert "mixed needs --num-envs >= 3" in capsys.readouterr().err
    assert not (tmp_path / "x.npz").exists()


def test_cli_dataset_from_the_scripted_expert(tmp_path, capsys):
    out = tmp_path / "pendulum.npz"
    assert main(["dataset", "--env", "Pendulum-v1", "--expert-algo", "scripted", "--steps", "400",
                 "--num-envs", "2", "--out", str(out)]) == 0
    assert f"wrote {out}: 400 transitions" in capsys.readouterr().out
    data = datasets.load(out)
    assert data.metadata["training"]["expert"] == {"algo": "scripted"}
    # Pendulum's expert: Gaussian noise (default 0.1 of the half-range, σ = 0.2), clipped to ±2.
    returns = data.metadata["reference_returns"]
    assert returns["expert"] > -250 and returns["random"] < -900, returns
    assert (np.abs(data.actions) <= 2.0).all() and np.isfinite(data.log_probs).all()
    pendulum = envs.make("Pendulum-v1")[0]
    greedy = np.asarray(experts.scripted_expert(pendulum)(jnp.asarray(data.observations)))
    unclipped = (np.abs(data.actions) < 2.0)[:, 0]  # stored action = the sample
    assert unclipped.sum() > 100
    z = (data.actions - greedy)[unclipped, 0] / 0.2
    np.testing.assert_allclose(data.log_probs[unclipped],
                               -0.5 * z**2 - np.log(0.2 * np.sqrt(2 * np.pi)), atol=1e-4)
    assert main(["dataset", "--env", "Pendulum-v1", "--policy", "medium", "--expert-algo",
                 "scripted", "--out", str(tmp_path / "medium.npz")]) == 2
    assert "the scripted expert has no partially trained" in capsys.readouterr().err
    assert not (tmp_path / "medium.npz").exists()


def test_unknown_expert_algorithm_lists_the_choices():
    with pytest.raises(ValueError, match="unknown expert algorithm 'ppo2'; choose scripted or "
                                         "one of: .*ppo"):
        generation.generate("CartPole-v1", "expert", 10, expert_algo="ppo2", num_envs=2)
