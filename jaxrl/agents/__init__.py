"""The algorithms: one module each, built on the family loops of ``jaxrl.training``.

Every algorithm is registered once in ``jaxrl.registry`` (family, action spaces, what it needs);
``ALGORITHMS`` maps each registered name to its module.
"""

from types import ModuleType

from jaxrl import registry
from jaxrl.agents import (
    a2c,
    alphazero,
    apg,
    awac,
    bc,
    cql,
    dagger,
    ddpg,
    dqn,
    fqi,
    ilqr,
    iql,
    lqr,
    mpc,
    npg,
    pi,
    ppo,
    reinforce,
    rl2,
    sac,
    soft_q,
    td3,
    td3_bc,
    trpo,
    vi,
)
from jaxrl.training.agent import Agent, as_typed_key, train_from_agent

__all__ = ["ALGORITHMS", "Agent", "a2c", "alphazero", "apg", "as_typed_key", "awac", "bc", "cql",
           "dagger", "ddpg", "dqn", "fqi", "get_algorithm", "ilqr", "iql", "lqr", "mpc", "npg",
           "pi", "ppo", "reinforce", "rl2", "sac", "soft_q", "td3", "td3_bc", "train_from_agent",
           "trpo", "vi"]

ALGORITHMS: dict[str, ModuleType] = {name: registry.get(name).load() for name in registry.names()}


def get_algorithm(name: str) -> ModuleType:
    """The module of algorithm ``name``; ``ValueError`` listing the known ones otherwise."""
    return registry.get(name).load()
