"""REINFORCE: hand-worked reward-to-go and loss, API contract, determinism, sweeps, probes."""

import distrax
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from probe_envs import ConstantRewardEnv, ObservedSignEnv, ProbeParams

from jaxrl import envs
from jaxrl.agents import reinforce
from jaxrl.models import make_actor_critic
from jaxrl.training import on_policy
from jaxrl.training.config import check_config

# One xdist group (README's command runs ``--dist loadgroup``): the module's compiled fixtures
# are built once, on one worker.
pytestmark = pytest.mark.xdist_group("reinforce")

TINY = reinforce.Config(total_timesteps=2 * 4 * 16, num_envs=4, num_steps=16, update_epochs=2,
                        hidden_sizes=(16,))
# The compiled API tests run on Pendulum with both normalisations: continuous actions and the
# statistics on the same program (the probes below cover discrete actions).
NORMALISED = TINY.replace(normalize_obs=True, normalize_reward=True)


def _stack(*trees):
    return jax.tree.map(lambda *x: jnp.stack(x), *trees)


@pytest.fixture(scope="module")
def cartpole():
    return envs.make("CartPole-v1")


def _checked(train):
    # Every run below is traced with the key-reuse checker on: one compile serves all the tests.
    def run(*args):
        with jax.debug_key_reuse(True):
            return train(*args)

    return run


@pytest.fixture(scope="module")
def pendulum():
    return envs.make("Pendulum-v1")


@pytest.fixture(scope="module")
def run(pendulum):
    """One compiled ``(config, key) -> (state, metrics)`` on Pendulum for every config with
    NORMALISED's shapes."""
    env, params = pendulum
    return _checked(jax.jit(lambda config, key: reinforce.make_train(config, env, params)(key)))


# --- hand-worked oracles -------------------------------------------------------------------

def _three_step_batch(terminated_last: bool) -> on_policy.Batch:
    # One env, rewards 1, 2, 3; the episode ends on the third step (terminated or truncated);
    # V(s_t) = 4, 4, 2 and V(final_obs) = 10. Observation t is the index t (see _TableNetwork).
    def column(values, dtype=jnp.float32):
        return jnp.asarray(values, dtype)[:, None]

    return on_policy.Batch(
        obs=column([[0.0], [1.0], [2.0]]), action=column([1, 1, 1], jnp.int32),
        log_prob=column([0.0, 0.0, 0.0]), value=column([4.0, 4.0, 2.0]),
        next_value=column([4.0, 2.0, 10.0]), reward=column([1.0, 2.0, 3.0]),
        terminated=column([False, False, terminated_last], bool),
        truncated=column([False, False, not terminated_last], bool))


HAND = reinforce.Config(gamma=0.9, normalize_returns=False)


def test_reward_to_go_of_a_terminated_episode_matches_hand_worked_values():
    # G_2 = 3; G_1 = 2 + 0.9·3 = 4.7; G_0 = 1 + 0.9·4.7 = 5.23 (termination: no bootstrap).
    # Advantages G - V = 1.23, 0.7, 1.0.
    advantages, returns = reinforce.advantages_and_targets(_three_step_batch(True), HAND)
    np.testing.assert_allclose(returns[:, 0], [5.23, 4.7, 3.0], rtol=1e-6)
    np.testing.assert_allclose(advantages[:, 0], [1.23, 0.7, 1.0], rtol=1e-5)


def test_truncated_episode_bootstraps_from_the_baseline_only():
    # Truncated: G_2 = 3 + 0.9·V(final_obs) = 3 + 9 = 12; G_1 = 2 + 0.9·12 = 12.8;
    # G_0 = 1 + 0.9·12.8 = 12.52. Without a baseline there is no V to bootstrap from: 5.23, 4.7, 3.
    batch = _three_step_batch(False)
    _, returns = reinforce.advantages_and_targets(batch, HAND)
    np.testing.assert_allclose(returns[:, 0], [12.52, 12.8, 12.0], rtol=1e-6)
    advantages, returns = reinforce.advantages_and_targets(batch, HAND.replace(use_baseline=False))
    np.testing.assert_allclose(returns[:, 0], [5.23, 4.7, 3.0], rtol=1e-6)
    np.testing.assert_allclose(advantages, returns)  # no baseline: the weights are the returns


def test_normalize_returns_standardises_the_weights():
    advantages, _ = reinforce.advantages_and_targets(_three_step_batch(False),
                                                     HAND.replace(normalize_returns=True))
    assert float(advantages.mean()) == pytest.approx(0.0, abs=1e-6)
    assert float(advantages.std()) == pytest.approx(1.0, rel=1e-5)


class _TableNetwork:
    """Stub actor-critic: at observation t, π(a=1) = params["probs"][t], V = params["values"][t]."""

    def apply(self, params, obs):
        index = obs[..., 0].astype(jnp.int32)
        p = params["probs"][index]
        return distrax.Categorical(probs=jnp.stack([1.0 - p, p], -1)), params["values"][index]


def test_baseline_loss_matches_hand_worked_numbers():
    # Terminated episode above: A = 1.23, 0.7, 1.0; G = 5.23, 4.7, 3. π(a_t|s_t) = 0.5, 0.25, 0.8.
    # policy  -mean(log π · A) = (0.6931·1.23 + 1.3863·0.7 + 0.2231·1.0) / 3 = 0.682040
    # value   ½ mean((V - G)²) = ½ (1.23² + 0.7² + 1²) / 3 = 0.500483
    # entropy mean binary H(p) = (0.693147 + 0.562335 + 0.500402) / 3 = 0.585295
    # total   0.682040 + 0.5·0.500483 - 0.01·0.585295 = 0.926429
    # ∂L/∂V_t = 0.5 (V_t - G_t) / 3 = -0.205, -0.116667, -0.166667 (A itself carries no gradient).
    params = {"probs": jnp.array([0.5, 0.25, 0.8]), "values": jnp.array([4.0, 4.0, 2.0])}
    network = _TableNetwork()

    @jax.jit  # one compile for the targets, the loss and its gradient
    def loss_and_grad(params):
        batch = _three_step_batch(True)
        advantages, targets = reinforce.advantages_and_targets(batch, HAND)
        samples = {"obs": batch.obs, "action": batch.action, "advantages": advantages,
                   "targets": targets}

        def loss(params):
            return on_policy.actor_critic_loss(network, params, samples, 0.5, 0.01)

        return jax.value_and_grad(loss, has_aux=True)(params)

    (total, stats), grads = loss_and_grad(params)
    np.testing.assert_allclose(stats["policy_loss"], 0.682040, rtol=1e-5)
    np.testing.assert_allclose(stats["value_loss"], 0.500483, rtol=1e-5)
    np.testing.assert_allclose(stats["entropy"], 0.585295, rtol=1e-5)
    np.testing.assert_allclose(total, 0.926429, rtol=1e-5)
    np.testing.assert_allclose(grads["values"], [-0.205, -0.116667, -0.166667], rtol=1e-5)


# --- API contract ----------------------------------------------------------------------------

def test_invalid_sizes_raise_clear_errors(cartpole):
    env, params = cartpole
    with pytest.raises(ValueError, match="total_timesteps"):
        reinforce.make_train(TINY.replace(total_timesteps=10), env, params)
    with pytest.raises(ValueError, match="update_epochs"):
        reinforce.make_train(TINY.replace(update_epochs=0), env, params)
    with pytest.raises(ValueError, match="num_steps"):
        reinforce.make_train(TINY.replace(num_steps=0), env, params)
    with pytest.raises(ValueError, match="normalize_returns"):
        reinforce.make_train(TINY.replace(num_envs=1, num_steps=1, total_timesteps=1), env,
                             params)


def test_check_config_rejects_out_of_range_values():
    check_config(reinforce.Config())
    for field, value in [("learning_rate", -1.0), ("gamma", 1.5), ("ent_coef", -0.1),
                         ("vf_coef", -1.0), ("max_grad_norm", 0.0)]:
        with pytest.raises(ValueError, match=field):
            check_config(TINY.replace(**{field: value}))


def test_metrics_have_one_entry_per_update(run):
    state, metrics = run(NORMALISED, jax.random.key(0))
    for name in ("episode_return", "loss", "policy_loss", "value_loss", "entropy", "grad_norm",
                 "step"):
        assert metrics[name].shape == (TINY.num_updates,), name
    np.testing.assert_array_equal(metrics["step"], [64, 128])
    assert int(state.update_count) == TINY.num_updates
    assert np.isfinite(metrics["loss"]).all()


@pytest.fixture(scope="module")
def run_batched(pendulum):
    """``vmap`` over (config, key) pairs: seeds and hyperparameter sweeps in one compile."""
    env, params = pendulum
    # Not key-checked: jax 0.9's checker flags any key split inside a vmapped scan.
    return jax.jit(jax.vmap(lambda config, key: reinforce.make_train(config, env, params)(key)))


@pytest.mark.slow
def test_learning_rate_sweep_in_one_call_matches_separate_runs(run, run_batched):
    configs = [NORMALISED.replace(learning_rate=1e-2), NORMALISED.replace(learning_rate=1e-3)]
    keys = jnp.stack([jax.random.key(0), jax.random.key(0)])
    _, swept = run_batched(_stack(*configs), keys)
    for i, config in enumerate(configs):
        _, single = run(config, jax.random.key(0))
        np.testing.assert_allclose(swept["loss"][i], single["loss"], rtol=1e-4, atol=1e-5)
    assert not np.allclose(swept["loss"][0], swept["loss"][1])


def test_continuous_actions_run_with_normalisation(pendulum, run):
    env, params = pendulum
    config = NORMALISED
    state, metrics = run(config, jax.random.key(0))
    assert np.isfinite(metrics["loss"]).all()
    assert float(state.rollout.obs_stats.count) > 100
    action = reinforce.make_agent(config, env, params).act(state, jnp.zeros((3,)),
                                                           jax.random.key(1), True)
    assert action.shape == (1,) and -2.0 <= float(action[0]) <= 2.0


# --- probe environments ----------------------------------------------------------------------

def test_baseline_learns_the_bootstrapped_value_of_a_truncated_episode():
    # Reward 1 forever, time limit 5: truncation bootstraps from V(final_obs), so the baseline's
    # fixed point is 1 / (1 - 0.9) = 10 (about 3.7 if truncation were treated as termination).
    env, params = ConstantRewardEnv(), ProbeParams(max_steps_in_episode=5)
    config = reinforce.Config(total_timesteps=300 * 8 * 16, num_envs=8, num_steps=16,
                              hidden_sizes=(16,), learning_rate=1e-2, anneal_lr=False, gamma=0.9,
                              max_grad_norm=10.0, vf_coef=1.0)
    state, _ = jax.jit(reinforce.make_train(config, env, params))(jax.random.key(0))
    network = make_actor_critic(env.observation_space(params), env.action_space(params),
                                config.hidden_sizes, config.activation)
    value = float(network.apply(state.params, jnp.zeros((1,)), method="value"))
    assert value == pytest.approx(10.0, rel=0.1)


def test_discrete_policy_learns_to_use_its_observation():
    env, params = ObservedSignEnv(), ProbeParams(max_steps_in_episode=1)
    config = reinforce.Config(total_timesteps=60 * 16 * 8, num_envs=16, num_steps=8,
                              hidden_sizes=(16,), learning_rate=1e-2, anneal_lr=False)
    _, metrics = jax.jit(reinforce.make_train(config, env, params))(jax.random.key(0))
    assert float(np.mean(metrics["episode_return"][-5:])) > 0.9
