"""NPG and TRPO: API contract, trust region, determinism, sweeps, probe environments."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from helpers import leaves_equal
from probe_envs import ObservedSignEnv, ProbeParams

from jaxrl import envs
from jaxrl.agents import npg, trpo
from jaxrl.models import make_actor_critic
from jaxrl.training import on_policy
from jaxrl.training.config import check_config

# One xdist group (README's command runs ``--dist loadgroup``): the module's compiled fixtures
# are built once, on one worker.
pytestmark = pytest.mark.xdist_group("trpo")

SIZES = {"total_timesteps": 2 * 4 * 16, "num_envs": 4, "num_steps": 16, "value_epochs": 2,
         "num_minibatches": 2, "hidden_sizes": (16,)}
TINY = trpo.Config(**SIZES)
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
    """TRPO on Pendulum, one compiled ``(config, key) -> (state, metrics)`` for every config with
    NORMALISED's shapes (max_kl, gamma, ... are leaves)."""
    env, params = pendulum
    return jax.jit(lambda config, key: trpo.make_train(config, env, params)(key))


def test_invalid_sizes_raise_clear_errors(cartpole):
    env, params = cartpole
    for module in (npg, trpo):
        tiny = module.Config(**SIZES)
        with pytest.raises(ValueError, match="num_minibatches"):
            module.make_train(tiny.replace(num_envs=3, num_steps=5, num_minibatches=4), env,
                              params)
        with pytest.raises(ValueError, match="total_timesteps"):
            module.make_train(tiny.replace(total_timesteps=10), env, params)
        with pytest.raises(ValueError, match="cg_iters"):
            module.make_train(tiny.replace(cg_iters=0), env, params)
        for field, value in (("max_kl", 0.0), ("gamma", 1.5), ("cg_damping", -0.1),
                             ("vf_learning_rate", -1.0)):
            with pytest.raises(ValueError, match=field):
                check_config(tiny.replace(**{field: value}))
    with pytest.raises(ValueError, match="backtrack_iters"):
        trpo.make_train(TINY.replace(backtrack_iters=0), env, params)
    with pytest.raises(ValueError, match="backtrack_coef"):
        check_config(TINY.replace(backtrack_coef=1.5))
    with pytest.raises(ValueError, match="step_size"):
        check_config(npg.Config(**SIZES, step_size=-1.0))
    check_config(npg.Config())
    check_config(trpo.Config())


METRICS = ("episode_return", "step", "kl", "surrogate_improvement", "step_fraction",
           "backtracks", "value_loss", "entropy")


def test_trpo_metrics_have_one_entry_per_update_and_respect_the_trust_region(run):
    state, metrics = run(NORMALISED, jax.random.key(0))
    for name in METRICS:
        assert metrics[name].shape == (TINY.num_updates,), name
    np.testing.assert_array_equal(metrics["step"], [64, 128])
    assert int(state.update_count) == TINY.num_updates
    assert np.all(np.asarray(metrics["kl"]) <= TINY.max_kl)
    fraction = np.asarray(metrics["step_fraction"])
    backtracks = np.asarray(metrics["backtracks"])
    accepted = fraction > 0
    np.testing.assert_allclose(fraction[accepted], TINY.backtrack_coef ** backtracks[accepted],
                               rtol=1e-6)
    assert np.all(np.asarray(metrics["surrogate_improvement"])[accepted] > 0)
    assert np.isfinite(metrics["value_loss"]).all()


@pytest.mark.slow
def test_max_kl_and_gamma_sweep_in_one_call_matches_separate_runs(pendulum, run):
    env, params = pendulum
    other = NORMALISED.replace(max_kl=0.03, gamma=0.9)
    configs = jax.tree.map(lambda *x: jnp.stack(x), NORMALISED, other)
    sweep = jax.jit(jax.vmap(lambda c, k: trpo.make_train(c, env, params)(k), in_axes=(0, None)))
    _, swept = sweep(configs, jax.random.key(0))
    _, default = run(NORMALISED, jax.random.key(0))
    _, separate = run(other, jax.random.key(0))
    for i, single in enumerate((default, separate)):
        for name in ("kl", "value_loss", "surrogate_improvement"):
            np.testing.assert_allclose(swept[name][i], single[name], rtol=1e-4, atol=1e-5)
    assert not np.allclose(swept["kl"][0], swept["kl"][1])


def test_actor_and_critic_params_split_and_merge():
    network = make_actor_critic(envs.Box(-1.0, 1.0, (3,)), envs.Discrete(2), (8,), "tanh")
    obs = jnp.ones((2, 3))
    variables = network.init(jax.random.key(0), obs)
    actor, critic = on_policy.split_actor_critic(variables)
    assert set(actor["params"]) == set(on_policy.ACTOR_MODULES)
    assert leaves_equal(on_policy.merge_actor_critic(actor, critic), variables)
    dist, value = network.apply(variables, obs)
    np.testing.assert_array_equal(network.apply(actor, obs, method="policy").logits, dist.logits)
    np.testing.assert_array_equal(network.apply(critic, obs, method="value"), value)


def test_continuous_actions_run_with_normalisation(pendulum, run):
    env, params = pendulum
    config = NORMALISED
    state, metrics = run(config, jax.random.key(0))
    assert np.isfinite(metrics["value_loss"]).all() and np.isfinite(metrics["kl"]).all()
    assert np.all(np.asarray(metrics["kl"]) <= config.max_kl)
    assert float(state.rollout.obs_stats.count) > 100
    agent = trpo.make_agent(config, env, params)
    action = agent.act(state, jnp.zeros((3,)), jax.random.key(1), True)
    assert action.shape == (1,) and -2.0 <= float(action[0]) <= 2.0


PROBE = {"total_timesteps": 30 * 16 * 8, "num_envs": 16, "num_steps": 8, "value_epochs": 2,
         "num_minibatches": 1, "hidden_sizes": (16,), "max_kl": 0.05}


def test_trpo_learns_to_use_its_observation():
    env, params = ObservedSignEnv(), ProbeParams(max_steps_in_episode=1)
    _, metrics = jax.jit(trpo.make_train(trpo.Config(**PROBE), env, params))(jax.random.key(0))
    assert float(np.mean(metrics["episode_return"][-5:])) > 0.9


@pytest.mark.slow
def test_npg_learns_to_use_its_observation_with_max_kl_and_fixed_steps():
    # One compile for both step rules: step_size is a leaf (0 selects the max-KL step).
    env, params = ObservedSignEnv(), ProbeParams(max_steps_in_episode=1)
    configs = jax.tree.map(lambda *x: jnp.stack(x), npg.Config(**PROBE),
                           npg.Config(**PROBE, step_size=0.5))
    train = jax.jit(jax.vmap(lambda c: npg.make_train(c, env, params)(jax.random.key(0))))
    _, metrics = train(configs)
    num_updates = npg.Config(**PROBE).num_updates
    for name in METRICS:
        assert metrics[name].shape == (2, num_updates), name
    np.testing.assert_array_equal(metrics["step_fraction"], 1.0)  # NPG never backtracks
    final = np.mean(np.asarray(metrics["episode_return"])[:, -5:], axis=1)
    assert np.all(final > 0.9), final
    assert not np.allclose(metrics["kl"][0], metrics["kl"][1])  # the rules differ
