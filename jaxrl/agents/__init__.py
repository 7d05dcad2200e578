"""One module per algorithm, each following the agent API in ``jaxrl.agents.base``."""

from types import ModuleType

from jaxrl.agents import a2c, bc, dagger, npg, ppo, reinforce, trpo
from jaxrl.agents.base import Agent, as_typed_key, train_from_agent

__all__ = ["ALGORITHMS", "Agent", "a2c", "as_typed_key", "bc", "dagger", "get_algorithm", "npg",
           "ppo", "reinforce", "train_from_agent", "trpo"]

ALGORITHMS: dict[str, ModuleType] = {
    "reinforce": reinforce, "a2c": a2c, "npg": npg, "trpo": trpo, "ppo": ppo,
    "bc": bc, "dagger": dagger,
}


def get_algorithm(name: str) -> ModuleType:
    """The module of algorithm ``name``; ``ValueError`` listing the known ones otherwise."""
    if name not in ALGORITHMS:
        raise ValueError(f"unknown algorithm {name!r}; choose one of: {', '.join(ALGORITHMS)}")
    return ALGORITHMS[name]
