"""DQN, soft Q, DDPG, TD3 and SAC through the shared off-policy loop: metrics and step
accounting, value probes (truncation bootstraps from the final observation, termination does
not), config and action-space errors, and TD3's learning threshold (slow)."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from helpers import optimised_jit
from probe_envs import (
    ContinuousSwitchedRewardEnv,
    SwitchedRewardEnv,
    SwitchParams,
)

from jaxrl import envs
from jaxrl.agents import ddpg, dqn, sac, soft_q, td3
from jaxrl.models import CriticEnsemble, make_deterministic_actor, make_q_network
from jaxrl.training.config import check_config

DISCRETE = {"dqn": dqn, "soft_q": soft_q}
CONTINUOUS = {"ddpg": ddpg, "td3": td3, "sac": sac}
ALL = {**DISCRETE, **CONTINUOUS}
TINY = {"total_timesteps": 16 + 4 * 8, "num_envs": 2, "buffer_size": 64, "batch_size": 8,
        "learning_starts": 16, "train_frequency": 1, "updates_per_step": 1, "log_frequency": 8,
        "eval_episodes": 2, "hidden_sizes": (16,)}


@pytest.mark.parametrize("name", DISCRETE)
def test_discrete_agents_reject_continuous_actions(name):
    env, params = envs.make("Pendulum-v1")
    with pytest.raises(TypeError, match="discrete action space"):
        ALL[name].make_agent(ALL[name].Config(**TINY), env, params)


@pytest.mark.parametrize("name", CONTINUOUS)
def test_continuous_agents_reject_discrete_actions(name):
    env, params = envs.make("CartPole-v1")
    with pytest.raises(TypeError, match="continuous"):
        ALL[name].make_agent(ALL[name].Config(**TINY), env, params)


@pytest.mark.parametrize(("changes", "message"), [
    ({"buffer_size": 63}, "not divisible by num_envs"),
    ({"learning_starts": 2, "n_step": 3}, "fewer than n_step"),
    ({"total_timesteps": 20}, "raise total_timesteps"),
    ({"buffer_size": 8}, "raise buffer_size"),
    ({"batch_size": 0}, "batch_size must be >= 1"),
])
def test_invalid_static_fields_raise_clear_errors(changes, message):
    env, params = envs.make("CartPole-v1")
    with pytest.raises(ValueError, match=message):
        dqn.make_agent(dqn.Config(**{**TINY, **changes}), env, params)


def test_numeric_ranges_are_checked_for_concrete_configs():
    with pytest.raises(ValueError, match="tau must be in"):
        check_config(sac.Config(**TINY, tau=1.5))
    with pytest.raises(ValueError, match="end_e must be in"):
        check_config(dqn.Config(**TINY, end_e=-0.1))


def test_make_agent_checks_concrete_ranges_and_skips_traced_sweep_values():
    env, params = envs.make("Pendulum-v1")
    with pytest.raises(ValueError, match="policy_frequency must be >= 1"):
        td3.make_agent(td3.Config(**TINY, policy_frequency=0), env, params)

    def init_shapes(tau):  # a sweep traces the hyperparameter: its range is checked per setting
        config = sac.Config(**TINY).replace(tau=tau)
        return sac.make_agent(config, env, params).init(jax.random.key(0))

    assert jax.eval_shape(init_shapes, 1.5).update_count.shape == ()


# ----------------------------------------------------------------------------------------------
# Value probes (γ = 0.5, reward 1 per step), with each agent's step accounting on the same run.
# 64 warm-up steps (16 per env), then 3 logging intervals of 250 iterations x 4 envs, each
# iteration 2 gradient steps; the buffer holds every row (16 + 750 per env).
PROBE = {"total_timesteps": 64 + 3000, "num_envs": 4, "buffer_size": 4 * 768, "batch_size": 64,
         "learning_starts": 64, "train_frequency": 1, "updates_per_step": 2,
         "log_frequency": 1000, "eval_episodes": 2,
         # tanh: the observation is 0, where relu units with zero bias get no gradient.
         "hidden_sizes": (32,), "activation": "tanh", "gamma": 0.5, "tau": 0.05,
         "target_network_frequency": 1}
PROBE_SETTINGS = {
    "dqn": {"learning_rate": 3e-3, "anneal_lr": False},
    "soft_q": {"learning_rate": 3e-3, "anneal_lr": False, "alpha": 0.01},
    "ddpg": {"learning_rate": 3e-3},
    "td3": {"learning_rate": 3e-3},
    "sac": {"q_lr": 3e-3, "autotune": False, "alpha": 1e-4},
}


@pytest.mark.parametrize("name", [pytest.param(n, marks=[pytest.mark.slow] * (n in CONTINUOUS))
                                  for n in ALL])
def test_value_probes_and_step_accounting(name):
    # Truncated run (time limit 3, never terminates): Q = 1 + γ Q = 1 / (1 - γ) = 2. An agent
    # that treats truncation as termination stops bootstrapping on a third of the samples:
    # Q = 1 + γ (2/3) Q = 1.5. Soft Q adds the entropy of a uniform Boltzmann policy:
    # Q = (1 + γ α log 2) / (1 - γ). Terminated run (every step terminates): Q = 1.
    module = ALL[name]
    env = ContinuousSwitchedRewardEnv() if name in CONTINUOUS else SwitchedRewardEnv()
    config = module.Config(**PROBE, **PROBE_SETTINGS[name])
    params = SwitchParams(max_steps_in_episode=3, terminates=jnp.array([False, True]))
    agent = module.make_agent(config, env, params.replace(terminates=False))
    assert (agent.initial_steps, agent.steps_per_update, agent.num_updates) == (64, 1000, 3)
    state, metrics = jax.jit(jax.vmap(lambda key, params: module.make_train(
        config, env, params)(key)))(jax.random.split(jax.random.key(0), 2), params)

    assert np.asarray(metrics["step"]).tolist() == [[1064, 2064, 3064]] * 2
    assert np.asarray(state.update_count).tolist() == [1500] * 2  # 2 per iteration
    assert np.asarray(state.buffer.size).tolist() == [766] * 2
    assert {"episode_return", "eval_return"} <= set(metrics)
    for key, values in metrics.items():
        assert values.shape == (2, 3), key
    losses_ = [k for k in metrics if k.endswith("loss")]
    assert losses_ and all(np.isfinite(metrics[k]).all() for k in losses_)

    obs = jnp.zeros((8, 1))
    if name in DISCRETE:
        network = make_q_network(env.observation_space(params), env.action_space(params),
                                 config.hidden_sizes, config.activation)
        q = jax.vmap(network.apply, (0, None))(state.params["q"], obs)
    else:
        critic = CriticEnsemble(2 if name != "ddpg" else 1, config.hidden_sizes,
                                config.activation)
        actions = jnp.linspace(-1.0, 1.0, 8)[:, None]
        q = jax.vmap(critic.apply, (0, None, None))(state.params["critic"], obs, actions)
    truncated, terminated = np.asarray(q).reshape(2, -1).mean(1)
    expected = (1 + 0.5 * 0.01 * np.log(2)) / 0.5 if name == "soft_q" else 2.0
    assert truncated == pytest.approx(expected, abs=0.1)
    assert terminated == pytest.approx(1.0, abs=0.05)


# ----------------------------------------------------------------------------------------------
# Learning (slow): the off-policy family's learning test. The other agents' learning runs (DQN
# and soft Q on CartPole, DDPG and SAC on Pendulum) are benchmarks, not tests.


@pytest.mark.slow
def test_td3_learns_pendulum_in_10k_steps():
    # Mean over 2 seeds of the last 5 logged training returns (steps 6k-10k), -1500 untrained.
    # Logged on these seeds: -461, -126, -126, -125, -122 and -289, -131, -121, -129, -130 (mean
    # -176; the 30k-step, 4-seed run is in benchmarks/). 64-64 networks and batch 128 keep this
    # CPU-sized (the defaults are 256-256, batch 256; 32-32 with batch 64 did not learn on the
    # first seed), and no eval episodes (their loop compiles too; the test reads no eval_return).
    env, params = envs.make("Pendulum-v1")
    config = td3.Config(total_timesteps=10_000, hidden_sizes=(64, 64), batch_size=128,
                        eval_episodes=0)
    train = optimised_jit(jax.vmap(td3.make_train(config, env, params)))
    _, metrics = train(jax.random.split(jax.random.key(0), 2))
    final = float(np.nanmean(np.asarray(metrics["episode_return"])[:, -5:]))
    assert final >= -300, final


def test_agent_act_returns_actions_in_the_env_units():
    # Pendulum's torque lies in [-2, 2]; the actor works in [-1, 1] (RescaleAction), and the
    # deployment policy (``Agent.act``: jaxrl eval, load_policy, datasets) maps back.
    env, params = envs.make("Pendulum-v1")
    config = ddpg.Config(**TINY)
    agent = ddpg.make_agent(config, env, params)
    state = jax.jit(agent.init)(jax.random.key(0))
    obs = jax.random.normal(jax.random.key(1), (16, 3)) * 3.0
    actor = make_deterministic_actor(env.observation_space(params),
                                     envs.Box(-1.0, 1.0, (1,)), config.hidden_sizes,
                                     config.activation)
    expected = 2.0 * actor.apply(state.params["actor"], obs)
    np.testing.assert_allclose(agent.act(state, obs, jax.random.key(2), True), expected,
                               rtol=1e-6, atol=1e-6)
