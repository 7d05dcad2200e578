"""Extension points of the replay loop (``training.off_policy``): the reward transform, the
extra phase with a model buffer and the real/model batch mix, the target override; unused
extensions leave a run bitwise unchanged; extension state is checkpointed and resumes.

Most tests drive the loop with a toy agent (a scalar TD "critic" on a constant-reward probe env)
so that each compiles in seconds; the target override is shown on DQN itself."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from agent_configs import TINY as AGENT_TINY
from helpers import half_run, leaves_equal, strongly_typed
from probe_envs import ConstantRewardEnv, ProbeParams

from jaxrl import checkpoint, envs
from jaxrl.agents import ddpg, dqn, sac, soft_q, td3
from jaxrl.envs.spaces import Discrete
from jaxrl.models import make_q_network
from jaxrl.training import off_policy
from jaxrl.training.agent import train_from_agent
from jaxrl.training.extensions import RewardTransform
from jaxrl.training.off_policy import ReplayExtensions

pytestmark = pytest.mark.xdist_group("replay_extensions")  # one worker compiles mbpo_like

# 8 warm-up steps (4 per env), then 4 updates of 2 iterations × 2 envs.
TOY = off_policy.OffPolicyConfig(total_timesteps=8 + 4 * 4, num_envs=2, buffer_size=32,
                                 batch_size=8, learning_starts=8, log_frequency=4,
                                 eval_episodes=0, gamma=0.5)
LIMIT = ProbeParams(max_steps_in_episode=3)  # reward 1 per step, truncated after 3 steps
REAL_BATCH = 6


def toy_agent(reward_transform=None, extensions=None, config=TOY):
    """A scalar TD critic ``v ← v + 0.5 (mean(r + d v) - v)`` on ``ConstantRewardEnv``; its
    metrics are the mean rewards of the first ``REAL_BATCH`` rows of each batch and of the rest."""
    env = ConstantRewardEnv()
    parts = off_policy.setup(env, LIMIT, "toy", Discrete)

    def init(key, obs):
        return {"v": jnp.zeros(())}, {"v": jnp.zeros(())}, {}

    def explore(key, params, obs, env_steps):
        return jax.random.randint(key, obs.shape[:1], 0, 2)

    def gradient_step(key, state, sample):
        targets = sample.reward + sample.discount * state.target_params["v"]
        v = state.params["v"] + 0.5 * (targets.mean() - state.params["v"])
        metrics = {"real_reward": sample.reward[:REAL_BATCH].mean(),
                   "model_reward": sample.reward[REAL_BATCH:].mean(),
                   "mean_discount": sample.discount.mean()}
        return state.replace(params={"v": v}, target_params={"v": v}), metrics

    def act(params, obs, key, deterministic):
        return jnp.zeros(obs.shape[:1], jnp.int32)

    hooks = off_policy.OffPolicyHooks(init=init, explore=explore, gradient_step=gradient_step,
                                      act=act)
    return off_policy.make_off_policy_agent(config, parts, LIMIT, hooks, reward_transform,
                                            extensions)


def halved_rewards() -> RewardTransform:
    """Rewards ↦ r / 2; its state counts the transitions it saw."""

    def init(key, observation_space, action_space):
        return jnp.zeros((), jnp.int32)

    def apply(count, traj, key):
        rewards = 0.5 * traj.reward
        return rewards, count + rewards.size, {"transformed_reward": rewards.mean()}

    return RewardTransform(init=init, apply=apply)


def copy_last_step_with_bonus(key, state):
    """The phase of a toy MBPO: the newest replay row, rewards + 1, into the model buffer."""
    buffer = state.buffer
    row = (buffer.pointer - 1) % buffer.rows

    def newest(array):
        return array[row][None]

    model_buffer = state.model_buffer.extend(
        newest(buffer.obs), newest(buffer.action), newest(buffer.reward) + 1.0,
        newest(buffer.terminated), newest(buffer.truncated), newest(buffer.next_obs))
    return (state.replace(model_buffer=model_buffer, extension_state=state.extension_state + 1),
            {"model_rows": model_buffer.size.astype(jnp.float32)})


MBPO_LIKE = ReplayExtensions(init=lambda key, obs, parts: jnp.zeros((), jnp.int32),
                             phase=copy_last_step_with_bonus, model_capacity=8, model_width=2,
                             real_ratio=REAL_BATCH / TOY.batch_size)


@pytest.fixture(scope="module")
def mbpo_like():
    """The toy agent with both the reward transform and the MBPO-like phase, and its whole run
    compiled once (the tests below and the resume check read it)."""
    agent = toy_agent(halved_rewards(), MBPO_LIKE)
    return agent, jax.jit(train_from_agent(agent))


def test_reward_transform_rewrites_every_stored_reward_and_reports_its_metrics(mbpo_like):
    state, metrics = mbpo_like[1](jax.random.key(0))
    written = int(state.buffer.size)
    assert written == 4 + 4 * 2                 # warm-up rows included
    np.testing.assert_array_equal(state.buffer.reward[:written], 0.5)
    assert int(state.reward_state) == TOY.total_timesteps  # every env step went through it
    np.testing.assert_array_equal(metrics["transformed_reward"], 0.5)
    # Training episodes report the environment's return: 3 steps of reward 1.
    np.testing.assert_array_equal(metrics["episode_return"], 3.0)


def test_phase_writes_the_model_buffer_and_batches_mix_real_and_model_samples(mbpo_like):
    state, metrics = mbpo_like[1](jax.random.key(0))
    iterations = TOY.num_updates * TOY.iterations_per_update
    assert int(state.extension_state) == iterations
    assert int(state.model_buffer.size) == min(iterations, 4)   # 8 transitions / 2 per row
    # The first 6 rows of every batch are real (halved reward 0.5), the last 2 imagined
    # (0.5 + 1).
    np.testing.assert_array_equal(metrics["real_reward"], 0.5)
    np.testing.assert_array_equal(metrics["model_reward"], 1.5)
    assert metrics["model_rows"][-1] == 4.0


def test_a_model_mix_needs_a_model_buffer():
    with pytest.raises(ValueError, match="model_capacity"):
        toy_agent(extensions=ReplayExtensions(real_ratio=0.5))
    with pytest.raises(ValueError, match="real_ratio must be in"):
        toy_agent(extensions=ReplayExtensions(real_ratio=1.5, model_capacity=8))


def test_target_override_rewrites_the_sample_the_gradient_step_sees():
    def no_bootstrap(key, state, sample):
        return sample.replace(discount=jnp.zeros_like(sample.discount))

    _, plain = jax.jit(train_from_agent(toy_agent()))(jax.random.key(0))
    state, metrics = jax.jit(train_from_agent(toy_agent(
        extensions=ReplayExtensions(target=no_bootstrap))))(jax.random.key(0))
    np.testing.assert_array_equal(plain["mean_discount"], 0.5)   # γ, never terminated
    np.testing.assert_array_equal(metrics["mean_discount"], 0.0)
    # v ← v + ½ (1 - v) from 0 over 8 steps: 1 - 2⁻⁸ (it would tend to 1 / (1 - γ) = 2).
    assert float(state.params["v"]) == pytest.approx(1 - 2.0 ** -8)


def test_dqn_critic_regresses_to_the_reward_when_the_target_drops_the_bootstrap():
    # γ = 0.5, reward 1, never terminated: Q = 1 / (1 - γ) = 2 normally
    # (test_off_policy_agents); with every discount zeroed the target is r alone, Q = 1.
    config = dqn.Config(total_timesteps=64 + 1_000, num_envs=4, buffer_size=256, batch_size=64,
                        learning_starts=64, train_frequency=1, updates_per_step=2, n_step=1,
                        log_frequency=1_000, eval_episodes=0, hidden_sizes=(32,),
                        activation="tanh", gamma=0.5, learning_rate=3e-3, anneal_lr=False)
    env = ConstantRewardEnv()

    def no_bootstrap(key, state, sample):
        return sample.replace(discount=jnp.zeros_like(sample.discount))

    state, _ = jax.jit(dqn.make_train(config, env, LIMIT, extensions=ReplayExtensions(
        target=no_bootstrap)))(jax.random.key(0))
    network = make_q_network(env.observation_space(LIMIT), env.action_space(LIMIT),
                             config.hidden_sizes, config.activation)
    q_values = network.apply(state.params["q"], jnp.zeros((1, 1)))
    np.testing.assert_allclose(q_values, 1.0, atol=0.05)


def test_unused_extensions_leave_the_run_bitwise_unchanged():
    env_id, kwargs = AGENT_TINY["dqn"]
    env, params = envs.make(env_id)
    config = dqn.Config(**kwargs)
    key = jax.random.key(0)
    # The very program of the run without them (the same jaxpr), so the run is bitwise the same;
    # traced, not compiled.
    plain, (state, _) = jax.make_jaxpr(dqn.make_train(config, env, params),
                                       return_shape=True)(key)
    unused = jax.make_jaxpr(dqn.make_train(config, env, params, None, ReplayExtensions()))(key)
    assert str(plain) == str(unused)
    names = [jax.tree_util.keystr(path) for path, _ in
             jax.tree_util.tree_flatten_with_path(state)[0]]
    assert not [n for n in names if "reward_state" in n or "extension" in n or "model" in n]


@pytest.mark.parametrize("module", [dqn, soft_q, ddpg, td3, sac],
                         ids=["dqn", "soft_q", "ddpg", "td3", "sac"])
def test_every_off_policy_agent_takes_both_extensions(module):
    name = module.__name__.rsplit(".", 1)[1]
    env_id, kwargs = AGENT_TINY[name]
    env, params = envs.make(env_id)
    extensions = ReplayExtensions(init=lambda key, obs, parts: jnp.zeros(3), model_capacity=8,
                                  model_width=2, real_ratio=0.5)
    agent = module.make_agent(module.Config(**kwargs), env, params,
                              reward_transform=halved_rewards(), extensions=extensions)
    shapes = jax.eval_shape(agent.init, jax.random.key(0))  # traces the warm-up: no compile
    assert shapes.reward_state.shape == () and shapes.extension_state.shape == (3,)
    assert shapes.model_buffer.reward.shape == (4, 2)


def test_extension_state_and_model_buffer_are_checkpointed_and_resume(mbpo_like, tmp_path):
    agent, train = mbpo_like
    half = half_run(agent)

    middle, first = half(strongly_typed(jax.jit(agent.init)(jax.random.key(1))))
    final, second = half(middle)
    checkpoint.save(tmp_path / "half", middle, {"algo": "toy"})
    saved = checkpoint.restore(tmp_path / "half")
    assert any("model_buffer" in path for path in saved)
    assert any("extension_state" in path for path in saved)
    assert any("reward_state" in path for path in saved)
    restored = checkpoint.restore(tmp_path / "half", like=jax.eval_shape(lambda: middle))
    resumed, again = half(restored)
    assert leaves_equal((resumed, again), (final, second))
    _, uninterrupted = train(jax.random.key(1))
    assert leaves_equal(jax.tree.map(lambda a, b: jnp.concatenate([a, b]), first, second),
                        uninterrupted)
