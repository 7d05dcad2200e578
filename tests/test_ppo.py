"""PPO: API contract, determinism, vmapped seeds and sweeps, probe environments, learning."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from helpers import leaves_equal, optimised_jit
from probe_envs import (
    ConstantRewardEnv,
    ObservedSignEnv,
    ProbeParams,
    TargetActionEnv,
    TerminalRewardEnv,
)

from jaxrl import envs
from jaxrl.agents import ppo
from jaxrl.models import make_actor_critic
from jaxrl.training.config import check_config

# One xdist group (README's command runs ``--dist loadgroup``): the module's compiled fixtures
# are built once, on one worker.
pytestmark = pytest.mark.xdist_group("ppo")

TINY = ppo.Config(total_timesteps=2 * 4 * 16, num_envs=4, num_steps=16, update_epochs=2,
                  num_minibatches=2, hidden_sizes=(16,))
# The compiled API tests run on Pendulum with both normalisations: continuous actions and the
# statistics on the same program (the probes below cover discrete actions).
NORMALISED = TINY.replace(normalize_obs=True, normalize_reward=True)


@pytest.fixture(scope="module")
def cartpole():
    return envs.make("CartPole-v1")


@pytest.fixture(scope="module")
def pendulum():
    return envs.make("Pendulum-v1")


@pytest.fixture(scope="module")
def run(pendulum):
    """One compiled ``(config, key) -> (state, metrics)`` on Pendulum for every config with
    NORMALISED's shapes (numeric hyperparameters are leaves: another learning rate compiles
    nothing new)."""
    env, params = pendulum
    return jax.jit(lambda config, key: ppo.make_train(config, env, params)(key))


def test_invalid_sizes_raise_clear_errors(cartpole):
    env, params = cartpole
    with pytest.raises(ValueError, match="num_minibatches"):
        ppo.make_train(TINY.replace(num_envs=3, num_steps=5, num_minibatches=4), env, params)
    with pytest.raises(ValueError, match="total_timesteps"):
        ppo.make_train(TINY.replace(total_timesteps=10), env, params)
    with pytest.raises(ValueError, match="learning_rate"):
        check_config(TINY.replace(learning_rate=-1.0))
    with pytest.raises(ValueError, match="gamma"):
        check_config(TINY.replace(gamma=1.5))


def test_metrics_have_one_entry_per_update(run):
    state, metrics = run(NORMALISED, jax.random.key(0))
    for name in ("episode_return", "loss", "policy_loss", "value_loss", "entropy", "approx_kl",
                 "clip_fraction", "step"):
        assert metrics[name].shape == (TINY.num_updates,), name
    np.testing.assert_array_equal(metrics["step"], [64, 128])
    assert int(state.update_count) == TINY.num_updates
    assert np.isfinite(metrics["loss"]).all()


def test_policy_change_is_measured_on_the_whole_rollout(cartpole):
    # approx_kl / clip_fraction compare the updated policy with the rollout's on every sample:
    # zero for unchanged parameters; for other parameters, the k3 estimate and the share of
    # samples whose ratio left [1-ε, 1+ε], both by hand from the log-probs.
    env, params = cartpole
    network = make_actor_critic(env.observation_space(params), env.action_space(params), (16,))

    @jax.jit  # one compile for the whole setup
    def changes():
        obs = jax.random.normal(jax.random.key(0), (8, 4, 4))
        before = network.init(jax.random.key(1), obs[0])
        # Another init, scaled up: the 0.01-gain policy head starts near-uniform.
        after = jax.tree.map(lambda x: 30 * x, network.init(jax.random.key(2), obs[0]))
        actions = network.apply(before, obs, method="policy").sample(seed=jax.random.key(3))
        old = network.apply(before, obs, method="policy").log_prob(actions)
        samples = {"obs": obs, "action": actions, "log_prob": old}
        log_ratio = network.apply(after, obs, method="policy").log_prob(actions) - old
        return (ppo.policy_change(network, TINY, before, samples),
                ppo.policy_change(network, TINY, after, samples), log_ratio)

    same, moved, log_ratio = changes()
    assert float(same["approx_kl"]) == 0.0 and float(same["clip_fraction"]) == 0.0
    np.testing.assert_allclose(moved["approx_kl"], np.mean(np.exp(log_ratio) - 1 - log_ratio),
                               rtol=1e-4)
    np.testing.assert_allclose(moved["clip_fraction"],
                               np.mean(np.abs(np.exp(log_ratio) - 1) > TINY.clip_eps))
    assert float(moved["approx_kl"]) > 0.01 and float(moved["clip_fraction"]) > 0.0


def test_episode_return_is_nan_until_an_episode_finishes_then_carried():
    env, params = ConstantRewardEnv(), ProbeParams(max_steps_in_episode=24)
    config = TINY.replace(total_timesteps=4 * 4 * 8, num_steps=8)  # 4 updates of 8 steps
    _, metrics = jax.jit(ppo.make_train(config, env, params))(jax.random.key(0))
    returns = np.asarray(metrics["episode_return"])
    # Episodes last 24 steps: none ends in updates 1-2, all end on step 24 (update 3).
    assert np.isnan(returns[:2]).all()
    np.testing.assert_allclose(returns[2:], [24.0, 24.0])


def test_legacy_uint32_keys_are_accepted(cartpole):
    # train(key) = scan(update, init(key)): the key enters the run through init alone, so equal
    # initial states (their keys included) make equal runs.
    env, params = cartpole
    init = jax.jit(ppo.make_agent(TINY, env, params).init)
    assert leaves_equal(init(jax.random.key(3)), init(jax.random.PRNGKey(3)))


def test_learning_rate_sweep_in_one_call_matches_separate_runs(pendulum, run):
    env, params = pendulum
    configs = jax.tree.map(lambda *x: jnp.stack(x), NORMALISED.replace(learning_rate=1e-3),
                           NORMALISED.replace(learning_rate=3e-4))
    sweep = jax.jit(jax.vmap(lambda c, k: ppo.make_train(c, env, params)(k), in_axes=(0, None)))
    _, swept = sweep(configs, jax.random.key(0))
    for i, lr in enumerate((1e-3, 3e-4)):
        _, single = run(NORMALISED.replace(learning_rate=lr), jax.random.key(0))
        np.testing.assert_allclose(swept["loss"][i], single["loss"], rtol=1e-4, atol=1e-5)
    assert not np.allclose(swept["loss"][0], swept["loss"][1])


def _value_of_zero_obs(env, params, config):
    state, _ = jax.jit(ppo.make_train(config, env, params))(jax.random.key(0))
    network = make_actor_critic(env.observation_space(params), env.action_space(params),
                                config.hidden_sizes, config.activation)
    return float(network.apply(state.params, jnp.zeros((1,)), method="value"))


VALUE_PROBE = ppo.Config(total_timesteps=200 * 8 * 16, num_envs=8, num_steps=16,
                         update_epochs=4, num_minibatches=2, hidden_sizes=(16,),
                         learning_rate=1e-2, anneal_lr=False, gamma=0.9, ent_coef=0.0,
                         max_grad_norm=10.0)


def test_truncation_bootstraps_from_final_observation():
    # Reward 1 forever, time limit 5: the true value is 1 / (1 - 0.9) = 10. Treating the
    # truncation as termination would give (1 - 0.9^k) / 0.1 averaged over k = 1..5, about 3.7.
    value = _value_of_zero_obs(ConstantRewardEnv(), ProbeParams(max_steps_in_episode=5),
                               VALUE_PROBE)
    assert value == pytest.approx(10.0, rel=0.1)


def test_termination_stops_bootstrapping():
    value = _value_of_zero_obs(TerminalRewardEnv(), ProbeParams(max_steps_in_episode=5),
                               VALUE_PROBE.replace(total_timesteps=50 * 8 * 16))
    assert value == pytest.approx(1.0, abs=0.05)


PROBE = ppo.Config(total_timesteps=60 * 16 * 8, num_envs=16, num_steps=8, update_epochs=4,
                   num_minibatches=2, hidden_sizes=(16,), learning_rate=3e-3, anneal_lr=False)


def test_discrete_policy_learns_to_use_its_observation():
    env, params = ObservedSignEnv(), ProbeParams(max_steps_in_episode=1)
    _, metrics = jax.jit(ppo.make_train(PROBE, env, params))(jax.random.key(0))
    assert float(np.mean(metrics["episode_return"][-5:])) > 0.9


def test_gaussian_policy_mean_moves_to_the_observed_target():
    env, params = TargetActionEnv(), ProbeParams(max_steps_in_episode=1)
    config = PROBE.replace(ent_coef=0.0)
    state, _ = jax.jit(ppo.make_train(config, env, params))(jax.random.key(0))
    act = ppo.make_agent(config, env, params).act
    for sign in (1.0, -1.0):
        action = act(state, jnp.array([sign]), jax.random.key(1), True)
        assert float(action[0]) == pytest.approx(0.5 * sign, abs=0.1)


def test_continuous_actions_run_with_normalisation(pendulum, run):
    env, params = pendulum
    config = NORMALISED
    state, metrics = run(config, jax.random.key(0))
    assert np.isfinite(metrics["loss"]).all()
    assert float(state.rollout.obs_stats.count) > 100  # statistics were updated from the rollouts
    assert float(state.rollout.return_stats.count) > 100
    agent = ppo.make_agent(config, env, params)
    action = agent.act(state, jnp.zeros((3,)), jax.random.key(1), True)
    assert action.shape == (1,) and -2.0 <= float(action[0]) <= 2.0


@pytest.mark.slow  # the on-policy family's learning test
def test_default_config_solves_cartpole_within_its_first_200_updates(cartpole):
    # The defaults (1,953 updates of 256 steps, the learning rate annealed over all of them)
    # solve CartPole long before their end: within their first 200 updates (51,200 steps) the
    # 5-update average return reaches 475 on seeds 0-7 (by update 56-136). Reaching, not
    # holding: at the still high learning rate a solved policy can fall back for a while (seed
    # 3 is near 100 at update 200).
    env, params = cartpole
    agent = ppo.make_agent(ppo.Config(), env, params)

    def first_updates(key):
        return jax.lax.scan(lambda state, _: agent.update(state), agent.init(key), None,
                            length=200)

    keys = jnp.stack([jax.random.key(s) for s in range(2)])
    _, metrics = optimised_jit(jax.vmap(first_updates))(keys)
    windows = np.lib.stride_tricks.sliding_window_view(metrics["episode_return"], 5, axis=1)
    best = np.nanmax(windows.mean(-1), axis=1)  # NaN before a seed's first finished episode
    assert np.all(best >= 475), best
