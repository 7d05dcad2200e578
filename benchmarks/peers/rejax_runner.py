"""Run one benchmark case with rejax (inside ``.venvs/rejax``) and print one ``BENCH_ROW``.

    .venvs/rejax/bin/python rejax_runner.py --case '<case json>'

The case's ``config`` uses jaxrl's (CleanRL's) names; ``translate`` maps them to rejax's and
refuses settings that rejax cannot express, so both sides train the same configuration:

- Networks: ``activation`` / ``hidden_sizes`` go where each rejax agent takes them (its
  ``agent_kwargs``, SAC's ``hidden_layer_sizes``, TD3's actor and critic kwargs); rejax's DQN
  and TD3 fix the hidden sizes to (64, 64).
- PPO: ``update_epochs → num_epochs``.
  rejax never anneals the learning rate, always clips the value loss, always normalises
  advantages and clips gradients element-wise (``optax.clip``) at ``max_grad_norm``, where jaxrl
  clips the global norm; the case must set ``anneal_lr=False``, ``clip_vloss=True``.
- Off-policy: rejax takes ``num_epochs`` gradient steps per vectorised env step, jaxrl
  ``updates_per_step`` per ``train_frequency`` vectorised steps, so ``num_epochs =
  updates_per_step / train_frequency``. DQN: ``learning_starts → fill_buffer``,
  ``tau → polyak = 1 - tau``, ``target_network_frequency → target_update_freq``,
  ``start_e / end_e → eps_start / eps_end``, ``double_q → ddqn``, ``dueling`` → rejax's
  ``DuelingQNetwork``; rejax has only 1-step targets and a constant learning rate.
- SAC / TD3: ``learning_starts → fill_buffer``, ``tau → polyak``; SAC's ``policy_lr = q_lr →
  learning_rate`` (rejax has one rate and updates the actor every step); TD3's ``policy_frequency →
  policy_delay``, ``policy_noise / noise_clip → target_noise / target_noise_clip``.

Training runs with a no-op evaluation callback (rejax evaluates 128 episodes every
``eval_freq`` steps inside the training scan, which is not training work); the final return is
then measured once, untimed, with rejax's own evaluation (128 episodes, mean over seeds:
``final_return``) and with the harness's (``fair_return``: ``measure.greedy_returns``, the
deterministic policy over 128 episodes per seed, as jaxrl's side is scored).
"""

from __future__ import annotations

import importlib.metadata
import json
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import measure  # noqa: E402
import rejax  # noqa: E402

RENAMES = {
    "ppo": {"update_epochs": "num_epochs"},
    "dqn": {"learning_starts": "fill_buffer", "target_network_frequency": "target_update_freq",
            "start_e": "eps_start", "end_e": "eps_end", "double_q": "ddqn"},
    "sac": {"learning_starts": "fill_buffer"},
    "td3": {"learning_starts": "fill_buffer", "policy_frequency": "policy_delay",
            "policy_noise": "target_noise", "noise_clip": "target_noise_clip"},
}
LOGGING = ("log_frequency", "eval_episodes")
"""jaxrl logging settings with no rejax counterpart (rejax's evaluation is switched off)."""
REQUIRED = {"ppo": {"anneal_lr": False, "clip_vloss": True, "norm_adv": True},
            "dqn": {"anneal_lr": False, "n_step": 1}}


def single_learning_rate(config: dict[str, Any]) -> float:
    """jaxrl SAC's ``policy_lr`` and ``q_lr`` as the peer's one ``learning_rate`` (must agree)."""
    policy_lr, q_lr = config.pop("policy_lr"), config.pop("q_lr")
    if policy_lr != q_lr:
        raise ValueError(f"the peer has one learning rate: set policy_lr = q_lr (got {policy_lr}"
                         f" and {q_lr})")
    return policy_lr


def translate(algo: str, config: dict[str, Any]) -> dict[str, Any]:
    """rejax keyword arguments for a jaxrl-named ``config``; ``ValueError`` where rejax differs."""
    if algo not in RENAMES:
        raise ValueError(f"rejax runner has no {algo!r}; choose one of: {', '.join(RENAMES)}")
    config = dict(config)
    for name, needed in REQUIRED.get(algo, {}).items():
        if config.pop(name, needed) != needed:
            raise ValueError(f"rejax {algo} supports only {name}={needed}")
    if algo == "dqn":
        config["agent"] = "DuelingQNetwork" if config.pop("dueling", False) else "QNetwork"
    activation = config.pop("activation", "tanh")
    hidden_sizes = tuple(config.pop("hidden_sizes", (64, 64)))
    if algo in ("dqn", "td3") and hidden_sizes != (64, 64):
        raise ValueError(f"rejax {algo} fixes hidden sizes to (64, 64), got {hidden_sizes}")
    network = {"activation": activation}
    if algo == "ppo":
        network["hidden_layer_sizes"] = hidden_sizes
    if algo == "sac":
        config["hidden_layer_sizes"] = hidden_sizes
    networks = ({"actor_kwargs": network, "critic_kwargs": dict(network)} if algo == "td3"
                else {"agent_kwargs": network})
    if algo == "sac":
        config["learning_rate"] = single_learning_rate(config)
        if config.pop("policy_frequency", 1) != 1:
            raise ValueError("rejax sac updates the actor every step: set policy_frequency=1")
    if "tau" in config:
        config["polyak"] = 1.0 - config.pop("tau")
    for name in LOGGING:
        config.pop(name, None)
    if algo != "ppo":
        updates, frequency = config.pop("updates_per_step", 1), config.pop("train_frequency", 1)
        if updates % frequency:
            raise ValueError(f"rejax {algo} takes num_epochs gradient steps per vectorised env "
                             f"step: updates_per_step ({updates}) must be a multiple of "
                             f"train_frequency ({frequency})")
        config["num_epochs"] = updates // frequency
    renamed = {RENAMES[algo].get(name, name): value for name, value in config.items()}
    return {**renamed, **networks}


def work(algo: str, agent: Any) -> tuple[int, int]:
    """``(env_steps, gradient_steps)`` of one seed's run with ``eval_freq = total_timesteps``.

    rejax runs ``ceil(total / iteration_steps)`` iterations; one iteration collects
    ``num_envs · num_steps`` (PPO), ``num_envs · policy_delay`` (TD3) or ``num_envs`` steps.
    PPO takes ``num_epochs · num_minibatches`` gradient steps per iteration; the off-policy
    agents take ``num_epochs`` critic steps per ``num_envs`` env steps once ``global_step >
    fill_buffer`` (TD3's actor steps, every ``policy_delay``, are not counted).
    """
    iteration_steps = agent.num_envs * {"ppo": getattr(agent, "num_steps", 1),
                                        "td3": getattr(agent, "policy_delay", 1)}.get(algo, 1)
    iterations = -(-agent.total_timesteps // iteration_steps)
    env_steps = iterations * iteration_steps
    if algo == "ppo":
        return env_steps, iterations * agent.num_epochs * agent.num_minibatches
    collections = env_steps // agent.num_envs
    training = max(0, collections - agent.fill_buffer // agent.num_envs - 1)
    return env_steps, training * agent.num_epochs


EVAL_SEED = 1
"""``run.EVAL_SEED``: the same evaluation keys as jaxrl's side."""


def greedy_act(algo: str, agent: Any, train_state: Any) -> Any:
    """``obs [B, ...] -> actions [B, ...]``, rejax's trained policy without exploration: the
    mode of PPO's action distribution, the argmax of DQN's Q (rejax's own evaluation samples
    PPO's actions and keeps ε = 0.005 for DQN), TD3's deterministic actor; None otherwise."""
    if algo == "ppo":
        return lambda obs: agent.actor.apply(train_state.actor_ts.params, obs,
                                             method="_action_dist").mode()
    if algo == "dqn":
        return lambda obs: jnp.argmax(agent.agent.apply(train_state.q_ts.params, obs), -1)
    if algo == "td3":
        return lambda obs: agent.actor.apply(train_state.actor_ts.params, obs)
    return None


def fair_return(algo: str, agent: Any, train_state: Any, seeds: int) -> dict[str, Any]:
    """``measure.greedy_returns`` of every seed's trained policy on the env rejax trained on,
    mean over seeds: the harness's one evaluation for every framework (untimed)."""
    if getattr(agent, "normalize_observations", False) or greedy_act(algo, agent, None) is None:
        return {"fair_return": None, "fair_return_note": f"no greedy policy for rejax {algo}"}

    def score(one_state: Any, key: jax.Array) -> jax.Array:
        return measure.greedy_returns(greedy_act(algo, agent, one_state), agent.env,
                                      agent.env_params, key)

    keys = jax.random.split(jax.random.key(EVAL_SEED), seeds)
    returns = jax.jit(jax.vmap(score))(train_state, keys).mean(axis=-1)
    return {"fair_return": measure.nanmean(returns), "fair_return_std": float(returns.std()),
            "fair_return_kind": measure.EVAL_KIND}


def main(case: dict[str, Any]) -> None:
    """Train ``case`` (vmapped over its seeds), then evaluate; print the row."""
    algo, seeds = case["algo"], case["seeds"]
    config = translate(algo, case["config"])
    agent = rejax.get_algo(algo).create(env=case["env"], eval_freq=config["total_timesteps"],
                                        skip_initial_evaluation=True, **config)
    evaluate = agent.eval_callback
    agent = agent.replace(eval_callback=lambda algo_, ts, rng: jnp.zeros(()))
    machine = measure.machine()
    keys = jax.random.split(jax.random.PRNGKey(case.get("seed", 0)), seeds)
    (train_state, _), timings, jaxpr = measure.compile_and_run(
        jax.vmap(agent.train), keys, repeats=case.get("repeats", 1))
    flops, while_loops = measure.matmul_flops(jaxpr)
    eval_keys = jax.random.split(jax.random.PRNGKey(1), seeds)
    _, returns = jax.jit(jax.vmap(lambda ts, key: evaluate(agent, ts, key)))(train_state,
                                                                              eval_keys)
    env_steps, gradient_steps = work(algo, agent)
    measure.emit({
        "machine": machine, **timings, "env_steps_per_seed": env_steps,
        "gradient_steps_per_seed": gradient_steps, "matmul_flops": flops,
        "while_loops": while_loops, "final_return": measure.nanmean(returns.mean(axis=-1)),
        "return_kind": "evaluation: 128 episodes (rejax evaluate), mean over seeds",
        **fair_return(algo, agent, train_state, seeds),
        "versions": {"rejax": importlib.metadata.version("rejax"),
                     "gymnax": importlib.metadata.version("gymnax"), "jax": jax.__version__},
    })


if __name__ == "__main__":
    main(json.loads(sys.argv[-1]))
