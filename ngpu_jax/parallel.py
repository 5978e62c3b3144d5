"""Devices, mesh and batch placement for data parallelism over all processes.

Parameters are replicated (P()); batches are split along a 'data' mesh axis
(P('data')). Every process builds the same global batch from (seed, step) and
hands JAX only its own rows, so the result does not depend on the process count.
"""

import jax
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec as P


def initialize_distributed(coordinator_address: str | None = None, num_processes: int | None = None,
                           process_id: int | None = None) -> None:
  """jax.distributed.initialize(); without arguments JAX detects Slurm, MPI, TPU, k8s."""
  if jax.default_backend() == "cpu" or coordinator_address:
    # CPU collectives across processes need gloo; harmless elsewhere.
    jax.config.update("jax_cpu_collectives_implementation", "gloo")
  jax.distributed.initialize(coordinator_address=coordinator_address, num_processes=num_processes,
                             process_id=process_id)


def make_mesh() -> Mesh:
  return Mesh(np.asarray(jax.devices()), ("data",))


def replicated(mesh: Mesh) -> NamedSharding:
  return NamedSharding(mesh, P())


def data_sharded(mesh: Mesh) -> NamedSharding:
  return NamedSharding(mesh, P("data"))


def is_main_process() -> bool:
  return jax.process_index() == 0


def global_batch(mesh: Mesh, *arrays: np.ndarray) -> tuple[jax.Array, ...]:
  """Global arrays split over 'data', from the full batch that every process holds."""
  sharding = data_sharded(mesh)
  out = []
  for a in arrays:
    idx = sharding.addressable_devices_indices_map(a.shape).values()
    rows = sorted({(i[0].start or 0, i[0].stop if i[0].stop is not None else a.shape[0]) for i in idx})
    lo, hi = rows[0][0], rows[-1][1]
    out.append(jax.make_array_from_process_local_data(sharding, a[lo:hi], a.shape))
  return tuple(out)
