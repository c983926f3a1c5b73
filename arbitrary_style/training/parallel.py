"""Data parallelism over every device of every host (style.md points 7-8).

One mesh axis, ``data``: the batch is split over it and the train state is
replicated. ``jax.jit`` with these shardings computes the same function as on
one device (batch-norm statistics included: they are taken over the global
batch), so a run's result does not depend on how many devices it had.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping

import jax
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec

DATA_AXIS = "data"

# Environment variables that ask for a multi-host run. JAX reads the address
# itself (jax/_src/distributed.py); the other two are ours, because JAX only
# learns them from a cluster manager (SLURM, Open MPI, TPU, ...).
COORDINATOR_ENV = "JAX_COORDINATOR_ADDRESS"
NUM_PROCESSES_ENV = "JAX_NUM_PROCESSES"
PROCESS_ID_ENV = "JAX_PROCESS_ID"


def maybe_initialize_distributed(environ: Mapping[str, str] | None = None) -> bool:
    """Calls ``jax.distributed.initialize`` when the environment asks for it.

    With ``JAX_COORDINATOR_ADDRESS`` (and ``JAX_NUM_PROCESSES``,
    ``JAX_PROCESS_ID`` unless a cluster manager JAX knows provides them) set,
    this process joins the others; on CPU the collectives are gloo's (JAX's
    default ``jax_cpu_collectives_implementation``). Without them it does
    nothing: a single-host run. Must run before any other JAX call.

    Returns:
      True when this process is part of a multi-process run.
    """
    environ = os.environ if environ is None else environ
    if jax.distributed.is_initialized():
        return True
    address = environ.get(COORDINATOR_ENV)
    if not address:
        return False
    kwargs = {"coordinator_address": address}
    if NUM_PROCESSES_ENV in environ:
        kwargs["num_processes"] = int(environ[NUM_PROCESSES_ENV])
    if PROCESS_ID_ENV in environ:
        kwargs["process_id"] = int(environ[PROCESS_ID_ENV])
    jax.distributed.initialize(**kwargs)
    logging.info(
        "jax.distributed: process %d of %d, %d local of %d devices",
        jax.process_index(),
        jax.process_count(),
        jax.local_device_count(),
        jax.device_count(),
    )
    return True


def make_mesh(devices=None) -> Mesh:
    """A 1-D ``data`` mesh over ``devices`` (default: all devices of all hosts)."""
    devices = np.asarray(jax.devices() if devices is None else devices)
    return Mesh(devices.reshape(-1), (DATA_AXIS,))


def replicated(mesh: Mesh) -> NamedSharding:
    return NamedSharding(mesh, PartitionSpec())


def batch_sharded(mesh: Mesh) -> NamedSharding:
    """Leading (batch) axis split over ``data``; the rest whole."""
    return NamedSharding(mesh, PartitionSpec(DATA_AXIS))


def check_batch_size(global_batch: int, mesh: Mesh, process_count: int | None = None) -> int:
    """Validates the global batch; returns the per-process batch.

    Raises:
      ValueError: when the batch does not divide over the devices (or hosts).
    """
    process_count = jax.process_count() if process_count is None else process_count
    devices = mesh.devices.size
    if global_batch % devices:
        raise ValueError(
            f"config.train.batch_size={global_batch} must be a multiple of the number "
            f"of devices ({devices}) for data parallelism; use e.g. "
            f"{max(devices, global_batch // devices * devices)}"
        )
    if global_batch % process_count:
        raise ValueError(
            f"config.train.batch_size={global_batch} must be a multiple of the number "
            f"of processes ({process_count})"
        )
    return global_batch // process_count


def global_batch(local_batch: Mapping[str, np.ndarray], sharding: NamedSharding) -> dict:
    """This host's part of a batch -> global arrays split over the ``data`` axis.

    Each host passes the rows it read; ``jax.make_array_from_process_local_data``
    stitches them in process order into arrays of the global batch size.
    """
    out = {}
    for name, local in local_batch.items():
        local = np.asarray(local)
        global_shape = (local.shape[0] * jax.process_count(), *local.shape[1:])
        out[name] = jax.make_array_from_process_local_data(sharding, local, global_shape)
    return out


def replicate(tree, sharding: NamedSharding):
    """Places host values (equal on every process) on every device of ``sharding``.

    ``make_array_from_callback`` works across hosts, where ``device_put`` of a
    host array onto non-addressable devices does not.
    """

    def put(x):
        x = np.asarray(x)
        return jax.make_array_from_callback(x.shape, sharding, lambda index: x[index])

    return jax.tree.map(put, tree)
