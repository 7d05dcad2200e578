"""Tiny configurations of every registered algorithm, for tests that must cover each agent.

``TINY[algo] = (env_id, Config kwargs)``: a handful of updates (an even number, at least 2, so a
run splits into two halves for resume tests) of tiny networks, compiling in seconds.
``tests/test_determinism.py`` fails when an algorithm in ``jaxrl.agents.ALGORITHMS`` has no
entry here: add one with every new agent.
"""

from __future__ import annotations

from typing import Any

__all__ = ["TINY"]

_ON_POLICY = {"total_timesteps": 4 * 4 * 8, "num_envs": 4, "num_steps": 8, "hidden_sizes": (16,)}
_NATURAL = {**_ON_POLICY, "value_epochs": 2, "num_minibatches": 2, "cg_iters": 3}
# 16 random warm-up steps, then 4 updates (logging intervals) of 4 iterations × 2 envs; the
# evaluation rollout (a long scan, slow to compile) is covered once, by DQN.
_OFF_POLICY = {"total_timesteps": 16 + 4 * 8, "num_envs": 2, "buffer_size": 64, "batch_size": 8,
               "learning_starts": 16, "train_frequency": 1, "updates_per_step": 1,
               "log_frequency": 8, "eval_episodes": 0, "hidden_sizes": (16,)}
# Offline agents: 2 updates of 2 gradient steps; each update evaluates 1 episode.
_OFFLINE = {"total_gradient_steps": 4, "log_frequency": 2, "batch_size": 8, "eval_episodes": 1,
            "hidden_sizes": (16,)}

# Model-based agents: 8 random steps, 2 updates of 4 steps; 2 members of width 8.
_MODEL_BASED = {"num_steps": 4, "total_timesteps": 8, "random_steps": 8, "buffer_size": 16,
                "ensemble_size": 2, "num_particles": 2, "hidden_sizes": (8,), "model_steps": 2,
                "batch_size": 4, "horizon": 3, "population": 4, "elites": 2, "iterations": 1}

# Policies learned with a model (mbpo, mve, mbrl2): the replay loop's tiny run, an ensemble of
# 2 members of width 8 refitted (2 steps) every 8 env steps.
_MODEL_POLICY = {**_OFF_POLICY, "ensemble_size": 2, "model_hidden_sizes": (8,), "model_steps": 2,
                 "model_batch_size": 4, "model_frequency": 8}

# Preferences family: 2 updates of 2 gradient steps, 4 sampled sequences scored per update.
_PREFERENCES = {"total_gradient_steps": 4, "log_frequency": 2, "batch_size": 4, "eval_samples": 4}

TINY: dict[str, tuple[str, dict[str, Any]]] = {
    "reinforce": ("CartPole-v1", {**_ON_POLICY, "update_epochs": 2}),
    "a2c": ("CartPole-v1", {**_ON_POLICY, "num_minibatches": 2, "n_steps_return": 3}),
    "npg": ("CartPole-v1", _NATURAL),
    "trpo": ("Pendulum-v1", _NATURAL),
    "ppo": ("CartPole-v1", {**_ON_POLICY, "update_epochs": 2, "num_minibatches": 2}),
    "rl2": ("KArmedBandit-v0", {**_ON_POLICY, "update_epochs": 2, "num_minibatches": 2,
                                "recurrent_size": 8, "episodes_per_trial": 3}),
    "maml": ("PointNav-v0", {"total_timesteps": 2 * 2 * 2 * 4 * 2, "meta_batch_size": 2,
                             "num_envs": 2, "horizon": 4, "hidden_sizes": (8,)}),
    "multitask": ("PointNav-v0", {**_ON_POLICY, "update_epochs": 2, "num_minibatches": 2}),
    "distill": ("PointNav-v0", {"total_timesteps": 2 * 2 * 2 * 4, "num_tasks": 2, "num_envs": 2,
                                "horizon": 4, "distill_steps": 1, "hidden_sizes": (8,),
                                "student_hidden_sizes": (8,)}),
    "dnc": ("PointNav-v0", {"total_timesteps": 2 * 2 * 2 * 4, "num_contexts": 2, "num_envs": 2,
                            "horizon": 4, "distill_steps": 1, "kmeans_samples": 8,
                            "candidates": 16, "hidden_sizes": (8,),
                            "global_hidden_sizes": (8,)}),
    "dqn": ("CartPole-v1", {**_OFF_POLICY, "eval_episodes": 2}),
    "soft_q": ("CartPole-v1", _OFF_POLICY),
    "ddpg": ("Pendulum-v1", _OFF_POLICY),
    "td3": ("Pendulum-v1", _OFF_POLICY),
    "sac": ("Pendulum-v1", _OFF_POLICY),
    "bc": ("CartPole-v1", {"total_gradient_steps": 8, "log_frequency": 4, "batch_size": 16,
                           "eval_episodes": 2, "hidden_sizes": (16,)}),
    "dagger": ("CartPole-v1", {"num_rounds": 2, "num_envs": 2, "num_steps": 8, "train_steps": 4,
                               "batch_size": 8, "eval_episodes": 2, "hidden_sizes": (16,)}),
    "cql": ("CartPole-v1", _OFFLINE),
    "iql": ("Pendulum-v1", _OFFLINE),
    "awac": ("Pendulum-v1", _OFFLINE),
    "is_pg": ("CartPole-v1", {**_OFFLINE, "episodes_per_batch": 2}),
    "td3_bc": ("Pendulum-v1", _OFFLINE),
    "fqi": ("CartPole-v1", {**_OFFLINE, "steps_per_iteration": 2}),
    "vi": ("Gridworld-v0", {"num_sweeps": 4, "eval_episodes": 2}),
    "pi": ("Gridworld-v0", {"num_iterations": 2, "evaluation": "iterative", "eval_episodes": 0}),
    "mpc": ("CartPole-v1", {"planner": "cem", "horizon": 4, "population": 8, "elites": 2,
                            "iterations": 2, "replan_every": 2, "num_envs": 2, "num_steps": 16,
                            "total_timesteps": 64}),
    "lqr": ("LinearSystem-v0", {"solver": "riccati", "num_envs": 2, "num_steps": 8,
                                "total_timesteps": 32}),
    "ilqr": ("Pendulum-v1", {"horizon": 4, "iterations": 1, "line_search_steps": 2,
                             "num_envs": 2, "num_steps": 4, "total_timesteps": 16}),
    "apg": ("Pendulum-v1", {"num_envs": 2, "horizon": 4, "total_timesteps": 16,
                            "hidden_sizes": (16,)}),
    "alphazero": ("CartPole-v1", {"num_simulations": 4, "num_envs": 2, "num_steps": 4,
                                  "total_timesteps": 16, "update_epochs": 1,
                                  "num_minibatches": 2, "n_steps": 2, "hidden_sizes": (16,)}),
    "maxent_irl": ("Gridworld-v0", {"total_gradient_steps": 4, "log_frequency": 2, "horizon": 4,
                                    "num_sweeps": 4, "eval_episodes": 1}),
    "gail": ("Pendulum-v1", {**_ON_POLICY, "update_epochs": 2, "num_minibatches": 2,
                             "disc_hidden_sizes": (16,), "disc_steps": 2, "disc_batch_size": 8,
                             "grad_penalty": 1.0}),
    "airl": ("Pendulum-v1", {**_ON_POLICY, "update_epochs": 2, "num_minibatches": 2,
                             "disc_hidden_sizes": (16,), "disc_steps": 2, "disc_batch_size": 8}),
    "dac": ("Pendulum-v1", {**_OFF_POLICY, "disc_hidden_sizes": (16,), "disc_steps": 2,
                            "disc_batch_size": 8}),
    "gcl": ("Pendulum-v1", {**_ON_POLICY, "update_epochs": 2, "num_minibatches": 2,
                            "disc_hidden_sizes": (16,), "disc_steps": 2, "disc_batch_size": 8}),
    "pets": ("Pendulum-v1", {**_MODEL_BASED, "propagation": "ts1"}),
    "mbrl": ("CartPole-v1", {**_MODEL_BASED, "version": "1.0", "reward": "learned"}),
    "mbpo": ("Pendulum-v1", {**_MODEL_POLICY, "rollout_batch_size": 4, "rollout_length": 2,
                             "model_buffer_size": 16, "real_ratio": 0.5}),
    "mve": ("Pendulum-v1", {**_MODEL_POLICY, "horizon": 2}),
    "mbrl2": ("Pendulum-v1", {**_MODEL_POLICY, "horizon": 2}),
    "world_model": ("Catch-bsuite", {**{k: v for k, v in _MODEL_BASED.items()
                                        if k not in ("ensemble_size", "num_particles")},
                                     "latent_dim": 4}),
    "dyna": ("Gridworld-v0", {"total_timesteps": 8, "num_steps": 4, "planning_steps": 2,
                              "eval_episodes": 0}),
    "ucb": ("KArmedBandit-v0", {"total_timesteps": 40, "log_frequency": 10}),
    "thompson": ("KArmedBandit-v0", {"total_timesteps": 40, "log_frequency": 10}),
    "egreedy": ("KArmedBandit-v0", {"total_timesteps": 40, "log_frequency": 10}),
    "bootstrapped_dqn": ("DeepSea-v0", {**_OFF_POLICY, "num_heads": 3}),
    "sft": ("Tokens-sort-v0", {**_PREFERENCES, "width": 8, "num_layers": 1, "num_heads": 2}),
    "reward_model": ("Tokens-sort-v0", {**_PREFERENCES, "width": 8, "num_layers": 1,
                                        "num_heads": 2, "heldout_fraction": 0.25}),
    "dpo": ("Tokens-sort-v0", _PREFERENCES),
    "ipo": ("Tokens-sort-v0", _PREFERENCES),
    "rlhf": ("Tokens-sort-v0", {**_ON_POLICY, "update_epochs": 2, "num_minibatches": 2,
                                "score_samples": 8}),
    "pref_rl": ("Pendulum-v1", {**_OFF_POLICY, "segment_length": 4, "max_queries": 4,
                                "query_interval": 2, "reward_batch_size": 4,
                                "reward_hidden_sizes": (8,)}),
}
