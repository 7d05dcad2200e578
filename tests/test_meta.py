"""Gradient-based meta-RL: DiCE oracles, MAML's meta-gradient against finite differences and the
exact bandit meta-gradient, bad input, distillation and Divide-and-Conquer pieces worked by hand,
and the family's learning test (MAML on PointNav-v0; distillation's and DnC's learning runs are
benchmarks: ``benchmarks/meta_learning.py --experiment distill`` / ``dnc``)."""

import distrax
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import struct
from helpers import leaves_equal

from jaxrl import envs
from jaxrl.agents import distill, dnc, maml
from jaxrl.losses import dice_objective, leave_one_out_mean, magic_box
from jaxrl.losses.meta import distillation_kl, kl_augmented_rewards
from jaxrl.training import meta

pytestmark = pytest.mark.xdist_group("meta")


# --- DiCE oracles ---------------------------------------------------------------------------

def test_dice_value_and_first_derivative_by_hand():
    # Two steps, log π_t = θ_t (a stand-in), rewards 1, 2, baselines 0.5, 0.25.
    # Value: Σ r = 3. ∂/∂θ_0 = (r_0 + r_1) - b_0 = 2.5; ∂/∂θ_1 = r_1 - b_1 = 1.75.
    theta = jnp.array([-0.3, -1.2])
    rewards, baselines = jnp.array([1.0, 2.0]), jnp.array([0.5, 0.25])
    value, grad = jax.value_and_grad(lambda t: dice_objective(t, rewards, baselines))(theta)
    np.testing.assert_allclose(value, 3.0, rtol=1e-6)
    np.testing.assert_allclose(grad, [2.5, 1.75], rtol=1e-6)
    np.testing.assert_allclose(magic_box(theta), 1.0)
    np.testing.assert_allclose(leave_one_out_mean(jnp.array([1.0, 2.0, 6.0])), [4.0, 3.5, 1.5])


# --- the quadratic toy: meta-gradient = finite differences ----------------------------------

def _quadratic(matrix, centre):
    def objective(params, batch):
        delta = params - centre
        return -0.5 * delta @ matrix @ delta

    return objective


def test_meta_gradient_by_hand_1d():
    # Inner J(θ) = -(θ - 1)², α = 0.25: θ' = θ - 0.5 (θ - 1). Outer -(θ' - 3)² at θ = 1: θ' = 1,
    # ∇_θ' = 4, ∂θ'/∂θ = 0.5 → MAML 2, first-order MAML 4.
    inner, outer = _quadratic(jnp.eye(1) * 2, 1.0), _quadratic(jnp.eye(1) * 2, 3.0)
    def meta_objective(theta, first_order):
        return outer(meta.adapt(inner, theta, [None], 0.25, first_order), None)

    theta = jnp.ones((1,))
    np.testing.assert_allclose(jax.grad(meta_objective)(theta, False), [2.0], rtol=1e-6)
    np.testing.assert_allclose(jax.grad(meta_objective)(theta, True), [4.0], rtol=1e-6)


def test_meta_gradient_matches_finite_differences():
    rng = np.random.default_rng(0)
    a, b = rng.normal(size=(2, 3, 3))

    with jax.enable_x64(True):
        inner = _quadratic(jnp.asarray(a @ a.T / 3 + np.eye(3)), jnp.asarray([1.0, 0.0, 2.0]))
        outer = _quadratic(jnp.asarray(b @ b.T / 3 + np.eye(3)), jnp.asarray([0.0, 1.0, 3.0]))

        def meta_objective(theta):
            return outer(meta.adapt(inner, theta, [None, None], 0.1), None)  # two steps

        theta = jnp.asarray(rng.normal(size=3))
        eps = 1e-4
        finite = [(meta_objective(theta + eps * e) - meta_objective(theta - eps * e)) / (2 * eps)
                  for e in jnp.eye(3, dtype=jnp.float64)]
        np.testing.assert_allclose(jax.grad(meta_objective)(theta), finite, rtol=1e-6)


# --- a 2-armed bandit with a softmax policy: the exact meta-gradient -------------------------

MEANS = jnp.array([0.2, 0.9])  # deterministic arm rewards
THETA = jnp.array([0.4, -0.3])  # logits
ALPHA = 2.0


def _expected_return(theta):
    return jax.nn.softmax(theta) @ MEANS


def _pull_objective(plain: jax.Array, num_pulls: int):
    """``objective(θ, key)``: ``num_pulls`` pulls of ``softmax(θ)``, their mean DiCE (or, where
    ``plain``, the plain ``log π · sg(r)``) surrogate of the return."""
    def objective(theta, key):
        arms = jax.random.categorical(key, jax.lax.stop_gradient(theta), shape=(num_pulls,))
        log_probs = jax.nn.log_softmax(theta)[arms]
        rewards = MEANS[arms]
        dice = dice_objective(log_probs[None], rewards[None]).mean()
        return jnp.where(plain, (log_probs * rewards).mean(), dice)

    return objective


def test_dice_hessian_is_exact_by_enumeration():
    # E_a[∇² □(log π_a) r_a] = Σ_a π_a r_a (∇log π_a ∇log π_aᵀ + ∇² log π_a) = ∇²J exactly; the
    # plain surrogate's Σ_a π_a r_a ∇² log π_a misses the sampling term.
    @jax.jit
    def hessians():
        probs = jax.nn.softmax(THETA)

        def hessian_of(surrogate, arm):
            return jax.hessian(lambda t: surrogate(jax.nn.log_softmax(t)[arm]) * MEANS[arm])(
                THETA)

        dice = sum(probs[a] * hessian_of(lambda lp: dice_objective(lp[None], jnp.ones(1)), a)
                   for a in range(2))
        plain = sum(probs[a] * hessian_of(lambda lp: lp, a) for a in range(2))
        return dice, plain, jax.hessian(_expected_return)(THETA)

    dice, plain, exact = hessians()
    np.testing.assert_allclose(dice, exact, atol=1e-6)
    assert np.abs(plain - exact).max() > 0.05


def test_bandit_meta_gradient_mean_matches_exact():
    # Exact MAML meta-gradient (course notes): (I + α ∇²J(θ)) ∇J(θ'), θ' = θ + α ∇J(θ). The
    # estimator: 400 inner pulls, one DiCE inner step, 400 outer pulls; its mean over 1000
    # repetitions agrees within 0.003 (standard error 6e-4; θ' estimated from 400 pulls adds a
    # bias of order α² / 400). The plain surrogate's mean (-0.107, 0.107 against ∓0.211) misses
    # α E[r ∇log π ∇log πᵀ] ∇J(θ').
    @jax.jit
    def exact_meta_gradient(theta):
        adapted = theta + ALPHA * jax.grad(_expected_return)(theta)
        return (jnp.eye(2) + ALPHA * jax.hessian(_expected_return)(theta)) @ jax.grad(
            _expected_return)(adapted)

    def estimate(key, plain):
        inner, outer = _pull_objective(plain, 400), _pull_objective(jnp.bool_(False), 400)
        inner_key, outer_key = jax.random.split(key)

        def meta_objective(theta):
            return outer(meta.adapt(inner, theta, [inner_key], ALPHA), outer_key)

        return jax.grad(meta_objective)(THETA)

    keys = jax.random.split(jax.random.key(0), 1000)
    flags = jnp.repeat(jnp.array([False, True]), len(keys))
    estimates = jax.jit(jax.vmap(estimate))(jnp.concatenate([keys, keys]), flags)
    dice, plain = estimates[:len(keys)].mean(0), estimates[len(keys):].mean(0)
    exact = exact_meta_gradient(THETA)
    np.testing.assert_allclose(dice, exact, atol=0.003)
    assert np.abs(plain - exact).max() > 0.05


# --- bad input ------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def point_nav():
    return envs.make("PointNav-v0")


def test_bad_input_is_one_clear_error(point_nav):
    env, params = point_nav
    with pytest.raises(ValueError, match="inner_steps must be >= 1"):
        maml.make_agent(maml.Config(inner_steps=0), env, params)
    with pytest.raises(ValueError, match="task params must share shapes"):
        maml.make_agent(maml.Config(), env, params,
                        tasks=[params, params.replace(goal=jnp.zeros(3))])
    with pytest.raises(ValueError, match="horizon = 200 exceeds"):
        maml.make_agent(maml.Config(horizon=200), env, params)
    other, other_params = envs.make("PointGoal-v0")
    with pytest.raises(ValueError, match="not a task family"):
        maml.make_agent(maml.Config(), other, other_params)
    # A non-differentiable inner learner (an integer parameter has no gradient).
    with pytest.raises(ValueError, match=r"inner learner must be differentiable.*\['steps'\]"):
        meta.adapt(lambda p, batch: p["w"].sum(), {"w": jnp.ones(2), "steps": jnp.array(3)},
                   [None], 0.1)


class _PendulumParams(struct.PyTreeNode):
    m: float = 1.0
    l: float = 1.0  # noqa: E741 (gymnax's name)
    g: float = 10.0


def test_pendulum_tasks_randomise_mass_and_length():
    tasks = jax.vmap(meta.TASK_SAMPLERS["Pendulum-v1"], in_axes=(0, None))(
        jax.random.split(jax.random.key(0), 64), _PendulumParams())
    for name in ("m", "l"):
        values = np.asarray(getattr(tasks, name))
        assert values.min() >= 0.5 and values.max() <= 1.5 and values.std() > 0.2
    np.testing.assert_allclose(tasks.g, 10.0)


def test_pendulum_starts_are_tasks_of_initial_angles():
    env, params = envs.make("PendulumStarts-v0", max_steps_in_episode=10)  # `--env` takes it
    assert isinstance(env, meta.PendulumStarts)

    @jax.jit
    def draw(key):
        tasks = jax.vmap(env.sample_task, in_axes=(0, None))(jax.random.split(key, 64), params)
        return tasks, env.reset(key, jax.tree.map(lambda x: x[0], tasks))[0]

    tasks, obs = draw(jax.random.key(0))
    angles = np.asarray(tasks.start_angle)
    assert angles.min() >= -np.pi and angles.max() <= np.pi and angles.std() > 1.0
    np.testing.assert_allclose(tasks.physics.m, 1.0)  # Pendulum's own dynamics
    np.testing.assert_allclose(obs[:2], [np.cos(angles[0]), np.sin(angles[0])], atol=1e-6)
    assert abs(float(obs[2])) <= 1.0  # Pendulum's initial velocity draw


def test_task_env_puts_the_task_in_the_observation(point_nav):
    env, params = point_nav
    goals = [params.replace(goal=jnp.array(goal)) for goal in ([0.3, -0.2], [-0.1, 0.4])]
    sample = meta.fixed_tasks(params, goals)
    task_env = meta.TaskEnv(env, lambda key, env_params: sample(key), task_in_obs=True)
    obs, state = task_env.reset(jax.random.key(0), params)
    # The position starts at the origin; the goal follows it and stays for the episode.
    np.testing.assert_allclose(obs[:2], 0.0)
    assert any(np.allclose(obs[2:], goal.goal) for goal in goals)
    next_obs, *_ = task_env.step(jax.random.key(1), state, jnp.array([0.1, 0.0]), params)
    np.testing.assert_allclose(next_obs, jnp.concatenate([jnp.array([0.1, 0.0]), obs[2:]]),
                               atol=1e-6)
    hidden = meta.TaskEnv(env, lambda key, env_params: sample(key), task_in_obs=False)
    assert hidden.observation_space(params).shape == (2,)


# --- distillation and Divide-and-Conquer RL: pieces by hand ----------------------------------

def test_distillation_kl_and_augmented_reward_by_hand():
    # Teacher (0.5, 0.5), student (0.25, 0.75): KL = 0.5 ln 2 + 0.5 ln(2/3) = 0.143841; the
    # second state (weight 0) does not count. No gradient reaches the teacher.
    teacher_logits = jnp.log(jnp.array([[0.5, 0.5], [0.9, 0.1]]))
    student_logits = jnp.log(jnp.array([[0.25, 0.75], [0.5, 0.5]]))
    def kl(teacher_logits, student_logits):
        return distillation_kl(distrax.Categorical(logits=teacher_logits),
                               distrax.Categorical(logits=student_logits), jnp.array([1.0, 0.0]))

    value, (teacher_grad, student_grad) = jax.value_and_grad(kl, argnums=(0, 1))(
        teacher_logits, student_logits)
    np.testing.assert_allclose(value, 0.5 * np.log(2) + 0.5 * np.log(2 / 3), rtol=1e-6)
    np.testing.assert_allclose(teacher_grad, 0.0)
    # ∂KL/∂student logits = q - p = (-0.25, 0.25) on the weighted state, 0 on the other.
    np.testing.assert_allclose(student_grad, [[-0.25, 0.25], [0.0, 0.0]], atol=1e-6)
    # r̃ = r + λ log π_θ: r = (1, 2), log π_θ = (-0.5, -1), λ = 0.2 → (0.9, 1.8).
    np.testing.assert_allclose(kl_augmented_rewards(jnp.array([1.0, 2.0]),
                                                    jnp.array([-0.5, -1.0]), 0.2), [0.9, 1.8],
                               rtol=1e-6)
    # λ doubles above 1.5 · target, halves below target / 1.5, else stays.
    np.testing.assert_allclose(meta.adaptive_coefficient(jnp.ones(3), jnp.array([0.2, 0.05, 0.1]),
                                                         0.1), [2.0, 0.5, 1.0])


def test_contexts_are_kmeans_regions_of_the_tasks(point_nav):
    env, params = point_nav
    points = jnp.array([[0.0, 0.0], [5.0, 5.0], [0.2, 0.0], [5.2, 5.0], [0.0, 0.2]])
    centres = meta.kmeans(points, 2)
    np.testing.assert_allclose(centres, [[0.2 / 3, 0.2 / 3], [5.1, 5.0]], atol=1e-6)
    # Goals drawn in region r lie nearest centre r: the four quadrants of PointNav's goals.
    quadrants = jnp.array([[-0.25, -0.25], [-0.25, 0.25], [0.25, -0.25], [0.25, 0.25]])
    sample = meta.task_sampler(env, params)
    goals = jax.vmap(lambda key, region: meta.sample_in_region(key, sample, quadrants, region,
                                                               32).goal)(
        jax.random.split(jax.random.key(0), 16), jnp.arange(16) % 4)
    np.testing.assert_array_equal(np.sign(goals), np.sign(quadrants[np.arange(16) % 4]))


def test_distill_and_dnc_bad_input_is_one_clear_error(point_nav):
    env, params = point_nav
    with pytest.raises(ValueError, match="num_envs must be >= 2"):
        distill.make_agent(distill.Config(num_envs=1), env, params)
    with pytest.raises(ValueError, match="candidates = 16 must be >= 8"):
        dnc.make_agent(dnc.Config(candidates=16), env, params)
    with pytest.raises(ValueError, match="horizon = 200 exceeds"):
        dnc.make_agent(dnc.Config(horizon=200), env, params)
    other, other_params = envs.make("PointGoal-v0")
    with pytest.raises(ValueError, match="not a task family"):
        distill.make_agent(distill.Config(), other, other_params)


# --- distillation from saved runs (--teachers) ----------------------------------------------

def test_teacher_paths_are_recorded_absolute(tmp_path, monkeypatch):
    from jaxrl.run_dir import resolve_paths

    monkeypatch.chdir(tmp_path)
    config = resolve_paths(distill.Config(teachers=("runs/a", "b")))
    assert config.teachers == (str(tmp_path / "runs" / "a"), str(tmp_path / "b"))
    assert resolve_paths(distill.Config()).teachers == ()


@pytest.fixture(scope="module")
def teacher_runs(tmp_path_factory):
    """A tiny ppo run of PointNav-v0 (goal (0.3, 0.3)) and copies of it made into runs on other
    goals, of another activation and of another env (config.json edited; the same checkpoint)."""
    import json
    import shutil

    from jaxrl import runner
    from jaxrl.agents import ppo

    root = tmp_path_factory.mktemp("teachers")
    config = ppo.Config(total_timesteps=8, num_envs=2, num_steps=4, update_epochs=1,
                        hidden_sizes=(8,), eval_episodes=0)
    runner.run("ppo", "PointNav-v0", config, out=root / "a", env_kwargs={"goal": [0.3, 0.3]},
               progress=False)

    def copy(name, edit):
        shutil.copytree(root / "a", root / name)
        record = json.loads((root / name / "config.json").read_text())
        edit(record)
        (root / name / "config.json").write_text(json.dumps(record))
        return str(root / name)

    return {"a": str(root / "a"),
            "b": copy("b", lambda r: r["env_kwargs"].update(goal=[-0.3, -0.2])),
            "relu": copy("relu", lambda r: r["config"].update(activation="relu")),
            "pendulum": copy("pendulum", lambda r: r.update(env="Pendulum-v1", env_kwargs={}))}


@pytest.mark.slow
def test_distill_from_saved_runs(point_nav, teacher_runs):
    from jaxrl.policy import load_policy

    env, params = point_nav
    config = distill.Config(teachers=(teacher_runs["a"], teacher_runs["b"]),
                            total_timesteps=2 * 2 * 4 * 2, num_envs=2, horizon=4,
                            distill_steps=1, hidden_sizes=(8,), student_hidden_sizes=(8,))
    assert config.steps_per_update == 2 * 2 * 4  # the runs' count of tasks, not num_tasks
    state, metrics = jax.jit(distill.make_train(config, env, params))(jax.random.key(0))
    # Each teacher runs on its run's goal, with its run's parameters, which never change.
    np.testing.assert_allclose(state.tasks.goal, [[0.3, 0.3], [-0.3, -0.2]])
    saved = load_policy(teacher_runs["a"]).params
    for i in range(2):
        assert leaves_equal(jax.tree.map(lambda x, i=i: x[i], state.saved_teachers), saved)
    assert set(metrics) == {"teacher_return", "episode_return", "student_return", "distill_nll"}
    assert np.all(np.isfinite(np.asarray(metrics["distill_nll"])))


@pytest.mark.slow
def test_distill_from_saved_runs_bad_input_is_one_error_line(teacher_runs, tmp_path, capsys):
    from jaxrl.cli import main

    cases = {
        "another env": (["--env", "Pendulum-v1", "--teachers", teacher_runs["a"]],
                        "trained on 'PointNav-v0', not 'Pendulum-v1'"),
        "mixed envs": (["--env", "PointNav-v0", "--teachers", teacher_runs["a"],
                        teacher_runs["pendulum"]], "trained on 'Pendulum-v1'"),
        "network": (["--env", "PointNav-v0", "--teachers", teacher_runs["a"],
                     teacher_runs["relu"]], "incompatible networks (activation relu vs tanh)"),
        "missing": (["--env", "PointNav-v0", "--teachers", str(tmp_path / "none")],
                    "no run directory there"),
        "frozen": (["--env", "PointNav-v0", "--teachers", teacher_runs["a"],
                    "--teacher-updates", "3"], "drop --teacher-updates"),
    }
    for args, message in cases.values():
        assert main(["train", "distill", *args, "--out", str(tmp_path / "out")]) != 0
        err = capsys.readouterr().err
        assert err.startswith("jaxrl: error:") and err.count("\n") == 1 and message in err, err


# --- learning -------------------------------------------------------------------------------

@pytest.mark.slow
def test_maml_adapts_on_point_nav(point_nav):
    env, params = point_nav
    # Meta-training raises the adapted return (first 2 updates against last 2), and after
    # training one inner step beats the meta-policy before adaptation, on both seeds.
    config = maml.Config(total_timesteps=10 * 10 * 10 * 20 * 2, meta_batch_size=10, num_envs=10,
                         horizon=20, learning_rate=3e-3, hidden_sizes=(32, 32))
    # Plain jax.jit: the compile outweighs the run (optimised_jit doubled this test's CPU for
    # the same returns to 6 digits).
    train = jax.jit(jax.vmap(maml.make_train(config, env, params)))
    _, metrics = train(jax.random.split(jax.random.key(0), 2))
    pre = np.asarray(metrics["pre_adaptation_return"])
    post = np.asarray(metrics["post_adaptation_return"])
    assert np.all(post[:, -2:].mean(1) > pre[:, -2:].mean(1) + 1.0), (pre, post)
    assert np.all(post[:, -2:].mean(1) > post[:, :2].mean(1) + 0.3), post
