"""One config scheme for every family: fields that declare their allowed range, one check.

A config is a flax struct. ``static(default, allowed)`` declares a shape-deciding field (not a
pytree leaf: changing it recompiles); ``hyper(default, allowed)`` a numeric hyperparameter (a
leaf: a batch of configs ``jax.vmap``-s into a sweep). Each field's docstring, written under it,
is its CLI help (tyro reads it, also from a base class). ``allowed`` is one of

- ``">= 1"``, ``"> 0"``, ``">= 0"`` or a closed interval ``"[0, 1]"`` for numbers;
- a tuple of choices for strings (``ACTIVATIONS``).

``check_config(config)`` checks every field with a concrete value (traced leaves of a sweep are
skipped: they are checked per setting by the runner), then the family's cross-field rules in
``config.validate()``. Each family defines one base config (``OnPolicyConfig``,
``OffPolicyConfig``, ``OfflineConfig``, …) declaring the shared fields once: an algorithm's
``Config`` adds its own fields and redeclares only the defaults it changes.

Old run directories: ``LEGACY_NAMES`` of a config class maps field names of earlier releases to
today's, so ``config_from_dict`` reads a ``config.json`` written before a rename.
"""

from __future__ import annotations

import dataclasses
from typing import Any, ClassVar

import jax
from flax import struct

__all__ = ["ACTIVATIONS", "BaseConfig", "check_config", "check_log_frequency", "check_value",
           "config_from_dict", "config_to_dict", "hyper", "static"]

ACTIVATIONS = ("tanh", "relu", "swish", "gelu", "elu")


def static(default: Any, allowed: str | tuple[str, ...] | None = None) -> Any:
    """A shape-deciding field (``pytree_node=False``) with its allowed range or choices."""
    return struct.field(pytree_node=False, default=default,
                        metadata={"allowed": allowed} if allowed is not None else None)


def hyper(default: float, allowed: str | None = None) -> Any:
    """A numeric hyperparameter (a pytree leaf, so sweeps can vmap it) with its allowed range."""
    return struct.field(pytree_node=True, default=default,
                        metadata={"allowed": allowed} if allowed is not None else None)


def check_value(name: str, value: Any, allowed: str | tuple[str, ...]) -> None:
    """``ValueError`` naming ``name``, the allowed range and ``value`` when it lies outside."""
    if isinstance(allowed, tuple):
        if value not in allowed:
            raise ValueError(f"{name} must be one of {', '.join(map(str, allowed))}, "
                             f"got {value!r}")
        return
    number = float(value)
    if allowed == "> 0":
        ok = number > 0
    elif allowed == ">= 0":
        ok = number >= 0
    elif allowed == ">= 1":
        ok = number >= 1
    elif allowed.startswith("["):
        low, high = (float(v) for v in allowed.strip("[]").split(","))
        ok = low <= number <= high
    else:
        raise ValueError(f"unknown range {allowed!r} of {name}")
    if not ok:
        where = f"in {allowed}" if allowed.startswith("[") else allowed
        raise ValueError(f"{name} must be {where}, got {value:g}"
                         if isinstance(value, int | float) else
                         f"{name} must be {where}, got {value}")


def check_log_frequency(config: Any) -> None:
    """``log_frequency <= total_gradient_steps``: a run of gradient steps logs one row at least."""
    if config.log_frequency > config.total_gradient_steps:
        raise ValueError(f"log_frequency = {config.log_frequency} exceeds "
                         f"total_gradient_steps = {config.total_gradient_steps}; lower "
                         "log_frequency or raise total_gradient_steps")


def check_config(config: Any) -> None:
    """Check every declared range of ``config`` (concrete values only), then
    ``config.validate()``: the one validation of every algorithm's config."""
    for field in dataclasses.fields(config):
        allowed = field.metadata.get("allowed")
        value = getattr(config, field.name)
        if allowed is None or isinstance(value, jax.core.Tracer):
            continue
        if hasattr(value, "ndim") and value.ndim:  # a stacked sweep: each setting on its own
            continue
        check_value(field.name, value, allowed)
    validate = getattr(config, "validate", None)
    if validate is not None:
        validate()


class BaseConfig(struct.PyTreeNode):
    """The root of every family's config: ``validate`` (cross-field rules) and legacy names."""

    LEGACY_NAMES: ClassVar[dict[str, str]] = {}
    """``{old field name: new field name}`` for config files written by earlier releases."""

    def validate(self) -> None:
        """Cross-field rules of the static fields; ``ValueError`` saying what to change."""


def config_to_dict(config: Any) -> dict[str, Any]:
    """A JSON-ready dict of a config's fields (tuples stay tuples; ``json`` writes lists)."""
    return {field.name: getattr(config, field.name) for field in dataclasses.fields(config)}


def config_from_dict(cls: type, values: dict[str, Any]) -> Any:
    """``cls(**values)`` with legacy names renamed and JSON lists back to tuples; ``ValueError``
    naming unknown fields."""
    legacy = getattr(cls, "LEGACY_NAMES", {})
    renamed = {legacy.get(name, name): value for name, value in values.items()}
    known = {field.name for field in dataclasses.fields(cls)}
    unknown = sorted(set(renamed) - known)
    if unknown:
        raise ValueError(f"unknown config field(s) {', '.join(unknown)} for {cls.__module__}")
    return cls(**{name: tuple(value) if isinstance(value, list) else value
                  for name, value in renamed.items()})
