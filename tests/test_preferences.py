"""The preferences family: token tasks, the sequence model, the BT / DPO / IPO / KL losses
against hand-worked values, preference files and the family's bad-input errors; the family's
learning test (DPO beats its reference under the hidden reward). pref_rl's learning run (SAC on
a reward model swings Pendulum up) is a benchmark: ``benchmarks/pref_rl.py``."""

from __future__ import annotations

import dataclasses
import itertools
import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from preference_inputs import TINY_MODEL, demonstrations, tiny_pairs, tiny_policy

from jaxrl import cli, envs
from jaxrl.agents import dpo, pref_rl, reward_model, rlhf
from jaxrl.envs.spaces import Box
from jaxrl.envs.tokens import EOS, PAD, demonstrator, sequence_reward
from jaxrl.losses.preferences import (
    bradley_terry_loss,
    dpo_loss,
    ipo_loss,
    kl_penalty,
    sequence_log_prob,
)
from jaxrl.models.sequence import SequenceModel, sample, token_log_probs
from jaxrl.replay import Sample, buffer_for
from jaxrl.rollout import Transition
from jaxrl.training import off_policy
from jaxrl.training import preferences as family
from jaxrl.training.agent import train_from_agent

pytestmark = pytest.mark.xdist_group("preferences")

LOG_SIGMOID_1 = 0.31326168751822286  # -log σ(1)


@pytest.fixture(scope="module")
def task():
    return envs.make("Tokens-sort-v0")


@pytest.fixture(scope="module")
def policy(task):
    return tiny_policy(task[1])


# ---------------------------------------------------------------------------------------- losses

def test_bradley_terry_loss_hand_values():
    # margin 1: -log σ(1); smoothed with ε = 0.1: 0.9 (-log σ(1)) + 0.1 (-log σ(-1)) and
    # -log σ(-1) = 1 + (-log σ(1)).
    np.testing.assert_allclose(bradley_terry_loss(jnp.array([1.0]), jnp.array([0.0])),
                               LOG_SIGMOID_1, rtol=1e-6)
    np.testing.assert_allclose(
        bradley_terry_loss(jnp.array([3.0]), jnp.array([2.0]), label_smoothing=0.1),
        0.9 * LOG_SIGMOID_1 + 0.1 * (1.0 + LOG_SIGMOID_1), rtol=1e-6)


def test_dpo_and_ipo_hand_values():
    # h = (log π(y_w) - log π_ref(y_w)) - (log π(y_l) - log π_ref(y_l)) = (-1 + 2) - (-3 + 2) = 2
    pair = (jnp.array([-1.0]), jnp.array([-3.0]), jnp.array([-2.0]), jnp.array([-2.0]))
    np.testing.assert_allclose(dpo_loss(*pair, beta=0.5), LOG_SIGMOID_1, rtol=1e-6)  # σ(βh)=σ(1)
    np.testing.assert_allclose(ipo_loss(*pair, tau=0.25), 0.0, atol=1e-7)  # target 1/(2τ) = 2
    np.testing.assert_allclose(ipo_loss(*pair, tau=0.5), 1.0, rtol=1e-6)  # (2 - 1)²


def test_dpo_is_log_2_when_the_policy_is_the_reference():
    chosen, rejected = jnp.array([-4.0, -1.5, -7.0]), jnp.array([-2.0, -9.0, -0.5])
    for smoothing in (0.0, 0.3):
        np.testing.assert_allclose(dpo_loss(chosen, rejected, chosen, rejected, 0.7, smoothing),
                                   np.log(2.0), rtol=1e-6)


def test_padding_never_changes_a_sequence_log_prob_or_loss():
    log_probs = jnp.array([[-1.0, -2.0, 99.0, -50.0]])
    mask = jnp.array([[1, 1, 0, 0]])
    np.testing.assert_allclose(sequence_log_prob(log_probs, mask), -3.0)
    np.testing.assert_allclose(sequence_log_prob(log_probs[:, :2], mask[:, :2]), -3.0)


def test_model_losses_do_not_depend_on_the_padding_of_the_batch(task, policy):
    # A short pair scored alone, then batched beside a longer pair: identical log-probs.
    _, env_params = task
    pairs = tiny_pairs(env_params)
    short = np.argmin((pairs.chosen != PAD).sum(1))
    log_probs = jax.jit(family.pair_log_probs, static_argnums=0)
    alone = log_probs(policy.model, policy.params, pairs.chosen[short:short + 1],
                      pairs.rejected[short:short + 1])
    batched = log_probs(policy.model, policy.params, pairs.chosen, pairs.rejected)
    np.testing.assert_allclose(alone[0][0], batched[0][short], rtol=1e-5)
    np.testing.assert_allclose(alone[1][0], batched[1][short], rtol=1e-5)


def test_dpo_gradient_is_zero_when_chosen_equals_rejected(task):
    # A position-wise policy (logits [L, V] are the parameters): a pair with y_w = y_l has
    # h = 0 for every θ, so the loss is flat in θ.
    _, env_params = task
    tokens = jnp.asarray(tiny_pairs(env_params).chosen[:2])
    reference = jnp.asarray(np.random.default_rng(1).normal(size=(16, 16)), jnp.float32)

    def log_probs(logits):
        token = token_log_probs(jnp.broadcast_to(logits, (2, 16, 16)), tokens)
        return sequence_log_prob(token, tokens != PAD)

    def loss(logits):
        return dpo_loss(log_probs(logits), log_probs(logits), log_probs(reference),
                        log_probs(reference), beta=0.5)

    params = jnp.asarray(np.random.default_rng(2).normal(size=(16, 16)), jnp.float32)
    np.testing.assert_allclose(loss(params), np.log(2.0), rtol=1e-6)
    assert float(jnp.abs(jax.grad(loss)(params)).max()) == 0.0


def test_per_token_kl_estimators_match_the_exact_sequence_kl():
    # Two tabular autoregressive policies over 3 tokens, sequences of 2: enumerate all 9.
    rng = np.random.default_rng(0)
    logits_p, logits_q = rng.normal(size=(2, 4, 3))  # row 0: first token; row 1 + a: after a
    log_p = jax.nn.log_softmax(jnp.asarray(logits_p))
    log_q = jax.nn.log_softmax(jnp.asarray(logits_q))
    sequences = np.array(list(itertools.product(range(3), repeat=2)))
    rows = np.stack([np.zeros(9, int), 1 + sequences[:, 0]], 1)
    token_p = log_p[rows, sequences]  # [9, 2]
    token_q = log_q[rows, sequences]
    weights = jnp.exp(token_p.sum(1))
    exact = jnp.sum(weights * (token_p.sum(1) - token_q.sum(1)))
    for estimator in ("k1", "k3"):
        estimate = jnp.sum(weights * kl_penalty(token_p, token_q, estimator).sum(1))
        np.testing.assert_allclose(estimate, exact, rtol=1e-5)
    assert float(kl_penalty(token_p, token_q, "k3").min()) >= 0.0


def test_calibration_error_hand_value():
    # Predictions 0.9 (right) and 0.3 (wrong side: confidence 0.7): bins 8 and 4, gaps
    # |0.9 - 1| and |0.7 - 0|, ECE = (0.1 + 0.7) / 2.
    np.testing.assert_allclose(reward_model.calibration_error(jnp.array([0.9, 0.3])), 0.4,
                               rtol=1e-5)


# ------------------------------------------------------------------------------ tasks and model

def test_hidden_rewards_hand_values():
    np.testing.assert_allclose(sequence_reward("sort", jnp.array([1, 2, 3, EOS])), 2 / 3)
    np.testing.assert_allclose(sequence_reward("sort", jnp.array([3, 2, EOS, PAD])), 0.0)
    np.testing.assert_allclose(sequence_reward("count", jnp.array([3, 7, 3, 7])), 1.0)
    np.testing.assert_allclose(sequence_reward("count", jnp.array([3, 7, EOS, 7])), 0.5)
    np.testing.assert_allclose(sequence_reward("sum", jnp.array([7, 7, EOS, PAD])), 1 / 3)


def test_a_token_episode_pays_only_at_its_end_and_terminates(task):
    env, env_params = task
    obs, state = env.reset(jax.random.key(0), env_params)
    step = jax.jit(lambda state, token: env.step(jax.random.key(0), state, token, env_params))
    rewards, ended = [], []
    for token in (1, 2, 3, EOS):
        obs, state, reward, terminated, truncated, info = step(state, jnp.int32(token))
        rewards.append(float(reward))
        ended.append(bool(terminated))
        assert not truncated
    np.testing.assert_allclose(rewards, [0, 0, 0, 2 / 15], rtol=1e-6)
    assert ended == [False, False, False, True]
    np.testing.assert_array_equal(info["final_obs"][:5], [1, 2, 3, EOS, PAD])
    np.testing.assert_array_equal(obs, np.full(16, PAD))  # auto-reset


def test_demonstrators_solve_their_tasks():
    for task_name, expected in (("sort", 14 / 15), ("count", 1.0), ("sum", 1.0)):
        env, env_params = envs.make(f"Tokens-{task_name}-v0")
        expert = demonstrator(task_name)

        def episode_return(key, env=env, env_params=env_params, expert=expert):
            def step(carry, _):
                obs, state, total, ended = carry
                obs, state, reward, terminated, _, _ = env.step(key, state, expert(obs[None])[0],
                                                                env_params)
                return (obs, state, total + jnp.where(ended, 0.0, reward),
                        ended | terminated), None

            obs, state = env.reset(key, env_params)
            start = (obs, state, jnp.zeros(()), jnp.zeros((), bool))
            return jax.lax.scan(step, start, None, env_params.max_length)[0][2]

        np.testing.assert_allclose(jax.jit(episode_return)(jax.random.key(0)), expected,
                                   rtol=1e-6)


def test_sampling_is_deterministic_and_matches_teacher_forcing(policy):
    @jax.jit
    def run(key):
        tokens, log_probs = sample(policy.model, policy.params, key, 8)
        forced = token_log_probs(policy.model.apply(policy.params, tokens, method="logits"),
                                 tokens)
        # Acting on a prefix (the env's observation) gives the teacher-forced next-token law.
        prefix = jnp.where(jnp.arange(tokens.shape[1]) < 1, tokens, PAD).astype(jnp.float32)
        acting = policy.model.apply(policy.params, prefix, method="policy").log_prob(
            jnp.maximum(tokens[:, 1], 0))
        return tokens, log_probs, forced, acting

    tokens, log_probs, forced, acting = run(jax.random.key(1))
    again = run(jax.random.key(1))[0]
    other = run(jax.random.key(2))[0]
    np.testing.assert_array_equal(tokens, again)
    assert not np.array_equal(tokens, other)
    np.testing.assert_allclose(log_probs, forced, atol=1e-5)
    written = tokens[:, 1] != PAD
    assert written.any()
    np.testing.assert_allclose(acting[written], forced[written, 1], atol=1e-5)


def test_gru_sequence_model_runs(task):
    _, env_params = task
    model = SequenceModel(env_params.vocab_size, env_params.max_length, width=8, kind="gru")
    tokens = tiny_pairs(env_params).chosen[:2]
    logits, scores = jax.eval_shape(
        lambda: model.apply(model.init(jax.random.key(0), tokens), tokens, method="heads"))
    assert logits.shape == (2, 16, 16) and scores.shape == (2, 17)


# ------------------------------------------------------------------- files and bad input

def test_preference_file_round_trip_and_validation(task, tmp_path):
    _, env_params = task
    pairs = tiny_pairs(env_params)
    path = family.save_preferences(tmp_path / "pairs.npz", pairs)
    loaded = family.load_preferences(path, env_params)
    np.testing.assert_array_equal(loaded.chosen, pairs.chosen)
    assert loaded.metadata == pairs.metadata

    np.savez(tmp_path / "missing.npz", chosen=pairs.chosen)
    with pytest.raises(ValueError, match="lacks rejected, metadata"):
        family.load_preferences(tmp_path / "missing.npz")
    with pytest.raises(ValueError, match="vocabulary of 16 tokens"):
        family.validate_preferences(pairs._replace(chosen=pairs.chosen + 20), env_params)
    longer = np.full((8, 20), PAD, np.int32)
    with pytest.raises(ValueError, match="longer than the task's context"):
        family.validate_preferences(pairs._replace(chosen=longer, rejected=longer), env_params)


def test_bad_inputs_give_one_clear_error(task, policy):
    env, env_params = task
    with pytest.raises(ValueError, match="pass --reference RUN_DIR"):
        rlhf.make_agent(rlhf.Config(), env, env_params)
    with pytest.raises(ValueError, match="pass --preferences"):
        dpo.make_agent(dpo.Config(), env, env_params, reference=policy)
    other_vocab = family.SequencePolicy(SequenceModel(20, 16, **TINY_MODEL), policy.params)
    with pytest.raises(ValueError, match="vocabulary of 20 tokens but the task has 16"):
        dpo.make_agent(dpo.Config(), env, env_params, reference=other_vocab)
    short = family.SequencePolicy(SequenceModel(16, 8, **TINY_MODEL), policy.params)
    with pytest.raises(ValueError, match="longer than the reference's context"):
        dpo.make_agent(dpo.Config(), env, env_params, reference=short)
    cartpole, cartpole_params = envs.make("CartPole-v1")
    with pytest.raises(ValueError, match="not a token task"):
        dpo.make_agent(dpo.Config(), cartpole, cartpole_params, reference=policy)


def _sft_run_dir(out, env, env_params):
    """An sft run directory written without training: ``config.json``, its demonstrations and a
    checkpoint of the initial state (all that ``--reference RUN_DIR`` reads). On the way, a
    dataset of another vocabulary is refused."""
    from jaxrl import checkpoint, datasets
    from jaxrl.agents import sft
    from jaxrl.training.config import config_to_dict

    demos = demonstrations(env, env_params, episodes=1)
    config = sft.Config(**TINY_MODEL)
    other_vocab = dataclasses.replace(demos, actions=demos.actions + 20)
    with pytest.raises(ValueError, match=r"'actions': values must lie in \[0, 16\)"):
        sft.make_agent(config, env, env_params, dataset=other_vocab)
    data = datasets.save(out / "demos.npz", demos)
    agent = sft.make_agent(config, env, env_params, dataset=datasets.load(data, env, env_params))
    states = jax.vmap(agent.init)(jax.random.split(jax.random.key(0), 1))
    checkpoint.save(out / "sft" / "checkpoints" / "update_0000000000", states, {"updates": 0})
    (out / "sft" / "config.json").write_text(json.dumps({
        "algo": "sft", "env": env.env_id, "env_kwargs": {}, "seeds": [0],
        "config": config_to_dict(config), "dataset": str(data)}))
    return out / "sft"


@pytest.mark.slow
def test_preferences_cli_writes_a_file_the_loaders_read(task, tmp_path, capsys):
    # `jaxrl preferences` in process on a tiny sft reference (no training): the file it writes
    # loads and validates against the task, the labels follow the hidden reward (noise 0: the
    # chosen sequence never scores less), and bad input is one `jaxrl: error:` line.
    env, env_params = task
    reference = _sft_run_dir(tmp_path, env, env_params)
    out = tmp_path / "pairs.npz"
    assert cli.main(["preferences", "--reference", str(reference), "--pairs", "16", "--noise",
                     "0", "--out", str(out)]) == 0
    assert f"wrote {out}: 16 pairs from Tokens-sort-v0" in capsys.readouterr().out
    pairs = family.load_preferences(out, env_params)
    assert pairs.chosen.shape == pairs.rejected.shape == (16, env_params.max_length)
    assert pairs.metadata["env"] == "Tokens-sort-v0" and pairs.metadata["noise"] == 0.0
    reward = family.hidden_reward_fn(env)
    assert np.all(np.asarray(reward(pairs.chosen)) >= np.asarray(reward(pairs.rejected)))

    for bad, message in (({"--pairs": "0"}, "--pairs must be >= 1"),
                         ({"--noise": "-1"}, "--noise >= 0"),
                         ({"--pairs": "many"}, "--pairs"),
                         ({"--reference": str(tmp_path / "nowhere")}, "holds no run")):
        options = {"--reference": str(reference), "--out": str(tmp_path / "bad.npz"), **bad}
        assert cli.main(["preferences", *itertools.chain(*options.items())]) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and err[0].startswith("jaxrl: error:") and message in err[0], err
    assert not (tmp_path / "bad.npz").exists()


# ------------------------------------------------------------------------------------- learning

@pytest.mark.slow
def test_dpo_beats_its_reference_under_the_hidden_reward(task):
    # Reference: an untrained model (near-uniform tokens). 512 pairs of its samples, labelled by
    # the hidden sortedness reward; DPO must win most head-to-head comparisons against it.
    env, env_params = task
    reference = tiny_policy(env_params)
    # Win rates logged on this seed: 0.787 after 100 steps, 0.785 after 200. Plain jax.jit:
    # the compile outweighs the run (optimised_jit doubled this test's CPU for the same numbers).
    chosen, rejected, _ = jax.jit(lambda key: family.make_preferences(
        key, reference, env, 512, 0.02))(jax.random.key(0))
    pairs = family.Preferences(np.asarray(chosen), np.asarray(rejected), {})
    config = dpo.Config(total_gradient_steps=200, log_frequency=100, batch_size=64,
                        eval_samples=256, learning_rate=3e-3, beta=0.1)
    agent = dpo.make_agent(config, env, env_params, reference=reference, preferences=pairs)
    _, metrics = jax.jit(train_from_agent(agent))(jax.random.key(1))
    assert float(metrics["win_rate"][-1]) > 0.65, metrics


# ------------------------------------------------------------------------------- rlhf's reward

def test_rlhf_whitens_the_score_and_adapts_beta(task, policy):
    # One rollout of 4 × 2 finished one-token sequences whose policy log-probs exceed the
    # reference's by 2 nats: each reward is -β · 2 plus the whitened score, and with KL = 2 above
    # the target of 1 the adaptive β rises by the clipped 20 % × tokens / horizon.
    env, env_params = task
    scorer = tiny_policy(env_params, 1)
    config = rlhf.Config(score_samples=16, kl_coef=0.1, adaptive_kl=True, target_kl=1.0,
                         kl_horizon=80.0)
    transform = rlhf.kl_reward_transform(config, policy, scorer)
    steps, envs_, length = 4, 2, env_params.max_length

    @jax.jit  # one compile for the whole check
    def run(key):
        state = transform.init(key, None, None)
        tokens, _ = sample(policy.model, policy.params, key, 16)
        scores = scorer.model.apply(scorer.params, tokens, method="score")
        actions = jnp.arange(1, 1 + steps * envs_).reshape(steps, envs_) % env_params.vocab_size
        obs = jnp.full((steps, envs_, length), PAD, jnp.float32)
        next_obs = obs.at[..., 0].set(actions)
        reference_log_probs = policy.model.apply(policy.params, obs.reshape(-1, length),
                                                 method="policy").log_prob(actions.reshape(-1))
        done = jnp.ones((steps, envs_), bool)
        traj = Transition(obs=obs, action=actions, reward=jnp.zeros((steps, envs_)),
                          terminated=done, truncated=~done, next_obs=next_obs, info={},
                          extras={"log_prob": reference_log_probs.reshape(steps, envs_) + 2.0})
        end_scores = scorer.model.apply(scorer.params, next_obs.reshape(-1, length),
                                        method="score").reshape(steps, envs_)
        return state, scores, end_scores, transform.apply(state, traj, key)

    state, scores, end_scores, (rewards, new_state, metrics) = run(jax.random.key(0))
    np.testing.assert_allclose(state.score_mean, scores.mean(), rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(state.score_std, scores.std(), rtol=1e-4)
    expected = -0.1 * 2.0 + (end_scores - state.score_mean) / state.score_std
    np.testing.assert_allclose(rewards, expected, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(metrics["kl"], 2.0, rtol=1e-5)
    np.testing.assert_allclose(new_state.kl_coef, 0.1 * (1 + 0.2 * steps * envs_ / 80.0),
                               rtol=1e-5)


# ------------------------------------------------------------------------------------- pref_rl

def test_pref_rl_teacher_answers_and_relabelling():
    # A buffer whose reward at row i is i (obs[0] = i too): with temperature 0 the teacher prefers
    # the later segment; queries stop at max_queries; the target is reward_scale · r̂ (r̂ the
    # ensemble mean).
    env, env_params = envs.make("Pendulum-v1")
    config = pref_rl.Config(total_timesteps=64, buffer_size=32, learning_starts=16,
                            log_frequency=16, segment_length=4, max_queries=6, query_interval=1,
                            reward_batch_size=4, reward_hidden_sizes=(8,), ensemble_size=2,
                            teacher_temperature=0.0, reward_scale=3.0)
    parts = off_policy.setup(env, env_params, "pref_rl", Box)
    extensions = pref_rl.preference_extensions(config, parts)
    rows = jnp.arange(32, dtype=jnp.float32)[:, None]
    obs = jnp.concatenate([rows, jnp.zeros((32, 2))], -1)[:, None]
    buffer = buffer_for(32, 1, parts.observation_space, parts.action_space, jnp.float32).extend(
        obs, jnp.zeros((32, 1, 1)), rows, jnp.zeros((32, 1), bool), jnp.zeros((32, 1), bool),
        obs)
    sample_ = Sample(obs=obs[:5, 0], action=jnp.full((5, 1), 0.5), reward=jnp.zeros(5),
                     discount=jnp.ones(5), next_obs=obs[:5, 0])

    @jax.jit  # one compile for the whole check
    def run(key):
        state = off_policy.TrainState(None, None, None, buffer, None, None, None, None, None,
                                      None, extension_state=extensions.init(key, None, parts))
        state, metrics = jax.lax.scan(lambda state, k: extensions.phase(k, state), state,
                                      jax.random.split(key, 8))
        members = jax.vmap(pref_rl.RewardModel((8,)).apply, in_axes=(0, None, None))(
            state.extension_state.params, sample_.obs, sample_.action)
        return (state.extension_state, metrics["queries"][-1],
                extensions.target(None, state, sample_).reward, members.mean(0))

    ext, queries, relabelled, mean_reward = run(jax.random.key(0))
    assert int(ext.queries) == 6 and float(queries) == 6
    first_return = ext.first[..., 0].sum(-1)
    second_return = ext.second[..., 0].sum(-1)
    differ = np.asarray(first_return != second_return)  # ties are a coin
    np.testing.assert_array_equal(np.asarray(ext.label)[differ],
                                  np.asarray(second_return > first_return)[differ])
    np.testing.assert_allclose(relabelled, 3.0 * mean_reward, rtol=1e-5)


def test_pref_rl_bad_config():
    env, env_params = envs.make("Pendulum-v1")
    with pytest.raises(ValueError, match="segment_length = 50 is longer"):
        pref_rl.make_agent(pref_rl.Config(segment_length=50, learning_starts=40), env,
                           env_params)
    with pytest.raises(ValueError, match="set n_step = 1"):
        pref_rl.make_agent(pref_rl.Config(n_step=3), env, env_params)
