"""The algorithm registry: every algorithm registered once, with its family and what it needs.

The CLI (``jaxrl train <name>``, ``jaxrl algorithms``, ``--help``), the runner, the determinism
tests and the README's algorithm table all read this table; the bad-input errors of every family
come from the capability fields, not from per-agent code. Adding an algorithm is one file in
``jaxrl/agents/``, one ``register`` call here and one tiny test config in
``tests/agent_configs.py`` (see ``docs/writing-an-algorithm.md``).

Capabilities (``needs``):

- ``DATASET``: learns from a fixed dataset (``--dataset FILE.npz``); the runner loads it,
  checks it against the env and passes it as ``make_agent(..., dataset=...)``.
- ``EXPERT``: queries an expert while training (DAgger); the env needs a scripted expert
  (``jaxrl.envs.experts``).
- ``DIFFERENTIABLE_ENV``: backpropagates through the env's step (an env providing
  ``"differentiable"``); ``TABULAR_ENV``: needs the exact transition table (``"tabular"``).
- ``ENV_STATE``: acts from the env state, not the observation (a planner on the simulator);
  evaluation, ``load_policy`` and dataset collection pass the state (``training.agent``).
- ``REFERENCE_POLICY``: regularises towards a reference policy (RLHF's KL penalty), passed as
  ``make_agent(..., reference=...)``.

Importing this module imports no algorithm: ``Algorithm.load()`` does, on demand.
"""

from __future__ import annotations

import dataclasses
import importlib
from types import ModuleType
from typing import Any

__all__ = ["DATASET", "DIFFERENTIABLE_ENV", "ENV_STATE", "EXPERT", "NEEDS", "REFERENCE_POLICY",
           "TABULAR_ENV", "Algorithm", "algorithms", "check_env", "get", "markdown_table",
           "names", "register"]

DATASET = "dataset"
EXPERT = "expert"
DIFFERENTIABLE_ENV = "differentiable_env"
TABULAR_ENV = "tabular_env"
ENV_STATE = "env_state"
REFERENCE_POLICY = "reference_policy"
NEEDS = (DATASET, EXPERT, DIFFERENTIABLE_ENV, TABULAR_ENV, ENV_STATE, REFERENCE_POLICY)

DISCRETE, CONTINUOUS = "discrete", "continuous"


@dataclasses.dataclass(frozen=True)
class Algorithm:
    """One registered algorithm: ``module`` provides ``Config``, ``make_agent``, ``make_train``."""

    name: str
    module: str
    family: str
    summary: str
    notes: str
    """the course-notes section it implements"""
    actions: tuple[str, ...] = (DISCRETE, CONTINUOUS)
    needs: frozenset[str] = frozenset()
    headline: str = ""
    """one result for the README table"""

    def load(self) -> ModuleType:
        """The algorithm's module (imported on first use)."""
        return importlib.import_module(self.module)


_REGISTRY: dict[str, Algorithm] = {}


def register(name: str, module: str, family: str, summary: str, notes: str, *,
             actions: tuple[str, ...] = (DISCRETE, CONTINUOUS), needs: tuple[str, ...] = (),
             headline: str = "") -> Algorithm:
    """Add an algorithm; ``ValueError`` for a taken name, an unknown need or action kind."""
    if name in _REGISTRY:
        raise ValueError(f"algorithm {name!r} is already registered")
    unknown = [need for need in needs if need not in NEEDS]
    if unknown or not set(actions) <= {DISCRETE, CONTINUOUS}:
        raise ValueError(f"{name}: needs must be among {', '.join(NEEDS)} and actions among "
                         f"discrete, continuous; got needs={needs}, actions={actions}")
    algorithm = Algorithm(name, module, family, summary, notes, tuple(actions), frozenset(needs),
                          headline)
    _REGISTRY[name] = algorithm
    return algorithm


def get(name: str) -> Algorithm:
    """The algorithm called ``name``; ``ValueError`` listing the known ones otherwise."""
    if name not in _REGISTRY:
        raise ValueError(f"unknown algorithm {name!r}; choose one of: {', '.join(_REGISTRY)}")
    return _REGISTRY[name]


def names() -> list[str]:
    """Every registered name, in registration order."""
    return list(_REGISTRY)


def algorithms(family: str | None = None) -> list[Algorithm]:
    """The registered algorithms (of ``family`` only, if given), in registration order."""
    return [a for a in _REGISTRY.values() if family is None or a.family == family]


def _names_where(predicate) -> str:
    return ", ".join(a.name for a in _REGISTRY.values() if predicate(a)) or "none yet"


def check_env(algorithm: Algorithm, env_id: str, env: Any, env_params: Any) -> None:
    """Whether ``env`` has what ``algorithm`` needs; ``TypeError`` / ``ValueError`` saying what
    fits instead. Called by the runner before any agent is built."""
    from jaxrl import envs
    from jaxrl.envs.spaces import Box, Discrete

    for need, capability, what in (
            (DIFFERENTIABLE_ENV, "differentiable", "backpropagates through the env's dynamics, "
                                                  "which needs a differentiable env"),
            (TABULAR_ENV, "tabular", "plans with the exact transition table, which needs a "
                                     "tabular env")):
        if need in algorithm.needs and capability not in envs.capabilities(env_id):
            fitting = ", ".join(envs.list_envs(capability)) or "none registered"
            raise ValueError(f"{algorithm.name} {what}; {env_id} is not one. These are: "
                             f"{fitting}")
    space = env.action_space(env_params)
    kind = DISCRETE if isinstance(space, Discrete) else CONTINUOUS if isinstance(space, Box) \
        else None
    if kind not in algorithm.actions:
        wanted = " or ".join(algorithm.actions)
        raise TypeError(
            f"{algorithm.name} needs {wanted} actions but {env_id}'s action space is {space}; "
            f"algorithms for {kind or 'this'} action space: "
            f"{_names_where(lambda a: kind in a.actions)}")
    if EXPERT in algorithm.needs:
        from jaxrl.envs.experts import SCRIPTED_EXPERTS

        if env_id not in SCRIPTED_EXPERTS:
            raise ValueError(f"{algorithm.name} queries an expert while it trains, and {env_id} "
                             f"has no scripted expert; these envs have one: "
                             f"{', '.join(SCRIPTED_EXPERTS)}")


def markdown_table() -> str:
    """The README's algorithm table: name, family, actions, needs, course notes, headline."""
    rows = ["| `jaxrl train` | family | actions | needs | course notes | headline result |",
            "| --- | --- | --- | --- | --- | --- |"]
    for a in _REGISTRY.values():
        needs = ", ".join(sorted(n.replace("_", " ") for n in a.needs)) or "–"
        rows.append(f"| `{a.name}` | {a.family} | {', '.join(a.actions)} | {needs} | {a.notes} "
                    f"| {a.headline or '–'} |")
    return "\n".join(rows)


_PG, _AC, _VALUE = "§5 Policy Gradients", "§6 Actor-Critic", "§7 Value Function Methods"
_APG, _IL, _OFFLINE = "§9 Advanced Policy Gradients", "§2 Imitation Learning", "§16 Offline RL"
_MAXENT = "maximum-entropy RL"
_PENDULUM_DATA = "Pendulum-v1 medium data: score"

register("reinforce", "jaxrl.agents.reinforce", "on-policy",
         "Monte-Carlo policy gradient with an optional learned baseline", _PG,
         headline="CartPole-v1 493.9 ± 10.5 (1M steps)")
register("a2c", "jaxrl.agents.a2c", "on-policy",
         "synchronous advantage actor-critic (GAE or n-step; online TD(0) variant)", _AC,
         headline="CartPole-v1 500.0 ± 0.0 (500k steps)")
register("npg", "jaxrl.agents.npg", "on-policy",
         "natural policy gradient (conjugate gradient on Fisher-vector products)", _APG,
         headline="CartPole-v1 500.0 ± 0.0 (197k steps)")
register("trpo", "jaxrl.agents.trpo", "on-policy",
         "trust-region policy optimisation (natural step + KL line search)", _APG,
         headline="Pendulum-v1 −160.6 ± 11.5 (1M steps)")
register("ppo", "jaxrl.agents.ppo", "on-policy",
         "proximal policy optimisation (clipped surrogate, GAE)", _AC,
         headline="brax/inverted_pendulum 968.6 ± 20.9 (1M steps)")
register("dqn", "jaxrl.agents.dqn", "off-policy",
         "deep Q-network (double Q, dueling, n-step)", _VALUE, actions=(DISCRETE,),
         headline="CartPole-v1 406.1 ± 162.6 (100k steps)")
register("soft_q", "jaxrl.agents.soft_q", "off-policy",
         "soft Q-learning (log-sum-exp backup, Boltzmann policy)", _MAXENT, actions=(DISCRETE,),
         headline="CartPole-v1 500.0 ± 0.0 (100k steps)")
register("ddpg", "jaxrl.agents.ddpg", "off-policy",
         "deep deterministic policy gradient", _VALUE, actions=(CONTINUOUS,),
         headline="Pendulum-v1 −140.2 ± 35.6 (30k steps)")
register("td3", "jaxrl.agents.td3", "off-policy",
         "twin delayed DDPG (clipped double Q, target smoothing)", _VALUE,
         actions=(CONTINUOUS,), headline="Pendulum-v1 −137.0 ± 30.1 (30k steps)")
register("sac", "jaxrl.agents.sac", "off-policy",
         "soft actor-critic (twin critics, entropy autotuning)", _MAXENT, actions=(CONTINUOUS,),
         headline="Pendulum-v1 −126.7 ± 37.5 (30k steps)")
register("bc", "jaxrl.agents.bc", "offline",
         "behaviour cloning; goal-conditioned BC with hindsight relabelling", _IL,
         needs=(DATASET,), headline="CartPole-v1 490–500 from 256 expert transitions")
register("dagger", "jaxrl.agents.dagger", "imitation",
         "dataset aggregation with a queried expert", _IL, needs=(EXPERT,),
         headline="CartPole-v1 144 from 48 expert labels (BC: 102)")
register("cql", "jaxrl.agents.cql", "offline", "conservative Q-learning", _OFFLINE,
         needs=(DATASET,), headline=f"{_PENDULUM_DATA} 102.1 ± 1.1")
register("iql", "jaxrl.agents.iql", "offline",
         "implicit Q-learning (expectile value, advantage-weighted policy)", _OFFLINE,
         actions=(CONTINUOUS,), needs=(DATASET,), headline=f"{_PENDULUM_DATA} 56.7 ± 18.7")
register("awac", "jaxrl.agents.awac", "offline", "advantage-weighted actor-critic", _OFFLINE,
         actions=(CONTINUOUS,), needs=(DATASET,), headline=f"{_PENDULUM_DATA} 98.3 ± 7.3")
register("td3_bc", "jaxrl.agents.td3_bc", "offline", "TD3 with a behaviour-cloning term",
         _OFFLINE, actions=(CONTINUOUS,), needs=(DATASET,),
         headline=f"{_PENDULUM_DATA} 64.5 ± 3.8")
register("is_pg", "jaxrl.agents.is_pg", "offline",
         "off-policy policy gradient with per-decision, truncated or self-normalised "
         "importance weights", "§5 Off-policy policy gradients, §15 Importance Sampling",
         needs=(DATASET,),
         headline="2-armed bandit, 90 % bad-arm data: picks the good arm (BC: the bad one)")
register("mpc", "jaxrl.agents.mpc", "planning",
         "model-predictive control on the simulator (random shooting, CEM, MPPI)",
         "§10 Optimal Control and Planning", needs=(ENV_STATE,),
         headline="CartPole-v1 500.0 ± 0.0 (shooting, 32 × 100 steps per action)")
register("alphazero", "jaxrl.agents.alphazero", "planning",
         "AlphaZero-style MCTS (mctx Gumbel/PUCT) on the simulator; pgx self-play",
         "§10 Optimal Control and Planning", actions=(DISCRETE,), needs=(ENV_STATE,),
         headline="CartPole-v1 500.0 ± 0.0 (2 simulations per step, 25.6k steps)")
register("vi", "jaxrl.agents.vi", "dynamic programming",
         "value iteration on the exact transition table", "§7 Value Function Methods",
         actions=(DISCRETE,), needs=(TABULAR_ENV,),
         headline="FrozenLake-misc 0.737 (optimal; residual < 1e-6 in 305 sweeps)")
register("pi", "jaxrl.agents.pi", "dynamic programming",
         "policy iteration (exact linear-solve or iterative evaluation)",
         "§7 Value Function Methods", actions=(DISCRETE,), needs=(TABULAR_ENV,),
         headline="FrozenLake-misc 0.737 (optimal; stable in 7 iterations)")
register("fqi", "jaxrl.agents.fqi", "offline",
         "fitted Q iteration (K frozen targets, n regression steps each)",
         "§7 Value Function Methods", actions=(DISCRETE,), needs=(DATASET,),
         headline="CartPole-v1 mixed data: 250.2 ± 85.9 (K = 20 × 2000 steps)")
register("lqr", "jaxrl.agents.lqr", "optimal control",
         "linear-quadratic regulator (DARE gain or the episode's time-varying Riccati gains)",
         "§10 Optimal Control and Planning", actions=(CONTINUOUS,), needs=(ENV_STATE,),
         headline="LinearSystem-v0 −25.6 ± 33.2 (gain = scipy's DARE; no control: −13508)")
register("ilqr", "jaxrl.agents.ilqr", "optimal control",
         "receding-horizon iLQR on the differentiable simulator (box limits, LM, line search)",
         "§10 Optimal Control and Planning", actions=(CONTINUOUS,),
         needs=(DIFFERENTIABLE_ENV, ENV_STATE),
         headline="Pendulum-v1 −178.5 ± 70.7 (H=30, 2 iterations; hanging start upright by "
                  "step 75)")
register("apg", "jaxrl.agents.apg", "optimal control",
         "analytic policy gradients: the return backpropagated through the simulator",
         "§12 Model-based RL with policies", actions=(CONTINUOUS,), needs=(DIFFERENTIABLE_ENV,),
         headline="Pendulum-v1 −165.3 ± 37.7 (4 seeds, 240k steps)")
register("rl2", "jaxrl.agents.rl2", "meta-RL",
         "RL²: PPO with a recurrent policy across multi-episode trials of a task family",
         "§15 Transfer & Multi-task Learning (RNN-based meta-learning)",
         headline="5-armed bandits, 100-pull trials: regret 7.52 = 0.89× Thompson "
                  "(4 seeds, 640k steps)")
register("maml", "jaxrl.agents.maml", "meta-RL",
         "MAML for policy gradients (DiCE meta-gradient), first-order MAML and Reptile",
         "§22 Transfer Learning and Meta-Learning (gradient-based meta RL)",
         headline="PointNav-v0 held-out goals: −1.50 after 1 inner step (−4.05 before; "
                  "multi-task −3.85; 4 seeds, 240k steps)")
register("multitask", "jaxrl.agents.multitask", "meta-RL",
         "multi-task PPO over a task family: task params in the input, or hidden (randomised)",
         "§22 Transfer Learning and Meta-Learning (multi-task learning)",
         headline="PointNav-v0 held-out goals: −0.25 goal in the input, −3.56 hidden (200k "
                  "steps)")
register("distill", "jaxrl.agents.distill", "meta-RL",
         "policy distillation: per-task teachers (vmapped, or saved runs) and a task-conditioned "
         "student (KL)",
         "§15 Transfer & Multi-task Learning (model distillation)",
         headline="PointNav-v0, 4 goals: student −0.25 ± 0.07, its teachers −0.25 ± 0.08 "
                  "(4 seeds, 48k steps)")
register("dnc", "jaxrl.agents.dnc", "meta-RL",
         "Divide-and-Conquer RL: local policies per context (r + λ log π_θ), distilled global",
         "§11.1.5 Divide and Conquer RL",
         headline="Pendulum-v1 initial-angle regions: global policy −269 (4 contexts; one "
                  "policy on all: −301; 2 seeds, 400k steps)")
register("mbrl", "jaxrl.agents.mbrl", "model-based",
         "model-based RL v0.5 / v1.0 / v1.5: fit a dynamics model, plan through it (MPC)",
         "§11 Model-Based RL",
         headline="Pendulum-v1 v1.5: −200 reached at 1.0k env steps (v0.5, v1.0: −1061, −966)")
register("pets", "jaxrl.agents.pets", "model-based",
         "PETS: probabilistic bootstrap ensemble, CEM over TS-1 / TS-∞ particles",
         "§11 Model-Based RL",
         headline="Pendulum-v1 −200 reached at 1.2k env steps (SAC: 4k; 2 seeds)")
register("dyna", "jaxrl.agents.dyna", "model-based",
         "Dyna-Q: tabular Q-learning plus planning updates from a learned table model",
         "§12 Model-based RL with policies (Dyna)", actions=(DISCRETE,), needs=(TABULAR_ENV,),
         headline="Gridworld-v0 greedy success ≥ 0.5 after 200–600 real steps (Q-learning: "
                  "1.0k–1.3k)")
register("mbpo", "jaxrl.agents.mbpo", "model-based",
         "MBPO: SAC on real and branched model rollouts from a refitted probabilistic ensemble",
         "§11.1.4 MBA / MVE / MBPO", actions=(CONTINUOUS,),
         headline="Pendulum-v1 −200 reached at 1.0k–1.25k env steps (SAC: 3.75k; 2 seeds)")
register("mve", "jaxrl.agents.mve", "model-based",
         "model value expansion: TD3 (or SAC) critic targets H steps through a learned model",
         "§11.1.4 MBA / MVE / MBPO", actions=(CONTINUOUS,),
         headline="Pendulum-v1 −200 reached at 3.75k–4k env steps (SAC: 3.75k; 2 seeds)")
register("mbrl2", "jaxrl.agents.mbrl2", "model-based",
         "MBRL 2.0: backprop through a learned model into the policy, learned value at the end",
         "§11.1.1 Model-based RL version 2.0", actions=(CONTINUOUS,),
         headline="Pendulum-v1 −200 reached at 2.25k–3k env steps (SAC: 3.75k; 2 seeds)")
register("world_model", "jaxrl.agents.world_model", "model-based",
         "latent world model (encoder, latent dynamics, decoder, reward) planned with CEM",
         "§10.1.4 Model-based RL with latent space models",
         headline="Pendulum-v1 −200 reached at 1.2k–1.8k env steps, reward learned (random "
                  "actions: −1274; 2 seeds)")
register("maxent_irl", "jaxrl.agents.maxent_irl", "inverse RL",
         "maximum-entropy IRL with forward/backward messages (or soft VI) on the exact table",
         "§20 Inverse RL (Algorithm 25, MaxEnt IRL)", actions=(DISCRETE,),
         needs=(TABULAR_ENV, DATASET),
         headline="Gridworld-v0 4x4 slippery: visitation TV 0.011, shaping-free reward "
                  "correlation 0.990 (3 seeds)")
register("gail", "jaxrl.agents.gail", "inverse RL",
         "generative adversarial imitation: PPO on a discriminator's reward −log(1 − D(s, a))",
         "§20 Inverse RL (IRL as a GAN)", needs=(DATASET,),
         headline="Pendulum-v1 from 40 expert transitions, 1M steps: score 96.4 ± 3.5 (4 seeds)")
register("airl", "jaxrl.agents.airl", "inverse RL",
         "adversarial IRL: discriminator exp f / (exp f + π), f = g(s) + γh(s') − h(s); PPO",
         "§20 Inverse RL (IRL as a GAN)", needs=(DATASET,),
         headline="Pendulum-v1 from 40 expert transitions, 1.5M steps: score 90.2 ± 9.8 "
                  "(4 seeds; 88.6 at 1M)")
register("dac", "jaxrl.agents.dac", "inverse RL",
         "discriminator-actor-critic: off-policy adversarial imitation (SAC/TD3), absorbing states",
         "§20 Inverse RL (IRL as a GAN)", actions=(CONTINUOUS,), needs=(DATASET,),
         headline="Pendulum-v1 from 40 expert transitions: score 94.2 ± 2.0 in 10k steps "
                  "(SAC; BC 11.1; 4 seeds)")
register("gcl", "jaxrl.agents.gcl", "inverse RL",
         "guided cost learning: sample-based MaxEnt IRL, self-normalised importance weights; PPO",
         "§20 Inverse RL (Approximations in High Dimensions)", needs=(DATASET,),
         headline="Pendulum-v1 from 40 expert transitions, 1M steps: score 94.7 ± 4.8 (4 seeds)")
register("ucb", "jaxrl.agents.ucb", "bandits",
         "UCB1 on a k-armed bandit: empirical mean + √(2 ln t / N)", "§17 Exploration",
         actions=(DISCRETE,),
         headline="2-armed Bernoulli bandit, 1000 pulls: regret 18.0 ± 3.4 (bound 112.7)")
register("thompson", "jaxrl.agents.thompson", "bandits",
         "Thompson sampling on a k-armed bandit (Beta / Gaussian posteriors)", "§17 Exploration",
         actions=(DISCRETE,), headline="2-armed Bernoulli bandit, 1000 pulls: regret 4.8 ± 2.3")
register("egreedy", "jaxrl.agents.egreedy", "bandits",
         "ε-greedy on a k-armed bandit (the dithering baseline)", "§17 Exploration",
         actions=(DISCRETE,),
         headline="2-armed Bernoulli bandit, 1000 pulls, ε = 0.1: regret 27.9 ± 7.8")
register("bootstrapped_dqn", "jaxrl.agents.bootstrapped_dqn", "off-policy",
         "bootstrapped DQN: K heads, bootstrap masks, one head per episode, random priors",
         "§17 Exploration", actions=(DISCRETE,),
         headline="DeepSea size 20: solved 3/3 seeds in 504–644 episodes (DQN: 0/3 in 800)")
_RLHF = "§20.1 RLHF Algorithms and Applications"
register("sft", "jaxrl.agents.sft", "preferences",
         "supervised fine-tuning of a causal transformer / GRU on token demonstrations", _RLHF,
         actions=(DISCRETE,), needs=(DATASET,),
         headline="Tokens-sort-v0 from ε = 0.4 demonstrations: hidden reward 0.44 (the "
                  "reference)")
register("reward_model", "jaxrl.agents.reward_model", "preferences",
         "Bradley–Terry reward model from preference pairs (held-out accuracy, calibration)",
         _RLHF, actions=(DISCRETE,),
         headline="Tokens-sort-v0: held-out accuracy 0.83, calibration error 0.11")
register("dpo", "jaxrl.agents.dpo", "preferences",
         "direct preference optimisation (label smoothing option) against a reference", _RLHF,
         actions=(DISCRETE,), needs=(REFERENCE_POLICY,),
         headline="Tokens-sort-v0: wins 86 % against its SFT reference at KL 2.7 nats (4 seeds)")
register("ipo", "jaxrl.agents.ipo", "preferences",
         "identity preference optimisation (squared log-ratio margin loss)", _RLHF,
         actions=(DISCRETE,), needs=(REFERENCE_POLICY,),
         headline="Tokens-sort-v0: wins 82 % against its SFT reference at KL 1.7 nats (4 seeds)")
register("rlhf", "jaxrl.agents.rlhf", "preferences",
         "PPO on a learned reward with a per-token KL penalty to the reference (fixed/adaptive β)",
         _RLHF, actions=(DISCRETE,), needs=(REFERENCE_POLICY,),
         headline="Tokens-sort-v0, β = 0.1 on the whitened score: wins 83 % against its SFT "
                  "reference at KL 2.7 nats (4 seeds)")
register("pref_rl", "jaxrl.agents.pref_rl", "preferences",
         "SAC on a reward model fitted to a teacher's segment preferences (queries interleaved)",
         _RLHF, actions=(CONTINUOUS,),
         headline="Pendulum-v1, 500 queries, 6k steps, 4 seeds: −206 (SAC on the true reward: "
                  "−344), normalised score 114")
