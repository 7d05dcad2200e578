"""Pre-train & finetune (issue 33) for NPG, TRPO (``on_policy.start_from_demonstrations``
through ``training.natural_gradient``) and soft Q (DQN's ``pretrain.q_start``).

Every test starts from one tiny bc run (module fixture) on CartPole states labelled by the
scripted expert (``envs.experts.cartpole_expert``); behaviour cloning needs pairs, not
trajectories, so the states are drawn uniformly around upright instead of rolled out.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from helpers import expert_pairs, leaves_equal, tiny_bc_run

from jaxrl import datasets, envs
from jaxrl.agents import npg, soft_q, trpo
from jaxrl.cli import main
from jaxrl.models import make_q_network
from jaxrl.models.imitation import ImitationPolicy

pytestmark = pytest.mark.xdist_group("pretrain_more")

# Two updates of 2 envs × 8 steps; one value epoch, one minibatch, two CG iterations.
NATURAL = {"num_envs": 2, "num_steps": 8, "total_timesteps": 32, "hidden_sizes": (8,),
           "activation": "tanh", "value_epochs": 1, "num_minibatches": 1, "cg_iters": 2}
# Two updates of 8 gradient steps after 16 random env steps.
REPLAY = {"total_timesteps": 32, "buffer_size": 16, "batch_size": 8, "learning_starts": 16,
          "train_frequency": 1, "updates_per_step": 1, "log_frequency": 8, "eval_episodes": 0,
          "hidden_sizes": (8,), "activation": "tanh"}
AGENTS = {"npg": npg, "trpo": trpo}


@pytest.fixture(scope="module")
def demo_file(tmp_path_factory):
    """512 CartPole-like states and the scripted expert's action on each."""
    return str(datasets.save(tmp_path_factory.mktemp("demos") / "cartpole.npz",
                             expert_pairs(512)))


@pytest.fixture(scope="module")
def bc_run(tmp_path_factory, demo_file):
    return tiny_bc_run(tmp_path_factory.mktemp("bc") / "run", demo_file)


@pytest.fixture(scope="module")
def cartpole():
    return envs.make("CartPole-v1")


@pytest.fixture(scope="module")
def bc_params(bc_run):
    from jaxrl.policy import load_policy

    return load_policy(bc_run).params.learner.params


@pytest.mark.parametrize("algo", ["npg", "trpo"])
def test_init_from_copies_the_bc_actor_and_the_warm_up_fits_the_critic_alone(
        algo, bc_run, bc_params, cartpole):
    """The actor right after ``init`` is BC's MLP and logits layer, bitwise, with or without
    a critic warm-up of 2 rollouts (2 × 16 env steps, counted in ``initial_steps`` and in the
    first update's ``step``); the warm-up moves the critic from its fresh initialisation."""
    env, env_params = cartpole
    module = AGENTS[algo]
    copied, warmed = (module.make_agent(module.Config(**NATURAL, init_from=bc_run,
                                                      critic_warmup=warmup), env, env_params)
                      for warmup in (0, 2))
    assert (copied.initial_steps, warmed.initial_steps) == (0, 2 * 16)

    def run(key):
        state = warmed.init(key)
        return copied.init(key), state, warmed.update(state)[1]["step"]

    plain, state, step = jax.jit(run)(jax.random.key(3))
    cloned = bc_params["params"]
    expected = {"actor_torso": cloned["MLP_0"], "policy_head": {"Dense_0": cloned["Dense_0"]}}
    jax.tree.map(np.testing.assert_array_equal, plain.actor_params["params"], expected)
    jax.tree.map(np.testing.assert_array_equal, state.actor_params["params"], expected)
    assert not leaves_equal(state.critic_params, plain.critic_params)
    assert int(step) == 2 * 16 + 16


def test_npg_pretraining_raises_the_demonstrations_likelihood(demo_file, cartpole):
    """``pretrain_dataset``: 200 Adam steps of behaviour cloning inside ``init`` raise the mean
    log-likelihood of the demonstrated actions from a fresh policy's (about log ½) to above
    log ¾, and the greedy action then agrees with the expert on > 90 % of the states."""
    env, env_params = cartpole
    data = datasets.load(demo_file)
    obs, actions = jnp.asarray(data.observations), jnp.asarray(data.actions)
    fresh, pretrained = (npg.make_agent(npg.Config(**NATURAL, **fields), env, env_params)
                         for fields in ({}, {"pretrain_dataset": demo_file, "pretrain_steps": 200,
                                             "pretrain_batch_size": 64,
                                             "pretrain_learning_rate": 1e-2}))

    def likelihoods(key):
        states = fresh.init(key), pretrained.init(key)
        return ([pretrained.behaviour(state, obs).log_prob(actions).mean() for state in states],
                pretrained.act(states[1], obs, key, True))

    (before, after), greedy = jax.jit(likelihoods)(jax.random.key(1))
    assert float(before) < np.log(0.6) and float(after) > np.log(0.75), (before, after)
    assert np.mean(np.asarray(greedy) == data.actions) > 0.9


def test_soft_q_init_from_starts_q_at_the_bc_logits(bc_run, bc_params, demo_file, cartpole):
    """Soft Q ``init_from`` a bc run: ``Q(s, ·)`` equals BC's logits on the demonstrated
    states (to float rounding: a jitted and an eager program) and its target equals ``Q``
    (DQN's ``pretrain.q_start``)."""
    env, env_params = cartpole
    config = soft_q.Config(**REPLAY, init_from=bc_run)
    agent = soft_q.make_agent(config, env, env_params)
    network = make_q_network(env.observation_space(env_params), env.action_space(env_params),
                             config.hidden_sizes, config.activation)
    obs = jnp.asarray(datasets.load(demo_file).observations)
    state, q_values = jax.jit(lambda key: (s := agent.init(key), network.apply(s.params["q"],
                                                                               obs)))(
        jax.random.key(0))
    logits = ImitationPolicy(env.action_space(env_params), (8,), "tanh").apply(bc_params, obs)
    np.testing.assert_allclose(q_values, logits, rtol=1e-6, atol=1e-6)
    assert leaves_equal(state.params["q"], state.target_params["q"])


def test_soft_q_pretraining_and_critic_warmup(demo_file, cartpole):
    """``pretrain_dataset``: soft Q's greedy action right after ``init`` agrees with the expert
    on > 90 % of the states. ``critic_warmup = 9`` of the 16 gradient steps: after the first
    update (8 steps) the target network is still bitwise the pretrained Q while Q has moved."""
    env, env_params = cartpole
    data = datasets.load(demo_file)
    obs = jnp.asarray(data.observations)
    agent = soft_q.make_agent(soft_q.Config(
        **REPLAY, pretrain_dataset=demo_file, pretrain_steps=200, pretrain_batch_size=64,
        pretrain_learning_rate=1e-2, critic_warmup=9), env, env_params)

    def run(key):
        initial = agent.init(key)
        first, metrics = agent.update(initial)
        return initial, agent.act(initial, obs, key, True), first, metrics

    initial, greedy, first, metrics = jax.jit(run)(jax.random.key(0))
    assert np.mean(np.asarray(greedy) == data.actions) > 0.9
    assert int(first.update_count) == 8
    assert leaves_equal(first.target_params["q"], initial.params["q"])
    assert not leaves_equal(first.params["q"], initial.params["q"])
    assert np.isfinite(metrics["loss"]).all()


@pytest.mark.parametrize("algo, args, message", [
    ("npg", ["--env", "Pendulum-v1"], "pass --pretrain-dataset FILE"),
    ("npg", ["--env", "CartPole-v1", "--hidden-sizes", "16"], "incompatible network"),
    ("trpo", ["--env", "CartPole-v1", "--activation", "relu"], "incompatible network"),
    ("soft_q", ["--env", "CartPole-v1", "--hidden-sizes", "8", "--activation", "tanh",
                "--dueling"], "drop --dueling"),
    ("soft_q", ["--env", "CartPole-v1"], "incompatible network"),
])
def test_bad_init_from_is_one_error_line(algo, args, message, bc_run, capsys, tmp_path):
    """Box actions, another network (widths or activation), a dueling head: one line each,
    before anything is trained."""
    code = main(["train", algo, *args, "--init-from", bc_run, "--out", str(tmp_path / "run"),
                 "--no-progress"])
    err = capsys.readouterr().err
    assert code != 0
    assert err.startswith("jaxrl: error:") and err.strip().count("\n") == 0, err
    assert message in err, err
    assert not (tmp_path / "run").exists()
