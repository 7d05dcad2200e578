"""Inverse RL (``jaxrl.irl``, ``maxent_irl``): hand-worked messages on the 3-state MDP, finite
differences, shaping removal, bad input, and (slow) reward recovery on the slippery gridworld."""

from __future__ import annotations

import functools

import distrax
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxrl import dynamic_programming as dp
from jaxrl import envs, irl
from jaxrl.agents import maxent_irl
from jaxrl.datasets import Dataset
from jaxrl.datasets.generation import collect
from jaxrl.envs.tabular import state_index, tabular_mdp, three_state_mdp
from jaxrl.training import adversarial

pytestmark = pytest.mark.xdist_group("irl")

# One expert trajectory of the 3-state MDP: (s0, move) then (s1, move).
EXPERT = np.zeros((3, 2), np.float32)
EXPERT[0, 1] = EXPERT[1, 1] = 1.0


@functools.partial(jax.jit, static_argnums=1)
def messages_and_likelihood(reward, horizon):
    """``(L, ∇L by autodiff, expected counts, μ_t)`` on the 3-state MDP: one compile per T."""
    mdp = three_state_mdp()

    def log_likelihood(r):
        return (EXPERT * r).sum() - irl.log_partition(mdp, r, horizon)

    value, gradient = jax.value_and_grad(log_likelihood)(reward)
    return value, gradient, irl.expected_counts(mdp, reward, horizon), irl.messages(
        mdp, reward, horizon).visitation


def test_three_state_gradient_is_hand_worked_value():
    # T = 2 with the MDP's own reward (0.5 for moving in s1, 2 in s2, 0 otherwise), uniform
    # action prior. β_2(s) = mean_a exp r(s, a): β_2(s0) = 1, β_2(s1) = b = (1 + e^½) / 2.
    # μ_1 over s0's actions ∝ (β_2(s0), β_2(s1)) = (1, b): moving has p = b / (1 + b).
    # Step 2: staying leaves s0 where both actions weigh 1 → μ_2(s0, ·) = (1 − p)(½, ½); moving
    # reaches s1 where they weigh (1, e^½) → μ_2(s1, ·) = p (1 − q, q), q = e^½ / (1 + e^½).
    # Gradient = expert counts − Σ_t μ_t.
    mdp = three_state_mdp()
    b = (1 + np.exp(0.5)) / 2
    p, q = b / (1 + b), np.exp(0.5) / (1 + np.exp(0.5))
    expected = np.array([[(1 - p) + (1 - p) / 2, p + (1 - p) / 2],
                         [p * (1 - q), p * q],
                         [0.0, 0.0]])
    gradient = EXPERT - messages_and_likelihood(mdp.R, 2)[2]
    np.testing.assert_allclose(gradient, EXPERT - expected, atol=1e-6)
    np.testing.assert_allclose(gradient, [[-0.6453388, 0.2151129], [-0.2151129, 0.6453388],
                                          [0, 0]], atol=1e-6)


def test_message_gradient_equals_finite_differences_and_autodiff():
    reward = np.random.default_rng(0).normal(size=(3, 2)).astype(np.float32)
    horizon = 2
    _, autodiff, counts, visitation = messages_and_likelihood(reward, horizon)
    gradient = EXPERT - np.asarray(counts)
    np.testing.assert_allclose(gradient, autodiff, atol=1e-5)
    eps = 1e-2
    numeric = np.zeros((3, 2))
    for index in np.ndindex(3, 2):
        step = np.zeros((3, 2), np.float32)
        step[index] = eps
        numeric[index] = (messages_and_likelihood(reward + step, horizon)[0]
                          - messages_and_likelihood(reward - step, horizon)[0]) / (2 * eps)
    np.testing.assert_allclose(gradient, numeric, atol=2e-3)
    np.testing.assert_allclose(visitation.sum((1, 2)), np.ones(horizon), atol=1e-6)


def test_reward_gradient_of_a_linear_state_reward_sums_over_actions():
    counts = messages_and_likelihood(np.zeros((3, 2), np.float32), 2)[2]
    gradient = irl.reward_gradient(lambda psi: jnp.broadcast_to(psi[:, None], (3, 2)),
                                   jnp.zeros(3), jnp.asarray(EXPERT), counts)
    np.testing.assert_allclose(gradient, (EXPERT - counts).sum(1), atol=1e-6)


def test_shaping_is_removed_and_scores_are_normalised():
    env, params = envs.make("Gridworld-v0")
    mdp = tabular_mdp(env, params, 0.9)
    live = (~mdp.terminal)[:, None]
    potential = jax.random.normal(jax.random.key(1), (16,)) * (~mdp.terminal)
    shaped = (3.0 * mdp.R + mdp.gamma * mdp.P @ potential - potential[:, None] + 0.5) * live
    noise = jax.random.normal(jax.random.key(2), mdp.R.shape) * live
    correlation = jax.jit(jax.vmap(lambda r: irl.shaping_free_correlation(mdp, r, mdp.R)))(
        jnp.stack([shaped, noise]))
    assert correlation[0] == pytest.approx(1.0, abs=1e-4)
    assert correlation[1] < 0.5
    assert irl.normalized_score(-150.0, -1200.0, -150.0) == pytest.approx(100.0)
    assert irl.normalized_score(-1200.0, -1200.0, -150.0) == pytest.approx(0.0)


def test_bad_input_says_what_to_change():
    from test_determinism import tiny_dataset

    env, params = envs.make("Gridworld-v0")
    with pytest.raises(ValueError, match="observation"):
        maxent_irl.make_agent(maxent_irl.Config(), env, params, tiny_dataset("CartPole-v1"))
    with pytest.raises(ValueError, match="--dataset"):
        maxent_irl.make_agent(maxent_irl.Config(), env, params)
    cartpole, cartpole_params = envs.make("CartPole-v1")
    with pytest.raises(TypeError, match="Gridworld-v0"):
        maxent_irl.make_agent(maxent_irl.Config(), cartpole, cartpole_params,
                              tiny_dataset("CartPole-v1"))
    from jaxrl.agents import gail
    from jaxrl.training.config import check_config

    with pytest.raises(ValueError, match="reward_form must be one of softplus, log_d, logit"):
        check_config(gail.Config(reward_form="exp"))


@functools.cache
def gridworld_expert(gamma: float, temperature: float = 0.05, envs_: int = 16, steps: int = 200):
    """A soft-optimal expert of the slippery 4x4 gridworld and ``envs_ × steps`` of its data."""
    env, params = envs.make("Gridworld-v0")
    mdp = tabular_mdp(env, params, gamma)
    policy = jax.jit(lambda mdp: dp.soft_value_iteration(mdp, temperature, 300).policy)(mdp)

    def expert(obs):
        return distrax.Categorical(probs=policy[state_index(mdp, obs)])

    arrays = jax.jit(lambda k: collect(k, env, params, [expert], envs_, steps))(
        jax.random.key(0))
    dataset = Dataset(**{k: np.asarray(v) for k, v in arrays.items()},
                      metadata={"env": "Gridworld-v0"})
    return env, params, mdp, policy, dataset


@pytest.mark.slow
@pytest.mark.parametrize("objective", ["finite_horizon", "discounted"])
def test_gridworld_reward_recovery(objective):
    gamma = 0.95
    env, params, mdp, expert, dataset = gridworld_expert(gamma)
    config = maxent_irl.Config(objective=objective, total_gradient_steps=300, log_frequency=150,
                               gamma=gamma, eval_episodes=0)
    state, metrics = jax.jit(maxent_irl.make_train(config, env, params, dataset))(
        jax.random.key(0))

    @jax.jit  # one program: eagerly, each op of the scores compiles on its own
    def scores(state, mdp, expert):
        visitation = dp.state_occupancy(mdp, state.policy)
        total_variation = 0.5 * jnp.abs(visitation - dp.state_occupancy(mdp, expert)).sum()
        reward = state.params * (~mdp.terminal)[:, None]
        weights = irl.state_action_visitation(mdp, expert)
        return total_variation, irl.shaping_free_correlation(mdp, reward, mdp.R, weights)

    total_variation, correlation = scores(state, mdp, expert)
    assert total_variation <= 0.05
    assert correlation >= 0.9


def test_discriminator_loss_is_hand_worked_binary_cross_entropy():
    # −log σ(2) − log(1 − σ(−1)) = log(1 + e^−2) + log(1 + e^−1) = 0.126928 + 0.313262.
    loss = adversarial.discriminator_loss(jnp.array([2.0]), jnp.array([-1.0]))
    assert float(loss) == pytest.approx(0.440190, abs=1e-5)
    assert float(adversarial.discriminator_loss(jnp.zeros(3), jnp.zeros(3))) == pytest.approx(
        2 * np.log(2), abs=1e-6)


def test_gradient_penalty_of_a_linear_logit_is_its_norm_minus_one_squared():
    def batch(value):
        return adversarial.DiscriminatorInputs(jnp.full((4, 2), value), jnp.full((4, 1), value),
                                               jnp.zeros((4, 2)), jnp.zeros(4), jnp.zeros(4),
                                               jnp.zeros(4))

    for scale, expected in ((1.0, 0.0), (3.0, 4.0)):
        weights = scale * jnp.array([0.6, 0.8, 0.0])

        def logit(x, weights=weights):
            return jnp.concatenate([x.obs, x.action], -1) @ weights

        penalty = jax.jit(adversarial.gradient_penalty, static_argnums=0)(
            logit, batch(1.0), batch(-1.0), jax.random.key(0))
        assert float(penalty) == pytest.approx(expected, abs=1e-5)


def test_importance_weighted_loss_is_hand_worked():
    # T = 2, M = 2 segments with rewards (0, 0) and (1, 1), log π = log ½ per step:
    # log w = (0 + 2 log 2, 2 + 2 log 2); log Ẑ = logsumexp(log w) − log 2; the expert's two
    # transitions (1, 3) count T · mean = 4. Loss = −(4 − log Ẑ); ∂/∂r_tj = w̄_j (self-normalised).
    segment = jnp.array([[0.0, 1.0], [0.0, 1.0]])
    log_probs = jnp.full((2, 2), np.log(0.5))
    log_w = np.array([2 * np.log(2), 2 + 2 * np.log(2)])
    expected = -(4 - (np.log(np.exp(log_w).sum()) - np.log(2)))
    loss, grads = jax.value_and_grad(adversarial.importance_weighted_loss, 1)(
        jnp.array([1.0, 3.0]), segment, log_probs)
    assert float(loss) == pytest.approx(expected, abs=1e-5)
    weights = np.exp(log_w) / np.exp(log_w).sum()
    np.testing.assert_allclose(grads, np.broadcast_to(weights, (2, 2)), atol=1e-6)


def test_absorbing_rewards_add_the_absorbing_states_discounted_value():
    # logit = 2 for live inputs, −1 for the absorbing state; γ = 0.9. The live transition keeps
    # its logit; the terminating one adds γ r_a / (1 − γ) = 0.9 · −1 / 0.1 = −9: 2 − 9 = −7.
    def logit(x):
        return jnp.where(x.absorbing > 0, -1.0, 2.0)

    batch = adversarial.DiscriminatorInputs(jnp.zeros((2, 3)), jnp.zeros((2, 1)),
                                            jnp.zeros((2, 3)), jnp.array([0.0, 1.0]),
                                            jnp.zeros(2), jnp.zeros(2))
    np.testing.assert_allclose(adversarial.absorbing_rewards(logit, batch, 0.9), [2.0, -7.0],
                               atol=1e-5)


def test_dac_builds_on_td3_with_the_shared_absorbing_target():
    # SAC (the default learner) is compiled and run by tests/test_determinism.py and TD3 by the
    # benchmark; here TD3's whole program is traced (no compile: the suite's budget), on data
    # whose episodes terminate, so the absorbing-state target is in it.
    from agent_configs import TINY
    from test_determinism import tiny_dataset

    from jaxrl.agents import dac

    env, params = envs.make("Pendulum-v1")
    config = dac.Config(**TINY["dac"][1], learner="td3")
    state, metrics = jax.eval_shape(dac.make_train(config, env, params,
                                                   tiny_dataset("Pendulum-v1")),
                                    jax.random.key(0))
    assert set(state.params) == {"actor", "critic"}
    assert {"actor_loss", "critic_loss", "disc_loss", "disc_expert_accuracy"} <= set(metrics)
    assert "alpha" not in metrics
    with pytest.raises(ValueError, match="learner"):
        dac.make_agent(dac.Config(learner="ppo"), env, params, tiny_dataset("Pendulum-v1"))


def saved_airl_run(out, data_path, config, state) -> str:
    """A run directory holding ``state`` (one seed, the airl run's checkpoint) and what
    ``run_dir.read_run`` reads of ``config.json``, written without compiling a training run."""
    import json

    from jaxrl import checkpoint
    from jaxrl.training.config import config_to_dict

    out.mkdir()
    (out / "config.json").write_text(json.dumps({
        "algo": "airl", "env": "Pendulum-v1", "seeds": [0], "config": config_to_dict(config),
        "dataset": str(data_path)}))
    checkpoint.save(out / "checkpoints" / "update_0000000000",
                    jax.tree.map(lambda x: x[None], state), {"updates": 0})
    return str(out)


@pytest.mark.slow
def test_airl_reward_transfer_pays_sac_the_learned_g_on_changed_dynamics(tmp_path, capsys):
    # AIRL's transfer: `sac --reward-from-run` an airl run directory, on a heavier pendulum. Its
    # replay buffer after the warm-up (SAC's init) holds g(s) of the
    # stored observations (airl.learned_reward), not the env's rewards.
    from agent_configs import TINY
    from test_determinism import tiny_dataset

    from jaxrl import datasets
    from jaxrl.agents import airl, sac

    env, params = envs.make("Pendulum-v1")
    data = tiny_dataset("Pendulum-v1")
    data_path = datasets.save(tmp_path / "demos.npz", data)
    config = airl.Config(**TINY["airl"][1])
    airl_state = jax.jit(airl.make_agent(config, env, params, data).init)(jax.random.key(0))
    run = saved_airl_run(tmp_path / "airl", data_path, config, airl_state)
    learner = sac.make_agent(sac.Config(**TINY["sac"][1], reward_from_run=run), env,
                             params.replace(m=1.3))
    buffer = jax.jit(learner.init)(jax.random.key(1)).buffer
    rows = int(buffer.size)
    assert rows > 0
    obs = buffer.obs[:rows].reshape(-1, buffer.obs.shape[-1])
    expected = jax.jit(lambda state, obs: airl.learned_reward(config, env, params, data, state,
                                                              obs))(airl_state, obs)
    np.testing.assert_allclose(buffer.reward[:rows].reshape(-1), expected, rtol=1e-5,
                               atol=1e-6)
    assert float(jnp.std(expected)) > 0

    # Bad input through the CLI, in process: one error line each, before anything compiles.
    import json

    from jaxrl.cli import main

    sac_run = tmp_path / "sac"
    sac_run.mkdir()
    (sac_run / "config.json").write_text(json.dumps({
        "algo": "sac", "env": "Pendulum-v1", "seeds": [0], "config": {}}))
    cases = {"MountainCarContinuous-v0": (run, "observations of shape (3,) (Pendulum-v1), "
                                               "this env's are (2,); pass --env Pendulum-v1"),
             "Pendulum-v1": (str(sac_run), "a sac run; the reward comes from an airl run")}
    for env_id, (directory, message) in cases.items():
        assert main(["train", "sac", "--env", env_id, "--reward-from-run", directory,
                     "--out", str(tmp_path / "unused")]) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and message in err, err
