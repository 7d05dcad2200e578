"""The on-policy family: its configs, the rollout state, and the collect / learn / evaluate loop.

One ``update`` of every on-policy agent (REINFORCE, A2C, PPO; NPG and TRPO through
``training.natural_gradient``):

1. **collect** (``collect``): roll the current stochastic policy out for ``num_steps`` in
   ``num_envs`` envs; apply the reward transform, if any, to the transitions; then normalise
   rewards (optional) and evaluate ``V(final_obs)`` for bootstrapping. The result is a
   time-major ``Batch`` ``[num_steps, num_envs]``.
2. **learn**: the agent's own estimate (GAE, n-step, reward-to-go) and policy improvement
   (``gradient_epochs`` for the gradient methods, a natural-gradient step for NPG / TRPO).
3. **evaluate** (``evaluate_policy``, only with ``eval_episodes > 0``): the deterministic policy
   on ``eval_episodes`` fresh episodes, reported as ``eval_return``.

Metrics: the agent's statistics, the reward transform's, ``episode_return`` (training episodes),
``eval_return`` and ``step`` (env steps so far).

Extension points (each ``None`` when unused: no state leaf, the computation unchanged):

- **reward transform** (``training.extensions.RewardTransform``, ``make_agent(...,
  reward_transform=)``): rewrites the rewards of each rollout before reward normalisation and
  any target; its state is ``RolloutState.reward_state``, so it is checkpointed with the run.
- **a network with memory** (``make_agent(..., network=)`` of the gradient agents): a flax
  module with

  - ``initial_carry(batch) -> carry``: a plain method (no parameters) giving the carry of a
    fresh episode, leaves ``[batch, ...]``;
  - ``__call__(obs [B, ...], carry) -> (distribution, value [B], carry)``: one step;
  - ``sequence(obs [T, B, ...], done [T, B], carry [B]) -> (distribution [T, B], value [T, B])``:
    ``T`` steps from ``carry``, the carry restored to ``initial_carry`` after every step with
    ``done`` (the episode ended there), exactly as the step-by-step rollout did.

  The env batch's carry is ``RolloutState.policy_carry`` (reset where an episode ends,
  ``rollout.rollout_with_carry``); the carry at the start of each rollout travels with the
  ``Batch``, and the learner replays whole env sequences (``rollout.env_minibatches``) through
  ``sequence``, so every minibatch sees the log-probs the rollout computed. ``num_minibatches``
  must then divide ``num_envs``. Acting follows ``training.agent``'s protocol for memory
  (``act(..., carry) -> (action, carry)``, ``Agent.initial_carry``). NPG / TRPO take memoryless
  networks only (their Fisher products run on the actor's parameters alone).

  ``recurrent = "gru" | "lstm"`` in the config builds such a network
  (``models.recurrent.RecurrentActorCritic``) for the agents in ``RECURRENT_AGENTS``.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any, ClassVar, NamedTuple

import flax.linen as nn
import jax
import jax.numpy as jnp
import optax
from flax import struct

from jaxrl import losses
from jaxrl.backend import ONE_OFF_UNROLL
from jaxrl.envs import ClipAction, EpisodeStatistics, RunningMeanStd, discounted_return_trace
from jaxrl.envs.spaces import Box, Discrete, Space
from jaxrl.evaluation import evaluate
from jaxrl.models import make_actor_critic
from jaxrl.models.recurrent import CELLS, make_recurrent_actor_critic
from jaxrl.rollout import (
    bootstrap_values,
    env_minibatches,
    episode_return_metric,
    reset_envs,
    rollout,
    rollout_with_carry,
    shuffled_minibatches,
)
from jaxrl.training import pretrain
from jaxrl.training.agent import Agent, Metrics, as_typed_key
from jaxrl.training.config import ACTIVATIONS, BaseConfig, hyper, static
from jaxrl.training.extensions import (
    RewardTransform,
    apply_reward_transform,
    init_reward_transform,
)
from jaxrl.training.optim import grad_norm
from jaxrl.training.pretrain import Demonstrations

__all__ = ["ACTOR_MODULES", "RECURRENT_AGENTS", "Batch", "GradientConfig", "OnPolicyConfig",
           "OnPolicySetup", "PretrainConfig", "RolloutState", "TrainState", "actor_critic_loss",
           "agent_from", "collect", "evaluate_policy", "forward", "gradient_epochs", "has_memory",
           "init_network", "init_rollout", "make_act", "make_gradient_agent", "make_optimizer",
           "merge_actor_critic", "report", "setup", "split_actor_critic", "split_update_key",
           "start_from_demonstrations"]


RECURRENT_AGENTS = ("reinforce", "a2c", "ppo", "rl2")
"""The registered agents that learn with a recurrent policy (``--recurrent gru|lstm``)."""


class OnPolicyConfig(BaseConfig):
    """Fields every on-policy agent shares. Static fields decide shapes."""

    total_timesteps: int = static(500_000, ">= 1")
    """environment steps per seed (rounded down to whole rollouts)"""
    num_envs: int = static(8, ">= 1")
    """parallel environments"""
    num_steps: int = static(32, ">= 1")
    """steps per environment per rollout"""
    num_minibatches: int = static(1, ">= 1")
    """minibatches per pass over each rollout; must divide num_envs * num_steps"""
    hidden_sizes: tuple[int, ...] = static((64, 64))
    """hidden layer widths of the actor and critic MLPs"""
    activation: str = static("tanh", ACTIVATIONS)
    """activation of the hidden layers"""
    normalize_obs: bool = static(False)
    """normalise observations with batch-level running statistics"""
    normalize_reward: bool = static(False)
    """scale rewards by the std of the discounted return"""
    eval_episodes: int = static(0, ">= 0")
    """episodes of the deterministic policy evaluated after each update (0: no eval_return)"""
    recurrent: str = static("none", ("none", *CELLS))
    """a recurrent policy: a gru or lstm cell after the MLP torso (reinforce, a2c, ppo, rl2)"""
    recurrent_size: int = static(64, ">= 1")
    """hidden-state size of the recurrent cell (with recurrent)"""
    bonus: str = static("none", ("none", "count", "hash", "rnd"))
    """exploration bonus added to the rewards (jaxrl.exploration): exact counts, SimHash counts
    or random network distillation"""
    bonus_form: str = static("mbie_eb", ("ucb", "mbie_eb", "beb"))
    """B(N) of a count bonus: ucb √(2 ln n / N), mbie_eb 1/√N, beb 1/N"""
    hash_bits: int = static(16, ">= 1")
    """SimHash code length k of bonus = hash (2^k count cells per seed, k <= 24)"""
    bonus_scale: float = hyper(0.1, ">= 0")
    """β of reward + β · bonus"""
    gamma: float = hyper(0.99, "[0, 1]")
    """discount factor"""

    SUPPORTS_MEMORY: ClassVar[bool] = False
    """whether the agent learns with a network with memory (``recurrent``)"""

    @property
    def batch_size(self) -> int:
        return self.num_envs * self.num_steps

    @property
    def num_updates(self) -> int:
        return self.total_timesteps // self.batch_size

    def validate(self) -> None:
        """One rollout must fit in ``total_timesteps``; ``num_minibatches`` must divide it;
        ``recurrent`` only where the agent learns with memory."""
        if self.recurrent != "none" and not self.SUPPORTS_MEMORY:
            raise ValueError(
                f"recurrent = {self.recurrent!r}: this agent takes feed-forward policies only "
                f"(its updates need a memoryless network); recurrent policies: "
                f"{', '.join(RECURRENT_AGENTS)}")
        if self.total_timesteps < self.batch_size:
            raise ValueError(
                f"total_timesteps = {self.total_timesteps} is smaller than one rollout "
                f"(num_envs * num_steps = {self.batch_size}); raise total_timesteps")
        if self.batch_size % self.num_minibatches:
            raise ValueError(
                f"num_envs * num_steps = {self.num_envs} * {self.num_steps} = "
                f"{self.batch_size} is not divisible by num_minibatches = "
                f"{self.num_minibatches}; change one of them")


class PretrainConfig(OnPolicyConfig):
    """Pre-train & finetune (course notes 004) for the on-policy agents with a memoryless
    actor-critic (REINFORCE, A2C, PPO through ``GradientConfig``; NPG, TRPO through
    ``training.natural_gradient``): the actor starts from a bc run or behaviour cloning, the
    critic is warmed up on that policy's own returns (``start_from_demonstrations``)."""

    init_from: str = static("")
    """start from the policy of this run directory (a bc run, discrete actions): its actor is
    copied, the critic is fresh (docs/demonstrations.md)"""
    pretrain_dataset: str = static("")
    """behaviour-clone the actor on this dataset (.npz) by maximum likelihood inside init,
    before the first update"""
    pretrain_steps: int = static(1000, ">= 1")
    """gradient steps of the behaviour cloning (with pretrain_dataset)"""
    pretrain_batch_size: int = static(256, ">= 1")
    """demonstrations per behaviour-cloning step (with pretrain_dataset; also
    demo_gradient_steps where the agent has them)"""
    pretrain_learning_rate: float = hyper(1e-3, "> 0")
    """Adam step size of the behaviour cloning (with pretrain_dataset)"""
    critic_warmup: int = static(0, ">= 0")
    """rollouts of the initial policy whose own returns fit the critic (value loss only, the
    actor frozen) inside init, before the first policy update"""

    DEMONSTRATION_FIELDS: ClassVar[tuple[str, ...]] = ("init_from", "pretrain_dataset")
    """the fields that train the policy on demonstrations (a memoryless one)"""

    def validate(self) -> None:
        """``OnPolicyConfig``'s rules; demonstrations and ``init_from`` need a memoryless
        policy, and ``init_from`` raw observations (the copied policy reads them)."""
        super().validate()
        uses = [name for name in self.DEMONSTRATION_FIELDS if getattr(self, name)]
        if uses and self.recurrent != "none":
            raise ValueError(f"{', '.join(uses)}: demonstrations train memoryless policies; "
                             f"drop --recurrent {self.recurrent}")
        if self.init_from and self.normalize_obs:
            raise ValueError("init_from copies a policy of raw observations; drop "
                             "--normalize-obs (or start with --pretrain-dataset)")


class GradientConfig(PretrainConfig):
    """Fields of the agents that descend a loss with a first-order optimizer (REINFORCE, A2C,
    PPO; ``make_optimizer``), with pre-train & finetune (``PretrainConfig``) and the hybrid
    objective (the demo_ fields)."""

    anneal_lr: bool = static(True)
    """decay the learning rate linearly to 0"""
    learning_rate: float = hyper(1e-3, "> 0")
    """optimizer step size"""
    ent_coef: float = hyper(0.0, ">= 0")
    """entropy bonus coefficient"""
    vf_coef: float = hyper(0.5, ">= 0")
    """value loss coefficient"""
    max_grad_norm: float = hyper(0.5, "> 0")
    """global gradient-norm clip"""
    demo_dataset: str = static("")
    """demonstrations (.npz) of the hybrid objective: RL loss + λ_k · (-log π(a|s)) on them"""
    demo_coef: float = hyper(0.1, ">= 0")
    """λ_0 of the hybrid objective (with demo_dataset)"""
    demo_decay: float = hyper(0.95, "[0, 1]")
    """λ_k = demo_coef · demo_decay^k at update k (with demo_dataset)"""
    demo_gradient_steps: int = static(0, ">= 0")
    """extra Adam steps on -log π(a|s) of demonstration minibatches (pretrain_batch_size each)
    after every update's RL epochs, step size demo_learning_rate · demo_decay^k, a fresh Adam
    of their own (with demo_dataset; 0: none)"""
    demo_learning_rate: float = hyper(1e-3, "> 0")
    """Adam step size of the demo_gradient_steps at update 0 (with demo_dataset)"""

    SUPPORTS_MEMORY: ClassVar[bool] = True
    DEMONSTRATION_FIELDS: ClassVar[tuple[str, ...]] = ("init_from", "pretrain_dataset",
                                                       "demo_dataset")

    def validate(self) -> None:
        """``PretrainConfig``'s rules; ``demo_gradient_steps`` need ``demo_dataset``."""
        super().validate()
        if self.demo_gradient_steps and not self.demo_dataset:
            raise ValueError("demo_gradient_steps imitate the demonstrations of demo_dataset; "
                             "pass --demo-dataset FILE")


class RolloutState(struct.PyTreeNode):
    """Env batch plus the normalisation statistics and the running episode-return metric;
    the extension states (module docstring) are ``None`` when unused."""

    env_state: Any
    obs: jax.Array
    obs_stats: RunningMeanStd
    return_stats: RunningMeanStd
    return_trace: jax.Array
    last_episode_return: jax.Array
    policy_carry: Any = None
    """the memory of a network with memory, per env ``[num_envs, ...]``"""
    reward_state: Any = None
    """the reward transform's state"""


class Batch(struct.PyTreeNode):
    """One rollout, time-major ``[num_steps, num_envs, ...]``.

    ``obs`` is normalised as the policy saw it; ``reward`` is transformed and (with reward
    normalisation) scaled; ``next_value`` is ``V(final_obs)``, the bootstrap value of each step
    (``rollout.bootstrap_values``; where terminated, a value the zero discount ignores);
    ``policy_carry`` the carry at the rollout's start ``[num_envs, ...]`` (``None`` without
    memory).
    """

    obs: jax.Array
    action: jax.Array
    log_prob: jax.Array
    value: jax.Array
    next_value: jax.Array
    reward: jax.Array
    terminated: jax.Array
    truncated: jax.Array
    policy_carry: Any = None

    @property
    def done(self) -> jax.Array:
        return self.terminated | self.truncated

    def discounts(self, gamma: float | jax.Array) -> jax.Array:
        """``γ (1 - terminated)``: truncation keeps the discount (and bootstraps)."""
        return gamma * (1.0 - self.terminated.astype(jnp.float32))


class OnPolicySetup(NamedTuple):
    """``env`` is what the agent trains on (episode statistics, Box actions clipped);
    ``eval_env`` the same without statistics (``evaluate`` adds its own)."""

    env: Any
    network: nn.Module
    observation_space: Space
    action_space: Space
    eval_env: Any = None
    eval_steps: int = 1001
    reward_transform: RewardTransform | None = None
    demonstrations: Demonstrations | None = None
    """what the config's init_from / pretrain_dataset / demo_dataset name (``None``: none)"""


def has_memory(network: Any) -> bool:
    """Whether ``network`` follows the memory protocol (module docstring)."""
    return hasattr(network, "initial_carry")


def setup(config: Any, env: Any, env_params: Any, algo: str = "this agent",
          network: nn.Module | None = None,
          reward_transform: RewardTransform | None = None) -> OnPolicySetup:
    """Wrap ``env`` (action clipping for Box, episode statistics) and build the actor-critic
    (``make_actor_critic`` unless ``network`` is given)."""
    action_space = env.action_space(env_params)
    observation_space = env.observation_space(env_params)
    if not isinstance(action_space, Discrete | Box):
        raise TypeError(f"{algo} supports Discrete and Box action spaces, got {action_space}")
    if isinstance(action_space, Box):
        env = ClipAction(env)
    if network is None and getattr(config, "recurrent", "none") != "none":
        network = make_recurrent_actor_critic(observation_space, action_space, config.recurrent,
                                              config.recurrent_size, config.hidden_sizes,
                                              config.activation)
    elif network is None and getattr(config, "intrinsic_head", False):
        network = make_actor_critic(observation_space, action_space, config.hidden_sizes,
                                    config.activation, intrinsic_value=True)
    elif network is None:
        network = make_actor_critic(observation_space, action_space, config.hidden_sizes,
                                    config.activation)
    if reward_transform is None and getattr(config, "bonus", "none") != "none":
        from jaxrl.exploration import make_bonus

        reward_transform = make_bonus(config, observation_space)
    eval_steps = int(getattr(env_params, "max_steps_in_episode", 1000)) + 1

    def actor_template():
        variables = jax.eval_shape(network.init, jax.random.key(0),
                                   jnp.zeros((1, *observation_space.shape), jnp.float32))
        return split_actor_critic(variables)[0]["params"]

    demonstrations = (None if has_memory(network)
                      else pretrain.load(config, env, env_params, actor_template))
    return OnPolicySetup(EpisodeStatistics(env), network, observation_space, action_space,
                         env, eval_steps, reward_transform, demonstrations)


def _max_truncations(env: Any, env_params: Any, num_steps: int) -> int | None:
    bound = getattr(env, "max_truncations", None)
    return None if bound is None else bound(env_params, num_steps)


def _normalize(config: Any, stats: RunningMeanStd, obs: jax.Array) -> jax.Array:
    return stats.normalize(obs) if config.normalize_obs else obs


def init_rollout(key: jax.Array, config: Any, parts: OnPolicySetup,
                 env_params: Any) -> RolloutState:
    """Reset ``num_envs`` envs; fresh statistics, carry and reward-transform state; the return
    metric is NaN until an episode ends."""
    if parts.reward_transform is not None:
        key, reward_key = jax.random.split(key)
    obs, env_state = reset_envs(key, parts.env, env_params, config.num_envs)
    return RolloutState(
        env_state=env_state, obs=obs,
        obs_stats=RunningMeanStd.create(parts.observation_space.shape),
        return_stats=RunningMeanStd.create(),
        return_trace=jnp.zeros((config.num_envs,), jnp.float32),
        last_episode_return=jnp.full((), jnp.nan, jnp.float32),
        policy_carry=(parts.network.initial_carry(config.num_envs)
                      if has_memory(parts.network) else None),
        reward_state=(None if parts.reward_transform is None else init_reward_transform(
            parts.reward_transform, reward_key, parts.observation_space, parts.action_space)))


def init_network(key: jax.Array, network: nn.Module, state: RolloutState) -> Any:
    """The network's variables, initialised on one observation (and carry) of ``state``."""
    if state.policy_carry is None:
        return network.init(key, state.obs[:1])
    return network.init(key, state.obs[:1], jax.tree.map(lambda x: x[:1], state.policy_carry))


def _rollout_memoryless(key, state, config, parts, env_params, params):
    network, stats = parts.network, state.obs_stats

    def policy(key, obs):
        dist, value = network.apply(params, _normalize(config, stats, obs))
        action, log_prob = dist.sample_and_log_prob(seed=key)
        return action, {"log_prob": log_prob, "value": value}

    env_state, obs, traj = rollout(key, parts.env, env_params, state.env_state, state.obs,
                                   policy, config.num_steps)
    def value_fn(obs):
        return network.apply(params, _normalize(config, stats, obs), method="value")

    values, bound = traj.extras["value"], _max_truncations(parts.env, env_params,
                                                           config.num_steps)
    if values.ndim == 2:
        next_value = bootstrap_values(value_fn, traj, values, bound)
    else:  # several value heads [T, N, K] (an intrinsic value head): one column at a time
        next_value = jnp.stack([
            bootstrap_values(lambda obs, k=k: value_fn(obs)[..., k], traj, values[..., k], bound)
            for k in range(values.shape[-1])], -1)
    return env_state, obs, None, traj, next_value


def _rollout_with_memory(key, state, config, parts, env_params, params):
    network, stats = parts.network, state.obs_stats

    def policy(key, obs, env_state, carry):
        dist, value, carry = network.apply(params, _normalize(config, stats, obs), carry)
        action, log_prob = dist.sample_and_log_prob(seed=key)
        return action, {"log_prob": log_prob, "value": value, "carry": carry}, carry

    env_state, obs, carry, traj = rollout_with_carry(
        key, parts.env, env_params, state.env_state, state.obs, state.policy_carry, policy,
        config.num_steps, network.initial_carry(config.num_envs))
    # V(final_obs) continues the episode's memory: the carry after step t, before any reset.
    def flat(x):
        return x.reshape((-1, *x.shape[2:]))

    _, next_value, _ = network.apply(params, _normalize(config, stats, flat(traj.next_obs)),
                                     jax.tree.map(flat, traj.extras["carry"]))
    return env_state, obs, carry, traj, next_value.reshape(traj.reward.shape)


def collect(key: jax.Array, state: RolloutState, config: Any, parts: OnPolicySetup,
            env_params: Any, params: Any) -> tuple[RolloutState, Batch, Metrics]:
    """Roll out the current policy for ``num_steps``: ``(state, batch, reward-transform
    metrics)``; see the module docstring."""
    if parts.reward_transform is not None:
        key, reward_key = jax.random.split(key)
    run = _rollout_memoryless if state.policy_carry is None else _rollout_with_memory
    env_state, obs, carry, traj, next_value = run(key, state, config, parts, env_params, params)
    traj, reward_state, metrics = apply_reward_transform(
        parts.reward_transform, state.reward_state, traj,
        reward_key if parts.reward_transform is not None else None)
    rewards, return_trace, return_stats = traj.reward, state.return_trace, state.return_stats
    if config.normalize_reward:
        trace, return_trace = discounted_return_trace(rewards, traj.done, config.gamma,
                                                      return_trace)
        return_stats = return_stats.update(trace)
        rewards = return_stats.scale(rewards)
    batch = Batch(obs=_normalize(config, state.obs_stats, traj.obs), action=traj.action,
                  log_prob=traj.extras["log_prob"], value=traj.extras["value"],
                  next_value=next_value, reward=rewards, terminated=traj.terminated,
                  truncated=traj.truncated, policy_carry=state.policy_carry)
    obs_stats = state.obs_stats.update(traj.obs) if config.normalize_obs else state.obs_stats
    new_state = RolloutState(
        env_state=env_state, obs=obs, obs_stats=obs_stats, return_stats=return_stats,
        return_trace=return_trace,
        last_episode_return=episode_return_metric(traj.info, state.last_episode_return),
        policy_carry=carry, reward_state=reward_state)
    return new_state, batch, metrics


def make_act(config: Any, parts: OnPolicySetup) -> Callable[..., Any]:
    """``act(params, rollout_state, obs, key, deterministic) -> action``; with memory
    ``act(params, rollout_state, obs, key, deterministic, carry) -> (action, carry)``."""
    network, space = parts.network, parts.action_space

    def choose(dist, key, deterministic):
        action = dist.mode() if deterministic else dist.sample(seed=key)
        if isinstance(space, Box):
            action = jnp.clip(action, space.low, space.high)
        return action

    def act(params: Any, state: RolloutState, obs: jax.Array, key: jax.Array,
            deterministic: bool = False) -> jax.Array:
        dist = network.apply(params, _normalize(config, state.obs_stats, obs), method="policy")
        return choose(dist, key, deterministic)

    def act_with_memory(params: Any, state: RolloutState, obs: jax.Array, key: jax.Array,
                        deterministic: bool, carry: Any) -> tuple[jax.Array, Any]:
        dist, _, carry = network.apply(params, _normalize(config, state.obs_stats, obs), carry)
        return choose(dist, key, deterministic), carry

    return act_with_memory if has_memory(network) else act


def evaluate_policy(key: jax.Array, config: Any, parts: OnPolicySetup, env_params: Any,
                    params: Any, state: RolloutState) -> jax.Array:
    """Mean return of the deterministic policy on ``eval_episodes`` fresh episodes."""
    act = make_act(config, parts)
    if has_memory(parts.network):
        def policy(key, obs, env_state, carry):
            return act(params, state, obs, key, True, carry)

        initial_carry = parts.network.initial_carry
    else:
        def policy(key, obs):
            return act(params, state, obs, key, True)

        initial_carry = None
    return evaluate(key, parts.eval_env, env_params, policy, config.eval_episodes,
                    parts.eval_steps, ONE_OFF_UNROLL, initial_carry=initial_carry)


def split_update_key(key: jax.Array, config: Any) -> tuple[jax.Array, ...]:
    """``(next key, rollout key, learn key, eval key or None)``; no eval key is split off
    without evaluation, so such runs are unchanged."""
    key, rollout_key, learn_key, *eval_key = jax.random.split(
        key, 3 + (config.eval_episodes > 0))
    return key, rollout_key, learn_key, (eval_key[0] if eval_key else None)


def report(metrics: Metrics, config: Any, parts: OnPolicySetup, env_params: Any,
           eval_key: jax.Array | None, params: Any, state: RolloutState,
           update_count: jax.Array) -> Metrics:
    """``metrics`` plus ``episode_return``, ``eval_return`` (with an eval key) and ``step``."""
    metrics["episode_return"] = state.last_episode_return
    if eval_key is not None:
        metrics["eval_return"] = evaluate_policy(eval_key, config, parts, env_params, params,
                                                 state)
    metrics["step"] = update_count * config.num_envs * config.num_steps
    return metrics


def agent_from(config: Any, parts: OnPolicySetup, init: Callable[[jax.Array], Any],
               update: Callable[[Any], tuple[Any, Metrics]],
               params_of: Callable[[Any], Any], initial_steps: int = 0) -> Agent:
    """The ``Agent`` of an on-policy train state: ``params_of(state)`` are the variables the
    policy reads, ``state.rollout`` the ``RolloutState``. With memory it sets
    ``initial_carry``; without, ``behaviour`` (the stochastic policy). ``initial_steps``: env
    steps ``init`` takes (a critic warm-up)."""
    act_with, network = make_act(config, parts), parts.network
    batch_size = config.num_envs * config.num_steps
    sizes = {"num_updates": config.total_timesteps // batch_size,
             "steps_per_update": batch_size, "initial_steps": initial_steps}
    if has_memory(network):
        def act_with_memory(state: Any, obs: jax.Array, key: jax.Array, deterministic: bool,
                            carry: Any) -> tuple[jax.Array, Any]:
            return act_with(params_of(state), state.rollout, obs, key, deterministic, carry)

        return Agent(init=init, update=update, act=act_with_memory, **sizes,
                     initial_carry=lambda state, batch: network.initial_carry(batch))

    def act(state: Any, obs: jax.Array, key: jax.Array,
            deterministic: bool = False) -> jax.Array:
        return act_with(params_of(state), state.rollout, obs, key, deterministic)

    def behaviour(state: Any, obs: jax.Array) -> Any:
        obs = _normalize(config, state.rollout.obs_stats, obs)
        return network.apply(params_of(state), obs, method="policy")

    return Agent(init=init, update=update, act=act, **sizes, behaviour=behaviour)


ACTOR_MODULES = ("actor_torso", "policy_head")
"""The ``ActorCritic`` submodules that ``method="policy"`` uses; the rest belong to the critic."""


def split_actor_critic(params: Any) -> tuple[Any, Any]:
    """Split ``ActorCritic`` variables into ``(actor, critic)``, each a ``{"params": ...}`` dict.

    For agents that optimise the policy and the value function separately (NPG, TRPO):
    ``network.apply(actor, obs, method="policy")`` and ``network.apply(critic, obs,
    method="value")`` work on their own; ``merge_actor_critic`` restores the whole tree.
    """
    modules = params["params"]
    actor = {name: tree for name, tree in modules.items() if name in ACTOR_MODULES}
    critic = {name: tree for name, tree in modules.items() if name not in ACTOR_MODULES}
    return {"params": actor}, {"params": critic}


def merge_actor_critic(actor: Any, critic: Any) -> Any:
    """Inverse of ``split_actor_critic``: the variables ``network.apply(params, obs)`` takes."""
    return {"params": {**actor["params"], **critic["params"]}}


# The pieces below are shared by the agents that improve the policy by plain gradient steps on a
# loss (REINFORCE, A2C, PPO). NPG / TRPO step differently (``training.natural_gradient``).


class TrainState(struct.PyTreeNode):
    """Everything a gradient-based on-policy run needs to continue: checkpoint it and resume."""

    params: Any
    opt_state: Any
    rollout: RolloutState
    key: jax.Array
    update_count: jax.Array


Samples = dict[str, Any]
LossFn = Callable[[Any, Samples], tuple[jax.Array, Metrics]]
Estimator = Callable[[Batch], tuple[jax.Array, jax.Array]]


def make_optimizer(config: Any, num_updates: int, steps_per_update: int,
                   kind: str = "adam") -> optax.GradientTransformation:
    """Global-norm clipping at ``max_grad_norm``, then Adam (eps 1e-5) or RMSprop (PyTorch / SB3
    form: decay 0.99, eps 1e-5 outside the square root) at ``learning_rate``.

    With ``config.anneal_lr`` the rate decays linearly to 0 over ``num_updates`` updates of
    ``steps_per_update`` gradient steps: ``lr_k = lr · (1 - ⌊k / steps_per_update⌋ / num_updates)``.
    Numeric fields are only read inside the schedule, so they may be traced (a sweep).

    The optimizer works on the parameters raveled into one vector (``optax.flatten``): the same
    element-wise update with a handful of kernels instead of several per parameter leaf, which
    compiles faster (``benchmarks/RESULTS.md``).
    """

    def learning_rate(count: jax.Array) -> jax.Array:
        if not config.anneal_lr:
            return jnp.asarray(config.learning_rate, jnp.float32)
        return config.learning_rate * (1.0 - (count // steps_per_update) / num_updates)

    if kind == "adam":
        scale = optax.adam(learning_rate, eps=1e-5)
    elif kind == "rmsprop":
        scale = optax.rmsprop(learning_rate, decay=0.99, eps=1e-5, eps_in_sqrt=False)
    else:
        raise ValueError(f"optimizer must be 'adam' or 'rmsprop', got {kind!r}")
    return optax.flatten(optax.chain(optax.clip_by_global_norm(config.max_grad_norm), scale))


def forward(network: Any, params: Any, samples: Samples, method: str | None = None) -> Any:
    """``network.apply(params, samples["obs"], method=method)``: ``(π, V)``, or ``π`` with
    ``method="policy"``. Samples of a network with memory (``"carry"`` ``[1, B, ...]`` and
    ``"done"``) are replayed as sequences ``[T, B]`` through its ``sequence`` method."""
    if "carry" not in samples:
        if method is None:
            return network.apply(params, samples["obs"])
        return network.apply(params, samples["obs"], method=method)
    carry = jax.tree.map(lambda x: x[0], samples["carry"])
    dist, values = network.apply(params, samples["obs"], samples["done"], carry,
                                 method="sequence")
    return dist if method == "policy" else (dist, values)


def actor_critic_loss(network: nn.Module, params: Any, samples: Samples,
                      vf_coef: float | jax.Array,
                      ent_coef: float | jax.Array) -> tuple[jax.Array, Metrics]:
    """``L = -E[log π(a|s) · A] + c_v · ½ E[(V(s) - G)²] - c_e · E[H(π(·|s))]``.

    The vanilla policy-gradient surrogate with a learned critic (REINFORCE with baseline, A2C);
    ``samples["advantages"]`` (A) and ``samples["targets"]`` (G) are constants.
    """
    dist, values = forward(network, params, samples)
    log_probs = dist.log_prob(samples["action"])
    policy_loss = losses.policy_gradient_loss(log_probs, samples["advantages"])
    value_loss = losses.value_loss(values, samples["targets"])
    entropy = dist.entropy().mean()
    total = policy_loss + vf_coef * value_loss - ent_coef * entropy
    return total, {"loss": total, "policy_loss": policy_loss, "value_loss": value_loss,
                   "entropy": entropy}


def _minibatches(key: jax.Array, samples: Samples, num_minibatches: int) -> Samples:
    """``[num_minibatches, ...]`` stacks: shuffled single steps, or whole env sequences
    ``[T, N / num_minibatches]`` for a network with memory; unshuffled when 1."""
    if "carry" in samples:
        if num_minibatches == 1:
            return jax.tree.map(lambda x: x[None], samples)
        return env_minibatches(key, samples, num_minibatches)
    if num_minibatches == 1:
        return jax.tree.map(lambda x: x.reshape((1, -1, *x.shape[2:])), samples)
    return shuffled_minibatches(key, samples, num_minibatches)


def _minibatch_shapes(samples: Samples, num_minibatches: int) -> Samples:
    if "carry" in samples:
        return jax.tree.map(lambda x: jax.ShapeDtypeStruct(
            (x.shape[0], x.shape[1] // num_minibatches, *x.shape[2:]), x.dtype), samples)
    size = math.prod(jax.tree.leaves(samples)[0].shape[:2]) // num_minibatches
    return jax.tree.map(lambda x: jax.ShapeDtypeStruct((size, *x.shape[2:]), x.dtype), samples)


def gradient_epochs(key: jax.Array, params: Any, opt_state: Any, samples: Samples,
                    loss_fn: LossFn, optimizer: optax.GradientTransformation,
                    update_epochs: int, num_minibatches: int) -> tuple[Any, Any, Metrics]:
    """``update_epochs`` passes over ``samples`` (leaves ``[T, N, ...]``), each split into
    ``num_minibatches`` shuffled minibatches (``_minibatches``), one optimizer step per
    minibatch.

    Returns ``(params, opt_state, stats)``: ``loss_fn``'s statistics and the pre-clipping
    ``grad_norm``, averaged over all steps.
    """

    # Jitted so that the shape query below and the scan body share one trace of the gradient
    # (the trace cache hits on equal shapes; XLA inlines the call).
    @jax.jit
    def step_stats(params, minibatch):
        grads, stats = jax.grad(loss_fn, has_aux=True)(params, minibatch)
        return grads, {**stats, "grad_norm": grad_norm(grads)}

    def gradient_step(carry, minibatch):
        params, opt_state, totals = carry
        grads, stats = step_stats(params, minibatch)
        updates, opt_state = optimizer.update(grads, opt_state, params)
        # Running sums in the carry rather than per-step stacked outputs: one fused add instead
        # of a buffer write per statistic and step (a kernel each on a GPU).
        totals = jax.tree.map(jnp.add, totals, stats)
        return (optax.apply_updates(params, updates), opt_state, totals), None

    def epoch(carry, epoch_key):
        minibatches = _minibatches(epoch_key, samples, num_minibatches)
        return jax.lax.scan(gradient_step, carry, minibatches)[0], None

    minibatch = _minibatch_shapes(samples, num_minibatches)
    zeros = jax.tree.map(lambda s: jnp.zeros(s.shape, s.dtype),
                         jax.eval_shape(step_stats, params, minibatch)[1])
    (params, opt_state, totals), _ = jax.lax.scan(epoch, (params, opt_state, zeros),
                                                  jax.random.split(key, update_epochs))
    steps = update_epochs * num_minibatches
    return params, opt_state, jax.tree.map(lambda total: total / steps, totals)


CriticFit = Callable[[jax.Array, Any, Any, Batch], tuple[Any, Any]]
"""``fit(key, params, opt_state, batch) -> (params, opt_state)``: one rollout's regression of the
critic onto the policy's own returns; the actor's parameters leave it unchanged."""


def start_from_demonstrations(key: jax.Array, params: Any, state: RolloutState, config: Any,
                              parts: OnPolicySetup, env_params: Any, fit_critic: CriticFit,
                              opt_state: Any) -> tuple[jax.Array, Any, RolloutState]:
    """Pre-train & finetune inside ``init`` (``PretrainConfig``, ``training.pretrain``):
    ``(key, params, state)`` with the ``init_from`` actor copied into the actor-critic
    variables ``params``, then cloned on ``pretrain_dataset`` (the critic's gradients are
    zero, so Adam leaves it), then ``critic_warmup`` rollouts of that policy, each followed by
    ``fit_critic`` from ``opt_state`` (a fresh optimiser state of what it fits), so the critic
    evaluates the pretrained policy before its first update. With none of them all three
    come back unchanged (no key is split off)."""
    demos = parts.demonstrations or Demonstrations()
    warmup = getattr(config, "critic_warmup", 0)
    if demos.actor is None and demos.pretrain is None and not warmup:
        return key, params, state
    network = parts.network
    key, start_key = jax.random.split(key)
    clone_key, warmup_key = jax.random.split(start_key)
    if demos.actor is not None:
        params = {"params": {**params["params"], **demos.actor}}
    if demos.pretrain is not None:
        if config.normalize_obs:
            state = state.replace(obs_stats=state.obs_stats.update(demos.pretrain.obs))

        def nll(params, obs, action):
            return pretrain.demo_nll(
                lambda obs: network.apply(params, obs, method="policy"), obs, action)

        params = pretrain.imitation_steps(
            clone_key, nll, params, demos.pretrain, config.pretrain_steps,
            config.pretrain_batch_size, config.pretrain_learning_rate,
            lambda obs: _normalize(config, state.obs_stats, obs))

    def warmup_step(carry, step_key):
        params, opt_state, state = carry
        rollout_key, learn_key = jax.random.split(step_key)
        state, batch, _ = collect(rollout_key, state, config, parts, env_params, params)
        params, opt_state = fit_critic(learn_key, params, opt_state, batch)
        return (params, opt_state, state), None

    if warmup:
        (params, _, state), _ = jax.lax.scan(warmup_step, (params, opt_state, state),
                                             jax.random.split(warmup_key, warmup))
    return key, params, state


def make_gradient_agent(config: Any, parts: OnPolicySetup, env_params: Any,
                        optimizer: optax.GradientTransformation, loss_fn: LossFn,
                        estimate: Estimator, update_epochs: int = 1,
                        num_minibatches: int = 1,
                        update_metrics: Callable[[Any, Samples], Metrics] | None = None
                        ) -> Agent:
    """The agent of every "collect, estimate, descend" method.

    ``update``: collect ``num_steps`` with the current policy; ``advantages, targets =
    estimate(batch)``; ``gradient_epochs`` on ``loss_fn(params, samples)``, where ``samples``
    holds ``obs, action, log_prob, value, advantages, targets`` (``[num_steps, num_envs, ...]``;
    with memory also ``done`` and the rollout's initial ``carry`` ``[1, num_envs, ...]``:
    ``forward`` replays them). Metrics: the averaged loss statistics, ``update_metrics(
    new_params, samples)`` where given (statistics of the whole update, e.g. PPO's
    ``approx_kl``), and ``report``'s.
    """
    if has_memory(parts.network) and config.num_envs % num_minibatches:
        raise ValueError(f"a network with memory learns from whole env sequences: "
                         f"num_minibatches = {num_minibatches} must divide num_envs = "
                         f"{config.num_envs}")

    demos = parts.demonstrations or Demonstrations()
    warmup = getattr(config, "critic_warmup", 0)
    network = parts.network

    def samples_of(batch: Batch) -> Samples:
        advantages, targets = estimate(batch)
        samples = {"obs": batch.obs, "action": batch.action, "log_prob": batch.log_prob,
                   "value": batch.value, "advantages": advantages, "targets": targets}
        if batch.policy_carry is not None:
            samples["done"] = batch.done
            samples["carry"] = jax.tree.map(lambda x: x[None], batch.policy_carry)
        return samples

    def critic_loss(params: Any, samples: Samples) -> tuple[jax.Array, Metrics]:
        _, values = forward(network, params, samples)
        loss = losses.value_loss(values, samples["targets"])
        return loss, {"value_loss": loss}

    def fit_critic(key: jax.Array, params: Any, opt_state: Any,
                   batch: Batch) -> tuple[Any, Any]:
        params, opt_state, _ = gradient_epochs(key, params, opt_state, samples_of(batch),
                                               critic_loss, optimizer, update_epochs,
                                               num_minibatches)
        return params, opt_state

    def init(key: jax.Array) -> TrainState:
        key, init_key, reset_key = jax.random.split(as_typed_key(key), 3)
        rollout_state = init_rollout(reset_key, config, parts, env_params)
        params = init_network(init_key, network, rollout_state)
        key, params, rollout_state = start_from_demonstrations(
            key, params, rollout_state, config, parts, env_params, fit_critic,
            optimizer.init(params))
        return TrainState(params=params, opt_state=optimizer.init(params), rollout=rollout_state,
                          key=key, update_count=jnp.zeros((), jnp.int32))

    def hybrid(loss_fn: LossFn, coef: jax.Array) -> LossFn:
        """The RL loss plus ``λ · (-log π(a|s))`` on the minibatch's demonstrations."""
        def loss(params: Any, samples: Samples) -> tuple[jax.Array, Metrics]:
            total, stats = loss_fn(params, samples)
            demo_loss = pretrain.demo_nll(
                lambda obs: network.apply(params, obs, method="policy"),
                samples["demo_obs"], samples["demo_action"])
            total = total + coef * demo_loss
            return total, {**stats, "loss": total, "demo_nll": demo_loss}

        return loss

    def imitate(key: jax.Array, params: Any, state: TrainState) -> Any:
        """``demo_gradient_steps`` supervised steps on the demonstrations, not tied to the RL
        optimiser: Adam is invariant to the loss's scale, so λ in the RL loss sets only the
        term's share of each step, never the step's length; here the annealed step size
        ``demo_learning_rate · demo_decay^k`` does (a fresh Adam each update, so the train
        state is unchanged)."""
        def nll(params, obs, action):
            return pretrain.demo_nll(
                lambda obs: network.apply(params, obs, method="policy"), obs, action)

        return pretrain.imitation_steps(
            key, nll, params, demos.demo, config.demo_gradient_steps,
            config.pretrain_batch_size,
            pretrain.demo_coefficient(config.demo_learning_rate, config.demo_decay,
                                      state.update_count),
            lambda obs: _normalize(config, state.rollout.obs_stats, obs))

    def learn(key: jax.Array, params: Any, opt_state: Any, batch: Batch,
              state: TrainState) -> tuple[Any, Any, Metrics]:
        samples, objective = samples_of(batch), loss_fn
        if demos.demo is not None:
            # A key of its own (folded in), so the RL minibatches are those of a plain run.
            index = jax.random.randint(jax.random.fold_in(key, 1), batch.reward.shape, 0,
                                       demos.demo.size)
            samples["demo_obs"] = _normalize(config, state.rollout.obs_stats,
                                             demos.demo.obs[index])
            samples["demo_action"] = demos.demo.action[index]
            objective = hybrid(loss_fn, pretrain.demo_coefficient(
                config.demo_coef, config.demo_decay, state.update_count))
        params, opt_state, metrics = gradient_epochs(key, params, opt_state, samples, objective,
                                                     optimizer, update_epochs, num_minibatches)
        if demos.demo is not None and getattr(config, "demo_gradient_steps", 0):
            params = imitate(jax.random.fold_in(key, 2), params, state)
        if update_metrics is not None:
            metrics = {**metrics, **update_metrics(params, samples)}
        return params, opt_state, metrics

    def update(state: TrainState) -> tuple[TrainState, Metrics]:
        key, rollout_key, learn_key, eval_key = split_update_key(state.key, config)
        rollout_state, batch, reward_metrics = collect(rollout_key, state.rollout, config,
                                                       parts, env_params, state.params)
        params, opt_state, metrics = learn(learn_key, state.params, state.opt_state, batch,
                                           state)
        update_count = state.update_count + 1
        metrics = report({**metrics, **reward_metrics}, config, parts, env_params, eval_key,
                         params, rollout_state, update_count)
        if warmup:
            metrics["step"] = metrics["step"] + warmup * config.batch_size
        return TrainState(params=params, opt_state=opt_state, rollout=rollout_state, key=key,
                          update_count=update_count), metrics

    return agent_from(config, parts, init, update, lambda state: state.params,
                      initial_steps=warmup * config.batch_size)
