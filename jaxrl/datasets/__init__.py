"""Offline datasets: the file format (``format``) and how to make one (``generation``).

``from jaxrl import datasets`` gives the format only: ``Dataset``, ``Transitions``,
``ARRAY_KEYS``, ``episode_bounds``, ``save``, ``load``, ``validate``. It imports nothing of jaxrl
above ``jaxrl.envs``, so agents and the runner can read datasets without an import cycle.
Generating one trains or loads agents: ``from jaxrl.datasets import generation`` (behaviour
policies, ``collect``, ``generate``), which this package never imports itself.
"""

from jaxrl.datasets.format import (
    ARRAY_KEYS,
    Dataset,
    Transitions,
    episode_bounds,
    load,
    save,
    validate,
)

__all__ = ["ARRAY_KEYS", "Dataset", "Transitions", "episode_bounds", "load", "save", "validate"]
