"""``jaxrl render``: a saved policy's episodes as a GIF, every drawing of a state, and one error
line for a run without a checkpoint, an env without a renderer or the wrong file type."""

from __future__ import annotations

import base64
import json
import re
import zlib

import jax
import pytest
from matplotlib.figure import Figure
from PIL import Image

from jaxrl import envs, runner
from jaxrl.agents import ppo
from jaxrl.cli import main
from jaxrl.envs.dynamics import simulator_state
from jaxrl.policy import load_policy
from jaxrl.render import _RENDERERS, play_episodes, renderer_for

pytestmark = pytest.mark.xdist_group("render")

# test_checkpoint's tiny PPO run (the session's compile cache serves it), one seed.
TINY = ppo.Config(total_timesteps=6 * 4 * 8, num_envs=4, num_steps=8, update_epochs=1,
                  hidden_sizes=(8,))


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("render") / "run"
    runner.run("ppo", "CartPole-v1", TINY, seeds=2, out=out, progress=False)
    return out


@pytest.mark.slow
def test_render_writes_a_gif_of_the_episodes(run_dir, capsys):
    out = run_dir / "two.gif"
    assert main(["render", str(run_dir), "--out", str(out), "--episodes", "2"]) == 0
    played = play_episodes(load_policy(run_dir), jax.random.key(0), episodes=2)
    steps = sum(len(rewards) for _, rewards in played)
    assert capsys.readouterr().out.strip() == f"wrote {out} ({steps} frames)"
    with Image.open(out) as gif:
        assert gif.n_frames == steps
    # Each episode ends where the env said done: CartPole's pole past 12° or the cart off-track.
    for states, rewards in played:
        last = jax.tree.map(lambda x: x[-1], states)
        assert abs(float(last.theta)) > 0.2 or abs(float(last.x)) > 2.4 or len(rewards) >= 500
    assert main(["render", str(run_dir), "--max-frames", "5"]) == 0
    with Image.open(run_dir / "episode.gif") as gif:
        assert gif.n_frames == 5


@pytest.mark.parametrize("env_id", [*sorted(_RENDERERS), "Breakout-MinAtar", "Catch-bsuite"])
def test_every_renderer_draws_a_state(env_id):
    env, params = envs.make(env_id)
    _, state = env.reset(jax.random.key(0), params)
    ax = Figure().subplots()
    renderer_for(env_id, env, params)(ax, simulator_state(env, state), params)
    assert ax.lines or ax.images or ax.patches


def test_bad_input_is_one_error_line(run_dir, tmp_path, capsys):
    env, params = envs.make("MemoryChain-bsuite")
    with pytest.raises(ValueError, match="no renderer for MemoryChain-bsuite.*register_renderer"):
        renderer_for("MemoryChain-bsuite", env, params)
    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / "config.json").write_text((run_dir / "config.json").read_text())
    for argv in (["render", str(empty)],
                 ["render", str(run_dir), "--out", str(tmp_path / "episode.mp4")],
                 ["render", str(run_dir), "--episodes", "0"]):
        assert main(argv) == 2
        error = capsys.readouterr().err.strip().splitlines()
        assert len(error) == 1 and error[0].startswith("jaxrl: error:"), error
    assert not (tmp_path / "episode.mp4").exists()


@pytest.mark.slow  # compiles PPO and an episode on Brax's inverted pendulum
def test_render_writes_a_brax_html_replay(tmp_path, capsys):
    out = tmp_path / "brax"
    # A 20-step time limit: the replay plays at most 30 Brax steps instead of 1,010.
    runner.run("ppo", "brax/inverted_pendulum", TINY, seeds=1, out=out, progress=False,
               env_kwargs={"max_steps_in_episode": 20})
    assert main(["render", str(out)]) == 0
    html = out / "episode.html"
    message = re.fullmatch(rf"wrote {re.escape(str(html))} \((\d+) frames\)",
                           capsys.readouterr().out.strip())
    text = html.read_text()
    assert message and "<html" in text.lower() and "<script" in text.lower()
    # brax.io.html embeds the system and its states as base64 of zlib-compressed JSON: one
    # state per frame, so the replay holds the whole episode the message counts.
    system = json.loads(zlib.decompress(base64.b64decode(
        re.search(r'var system = "([^"]+)"', text).group(1))))
    assert len(system["states"]["x"]) == int(message.group(1)) > 1
    assert main(["render", str(out), "--out", str(tmp_path / "episode.gif")]) == 2
    assert "renders to a .html file" in capsys.readouterr().err
