"""The on-policy family's extension points: a reward transform, a policy with memory, evaluation
during training and the behaviour distribution (``jaxrl.training.on_policy``)."""

import distrax
import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from helpers import half_run, leaves_equal, strongly_typed
from probe_envs import ConstantRewardEnv, ProbeParams

from jaxrl import checkpoint, envs
from jaxrl.agents import npg, ppo
from jaxrl.envs import Box, Discrete, TimeLimitedEnv
from jaxrl.evaluation import evaluate
from jaxrl.rollout import env_minibatches
from jaxrl.training import on_policy
from jaxrl.training.agent import policy_fn, train_from_agent
from jaxrl.training.extensions import RewardTransform

# One xdist group (README's command runs ``--dist loadgroup``): the module's compiled fixture is
# built once, on one worker.
pytestmark = pytest.mark.xdist_group("on_policy_extensions")

SIZES = {"total_timesteps": 4 * 4 * 8, "num_envs": 4, "num_steps": 8, "hidden_sizes": (16,)}
PPO = ppo.Config(**SIZES, update_epochs=2, num_minibatches=2)
NPG = npg.Config(**SIZES, value_epochs=2, num_minibatches=2, cg_iters=3)


def counting_bonus(bonus: float) -> RewardTransform:
    """A toy transform: ``r + bonus``; its state counts the rollouts it has rewritten."""

    def init(key, observation_space, action_space):
        return {"updates": jnp.zeros((), jnp.int32)}

    def apply(state, transitions, key):
        updates = state["updates"] + 1
        return (transitions.reward + bonus, {"updates": updates},
                {"bonus_updates": updates.astype(jnp.float32)})

    return RewardTransform(init, apply)


class CountingEnv(TimeLimitedEnv):
    """Observation ``t``, the step within the episode; episodes terminate after 3 steps, so
    every env sees 0, 1, 2, 0, 1, 2, …; reward 1."""

    def reset_env(self, key, params):
        return jnp.zeros((1,), jnp.float32), jnp.zeros((), jnp.int32)

    def step_env(self, key, state, action, params):
        time = state + 1
        return (time.astype(jnp.float32)[None], time, jnp.float32(1.0), time >= 3, {})

    def observation_space(self, params):
        return Box(0.0, 3.0, (1,))

    def action_space(self, params):
        return Discrete(2)


class AverageMemory(nn.Module):
    """A toy network with memory (``training.on_policy``'s protocol): the carry is an
    exponential moving average of the episode's observations, ``m_t = ½ m_{t-1} + ½ o_t``
    (``m = 0`` at an episode's start), and an MLP reads ``[o_t, m_t]``."""

    num_actions: int = 2

    def setup(self):
        self.torso = nn.Dense(8)
        self.logits = nn.Dense(self.num_actions)
        self.value = nn.Dense(1)

    def initial_carry(self, batch: int) -> jax.Array:
        return jnp.zeros((batch, 1))

    def heads(self, obs, memory):
        features = jnp.tanh(self.torso(jnp.concatenate([obs, memory], -1)))
        return distrax.Categorical(logits=self.logits(features)), self.value(features)[..., 0]

    def __call__(self, obs, carry):
        memory = 0.5 * carry + 0.5 * obs
        return (*self.heads(obs, memory), memory)

    def sequence(self, obs, done, carry):
        def step(carry, inputs):
            obs_t, done_t = inputs
            memory = 0.5 * carry + 0.5 * obs_t
            return jnp.where(done_t[:, None], 0.0, memory), memory

        _, memories = jax.lax.scan(step, carry, (obs, done))
        return self.heads(obs, memories)


COUNTING = (CountingEnv(), ProbeParams(max_steps_in_episode=100))
MEMORY = ppo.Config(total_timesteps=2 * 4 * 5, num_envs=4, num_steps=5, update_epochs=2,
                    num_minibatches=2, hidden_sizes=(8,))


# --- reward transform ------------------------------------------------------------------------

def _collect_once(config, env, params, transform):
    parts = on_policy.setup(config, env, params, reward_transform=transform)

    @jax.jit
    def collect(reset_key, init_key, collect_key):
        state = on_policy.init_rollout(reset_key, config, parts, params)
        variables = on_policy.init_network(init_key, parts.network, state)
        return on_policy.collect(collect_key, state, config, parts, params, variables)

    return collect(jax.random.key(0), jax.random.key(1), jax.random.key(2))


def test_transform_shifts_rewards_before_reward_normalisation():
    env, params = ConstantRewardEnv(), ProbeParams(max_steps_in_episode=5)
    state, batch, metrics = _collect_once(PPO, env, params, counting_bonus(0.5))
    np.testing.assert_array_equal(batch.reward, 1.5)  # reward 1 every step, plus the bonus
    assert int(state.reward_state["updates"]) == 1 and float(metrics["bonus_updates"]) == 1.0
    # Normalisation sees the transformed rewards: its return statistics scale with them.
    normalized = PPO.replace(normalize_reward=True)
    plain, _, _ = _collect_once(normalized, env, params, counting_bonus(0.0))
    shifted, _, _ = _collect_once(normalized, env, params, counting_bonus(0.5))
    np.testing.assert_allclose(shifted.return_stats.mean, 1.5 * plain.return_stats.mean,
                               rtol=1e-6)


@pytest.mark.parametrize("module, config", [(ppo, PPO), (npg, NPG)], ids=["ppo", "npg"])
def test_transform_state_advances_once_per_update_and_evaluation_runs(module, config):
    env, params = ConstantRewardEnv(), ProbeParams(max_steps_in_episode=5)
    config = config.replace(eval_episodes=2)
    train = module.make_train(config, env, params, reward_transform=counting_bonus(0.5))
    state, metrics = jax.jit(train)(jax.random.key(0))
    updates = np.arange(1, config.num_updates + 1)
    assert int(state.rollout.reward_state["updates"]) == config.num_updates
    np.testing.assert_array_equal(metrics["bonus_updates"], updates)
    # eval_return counts the env's own rewards: 5 steps of reward 1, whatever the policy.
    np.testing.assert_array_equal(metrics["eval_return"], 5.0)
    np.testing.assert_array_equal(metrics["step"], updates * config.batch_size)


@pytest.fixture(scope="module")
def cartpole_half_run():
    """PPO with the counting transform on normalised CartPole observations, and its half-run
    (``helpers.half_run``), compiled once for the resume and behaviour tests."""
    env, params = envs.make("CartPole-v1")
    agent = ppo.make_agent(PPO.replace(normalize_obs=True), env, params,
                           reward_transform=counting_bonus(0.5))
    return agent, half_run(agent)


def test_transform_state_is_checkpointed_and_a_resumed_run_is_bitwise_equal(cartpole_half_run,
                                                                            tmp_path):
    agent, half = cartpole_half_run
    middle, first = half(strongly_typed(jax.jit(agent.init)(jax.random.key(3))))
    final, second = half(middle)
    checkpoint.save(tmp_path / "half", middle)
    restored = checkpoint.restore(tmp_path / "half", like=middle)
    assert int(restored.rollout.reward_state["updates"]) == agent.num_updates // 2
    resumed, second_again = half(restored)
    assert leaves_equal((final, second), (resumed, second_again))


def test_without_extensions_the_train_state_has_no_new_leaves():
    env, params = envs.make("CartPole-v1")
    state = jax.eval_shape(ppo.make_agent(PPO, env, params).init, jax.random.key(0))
    assert state.rollout.reward_state is None and state.rollout.policy_carry is None
    fields = {path[0].name for path, _ in jax.tree_util.tree_leaves_with_path(state.rollout)}
    assert fields == {"env_state", "obs", "obs_stats", "return_stats", "return_trace",
                      "last_episode_return"}


# --- a policy with memory --------------------------------------------------------------------

def test_carry_resets_at_episode_ends_and_travels_with_the_batch():
    # Observations 0, 1, 2 then a new episode; m = ½ m + ½ o, reset to 0 after each episode's
    # last step. Rollout 1 (5 steps) sees 0, 1, 2 | 0, 1: m = 0, .5, 1.25 → 0 | 0, .5, so it
    # ends with carry 0.5. Rollout 2 starts from 0.5 and sees 2 | 0, 1, 2 | 0: it ends at 0.
    env, params = COUNTING
    parts = on_policy.setup(MEMORY, env, params, network=AverageMemory())

    @jax.jit
    def init(reset_key, init_key):
        state = on_policy.init_rollout(reset_key, MEMORY, parts, params)
        return state, on_policy.init_network(init_key, parts.network, state)

    state, variables = init(jax.random.key(0), jax.random.key(1))
    collect = jax.jit(lambda key, state: on_policy.collect(key, state, MEMORY, parts, params,
                                                           variables))
    state, first, _ = collect(jax.random.key(2), state)
    np.testing.assert_array_equal(first.obs[:, :, 0], np.tile([[0], [1], [2], [0], [1]], 4))
    np.testing.assert_array_equal(first.policy_carry, 0.0)
    np.testing.assert_array_equal(state.policy_carry, 0.5)
    state, second, _ = collect(jax.random.key(3), state)
    np.testing.assert_array_equal(second.done[:, 0], [True, False, False, True, False])
    np.testing.assert_array_equal(second.policy_carry, 0.5)
    np.testing.assert_array_equal(state.policy_carry, 0.0)
    # V(final_obs) continues the memory: where no episode ended it is the next step's value.
    np.testing.assert_allclose(second.next_value[1:3], second.value[2:4], rtol=1e-6)

    # Replaying whole env sequences from the stored carry gives the rollout's log-probs.
    samples = {"obs": second.obs, "action": second.action, "log_prob": second.log_prob,
               "done": second.done, "carry": second.policy_carry[None]}
    minibatches = env_minibatches(jax.random.key(4), samples, 2)

    @jax.jit
    def replay(minibatch):
        dist = on_policy.forward(parts.network, variables, minibatch, method="policy")
        return dist.log_prob(minibatch["action"])

    for i in range(2):
        minibatch = jax.tree.map(lambda x, i=i: x[i], minibatches)
        np.testing.assert_allclose(replay(minibatch), minibatch["log_prob"], rtol=1e-5,
                                   atol=1e-6)


@pytest.mark.slow
def test_a_run_with_memory_is_deterministic_and_evaluates_with_its_carry():
    env, params = COUNTING
    config = MEMORY.replace(eval_episodes=2)
    agent = ppo.make_agent(config, env, params, network=AverageMemory(),
                           reward_transform=counting_bonus(0.5))
    assert agent.initial_carry is not None and agent.behaviour is None
    train = jax.jit(train_from_agent(agent))
    state, metrics = train(jax.random.key(0))
    again = train(jax.random.key(0))
    assert leaves_equal((state, metrics), again)
    assert np.isfinite(metrics["loss"]).all()
    np.testing.assert_array_equal(metrics["eval_return"], 3.0)  # episodes of 3 steps
    policy, initial_carry = policy_fn(agent, state, deterministic=True)
    returns = evaluate(jax.random.key(1), env, params, policy, 3, 10,
                       initial_carry=initial_carry)
    assert float(returns) == 3.0
    action, carry = agent.act(state, jnp.ones((2, 1)), jax.random.key(2), True,
                              agent.initial_carry(state, 2))
    np.testing.assert_array_equal(carry, 0.5)
    assert action.shape == (2,)


def test_memory_needs_num_minibatches_to_divide_num_envs():
    env, params = COUNTING
    with pytest.raises(ValueError, match="num_envs"):
        ppo.make_agent(MEMORY.replace(num_minibatches=5), env, params, network=AverageMemory())


# --- behaviour -------------------------------------------------------------------------------

def test_behaviour_is_the_stochastic_policy_on_normalised_observations(cartpole_half_run):
    agent, half = cartpole_half_run
    state, _ = half(strongly_typed(jax.jit(agent.init)(jax.random.key(0))))
    obs = jax.random.normal(jax.random.key(1), (5, 4))
    dist = agent.behaviour(state, obs)
    np.testing.assert_array_equal(dist.mode(), agent.act(state, obs, jax.random.key(2), True))
    assert float(state.rollout.obs_stats.count) > 1  # the statistics are not the identity
