"""Adversarial imitation: a discriminator trained inside a reward transform (GAIL, AIRL, DAC).

Course notes §20 ("IRL can be treated as a GAN"): a discriminator ``D_ψ`` tells expert
transitions from the policy's by logistic regression,

    ψ ← argmin  −E_expert[log D_ψ] − E_policy[log(1 − D_ψ)],

and the policy is rewarded for fooling it. Here ``D = σ(logit)`` and

- **GAIL** (Ho & Ermon, 2016): ``logit = f_ψ(s, a)``, an MLP; reward ``−log(1 − D) = softplus(
  logit)``.
- **AIRL** (Fu et al., 2018): ``D = exp f / (exp f + π(a|s))`` with the disentangled
  ``f(s, a, s') = g(s) + γ (1 − terminated) h(s') − h(s)``, i.e. ``logit = f − log π(a|s)``;
  reward ``log D − log(1 − D) = f − log π``. ``g`` is a state-only reward, ``h`` a shaping
  potential: at the optimum ``g`` recovers the reward up to a constant (the notes' "we don't
  need the importance weights anymore": ``π`` plays the role of the sampler's density).
- **DAC** (Kostrikov et al., 2019): GAIL's discriminator on replayed transitions, reward
  ``log D − log(1 − D) = logit`` (either sign, so no survival bias); transitions into an
  absorbing state (``terminated``) are scored as ``(s_absorbing, ·)`` thereafter by the
  learner's own target (``dac``).

Sample-based MaxEnt IRL (**guided cost learning**, Finn et al., 2016; the notes' "Approximations
in High Dimensions") trains a reward ``r_ψ(s, a)`` instead of a classifier, by the likelihood of
the demonstrations with ``log Z`` estimated from the policy's own segments ``τ_j`` by
self-normalised importance sampling: ``L(ψ) = (1/N) Σ_i r_ψ(τ_i) − log (1/M) Σ_j w_j``,
``w_j = exp(r_ψ(τ_j)) / π(τ_j)``, whose gradient is the notes' ``(1/N) Σ_i ∇r_ψ(τ_i) −
(1 / Σ_j w_j) Σ_j w_j ∇r_ψ(τ_j)`` (``importance_weighted_loss``, ``make_gcl_transform``).

An optional gradient penalty ``λ E_x̂[(‖∇_x̂ logit(x̂)‖ − 1)²]`` on random interpolates of expert
and policy inputs (Gulrajani et al., 2017; used by DAC) keeps the discriminator smooth.

``make_reward_transform`` builds the ``training.extensions.RewardTransform``: each call trains
the discriminator ``disc_steps`` minibatch steps on the collected transitions against expert
minibatches, then rewrites their rewards with the updated discriminator. Its state (the
discriminator's parameters and optimiser, and for AIRL the policy it scores) is checkpointed
with the run. Inputs are standardised with the expert data's statistics; continuous actions are
clipped to the env's bounds, as recorded in datasets.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any, NamedTuple

import flax.linen as nn
import jax
import jax.numpy as jnp
from flax import struct

from jaxrl.datasets import Dataset, Transitions
from jaxrl.envs.spaces import Discrete, Space
from jaxrl.models.torsos import MLP
from jaxrl.rollout import Transition
from jaxrl.training import proximal
from jaxrl.training.config import ACTIVATIONS, BaseConfig, hyper, static
from jaxrl.training.extensions import RewardTransform
from jaxrl.training.offline import device_dataset
from jaxrl.training.optim import apply_gradients, flat_adam

__all__ = ["KINDS", "REWARD_FORMS", "AIRLDiscriminator", "AdversarialState", "Discriminator",
           "DiscriminatorConfig", "DiscriminatorInputs", "PPOImitationConfig", "SADiscriminator",
           "absorbing_rewards", "demonstrations", "discriminator_loss", "gradient_penalty",
           "importance_weighted_loss", "make_discriminator", "make_gcl_transform",
           "make_reward_transform", "minibatch_steps", "reward_from_run", "state_reward",
           "state_reward_transform", "subsample"]

KINDS = ("gail", "airl", "dac")
"""The discriminator kinds of ``make_discriminator``."""
REWARD_FORMS = ("softplus", "log_d", "logit")
"""A GAIL discriminator's policy rewards: ``−log(1 − D)``, ``log D``, ``log D − log(1 − D)``."""


class DiscriminatorConfig(BaseConfig):
    """The discriminator's fields, shared by GAIL, AIRL and DAC."""

    disc_hidden_sizes: tuple[int, ...] = static((64, 64))
    """hidden layer widths of the discriminator"""
    disc_activation: str = static("tanh", ACTIVATIONS)
    """activation of the discriminator"""
    disc_steps: int = static(4, ">= 1")
    """discriminator minibatch steps per collected batch"""
    disc_batch_size: int = static(128, ">= 1")
    """policy and expert transitions per discriminator step (each)"""
    disc_learning_rate: float = hyper(3e-4, "> 0")
    """Adam step size of the discriminator"""
    demo_subsample: int = static(1, ">= 1")
    """keep every k-th demonstration transition (GAIL's sparse demonstrations)"""
    grad_penalty: float = hyper(0.0, ">= 0")
    """weight λ of the gradient penalty on expert/policy interpolates (0: none)"""


class PPOImitationConfig(proximal.ProximalConfig, DiscriminatorConfig):
    """PPO's fields (training.proximal) and the discriminator's (``DiscriminatorConfig``):
    GAIL, AIRL and GCL."""


class DiscriminatorInputs(struct.PyTreeNode):
    """One minibatch the discriminator scores: ``[B, ...]`` each."""

    obs: jax.Array
    action: jax.Array
    next_obs: jax.Array
    terminated: jax.Array
    log_prob: jax.Array
    """log π(a|s) of the current policy (AIRL; zeros otherwise)"""
    absorbing: jax.Array
    """1 for DAC's absorbing state (observation and action then ignored), else 0"""


class SADiscriminator(nn.Module):
    """GAIL / DAC: ``logit = f(s, a)``, an MLP on the standardised observation and action."""

    hidden_sizes: tuple[int, ...]
    activation: str

    @nn.compact
    def __call__(self, x: DiscriminatorInputs, gamma: jax.Array) -> jax.Array:
        live = 1.0 - x.absorbing[..., None]
        features = jnp.concatenate([x.obs * live, x.action * live, x.absorbing[..., None]], -1)
        return nn.Dense(1)(MLP(self.hidden_sizes, self.activation)(features))[..., 0]


class AIRLDiscriminator(nn.Module):
    """AIRL: ``logit = g(s) + γ (1 − terminated) h(s') − h(s) − log π(a|s)``."""

    hidden_sizes: tuple[int, ...]
    activation: str

    def setup(self):
        self.g = nn.Sequential([MLP(self.hidden_sizes, self.activation), nn.Dense(1)])
        self.h = nn.Sequential([MLP(self.hidden_sizes, self.activation), nn.Dense(1)])

    def reward(self, obs: jax.Array) -> jax.Array:
        """The disentangled state reward ``g(s)``."""
        return self.g(obs)[..., 0]

    def __call__(self, x: DiscriminatorInputs, gamma: jax.Array) -> jax.Array:
        shaping = (gamma * (1.0 - x.terminated) * self.h(x.next_obs)[..., 0]
                   - self.h(x.obs)[..., 0])
        return self.reward(x.obs) + shaping - x.log_prob


def discriminator_loss(expert_logits: jax.Array, policy_logits: jax.Array,
                       expert_weights: jax.Array | None = None,
                       policy_weights: jax.Array | None = None) -> jax.Array:
    """``−E_expert[log σ(l)] − E_policy[log(1 − σ(l))]`` (stable: softplus); optional
    per-sample weights (DAC's absorbing samples count only after a termination)."""
    def mean(values, weights):
        if weights is None:
            return values.mean()
        return (values * weights).sum() / jnp.maximum(weights.sum(), 1.0)

    return (mean(jax.nn.softplus(-expert_logits), expert_weights)
            + mean(jax.nn.softplus(policy_logits), policy_weights))


def gradient_penalty(logit_fn: Callable[[DiscriminatorInputs], jax.Array],
                     expert: DiscriminatorInputs, policy: DiscriminatorInputs,
                     key: jax.Array) -> jax.Array:
    """``E_x̂[(‖∇_x̂ logit(x̂)‖ − 1)²]`` with ``x̂ = ε x_E + (1 − ε) x_π``, ``ε ~ U[0, 1]`` per
    pair, over the continuous inputs (observations and actions)."""
    epsilon = jax.random.uniform(key, expert.terminated.shape)

    def mix(a, b):
        e = epsilon.reshape(epsilon.shape + (1,) * (a.ndim - 1))
        return e * a + (1 - e) * b

    mixed = expert.replace(obs=mix(expert.obs, policy.obs), action=mix(expert.action,
                                                                       policy.action),
                           next_obs=mix(expert.next_obs, policy.next_obs))

    def single(x):
        return logit_fn(jax.tree.map(lambda v: v[None], x))[0]

    grads = jax.vmap(jax.grad(single))(mixed)
    norm = jnp.sqrt(sum((g.reshape(g.shape[0], -1) ** 2).sum(-1)
                        for g in (grads.obs, grads.action, grads.next_obs)) + 1e-12)
    return ((norm - 1.0) ** 2).mean()


class AdversarialState(struct.PyTreeNode):
    """The discriminator's parameters and optimiser state; for AIRL, the policy it scores
    (``policy``: whatever ``log_prob_fn`` reads, refreshed by the agent before each update)."""

    params: Any
    opt_state: Any
    policy: Any = None


def absorbing_rewards(logit_fn: Callable[[DiscriminatorInputs], jax.Array],
                      x: DiscriminatorInputs, gamma: float | jax.Array) -> jax.Array:
    """DAC's rewards with absorbing states: ``r = logit(s, a) + terminated · γ r_a / (1 − γ)``.

    A terminating transition continues into the absorbing state ``s_a``, which loops forever
    with reward ``r_a = logit(s_a)``; the learner's target does not bootstrap past the
    termination, so the absorbing state's discounted value ``γ r_a / (1 − γ)`` is added to the
    transition's reward instead (whatever the learner: TD3 or SAC)."""
    absorbing_reward = logit_fn(x.replace(absorbing=jnp.ones_like(x.absorbing)))
    return logit_fn(x) + x.terminated * gamma * absorbing_reward / jnp.maximum(1.0 - gamma,
                                                                                1e-3)


def demonstrations(dataset: Dataset | None, env: Any, env_params: Any, algo: str,
                   every: int) -> Transitions:
    """The expert's transitions (``--dataset``, checked against the env), every ``every``-th."""
    return subsample(device_dataset(dataset, env, env_params, algo), every)


def subsample(data: Transitions, every: int) -> Transitions:
    """Every ``every``-th transition (GAIL's sparse demonstrations)."""
    return jax.tree.map(lambda x: x[::every], data)


class Discriminator(NamedTuple):
    """The pure pieces of one discriminator (``make_discriminator``)."""

    init: Callable[[jax.Array, Any], AdversarialState]
    """``init(key, policy) -> state``"""
    inputs: Callable[..., DiscriminatorInputs]
    """``inputs(obs, action, next_obs, terminated, log_prob)``: standardised, actions encoded"""
    logits: Callable[[Any, DiscriminatorInputs], jax.Array]
    """``logits(params, inputs) -> [B]``"""
    train: Callable[[AdversarialState, DiscriminatorInputs, jax.Array],
                    tuple[AdversarialState, dict[str, jax.Array]]]
    """``train(state, collected, key)``: ``disc_steps`` minibatch steps against the expert"""


def minibatch_steps(config: DiscriminatorConfig, optimizer: Any, loss_fn: Callable[..., Any],
                    state: AdversarialState, collected: DiscriminatorInputs,
                    expert: Transitions, expert_inputs: Callable[[Transitions],
                                                                 DiscriminatorInputs],
                    key: jax.Array) -> tuple[AdversarialState, dict[str, jax.Array]]:
    """``disc_steps`` Adam steps on ``loss_fn(params, expert_batch, policy_batch, key) ->
    (loss, metrics)``, each on ``disc_batch_size`` collected and expert transitions drawn with
    replacement (the discriminators' and GCL's reward network's one training loop); metrics
    averaged over the steps."""
    def step(carry, step_key):
        params, opt_state = carry
        policy_key, expert_key, loss_key = jax.random.split(step_key, 3)
        policy_index = jax.random.randint(policy_key, (config.disc_batch_size,), 0,
                                          collected.terminated.shape[0])
        expert_index = jax.random.randint(expert_key, (config.disc_batch_size,), 0,
                                          expert.reward.shape[0])
        expert_batch = expert_inputs(jax.tree.map(lambda x: x[expert_index], expert))
        grads, metrics = jax.grad(loss_fn, has_aux=True)(
            params, expert_batch, jax.tree.map(lambda x: x[policy_index], collected), loss_key)
        params, opt_state = apply_gradients(optimizer, grads, opt_state, params)
        return (params, opt_state), metrics

    (params, opt_state), metrics = jax.lax.scan(
        step, (state.params, state.opt_state), jax.random.split(key, config.disc_steps))
    return (state.replace(params=params, opt_state=opt_state),
            {name: value.mean() for name, value in metrics.items()})


def make_discriminator(kind: str, config: DiscriminatorConfig, expert: Transitions,
                       action_space: Space, gamma: float | jax.Array,
                       log_prob_fn: Callable[[Any, jax.Array, jax.Array], jax.Array]
                       | None = None, absorbing: bool = False) -> Discriminator:
    """A discriminator of ``kind`` in ``KINDS`` trained against ``expert`` (module docstring).

    AIRL needs ``log_prob_fn(policy, obs, actions) -> log π(a|s)`` (the state's ``policy``).
    With ``absorbing``, every terminating transition (expert or collected) also contributes an
    absorbing-state sample to its side of the loss (DAC).
    """
    if kind not in KINDS:
        raise ValueError(f"kind must be one of {', '.join(KINDS)}, got {kind!r}")
    if kind == "airl" and log_prob_fn is None:
        raise ValueError("airl scores transitions with the policy's log-probs: pass log_prob_fn")
    module = (AIRLDiscriminator if kind == "airl" else SADiscriminator)(
        tuple(config.disc_hidden_sizes), config.disc_activation)
    optimizer = flat_adam(config.disc_learning_rate)
    mean = expert.obs.mean(0)
    std = jnp.maximum(expert.obs.std(0), 1e-3)
    discrete = isinstance(action_space, Discrete)

    def encode_action(action):
        if discrete:
            return jax.nn.one_hot(action, action_space.n)
        low, high = action_space.low, action_space.high
        return 2.0 * (jnp.clip(action, low, high) - low) / (high - low) - 1.0

    def inputs(obs, action, next_obs, terminated, log_prob):
        return DiscriminatorInputs((obs - mean) / std, encode_action(action),
                                   (next_obs - mean) / std, terminated.astype(jnp.float32),
                                   log_prob, jnp.zeros(terminated.shape, jnp.float32))

    def with_absorbing(batch: DiscriminatorInputs) -> tuple[DiscriminatorInputs, jax.Array]:
        """``batch`` and its absorbing copies, with weights (the copies count where the
        transition terminated)."""
        ones = jnp.ones_like(batch.terminated)
        if not absorbing:
            return batch, ones
        copies = batch.replace(absorbing=ones, terminated=ones)
        return (jax.tree.map(lambda a, b: jnp.concatenate([a, b]), batch, copies),
                jnp.concatenate([ones, batch.terminated]))

    def logits(params, x: DiscriminatorInputs) -> jax.Array:
        return module.apply(params, x, gamma)

    def init(key: jax.Array, policy: Any = None) -> AdversarialState:
        dummy = inputs(expert.obs[:1], expert.action[:1], expert.next_obs[:1],
                       expert.terminated[:1], jnp.zeros(1))
        params = module.init(key, dummy, jnp.asarray(gamma, jnp.float32))
        return AdversarialState(params, optimizer.init(params), policy)

    def loss_fn(params, expert_batch, policy_batch, key):
        expert_all, expert_weights = with_absorbing(expert_batch)
        policy_all, policy_weights = with_absorbing(policy_batch)
        expert_logits, policy_logits = logits(params, expert_all), logits(params, policy_all)
        loss = discriminator_loss(expert_logits, policy_logits, expert_weights, policy_weights)
        penalty = gradient_penalty(partial(logits, params), expert_batch, policy_batch, key)
        return loss + config.grad_penalty * penalty, {
            "disc_loss": loss, "disc_expert_accuracy": (expert_logits > 0).mean(),
            "disc_policy_accuracy": (policy_logits < 0).mean()}

    def train(state: AdversarialState, collected: DiscriminatorInputs,
              key: jax.Array) -> tuple[AdversarialState, dict[str, jax.Array]]:
        def expert_inputs(batch: Transitions) -> DiscriminatorInputs:
            log_prob = (log_prob_fn(state.policy, batch.obs, batch.action) if kind == "airl"
                        else jnp.zeros(batch.reward.shape))
            return inputs(batch.obs, batch.action, batch.next_obs, batch.terminated, log_prob)

        return minibatch_steps(config, optimizer, loss_fn, state, collected, expert,
                               expert_inputs, key)

    return Discriminator(init, inputs, logits, train)


def make_reward_transform(kind: str, config: DiscriminatorConfig, expert: Transitions,
                          action_space: Space, gamma: float | jax.Array,
                          log_prob_fn: Callable[[Any, jax.Array, jax.Array], jax.Array]
                          | None = None, initial_policy: Any = None,
                          reward_form: str = "softplus") -> RewardTransform:
    """The discriminator as a ``RewardTransform`` of the on-policy loop (module docstring):
    trained on each rollout, then scoring it; GAIL's rewards in ``reward_form`` (one of
    ``REWARD_FORMS``: ``softplus(l) = −log(1 − D)``, ``−softplus(−l) = log D``, or ``l``). AIRL
    reads log π of the rollout's actions from ``traj.extras["log_prob"]`` and of the expert's
    through ``log_prob_fn`` and the state's ``policy`` (``initial_policy`` at init).
    """
    discriminator = make_discriminator(kind, config, expert, action_space, gamma, log_prob_fn)

    def init(key: jax.Array, observation_space: Space, space: Space) -> AdversarialState:
        return discriminator.init(key, initial_policy)

    def apply(state: AdversarialState, traj: Transition, key: jax.Array):
        flat = jax.tree.map(lambda x: x.reshape((-1, *x.shape[traj.reward.ndim:])),
                            (traj.obs, traj.action, traj.next_obs, traj.terminated))
        log_prob = (traj.extras["log_prob"].reshape(-1) if kind == "airl"
                    else jnp.zeros(flat[0].shape[0]))
        collected = discriminator.inputs(*flat, log_prob)
        state, metrics = discriminator.train(state, collected, key)
        logits = discriminator.logits(state.params, collected)
        if kind in ("airl", "dac") or reward_form == "logit":
            rewards = logits
        elif reward_form == "log_d":
            rewards = -jax.nn.softplus(-logits)
        else:
            rewards = jax.nn.softplus(logits)
        metrics["learned_reward"] = rewards.mean()
        return rewards.reshape(traj.reward.shape), state, metrics

    return RewardTransform(init, apply)


def state_reward(config: DiscriminatorConfig,
                 expert: Transitions) -> Callable[[Any, jax.Array], jax.Array]:
    """AIRL's disentangled state reward ``g(params, obs [B, ...]) -> [B]``, on observations
    standardised by the expert's statistics (as the discriminator's inputs are)."""
    module = AIRLDiscriminator(tuple(config.disc_hidden_sizes), config.disc_activation)
    mean, std = expert.obs.mean(0), jnp.maximum(expert.obs.std(0), 1e-3)

    def g(params: Any, obs: jax.Array) -> jax.Array:
        return module.apply(params, (obs - mean) / std, method=AIRLDiscriminator.reward)

    return g


def state_reward_transform(config: DiscriminatorConfig, expert: Transitions,
                           params: Any) -> RewardTransform:
    """A trained AIRL discriminator's ``g`` frozen as a ``RewardTransform``: ``r_t = g(s_t)``.

    AIRL's reward transfer (course notes §20: the disentangled reward is meant to stay the
    expert's under changed dynamics), for a loop that re-optimises it from scratch. The
    discriminator's parameters are the transform's state, so they are checkpointed (and
    vmapped over seeds) with the new run; its ``learned_reward`` metric is the mean of ``g``
    over each batch (``episode_return`` stays the env's)."""
    g = state_reward(config, expert)

    def init(key: jax.Array, observation_space: Space, action_space: Space) -> Any:
        return params

    def apply(params: Any, traj: Transition, key: jax.Array):
        obs = traj.obs.reshape((-1, *traj.obs.shape[traj.reward.ndim:]))
        reward = g(params, obs).reshape(traj.reward.shape)
        return reward, params, {"learned_reward": reward.mean()}

    return RewardTransform(init, apply)


def reward_from_run(run_dir: str, env: Any, env_params: Any) -> RewardTransform:
    """``state_reward_transform`` of the saved ``airl`` run ``run_dir`` (its first seed, newest
    checkpoint; ``sac --reward-from-run``), for ``env`` of the run's observation shape (its
    dynamics may differ: ``--env-arg``); one ``ValueError`` naming the flag otherwise."""
    from jaxrl import datasets, envs
    from jaxrl.policy import load_policy
    from jaxrl.run_dir import read_run

    flag = f"--reward-from-run {run_dir}"
    if not Path(run_dir).is_dir():
        raise ValueError(f"{flag}: no run directory there; pass the out directory of a "
                         "`jaxrl train airl` run")
    spec = read_run(run_dir)
    if spec.algo != "airl":
        raise ValueError(f"{flag}: a {spec.algo} run; the reward comes from an airl run's "
                         "g(s) (`jaxrl train airl --dataset FILE`)")
    run_env, run_params = envs.make(spec.env_id, **spec.env_kwargs)
    theirs = tuple(run_env.observation_space(run_params).shape)
    ours = tuple(env.observation_space(env_params).shape)
    if theirs != ours:
        raise ValueError(f"{flag}: its g(s) reads observations of shape {theirs} "
                         f"({spec.env_id}), this env's are {ours}; pass --env {spec.env_id} "
                         f"(--env-arg to change its dynamics)")
    policy = load_policy(run_dir)
    dataset = datasets.load(spec.dataset, policy.env, policy.env_params, policy.env_id)
    expert = demonstrations(dataset, policy.env, policy.env_params, "airl",
                            policy.config.demo_subsample)
    return state_reward_transform(policy.config, expert,
                                  policy.params.rollout.reward_state.params)


def importance_weighted_loss(expert_rewards: jax.Array, segment_rewards: jax.Array,
                             segment_log_probs: jax.Array) -> jax.Array:
    """``−L(ψ) = −[T · mean(expert_rewards) − log (1/M) Σ_j exp(Σ_t r_tj − Σ_t log π_tj)]``.

    ``expert_rewards [B]``: ``r_ψ`` of expert transitions (a trajectory of ``T`` steps counts
    ``T`` times their mean); ``segment_rewards`` and ``segment_log_probs`` ``[T, M]``: the
    policy's segments, time-major. Its gradient is the self-normalised importance-sampled
    MaxEnt IRL gradient (module docstring).
    """
    horizon, segments = segment_rewards.shape
    log_weights = segment_rewards.sum(0) - segment_log_probs.sum(0)
    log_partition = jax.nn.logsumexp(log_weights) - jnp.log(segments)
    return -(horizon * expert_rewards.mean() - log_partition)


def make_gcl_transform(config: DiscriminatorConfig, expert: Transitions,
                       action_space: Space) -> RewardTransform:
    """Guided cost learning as a ``RewardTransform`` of the on-policy loop: each rollout's
    ``[T, N]`` env segments are the background samples ``τ_j`` (log π from
    ``traj.extras["log_prob"]``); ``disc_steps`` Adam steps on ``importance_weighted_loss``
    (plus the optional gradient penalty), then the rollout is rewarded with ``r_ψ(s, a)``."""
    network = make_discriminator("gail", config, expert, action_space, 0.0)
    optimizer = flat_adam(config.disc_learning_rate)

    def init(key: jax.Array, observation_space: Space, space: Space) -> AdversarialState:
        return network.init(key)

    def expert_inputs(batch: Transitions) -> DiscriminatorInputs:
        return network.inputs(batch.obs, batch.action, batch.next_obs, batch.terminated,
                              jnp.zeros(batch.reward.shape))

    def apply(state: AdversarialState, traj: Transition, key: jax.Array):
        collected = jax.vmap(network.inputs, in_axes=1, out_axes=1)(
            traj.obs, traj.action, traj.next_obs, traj.terminated,
            jnp.zeros(traj.reward.shape))

        def segment_rewards(params):
            return jax.vmap(partial(network.logits, params), in_axes=1, out_axes=1)(collected)

        def loss_fn(params, expert_batch, policy_batch, penalty_key):
            loss = importance_weighted_loss(network.logits(params, expert_batch),
                                            segment_rewards(params), traj.extras["log_prob"])
            penalty = gradient_penalty(partial(network.logits, params), expert_batch,
                                       policy_batch, penalty_key)
            return loss + config.grad_penalty * penalty, {"reward_loss": loss}

        flat = jax.tree.map(lambda x: x.reshape((-1, *x.shape[2:])), collected)
        state, metrics = minibatch_steps(config, optimizer, loss_fn, state, flat, expert,
                                         expert_inputs, key)
        learned = segment_rewards(state.params)
        return learned, state, {**metrics, "learned_reward": learned.mean()}

    return RewardTransform(init, apply)
