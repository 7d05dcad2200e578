"""AlphaZero-style search on the true simulator: mctx's tree search guided by a policy/value
network trained towards the search's targets.

Course notes §10 (Optimal Control and Planning: Monte Carlo tree search), with the network of
AlphaZero (Silver et al. 2018) and the search of Gumbel MuZero (Danihelka et al. 2022). Every
step, from the env state it is shown (``Agent.acts_on_env_state``), the agent searches
``num_simulations`` simulations with ``mctx`` (``jaxrl.training.search``: the recurrent
function is the env's own dynamics, the network gives priors and leaf values) and acts on the
search's choice. The network ``(π_θ(·|s), V_θ(s))`` then learns from the searched rollout:

    L(θ) = E_t[ -Σ_a w_t(a) log π_θ(a|s_t) + c_v ½ (V_θ(s_t) - G_t)² ]

``w_t`` is the search's action weights at ``s_t`` (Gumbel: the improved policy
``softmax(logits + σ(completed Q))``; MuZero: the visit frequencies) and ``G_t`` the value
target, with ``γ_t = σ γ (1 - terminated_t)`` (``σ = -1`` between the two players of a board
game, whose values are the mover's) and ``V_{t+1} = V_θ(s_{t+1})`` of the network:

- ``n_step``: ``G_t = Σ_{k<m} (Π_{j<k} γ_{t+j}) r_{t+k} + (Π_{j<m} γ_{t+j}) V_{t+m}``,
  ``m = min(n, steps to the episode's end or the rollout's end)``;
- ``monte_carlo``: ``G_t = r_t + γ_t G_{t+1}`` to the episode's end (bootstrapped from
  ``V_θ`` only where the rollout or the time limit cut it).

Training data are on-policy batches: each update searches ``num_envs × num_steps`` steps with
the current network, then takes ``update_epochs`` passes of minibatch gradient steps over them.
A search's targets are best for the network that guided it, the simulator is cheap next to the
search, and the train state stays small (no buffer): a replay of older search targets would
train on stale improved policies. Board games (``--env pgx/tic_tac_toe``): the same agent plays
both sides by self-play, since the network always plays the side to move
(``jaxrl.envs.pgx_env``). mctx is an optional extra: ``pip install "jaxrl[planning]"``.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
from flax import struct

from jaxrl.backend import ONE_OFF_UNROLL
from jaxrl.envs import EpisodeStatistics
from jaxrl.envs.spaces import Discrete
from jaxrl.evaluation import evaluate
from jaxrl.losses.returns import discounted_returns, n_step_returns
from jaxrl.models.actor_critic import ActorCritic, make_actor_critic
from jaxrl.models.torsos import MLP
from jaxrl.rollout import (
    episode_return_metric,
    reset_envs,
    rollout_with_carry,
    shuffled_minibatches,
)
from jaxrl.training.agent import Agent, as_typed_key, train_from_agent
from jaxrl.training.config import ACTIVATIONS, BaseConfig, check_config, hyper, static
from jaxrl.training.optim import apply_gradients, flat_adam
from jaxrl.training.search import SEARCHES, make_search, turn_sign

__all__ = ["TORSOS", "VALUE_TARGETS", "Config", "TrainState", "make_agent", "make_train",
           "value_targets"]

VALUE_TARGETS = ("n_step", "monte_carlo")
TORSOS = ("auto", "mlp")


class Config(BaseConfig):
    """AlphaZero-style search with a learned policy/value network on the true simulator."""

    search: str = static("gumbel", SEARCHES)
    """gumbel (mctx.gumbel_muzero_policy) or muzero (mctx.muzero_policy, PUCT)"""
    num_simulations: int = static(16, ">= 1")
    """simulations per search (one per acted step)"""
    eval_simulations: int = static(0, ">= 0")
    """simulations when acting deterministically (evaluation, jaxrl eval); 0: num_simulations"""
    max_num_considered_actions: int = static(16, ">= 1")
    """gumbel: actions sampled at the root for sequential halving"""
    exploration: float = hyper(1.0, ">= 0")
    """while training, gumbel: scale of the root's Gumbel noise; muzero: fraction of Dirichlet
    noise in the root prior (at most 1). Evaluation acts without it."""
    value_target: str = static("n_step", VALUE_TARGETS)
    """n_step (bootstrapped after n_steps) or monte_carlo (to the episode's end)"""
    n_steps: int = static(10, ">= 1")
    """n of the n-step value target"""
    gamma: float = hyper(0.99, "[0, 1]")
    """discount of rewards, in the search and the value target"""
    num_envs: int = static(8, ">= 1")
    """envs searching in parallel"""
    num_steps: int = static(32, ">= 1")
    """env steps per env in one update"""
    total_timesteps: int = static(20_000, ">= 1")
    """env steps in all"""
    update_epochs: int = static(4, ">= 1")
    """passes over one update's rollout"""
    num_minibatches: int = static(4, ">= 1")
    """minibatches per pass (must divide num_envs * num_steps)"""
    learning_rate: float = hyper(1e-3, "> 0")
    """Adam step size"""
    max_grad_norm: float = hyper(1.0, "> 0")
    """global gradient-norm clip"""
    vf_coef: float = hyper(0.5, ">= 0")
    """c_v: weight of the value loss"""
    hidden_sizes: tuple[int, ...] = static((64, 64))
    """network widths"""
    torso: str = static("auto", TORSOS)
    """auto: the MinAtar CNN for image observations [H, W, C], else an MLP; mlp: an MLP on the
    flattened observation (small boards)"""
    activation: str = static("relu", ACTIVATIONS)
    """network activation"""
    eval_episodes: int = static(0, ">= 0")
    """fresh episodes evaluated (searching, without exploration noise) after each update"""

    def validate(self) -> None:
        """One update fits in ``total_timesteps``; minibatches divide the rollout."""
        steps = self.num_envs * self.num_steps
        if self.total_timesteps < steps:
            raise ValueError(f"total_timesteps = {self.total_timesteps} is smaller than one "
                             f"update (num_envs * num_steps = {steps}); raise total_timesteps")
        if steps % self.num_minibatches:
            raise ValueError(f"num_minibatches = {self.num_minibatches} must divide num_envs * "
                             f"num_steps = {steps}")


class TrainState(struct.PyTreeNode):
    """The network and its optimiser, the env batch (with episode statistics) and the key."""

    params: Any
    opt_state: Any
    env_state: Any
    obs: jax.Array
    key: jax.Array
    last_episode_return: jax.Array


def value_targets(kind: str, rewards: jax.Array, next_values: jax.Array, discounts: jax.Array,
                  dones: jax.Array, n: int) -> jax.Array:
    """The value targets ``G_t`` of the module docstring over a time-major rollout ``[T, N]``:
    ``discounts = σ γ (1 - terminated)``, ``dones = terminated | truncated``, ``next_values =
    V(s_{t+1})`` (of the final observation where an episode ended)."""
    if kind == "n_step":
        return n_step_returns(rewards, next_values, discounts, dones, n)
    if kind == "monte_carlo":
        return discounted_returns(rewards, discounts, dones, next_values)
    raise ValueError(f"value_target must be one of {', '.join(VALUE_TARGETS)}, got {kind!r}")


def make_agent(config: Config, env: Any, env_params: Any) -> Agent:
    """The AlphaZero agent on ``env`` (discrete actions, steppable from a copied state);
    ``ValueError`` without mctx (``pip install "jaxrl[planning]"``)."""
    check_config(config)
    space = env.action_space(env_params)
    if not isinstance(space, Discrete):
        raise TypeError(f"alphazero searches over discrete actions; the action space is {space}")
    network = make_actor_critic(env.observation_space(env_params), space, config.hidden_sizes,
                                config.activation)
    if config.torso == "mlp":
        obs_ndim = len(env.observation_space(env_params).shape)
        network = ActorCritic(MLP(config.hidden_sizes, config.activation, obs_ndim),
                              MLP(config.hidden_sizes, config.activation, obs_ndim),
                              network.policy_head)

    def evaluate_network(params, obs):
        policy, values = network.apply(params, obs)
        return policy.logits, values

    considered = min(config.max_num_considered_actions, space.n)
    search = make_search(env, env_params, evaluate_network, search=config.search,
                         num_simulations=config.num_simulations,
                         max_num_considered_actions=considered)
    eval_search = make_search(env, env_params, evaluate_network, search=config.search,
                              num_simulations=config.eval_simulations or config.num_simulations,
                              max_num_considered_actions=considered)
    sign = turn_sign(env)
    optimizer = flat_adam(config.learning_rate, max_grad_norm=config.max_grad_norm)
    stats_env = EpisodeStatistics(env)
    eval_steps = int(getattr(env_params, "max_steps_in_episode", 1_000))
    num_steps = config.num_envs * config.num_steps

    def act(state, obs, key, deterministic=False, *, env_state):
        run = eval_search if deterministic else search
        return run({"network": state.params}, key, obs, env_state, config.gamma,
                   config.exploration, deterministic).action

    def loss_fn(params, samples):
        policy, values = network.apply(params, samples["obs"])
        policy_loss = -jnp.sum(samples["weights"] * jax.nn.log_softmax(policy.logits), -1).mean()
        value_loss = 0.5 * jnp.square(values - samples["targets"]).mean()
        return policy_loss + config.vf_coef * value_loss, (policy_loss, value_loss)

    def init(key):
        key, net_key, reset_key = jax.random.split(as_typed_key(key), 3)
        obs, env_state = reset_envs(reset_key, stats_env, env_params, config.num_envs)
        params = network.init(net_key, obs[:1])
        return TrainState(params, optimizer.init(params), env_state, obs, key,
                          jnp.full((), jnp.nan))

    def update(state):
        key, rollout_key, epoch_key, eval_key = jax.random.split(state.key, 4)

        def rollout_policy(key, obs, env_state, carry):
            output = search({"network": state.params}, key, obs, env_state.env_state,
                            config.gamma, config.exploration, False)
            return output.action, {"weights": output.action_weights}, carry

        env_state, obs, _, traj = rollout_with_carry(
            rollout_key, stats_env, env_params, state.env_state, state.obs, (), rollout_policy,
            config.num_steps, (), unroll=ONE_OFF_UNROLL)
        next_values = network.apply(state.params, traj.next_obs)[1]
        discounts = sign * config.gamma * (1.0 - traj.terminated)
        targets = value_targets(config.value_target, traj.reward, next_values, discounts,
                                traj.done, config.n_steps)
        batch = {"obs": traj.obs, "weights": traj.extras["weights"], "targets": targets}

        def epoch(carry, key):
            def minibatch(carry, samples):
                params, opt_state = carry
                (_, (policy_loss, value_loss)), grads = jax.value_and_grad(
                    loss_fn, has_aux=True)(params, samples)
                params, opt_state = apply_gradients(optimizer, grads, opt_state, params)
                return (params, opt_state), (policy_loss, value_loss)

            return jax.lax.scan(minibatch, carry,
                                shuffled_minibatches(key, batch, config.num_minibatches))

        (params, opt_state), (policy_loss, value_loss) = jax.lax.scan(
            epoch, (state.params, state.opt_state),
            jax.random.split(epoch_key, config.update_epochs))
        episode_return = episode_return_metric(traj.info, state.last_episode_return)
        metrics = {"episode_return": episode_return, "policy_loss": policy_loss[-1].mean(),
                   "value_loss": value_loss[-1].mean()}
        state = TrainState(params, opt_state, env_state, obs, key, episode_return)
        if config.eval_episodes > 0:
            metrics["eval_return"] = evaluate(
                eval_key, env, env_params,
                lambda key, obs, env_state, carry: (act(state, obs, key, True,
                                                        env_state=env_state), carry),
                config.eval_episodes, eval_steps, ONE_OFF_UNROLL, initial_carry=lambda n: ())
        return state, metrics

    return Agent(init=init, update=update, act=act, num_updates=config.total_timesteps // num_steps,
                 steps_per_update=num_steps, acts_on_env_state=True)


def make_train(config: Config, env: Any, env_params: Any):
    """``train(key) -> (train_state, metrics)``: ``init`` and a scan of ``update``."""
    return train_from_agent(make_agent(config, env, env_params))
