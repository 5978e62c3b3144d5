"""Two real processes (CPU, gloo, coordinator on 127.0.0.1) train like one process."""

import os
import signal
import socket
import subprocess
import sys
import time

import jax
import numpy as np
import pytest

from ngpu_jax import loading, workdir_files

from conftest import REPO, run_module

pytestmark = pytest.mark.slow

ARGS = [
  "--config=experiments/badd.py:smoke",
  "--config.num_steps=30",
  "--config.checkpoint_every=10",
  "--config.eval.every=10",
  "--config.final_eval.lengths=(12,)",
]


def _free_port():
  with socket.socket() as s:
    s.bind(("127.0.0.1", 0))
    return s.getsockname()[1]


def _start_pair(workdir):
  """Processes 0 and 1 of a two-process run; their output goes to files beside the workdir,
  so that a process is never blocked on a pipe nobody reads while the test polls."""
  port = _free_port()
  env = {**os.environ, "PYTHONPATH": REPO}
  procs = []
  for i in (0, 1):
    out = open(f"{workdir}.{i}.out", "w")  # closed by _output
    err = open(f"{workdir}.{i}.err", "w")
    p = subprocess.Popen(
      [
        sys.executable,
        "-m",
        "ngpu_jax.main",
        *ARGS,
        f"--workdir={workdir}",
        "--cpu_devices=1",
        f"--coordinator_address=127.0.0.1:{port}",
        "--num_processes=2",
        f"--process_id={i}",
      ],
      cwd=REPO,
      env=env,
      stdout=out,
      stderr=err,
      text=True,
    )
    p.files = (out, err)
    procs.append(p)
  return procs


def _output(p):
  for f in p.files:
    f.close()
  with open(p.files[0].name) as out, open(p.files[1].name) as err:
    return out.read(), err.read()


def _wait(procs, timeout=240):
  for p in procs:
    p.wait(timeout=timeout)
  outs = [_output(p) for p in procs]
  for p, (_, err) in zip(procs, outs):
    assert p.returncode == 0, err[-3000:]
  return outs


def _params(workdir):
  return jax.device_get(loading.load_run(str(workdir)).params)


def _train_lines(workdir):
  return [m for m in workdir_files.read_metrics(str(workdir)) if m["kind"] == "train"]


def _assert_same_params(a, b, exact=False):
  for x, y in zip(jax.tree.leaves(_params(a)), jax.tree.leaves(_params(b))):
    if exact:
      np.testing.assert_array_equal(x, y)
    else:
      np.testing.assert_allclose(x, y, rtol=1e-4, atol=1e-5)


def _assert_same_run(a, b, exact=False):
  _assert_same_params(a, b, exact)
  la, lb = _train_lines(a), _train_lines(b)
  assert [m["step"] for m in la] == [m["step"] for m in lb]
  assert [m["cur_length"] for m in la] == [m["cur_length"] for m in lb]
  np.testing.assert_allclose([m["loss"] for m in la], [m["loss"] for m in lb], rtol=1e-4)
  np.testing.assert_allclose([m["seq_error"] for m in la], [m["seq_error"] for m in lb], atol=1e-9)


def test_two_processes_match_one_process_and_resume_after_kill(tmp_path):
  (out0, _), _ = _wait(_start_pair(tmp_path / "two"))
  assert "over 2 device(s), 2 device(s) in 2 process(es)" in out0
  for ndev in (1, 2):
    proc = run_module(
      "ngpu_jax.main", *ARGS, f"--workdir={tmp_path / f'one{ndev}'}", f"--cpu_devices={ndev}"
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
  _assert_same_run(tmp_path / "two", tmp_path / "one2")
  _assert_same_run(tmp_path / "two", tmp_path / "one1")
  # Both processes wrote the best model's params; it was chosen at the same step.
  best = [loading.read_model_info(str(tmp_path / d / "best"))["step"] for d in ("two", "one2")]
  assert best[0] == best[1]
  _assert_same_params(tmp_path / "two" / "best", tmp_path / "one2" / "best")

  # Kill both processes once a checkpoint exists, then run the same commands again.
  killed = tmp_path / "killed"
  procs = _start_pair(killed)
  deadline = time.time() + 240
  while (
    not os.path.isdir(killed / "checkpoints" / "10")
    and time.time() < deadline
    and all(p.poll() is None for p in procs)
  ):
    time.sleep(0.2)
  for p in procs:
    p.send_signal(signal.SIGKILL)
  for p in procs:
    p.wait()
  outs = [_output(p) for p in procs]
  assert os.path.isdir(killed / "checkpoints" / "10"), "no checkpoint appeared:\n" + "\n".join(
    f"process {i}: rc {p.returncode}\n{out[-1500:]}\n{err[-1500:]}"
    for i, (p, (out, err)) in enumerate(zip(procs, outs))
  )
  (out0, _), _ = _wait(_start_pair(killed))
  resumed_at = int(out0.split("starting at step ")[1].split()[0])
  assert resumed_at in (10, 20), out0
  _assert_same_run(tmp_path / "two", killed, exact=True)
