"""The algorithms: one module each, built on the family loops of ``jaxrl.training``.

Every algorithm is registered once in ``jaxrl.registry`` (family, action spaces, what it needs);
``ALGORITHMS`` maps each registered name to its module.
"""

from types import ModuleType

from jaxrl import registry
from jaxrl.agents import (
    a2c,
    awac,
    bc,
    cql,
    dagger,
    ddpg,
    dqn,
    iql,
    mpc,
    npg,
    ppo,
    reinforce,
    sac,
    soft_q,
    td3,
    td3_bc,
    trpo,
)
from jaxrl.training.agent import Agent, as_typed_key, train_from_agent

__all__ = ["ALGORITHMS", "Agent", "a2c", "as_typed_key", "awac", "bc", "cql", "dagger", "ddpg",
           "dqn", "get_algorithm", "iql", "mpc", "npg", "ppo", "reinforce", "sac", "soft_q", "td3",
           "td3_bc", "train_from_agent", "trpo"]

ALGORITHMS: dict[str, ModuleType] = {name: registry.get(name).load() for name in registry.names()}


def get_algorithm(name: str) -> ModuleType:
    """The module of algorithm ``name``; ``ValueError`` listing the known ones otherwise."""
    return registry.get(name).load()
