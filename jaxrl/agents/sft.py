"""Supervised fine-tuning (SFT): next-token cross-entropy on demonstrations.

Course notes §20.1 (RLHF, step 1): fit the policy to demonstrated sequences by maximum
likelihood, ``L(θ) = -E_{(s_{<t}, s_t) ~ D}[log π_θ(s_t | s_{<t})]``. On a token task each
transition of a ``jaxrl dataset`` file is one (prefix, next token) pair, so the loss is behaviour
cloning with a sequence model (``models.sequence``). The run directory is what later steps of
the pipeline name as the reference (``--reference RUN_DIR``).
"""

from __future__ import annotations

from typing import Any

import jax.numpy as jnp

from jaxrl.datasets import Dataset
from jaxrl.training import offline
from jaxrl.training import preferences as family
from jaxrl.training.agent import Agent, train_from_agent
from jaxrl.training.config import check_config

__all__ = ["Config", "make_agent", "make_train"]


class Config(family.ModelConfig):
    """SFT: the family's fields and the model's architecture."""


def make_agent(config: Config, env: Any, env_params: Any, dataset: Dataset | None = None) -> Agent:
    """SFT's ``init`` / ``update`` / ``act``; ``dataset`` holds (prefix, next token) pairs of
    the same token task (``jaxrl dataset --env Tokens-<task>-v0``)."""
    check_config(config)
    reward = family.hidden_reward_fn(env)
    data = offline.device_dataset(dataset, env, env_params, "sft")
    if int(jnp.max(data.action)) >= env_params.vocab_size:
        raise ValueError(f"the dataset's tokens go up to {int(jnp.max(data.action))} but the "
                         f"task's vocabulary has {env_params.vocab_size}; collect it on --env "
                         f"{env.env_id}")
    model = family.make_model(config, env_params)

    def loss_fn(params, batch):
        dist = model.apply(params, batch.obs, method="policy")
        log_probs = dist.log_prob(batch.action)
        return -log_probs.mean(), {"accuracy": jnp.mean(dist.mode() == batch.action)}

    return family.make_sequence_agent(
        config, lambda key: model.init(key, data.obs[:1]), loss_fn,
        lambda key: offline.sample(key, data, config.batch_size),
        lambda params, key: family.policy_report(key, model, params, None, reward,
                                                 config.eval_samples),
        family.sequence_act(model))


def make_train(config: Config, env: Any, env_params: Any, dataset: Dataset | None = None):
    """``train(key) -> (state, metrics)``: the whole run as one pure function."""
    return train_from_agent(make_agent(config, env, env_params, dataset))
