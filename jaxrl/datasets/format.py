"""The offline dataset format: a flat table of ``N`` transitions in an ``.npz`` file.

====================  ==========================  ===============================================
key                   dtype, shape                meaning
====================  ==========================  ===============================================
``observations``      float32 ``[N, *obs]``       state the action was taken in
``actions``           int32 ``[N]`` / float32     executed action (continuous: clipped to bounds)
``rewards``           float32 ``[N]``
``next_observations`` float32 ``[N, *obs]``       next state; the final obs at episode ends
``terminated``        bool ``[N]``                true terminal state (no bootstrap)
``truncated``         bool ``[N]``                time limit or end of the collected segment
``log_probs``         float32 ``[N]``             behaviour log-probability of the action
``metadata``          JSON string                 env, policy kind, steps, behaviour description
====================  ==========================  ===============================================

Transitions are env-major: each collecting env's steps are contiguous and its last step is marked
``truncated`` (unless it terminated), so every episode ends with ``terminated | truncated`` and
episodes can be cut out of the flat table (``episode_bounds``). Continuous actions are stored
clipped to the bounds while the log-prob is the density of the sample *before* clipping, so it
stays finite for actions at the bounds.

This module imports nothing of jaxrl above ``jaxrl.envs``: agents, the runner and evaluation
code read datasets through it, while making one (``jaxrl.datasets.generation``) needs them.
"""

from __future__ import annotations

import dataclasses
import json
import os
import zipfile
import zlib
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from flax import struct

from jaxrl.envs.spaces import Discrete, Space

__all__ = ["ARRAY_KEYS", "Dataset", "Transitions", "episode_bounds", "load", "save", "validate"]

ARRAY_KEYS = ("observations", "actions", "rewards", "next_observations", "terminated",
              "truncated", "log_probs")


class Transitions(struct.PyTreeNode):
    """The dataset's arrays on device (same order as the file), e.g. closed over by an agent."""

    obs: jax.Array
    action: jax.Array
    reward: jax.Array
    next_obs: jax.Array
    terminated: jax.Array
    truncated: jax.Array
    log_prob: jax.Array

    @property
    def size(self) -> int:
        return self.reward.shape[0]


@dataclasses.dataclass(frozen=True)
class Dataset:
    """Host (numpy) arrays of ``ARRAY_KEYS`` plus ``metadata``; see the module docstring."""

    observations: np.ndarray
    actions: np.ndarray
    rewards: np.ndarray
    next_observations: np.ndarray
    terminated: np.ndarray
    truncated: np.ndarray
    log_probs: np.ndarray
    metadata: dict[str, Any] = dataclasses.field(default_factory=dict)

    def __len__(self) -> int:
        return int(self.rewards.shape[0])

    def transitions(self) -> Transitions:
        """The arrays as a ``Transitions`` of device arrays."""
        return Transitions(*(jnp.asarray(getattr(self, key)) for key in ARRAY_KEYS))

    def episode_returns(self) -> np.ndarray:
        """Undiscounted return of every episode (segments ending in terminated | truncated)."""
        starts, ends = episode_bounds(self.terminated | self.truncated)
        cumulative = np.concatenate([[0.0], np.cumsum(self.rewards, dtype=np.float64)])
        return cumulative[ends + 1] - cumulative[starts]


def episode_bounds(done: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(starts, ends)``: inclusive index ranges of the episodes of a flat env-major table;
    ``done[i]`` ends an episode at ``i``; the table's last index always ends one."""
    done = np.asarray(done, bool).copy()
    done[-1] = True
    ends = np.flatnonzero(done)
    starts = np.concatenate([[0], ends[:-1] + 1])
    return starts, ends


def _fail(key: str, problem: str) -> ValueError:
    return ValueError(f"dataset key {key!r}: {problem}")


def validate(dataset: Dataset, env: Any = None, env_params: Any = None,
             env_id: str | None = None) -> None:
    """Check lengths, shapes, dtypes, finiteness and (given ``env``) the env's spaces.

    Raises ``ValueError`` naming the key and what is wrong; ``env_id`` must match the env the
    dataset was collected on (``metadata["env"]``) when both are known.
    """
    if dataset.rewards.ndim != 1 or dataset.rewards.shape[0] == 0:
        raise _fail("rewards", f"must be a non-empty vector [N], got shape {dataset.rewards.shape}")
    size = len(dataset)
    for key in ARRAY_KEYS:
        array = getattr(dataset, key)
        if array.ndim == 0 or array.shape[0] != size:
            raise _fail(key, f"has {array.shape[0] if array.ndim else 0} entries, rewards has "
                             f"{size}; every array needs one entry per transition")
    for key in ("rewards", "terminated", "truncated", "log_probs"):
        if getattr(dataset, key).ndim != 1:
            raise _fail(key, f"must have shape [N], got {getattr(dataset, key).shape}")
    if dataset.next_observations.shape != dataset.observations.shape:
        raise _fail("next_observations", f"shape {dataset.next_observations.shape} differs from "
                                         f"observations {dataset.observations.shape}")
    for key in ("terminated", "truncated"):
        if getattr(dataset, key).dtype != np.bool_:
            raise _fail(key, f"must be bool, got {getattr(dataset, key).dtype}")
    for key in ("observations", "next_observations", "rewards", "log_probs"):
        array = getattr(dataset, key)
        if not np.issubdtype(array.dtype, np.floating):
            raise _fail(key, f"must be floating point, got {array.dtype}")
    if not (np.issubdtype(dataset.actions.dtype, np.integer)
            or np.issubdtype(dataset.actions.dtype, np.floating)):
        raise _fail("actions", f"must be integer (discrete) or float (continuous), got "
                               f"{dataset.actions.dtype}")
    for key in ("observations", "actions", "rewards", "next_observations", "log_probs"):
        array = getattr(dataset, key)
        if np.issubdtype(array.dtype, np.floating) and not np.isfinite(array).all():
            bad = int(np.flatnonzero(~np.isfinite(array.reshape(size, -1)).all(1))[0])
            raise _fail(key, f"holds a non-finite value (first at transition {bad})")
    recorded = dataset.metadata.get("env")
    if env_id is not None and recorded is not None and recorded != env_id:
        raise ValueError(f"dataset was collected on {recorded!r}, not {env_id!r}; "
                         f"pass --env {recorded}")
    if env is not None:
        _check_spaces(dataset, env.observation_space(env_params), env.action_space(env_params))


def _check_spaces(dataset: Dataset, observation_space: Space, action_space: Space) -> None:
    obs_shape = tuple(dataset.observations.shape[1:])
    if obs_shape != tuple(observation_space.shape):
        raise _fail("observations", f"shape per transition {obs_shape} does not match the env's "
                                    f"observation space {tuple(observation_space.shape)}")
    actions = dataset.actions
    if isinstance(action_space, Discrete):
        if actions.ndim != 1 or not np.issubdtype(actions.dtype, np.integer):
            raise _fail("actions", f"the env has discrete actions: expected integer [N], got "
                                   f"{actions.dtype} {actions.shape}")
        if actions.min() < 0 or actions.max() >= action_space.n:
            raise _fail("actions", f"values must lie in [0, {action_space.n}), got "
                                   f"[{actions.min()}, {actions.max()}]")
    else:
        if tuple(actions.shape[1:]) != tuple(action_space.shape):
            raise _fail("actions", f"shape per transition {tuple(actions.shape[1:])} does not "
                                   f"match the env's action space {tuple(action_space.shape)}")
        if not np.issubdtype(actions.dtype, np.floating):
            raise _fail("actions", f"the env has continuous actions: expected float, got "
                                   f"{actions.dtype}")
        low, high = np.asarray(action_space.low), np.asarray(action_space.high)
        if (actions < low - 1e-5).any() or (actions > high + 1e-5).any():
            raise _fail("actions", f"values must lie within the action bounds [{low}, {high}]")


def save(path: str | Path, dataset: Dataset) -> Path:
    """Validate and write ``dataset`` to ``path`` (``.npz``) atomically (temporary file, then
    ``os.replace``): a reader never sees a half-written file."""
    validate(dataset)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    arrays = {key: getattr(dataset, key) for key in ARRAY_KEYS}
    with open(tmp, "wb") as file:
        np.savez(file, **arrays, metadata=np.array(json.dumps(dataset.metadata, default=str)))
    os.replace(tmp, path)
    return path


def load(path: str | Path, env: Any = None, env_params: Any = None,
         env_id: str | None = None) -> Dataset:
    """Read and ``validate`` a dataset (against ``env``'s spaces when given).

    Float arrays come back float32, discrete actions int32, flags bool. A file that is not an
    ``.npz`` archive of plain arrays (truncated, another format, pickled objects) raises one
    ``ValueError``: ``FILE is not a valid .npz dataset (why)``.
    """
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"no dataset file at {path}; create one with "
                         "`jaxrl dataset --env ENV --policy expert --steps N --out FILE.npz`")
    contents = _read_npz(path)
    missing = [key for key in (*ARRAY_KEYS, "metadata") if key not in contents]
    if missing:
        raise ValueError(f"dataset {path} lacks key(s) {', '.join(missing)}; expected "
                         f"{', '.join((*ARRAY_KEYS, 'metadata'))}")
    try:
        metadata = json.loads(str(contents["metadata"]))
    except json.JSONDecodeError:
        raise _fail("metadata", "is not a JSON string") from None
    if not isinstance(metadata, dict):
        raise _fail("metadata", f"must be a JSON object, got {type(metadata).__name__}")
    dataset = Dataset(**{key: contents[key] for key in ARRAY_KEYS}, metadata=metadata)
    validate(dataset, env, env_params, env_id)
    cast = {key: getattr(dataset, key).astype(np.float32)
            for key in ("observations", "rewards", "next_observations", "log_probs")}
    actions = dataset.actions
    cast["actions"] = (actions.astype(np.int32) if np.issubdtype(actions.dtype, np.integer)
                       else actions.astype(np.float32))
    return dataclasses.replace(dataset, **cast)


def _read_npz(path: Path) -> dict[str, np.ndarray]:
    """Every array of the ``.npz`` at ``path``, never unpickling; ``ValueError`` otherwise."""
    def invalid(reason: str) -> ValueError:
        return ValueError(f"{path} is not a valid .npz dataset ({reason})")

    if not zipfile.is_zipfile(path):
        raise invalid("not a zip archive: the file is truncated or of another format")
    contents = {}
    try:
        with np.load(path, allow_pickle=False) as file:
            for key in file.files:
                try:
                    contents[key] = file[key]
                except ValueError as error:
                    reason = ("holds Python objects, which are never unpickled"
                              if "allow_pickle" in str(error) else str(error))
                    raise invalid(f"array {key!r} {reason}") from None
                if not isinstance(contents[key], np.ndarray):
                    raise invalid(f"member {key!r} is not a .npy array")
    except (OSError, EOFError, zipfile.BadZipFile, zlib.error) as error:
        raise invalid(f"{type(error).__name__}: {error}") from None
    return contents
