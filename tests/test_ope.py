"""Off-policy evaluation: hand-worked estimators, unbiasedness on a two-armed bandit, FQE, CLI."""

import distrax
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from probe_envs import ConstantRewardEnv, ProbeParams

from jaxrl import datasets, ope
from jaxrl.cli import main
from jaxrl.datasets import generation
from jaxrl.envs import Discrete

# Two episodes, horizon 2; the second has one real step. Target / behaviour probabilities:
#   episode 0: ρ_0 = 0.5 / 0.25 = 2, ρ_1 = 0.25 / 0.5 = 0.5, rewards 1, 2
#   episode 1: ρ_0 = 0.75 / 0.5 = 1.5 (padding: log-probs 0, reward 5 ignored), reward 4
TARGET = jnp.log(jnp.array([[0.5, 0.25], [0.75, 1.0]]))
BEHAVIOUR = jnp.log(jnp.array([[0.25, 0.5], [0.5, 1.0]]))
REWARDS = jnp.array([[1.0, 2.0], [4.0, 5.0]])
MASK = jnp.array([[1.0, 1.0], [1.0, 0.0]])
GAMMA = 0.5


def test_ordinary_is_hand_worked():
    # w_0 = 2 · 0.5 = 1, G_0 = 1 + 0.5 · 2 = 2; w_1 = 1.5, G_1 = 4 → (1 · 2 + 1.5 · 4) / 2 = 4
    np.testing.assert_allclose(ope.ordinary_is(TARGET, BEHAVIOUR, REWARDS, MASK, GAMMA), 4.0,
                               rtol=1e-6)


def test_per_decision_is_hand_worked():
    # episode 0: 2 · 1 + 0.5 · (2 · 0.5) · 2 = 3; episode 1: 1.5 · 4 = 6 → (3 + 6) / 2 = 4.5
    np.testing.assert_allclose(ope.per_decision_is(TARGET, BEHAVIOUR, REWARDS, MASK, GAMMA), 4.5,
                               rtol=1e-6)


def test_weighted_is_hand_worked():
    # (1 · 2 + 1.5 · 4) / (1 + 1.5) = 3.2
    np.testing.assert_allclose(ope.weighted_is(TARGET, BEHAVIOUR, REWARDS, MASK, GAMMA), 3.2,
                               rtol=1e-6)


def test_weighted_is_survives_overflowing_weights_and_zero_weights():
    huge = jnp.full((2, 200), 1.0)  # log w = 200 per episode: exp overflows float32
    rewards = jnp.array([[1.0] + [0.0] * 199, [3.0] + [0.0] * 199])
    np.testing.assert_allclose(
        ope.weighted_is(huge, jnp.zeros((2, 200)), rewards, jnp.ones((2, 200)), 1.0), 2.0)
    never = jnp.full((2, 1), -jnp.inf)  # the target never takes the logged actions
    assert ope.weighted_is(never, jnp.zeros((2, 1)), jnp.ones((2, 1)), jnp.ones((2, 1)), 1.0) == 0


def test_estimators_reject_mismatched_shapes():
    with pytest.raises(ValueError, match=r"\[E, T\]"):
        ope.ordinary_is(TARGET, BEHAVIOUR[:, :1], REWARDS, MASK, GAMMA)


def test_episodes_pads_segments_of_a_flat_dataset():
    dataset = _flat_dataset(done=[False, True, False], rewards=[1.0, 2.0, 3.0])
    episodes = ope.episodes(dataset)
    np.testing.assert_array_equal(episodes.mask, [[1, 1], [1, 0]])
    np.testing.assert_array_equal(episodes.reward, [[1, 2], [3, 0]])
    np.testing.assert_array_equal(episodes.obs[:, :, 0], [[0, 1], [2, 0]])


def _flat_dataset(done, rewards, actions=None, obs=None, next_obs=None, log_probs=None):
    size = len(done)
    obs = np.arange(size, dtype=np.float32)[:, None] if obs is None else obs
    return datasets.Dataset(
        observations=obs, actions=np.zeros(size, np.int32) if actions is None else actions,
        rewards=np.asarray(rewards, np.float32),
        next_observations=obs + 1 if next_obs is None else next_obs,
        terminated=np.asarray(done, bool), truncated=np.zeros(size, bool),
        log_probs=np.zeros(size, np.float32) if log_probs is None else log_probs)


# ----------------------------------------------------------------------------------------------
# Two-armed bandit with a known answer: arm 0 pays N(1, 1), arm 1 pays N(0, 1); horizon 3.
# Behaviour pulls arm 0 with probability 0.5, the target with 0.8, so with γ = 0.9
# J(π) = (1 + 0.9 + 0.81) · 0.8 = 2.168.

HORIZON, TARGET_P, BEHAVIOUR_P, GAMMA_B = 3, 0.8, 0.5, 0.9
TRUE_VALUE = TARGET_P * (1 + 0.9 + 0.81)


def _bandit_estimates(key, episodes):
    arm_key, reward_key = jax.random.split(key)
    arms = jax.random.bernoulli(arm_key, 1 - BEHAVIOUR_P, (episodes, HORIZON)).astype(jnp.int32)
    rewards = jnp.where(arms == 0, 1.0, 0.0) + jax.random.normal(reward_key, arms.shape)
    target = jnp.log(jnp.where(arms == 0, TARGET_P, 1 - TARGET_P))
    behaviour = jnp.log(jnp.where(arms == 0, BEHAVIOUR_P, 1 - BEHAVIOUR_P))
    inputs = (target, behaviour, rewards, jnp.ones_like(rewards), GAMMA_B)
    return jnp.stack([ope.ordinary_is(*inputs), ope.per_decision_is(*inputs),
                      ope.weighted_is(*inputs)])


# One compiled program per number of episodes (not one per operation, as eager vmap would).
_many_bandit_estimates = jax.jit(jax.vmap(_bandit_estimates, in_axes=(0, None)),
                                 static_argnums=1)


def test_ordinary_and_per_decision_is_are_unbiased_on_a_bandit():
    # 4000 datasets of 5 episodes: the mean of an unbiased estimator is within ~4 standard
    # errors of the truth (OIS std per dataset ≈ 1.6, so the standard error ≈ 0.025).
    estimates = _many_bandit_estimates(
        jax.random.split(jax.random.key(0), 4000), 5)
    ois, pdis, wis = np.asarray(estimates).T
    np.testing.assert_allclose(ois.mean(), TRUE_VALUE, atol=0.1)
    np.testing.assert_allclose(pdis.mean(), TRUE_VALUE, atol=0.1)
    assert pdis.std() < ois.std()  # per-decision weighting removes variance
    # WIS with 5 episodes is biased toward the behaviour's value (1.355): detectably off
    assert abs(wis.mean() - TRUE_VALUE) > 0.1


def test_weighted_is_converges_as_the_dataset_grows():
    errors = []
    for episodes in (10, 100, 1000, 10000):
        estimates = _many_bandit_estimates(
            jax.random.split(jax.random.key(1), 200), episodes)
        errors.append(float(np.sqrt(np.mean((np.asarray(estimates)[:, 2] - TRUE_VALUE) ** 2))))
    # root-mean-square error over 200 datasets shrinks like 1/√n toward 0 (consistency)
    assert errors[0] > errors[1] > errors[2] > errors[3]
    assert errors[3] < 0.05


# ----------------------------------------------------------------------------------------------
# Fitted Q evaluation and the rollout value


def test_fqe_recovers_the_value_of_a_two_step_chain():
    # s0 --(any action, r = 0)--> s1 --(action 0: r = 1, action 1: r = 0)--> terminal.
    # Target π(0|s) = 0.8: J = γ · 0.8 = 0.72 with γ = 0.9; the data holds both actions.
    obs = np.array([[0.0], [0.0], [1.0], [1.0]], np.float32)
    data = datasets.Transitions(
        obs=jnp.asarray(obs), action=jnp.array([0, 1, 0, 1]),
        reward=jnp.array([0.0, 0.0, 1.0, 0.0]), next_obs=jnp.array([[1.0], [1.0], [0.0], [0.0]]),
        terminated=jnp.array([False, False, True, True]), truncated=jnp.zeros(4, bool),
        log_prob=jnp.full(4, np.log(0.5), jnp.float32))

    def target(obs):
        return distrax.Categorical(probs=jnp.broadcast_to(jnp.array([0.8, 0.2]),
                                                          (obs.shape[0], 2)))

    value = ope.fitted_q_evaluation(jax.random.key(0), data, target, jnp.zeros((1, 1)),
                                    Discrete(2), 0.9, num_iterations=20, steps_per_iteration=100,
                                    batch_size=16, hidden_sizes=(16,))
    np.testing.assert_allclose(value, 0.72, atol=0.03)


def test_rollout_value_is_the_discounted_first_episode_return():
    # reward 1 per step, truncated after 3 steps: 1 + 0.5 + 0.25 (the next episode not counted)
    env, params = ConstantRewardEnv(), ProbeParams(max_steps_in_episode=3)
    uniform = generation.random_policy(Discrete(2))
    value = ope.rollout_value(jax.random.key(0), env, params, uniform, 0.5, 4, 7)
    np.testing.assert_allclose(value, 1.75)


def test_cli_ope_on_random_data_with_the_random_target(tmp_path, capsys):
    # Target = behaviour: every ratio is 1, so OIS = PDIS = WIS = the dataset's own value.
    # 64 CartPole-shaped transitions of the uniform policy (log π_b = log ½), written by hand:
    # four 16-step episodes, each ending in a termination.
    rng = np.random.default_rng(0)
    obs = rng.uniform(-0.05, 0.05, (65, 4)).astype(np.float32)
    path = tmp_path / "random.npz"
    datasets.save(path, datasets.Dataset(
        observations=obs[:-1], actions=rng.integers(0, 2, 64).astype(np.int32),
        rewards=np.ones(64, np.float32), next_observations=obs[1:],
        terminated=np.arange(64) % 16 == 15, truncated=np.zeros(64, bool),
        log_probs=np.full(64, np.log(0.5), np.float32),
        metadata={"env": "CartPole-v1", "policy": "random"}))
    code = main(["ope", "--dataset", str(path), "--target", "random", "--fqe-iterations", "2",
                 "--fqe-steps", "5", "--rollout-envs", "8"])
    assert code == 0
    lines = dict(line.split() for line in capsys.readouterr().out.splitlines()[1:])
    assert set(lines) == {"ordinary_is", "per_decision_is", "weighted_is", "fqe", "true_value",
                          "behaviour_value"}
    for name in ("ordinary_is", "per_decision_is", "weighted_is"):
        np.testing.assert_allclose(float(lines[name]), float(lines["behaviour_value"]),
                                   rtol=1e-5)
    assert np.isfinite(float(lines["fqe"])) and float(lines["true_value"]) > 0


def test_cli_ope_reports_a_missing_dataset(tmp_path, capsys):
    assert main(["ope", "--dataset", str(tmp_path / "none.npz")]) == 2
    assert "no dataset file" in capsys.readouterr().err
