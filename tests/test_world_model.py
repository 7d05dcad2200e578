"""The latent world model (``jaxrl.models.world_model``, agent ``world_model``).

One fixed dataset of random Catch-bsuite play (10×5 grid observations) is collected once per
module and one world model is fitted to it once (``fitted``): the loss, reconstruction and
reward-sign tests share it. The learning run is ``benchmarks/model_based.py``'s world-model case
(too long for the suite's budget).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxrl import envs
from jaxrl.agents import world_model
from jaxrl.models.dynamics import ModelBatch
from jaxrl.models.world_model import LOSS_PARTS, LatentNetworks, make_world_model
from jaxrl.rollout import reset_envs, rollout

pytestmark = pytest.mark.xdist_group("world_model")

FIT_STEPS = 400


@pytest.fixture(scope="module")
def catch():
    env, params = envs.make("Catch-bsuite")
    model = make_world_model(env.observation_space(params), env.action_space(params),
                             latent_dim=16, hidden_sizes=(128,), activation="swish",
                             learning_rate=3e-3, weight_decay=0.0)
    return env, params, model


@pytest.fixture(scope="module")
def dataset(catch):
    """512 transitions of uniform random play in 8 Catch envs (about 57 episodes, each ending
    with a reward of +1 or −1)."""
    env, params, _ = catch
    space = env.action_space(params)

    def policy(key, obs):
        return jax.random.randint(key, obs.shape[:1], 0, space.n), {}

    @jax.jit
    def collect(key):
        reset_key, key = jax.random.split(key)
        obs, state = reset_envs(reset_key, env, params, 8)
        _, _, traj = rollout(key, env, params, state, obs, policy, 64)
        return jax.tree.map(lambda x: x.reshape(-1, *x.shape[2:]), ModelBatch(
            traj.obs, traj.action, traj.reward, traj.terminated, traj.next_obs))

    return collect(jax.random.key(0))


@pytest.fixture(scope="module")
def fitted(catch, dataset):
    """One compiled program: FIT_STEPS full-batch steps from a fresh model, the per-step
    metrics, and what the tests read of the models before and after (see each test)."""
    _, _, model = catch
    probe = jax.tree.map(lambda x: x[60:64], dataset)
    obs = probe.obs.reshape(4, -1).astype(jnp.float32)
    next_obs = probe.next_obs.reshape(4, -1).astype(jnp.float32)

    @jax.jit
    def fit(key):
        state = model.observe(model.init(key), dataset)

        def apply(*args, method):
            return model.network.apply(state.params, *args, method=method)

        latent = apply(obs, method=LatentNetworks.encode)
        by_hand = {"loss": model.loss(state.params, state, probe),
                   "next_latent": apply(next_obs, method=LatentNetworks.encode),
                   "decoded": apply(latent, method=LatentNetworks.decode),
                   "transition": apply(latent, jax.nn.one_hot(probe.action, 3),
                                       method=LatentNetworks.transition),
                   "reward_mean": state.reward.mean[0], "reward_std": state.reward.std[0]}
        final, metrics = jax.lax.scan(lambda s, _: model.train_step(s, dataset), state, None,
                                      length=FIT_STEPS)
        latent = model.encode(final, dataset.obs)
        next_latent, reward, terminated = model.dynamics(final)(None, latent, dataset.action)
        after = {"decoded": model.decode(final, latent), "next_latent": next_latent,
                 "reward": reward, "terminated": terminated,
                 "target": model.encode(final, dataset.next_obs),
                 "start": model.encode(final, jnp.zeros((10, 5))),
                 "start_decoded": model.decode(final, model.encode(final, jnp.zeros((10, 5))))}
        return probe, by_hand, metrics, after

    return jax.tree.map(np.asarray, fit(jax.random.key(1)))


def test_loss_is_the_sum_of_its_parts(fitted):
    # On 4 transitions, each term recomputed in numpy from the networks' outputs:
    # ½‖f(z,a) − g(o')‖², ½‖d(z) − o‖², ½(r̂ − (r − μ_r)/σ_r)², −[c log σ(l) + (1−c) log σ(−l)].
    probe, by_hand, _, _ = fitted
    total, metrics = by_hand["loss"]
    obs = probe.obs.reshape(4, -1).astype(np.float32)
    predicted, reward, logit = by_hand["transition"]
    reward_target = (probe.reward - by_hand["reward_mean"]) / by_hand["reward_std"]
    ended = probe.terminated.astype(np.float32)
    expected = {
        "dynamics_loss": 0.5 * ((predicted - by_hand["next_latent"]) ** 2).sum(-1).mean(),
        "reconstruction_loss": 0.5 * ((by_hand["decoded"] - obs) ** 2).sum(-1).mean(),
        "reward_loss": 0.5 * ((reward - reward_target) ** 2).mean(),
        "termination_loss": -(ended * np.log(1 / (1 + np.exp(-logit)))
                              + (1 - ended) * np.log(1 / (1 + np.exp(logit)))).mean(),
    }
    for name in LOSS_PARTS:
        np.testing.assert_allclose(metrics[name], expected[name], rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(total, sum(expected.values()), rtol=1e-4)
    assert float(metrics["model_loss"]) == float(total)


def test_reconstruction_falls_and_reward_sign_is_learned(dataset, fitted):
    # A 10×5 grid with two lit cells: predicting all zeros costs ½·2 = 1 per observation.
    _, _, metrics, after = fitted
    reconstruction = metrics["reconstruction_loss"]
    assert reconstruction[0] > 0.8
    assert reconstruction[-1] < 0.25, reconstruction[-1]
    assert np.mean(np.round(after["decoded"]) == np.asarray(dataset.obs)) > 0.98
    # The reward head gives Catch's reward sign on the steps where the ball lands.
    reward = np.asarray(dataset.reward)
    landed = reward != 0
    assert landed.sum() >= 30
    signs = np.sign(after["reward"][landed]) == np.sign(reward[landed])
    assert signs.mean() >= 0.9, signs.mean()


def test_dynamics_predict_the_next_latent_and_termination(dataset, fitted):
    after = fitted[3]
    target = after["target"]
    spread = np.square(target - target.mean(0)).sum(-1).mean()
    error = np.square(after["next_latent"] - target).sum(-1).mean()
    assert error < 0.05 * spread, (error, spread)
    assert np.mean(after["terminated"] == np.asarray(dataset.terminated)) > 0.97


def test_bad_input():
    env, params = envs.make("FrozenLake-misc")
    with pytest.raises(TypeError, match="world model needs Box observations"):
        world_model.make_agent(world_model.Config(), env, params)
    env, params = envs.make("Pendulum-v1")
    with pytest.raises(ValueError, match="latent_dim must be >= 1"):
        world_model.make_agent(world_model.Config(latent_dim=0), env, params)
    with pytest.raises(ValueError, match="elites must be <= population"):
        world_model.make_agent(world_model.Config(elites=300), env, params)


def test_image_observations_plan_in_latent_space(fitted):
    # The planner's start state is the latent of the grid; it decodes to a grid.
    after = fitted[3]
    assert after["start"].shape == (16,)
    assert after["start_decoded"].shape == (10, 5)
