"""Shard runs (seeds, sweep settings × seeds) and environments over a device mesh.

jaxrl uses one 1-D ``jax.sharding.Mesh`` over the chosen devices, axis ``"batch"``, and
``NamedSharding`` on batch axes; agents are unchanged. A ``Placement`` picks one of two layouts:

- **runs** (``runs > 1`` or one device): the leading run axis ``[settings * seeds, ...]`` of every
  batched input and output is split over the devices, ``P("batch")``. Each device trains
  ``runs / devices`` runs of ``jit(vmap(update))``; runs never talk to each other, so nothing
  crosses devices. ``runs`` must be a multiple of the device count.
- **envs** (a single run on several devices): inputs are replicated and ``reset_envs`` (the one
  place that creates env states) constrains the env axis of the env states to ``P("batch")``. XLA
  propagates that sharding through the rollout scan and adds the collectives the batch means of
  the loss need. ``num_envs`` must be a multiple of the device count.

A sharded program rounds differently from the one-device program (each device sees a narrower
batch; reductions may be reordered): the two match closely over short runs and drift apart over
long ones, and each layout is reproducible on its own::

    placement = Placement.create("all", runs=8, seeds=8)
    keys = placement.shard(jax.random.split(jax.random.key(0), 8))
    init = placement.compile(jax.vmap(agent.init), keys)
    states = init(keys)                          # every leaf [8, ...], one run per device

Multi-host: every process runs the same program after ``initialize_distributed`` (a coordinator
address, the number of processes and this process's id); the mesh then spans every process's
devices, ``fetch`` gathers results onto every host and only process 0 writes files.
"""

from __future__ import annotations

import contextlib
import math
import os
from collections.abc import Callable, Iterator, Sequence
from typing import Any, NamedTuple

import jax
import numpy as np
from jax.experimental import multihost_utils
from jax.sharding import AxisType, Mesh, NamedSharding, PartitionSpec

__all__ = ["AXIS", "Placement", "check_divisible", "constrain_env_axis", "initialize_distributed",
           "is_main_process", "resolve_devices"]

AXIS = "batch"
"""The mesh axis name: runs in the runs layout, envs in the envs layout."""

_env_mesh: Mesh | None = None  # set while tracing a single run whose envs span the mesh


def resolve_devices(devices: str | int = "all") -> list[jax.Device]:
    """``"all"`` → every device (of every process); ``K`` (or ``"K"``) → the first ``K``."""
    available = jax.devices()
    if devices == "all":
        return available
    try:
        count = int(devices)
    except ValueError:
        raise ValueError(
            f"--devices must be 'all' or a positive integer, got {devices!r}") from None
    if not 1 <= count <= len(available):
        raise ValueError(f"--devices {count}: choose 1 to {len(available)} (this process sees "
                         f"{len(available)} {available[0].platform} device(s)) or 'all'")
    if jax.process_count() > 1 and count != len(available):
        raise ValueError(f"--devices {count} with {jax.process_count()} processes: multi-host "
                         "runs use every device; pass --devices all")
    return available[:count]


def _divisors(n: int, limit: int) -> list[int]:
    return [d for d in range(1, min(n, limit) + 1) if n % d == 0]


def check_divisible(runs: int, num_devices: int, *, seeds: int, settings: int = 1) -> None:
    """Raise ``ValueError`` unless ``runs = settings * seeds`` is a multiple of ``num_devices``.

    The message names the device counts that would divide the runs (up to the devices present).
    """
    if runs % num_devices == 0:
        return
    other = "/".join(str(d) for d in _divisors(runs, len(jax.devices())))
    if settings == 1:
        what = f"--seeds {seeds}"
        fix = f"choose a multiple of {num_devices}"
    else:
        what = f"{settings} sweep settings × {seeds} seeds = {runs} runs"
        step = num_devices // math.gcd(settings, num_devices)
        fix = f"choose --seeds as a multiple of {step}"
    raise ValueError(f"{what} over {num_devices} devices: {fix} or --devices {other} "
                     "(every device trains the same number of runs)")


@contextlib.contextmanager
def _sharding_envs(mesh: Mesh | None) -> Iterator[None]:
    global _env_mesh
    previous, _env_mesh = _env_mesh, mesh
    try:
        yield
    finally:
        _env_mesh = previous


def constrain_env_axis(tree: Any) -> Any:
    """Shard the leading (env) axis of every leaf over the mesh when a single run spans several
    devices (the envs layout, while ``Placement.compile`` traces); the identity otherwise.

    Leaves whose leading axis does not divide over the devices (an evaluation batch of another
    size) are left to XLA.
    """
    if _env_mesh is None:
        return tree
    sharding = NamedSharding(_env_mesh, PartitionSpec(AXIS))

    def constrain(x: jax.Array) -> jax.Array:
        if x.ndim == 0 or x.shape[0] % _env_mesh.size:
            return x
        return jax.lax.with_sharding_constraint(x, sharding)

    return jax.tree.map(constrain, tree)


def _is_key(x: Any) -> bool:
    return isinstance(x, jax.Array) and jax.dtypes.issubdtype(x.dtype, jax.dtypes.prng_key)


class Placement(NamedTuple):
    """Where a batch of runs lives: the mesh and the layout (see the module docstring)."""

    mesh: Mesh
    shard_envs: bool

    @classmethod
    def create(cls, devices: str | int | Sequence[jax.Device] = "all", *, runs: int,
               seeds: int | None = None, settings: int = 1,
               num_envs: int | None = None) -> Placement:
        """Mesh over ``devices``; the runs layout unless a single run spans several devices.

        Checks (``ValueError`` saying what to change): ``runs`` divides over the devices, or for
        a single run, ``num_envs`` does.
        """
        chosen = list(devices) if isinstance(devices, Sequence) and not isinstance(
            devices, str) else resolve_devices(devices)
        count = len(chosen)
        shard_envs = runs == 1 and count > 1
        if shard_envs:
            if num_envs is None:
                raise ValueError(f"a single run over {count} devices shards its env axis, but "
                                 "this agent has no num_envs; train --seeds as a multiple of "
                                 f"{count} or use --devices 1")
            if num_envs % count:
                raise ValueError(
                    f"a single run over {count} devices shards its {num_envs} envs: choose "
                    f"--num-envs as a multiple of {count}, --seeds as a multiple of {count}, or "
                    f"--devices {'/'.join(str(d) for d in _divisors(num_envs, count))}")
        else:
            check_divisible(runs, count, seeds=runs // settings if seeds is None else seeds,
                            settings=settings)
        mesh = jax.make_mesh((count,), (AXIS,), axis_types=(AxisType.Auto,), devices=chosen)
        return cls(mesh, shard_envs)

    @property
    def num_devices(self) -> int:
        """Devices in the mesh."""
        return self.mesh.size

    @property
    def batch_sharding(self) -> NamedSharding:
        """The run axis split over the devices (runs layout) or replicated (envs layout)."""
        return NamedSharding(self.mesh, PartitionSpec() if self.shard_envs else PartitionSpec(AXIS))

    @property
    def replicated(self) -> NamedSharding:
        """A full copy on every device (scalars, unbatched configs)."""
        return NamedSharding(self.mesh, PartitionSpec())

    def shard(self, tree: Any) -> Any:
        """Place a host pytree with a leading run axis on the mesh (``batch_sharding``).

        Every process passes the same values; typed PRNG keys travel as their key data.
        """
        sharding = self.batch_sharding

        def put(x):
            if _is_key(x):
                data = jax.device_put(np.asarray(jax.random.key_data(x)), sharding)
                return jax.random.wrap_key_data(data, impl=jax.random.key_impl(x))
            return jax.device_put(np.asarray(x), sharding)

        return jax.tree.map(put, tree)

    def compile(self, fn: Callable[..., Any], *args: Any,
                donate_argnums: int | tuple[int, ...] = (),
                compiler_options: dict[str, Any] | None = None) -> jax.stages.Compiled:
        """``jit(fn)`` lowered and compiled for ``args``: array inputs keep their sharding
        (place them with ``shard`` or take them from a previous call), Python scalars are
        replicated; outputs are split over the run axis (runs layout) or left to XLA's sharding
        propagation from the env-axis constraints (envs layout). ``compiler_options`` go to
        ``jax.jit`` (``jaxrl.backend.compiler_options``)."""
        in_shardings = jax.tree.map(
            lambda x: x.sharding if isinstance(x, jax.Array) else self.replicated, args)
        out_shardings = None if self.shard_envs else self.batch_sharding
        jitted = jax.jit(fn, in_shardings=in_shardings, out_shardings=out_shardings,
                         donate_argnums=donate_argnums, compiler_options=compiler_options)
        with _sharding_envs(self.mesh if self.shard_envs else None):
            return jitted.lower(*args).compile()

    def fetch(self, tree: Any) -> Any:
        """The whole of every leaf as NumPy on every process (gathered across hosts)."""
        if jax.process_count() > 1:
            tree = multihost_utils.process_allgather(tree, tiled=True)
        return jax.tree.map(np.asarray, tree)

    def describe(self) -> dict[str, Any]:
        """What ``config.json`` records: device count, kind, platform, processes, layout."""
        devices = list(self.mesh.devices.flat)
        return {"count": len(devices), "kind": devices[0].device_kind,
                "platform": devices[0].platform, "processes": jax.process_count(),
                "layout": "envs" if self.shard_envs else "runs",
                "ids": [d.id for d in devices]}


def initialize_distributed(coordinator: str | None = None, num_processes: int | None = None,
                           process_id: int | None = None) -> bool:
    """Join a multi-host run (``jax.distributed.initialize``) before any other JAX call.

    Arguments default to the environment variables ``JAX_COORDINATOR_ADDRESS`` (``host:port``
    of process 0), ``JAX_NUM_PROCESSES`` and ``JAX_PROCESS_ID``. Returns False (and does
    nothing) when no coordinator is given. CPU processes exchange data through gloo.
    """
    coordinator = coordinator or os.environ.get("JAX_COORDINATOR_ADDRESS")
    if not coordinator:
        return False
    if num_processes is None and "JAX_NUM_PROCESSES" in os.environ:
        num_processes = int(os.environ["JAX_NUM_PROCESSES"])
    if process_id is None and "JAX_PROCESS_ID" in os.environ:
        process_id = int(os.environ["JAX_PROCESS_ID"])
    if num_processes is None or process_id is None:
        raise ValueError(f"--coordinator {coordinator} needs --num-processes and --process-id "
                         "(or JAX_NUM_PROCESSES and JAX_PROCESS_ID)")
    if not 0 <= process_id < num_processes:
        raise ValueError(f"--process-id must be in 0 … {num_processes - 1}, got {process_id}")
    jax.config.update("jax_cpu_collectives_implementation", "gloo")
    jax.distributed.initialize(coordinator_address=coordinator, num_processes=num_processes,
                               process_id=process_id)
    return True


def is_main_process() -> bool:
    """Process 0 writes metrics, plots and checkpoints; the others only compute."""
    return jax.process_index() == 0
