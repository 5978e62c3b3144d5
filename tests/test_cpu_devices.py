"""parallel.setup_cpu_devices: the host CPU split into devices, and a late device tolerated."""

import os
import subprocess
import sys

import pytest

from conftest import REPO

# One device's thread reaches the all-reduce `sleep` seconds after the other's, as a thread
# starved by other work on the machine does.
LATE_DEVICE = """
import os, sys, time
import jax, jax.numpy as jnp
from jax.sharding import PartitionSpec as P
from ngpu_jax import parallel

parallel.setup_cpu_devices(2, 2)
mesh = parallel.make_mesh()

def late(x_B):
  if float(x_B[0]) == 0.0:
    time.sleep(float(sys.argv[1]))
  return x_B

def total(x_B):
  x_B = jax.experimental.io_callback(late, jax.ShapeDtypeStruct(x_B.shape, x_B.dtype), x_B)
  return jax.lax.psum(x_B, "data")

step = jax.jit(jax.shard_map(total, mesh=mesh, in_specs=P("data"), out_specs=P()))
print(len(jax.devices()), float(step(jnp.arange(2.0))[0]), os.environ["XLA_FLAGS"])
"""


def _run(sleep_s: float, xla_flags: str) -> subprocess.CompletedProcess:
  env = {**os.environ, "PYTHONPATH": REPO, "XLA_FLAGS": xla_flags}
  return subprocess.run(
    [sys.executable, "-c", LATE_DEVICE, str(sleep_s)],
    env=env,
    capture_output=True,
    text=True,
    timeout=300,
  )


def test_two_devices_get_the_long_collective_timeout_once_and_keep_a_users_own():
  proc = _run(0, "")
  assert proc.returncode == 0, proc.stderr[-2000:]
  devices, total, flags = proc.stdout.split(maxsplit=2)
  assert (devices, total) == ("2", "1.0")
  assert flags.split() == ["--xla_cpu_collective_call_terminate_timeout_seconds=600"]

  mine = "--xla_cpu_collective_call_terminate_timeout_seconds=90"
  proc = _run(0, mine)
  assert proc.returncode == 0, proc.stderr[-2000:]
  assert proc.stdout.split(maxsplit=2)[2].split() == [mine]


@pytest.mark.slow
def test_a_device_45_s_late_at_an_all_reduce_does_not_abort_the_run():
  # XLA's own limit is the warning time plus 40 s: 1 + 40 s here, so 45 s late aborts
  # (SIGABRT) without the longer timeout.
  proc = _run(45, "--xla_cpu_collective_call_warn_stuck_timeout_seconds=1")
  assert proc.returncode == 0, proc.stderr[-2000:]
  assert proc.stdout.split()[:2] == ["2", "1.0"]
