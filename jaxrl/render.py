"""Watch a trained policy: episodes as a GIF (gymnax and jaxrl envs) or an HTML replay (Brax).

``jaxrl render RUN_DIR --out FILE`` loads a run's policy (``jaxrl.policy.load_policy``), plays
``episodes`` episodes with it under one ``jax.jit`` (the env states of every step kept), and
draws them. GIF frames are drawn with matplotlib (no display, no pyplot) and written with
Pillow, so no ffmpeg or screen is needed; Brax episodes go through ``brax.io.html``, which
writes a self-contained three.js viewer.

A renderer draws one unbatched env state (the innermost env's, ``envs.dynamics.
simulator_state``) on a matplotlib ``Axes``. Classic control envs have drawings of their own;
any env whose observation is an image (MinAtar, Catch, the gridworld) is shown as that image.
``register_renderer`` adds one for another env id.
"""

from __future__ import annotations

import io
from collections.abc import Callable
from pathlib import Path
from typing import Any

import jax
import numpy as np

from jaxrl.envs.brax_env import BraxEnv, quiet_brax
from jaxrl.envs.dynamics import base_env, simulator_state
from jaxrl.policy import EVAL_STEP_MARGIN, Policy, load_policy
from jaxrl.training.agent import policy_fn

__all__ = ["Renderer", "play_episodes", "register_renderer", "render_run", "renderer_for"]

Renderer = Callable[[Any, Any, Any], None]
"""``renderer(ax, state, env_params)`` draws one unbatched simulator state on ``ax``."""

_RENDERERS: dict[str, Renderer] = {}


def register_renderer(env_id: str, renderer: Renderer) -> None:
    """Draw ``env_id``'s states with ``renderer`` (replacing any earlier one)."""
    _RENDERERS[env_id] = renderer


def _cartpole(ax, state, params) -> None:
    x, theta = float(state.x), float(state.theta)
    length = 2 * float(params.length)
    ax.plot([-2.4, 2.4], [0, 0], color="0.6", linewidth=1)
    ax.add_patch(_rectangle((x - 0.25, -0.1), 0.5, 0.2, "0.3"))
    ax.plot([x, x + length * np.sin(theta)], [0, length * np.cos(theta)], color="tab:orange",
            linewidth=5, solid_capstyle="round")
    ax.set_xlim(-2.6, 2.6)
    ax.set_ylim(-0.6, 1.6)


def _pendulum(ax, state, params) -> None:
    theta = float(state.theta)  # 0: upright
    ax.plot([0, np.sin(theta)], [0, np.cos(theta)], color="tab:red", linewidth=6,
            solid_capstyle="round")
    ax.plot([0], [0], "o", color="0.2")
    ax.set_xlim(-1.3, 1.3)
    ax.set_ylim(-1.3, 1.3)


def _acrobot(ax, state, params) -> None:
    a1, a2 = float(state.joint_angle1), float(state.joint_angle2)
    p1 = np.array([np.sin(a1), -np.cos(a1)])
    p2 = p1 + np.array([np.sin(a1 + a2), -np.cos(a1 + a2)])
    ax.plot([0, p1[0], p2[0]], [0, p1[1], p2[1]], color="tab:blue", linewidth=5,
            marker="o", solid_capstyle="round")
    ax.axhline(1.0, color="0.6", linestyle="--", linewidth=1)
    ax.set_xlim(-2.2, 2.2)
    ax.set_ylim(-2.2, 2.2)


def _mountain_car(ax, state, params) -> None:
    xs = np.linspace(-1.2, 0.6, 100)
    ax.plot(xs, np.sin(3 * xs) * 0.45 + 0.55, color="0.4")
    x = float(state.position)
    ax.plot([x], [np.sin(3 * x) * 0.45 + 0.55], "s", color="tab:green", markersize=12)
    ax.plot([0.5], [np.sin(1.5) * 0.45 + 0.55], "^", color="tab:red", markersize=10)
    ax.set_xlim(-1.25, 0.65)
    ax.set_ylim(0, 1.2)


def _rectangle(xy, width, height, color):
    from matplotlib.patches import Rectangle

    return Rectangle(xy, width, height, color=color)


for _env_id, _renderer in (("CartPole-v1", _cartpole), ("Pendulum-v1", _pendulum),
                           ("Acrobot-v1", _acrobot), ("MountainCar-v0", _mountain_car),
                           ("MountainCarContinuous-v0", _mountain_car)):
    register_renderer(_env_id, _renderer)


def _image_renderer(env: Any, env_params: Any) -> Renderer | None:
    """Show the observation as an image where it is one ``[H, W]`` or ``[H, W, C]`` (channels
    as a colour index: the first channel set at each cell)."""
    shape = env.observation_space(env_params).shape
    if len(shape) not in (2, 3):
        return None
    inner = base_env(env)
    observe = getattr(getattr(inner, "gymnax_env", inner), "get_obs", None)
    if observe is None:
        return None

    def draw(ax, state, params) -> None:
        try:
            image = np.asarray(observe(state, params))
        except TypeError:
            image = np.asarray(observe(state))
        if image.ndim == 3:
            image = np.where(image.any(-1), image.argmax(-1) + 1, 0)
        ax.imshow(image, cmap="tab20", vmin=0, vmax=20, interpolation="nearest")

    return draw


def renderer_for(env_id: str, env: Any, env_params: Any) -> Renderer:
    """The renderer of ``env_id``; ``ValueError`` naming the envs that have one otherwise."""
    if env_id in _RENDERERS:
        return _RENDERERS[env_id]
    image = _image_renderer(env, env_params)
    if image is not None:
        return image
    raise ValueError(f"no renderer for {env_id}: jaxrl draws {', '.join(sorted(_RENDERERS))}, "
                     f"envs with image observations (MinAtar, bsuite Catch, …) and Brax envs "
                     f"(HTML); add one with jaxrl.render.register_renderer")


def play_episodes(policy: Policy, key: jax.Array, episodes: int = 1,
                  deterministic: bool = True) -> list[tuple[Any, np.ndarray]]:
    """``episodes`` episodes of ``policy``, one after another in one env: per episode the
    simulator states of every step (the start state first, the state an episode ended on last,
    a pytree with a leading time axis) and the rewards ``[steps]``."""
    env, env_params = policy.env, policy.env_params
    limit = int(getattr(env_params, "max_steps_in_episode", 1000)) + EVAL_STEP_MARGIN

    @jax.jit
    def play(params, key):
        act, initial_carry = policy_fn(policy.agent, params, deterministic)
        reset_key, key = jax.random.split(key)
        obs, state = env.reset(reset_key, env_params)

        def step(carry, key):
            obs, state, policy_carry = carry
            act_key, step_key = jax.random.split(key)
            action, policy_carry = act(act_key, obs[None], jax.tree.map(lambda x: x[None], state),
                                       policy_carry)
            next_obs, next_state, reward, terminated, truncated, info = env.step(
                step_key, state, action[0], env_params)
            done = terminated | truncated
            record = (simulator_state(env, state), reward, done)
            return (next_obs, next_state, policy_carry), record

        _, (states, rewards, dones) = jax.lax.scan(
            step, (obs, state, initial_carry(1)), jax.random.split(key, episodes * limit))
        return states, rewards, dones

    states, rewards, dones = jax.device_get(play(policy.params, key))
    found, start = [], 0
    for end in np.flatnonzero(dones)[:episodes]:
        found.append((jax.tree.map(lambda x, a=start, b=end: x[a:b + 1], states),
                      rewards[start:end + 1]))
        start = end + 1
    if not found:
        raise ValueError(f"no episode of {policy.env_id} ended within {limit} steps")
    return found


def _gif(policy: Policy, played: list[tuple[Any, np.ndarray]], out: Path,
         max_frames: int | None, fps: int) -> int:
    from matplotlib.figure import Figure
    from PIL import Image

    draw = renderer_for(policy.env_id, policy.env, policy.env_params)
    frames = []
    for episode, (states, rewards) in enumerate(played):
        total = 0.0
        for t in range(len(rewards)):
            if max_frames is not None and len(frames) >= max_frames:
                break
            total += float(rewards[t])
            figure = Figure(figsize=(4, 3.2), dpi=80)
            ax = figure.subplots()
            draw(ax, jax.tree.map(lambda x, t=t: x[t], states), policy.env_params)
            ax.set_xticks([])
            ax.set_yticks([])
            ax.set_title(f"{policy.env_id}  episode {episode + 1}  step {t + 1}  "
                         f"return {total:.1f}", fontsize=8)
            buffer = io.BytesIO()
            figure.savefig(buffer, format="png")
            frames.append(Image.open(buffer).convert("P", palette=Image.Palette.ADAPTIVE))
    tmp = out.with_name(f".{out.name}.tmp")
    frames[0].save(tmp, format="GIF", save_all=True, append_images=frames[1:],
                   duration=max(1, 1000 // fps), loop=0)
    tmp.replace(out)
    return len(frames)


def _html(policy: Policy, played: list[tuple[Any, np.ndarray]], out: Path) -> int:
    with quiet_brax():
        from brax.io import html

    brax_env = base_env(policy.env).brax_env
    states = [jax.tree.map(lambda x, t=t: x[t], states.pipeline_state)
              for states, rewards in played for t in range(len(rewards))]
    tmp = out.with_name(f".{out.name}.tmp")
    tmp.write_text(html.render(brax_env.sys, states))
    tmp.replace(out)
    return len(states)


def render_run(run_dir: str | Path, out: str | Path | None = None, *, seed: int | None = None,
               episodes: int = 1, deterministic: bool = True, eval_seed: int = 0,
               max_frames: int | None = None, fps: int = 30) -> tuple[Path, int]:
    """Play ``episodes`` episodes of ``run_dir``'s policy (training seed ``seed``, default the
    first) and write them to ``out`` (default ``RUN_DIR/episode.gif``, or ``.html`` for Brax):
    returns the path and the number of frames. ``max_frames`` caps a GIF's length."""
    if episodes < 1:
        raise ValueError(f"--episodes must be >= 1, got {episodes}")
    policy = load_policy(run_dir, seed)
    brax = isinstance(base_env(policy.env), BraxEnv)
    suffix = ".html" if brax else ".gif"
    out = Path(out) if out is not None else Path(run_dir) / f"episode{suffix}"
    if out.suffix.lower() != suffix:
        raise ValueError(f"{policy.env_id} renders to a {suffix} file, not {out.name}")
    if not brax:
        renderer_for(policy.env_id, policy.env, policy.env_params)  # fail before playing
    played = play_episodes(policy, jax.random.key(eval_seed), episodes, deterministic)
    frames = _html(policy, played, out) if brax else _gif(policy, played, out, max_frames, fps)
    return out, frames

