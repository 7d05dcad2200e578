"""The preferences family: sequence policies, preference files, the gradient loop, scoring.

Course notes §20.1 (RLHF algorithms and applications): SFT → a reward model from pairwise
preferences → a KL-regularised policy (RLHF with PPO, or DPO / IPO directly from the pairs). On the
token tasks (``jaxrl.envs.tokens``) the true reward is known, so every policy is scored exactly:

- ``eval_return``: the mean hidden reward of ``eval_samples`` sequences sampled from the policy;
- ``win_rate``: how often a policy sample beats an independent reference sample under the hidden
  reward (ties count ½; the reference against itself scores 50 % in expectation);
- ``kl``: ``KL(π ‖ π_ref)`` of whole sequences in nats, ``E_{y~π}[log π(y) - log π_ref(y)]``.

Pieces shared by the family's agents (``sft``, ``reward_model``, ``dpo``, ``ipo``, ``rlhf``):

- ``SequencePolicy``: a ``models.sequence.SequenceModel`` with its parameters — a *reference*
  (``--reference RUN_DIR``, ``load_sequence_policy``) or a reward model (``--reward-model``);
- ``Preferences``: pairs ``(chosen, rejected)`` of token sequences in an ``.npz`` file, written by
  ``jaxrl preferences`` (``make_preferences``) and validated on load (``load_preferences``);
- ``make_sequence_agent``: ``update`` = ``log_frequency`` gradient steps on minibatches, then an
  evaluation (``policy_report`` or the agent's own).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import struct

from jaxrl.losses.preferences import sequence_log_prob
from jaxrl.models.sequence import MODEL_KINDS, PAD, SequenceModel, sample, token_log_probs
from jaxrl.training.agent import Agent, Metrics, as_typed_key
from jaxrl.training.config import BaseConfig, check_log_frequency, hyper, static
from jaxrl.training.optim import adam

__all__ = ["ModelConfig", "PREFERENCE_KEYS", "PairwiseConfig", "PreferenceConfig", "Preferences",
           "SequencePolicy", "SequenceState", "best_of_n", "check_policy_fits", "hidden_reward_fn",
           "load_preferences", "load_sequence_policy", "make_model", "make_pairwise_agent",
           "make_preferences", "make_sequence_agent", "pair_log_probs", "policy_report",
           "pretrained", "resolve_inputs", "save_preferences", "sequence_act",
           "validate_preferences"]

PREFERENCE_KEYS = ("chosen", "rejected")


class PreferenceConfig(BaseConfig):
    """Fields every gradient agent of the family shares."""

    total_gradient_steps: int = static(2_000, ">= 1")
    """gradient steps of the whole run"""
    log_frequency: int = static(200, ">= 1")
    """gradient steps per logged row; the policy is evaluated at each"""
    batch_size: int = static(64, ">= 1")
    """sequences (or pairs) per gradient step"""
    eval_samples: int = static(64, ">= 1")
    """sequences sampled per logged row to score the policy"""
    learning_rate: float = hyper(3e-4, "> 0")
    """Adam step size"""
    max_grad_norm: float = hyper(1.0, "> 0")
    """global gradient-norm clip"""

    def validate(self) -> None:
        """``log_frequency <= total_gradient_steps`` (one logged row at least)."""
        super().validate()
        check_log_frequency(self)


class ModelConfig(PreferenceConfig):
    """``PreferenceConfig`` plus the architecture of a model trained from scratch (SFT, reward
    model); the agents that start from a reference take the reference's."""

    model: str = static("transformer", MODEL_KINDS)
    """sequence model: a causal transformer or a GRU"""
    width: int = static(64, ">= 1")
    """embedding / hidden width"""
    num_layers: int = static(2, ">= 1")
    """transformer blocks"""
    num_heads: int = static(4, ">= 1")
    """attention heads (must divide width)"""

    def validate(self) -> None:
        """``num_heads`` divides ``width``."""
        super().validate()
        if self.model == "transformer" and self.width % self.num_heads:
            raise ValueError(f"num_heads = {self.num_heads} must divide width = {self.width}")


def make_model(config: ModelConfig, env_params: Any) -> SequenceModel:
    """The sequence model of ``config`` sized for the token task ``env_params``."""
    return SequenceModel(env_params.vocab_size, env_params.max_length, config.width,
                         config.num_layers, config.num_heads, config.model)


class SequencePolicy(NamedTuple):
    """A sequence model and its parameters (a reference policy or a reward model)."""

    model: SequenceModel
    params: Any


def check_policy_fits(policy: SequencePolicy, env_params: Any, what: str) -> None:
    """``ValueError`` when ``policy`` was trained for another vocabulary or a shorter context."""
    model = policy.model
    if model.vocab_size != env_params.vocab_size:
        raise ValueError(f"the {what} has a vocabulary of {model.vocab_size} tokens but the task "
                         f"has {env_params.vocab_size}; train it on the same --env")
    if model.max_length < env_params.max_length:
        raise ValueError(f"the task's sequences ({env_params.max_length} tokens) are longer than "
                         f"the {what}'s context ({model.max_length}); train it on the same --env")


def load_sequence_policy(run_dir: str | Path, what: str = "reference") -> SequencePolicy:
    """The model of a ``jaxrl train sft`` / ``reward_model`` run directory (its first seed)."""
    from jaxrl.policy import load_policy

    loaded = load_policy(run_dir)
    if not hasattr(loaded.config, "width"):
        raise ValueError(f"{run_dir} is a {loaded.algo} run; the {what} must be a run of sft or "
                         "reward_model (a sequence model trained from scratch)")
    return SequencePolicy(make_model(loaded.config, loaded.env_params), loaded.params.params)


def pretrained(policy: SequencePolicy) -> tuple[Any, Callable[[Any], Any]]:
    """``(module, model_params)``: a flax module computing ``policy.model`` whose parameters
    *start* at ``policy.params`` (on-policy agents build and initialise their network
    themselves, so RLHF starts PPO from the reference through it), and the map from the module's
    variables back to ``policy.model``'s parameters."""
    import flax.linen as nn

    leaves, treedef = jax.tree.flatten(policy.params)
    shapes = tuple(np.shape(leaf) for leaf in leaves)

    class Pretrained(nn.Module):
        def setup(self):
            self.weights = [self.param(f"w{i}", lambda key, i=i: jnp.asarray(leaves[i]))
                            for i in range(len(shapes))]

        def _apply(self, obs, method):
            return policy.model.apply(jax.tree.unflatten(treedef, self.weights), obs,
                                      method=method)

        def __call__(self, obs):
            return self._apply(obs, None)

        def policy(self, obs):
            return self._apply(obs, "policy")

        def value(self, obs):
            return self._apply(obs, "value")

    def model_params(variables: Any) -> Any:
        return jax.tree.unflatten(treedef, [variables["params"][f"w{i}"]
                                            for i in range(len(shapes))])

    return Pretrained(), model_params


class Preferences(NamedTuple):
    """Pairs of token sequences ``chosen [N, L]`` ≻ ``rejected [N, L]`` (int32, ``PAD = -1``
    after each sequence) and a JSON-able ``metadata`` dict (env, vocab_size, max_length, …)."""

    chosen: np.ndarray
    rejected: np.ndarray
    metadata: dict[str, Any]


def validate_preferences(preferences: Preferences, env_params: Any = None) -> None:
    """Shapes, token range and (given ``env_params``) the task's vocabulary and length;
    ``ValueError`` naming what to fix."""
    chosen, rejected = preferences.chosen, preferences.rejected
    if chosen.ndim != 2 or chosen.shape != rejected.shape or not len(chosen):
        raise ValueError(f"preference file: chosen and rejected must both be [N, L] with N >= 1, "
                         f"got {chosen.shape} and {rejected.shape}")
    if not (np.issubdtype(chosen.dtype, np.integer) and np.issubdtype(rejected.dtype, np.integer)):
        raise ValueError(f"preference file: tokens must be integers, got {chosen.dtype}")
    if env_params is None:
        return
    largest = int(max(chosen.max(), rejected.max()))
    if largest >= env_params.vocab_size or min(chosen.min(), rejected.min()) < PAD:
        raise ValueError(f"preference file: tokens up to {largest} do not fit the task's "
                         f"vocabulary of {env_params.vocab_size} tokens ({PAD} pads); write it "
                         "for the same --env")
    if chosen.shape[1] > env_params.max_length:
        raise ValueError(f"preference file: sequences of {chosen.shape[1]} tokens are longer than "
                         f"the task's context of {env_params.max_length}")


def save_preferences(path: str | Path, preferences: Preferences) -> Path:
    """Write an ``.npz`` (``chosen``, ``rejected``, ``metadata`` as JSON)."""
    validate_preferences(preferences)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("wb") as handle:
        np.savez_compressed(handle, chosen=preferences.chosen.astype(np.int32),
                            rejected=preferences.rejected.astype(np.int32),
                            metadata=json.dumps(preferences.metadata))
    return path


def load_preferences(path: str | Path, env_params: Any = None) -> Preferences:
    """Read and validate a preference file; ``ValueError`` for a missing file or field."""
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"no preference file at {path}; write one with `jaxrl preferences "
                         "--reference RUN_DIR --pairs N --out FILE.npz`")
    try:
        with np.load(path, allow_pickle=False) as data:
            arrays = {key: data[key] for key in data.files}
    except (OSError, ValueError) as error:
        raise ValueError(f"{path} is not a readable .npz preference file ({error})") from None
    missing = [key for key in (*PREFERENCE_KEYS, "metadata") if key not in arrays]
    if missing:
        raise ValueError(f"preference file {path} lacks {', '.join(missing)}; it needs chosen, "
                         "rejected and metadata (write it with `jaxrl preferences`)")
    preferences = Preferences(arrays["chosen"], arrays["rejected"],
                              json.loads(str(arrays["metadata"])))
    validate_preferences(preferences, env_params)
    return preferences


def hidden_reward_fn(env: Any) -> Callable[[jax.Array], jax.Array]:
    """``reward(tokens [..., L]) -> [...]``: the token task's hidden score of whole sequences."""
    from jaxrl.envs.tokens import sequence_reward

    task = getattr(env, "task", None)
    if task is None:
        raise ValueError(f"{getattr(env, 'env_id', env)} is not a token task; the preferences "
                         "family runs on Tokens-<task>-v0 envs (`jaxrl envs`)")
    return lambda tokens: sequence_reward(task, tokens)


def make_preferences(key: jax.Array, reference: SequencePolicy, env: Any, pairs: int,
                     noise: float) -> tuple[jax.Array, jax.Array, jax.Array]:
    """``(chosen, rejected, p_true)``: ``pairs`` independent pairs sampled from the reference,
    labelled by Bradley–Terry on the hidden reward ``P(a ≻ b) = σ((r(a) - r(b)) / noise)``
    (``noise = 0``: the better one, ties by a coin)."""
    reward = hidden_reward_fn(env)
    sample_key, label_key = jax.random.split(as_typed_key(key))
    tokens, _ = sample(reference.model, reference.params, sample_key, 2 * pairs)
    first, second = tokens[:pairs], tokens[pairs:]
    difference = reward(first) - reward(second)
    p_first = (jax.nn.sigmoid(difference / noise) if noise > 0
               else 0.5 + 0.5 * jnp.sign(difference))
    first_wins = jax.random.uniform(label_key, (pairs,)) < p_first
    chosen = jnp.where(first_wins[:, None], first, second)
    rejected = jnp.where(first_wins[:, None], second, first)
    return chosen, rejected, jnp.where(first_wins, p_first, 1.0 - p_first)


def pair_log_probs(model: SequenceModel, params: Any, chosen: jax.Array,
                   rejected: jax.Array) -> tuple[jax.Array, jax.Array]:
    """Sequence log-probs ``(log π(y_w), log π(y_l))`` ``[B]`` in one forward pass."""
    tokens = jnp.concatenate([chosen, rejected])
    log_probs = token_log_probs(model.apply(params, tokens, method="logits"), tokens)
    sequence = sequence_log_prob(log_probs, tokens != PAD)
    return sequence[: len(chosen)], sequence[len(chosen):]


def policy_report(key: jax.Array, model: SequenceModel, params: Any,
                  reference: SequencePolicy | None, reward: Callable[[jax.Array], jax.Array],
                  samples: int) -> Metrics:
    """``eval_return`` (mean hidden reward of policy samples) and, against a reference,
    ``win_rate`` and ``kl`` (module docstring)."""
    policy_key, reference_key = jax.random.split(key)
    tokens, log_probs = sample(model, params, policy_key, samples)
    hidden = reward(tokens)
    metrics = {"eval_return": hidden.mean()}
    if reference is not None:
        reference_tokens, _ = sample(reference.model, reference.params, reference_key, samples)
        reference_hidden = reward(reference_tokens)
        metrics["win_rate"] = jnp.mean((hidden > reference_hidden)
                                       + 0.5 * (hidden == reference_hidden))
        reference_log_probs = token_log_probs(
            reference.model.apply(reference.params, tokens, method="logits"), tokens)
        metrics["kl"] = jnp.mean(log_probs.sum(-1) - reference_log_probs.sum(-1))
    return metrics


def best_of_n(key: jax.Array, reference: SequencePolicy, reward_model: SequencePolicy, n: int,
              batch: int) -> jax.Array:
    """Best-of-n under the reward model: for each of ``batch`` outputs, sample ``n`` sequences
    from the reference and keep the one the reward model scores highest, ``[batch, L]``. Its KL
    to the reference is at most ``log n - (n - 1) / n`` nats (Stiennon et al., 2020)."""
    tokens, _ = sample(reference.model, reference.params, key, n * batch)
    scores = reward_model.model.apply(reward_model.params, tokens, method="score")
    best = jnp.argmax(scores.reshape(batch, n), axis=-1)
    return tokens.reshape(batch, n, -1)[jnp.arange(batch), best]


class SequenceState(struct.PyTreeNode):
    """The whole state of a run: parameters, optimiser state, key, gradient steps done."""

    params: Any
    opt_state: Any
    key: jax.Array
    step: jax.Array


def sequence_act(model: SequenceModel) -> Callable[..., jax.Array]:
    """``act(state, obs, key, deterministic)``: the next token of each prefix ``obs [B, L]``."""

    def act(state: SequenceState, obs: jax.Array, key: jax.Array,
            deterministic: bool = False) -> jax.Array:
        dist = model.apply(state.params, obs, method="policy")
        return dist.mode() if deterministic else dist.sample(seed=key)

    return act


def make_sequence_agent(config: PreferenceConfig, init_params: Callable[[jax.Array], Any],
                        loss_fn: Callable[[Any, Any], tuple[jax.Array, Metrics]],
                        sample_batch: Callable[[jax.Array], Any],
                        evaluate: Callable[[Any, jax.Array], Metrics],
                        act: Callable[..., jax.Array]) -> Agent:
    """The ``Agent`` of a gradient method on fixed data (module docstring).

    ``loss_fn(params, batch) -> (loss, metrics)``; ``evaluate(params, key) -> metrics``.
    ``num_updates = total_gradient_steps // log_frequency``.
    """
    optimizer = adam(config.learning_rate, config.max_grad_norm)

    def init(key: jax.Array) -> SequenceState:
        key, init_key = jax.random.split(as_typed_key(key))
        params = init_params(init_key)
        return SequenceState(params, optimizer.init(params), key, jnp.zeros((), jnp.int32))

    def update(state: SequenceState) -> tuple[SequenceState, Metrics]:
        key, steps_key, eval_key = jax.random.split(state.key, 3)

        def gradient_step(carry, step_key):
            params, opt_state = carry
            (loss, metrics), grads = jax.value_and_grad(loss_fn, has_aux=True)(
                params, sample_batch(step_key))
            updates, opt_state = optimizer.update(grads, opt_state, params)
            return (optax.apply_updates(params, updates), opt_state), {"loss": loss, **metrics}

        (params, opt_state), metrics = jax.lax.scan(
            gradient_step, (state.params, state.opt_state),
            jax.random.split(steps_key, config.log_frequency))
        metrics = jax.tree.map(jnp.mean, metrics)
        metrics.update(evaluate(params, eval_key))
        step = state.step + config.log_frequency
        metrics["step"] = step
        return SequenceState(params, opt_state, key, step), metrics

    return Agent(init=init, update=update, act=act,
                 num_updates=config.total_gradient_steps // config.log_frequency,
                 steps_per_update=config.log_frequency, step_unit="gradient steps")


class PairwiseConfig(PreferenceConfig):
    """Fields of the agents that fit a policy to preference pairs against a reference (DPO,
    IPO)."""

    reference: str = static("")
    """run directory of the reference policy (`jaxrl train sft`); the policy starts there"""
    preferences: str = static("")
    """the .npz preference file (`jaxrl preferences`)"""
    learning_rate: float = hyper(1e-4, "> 0")
    """Adam step size"""


def resolve_inputs(config: Any, env_params: Any, algo: str, reference: SequencePolicy | None,
                   preferences: Preferences | None = None, *, needs_preferences: bool = True
                   ) -> tuple[SequencePolicy, Preferences | None]:
    """The reference (and preference pairs): the objects given, else loaded from the run
    directory / file the config names; ``ValueError`` saying which flag is missing."""
    if reference is None:
        if not config.reference:
            raise ValueError(f"{algo} regularises towards a reference policy: pass --reference "
                             "RUN_DIR (a `jaxrl train sft` run on the same --env)")
        reference = load_sequence_policy(config.reference)
    check_policy_fits(reference, env_params, "reference")
    if needs_preferences and preferences is None:
        if not config.preferences:
            raise ValueError(f"{algo} learns from preference pairs: pass --preferences FILE.npz "
                             "(write one with `jaxrl preferences --reference RUN_DIR`)")
        preferences = load_preferences(config.preferences, env_params)
    if preferences is not None:
        validate_preferences(preferences, env_params)
    return reference, preferences


def make_pairwise_agent(config: PairwiseConfig, env: Any, env_params: Any, algo: str,
                        reference: SequencePolicy | None, preferences: Preferences | None,
                        loss: Callable[..., jax.Array]) -> Agent:
    """A policy fitted to preference pairs, starting at the reference:
    ``loss(log π(y_w), log π(y_l), log π_ref(y_w), log π_ref(y_l))`` per minibatch of pairs
    (the reference's log-probs computed once for the whole file)."""
    reward = hidden_reward_fn(env)
    reference, preferences = resolve_inputs(config, env_params, algo, reference, preferences)
    model = reference.model
    chosen = jnp.asarray(preferences.chosen, jnp.int32)
    rejected = jnp.asarray(preferences.rejected, jnp.int32)
    reference_chosen, reference_rejected = pair_log_probs(model, reference.params, chosen,
                                                          rejected)

    def loss_fn(params, indices):
        policy_chosen, policy_rejected = pair_log_probs(model, params, chosen[indices],
                                                        rejected[indices])
        margin = ((policy_chosen - reference_chosen[indices])
                  - (policy_rejected - reference_rejected[indices]))
        value = loss(policy_chosen, policy_rejected, reference_chosen[indices],
                     reference_rejected[indices])
        return value, {"margin": margin.mean(), "pair_accuracy": jnp.mean(margin > 0)}

    return make_sequence_agent(
        config, lambda key: jax.tree.map(jnp.asarray, reference.params), loss_fn,
        lambda key: jax.random.randint(key, (config.batch_size,), 0, len(chosen)),
        lambda params, key: policy_report(key, model, params, reference, reward,
                                          config.eval_samples),
        sequence_act(model))
