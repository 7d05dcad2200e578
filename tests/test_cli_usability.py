"""What a new user meets first: the listings, help texts and error lines of the CLI, the
run summary, what a run prints while it compiles and resumes, the plot's smoothing, stderr
noise filtered at its source, and what "reproduce one seed" means exactly."""

from __future__ import annotations

import os
import sys
import warnings

import numpy as np
import pytest

from jaxrl import cli, envs, plots, registry, run_dir, runner
from jaxrl.agents import ppo
from jaxrl.backend import filtered_stderr
from jaxrl.envs.brax_env import quiet_brax
from jaxrl.envs.catalog import BUILTIN_SPACES
from jaxrl.envs.spaces import Discrete

# test_checkpoint's tiny run: two seeds of it are one program, which the session's compile
# cache then serves.
TINY_PPO = ppo.Config(total_timesteps=6 * 4 * 8, num_envs=4, num_steps=8, update_epochs=1,
                      hidden_sizes=(8,))


def test_env_listing_describes_every_env_without_building_it(capsys):
    assert cli.main(["envs"]) == 0
    listing = capsys.readouterr().out.splitlines()
    assert len(listing) == len(envs.list_envs())
    assert any(line.startswith("PointGoal-v0") and "discrete 4, obs (4,)" in line
               for line in listing)
    assert cli.main(["envs", "--help"]) == 0
    assert "usage: jaxrl envs" in capsys.readouterr().out


# One Brax env: building one computes its observation size from a reset (the cheapest to build,
# 2.7 s of CPU against 6.2 s for swimmer).
@pytest.mark.parametrize("env_id", [e for e in BUILTIN_SPACES
                                    if not e.startswith("brax/")]
                         + [pytest.param("brax/inverted_pendulum", marks=pytest.mark.slow)])
def test_env_catalog_matches_the_envs(env_id):
    env, env_params = envs.make(env_id)
    space = env.action_space(env_params)
    actions, obs_shape = BUILTIN_SPACES[env_id]
    kind, size = actions.split(" ", 1)
    if isinstance(space, Discrete):
        assert (kind, int(size)) == ("discrete", space.n)
    else:
        assert (kind, int(size)) == ("continuous", space.shape[0])
    assert tuple(env.observation_space(env_params).shape) == obs_shape


def test_help_texts(capsys):
    assert cli.main(["--help"]) == 0
    text = capsys.readouterr().out
    assert "algorithms" in text and "td3_bc" in text and "dagger" in text
    with pytest.raises(SystemExit):
        cli.main(["train", "ppo", "--help"])
    text = capsys.readouterr().out
    assert "(default: runs/<algo>-<env>-<time>)" in text
    assert "(default: None)" not in text
    assert "``" not in text
    assert "--dataset" not in text and "--env-arg" in text
    for algo in registry.names():  # the Config docstrings are the help's section text
        with pytest.raises(SystemExit):
            cli.main(["train", algo, "--help"])
        assert "``" not in capsys.readouterr().out, algo
    with pytest.raises(SystemExit):
        cli.main(["train", "bc", "--help"])
    assert "--dataset" in capsys.readouterr().out


@pytest.mark.parametrize("flags, message", [
    (["--total-timesteps", "abc"], "Error parsing --total-timesteps"),
    (["--bogus", "3"], "Unrecognized options: --bogus"),
])
def test_bad_flag_values_get_one_error_line(flags, message, capsys):
    assert cli.main(["train", "ppo", *flags]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("jaxrl: error: ") and message in err[0]


def test_summary_shows_evaluation_first_averaged_over_the_last_rows():
    metrics = {"episode_return": np.array([[0.0, 0, 0, 0, 0, 0, 100.0]] * 2),
               "eval_return": np.array([[9.0, 1, 2, 3, 4, 5, 6], [9.0, 3, 4, 5, 6, 7, 8]])}
    result = runner.RunResult(None, metrics, np.arange(1, 8) * 10, None, 1.0, 2.0,
                              step_unit="gradient steps")
    lines = cli.summary_lines(result)
    # eval: seed means of rows 2..6 are 4 and 6 -> 5 ± 1; training: 20 each.
    assert lines[0].startswith("final eval_return 5.0 ± 1.0 over 2 seed(s)")
    assert lines[1].startswith("final episode_return 20.0 ± 0.0")
    assert "gradient steps/s" in lines[2]


def test_smoothing_is_a_trailing_nan_aware_mean():
    values = np.array([[np.nan, 2.0, 4.0, np.nan, 8.0]])
    np.testing.assert_allclose(plots.smooth(values, 2), [[np.nan, 2.0, 3.0, 4.0, 8.0]])
    assert plots.smooth(values, 1) is values
    assert plots.default_smoothing(10) == 1 and plots.default_smoothing(400) == 20


def test_known_stderr_noise_is_dropped_and_the_rest_kept(capfd):
    with filtered_stderr():
        os.write(2, b"W0000 pjrt_executable.cc:123] Assume version compatibility. Nothing.\n")
        os.write(2, b"a real problem\n")
        print("python stderr", file=sys.stderr)
    err = capfd.readouterr().err
    assert "Assume version compatibility" not in err
    assert "a real problem" in err and "python stderr" in err


def test_brax_notices_are_dropped_at_their_source(capsys):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with quiet_brax():
            print("Failed to import warp: no module named warp")
            print("something else")
            warnings.warn("Brax System, piplines and environments are not actively being",
                          UserWarning, stacklevel=1)
    assert capsys.readouterr().out == "something else\n"
    assert not caught


@pytest.mark.slow
def test_a_seed_reproduces_bitwise_in_a_batch_of_the_same_width(tmp_path, capsys):
    """What the README promises: seed s of an N-seed run is reproduced bitwise by
    ``--seed s --seeds N`` (it then sits first, beside other neighbours); alone it may differ
    in the last bits (a batch of another width compiles to other kernels).

    The first run also shows what a run prints while it compiles and when it resumes (one
    program serves both checks)."""
    out = tmp_path / "run"
    wide = runner.run("ppo", "CartPole-v1", TINY_PPO, seed=0, seeds=2, out=out,
                      checkpoint_every=32)
    printed = capsys.readouterr().out
    assert "compiling ppo on CartPole-v1" in printed and "compiled in" in printed
    assert "ppo CartPole-v1: 192/192 env steps" in printed  # plain lines when not on a terminal
    shifted = runner.run("ppo", "CartPole-v1", TINY_PPO, seed=1, seeds=2, progress=False)
    for name, values in wide.metrics.items():
        np.testing.assert_array_equal(values[1], shifted.metrics[name][0], err_msg=name)
    newest = run_dir.latest_checkpoint(out)
    os.rename(newest, newest.with_name(".stale"))
    runner.resume_run(out)
    assert f"resuming {out} from update 5 (env step 160)" in capsys.readouterr().out
