"""Recurrent policies (``models.recurrent``) in the on-policy family: carry resets, replay,
determinism and resume, the CLI flow and the bad-input errors; one slow memory probe."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from helpers import half_run, leaves_equal, strongly_typed

from jaxrl import checkpoint, envs
from jaxrl.agents import a2c, npg, ppo
from jaxrl.cli import main
from jaxrl.envs import Box, Discrete
from jaxrl.models.recurrent import make_recurrent_actor_critic
from jaxrl.rollout import env_minibatches
from jaxrl.training import on_policy
from jaxrl.training.agent import train_from_agent

pytestmark = pytest.mark.xdist_group("recurrent")

GRU = ppo.Config(total_timesteps=4 * 4 * 8, num_envs=4, num_steps=8, update_epochs=2,
                 num_minibatches=2, hidden_sizes=(16,), recurrent="gru", recurrent_size=8)


@pytest.mark.parametrize("cell", ["gru", "lstm"])
def test_sequence_resets_the_carry_right_after_each_episode_end(cell):
    # Env 0 ends an episode at step 1, env 1 at step 3 (hand-built boundaries). Up to and
    # including those steps the outputs continue the memory (equal to a run with no boundary);
    # after them the carry starts afresh, so they no longer depend on the earlier observations
    # (equal to a run whose observations before the boundary are replaced).
    network = make_recurrent_actor_critic(Box(-1.0, 1.0, (3,)), Discrete(2), cell, 8, (16,))
    obs = jax.random.normal(jax.random.key(0), (6, 2, 3))
    other = obs.at[:2, 0].set(1.0).at[:4, 1].set(-1.0)
    carry = network.initial_carry(2)
    variables = network.init(jax.random.key(1), obs[0], carry)
    done = np.zeros((6, 2), bool)
    done[1, 0] = done[3, 1] = True

    @jax.jit
    def outputs(obs, done):
        dist, values = network.apply(variables, obs, done, carry, method="sequence")
        return jnp.concatenate([dist.logits, values[..., None]], -1)

    cut, uncut, replaced = outputs(obs, done), outputs(obs, np.zeros_like(done)), outputs(
        other, done)
    np.testing.assert_allclose(cut[:2, 0], uncut[:2, 0], rtol=1e-6)
    np.testing.assert_allclose(cut[:4, 1], uncut[:4, 1], rtol=1e-6)
    np.testing.assert_allclose(cut[2:, 0], replaced[2:, 0], rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(cut[4:, 1], replaced[4:, 1], rtol=1e-5, atol=1e-6)
    assert not np.allclose(cut[2, 0], uncut[2, 0])  # the reset changed something
    assert not np.allclose(cut[1, 0], replaced[1, 0])

    # The one-step form agrees with the sequence step by step.
    @jax.jit
    def step(obs, carry, done):
        dist, value, carry = network.apply(variables, obs, carry)
        carry = jax.tree.map(lambda x: jnp.where(done[:, None], 0.0, x), carry)
        return jnp.concatenate([dist.logits, value[..., None]], -1), carry

    step_carry = carry
    for t in range(6):
        output, step_carry = step(obs[t], step_carry, done[t])
        np.testing.assert_allclose(output, cut[t], rtol=1e-5, atol=1e-6)


@pytest.fixture(scope="module")
def cartpole():
    return envs.make("CartPole-v1")


def test_rollout_replayed_in_minibatches_gives_the_collected_log_probs():
    # MemoryChain episodes of memory_length + 1 = 4 steps, rollouts of 6: the second rollout
    # starts mid-episode (a stored carry that is not the initial one) and holds a boundary.
    env, params = envs.make("MemoryChain-bsuite", memory_length=3)
    config = GRU.replace(num_steps=6)
    parts = on_policy.setup(config, env, params)

    @jax.jit
    def init(reset_key, init_key):
        state = on_policy.init_rollout(reset_key, config, parts, params)
        return state, on_policy.init_network(init_key, parts.network, state)

    state, variables = init(jax.random.key(0), jax.random.key(1))

    @jax.jit
    def collect_and_replay(key, state):
        state, batch, _ = on_policy.collect(key, state, config, parts, params, variables)
        samples = {"obs": batch.obs, "action": batch.action, "log_prob": batch.log_prob,
                   "value": batch.value, "done": batch.done,
                   "carry": jax.tree.map(lambda x: x[None], batch.policy_carry)}
        minibatches = env_minibatches(jax.random.key(4), samples, 2)

        def replay(minibatch):
            dist, values = on_policy.forward(parts.network, variables, minibatch)
            return dist.log_prob(minibatch["action"]), values

        return state, batch, minibatches, jax.lax.map(replay, minibatches)

    # The second rollout starts mid-episode: its stored carry is not the initial one.
    state, first, *_ = collect_and_replay(jax.random.key(2), state)
    state, second, minibatches, (log_probs, values) = collect_and_replay(jax.random.key(3),
                                                                         state)
    np.testing.assert_array_equal(first.policy_carry, 0.0)
    assert float(jnp.abs(second.policy_carry).min()) > 0
    np.testing.assert_array_equal(second.done[:, 0], [False, True, False, False, False, True])
    np.testing.assert_allclose(log_probs, minibatches["log_prob"], rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(values, minibatches["value"], rtol=1e-5, atol=1e-6)


@pytest.mark.slow
def test_a_recurrent_ppo_run_resumes_bitwise_from_a_checkpoint(cartpole, tmp_path):
    env, params = cartpole
    agent = ppo.make_agent(GRU, env, params)
    assert agent.initial_carry is not None and agent.behaviour is None
    half = half_run(agent)
    middle, first = half(strongly_typed(jax.jit(agent.init)(jax.random.key(3))))
    final, second = half(middle)
    assert np.isfinite(first["loss"]).all() and np.isfinite(second["loss"]).all()
    assert float(jnp.abs(middle.rollout.policy_carry).max()) > 0
    checkpoint.save(tmp_path / "half", middle)
    restored = checkpoint.restore(tmp_path / "half", like=middle)
    assert leaves_equal((final, second), half(restored))


def test_recurrent_on_an_agent_without_memory_names_the_agents_with_it(cartpole, capsys):
    env, params = cartpole
    config = npg.Config(total_timesteps=64, num_envs=4, num_steps=16, recurrent="gru")
    with pytest.raises(ValueError, match="recurrent policies: reinforce, a2c, ppo, rl2"):
        npg.make_agent(config, env, params)
    assert main(["train", "trpo", "--env", "Pendulum-v1", "--recurrent", "lstm"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("jaxrl: error:") and err.strip().count("\n") == 0 and "ppo" in err
    with pytest.raises(ValueError, match="recurrent must be one of"):
        ppo.make_agent(GRU.replace(recurrent="rnn"), env, params)
    with pytest.raises(ValueError, match="num_envs"):
        ppo.make_agent(GRU.replace(num_minibatches=8, num_steps=16), env, params)


def test_the_recurrent_field_chooses_the_network(cartpole):
    env, params = cartpole
    agent = ppo.make_agent(GRU.replace(recurrent="none"), env, params)
    assert agent.initial_carry is None
    assert jax.eval_shape(agent.init, jax.random.key(0)).rollout.policy_carry is None
    config = a2c.Config(total_timesteps=40, num_envs=4, num_steps=5, recurrent="lstm",
                        recurrent_size=8)
    state = jax.eval_shape(a2c.make_agent(config, env, params).init, jax.random.key(0))
    cell, hidden = state.rollout.policy_carry  # the LSTM's (c, h)
    assert cell.shape == hidden.shape == (4, 8)


@pytest.mark.slow
def test_recurrent_ppo_remembers_the_memory_chain_context_where_feed_forward_is_at_chance():
    # MemoryChain: the context (±1) is shown at the first step only, and the last of L + 1 steps
    # pays +1 for the action matching it, -1 otherwise: a memoryless policy's expected return
    # is 0, whatever it learns.
    env, params = envs.make("MemoryChain-bsuite", memory_length=8)
    config = ppo.Config(total_timesteps=18 * 16 * 30, num_envs=16, num_steps=18,
                        update_epochs=4, num_minibatches=4, hidden_sizes=(16,),
                        recurrent_size=16, learning_rate=3e-3, gamma=0.99, gae_lambda=0.95)

    def returns(recurrent):
        agent = ppo.make_agent(config.replace(recurrent=recurrent), env, params)
        # The suite's jit (optimisation level 0): the run is short, its compile dominates.
        _, metrics = jax.jit(train_from_agent(agent))(jax.random.key(0))
        return np.asarray(metrics["episode_return"])

    assert returns("gru")[-10:].mean() > 0.9
    assert abs(returns("none")[-10:].mean()) < 0.3
