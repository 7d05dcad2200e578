"""One module per algorithm, each following the agent API in ``jaxrl.agents.base``."""

from types import ModuleType

from jaxrl.agents import (
    a2c,
    awac,
    bc,
    cql,
    dagger,
    ddpg,
    dqn,
    iql,
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
           "dqn", "get_algorithm", "iql", "npg", "ppo", "reinforce", "sac", "soft_q", "td3",
           "td3_bc", "train_from_agent", "trpo"]

ALGORITHMS: dict[str, ModuleType] = {
    "reinforce": reinforce, "a2c": a2c, "npg": npg, "trpo": trpo, "ppo": ppo,
    "dqn": dqn, "soft_q": soft_q, "ddpg": ddpg, "td3": td3, "sac": sac,
    "bc": bc, "dagger": dagger, "cql": cql, "iql": iql, "awac": awac, "td3_bc": td3_bc,
}


def get_algorithm(name: str) -> ModuleType:
    """The module of algorithm ``name``; ``ValueError`` listing the known ones otherwise."""
    if name not in ALGORITHMS:
        raise ValueError(f"unknown algorithm {name!r}; choose one of: {', '.join(ALGORITHMS)}")
    return ALGORITHMS[name]
