"""Optimal control: LQR, iLQR and analytic policy gradients — return, time per action, compile.

Cases (each prints one markdown row; all rows go to ``benchmarks/results/control.json``):

- ``lqr`` on ``LinearSystem-v0`` (the DARE gain and the episode's Riccati gains) and the
  zero action for scale: one full episode in each of ``episodes`` envs from random starts;
- ``ilqr`` on ``Pendulum-v1`` from the hanging start (θ = π, θ̇ = 0): the first step after
  which |θ| < 0.1 holds to the episode's end, and from random starts;
- ``apg`` on ``Pendulum-v1``: 4 seeds trained in one vmapped call, each final policy evaluated
  on 16 fresh episodes (the target: ≥ -400);
- ``--brax``: the gradient ∂next_obs/∂action of ``brax/inverted_pendulum`` (finite, non-zero),
  and the gradient norm of one ``apg`` update on it: zero, as its reward is a constant +1 per
  step alive (so Brax's own ``brax.training.agents.apg``, which differentiates the same
  return, has nothing to follow either). Slow to compile on a CPU (minutes).

::

    python benchmarks/control.py            # LQR, iLQR, APG on Pendulum-v1
    python benchmarks/control.py --brax     # and brax/inverted_pendulum
"""

from __future__ import annotations

import argparse
import json
import pathlib

import jax
import jax.numpy as jnp
import numpy as np
from measure import timed

from jaxrl import envs
from jaxrl.agents import apg, ilqr, lqr
from jaxrl.evaluation import episode_returns
from jaxrl.training.agent import policy_fn

RESULTS = pathlib.Path(__file__).parent / "results" / "control.json"
ROWS: list[dict] = []


def row(case: str, env_id: str, returns: np.ndarray, compile_s: float, ms_per_action: float,
        note: str = "") -> None:
    returns = np.asarray(returns)
    entry = dict(case=case, env=env_id, mean=float(returns.mean()), std=float(returns.std()),
                 min=float(returns.min()), compile_s=compile_s, ms_per_action=ms_per_action,
                 note=note)
    ROWS.append(entry)
    print(f"| {case} | {env_id} | {entry['mean']:.1f} ± {entry['std']:.1f} (min "
          f"{entry['min']:.1f}) | {ms_per_action:.2f} | {compile_s:.1f} | {note} |", flush=True)


def controller_episodes(case, env_id, agent, env, params, episodes, note=""):
    """One episode per env from random starts (key 1) with the controller's policy."""
    state = agent.init(jax.random.key(0))
    act, initial_carry = policy_fn(agent, state, True)
    steps = int(params.max_steps_in_episode)
    (returns, finished), compile_s, run_s = timed(
        lambda key: episode_returns(key, env, params, act, episodes, steps, 1,
                                    initial_carry=initial_carry), jax.random.key(1))
    row(case, env_id, np.asarray(returns)[np.asarray(finished)], compile_s,
        1000 * run_s / steps, note)


def linear_system(episodes: int) -> None:
    env, params = envs.make("LinearSystem-v0")
    for solver in ("dare", "riccati"):
        agent = lqr.make_agent(lqr.Config(solver=solver), env, params)
        controller_episodes(f"lqr ({solver})", "LinearSystem-v0", agent, env, params, episodes,
                            "episodes from x0 ~ N(0, I)")
    zero = jax.jit(lambda key: episode_returns(
        key, env, params, lambda k, o: jnp.zeros((o.shape[0], 1)), episodes,
        int(params.max_steps_in_episode), 1)[0])(jax.random.key(1))
    row("zero action", "LinearSystem-v0", zero, 0.0, 0.0, "the uncontrolled system")


def pendulum_ilqr(episodes: int, horizon: int, iterations: int) -> None:
    env, params = envs.make("Pendulum-v1")
    config = ilqr.Config(horizon=horizon, iterations=iterations)
    agent = ilqr.make_agent(config, env, params)
    controller = agent.init(jax.random.key(0))
    _, state = env.reset(jax.random.key(0), params)
    hanging = state.replace(env_state=state.env_state.replace(theta=jnp.float32(np.pi),
                                                                theta_dot=jnp.float32(0.0)))
    batch = jax.tree.map(lambda x: jnp.asarray(x)[None], hanging)
    steps = int(params.max_steps_in_episode)

    def run(key):
        def step(carry, key):
            env_state, plan, total = carry
            action, plan = agent.act(controller, jnp.zeros((1, 3)), key, True, plan,
                                     env_state=env_state)
            _, env_state, reward, *_ = jax.vmap(env.step, in_axes=(None, 0, 0, None))(
                key, env_state, action, params)
            return (env_state, plan, total + reward[0]), env_state.env_state.theta[0]

        (_, _, total), theta = jax.lax.scan(
            step, (batch, agent.initial_carry(None, 1), jnp.zeros(())),
            jax.random.split(key, steps))
        return total, theta

    (total, theta), compile_s, run_s = timed(run, jax.random.key(1))
    # θ after steps 1 … T - 1 (after step T the time limit has reset the env).
    angle = np.abs((np.asarray(theta)[:-1] + np.pi) % (2 * np.pi) - np.pi)
    outside = np.nonzero(angle >= 0.1)[0]
    upright_from = int(outside.max()) + 2 if len(outside) else 1
    row(f"ilqr (H={horizon}, {iterations} it.)", "Pendulum-v1", np.array([float(total)]),
        compile_s, 1000 * run_s / steps,
        f"hanging start: |θ| < 0.1 from step {upright_from} to {steps}")
    controller_episodes(f"ilqr (H={horizon}, {iterations} it.)", "Pendulum-v1", agent, env,
                        params, episodes, f"{episodes} random starts, all envs vmapped")


def pendulum_apg(seeds: int, eval_episodes: int, **overrides) -> None:
    env, params = envs.make("Pendulum-v1")
    config = apg.Config(**overrides)
    agent = apg.make_agent(config, env, params)
    steps = int(params.max_steps_in_episode)

    def train_and_evaluate(keys):
        def one(key):
            state, metrics = apg.make_train(config, env, params)(key)
            returns, _ = episode_returns(jax.random.fold_in(key, 1), env, params,
                                         lambda k, o: agent.act(state, o, k), eval_episodes,
                                         steps, 1)
            return returns, metrics["episode_return"][-1]

        return jax.vmap(one)(keys)

    (returns, last_training), compile_s, run_s = timed(
        train_and_evaluate, jax.random.split(jax.random.key(0), seeds))
    per_seed = np.asarray(returns).mean(1)
    note = (f"{seeds} seeds × {eval_episodes} eval episodes; {config.num_envs} envs × H="
            f"{config.horizon}, {agent.num_updates} updates ({config.total_timesteps} steps), "
            f"lr {config.learning_rate}; per seed {np.round(per_seed, 1).tolist()}; train "
            f"+ eval {run_s:.0f} s")
    row("apg", "Pendulum-v1", per_seed, compile_s, float("nan"), note)


def brax() -> None:
    env, params = envs.make("brax/inverted_pendulum")
    _, state = env.reset(jax.random.key(0), params)
    jacobian, compile_s, _ = timed(jax.jacfwd(
        lambda a: env.step_env(jax.random.key(1), state.env_state, a, params)[0]),
        0.1 * jnp.ones((1,)))
    print(f"brax/inverted_pendulum ∂next_obs/∂action = {np.asarray(jacobian).ravel()} "
          f"(compile {compile_s:.0f} s)", flush=True)
    ROWS.append(dict(case="gradient", env="brax/inverted_pendulum",
                     jacobian=np.asarray(jacobian).ravel().tolist(), compile_s=compile_s))
    # Its reward is +1 per step alive: constant, so the return's gradient through the
    # dynamics is zero (falling ends the episode, a step no gradient passes). One APG update
    # shows it; Brax's own APG trainer differentiates the same return.
    config = apg.Config(num_envs=4, horizon=16, total_timesteps=64, hidden_sizes=(32, 32))
    agent = apg.make_agent(config, env, params)
    (_, metrics), compile_s, _ = timed(lambda key: agent.update(agent.init(key)),
                                      jax.random.key(0))
    print(f"brax/inverted_pendulum: APG gradient norm {float(metrics['grad_norm'])} "
          f"(compile {compile_s:.0f} s)", flush=True)
    ROWS.append(dict(case="apg gradient norm", env="brax/inverted_pendulum",
                     grad_norm=float(metrics["grad_norm"]), compile_s=compile_s))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--brax", action="store_true")
    parser.add_argument("--brax-only", action="store_true")
    parser.add_argument("--episodes", type=int, default=16)
    args = parser.parse_args()
    print("| case | env | return (mean ± std, min) | ms per action (whole batch) | compile s "
          "| setting |\n| --- | --- | --- | --- | --- | --- |", flush=True)
    if not args.brax_only:
        linear_system(args.episodes)
        pendulum_ilqr(args.episodes, 30, 2)
        pendulum_apg(4, args.episodes)
    if args.brax or args.brax_only:
        brax()
    RESULTS.parent.mkdir(exist_ok=True)
    path = RESULTS.with_name("control_brax.json") if args.brax_only else RESULTS
    path.write_text(json.dumps(ROWS, indent=1))


if __name__ == "__main__":
    main()
