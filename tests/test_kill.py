"""Real SIGKILLs, during training and during a checkpoint write; the rerun ends bit-identical."""

import os
import signal
import subprocess
import sys
import time

import jax
import numpy as np
import pytest

from ngpu_jax import checkpoint, loading, workdir_files

from conftest import REPO, run_module

pytestmark = pytest.mark.slow

ARGS = [
  "--config=experiments/badd.py:smoke",
  "--config.num_steps=60",
  "--config.checkpoint_every=10",
  "--config.eval.every=20",
  "--config.final_eval.lengths=(12,)",
  "--config.optim.noise_scale=0.5",
]


def _lines(workdir, kind):
  """Metric lines of one kind, without the wall-clock field."""
  return [
    {k: v for k, v in m.items() if k != "train_seconds"}
    for m in workdir_files.read_metrics(str(workdir))
    if m["kind"] == kind
  ]


def test_killed_runs_resume_to_the_same_result(tmp_path):
  full, cut = tmp_path / "full", tmp_path / "cut"
  proc = run_module("ngpu_jax.main", *ARGS, f"--workdir={full}")
  assert proc.returncode == 0, proc.stderr[-3000:]

  # 1. Killed while orbax writes the step-20 checkpoint.
  proc = run_module(
    "ngpu_jax.main", *ARGS, f"--workdir={cut}", env={checkpoint.FAULT_ENV: "kill_during_save:20"}
  )
  assert proc.returncode == -signal.SIGKILL
  ckpts = os.listdir(cut / "checkpoints")
  assert "10" in ckpts and "20" not in ckpts, ckpts  # the half-written one is not a checkpoint

  # 2. Killed from outside in the middle of training (after step 30 is saved).
  env = {**os.environ, "PYTHONPATH": REPO}
  p = subprocess.Popen(
    [sys.executable, "-m", "ngpu_jax.main", *ARGS, f"--workdir={cut}"],
    cwd=REPO,
    env=env,
    stdout=subprocess.PIPE,
    stderr=subprocess.PIPE,
    text=True,
  )
  deadline = time.time() + 240
  while not os.path.isdir(cut / "checkpoints" / "30") and time.time() < deadline:
    time.sleep(0.05)
  p.send_signal(signal.SIGKILL)
  out, _ = p.communicate()
  assert p.returncode == -signal.SIGKILL
  assert "starting at step 10" in out

  # 3. The same command again finishes the run.
  proc = run_module("ngpu_jax.main", *ARGS, f"--workdir={cut}")
  assert proc.returncode == 0, proc.stderr[-3000:]
  resumed_at = int(proc.stdout.split("starting at step ")[1].split()[0])
  assert resumed_at in (30, 40, 50), proc.stdout

  a = jax.device_get(loading.load_run(str(full)).params)
  b = jax.device_get(loading.load_run(str(cut)).params)
  for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b)):
    np.testing.assert_array_equal(x, y)
  assert _lines(full, "train") == _lines(cut, "train")
  assert _lines(full, "eval") == _lines(cut, "eval")
