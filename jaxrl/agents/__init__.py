"""The algorithms: one module each, built on the family loops of ``jaxrl.training``.

Every algorithm is registered once in ``jaxrl.registry`` (family, action spaces, what it needs);
``ALGORITHMS`` maps each registered name to its module.
"""

from types import ModuleType

from jaxrl import registry
from jaxrl.agents import (
    a2c,
    airl,
    alphazero,
    apg,
    awac,
    bc,
    bootstrapped_dqn,
    cql,
    dac,
    dagger,
    ddpg,
    distill,
    dnc,
    dpo,
    dqn,
    dyna,
    egreedy,
    fqi,
    gail,
    gcl,
    ilqr,
    ipo,
    iql,
    is_pg,
    lqr,
    maml,
    maxent_irl,
    mbpo,
    mbrl,
    mbrl2,
    mpc,
    mve,
    npg,
    pets,
    pi,
    ppo,
    pref_rl,
    reinforce,
    reward_model,
    rl2,
    rlhf,
    sac,
    sft,
    soft_q,
    td3,
    td3_bc,
    thompson,
    trpo,
    ucb,
    vi,
    world_model,
)
from jaxrl.training.agent import Agent, as_typed_key, train_from_agent

__all__ = ["Agent", "ALGORITHMS", "a2c", "airl", "alphazero", "apg", "as_typed_key", "awac", "bc",
           "bootstrapped_dqn", "cql", "dac", "dagger", "ddpg", "distill", "dnc", "dpo", "dqn",
           "dyna", "egreedy", "fqi", "gail", "gcl", "get_algorithm", "ilqr", "ipo", "iql", "is_pg",
           "lqr", "maml", "maxent_irl", "mbpo", "mbrl", "mbrl2", "mpc", "mve", "npg", "pets", "pi",
           "ppo", "pref_rl", "reinforce", "reward_model", "rl2", "rlhf", "sac", "sft", "soft_q",
           "td3", "td3_bc", "thompson", "train_from_agent", "trpo", "ucb", "vi", "world_model"]

ALGORITHMS: dict[str, ModuleType] = {name: registry.get(name).load() for name in registry.names()}


def get_algorithm(name: str) -> ModuleType:
    """The module of algorithm ``name``; ``ValueError`` listing the known ones otherwise."""
    return registry.get(name).load()
