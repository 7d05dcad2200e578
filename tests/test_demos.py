"""Learning from demonstrations (issue 33): pre-train & finetune, the critic warm-up and the
hybrid objective of the on-policy agents (``jaxrl.training.pretrain``, ``training.on_policy``);
demonstrations in the replay buffer with DQfD's large-margin loss (DQN) and the hybrid actor
objective (SAC) (``replay.mixed_sample``, ``training.off_policy.demo_partition``); offline →
online finetuning of IQL (``training.offline.make_online_agent``).

Demonstrations here are CartPole states labelled by the scripted expert (``envs.experts``):
behaviour cloning needs pairs, not trajectories, so the fixture writes them without a rollout.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from helpers import expert_pairs, leaves_equal, tiny_bc_run

from jaxrl import datasets, envs, ope, replay, runner
from jaxrl.agents import bc, dqn, is_pg, ppo, sac, td3
from jaxrl.cli import main
from jaxrl.envs.experts import pendulum_expert
from jaxrl.training.on_policy import split_actor_critic
from jaxrl.training.pretrain import large_margin_loss

pytestmark = pytest.mark.xdist_group("demos")

TINY = {"num_envs": 2, "num_steps": 8, "total_timesteps": 32, "hidden_sizes": (8,),
        "update_epochs": 1}


@pytest.fixture(scope="module")
def demo_file(tmp_path_factory):
    return str(datasets.save(tmp_path_factory.mktemp("demos") / "cartpole.npz",
                             expert_pairs(512)))


@pytest.fixture(scope="module")
def bc_run(tmp_path_factory, demo_file):
    return tiny_bc_run(tmp_path_factory.mktemp("bc") / "run", demo_file)


@pytest.fixture(scope="module")
def cartpole():
    return envs.make("CartPole-v1")


@pytest.mark.slow
def test_init_from_copies_the_bc_actor_and_warm_up_leaves_it(bc_run, cartpole):
    from jaxrl.policy import load_policy

    env, env_params = cartpole
    config = ppo.Config(**TINY, init_from=bc_run, activation="tanh", critic_warmup=2)
    agent = ppo.make_agent(config, env, env_params)
    assert agent.initial_steps == 2 * 16  # the warm-up's env steps
    state = jax.jit(agent.init)(jax.random.key(3))
    actor, _ = split_actor_critic(state.params)
    cloned = load_policy(bc_run).params.learner.params["params"]
    expected = {"actor_torso": cloned["MLP_0"], "policy_head": {"Dense_0": cloned["Dense_0"]}}
    jax.tree.map(np.testing.assert_array_equal, actor["params"], expected)


def test_zero_demo_coef_is_plain_ppo(demo_file, cartpole):
    """The hybrid objective with λ0 = 0 trains plain PPO's parameters and metrics to float
    rounding: they are two programs, which XLA may fuse and round differently."""
    env, env_params = cartpole
    key = jax.random.key(0)
    plain = ppo.make_train(ppo.Config(**TINY), env, env_params)
    hybrid = ppo.make_train(ppo.Config(**TINY, demo_dataset=demo_file, demo_coef=0.0), env,
                            env_params)
    # One compilation for both runs (cheaper than two).
    (plain_state, plain_metrics), (state, metrics) = jax.jit(
        lambda key: (plain(key), hybrid(key)))(key)
    jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6),
                 state.params, plain_state.params)
    for name, values in plain_metrics.items():
        np.testing.assert_allclose(metrics[name], values, rtol=1e-5, atol=1e-6, err_msg=name)
    assert np.isfinite(metrics["demo_nll"]).all()


def test_demo_gradient_steps_clone_the_demonstrations_during_training(demo_file, cartpole):
    """The hybrid objective's own supervised steps (demo_gradient_steps, a fresh Adam after
    every update's RL epochs) imitate the demonstrations though λ0 = 0 in the RL loss."""
    env, env_params = cartpole
    demos = datasets.load(demo_file)
    config = ppo.Config(**TINY, demo_dataset=demo_file, demo_coef=0.0, demo_decay=0.9,
                        demo_gradient_steps=100, demo_learning_rate=1e-2,
                        pretrain_batch_size=64)
    agent = ppo.make_agent(config, env, env_params)
    greedy = jax.jit(lambda key: agent.act(ppo.make_train(config, env, env_params)(key)[0],
                                           jnp.asarray(demos.observations), key, True))(
        jax.random.key(1))
    assert np.mean(np.asarray(greedy) == demos.actions) > 0.9


def test_pretraining_clones_the_demonstrations(demo_file, cartpole):
    env, env_params = cartpole
    demos = datasets.load(demo_file)
    config = ppo.Config(**TINY, pretrain_dataset=demo_file, pretrain_steps=200,
                        pretrain_batch_size=64, pretrain_learning_rate=1e-2)
    agent = ppo.make_agent(config, env, env_params)
    greedy = jax.jit(lambda key: agent.act(agent.init(key), jnp.asarray(demos.observations), key,
                                           True))(jax.random.key(1))
    assert np.mean(np.asarray(greedy) == demos.actions) > 0.9


@pytest.mark.parametrize("case", ["env", "network", "spaces", "missing", "box"])
def test_bad_input_is_one_error_line(case, bc_run, demo_file, capsys, tmp_path):
    # A dataset that does not say its env: only its spaces can tell it does not fit.
    unlabelled = str(datasets.save(tmp_path / "pairs.npz", expert_pairs(8, env_id=None)))
    args = {"env": ["--env", "Acrobot-v1", "--init-from", bc_run, "--activation", "tanh",
                    "--hidden-sizes", "8"],
            "network": ["--env", "CartPole-v1", "--init-from", bc_run],
            "spaces": ["--env", "Pendulum-v1", "--demo-dataset", unlabelled],
            "missing": ["--env", "CartPole-v1", "--pretrain-dataset", str(tmp_path / "no.npz")],
            # PPO's Gaussian cannot copy bc's tanh-squashed policy of Box actions.
            "box": ["--env", "Pendulum-v1", "--init-from", bc_run],
            }[case]
    assert main(["train", "ppo", *args, "--out", str(tmp_path / "run"), "--no-progress"]) != 0
    err = capsys.readouterr().err
    assert err.startswith("jaxrl: error:") and err.strip().count("\n") == 0, err
    assert {"env": "trained on 'CartPole-v1'", "network": "incompatible network",
            "spaces": "observation space", "missing": "no dataset file",
            "box": "pass --pretrain-dataset FILE"}[case] in err
    assert not (tmp_path / "run").exists()


@pytest.mark.slow
def test_resumed_finetuning_run_equals_the_uninterrupted_run(bc_run, demo_file, tmp_path):
    """PPO ``init_from`` a bc run with the hybrid objective and a critic warm-up, through the
    runner: a copy of the finished run cut back to its first checkpoint and resumed
    from ``config.json`` alone (the bc run and the demonstrations found again by their recorded
    paths; λ_k from the restored update count) == the uninterrupted run, bitwise (state and
    metrics.csv). One compile fewer than stopping a second run halfway."""
    import shutil

    config = ppo.Config(**{**TINY, "total_timesteps": 64}, init_from=bc_run, activation="tanh",
                        demo_dataset=demo_file, demo_coef=0.5, demo_decay=0.5, critic_warmup=1)
    reference, out = tmp_path / "reference", tmp_path / "run"
    uninterrupted = runner.run("ppo", "CartPole-v1", config, out=reference, progress=False,
                               checkpoint_every=2 * 16)
    shutil.copytree(reference, out)
    first, *later = sorted((out / "checkpoints").iterdir())
    for newer in later:
        shutil.rmtree(newer)
    resumed = runner.resume_run(out, progress=False)
    assert resumed.resumed_updates == int(first.name.split("_")[1]) < 4
    assert leaves_equal(resumed.train_state, uninterrupted.train_state)
    assert (out / "metrics.csv").read_bytes() == (reference / "metrics.csv").read_bytes()


# ----------------------------------------------------------------------------------------------
# Demonstrations in the replay buffer: DQfD (DQN) and the hybrid actor objective (SAC)

# 2 updates of 8 env steps after 16 random ones; batches of 8, a quarter from the demos.
REPLAY_TINY = {"total_timesteps": 32, "buffer_size": 16, "batch_size": 8, "learning_starts": 16,
               "train_frequency": 1, "updates_per_step": 1, "log_frequency": 8,
               "eval_episodes": 0, "hidden_sizes": (8,)}


def test_large_margin_loss_hand_worked():
    """Q = (1, 2, 0.5) with expert action 0, margin 0.8: max(1 + 0, 2 + 0.8, 0.5 + 0.8) - 1 =
    1.8. Q = (3, 1, 2.5), expert 0: max(3, 1.8, 3.3) - 3 = 0.3 (2.5 is within the margin).
    Q = (3, 1, 2), expert 0: max(3, 1.8, 2.8) - 3 = 0 (the expert leads by more than 0.8)."""
    q_values = jnp.array([[1.0, 2.0, 0.5], [3.0, 1.0, 2.5], [3.0, 1.0, 2.0]])
    np.testing.assert_allclose(large_margin_loss(q_values, jnp.array([0, 0, 0]), 0.8),
                               [1.8, 0.3, 0.0], rtol=1e-6)


def test_dqn_init_from_a_bc_run_acts_as_bc(bc_run, demo_file, cartpole):
    """DQN ``init_from`` a bc run: Q (and its target) start at BC's logits, so the greedy
    action equals BC's on the demonstrated states."""
    from jaxrl.policy import load_policy

    env, env_params = cartpole
    agent = dqn.make_agent(dqn.Config(**REPLAY_TINY, init_from=bc_run, activation="tanh"),
                           env, env_params)
    obs = jnp.asarray(datasets.load(demo_file).observations)
    state, greedy = jax.jit(lambda key: (s := agent.init(key), agent.act(s, obs, key, True)))(
        jax.random.key(0))
    policy = load_policy(bc_run)
    np.testing.assert_array_equal(greedy, policy.act(policy.params, obs, jax.random.key(0),
                                                     True))
    assert leaves_equal(state.params["q"], state.target_params["q"])


def test_demo_partition_survives_many_overwrites():
    """A 4-row buffer overwritten 50 times (observations -1 - t) beside 6 demonstrations
    (observations 0..5): every mixed batch takes its last quarter from the demonstrations, all
    of them in time, and its first rows from the newest online data only."""
    def write(t, buffer):
        row = jnp.full((1, 1), -1.0 - t)
        return buffer.extend(row[..., None], jnp.zeros((1, 1), jnp.int32), row,
                             jnp.zeros((1, 1), bool), jnp.zeros((1, 1), bool), row[..., None])

    demo_obs = jnp.arange(6.0)[:, None]
    demos = replay.demo_buffer(demo_obs, jnp.arange(6) % 2, jnp.ones(6), jnp.zeros(6, bool),
                               jnp.arange(6) == 5, demo_obs + 1)

    @jax.jit
    def overwrite_then_sample(keys):
        buffer = jax.lax.fori_loop(0, 50, write,
                                   replay.ReplayBuffer.create(4, 1, (1,), (), jnp.int32))
        return jax.vmap(lambda key: replay.mixed_sample(key, buffer, demos, 8, 2, 1))(keys)

    samples = overwrite_then_sample(jax.random.split(jax.random.key(0), 64))
    np.testing.assert_array_equal(samples.demo, np.tile([0.0] * 6 + [1.0] * 2, (64, 1)))
    demo_rows = np.asarray(samples.obs[:, 6:, 0]).ravel()
    assert set(demo_rows) == set(range(6))
    np.testing.assert_array_equal(samples.action[:, 6:], demo_rows.reshape(64, 2) % 2)
    assert set(np.asarray(samples.obs[:, :6, 0]).ravel()) == {-47.0, -48.0, -49.0, -50.0}


@pytest.fixture(scope="module")
def pendulum_demo_file(tmp_path_factory):
    """64 Pendulum states (angle, velocity uniform) with the scripted expert's torque."""
    rng = np.random.default_rng(0)
    theta, velocity = rng.uniform(-np.pi, np.pi, 64), rng.uniform(-8, 8, 64)
    obs = np.stack([np.cos(theta), np.sin(theta), velocity], -1).astype(np.float32)
    actions = np.asarray(pendulum_expert(jnp.asarray(obs)), np.float32).reshape(64, 1)
    pairs = datasets.Dataset(
        observations=obs, actions=actions, rewards=np.zeros(64, np.float32),
        next_observations=obs, terminated=np.zeros(64, bool), truncated=np.ones(64, bool),
        log_probs=np.zeros(64, np.float32), metadata={"policy": "expert", "env": "Pendulum-v1"})
    return str(datasets.save(tmp_path_factory.mktemp("demos") / "pendulum.npz", pairs))


@pytest.mark.slow
def test_dqn_pretraining_warm_up_and_zero_demo_terms_are_plain_dqn(demo_file, cartpole):
    """``pretrain_dataset``: DQN's argmax Q right after ``init`` agrees with the expert on > 90 %
    of the demonstrated CartPole states. ``critic_warmup = 9`` of the tiny run's 16 gradient
    steps (2 updates of 8): after the first update the target network is bitwise the pretrained
    Q while Q moves. DQfD with demonstrations loaded but ``demo_ratio = 0`` (no demonstration
    rows) and ``demo_coef = 0`` trains the same parameters and metrics as plain DQN to float
    rounding (the large-margin term is computed, over no rows: 0): they are two programs, which
    XLA may fuse and round differently."""
    env, env_params = cartpole
    pretrained = {"pretrain_dataset": demo_file, "pretrain_steps": 200,
                  "pretrain_batch_size": 64, "pretrain_learning_rate": 1e-2, "critic_warmup": 9}
    plain, zero = (dqn.make_agent(dqn.Config(**REPLAY_TINY, **pretrained, **fields), env,
                                  env_params)
                   for fields in ({}, {"demo_dataset": demo_file, "demo_ratio": 0.0,
                                       "demo_coef": 0.0}))
    assert plain.num_updates == 2
    data = datasets.load(demo_file)
    obs = jnp.asarray(data.observations)

    def run(agent, key):
        """The initial state, its greedy actions, the state after each update, the metrics."""
        def update(state, _):
            state, metrics = agent.update(state)
            return state, (state, metrics)

        state = agent.init(key)
        return state, agent.act(state, obs, key, True), jax.lax.scan(update, state, None,
                                                                     length=2)[1]

    (initial, greedy, (states, plain_metrics)), (_, _, (zero_states, metrics)) = jax.jit(
        lambda key: (run(plain, key), run(zero, key)))(jax.random.key(0))
    assert np.mean(np.asarray(greedy) == data.actions) > 0.9
    first = jax.tree.map(lambda leaf: leaf[0], states)
    assert int(first.update_count) == 8
    assert leaves_equal(first.target_params["q"], initial.params["q"])
    assert not leaves_equal(first.params["q"], initial.params["q"])
    jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6),
                 zero_states.params, states.params)
    for name, values in plain_metrics.items():
        np.testing.assert_allclose(metrics[name], values, rtol=1e-5, atol=1e-6, err_msg=name)
    np.testing.assert_array_equal(metrics["demo_margin"], 0.0)


@pytest.mark.slow
def test_sac_hybrid_term_moves_the_actor_towards_the_demonstrations(pendulum_demo_file):
    """SAC + demonstrations with λ = 100 on -log π(a_E|s) (actor step 3e-2): after 16 gradient
    steps the greedy torque is nearer the expert's on the demonstrated states (without the term,
    the same run moves it away: 1.66 → 1.96)."""
    env, env_params = envs.make("Pendulum-v1")
    agent = sac.make_agent(sac.Config(**REPLAY_TINY, demo_dataset=pendulum_demo_file,
                                      demo_ratio=0.5, demo_coef=100.0, policy_lr=3e-2),
                           env, env_params)
    demos = datasets.load(pendulum_demo_file)
    obs, expert = jnp.asarray(demos.observations), jnp.asarray(demos.actions)

    @jax.jit
    def errors(key):
        state = agent.init(key)
        before = jnp.abs(agent.act(state, obs, key, True) - expert).mean()
        state, metrics = jax.lax.scan(lambda s, _: agent.update(s), state, None,
                                      length=agent.num_updates)
        return before, jnp.abs(agent.act(state, obs, key, True) - expert).mean(), metrics

    before, after, metrics = errors(jax.random.key(0))
    assert after < before - 0.1, (before, after)
    assert np.isfinite(metrics["demo_nll"]).all()


@pytest.fixture(scope="module")
def pendulum_bc_run(tmp_path_factory, pendulum_demo_file):
    """A tiny bc run of Pendulum (normalised observations: folded into the first layer)."""
    out = tmp_path_factory.mktemp("pendulum-bc") / "run"
    config = bc.Config(total_gradient_steps=4, log_frequency=4, batch_size=16, eval_episodes=1,
                       hidden_sizes=(8,), activation="tanh")
    runner.run("bc", "Pendulum-v1", config, dataset=pendulum_demo_file, out=out, progress=False)
    return out


@pytest.mark.slow
def test_pretrain_dataset_then_critic_warmup_ddpg(pendulum_demo_file):
    """``pretrain_dataset``: DDPG's greedy torque right after ``init`` is within 0.9 of the
    expert's on average (0.76 with 8 hidden units), where a fresh actor's torque near 0 is 1.9
    away. ``critic_warmup`` longer than the run (17 > 16 gradient steps): the actor stays
    bitwise the pretrained one while the critic moves. TD3 runs DDPG's code
    (``training.deterministic``) with two critics and a delay: DDPG stands for both; DQN's
    pre-training and warm-up are checked beside its zero demonstration terms."""
    from jaxrl.agents import ddpg

    env, env_params = envs.make("Pendulum-v1")
    config = ddpg.Config(**REPLAY_TINY, pretrain_dataset=pendulum_demo_file, pretrain_steps=200,
                         pretrain_batch_size=64, pretrain_learning_rate=1e-2, critic_warmup=17)
    agent = ddpg.make_agent(config, env, env_params)
    data = datasets.load(pendulum_demo_file)
    obs = jnp.asarray(data.observations)

    @jax.jit
    def pretrained_then_warmed_up(key):
        state = agent.init(key)
        final, _ = jax.lax.scan(lambda s, _: agent.update(s), state, None,
                                length=agent.num_updates)
        return state, final, agent.act(state, obs, key, True)

    initial, final, greedy = pretrained_then_warmed_up(jax.random.key(0))
    assert int(final.update_count) == 16
    assert np.abs(np.asarray(greedy) - data.actions).mean() < 0.9
    assert leaves_equal(final.params["actor"], initial.params["actor"])
    assert not leaves_equal(final.params["critic"], initial.params["critic"])


@pytest.mark.slow
@pytest.mark.parametrize("algo", ["sac", "td3", "ddpg"])
def test_init_from_a_continuous_bc_run_acts_as_bc(algo, pendulum_bc_run, pendulum_demo_file):
    """SAC / TD3 / DDPG ``init_from`` a bc run of Pendulum: the greedy torque (SAC's
    tanh-Gaussian mode, TD3's and DDPG's deterministic ``μ``) equals BC's on the demonstrated
    states."""
    from jaxrl.agents import ddpg
    from jaxrl.policy import load_policy

    out = pendulum_bc_run
    env, env_params = envs.make("Pendulum-v1")
    module = {"sac": sac, "td3": td3, "ddpg": ddpg}[algo]
    agent = module.make_agent(module.Config(**REPLAY_TINY, init_from=str(out),
                                            activation="tanh"), env, env_params)
    obs = jnp.asarray(datasets.load(pendulum_demo_file).observations)
    greedy = jax.jit(lambda key: agent.act(agent.init(key), obs, key, True))(jax.random.key(0))
    policy = load_policy(str(out))
    expected = policy.act(policy.params, obs, jax.random.key(0), True)
    np.testing.assert_allclose(greedy, expected, rtol=1e-5, atol=1e-5)


@pytest.mark.slow
def test_sac_critic_warmup_and_zero_demo_terms_are_plain_sac(pendulum_demo_file):
    """``critic_warmup = 8`` of the tiny run's 16 gradient steps (2 updates of 8): after the
    first update the actor and α are bitwise as initialised while the critics move; the second
    update moves them too. The hybrid SAC with ``demo_ratio = 0`` and ``demo_coef = 0`` (its
    actor loss over no demonstration rows) trains the same parameters and metrics as plain SAC
    to float rounding: they are two programs, which XLA may fuse and round differently."""
    env, env_params = envs.make("Pendulum-v1")
    plain, zero = (sac.make_agent(sac.Config(**REPLAY_TINY, critic_warmup=8, **fields), env,
                                  env_params)
                   for fields in ({}, {"demo_dataset": pendulum_demo_file, "demo_ratio": 0.0,
                                       "demo_coef": 0.0}))
    assert plain.num_updates == 2

    def run(agent, key):
        """The initial parameters, those after each update, and the metrics."""
        def update(state, _):
            state, metrics = agent.update(state)
            return state, (state.params, metrics)

        state = agent.init(key)
        return state.params, jax.lax.scan(update, state, None, length=2)[1]

    (initial, (params, plain_metrics)), (_, (zero_params, metrics)) = jax.jit(
        lambda key: (run(plain, key), run(zero, key)))(jax.random.key(0))
    first, final = (jax.tree.map(lambda leaf, i=i: leaf[i], params) for i in (0, 1))
    for name in ("actor", "log_alpha"):
        assert leaves_equal(first[name], initial[name]), name
        assert not leaves_equal(final[name], first[name]), name
    assert not leaves_equal(first["critic"], initial["critic"])
    jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6),
                 zero_params, params)
    for name, values in plain_metrics.items():
        np.testing.assert_allclose(metrics[name], values, rtol=1e-5, atol=1e-6, err_msg=name)

# ----------------------------------------------------------------------------------------------
# is_pg: off-policy policy gradient with importance weights


def bandit_episodes(key, behaviour, rewards, num_episodes):
    """One-pull episodes ``[E, 1]`` of a bandit played by ``behaviour`` (probabilities)."""
    actions = jax.random.choice(key, len(behaviour), (num_episodes, 1), p=behaviour)
    return ope.Episodes(obs=jnp.zeros((num_episodes, 1, 1)), action=actions,
                        reward=rewards[actions], behaviour_log_prob=jnp.log(behaviour)[actions],
                        mask=jnp.ones((num_episodes, 1)))


def bandit_gradient(logits, episodes, kind, truncation=2.0):
    """is_pg's estimate of ∇J at a softmax policy: minus the surrogate's gradient."""
    def loss(logits):
        log_probs = jax.nn.log_softmax(logits)[episodes.action]
        return is_pg.surrogate_loss(log_probs, episodes, kind, 1.0, truncation)

    return -jax.grad(loss)(logits)


def test_is_pg_gradient_is_the_gradient_of_per_decision_is():
    """For per-decision weights the surrogate's gradient in log π is -∇ ope.per_decision_is:
    both use ope's weights, ∂/∂log π_k of Σ_t γ^t w_t r_t = Σ_{t≥k} γ^t w_t r_t."""
    keys = jax.random.split(jax.random.key(0), 3)
    log_probs = jnp.log(jax.random.uniform(keys[0], (4, 3), minval=0.2, maxval=1.0))
    behaviour = jnp.log(jax.random.uniform(keys[1], (4, 3), minval=0.2, maxval=1.0))
    mask = jnp.array([[1, 1, 1], [1, 1, 0], [1, 0, 0], [1, 1, 1]], jnp.float32)
    episodes = ope.Episodes(obs=jnp.zeros((4, 3, 1)), action=jnp.zeros((4, 3), jnp.int32),
                            reward=jax.random.normal(keys[2], (4, 3)), behaviour_log_prob=behaviour,
                            mask=mask)
    surrogate, estimator = jax.jit(lambda log_probs: (
        jax.grad(is_pg.surrogate_loss)(log_probs, episodes, "per_decision", 0.9, 1.0),
        jax.grad(ope.per_decision_is)(log_probs, behaviour, episodes.reward, mask, 0.9)))(
            log_probs)
    np.testing.assert_allclose(surrogate, -estimator, rtol=1e-5, atol=1e-7)


def test_is_pg_bandit_gradient_unbiased_and_truncation_trades_variance_for_bias():
    """A 2-armed bandit (rewards 0, 1) logged by π_b = (0.8, 0.2); target π = softmax(0, 1):
    ∇J = π_1 (1 - π_1) (-1, 1). Over 4000 datasets of 8 pulls, the per-decision mean is within
    4 standard errors of ∇J; truncating ρ at 2 (ρ_1 = 3.65) lowers the variance and biases the
    mean towards 0 by more than 4 standard errors."""
    logits, behaviour, rewards = jnp.array([0.0, 1.0]), jnp.array([0.8, 0.2]), jnp.array([0., 1.])
    pi_1 = jax.nn.softmax(logits)[1]
    true_gradient = np.asarray(pi_1 * (1 - pi_1) * jnp.array([-1.0, 1.0]))

    @jax.jit
    def estimates(key):
        episodes = bandit_episodes(key, behaviour, rewards, 8)
        return (bandit_gradient(logits, episodes, "per_decision"),
                bandit_gradient(logits, episodes, "truncated"))

    plain, truncated = map(np.asarray, jax.vmap(estimates)(
        jax.random.split(jax.random.key(1), 4000)))
    error = np.sqrt(plain.var(0) / len(plain))
    assert (np.abs(plain.mean(0) - true_gradient) < 4 * error).all()
    assert (truncated.var(0) < plain.var(0)).all()
    truncated_error = np.sqrt(truncated.var(0) / len(truncated))
    assert (np.abs(truncated.mean(0) - true_gradient) > 4 * truncated_error).all()


def test_is_pg_beats_bc_on_mixed_bandit_data():
    """Logged pulls: 90 % on the bad arm (reward 0), 10 % on the good one (reward 1). BC copies
    the majority; is_pg (self-normalised weights) climbs to the good arm."""
    episodes = bandit_episodes(jax.random.key(2), jnp.array([0.9, 0.1]), jnp.array([0., 1.]),
                               256)

    def ascend(direction):
        def step(logits, _):
            return logits + 0.5 * direction(logits), None

        return jax.lax.scan(step, jnp.zeros(2), None, length=200)[0]

    def log_likelihood(logits):
        return jax.nn.log_softmax(logits)[episodes.action].mean()

    is_pg_logits, bc_logits = jax.jit(lambda: (
        ascend(lambda logits: bandit_gradient(logits, episodes, "self_normalized")),
        ascend(jax.grad(log_likelihood))))()
    assert jax.nn.softmax(is_pg_logits)[1] > 0.9
    assert jax.nn.softmax(bc_logits)[1] < 0.2


@pytest.mark.slow
def test_finetuning_from_bc_keeps_the_pretrained_score(demo_file, cartpole):
    """PPO pre-trained on the demonstrations, critic warmed up, then finetuned: over the first
    10 % of finetuning (2 of 20 updates) its greedy return stays within 10 % (50) of the
    pretrained policy's."""
    from jaxrl.evaluation import evaluate

    env, env_params = cartpole
    config = ppo.Config(num_envs=8, num_steps=64, total_timesteps=8 * 64 * 20, hidden_sizes=(32,),
                        pretrain_dataset=demo_file, pretrain_steps=1000, pretrain_batch_size=128,
                        pretrain_learning_rate=3e-3, critic_warmup=4, eval_episodes=8)
    agent = ppo.make_agent(config, env, env_params)

    def pretrained_then_finetuned(key):
        state = agent.init(key)
        pretrained = evaluate(jax.random.fold_in(key, 1), env, env_params,
                              lambda k, obs: agent.act(state, obs, k, True), 8, 501)
        _, metrics = jax.lax.scan(lambda s, _: agent.update(s), state, None,
                                  length=agent.num_updates // 10)
        return pretrained, metrics["eval_return"]

    pretrained, finetuned = jax.jit(jax.vmap(pretrained_then_finetuned))(
        jax.random.split(jax.random.key(0), 2))
    assert (np.asarray(pretrained) >= 450).all(), pretrained
    assert (np.asarray(finetuned) >= np.asarray(pretrained)[:, None] - 50).all(), finetuned


# ----------------------------------------------------------------------------------------------
# Offline → online finetuning (IQL, AWAC with init_from)

OFFLINE_TINY = {"batch_size": 16, "eval_episodes": 1, "hidden_sizes": (8,)}


@pytest.mark.slow
@pytest.mark.parametrize("algo", ["iql", "awac"])
def test_init_from_copies_every_network_and_finetunes_online(algo, pendulum_demo_file,
                                                             monkeypatch):
    """IQL and AWAC ``init_from`` copy the actor, critics, value network (IQL) and target
    critic bitwise; one
    online update steps the env 4 times (1 random warm-up step first), moves the networks and
    writes only env transitions to the online buffer (the offline rows are the closed-over
    demonstration partition, which nothing writes). The offline learner is an initialised one
    handed to the loader (the run directory is read in the end-to-end CLI test)."""
    from jaxrl.agents import awac, iql
    from jaxrl.training import offline

    module = {"iql": iql, "awac": awac}[algo]

    env, env_params = envs.make("Pendulum-v1")
    dataset = datasets.load(pendulum_demo_file)
    offline_agent = module.make_agent(module.Config(total_gradient_steps=4, log_frequency=4,
                                              **OFFLINE_TINY), env, env_params, dataset)
    saved = jax.jit(offline_agent.init)(jax.random.key(0)).learner
    monkeypatch.setattr(offline, "load_offline_learner", lambda *args: (saved, dataset))
    config = module.Config(init_from="offline-run", total_timesteps=5, log_frequency=4,
                        buffer_size=8, offline_ratio=0.5, **OFFLINE_TINY)
    agent = module.make_agent(config, env, env_params, dataset)
    assert (agent.num_updates, agent.steps_per_update, agent.initial_steps) == (1, 4, 1)
    state, (finetuned, metrics) = jax.jit(lambda key: (s := agent.init(key), agent.update(s)))(
        jax.random.key(3))
    for copied, original in [(state.params, saved.params),
                             (state.target_params, saved.target_critic)]:
        assert jax.tree.structure(copied) == jax.tree.structure(original)
        for a, b in zip(jax.tree.leaves(copied), jax.tree.leaves(original), strict=True):
            np.testing.assert_array_equal(a, b)
    assert set(state.params) == {"actor", "critic", *(["value"] if algo == "iql" else [])}
    assert int(finetuned.buffer.size) == 5 and int(metrics["step"]) == 5
    assert np.isfinite(metrics["eval_return"]) and np.isfinite(metrics["critic_loss"])
    moved = jax.tree.map(lambda a, b: bool(jnp.any(a != b)), finetuned.params, saved.params)
    assert all(jax.tree.leaves(moved))


@pytest.mark.parametrize("case", ["algo", "run", "td3 env", "td3 missing", "dqn dueling",
                                  "ddpg env", "dqn pretrain spaces"])
def test_online_init_from_bad_run_is_one_error_line(case, bc_run, pendulum_demo_file, capsys,
                                                     tmp_path):
    target = {"algo": bc_run, "run": str(tmp_path), "td3 env": bc_run, "ddpg env": bc_run,
              "td3 missing": str(tmp_path / "no-run"), "dqn dueling": bc_run}.get(case)
    algo = ["iql", "--dataset", pendulum_demo_file]
    if case.startswith(("td3", "ddpg")):
        algo = [case.split()[0]]
    env_id = "Pendulum-v1"
    if case.startswith("dqn"):
        algo, env_id = ["dqn", *(["--dueling"] if case == "dqn dueling" else [])], "CartPole-v1"
    start = (["--init-from", target] if target else
             ["--pretrain-dataset", pendulum_demo_file])  # a Pendulum dataset for CartPole
    assert main(["train", *algo, "--env", env_id, *start,
                 "--hidden-sizes", "8", "--out", str(tmp_path / "run"), "--no-progress"]) != 0
    err = capsys.readouterr().err
    assert err.startswith("jaxrl: error:") and err.strip().count("\n") == 0, err
    assert {"algo": "a bc run; iql continues online", "run": "--init-from",
            "td3 env": "trained on 'CartPole-v1'", "td3 missing": "no run directory",
            "dqn dueling": "drop --dueling", "ddpg env": "trained on 'CartPole-v1'",
            "dqn pretrain spaces": "--pretrain-dataset"}[case] in err


@pytest.mark.slow
def test_iql_offline_then_online_from_the_cli(pendulum_demo_file, tmp_path):
    """End to end: an offline IQL run, then ``jaxrl train iql --init-from RUN`` continues it
    online; its first state holds the offline run's networks bitwise."""
    from jaxrl.agents import iql
    from jaxrl.policy import load_policy

    offline_run, online_run = tmp_path / "offline", tmp_path / "online"
    runner.run("iql", "Pendulum-v1", iql.Config(total_gradient_steps=4, log_frequency=4,
                                                **OFFLINE_TINY),
               dataset=pendulum_demo_file, out=offline_run, progress=False)
    env, env_params = envs.make("Pendulum-v1")
    config = iql.Config(init_from=str(offline_run), total_timesteps=5, log_frequency=4,
                        buffer_size=8, **OFFLINE_TINY)
    agent = iql.make_agent(config, env, env_params, datasets.load(pendulum_demo_file))
    state = jax.jit(agent.init)(jax.random.key(0))
    saved = load_policy(str(offline_run)).params.learner
    assert leaves_equal(state.params, saved.params)
    assert leaves_equal(state.target_params, saved.target_critic)
    # No --dataset: the offline run's own dataset is used.
    assert main(["train", "iql", "--env", "Pendulum-v1", "--init-from", str(offline_run),
                 "--hidden-sizes", "8", "--batch-size", "16",
                 "--eval-episodes", "1", "--total-timesteps", "9", "--log-frequency", "4",
                 "--buffer-size", "16", "--out", str(online_run), "--no-progress"]) == 0
    assert load_policy(str(online_run)).algo == "iql"
