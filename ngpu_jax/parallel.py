"""Devices, mesh and batch placement for data parallelism over all processes.

Parameters are replicated (P()); batches are split along a 'data' mesh axis
(P('data')). Every process builds the same global batch from (seed, step) and
hands JAX only its own rows, so the result does not depend on the process count.
"""

import os

import jax
import numpy as np
from jax.experimental import multihost_utils
from jax.sharding import Mesh, NamedSharding
from jax.sharding import PartitionSpec as P


def initialize_distributed(
  coordinator_address: str | None = None,
  num_processes: int | None = None,
  process_id: int | None = None,
) -> None:
  """jax.distributed.initialize(); without arguments JAX detects Slurm, MPI, TPU, k8s."""
  # CPU collectives across processes need gloo; the setting is unused on GPU/TPU.
  # (Asking for the backend here would start it, which initialize() forbids.)
  jax.config.update("jax_cpu_collectives_implementation", "gloo")
  jax.distributed.initialize(
    coordinator_address=coordinator_address, num_processes=num_processes, process_id=process_id
  )


def cpu_device_count(requested: int, batch_size: int) -> int:
  """How many CPU devices to create: requested, or (-1) the most cores that split the batch.

  XLA:CPU runs one device's ops largely on one thread; data parallelism over one
  device per core keeps both cores of a small machine busy (1.5x per step here).
  """
  if requested > 0:
    return requested
  cores = os.cpu_count() or 1
  return max(d for d in range(1, min(cores, batch_size) + 1) if batch_size % d == 0)


# XLA:CPU aborts the process when one device's thread reaches an all-reduce a minute after the
# others (20 s to its warning, then 40 s more: the flag below). On a loaded machine (a niced run
# beside other work) a starved thread gets there that late, and a long run died of it. The
# limit stays finite: under such load a two-device run has also hung for good at a collective
# (no thread busy), and then the abort is what lets a restart loop resume it from a checkpoint.
COLLECTIVE_TERMINATE_FLAG = "--xla_cpu_collective_call_terminate_timeout_seconds"
COLLECTIVE_TERMINATE_SECONDS = 600


def setup_cpu_devices(requested: int, batch_size: int) -> None:
  """Splits the host CPU into devices; call before JAX starts its backends.

  Does nothing when XLA_FLAGS already forces a device count (tests do). With more than
  one device, XLA waits up to 10 minutes for a late device at a collective (unless XLA_FLAGS
  sets that already).
  """
  xla_flags = os.environ.get("XLA_FLAGS", "")
  if "xla_force_host_platform_device_count" in xla_flags:
    return
  count = cpu_device_count(requested, batch_size)
  if count > 1 and COLLECTIVE_TERMINATE_FLAG not in xla_flags:
    # Read when the backend starts, which is after this call.
    os.environ["XLA_FLAGS"] = (
      f"{xla_flags} {COLLECTIVE_TERMINATE_FLAG}={COLLECTIVE_TERMINATE_SECONDS}".strip()
    )
  jax.config.update("jax_num_cpu_devices", count)


def make_mesh() -> Mesh:
  return Mesh(np.asarray(jax.devices()), ("data",))


def replicated(mesh: Mesh) -> NamedSharding:
  return NamedSharding(mesh, P())


def data_sharded(mesh: Mesh) -> NamedSharding:
  return NamedSharding(mesh, P("data"))


def seed_data_sharded(mesh: Mesh) -> NamedSharding:
  """Packed seeds' batches S x B x ...: every seed's rows split over 'data'."""
  return NamedSharding(mesh, P(None, "data"))


def is_main_process() -> bool:
  return jax.process_index() == 0


def sync(name: str) -> None:
  """Waits until every process gets here (a no-op in one process)."""
  if jax.process_count() > 1:
    multihost_utils.sync_global_devices(name)


def global_batch(mesh: Mesh, *arrays: np.ndarray, seed_axis: bool = False) -> tuple[jax.Array, ...]:
  """Global arrays split over 'data', from the full batch that every process holds.

  seed_axis: the arrays are S x B x ... (packed seeds) and their axis 1 is split.
  """
  sharding = seed_data_sharded(mesh) if seed_axis else data_sharded(mesh)
  ax = 1 if seed_axis else 0
  out = []
  for a in arrays:
    idx = sharding.addressable_devices_indices_map(a.shape).values()
    rows = sorted(
      {(i[ax].start or 0, i[ax].stop if i[ax].stop is not None else a.shape[ax]) for i in idx}
    )
    lo, hi = rows[0][0], rows[-1][1]
    local = a[:, lo:hi] if seed_axis else a[lo:hi]
    out.append(jax.make_array_from_process_local_data(sharding, local, a.shape))
  return tuple(out)
