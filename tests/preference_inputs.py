"""In-memory inputs of the preferences family for tests: a demonstration dataset, preference
pairs, and tiny sequence models as the reference and the reward model (``tiny_inputs`` gives
``make_agent``'s keyword arguments of each algorithm; ``tests/test_determinism.py`` uses it)."""

from __future__ import annotations

from typing import Any

import jax
import numpy as np

from jaxrl.datasets import Dataset
from jaxrl.envs.tokens import EOS, PAD, demonstrator
from jaxrl.models.sequence import SequenceModel
from jaxrl.training.preferences import Preferences, SequencePolicy

__all__ = ["TINY_MODEL", "demonstrations", "tiny_inputs", "tiny_pairs", "tiny_policy"]

TINY_MODEL = {"width": 8, "num_layers": 1, "num_heads": 2}


def demonstrations(env: Any, env_params: Any, episodes: int = 2) -> Dataset:
    """The scripted demonstrator's episodes as a dataset (one transition per token)."""
    expert = demonstrator(env.task)

    @jax.jit
    def step(state, obs):
        action = expert(obs[None])[0]
        return action, env.step(jax.random.key(0), state, action, env_params)

    observations, actions, rewards, terminated = [], [], [], []
    for _ in range(episodes):
        obs, state = env.reset(jax.random.key(0), env_params)
        done = False
        while not done:
            observations.append(np.asarray(obs))
            action, (obs, state, reward, done, _, _) = step(state, obs)
            actions.append(int(action))
            rewards.append(float(reward))
            terminated.append(bool(done))
    size = len(actions)
    observations = np.stack(observations).astype(np.float32)
    return Dataset(observations=observations, actions=np.asarray(actions, np.int32),
                   rewards=np.asarray(rewards, np.float32),
                   next_observations=np.roll(observations, -1, 0),
                   terminated=np.asarray(terminated), truncated=np.zeros(size, bool),
                   log_probs=np.zeros(size, np.float32), metadata={"env": env.env_id})


def tiny_pairs(env_params: Any, pairs: int = 8) -> Preferences:
    """Sorted sequences preferred over shuffled ones of the same symbols."""
    rng = np.random.default_rng(0)
    length = env_params.max_length
    chosen = np.full((pairs, length), PAD, np.int32)
    rejected = np.full((pairs, length), PAD, np.int32)
    for i in range(pairs):
        size = int(rng.integers(2, length - 1))
        symbols = np.sort(rng.choice(np.arange(1, env_params.vocab_size), size, replace=False))
        chosen[i, :size + 1] = [*symbols, EOS]
        rejected[i, :size + 1] = [*rng.permutation(symbols), EOS]
    return Preferences(chosen, rejected, {"env": "Tokens-sort-v0"})


def tiny_policy(env_params: Any, seed: int = 0) -> SequencePolicy:
    """A randomly initialised tiny sequence model (a stand-in reference or reward model)."""
    model = SequenceModel(env_params.vocab_size, env_params.max_length, **TINY_MODEL)
    tokens = np.full((1, env_params.max_length), PAD, np.int32)
    return SequencePolicy(model, jax.jit(model.init)(jax.random.key(seed), tokens))


def tiny_inputs(algo: str, env: Any, env_params: Any) -> dict[str, Any]:
    """``make_agent``'s extra keyword arguments for ``algo`` of the preferences family."""
    if algo == "sft":
        return {"dataset": demonstrations(env, env_params)}
    if algo == "reward_model":
        return {"preferences": tiny_pairs(env_params)}
    if algo in ("dpo", "ipo"):
        return {"reference": tiny_policy(env_params), "preferences": tiny_pairs(env_params)}
    if algo == "rlhf":
        return {"reference": tiny_policy(env_params), "reward_model": tiny_policy(env_params, 1)}
    return {}
