"""Save and restore whole training states with orbax, atomically, typed PRNG keys included.

A checkpoint is a directory holding ``arrays/`` (an orbax PyTree checkpoint of every leaf) and
``checkpoint.json`` (schema version, each leaf's tree path, shape, dtype, SHA-256 and PRNG-key
implementation, plus caller metadata). It is written into a hidden temporary directory beside
its final path and renamed into place only when complete, so a crash while saving never leaves a
directory that ``is_checkpoint`` accepts. Works for any pytree (flax struct train states with
optimizer states, replay buffers, normaliser statistics, ...): nothing is agent-specific.

In a notebook::

    from jaxrl import checkpoint
    checkpoint.save("ckpt/ppo", train_state, {"note": "after 100k steps"})
    train_state = checkpoint.restore("ckpt/ppo", like=train_state)   # same tree, shapes, dtypes
    checkpoint.read_metadata("ckpt/ppo")                              # {"note": ...}

``like`` may hold arrays or ``jax.ShapeDtypeStruct`` leaves, e.g. ``jax.eval_shape(agent.init,
key)``; ``restore(path)`` without ``like`` returns a flat ``{tree path: array}`` dict.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import uuid
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

__all__ = ["SCHEMA_VERSION", "CheckpointError", "is_checkpoint", "read_metadata", "restore",
           "save"]

SCHEMA_VERSION = 1
"""Version of the on-disk layout; ``restore`` refuses checkpoints written with another one."""

_MANIFEST = "checkpoint.json"
_ARRAYS = "arrays"


class CheckpointError(ValueError):
    """A checkpoint that is missing, incomplete, corrupt or does not match the expected tree."""


def _is_key(leaf: Any) -> bool:
    return hasattr(leaf, "dtype") and jax.dtypes.issubdtype(leaf.dtype, jax.dtypes.prng_key)


def _digest(array: np.ndarray) -> str:
    return hashlib.sha256(np.ascontiguousarray(array).tobytes()).hexdigest()


def _leaf_name(index: int) -> str:
    return f"leaf_{index:05d}"


def save(path: str | Path, train_state: Any, metadata: dict[str, Any] | None = None) -> Path:
    """Write ``train_state`` (any pytree of arrays) and JSON-ready ``metadata`` to ``path``.

    Typed PRNG keys are stored as ``jax.random.key_data`` with their implementation recorded.
    The directory appears atomically (temporary directory, then ``os.rename``); ``path`` must
    not exist yet. Returns ``path``.
    """
    import orbax.checkpoint as ocp

    path = Path(path).absolute()  # orbax refuses relative paths
    if path.exists():
        raise CheckpointError(f"checkpoint {path} already exists; choose a new path")
    path.parent.mkdir(parents=True, exist_ok=True)
    leaves, _ = jax.tree_util.tree_flatten_with_path(train_state)
    records, arrays = [], {}
    for index, (tree_path, leaf) in enumerate(leaves):
        key_impl = str(jax.random.key_impl(leaf)) if _is_key(leaf) else None
        array = np.asarray(jax.random.key_data(leaf) if key_impl else leaf)
        records.append({"path": jax.tree_util.keystr(tree_path), "shape": list(array.shape),
                        "dtype": array.dtype.name, "key_impl": key_impl,
                        "sha256": _digest(array)})
        if array.size:  # orbax refuses zero-size arrays; the manifest recreates them
            arrays[_leaf_name(index)] = array
    manifest = {"schema_version": SCHEMA_VERSION, "leaves": records, "metadata": metadata or {}}
    payload = json.dumps(manifest, indent=1) + "\n"
    tmp = path.parent / f".{path.name}.tmp-{uuid.uuid4().hex[:8]}"
    try:
        tmp.mkdir()
        if arrays:
            # Only process 0 saves (the runner's rule); tell orbax not to wait for the others.
            alone = ocp.options.MultiprocessingOptions(
                primary_host=jax.process_index(), active_processes={jax.process_index()})
            handler = ocp.PyTreeCheckpointHandler(multiprocessing_options=alone)
            ocp.Checkpointer(handler, multiprocessing_options=alone).save(tmp / _ARRAYS, arrays)
        _write_synced(tmp / _MANIFEST, payload)
        os.rename(tmp, path)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    _fsync_directory(path.parent)
    return path


def _write_synced(path: Path, text: str) -> None:
    with open(path, "w") as file:
        file.write(text)
        file.flush()
        os.fsync(file.fileno())


def _fsync_directory(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _manifest(path: Path) -> dict[str, Any]:
    if not path.is_dir():
        raise CheckpointError(f"no checkpoint at {path}")
    try:
        manifest = json.loads((path / _MANIFEST).read_text())
    except FileNotFoundError:
        raise CheckpointError(f"checkpoint {path} is incomplete: {_MANIFEST} is missing") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise CheckpointError(f"checkpoint {path} is corrupt: {_MANIFEST} is unreadable "
                              f"({error})") from None
    if not isinstance(manifest, dict) or not isinstance(manifest.get("leaves"), list):
        raise CheckpointError(f"checkpoint {path} is corrupt: {_MANIFEST} has no leaf list")
    version = manifest.get("schema_version")
    if version != SCHEMA_VERSION:
        raise CheckpointError(f"checkpoint {path} has schema version {version}; this jaxrl "
                              f"reads version {SCHEMA_VERSION}")
    return manifest


def is_checkpoint(path: str | Path) -> bool:
    """Whether ``path`` is a complete checkpoint (its manifest parses with this schema)."""
    try:
        _manifest(Path(path))
    except CheckpointError:
        return False
    return True


def read_metadata(path: str | Path) -> dict[str, Any]:
    """The ``metadata`` dict given to ``save`` (``CheckpointError`` if ``path`` is not valid)."""
    return _manifest(Path(path))["metadata"]


def _load_arrays(path: Path, records: list[dict[str, Any]]) -> list[np.ndarray]:
    import orbax.checkpoint as ocp

    try:
        stored = {_leaf_name(i): jax.ShapeDtypeStruct(tuple(r["shape"]), np.dtype(r["dtype"]))
                  for i, r in enumerate(records) if np.prod(r["shape"], dtype=np.int64)}
        loaded = {}
        if stored:
            restore_args = {name: ocp.RestoreArgs(restore_type=np.ndarray) for name in stored}
            loaded = ocp.PyTreeCheckpointer().restore(
                path / _ARRAYS, args=ocp.args.PyTreeRestore(item=stored,
                                                            restore_args=restore_args))
    except Exception as error:  # orbax / tensorstore raise many types for damaged files
        reason = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise CheckpointError(f"checkpoint {path} is corrupt: cannot read its arrays "
                              f"({reason[:200]})") from None
    arrays = []
    for index, record in enumerate(records):
        name = _leaf_name(index)
        if name in stored:
            array = np.asarray(loaded.get(name))
        else:
            array = np.zeros(record["shape"], np.dtype(record["dtype"]))
        if (array.shape != tuple(record["shape"]) or array.dtype.name != record["dtype"]
                or _digest(array) != record["sha256"]):
            raise CheckpointError(f"checkpoint {path} is corrupt: leaf {record['path']} does "
                                  "not match its recorded shape, dtype or checksum")
        arrays.append(array)
    return arrays


def _to_leaf(array: np.ndarray, key_impl: str | None) -> jax.Array:
    if key_impl:
        return jax.random.wrap_key_data(jnp.asarray(array), impl=key_impl)
    return jnp.asarray(array)


def restore(path: str | Path, like: Any = None) -> Any:
    """Read the train state saved at ``path``.

    With ``like`` (a pytree of arrays or ``jax.ShapeDtypeStruct``): a tree of ``like``'s
    structure, every leaf checked against ``like``'s tree path, shape and dtype, typed keys
    re-wrapped with their recorded implementation. Without: ``{tree path: array}``. Raises
    ``CheckpointError`` naming the problem for missing, corrupt or mismatched checkpoints.
    """
    path = Path(path).absolute()  # orbax refuses relative paths
    records = _manifest(path)["leaves"]
    if like is None:
        arrays = _load_arrays(path, records)
        return {r["path"]: _to_leaf(a, r["key_impl"]) for r, a in zip(records, arrays, strict=True)}
    expected, treedef = jax.tree_util.tree_flatten_with_path(like)
    if len(expected) != len(records):
        raise CheckpointError(f"checkpoint {path} does not match: it holds {len(records)} "
                              f"arrays, the expected train state has {len(expected)}")
    for record, (tree_path, leaf) in zip(records, expected, strict=True):
        name = jax.tree_util.keystr(tree_path)
        is_key = _is_key(leaf)
        shape = jax.eval_shape(jax.random.key_data, leaf).shape if is_key else np.shape(leaf)
        dtype = None if is_key else np.dtype(leaf.dtype).name
        if (record["path"] != name or tuple(record["shape"]) != shape
                or (dtype is not None and record["dtype"] != dtype)
                or bool(record["key_impl"]) != is_key):
            raise CheckpointError(
                f"checkpoint {path} does not match the expected train state: leaf "
                f"{record['path']} {record['dtype']}{record['shape']} vs {name} "
                f"{dtype or 'key'}{list(shape)} (different algorithm, env or config?)")
    arrays = _load_arrays(path, records)
    return jax.tree_util.tree_unflatten(
        treedef, [_to_leaf(a, r["key_impl"]) for r, a in zip(records, arrays, strict=True)])
