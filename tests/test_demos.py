"""Learning from demonstrations (issue 33): pre-train & finetune, the critic warm-up and the
hybrid objective of the on-policy agents (``jaxrl.training.pretrain``, ``training.on_policy``).

Demonstrations here are CartPole states labelled by the scripted expert (``envs.experts``):
behaviour cloning needs pairs, not trajectories, so the fixture writes them without a rollout.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from helpers import optimised_jit

from jaxrl import datasets, envs, ope, runner
from jaxrl.agents import bc, is_pg, ppo
from jaxrl.cli import main
from jaxrl.envs.experts import cartpole_expert
from jaxrl.training.on_policy import split_actor_critic

pytestmark = pytest.mark.xdist_group("demos")

TINY = {"num_envs": 2, "num_steps": 8, "total_timesteps": 32, "hidden_sizes": (8,),
        "update_epochs": 1}


def expert_pairs(size: int, seed: int = 0, env_id: str | None = "CartPole-v1") -> datasets.Dataset:
    """``size`` CartPole-like states (uniform in a box around upright) and the expert's action."""
    rng = np.random.default_rng(seed)
    obs = rng.uniform([-1.0, -1.0, -0.2, -1.0], [1.0, 1.0, 0.2, 1.0], (size, 4)).astype(np.float32)
    actions = np.asarray(cartpole_expert(jnp.asarray(obs)), np.int32)
    return datasets.Dataset(
        observations=obs, actions=actions, rewards=np.ones(size, np.float32),
        next_observations=obs, terminated=np.zeros(size, bool),
        truncated=np.arange(size) == size - 1, log_probs=np.zeros(size, np.float32),
        metadata={"policy": "expert", **({"env": env_id} if env_id else {})})


@pytest.fixture(scope="module")
def demo_file(tmp_path_factory):
    return str(datasets.save(tmp_path_factory.mktemp("demos") / "cartpole.npz",
                             expert_pairs(512)))


@pytest.fixture(scope="module")
def bc_run(tmp_path_factory, demo_file):
    """A tiny bc run on the demonstrations (raw observations, so the copy is bitwise)."""
    out = tmp_path_factory.mktemp("bc") / "run"
    config = bc.Config(total_gradient_steps=20, log_frequency=20, batch_size=32, eval_episodes=1,
                       hidden_sizes=(8,), activation="tanh", normalize_obs=False)
    runner.run("bc", "CartPole-v1", config, dataset=demo_file, out=out, progress=False)
    return str(out)


@pytest.fixture(scope="module")
def cartpole():
    return envs.make("CartPole-v1")


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


def test_zero_demo_coef_is_plain_ppo_bitwise(demo_file, cartpole):
    env, env_params = cartpole
    key = jax.random.key(0)
    plain = ppo.make_train(ppo.Config(**TINY), env, env_params)
    hybrid = ppo.make_train(ppo.Config(**TINY, demo_dataset=demo_file, demo_coef=0.0), env,
                            env_params)
    # One compilation for both runs (cheaper than two).
    (plain_state, plain_metrics), (state, metrics) = jax.jit(
        lambda key: (plain(key), hybrid(key)))(key)
    jax.tree.map(np.testing.assert_array_equal, state.params, plain_state.params)
    for name, values in plain_metrics.items():
        np.testing.assert_array_equal(metrics[name], values, err_msg=name)
    assert np.isfinite(metrics["demo_nll"]).all()


def test_pretraining_clones_the_demonstrations(demo_file, cartpole):
    env, env_params = cartpole
    demos = datasets.load(demo_file)
    config = ppo.Config(**TINY, pretrain_dataset=demo_file, pretrain_steps=200,
                        pretrain_batch_size=64, pretrain_learning_rate=1e-2)
    agent = ppo.make_agent(config, env, env_params)
    greedy = jax.jit(lambda key: agent.act(agent.init(key), jnp.asarray(demos.observations), key,
                                           True))(jax.random.key(1))
    assert np.mean(np.asarray(greedy) == demos.actions) > 0.9


@pytest.mark.parametrize("case", ["env", "network", "spaces", "missing"])
def test_bad_input_is_one_error_line(case, bc_run, demo_file, capsys, tmp_path):
    # A dataset that does not say its env: only its spaces can tell it does not fit.
    unlabelled = str(datasets.save(tmp_path / "pairs.npz", expert_pairs(8, env_id=None)))
    args = {"env": ["--env", "Acrobot-v1", "--init-from", bc_run, "--activation", "tanh",
                    "--hidden-sizes", "8"],
            "network": ["--env", "CartPole-v1", "--init-from", bc_run],
            "spaces": ["--env", "Pendulum-v1", "--demo-dataset", unlabelled],
            "missing": ["--env", "CartPole-v1", "--pretrain-dataset", str(tmp_path / "no.npz")],
            }[case]
    assert main(["train", "ppo", *args, "--out", str(tmp_path / "run"), "--no-progress"]) != 0
    err = capsys.readouterr().err
    assert err.startswith("jaxrl: error:") and err.strip().count("\n") == 0, err
    assert {"env": "trained on 'CartPole-v1'", "network": "incompatible network",
            "spaces": "observation space", "missing": "no dataset file"}[case] in err
    assert not (tmp_path / "run").exists()



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

    pretrained, finetuned = optimised_jit(jax.vmap(pretrained_then_finetuned))(
        jax.random.split(jax.random.key(0), 2))
    assert (np.asarray(pretrained) >= 450).all(), pretrained
    assert (np.asarray(finetuned) >= np.asarray(pretrained)[:, None] - 50).all(), finetuned
