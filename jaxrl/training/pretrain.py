"""Learning from demonstrations: the pieces an online agent uses to start from, or stay near, a
demonstrated policy.

Course notes 004 (imitation and exploration): *pre-train & finetune* initialises ``π`` by
maximum likelihood on demonstrations, then improves it with RL; the *hybrid objective*
``E_π[r] + λ Σ_(s,a)∈demos log π(a|s)`` keeps the demonstrations in the loss while RL takes over.

- ``load_demonstrations``: a ``jaxrl dataset`` file checked against the env (id and spaces) and
  moved to the device.
- ``actor_from_run``: the actor of a saved ``bc`` run mapped onto an on-policy actor-critic's
  ``actor_torso`` / ``policy_head`` (discrete actions; BC's observation normaliser is folded into
  the first layer, so the copied policy is the same function of the raw observation).
- ``tanh_actor_from_run``: the same for a ``bc`` run of Box actions, onto SAC's tanh-Gaussian
  actor (its mean; the greedy policy is BC's).
- ``deterministic_actor_from_run``: the same mean as a deterministic actor's ``μ(s)`` (TD3's).
- ``q_network_from_run``: BC's logits as a Q-network (DQN's), so its greedy policy is BC's.
- ``ReplayPretrainFields`` / ``clone_into``: ``pretrain_dataset`` for the replay agents (DQN,
  soft Q, SAC, TD3, DDPG): maximum likelihood of the agent's own policy network inside
  ``init``, and their ``critic_warmup`` field; ``q_start`` and ``deterministic_start`` put
  ``init_from`` and ``pretrain_dataset`` together for the Q-learners and the deterministic
  actors.
- ``imitation_steps``: ``steps`` Adam steps on ``-E_D[log π(a|s)]``, pure (run inside ``init``).
- ``demo_nll`` / ``demo_coefficient``: the hybrid objective's term and its schedule
  ``λ_k = λ_0 · decay^k`` (DAPG's, Rajeswaran et al. 2018).
- ``large_margin_loss``: DQfD's supervised term for Q-learners (Hester et al. 2018), and
  ``demo_mean``, the mean of a per-row term over the demonstration rows of a replay batch.

Every problem with the input (another env, another network, mismatched spaces) raises one
``ValueError`` that names the flag to change.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import optax

from jaxrl.datasets import Transitions
from jaxrl.envs.spaces import Box, Discrete
from jaxrl.run_dir import PATH_FIELDS, resolve_paths
from jaxrl.training.config import BaseConfig, hyper, static

__all__ = ["PATH_FIELDS", "Demonstrations", "ReplayPretrainFields", "actor_from_run",
           "agent_actions", "clone_into", "demo_coefficient", "demo_mean", "demo_nll",
           "deterministic_actor_from_run", "deterministic_start", "imitation_steps",
           "large_margin_loss", "load", "load_demonstrations", "q_network_from_run", "q_start",
           "resolve_paths", "start_from", "tanh_actor_from_run"]

LogLikelihood = Callable[[Any, jax.Array, jax.Array], jax.Array]
"""``log_likelihood(params, obs [B, ...], action [B, ...]) -> [B]`` of a policy network."""


class ReplayPretrainFields(BaseConfig):
    """Pre-train & finetune for the replay agents (DQN, soft Q, SAC, TD3, DDPG; course notes
    004): behaviour cloning inside ``init`` and a critic warm-up before the first policy
    update."""

    pretrain_dataset: str = static("")
    """behaviour-clone the policy network on this dataset (.npz) inside init, before the
    first env step: pretrain_steps Adam steps on -E_D[log π(a|s)] (docs/demonstrations.md)"""
    pretrain_steps: int = static(1000, ">= 1")
    """gradient steps of the behaviour cloning (with pretrain_dataset)"""
    pretrain_batch_size: int = static(256, ">= 1")
    """demonstrations per behaviour-cloning step (with pretrain_dataset)"""
    pretrain_learning_rate: float = hyper(1e-3, "> 0")
    """Adam step size of the behaviour cloning (with pretrain_dataset)"""
    critic_warmup: int = static(0, ">= 0")
    """first gradient steps that fit the critic to the initial policy's own returns before
    its first update (SAC, TD3, DDPG: the actor held; DQN, soft Q: targets bootstrap with the
    initial greedy action, the target network frozen until then)"""


class Demonstrations(NamedTuple):
    """What an on-policy agent starts from: each ``None`` when unused."""

    pretrain: Transitions | None = None
    """``pretrain_dataset``: behaviour cloning inside ``init``"""
    demo: Transitions | None = None
    """``demo_dataset``: the hybrid objective's demonstrations"""
    actor: Any = None
    """``init_from``: the actor's parameters ``{"actor_torso": ..., "policy_head": ...}``"""


def load_demonstrations(path: str, env: Any, env_params: Any, flag: str) -> Transitions:
    """The dataset at ``path`` on device, checked against ``env`` (its id where the env has one,
    and its spaces); ``ValueError`` prefixed with ``flag``."""
    from jaxrl import datasets

    try:
        dataset = datasets.load(path, env, env_params, getattr(env, "env_id", None))
    except ValueError as error:
        raise ValueError(f"--{flag} {path}: {error}") from None
    return dataset.transitions()


def actor_from_run(run_dir: str, env: Any, env_params: Any, template: Any,
                   activation: str) -> Any:
    """The actor of ``run_dir`` (a ``bc`` run; its first seed) as ``ActorCritic`` actor params.

    ``template`` is the agent's own actor ``{"actor_torso": ..., "policy_head": ...}`` (shapes
    only). BC's ``ImitationPolicy`` is an MLP and a Dense logits layer, which are exactly
    ``actor_torso`` and a ``CategoricalHead``; its input normaliser ``(s - m) / σ`` is folded
    into the first layer (``W' = W / σ``, ``b' = b - (m / σ) W``).
    """
    if not isinstance(env.action_space(env_params), Discrete):
        # Checked first: no run of a Box env can be copied here, whatever the directory holds.
        raise ValueError(f"--init-from {run_dir}: this agent's Gaussian policy cannot copy bc's "
                         f"tanh-squashed one (Box actions); pass --pretrain-dataset FILE (the "
                         f"bc run's dataset: maximum likelihood on it) instead, or train sac "
                         f"--init-from {run_dir} (a tanh-squashed actor)")
    policy = _bc_policy(run_dir, env)
    torso, output = _raw_observation_layers(run_dir, policy)
    actor = {"actor_torso": torso, "policy_head": {"Dense_0": output}}
    _check_network(run_dir, policy, actor, template, activation)
    return jax.tree.map(jnp.asarray, actor)


def tanh_actor_from_run(run_dir: str, env: Any, env_params: Any, template: Any,
                        activation: str) -> Any:
    """The actor of ``run_dir`` (a ``bc`` run of Box actions; its first seed) as
    ``{"torso": ..., "mean": ...}`` of a tanh-squashed Gaussian actor (SAC's; ``template``: the
    agent's own actor parameters, shapes suffice,
    ``{"params": {"torso": ..., "head": {"Dense_0": mean, "Dense_1": log σ}}}``).

    BC's continuous policy is ``μ(s) = low + (tanh(f(s)) + 1)(high - low) / 2``; the actor's
    mode is ``tanh(mean(s))`` in ``[-1, 1]``, rescaled to the same bounds by the replay loop.
    So ``torso`` and ``mean`` take BC's MLP (normaliser folded in) and output layer and the
    copied greedy policy is BC's; the log-σ layer stays the agent's own.
    """
    policy = _bc_policy(run_dir, env)
    if isinstance(env.action_space(env_params), Discrete):
        raise ValueError(f"--init-from {run_dir}: this agent acts in a Box action space; the "
                         f"env's is discrete")
    torso, output = _raw_observation_layers(run_dir, policy)
    actor = {"torso": torso, "mean": output}
    wanted = {"torso": template["params"]["torso"], "mean": template["params"]["head"]["Dense_0"]}
    _check_network(run_dir, policy, actor, wanted, activation)
    return jax.tree.map(jnp.asarray, actor)


def deterministic_actor_from_run(run_dir: str, env: Any, env_params: Any, template: Any,
                                 activation: str) -> Any:
    """The greedy policy of ``run_dir`` (a ``bc`` run of Box actions) as the parameters
    ``{"params": {"torso": ..., "Dense_0": ...}}`` of a deterministic actor
    ``μ(s) = tanh(W · torso(s) + b)`` (TD3's, ``models.off_policy.DeterministicActor``;
    ``template``: its parameters, shapes suffice).

    BC's mean is ``low + (tanh(f(s)) + 1)(high - low) / 2``, and ``μ`` in ``[-1, 1]`` is
    rescaled to the same bounds, so ``μ = tanh(f)`` with BC's MLP (normaliser folded in) as
    the torso and its output layer as ``Dense_0`` acts exactly as BC's greedy policy."""
    if not Path(run_dir).is_dir():
        raise ValueError(f"--init-from {run_dir}: no run directory there")
    wanted = {"params": {"torso": template["params"]["torso"],
                         "head": {"Dense_0": template["params"]["Dense_0"]}}}
    actor = tanh_actor_from_run(run_dir, env, env_params, wanted, activation)
    return {"params": {"torso": actor["torso"], "Dense_0": actor["mean"]}}


def q_network_from_run(run_dir: str, env: Any, env_params: Any, template: Any,
                       activation: str) -> Any:
    """The policy of ``run_dir`` (a ``bc`` run of discrete actions) as the parameters
    ``{"params": {"torso": ..., "head": {"Dense_0": ...}}}`` of a Q-network (DQN's, not
    dueling; ``template``: its parameters, shapes suffice) with ``Q(s, ·) = BC's logits``.

    Logits are Q-values up to a per-state shift and scale under the Boltzmann view
    ``π(a|s) ∝ exp(Q(s, a) / τ)``, so the greedy policy ``argmax_a Q`` is BC's from the first
    step, with no dataset needed; TD learning then fits the values' scale (course notes 004,
    pre-train & finetune). DQfD's large-margin loss (``demo_dataset``) is the alternative that
    keeps the demonstrations in the loss."""
    if not Path(run_dir).is_dir():
        raise ValueError(f"--init-from {run_dir}: no run directory there")
    if not isinstance(env.action_space(env_params), Discrete):
        raise ValueError(f"--init-from {run_dir}: a Q-network needs discrete actions")
    policy = _bc_policy(run_dir, env)
    torso, output = _raw_observation_layers(run_dir, policy)
    q = {"params": {"torso": torso, "head": {"Dense_0": output}}}
    _check_network(run_dir, policy, q, template, activation)
    return jax.tree.map(jnp.asarray, q)


def start_from(agent: Any, network: str, load: Any) -> Any:
    """``agent`` whose ``init`` puts ``load(template)`` in place of ``params[network]`` and
    ``target_params[network]`` (a replay agent's network and its target start equal);
    ``template`` is the fresh parameters' shapes. DQN's and TD3's ``--init-from``."""
    fresh = agent.init
    loaded = load(jax.eval_shape(lambda key: fresh(key).params[network], jax.random.key(0)))

    def init(key: jax.Array) -> Any:
        state = fresh(key)
        return state.replace(params={**state.params, network: loaded},
                             target_params={**state.target_params, network: loaded})

    return agent._replace(init=init)


def agent_actions(action: jax.Array, space: Any) -> jax.Array:
    """Dataset actions as a replay agent acts: Box actions mapped affinely from the env's
    bounds to ``[-1, 1]`` (``RescaleAction``'s inverse, clipped), discrete ones as int32."""
    if isinstance(space, Box):
        low, high = jnp.asarray(space.low, jnp.float32), jnp.asarray(space.high, jnp.float32)
        return jnp.clip(2.0 * (action - low) / (high - low) - 1.0, -1.0, 1.0)
    return action.astype(jnp.int32)


def clone_into(agent: Any, network: str, log_likelihood: LogLikelihood, config: Any, env: Any,
               env_params: Any) -> Any:
    """``agent`` whose ``init`` then behaviour-clones ``params[network]`` on
    ``config.pretrain_dataset``: ``pretrain_steps`` Adam steps on ``-E_D[log_likelihood]``
    (``imitation_steps``, keys folded from ``init``'s), copied into ``target_params[network]``
    where the agent has that target (a replay agent's network and its target start equal).
    The agent's ``agent_actions`` of the demonstrations are the labels. Unchanged without a
    dataset. The optimiser state stays ``init``'s fresh one (Adam's zero moments)."""
    if not config.pretrain_dataset:
        return agent
    data = load_demonstrations(config.pretrain_dataset, env, env_params, "pretrain-dataset")
    data = data.replace(action=agent_actions(data.action, env.action_space(env_params)))
    fresh = agent.init

    def nll(params, obs, action):
        return -log_likelihood(params, obs, action).mean()

    def init(key: jax.Array) -> Any:
        state = fresh(key)
        params = imitation_steps(jax.random.fold_in(key, 33), nll, state.params[network], data,
                                 config.pretrain_steps, config.pretrain_batch_size,
                                 config.pretrain_learning_rate)
        targets = state.target_params
        if network in targets:
            targets = {**targets, network: params}
        return state.replace(params={**state.params, network: params}, target_params=targets)

    return agent._replace(init=init)


def q_start(agent: Any, network: Any, config: Any, env: Any, env_params: Any) -> Any:
    """A Q-learner (DQN's, soft Q's; ``network``: its Q-network) started with ``Q`` and its
    target at ``config.init_from``'s logits (``q_network_from_run``, a plain head only) and
    then cloned on ``config.pretrain_dataset`` (``clone_into``): maximum likelihood of the
    Boltzmann policy ``softmax_a Q(s, a)``, the view under which BC's logits are Q-values."""
    if config.init_from:
        if config.dueling:
            raise ValueError("init_from copies bc's logits into a plain Q head; drop --dueling")
        agent = start_from(agent, "q", lambda template: q_network_from_run(
            config.init_from, env, env_params, template, config.activation))

    def log_likelihood(params, obs, action):
        log_probs = jax.nn.log_softmax(network.apply(params, obs))
        return jnp.take_along_axis(log_probs, action[:, None], -1).squeeze(-1)

    return clone_into(agent, "q", log_likelihood, config, env, env_params)


def deterministic_start(agent: Any, config: Any, env: Any, env_params: Any) -> Any:
    """A deterministic-actor agent (TD3's, DDPG's) started from ``config.init_from``'s greedy
    policy (``deterministic_actor_from_run``) and then cloned on ``config.pretrain_dataset``
    (``clone_into``): maximum likelihood under a fixed-σ Gaussian around ``μ(s)``, i.e. least
    squares ``-½ ||μ(s) - a||²`` to the demonstrated actions in ``[-1, 1]``."""
    from jaxrl.models import make_deterministic_actor

    if config.init_from:
        agent = start_from(agent, "actor", lambda template: deterministic_actor_from_run(
            config.init_from, env, env_params, template, config.activation))
    if not config.pretrain_dataset:
        return agent
    space = env.action_space(env_params)
    actor = make_deterministic_actor(env.observation_space(env_params),
                                     Box(-1.0, 1.0, space.shape), config.hidden_sizes,
                                     config.activation)

    def log_likelihood(params, obs, action):
        return -0.5 * ((actor.apply(params, obs) - action) ** 2).sum(-1)

    return clone_into(agent, "actor", log_likelihood, config, env, env_params)


def _bc_policy(run_dir: str, env: Any) -> Any:
    """The saved policy of ``run_dir``, checked: a bc run (no hindsight) of ``env``."""
    from jaxrl.checkpoint import CheckpointError
    from jaxrl.policy import load_policy

    try:
        policy = load_policy(run_dir)
    except (CheckpointError, OSError) as error:
        raise ValueError(f"--init-from {run_dir}: {error}") from None
    here = getattr(env, "env_id", None)
    if here is not None and policy.env_id != here:
        raise ValueError(f"--init-from {run_dir}: that run trained on {policy.env_id!r}, not "
                         f"{here!r}; pass --env {policy.env_id} or a run of {here}")
    if policy.algo != "bc" or policy.config.hindsight:
        raise ValueError(f"--init-from {run_dir}: a {policy.algo} run; agents start from a bc "
                         f"run (without --hindsight)")
    return policy


def _raw_observation_layers(run_dir: str, policy: Any) -> tuple[Any, Any]:
    """BC's MLP with its observation normaliser ``(s - m) / σ`` folded into the first layer
    (``W' = W / σ``, ``b' = b - (m / σ) W``), and its output layer."""
    bc = policy.params.learner.params["params"]
    normalizer = _normalizer(run_dir, policy)
    torso = {name: dict(layer) for name, layer in bc["MLP_0"].items()}
    first = torso["Dense_0"]
    kernel = first["kernel"] / normalizer.std[:, None]
    torso["Dense_0"] = {"kernel": kernel, "bias": first["bias"] - normalizer.mean @ kernel}
    return torso, dict(bc["Dense_0"])


def _check_network(run_dir: str, policy: Any, actor: Any, template: Any,
                   activation: str) -> None:
    """``ValueError`` naming the bc run's widths and activation where the agent's differ."""
    shapes = jax.tree.map(lambda x: tuple(x.shape), actor)
    wanted = jax.tree.map(lambda x: tuple(x.shape), template)
    if shapes != wanted or policy.config.activation != activation:
        mlp = policy.params.learner.params["params"]["MLP_0"]
        widths = tuple(layer["kernel"].shape[1] for layer in mlp.values())
        raise ValueError(f"--init-from {run_dir}: its bc policy has hidden_sizes {widths} with "
                         f"{policy.config.activation}, an incompatible network; pass "
                         f"--hidden-sizes {' '.join(map(str, widths))} --activation "
                         f"{policy.config.activation}")


def _normalizer(run_dir: str, policy: Any) -> Any:
    """The observation normaliser the bc run trained with: its dataset's statistics
    (``ObsNormalizer.from_data``), or the identity without ``normalize_obs``."""
    from jaxrl import datasets
    from jaxrl.run_dir import read_run
    from jaxrl.training.normalization import ObsNormalizer

    shape = policy.env.observation_space(policy.env_params).shape
    if not policy.config.normalize_obs:
        return ObsNormalizer(jnp.zeros(shape, jnp.float32), jnp.ones(shape, jnp.float32))
    path = read_run(run_dir).dataset
    try:
        dataset = datasets.load(path)
    except (ValueError, TypeError) as error:
        raise ValueError(f"--init-from {run_dir}: its dataset, whose statistics normalise the "
                         f"policy's input, cannot be read ({error})") from None
    return ObsNormalizer.from_data(dataset.transitions(), True)


def load(config: Any, env: Any, env_params: Any,
         actor_template: Callable[[], Any]) -> Demonstrations | None:
    """The ``Demonstrations`` a config's ``pretrain_dataset`` / ``demo_dataset`` / ``init_from``
    name, or ``None`` when it names none; ``actor_template()`` gives the agent's actor
    parameters (shapes suffice), called only with ``init_from``."""
    pretrain = getattr(config, "pretrain_dataset", "")
    demo = getattr(config, "demo_dataset", "")
    init_from = getattr(config, "init_from", "")
    if not (pretrain or demo or init_from):
        return None
    actor = None
    if init_from:
        if not Path(init_from).is_dir():
            raise ValueError(f"--init-from {init_from}: no run directory there")
        actor = actor_from_run(init_from, env, env_params, actor_template(), config.activation)
    return Demonstrations(
        pretrain=load_demonstrations(pretrain, env, env_params, "pretrain-dataset")
        if pretrain else None,
        demo=load_demonstrations(demo, env, env_params, "demo-dataset") if demo else None,
        actor=actor)


def demo_nll(policy: Any, obs: jax.Array, action: jax.Array) -> jax.Array:
    """``-E[log π(a|s)]`` over demonstration pairs; ``policy(obs)`` is a distrax distribution."""
    return -policy(obs).log_prob(action).mean()


def large_margin_loss(q_values: jax.Array, expert_action: jax.Array,
                      margin: float | jax.Array) -> jax.Array:
    """DQfD's large-margin term ``max_a [Q(s, a) + l(a_E, a)] - Q(s, a_E)`` per row ``[B]``,
    ``l(a_E, a) = margin`` for ``a ≠ a_E`` and 0 for ``a = a_E`` (``q_values [B, A]``).

    It is 0 exactly when the expert's action beats every other by at least ``margin``, so the
    greedy policy imitates the demonstrations and Q of unseen actions is pushed below
    (Hester et al. 2018, eq. 2; course notes 004, demonstrations as off-policy data).
    """
    num_actions = q_values.shape[-1]
    penalty = margin * (1.0 - jax.nn.one_hot(expert_action, num_actions, dtype=q_values.dtype))
    expert_q = jnp.take_along_axis(q_values, expert_action[:, None], -1).squeeze(-1)
    return (q_values + penalty).max(-1) - expert_q


def demo_mean(values: jax.Array, demo: jax.Array) -> jax.Array:
    """``Σ demo · values / max(Σ demo, 1)``: the mean over a batch's demonstration rows
    (``demo`` 1.0 on them, ``replay.Sample.demo``), 0 when it has none."""
    return (demo * values).sum() / jnp.maximum(demo.sum(), 1.0)


def demo_coefficient(coef: float | jax.Array, decay: float | jax.Array,
                     update: jax.Array) -> jax.Array:
    """``λ_k = λ_0 · decay^k`` at update ``k`` (0-based): the weight of the imitation term."""
    return coef * jnp.power(decay, update.astype(jnp.float32))


def imitation_steps(key: jax.Array, policy_loss: Any, params: Any, data: Transitions,
                    steps: int, batch_size: int, learning_rate: float | jax.Array,
                    prepare_obs: Any = lambda obs: obs) -> Any:
    """``steps`` Adam steps on ``policy_loss(params, obs, action) = -E[log π(a|s)]`` over
    minibatches of ``batch_size`` demonstrations drawn uniformly; pure and jit-able.

    Parameters the loss does not touch get zero gradients and so, under Adam from a fresh state,
    stay bitwise unchanged (the critic of an actor-critic)."""
    optimizer = optax.adam(learning_rate)

    def step(carry, step_key):
        params, opt_state = carry
        index = jax.random.randint(step_key, (batch_size,), 0, data.size)
        grads = jax.grad(policy_loss)(params, prepare_obs(data.obs[index]), data.action[index])
        updates, opt_state = optimizer.update(grads, opt_state, params)
        return (optax.apply_updates(params, updates), opt_state), None

    (params, _), _ = jax.lax.scan(step, (params, optimizer.init(params)),
                                  jax.random.split(key, steps))
    return params
