"""A learned ensemble fitted to CartPole-v1 data: 1-step accuracy, the ensemble as an env of the
jaxrl protocol (``jaxrl.envs.learned``) stepped by the shared rollout, and the NaN guard.

One deterministic 2-member ensemble (CartPole's known reward and termination) is fitted once per
module to random play (``cartpole``); every test reads it.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from jaxrl import envs, runner
from jaxrl.envs.learned import LearnedEnvParams, LearnedModelEnv
from jaxrl.envs.rewards import known_functions
from jaxrl.models.dynamics import ModelBatch, make_dynamics_model
from jaxrl.rollout import reset_envs, rollout

pytestmark = pytest.mark.xdist_group("learned_env")

MEMBERS = 2


@pytest.fixture(scope="module")
def cartpole():
    """``(model, params, outputs)``: a 2-member ensemble fitted, in one compiled program, to
    2,048 transitions of uniform random play (16 envs × 128 steps; 600 AdamW steps of 128 per
    member), 1,024 more held out; then what each test reads of it (see the tests)."""
    env, params = envs.make("CartPole-v1")
    known = known_functions(env, params)
    model = make_dynamics_model(
        env.observation_space(params), env.action_space(params), num_members=MEMBERS,
        hidden_sizes=(64,), activation="swish", probabilistic=False, learning_rate=3e-3,
        weight_decay=0.0, reward_fn=known.reward, termination_fn=known.termination,
        env_params=params)
    space = env.observation_space(params)
    tsinf, ts1 = (LearnedModelEnv(model, space, name) for name in ("tsinf", "ts1"))

    def policy(key, obs):
        return jax.random.randint(key, obs.shape[:1], 0, 2), {}

    @jax.jit
    def fit(key):
        reset_key, rollout_key, model_key, fit_key, env_key = jax.random.split(key, 5)
        obs, state = reset_envs(reset_key, env, params, 16)
        _, _, traj = rollout(rollout_key, env, params, state, obs, policy, 192)
        data = jax.tree.map(lambda x: x.reshape(-1, *x.shape[2:]), ModelBatch(
            traj.obs, traj.action, traj.reward, traj.terminated, traj.next_obs))
        train = jax.tree.map(lambda x: x[:2048], data)
        held_out = jax.tree.map(lambda x: x[2048:], data)
        model_state = model.observe(model.init(model_key), train)

        def step(model_state, key):
            index = jax.random.randint(key, (MEMBERS, 128), 0, 2048)
            grads, _ = jax.grad(model.loss, has_aux=True)(
                model_state.params, model_state, jax.tree.map(lambda x: x[index], train))
            updates, opt_state = model.optimizer.update(grads, model_state.opt_state,
                                                        model_state.params)
            return model_state.replace(params=optax.apply_updates(model_state.params, updates),
                                       opt_state=opt_state), None

        model_state, _ = jax.lax.scan(step, model_state, jax.random.split(fit_key, 600))
        members = lambda x: jnp.broadcast_to(x, (MEMBERS, *x.shape))  # noqa: E731
        outputs = {"held_out": held_out,
                   "predicted": model.predict(model_state, members(held_out.obs),
                                              members(held_out.action))[0]}
        # The learned env from a given state, action 1, 32 step keys (TS-∞ and TS-1).
        env_params = LearnedEnvParams(model_state, held_out.obs[:8], max_steps_in_episode=5)
        start_key, step_key, imagine_key = jax.random.split(env_key, 3)
        probe = jnp.array([0.1, 0.5, -0.02, 0.3])
        outputs["probe_means"] = model.predict(model_state, members(probe[None]),
                                               jnp.ones((MEMBERS, 1), jnp.int32))[0][:, 0]
        for name, learned in (("tsinf", tsinf), ("ts1", ts1)):
            _, env_state = learned.start(start_key, probe, env_params)
            outputs[name] = (env_state.env_state.member, jax.vmap(
                learned.step_env, in_axes=(0, None, None, None))(
                jax.random.split(step_key, 32), env_state.env_state, jnp.int32(1), env_params))
        # The shared rollout on the learned env: 4 envs, 5-step episodes, 12 steps.
        edge = jnp.array([2.5, 0.0, 0.0, 0.0])
        env_params = env_params.replace(starts=jnp.concatenate([held_out.obs[:7], edge[None]]))
        starts = jnp.concatenate([held_out.obs[:3], edge[None]])
        obs, env_state = jax.vmap(tsinf.start, in_axes=(0, 0, None))(
            jax.random.split(start_key, 4), starts, env_params)
        imagined = rollout(imagine_key, tsinf, env_params, env_state, obs, policy, 12)[2]
        outputs["imagined"] = imagined
        outputs["starts"] = env_params.starts
        outputs["known_termination"] = jax.vmap(jax.vmap(
            lambda o, a, n: known.termination(o, a, n, params)))(
            imagined.obs, imagined.action, imagined.next_obs)
        # A NaN observation in a batch of the ensemble's loss.
        batch = jax.tree.map(lambda x: members(x[:4]), held_out)
        batch = batch._replace(obs=batch.obs.at[0, 1, 2].set(jnp.nan))
        outputs["nan_metrics"] = model.loss(model_state.params, model_state, batch)[1]
        return outputs

    return jax.tree.map(np.asarray, fit(jax.random.key(0)))


@pytest.mark.slow
def test_cartpole_model_predicts_one_step_deltas(cartpole):
    # On held-out transitions, each member's Δs error is under 2 % of the variance of Δs in
    # every dimension (x, ẋ, θ, θ̇): an R² above 0.98.
    held_out, predicted = cartpole["held_out"], cartpole["predicted"]
    delta = held_out.next_obs - held_out.obs
    live = ~held_out.terminated
    error = np.square(predicted - held_out.obs - delta)[:, live].mean(1)
    assert (error < 0.02 * delta[live].var(0)).all(), error / delta[live].var(0)


def test_learned_env_step_is_the_members_prediction(cartpole):
    means = cartpole["probe_means"]
    member, (next_obs, _, rewards, terminated, _) = cartpole["tsinf"]
    # TS-∞: the member drawn at the start moves every step; a deterministic member, no noise;
    # CartPole's known reward and termination.
    np.testing.assert_allclose(next_obs, np.broadcast_to(means[int(member)], (32, 4)),
                               rtol=1e-5, atol=1e-6)
    np.testing.assert_array_equal(rewards, np.ones(32))
    assert not terminated.any()
    # TS-1: a member drawn per step: both members' predictions appear.
    ts1_obs = cartpole["ts1"][1][0]
    rows = {int(np.argmin(np.abs(means - row).sum(-1))) for row in ts1_obs}
    assert rows == {0, 1}


def test_shared_rollout_imagines_branched_episodes(cartpole):
    # 4 imagined envs, 5-step episodes started from held-out states (the 4th beyond x = 2.4):
    # CartPole's known rule terminates, the time limit truncates, and an ended episode
    # restarts from one of the given states.
    traj, starts = cartpole["imagined"], cartpole["starts"]
    terminated, truncated = traj.terminated, traj.truncated
    assert terminated[0, 3]
    np.testing.assert_array_equal(terminated, cartpole["known_termination"])
    length = np.zeros(4, int)
    for t in range(terminated.shape[0]):
        length += 1
        np.testing.assert_array_equal(truncated[t], (length == 5) & ~terminated[t])
        length[terminated[t] | truncated[t]] = 0
    done = terminated | truncated
    restarted = traj.obs[1:][done[:-1]]
    assert all(np.isclose(starts, row).all(-1).any() for row in restarted)
    continued = ~done[:-1]
    np.testing.assert_array_equal(traj.obs[1:][continued], traj.next_obs[:-1][continued])


def test_a_nan_in_the_model_loss_is_named_by_the_guard(cartpole):
    # A NaN observation makes the ensemble's loss NaN; the runner's guard stops the run with
    # one error naming the metric, the update and the seed.
    metrics = cartpole["nan_metrics"]
    assert np.isnan(metrics["model_loss"])
    columns = {name: np.asarray(value).reshape(1, 1) for name, value in metrics.items()}
    with pytest.raises(runner.TrainingDiverged, match=r"model_loss = nan at update 1 .* seed 0"):
        runner._check_finite(columns, np.ones(1, bool), 0, [({}, 0)], np.array([200]), None)
