"""A2C: hand-worked targets, online one-step mode, API contract, determinism, sweeps, probes."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from probe_envs import ConstantRewardEnv, ObservedSignEnv, ProbeParams

from jaxrl import envs
from jaxrl.agents import a2c
from jaxrl.models import make_actor_critic
from jaxrl.training import on_policy
from jaxrl.training.config import check_config

# One xdist group (README's command runs ``--dist loadgroup``): the module's compiled fixtures
# are built once, on one worker.
pytestmark = pytest.mark.xdist_group("a2c")

# n-step targets and two minibatches, so the compiled API tests cover those paths too.
TINY = a2c.Config(total_timesteps=2 * 4 * 8, num_envs=4, num_steps=8, num_minibatches=2,
                  n_steps_return=3, hidden_sizes=(16,))
# The compiled API tests run on Pendulum with both normalisations and Adam: continuous actions
# and the statistics on the same program (the probes below cover discrete actions, the online
# test the default optimiser).
NORMALISED = TINY.replace(normalize_obs=True, normalize_reward=True, optimizer="adam")


def _stack(*trees):
    return jax.tree.map(lambda *x: jnp.stack(x), *trees)


def _value_network(env, params, config):
    return make_actor_critic(env.observation_space(params), env.action_space(params),
                             config.hidden_sizes, config.activation)


@pytest.fixture(scope="module")
def cartpole():
    return envs.make("CartPole-v1")


@pytest.fixture(scope="module")
def pendulum():
    return envs.make("Pendulum-v1")


@pytest.fixture(scope="module")
def run(pendulum):
    """One compiled ``(config, key) -> (state, metrics)`` on Pendulum for every config with
    NORMALISED's shapes, traced with the key-reuse checker on."""
    env, params = pendulum
    train = jax.jit(lambda config, key: a2c.make_train(config, env, params)(key))

    def checked(*args):
        with jax.debug_key_reuse(True):
            return train(*args)

    return checked


@pytest.fixture(scope="module")
def run_batched(pendulum):
    """``vmap`` over (config, key) pairs: seeds and hyperparameter sweeps in one compile.
    Not key-checked: jax 0.9's checker flags any key split inside a vmapped scan."""
    env, params = pendulum
    return jax.jit(jax.vmap(lambda config, key: a2c.make_train(config, env, params)(key)))


# --- hand-worked oracles -------------------------------------------------------------------

def _batch(reward, value, next_value, terminated, truncated) -> on_policy.Batch:
    reward = jnp.asarray(reward, jnp.float32)
    return on_policy.Batch(
        obs=jnp.zeros((*reward.shape, 1)), action=jnp.zeros(reward.shape, jnp.int32),
        log_prob=jnp.zeros_like(reward), value=jnp.asarray(value, jnp.float32),
        next_value=jnp.asarray(next_value, jnp.float32), reward=reward,
        terminated=jnp.asarray(terminated, bool), truncated=jnp.asarray(truncated, bool))


def test_n_step_targets_stop_at_a_termination_inside_the_window():
    # Two envs, 4 steps, reward 1 each step, γ = 0.9, n = 3, V(s') = 5, 6, 7, 8 for both.
    # Env 0 terminates at t=1:  G_0 = 1 + 0.9·1 = 1.9 (no bootstrap), G_1 = 1,
    #   G_2 = 1 + 0.9·1 + 0.81·V(s_4)=8 = 8.38 (the window is cut at T), G_3 = 1 + 0.9·8 = 8.2.
    # Env 1 is truncated at t=1: G_1 = 1 + 0.9·6 = 6.4, G_0 = 1 + 0.9·6.4 = 6.76; t=2, 3 as env 0.
    # V(s_t) = 2, 1, 3, 4 gives advantages G - V.
    ones = np.ones((4, 2))
    next_value = np.array([[5.0, 5.0], [6.0, 6.0], [7.0, 7.0], [8.0, 8.0]])
    value = np.array([[2.0, 2.0], [1.0, 1.0], [3.0, 3.0], [4.0, 4.0]])
    ended = np.array([[False], [True], [False], [False]])
    batch = _batch(ones, value, next_value, ended & [True, False], ended & [False, True])
    advantages, targets = a2c.advantages_and_targets(
        batch, a2c.Config(gamma=0.9, n_steps_return=3))
    np.testing.assert_allclose(targets, [[1.9, 6.76], [1.0, 6.4], [8.38, 8.38], [8.2, 8.2]],
                               rtol=1e-6)
    np.testing.assert_allclose(advantages, targets - value, rtol=1e-6)


def test_gae_lambda_one_is_the_bootstrapped_monte_carlo_return():
    # Rewards 1, 2, 3, no episode end, V(s_3) = 10, γ = 0.9, λ = 1:
    # G_2 = 3 + 9 = 12, G_1 = 2 + 0.9·12 = 12.8, G_0 = 1 + 0.9·12.8 = 12.52.
    batch = _batch([[1.0], [2.0], [3.0]], [[4.0], [4.0], [2.0]], [[4.0], [2.0], [10.0]],
                   np.zeros((3, 1), bool), np.zeros((3, 1), bool))
    advantages, targets = a2c.advantages_and_targets(batch, a2c.Config(gamma=0.9))
    np.testing.assert_allclose(targets[:, 0], [12.52, 12.8, 12.0], rtol=1e-6)
    np.testing.assert_allclose(advantages[:, 0], [8.52, 8.8, 10.0], rtol=1e-6)


def test_online_advantage_is_the_td_error():
    # r = 1, V(s) = 2, V(s') = 5, γ = 0.9: δ = 1 + 4.5 - 2 = 3.5; terminated: δ = 1 - 2 = -1.
    batch = _batch([[1.0, 1.0]], [[2.0, 2.0]], [[5.0, 5.0]], [[False, True]], [[False, False]])
    advantages, targets = a2c.advantages_and_targets(
        batch, a2c.Config(gamma=0.9, num_steps=1, online=True))
    np.testing.assert_allclose(advantages, [[3.5, -1.0]], rtol=1e-6)
    np.testing.assert_allclose(targets, [[5.5, 1.0]], rtol=1e-6)


class SignedBanditEnv(ConstantRewardEnv):
    """Observation 0; action 1 earns +1 and action 0 earns -1; one-step episodes."""

    def step_env(self, key, state, action, params):
        reward = jnp.where(action == 1, 1.0, -1.0).astype(jnp.float32)
        return jnp.zeros((1,), jnp.float32), state, reward, jnp.bool_(True), {}


def test_one_online_update_moves_actor_and_critic_the_right_way():
    # One transition (s, a, r) with |V(s)| < 1: δ = r - V(s) has the sign of r, so whichever
    # action was sampled, π(a=1|s) rises (a=1: r=+1 reinforced; a=0: r=-1 discouraged) and V(s)
    # moves towards r.
    env, params = SignedBanditEnv(), ProbeParams(max_steps_in_episode=1)
    config = a2c.Config(total_timesteps=1, num_envs=1, num_steps=1, online=True,
                        hidden_sizes=(16,))
    init, train = a2c.make_agent(config, env, params).init, a2c.make_train(config, env, params)
    seeds = jnp.stack([jax.random.key(0), jax.random.key(1), jax.random.key(2)])
    before, (after, metrics) = jax.jit(jax.vmap(lambda key: (init(key), train(key))))(seeds)
    network = _value_network(env, params, config)

    def evaluate(network_params):  # (π(a=1|s), V(s)) at the bandit's one observation
        policy, value = network.apply(network_params, jnp.zeros((1,)))
        return policy.probs[1], value

    evaluate_seeds = jax.jit(jax.vmap(evaluate))
    prob_before, value_before = evaluate_seeds(before.params)
    prob_after, value_after = evaluate_seeds(after.params)
    reward = metrics["episode_return"][:, 0]  # each seed's one transition: +1 or -1
    assert set(np.asarray(reward).tolist()) == {-1.0, 1.0}  # both actions were tried
    assert (jnp.abs(value_before) < 1.0).all()
    assert (prob_after > prob_before).all()
    assert (jnp.abs(value_after - reward) < jnp.abs(value_before - reward)).all()


# --- API contract ----------------------------------------------------------------------------

def test_invalid_sizes_raise_clear_errors(cartpole):
    env, params = cartpole
    with pytest.raises(ValueError, match="num_minibatches"):
        a2c.make_train(TINY.replace(num_envs=3, num_steps=5, num_minibatches=4), env, params)
    with pytest.raises(ValueError, match="total_timesteps"):
        a2c.make_train(TINY.replace(total_timesteps=10), env, params)
    with pytest.raises(ValueError, match="num_envs"):
        a2c.make_train(TINY.replace(num_envs=0), env, params)
    with pytest.raises(ValueError, match="n_steps_return"):
        a2c.make_train(TINY.replace(n_steps_return=-1), env, params)
    with pytest.raises(ValueError, match="num_steps=1"):
        a2c.make_train(TINY.replace(online=True, n_steps_return=0), env, params)
    with pytest.raises(ValueError, match="optimizer"):
        a2c.make_train(TINY.replace(optimizer="sgd"), env, params)


def test_check_config_rejects_out_of_range_values():
    check_config(a2c.Config())
    for field, value in [("learning_rate", -1.0), ("gamma", 1.5), ("gae_lambda", 2.0),
                         ("ent_coef", -0.1), ("vf_coef", -1.0), ("max_grad_norm", 0.0)]:
        with pytest.raises(ValueError, match=field):
            check_config(TINY.replace(**{field: value}))


def test_metrics_have_one_entry_per_update(run):
    state, metrics = run(NORMALISED, jax.random.key(0))
    for name in ("episode_return", "loss", "policy_loss", "value_loss", "entropy", "grad_norm",
                 "step"):
        assert metrics[name].shape == (TINY.num_updates,), name
    np.testing.assert_array_equal(metrics["step"], [32, 64])
    assert int(state.update_count) == TINY.num_updates
    assert np.isfinite(metrics["loss"]).all()


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
    assert float(state.rollout.obs_stats.count) > 50
    action = a2c.make_agent(config, env, params).act(state, jnp.zeros((3,)), jax.random.key(1),
                                                     True)
    assert action.shape == (1,) and -2.0 <= float(action[0]) <= 2.0


# --- probe environments ----------------------------------------------------------------------

def test_truncation_bootstraps_from_final_observation():
    # Reward 1 forever, time limit 5: the true value is 1 / (1 - 0.9) = 10. Treating the
    # truncation as termination would give (1 - 0.9^k) / 0.1 averaged over k = 1..5, about 3.7.
    env, params = ConstantRewardEnv(), ProbeParams(max_steps_in_episode=5)
    config = a2c.Config(total_timesteps=200 * 8 * 16, num_envs=8, num_steps=16,
                        hidden_sizes=(16,), optimizer="adam", learning_rate=1e-2,
                        anneal_lr=False, gamma=0.9, max_grad_norm=10.0)
    state, _ = jax.jit(a2c.make_train(config, env, params))(jax.random.key(0))
    value = _value_network(env, params, config).apply(state.params, jnp.zeros((1,)),
                                                      method="value")
    assert float(value) == pytest.approx(10.0, rel=0.1)


def test_discrete_policy_learns_to_use_its_observation():
    env, params = ObservedSignEnv(), ProbeParams(max_steps_in_episode=1)
    config = a2c.Config(total_timesteps=100 * 16 * 4, num_envs=16, num_steps=4,
                        hidden_sizes=(16,), optimizer="adam", learning_rate=1e-2,
                        anneal_lr=False)
    _, metrics = jax.jit(a2c.make_train(config, env, params))(jax.random.key(0))
    assert float(np.mean(metrics["episode_return"][-5:])) > 0.9
