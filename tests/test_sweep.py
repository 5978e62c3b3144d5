"""Sweep: runs seeds as independent launcher jobs, resumes, shards; aggregate: the table."""

import json
import os

import pytest

from conftest import run_module
from ngpu_jax import aggregate, sweep

pytestmark = pytest.mark.slow
SWEEP = ["--config=experiments/task.py:copy,smoke", "--seeds=0,1", "--set=num_steps=20",
         "--set=eval.every=10"]


def test_sweep_runs_resumes_shards_and_aggregates(tmp_path):
  root = str(tmp_path / "sweep")
  proc = run_module("ngpu_jax.sweep", *SWEEP, f"--root={root}", "--shard=1/2")
  assert proc.returncode == 0, proc.stderr[-3000:]
  assert sorted(os.listdir(root)) == ["seed=1", "sweep.json"]  # shard 1 of 2: the second run
  proc = run_module("ngpu_jax.sweep", *SWEEP, f"--root={root}", "--jobs=2")
  assert proc.returncode == 0, proc.stderr[-3000:]
  assert "finished  " + os.path.join(root, "seed=1") in proc.stdout.splitlines()[1]  # skipped
  assert "started  " + os.path.join(root, "seed=0") in proc.stdout
  assert sweep.is_finished(os.path.join(root, "seed=0"))
  with open(os.path.join(root, "seed=0", "config.json")) as f:
    assert json.load(f)["num_steps"] == 20

  out = tmp_path / "results.md"
  proc = run_module("ngpu_jax.aggregate", root, f"--out={out}")
  assert proc.returncode == 0, proc.stderr[-3000:]
  text = out.read_text()
  assert text.startswith("Made by `python -m ngpu_jax.aggregate")
  row = next(line for line in text.splitlines() if line.startswith("| copy |"))
  cells = [c.strip() for c in row.strip("|").split("|")]
  assert cells[2] == "2" and cells[3].endswith("/2")
  summaries = [aggregate.summarize(w) for w in aggregate.find_workdirs([root])]
  assert [s["seed"] for s in summaries] == [0, 1]
  assert len({s["variant"] for s in summaries}) == 1  # seeds of one setting form one row


def test_sweep_from_the_experiment_file_and_bad_shard(tmp_path):
  assert [r["seed"] for r in sweep.load_sweep("experiments/badd.py", [0])] == [0, 1, 2, 3, 4]
  proc = run_module("ngpu_jax.sweep", "--config=experiments/badd.py", f"--root={tmp_path}",
                    "--shard=3/2")
  assert proc.returncode == 2 and "--shard 3/2" in proc.stderr
  proc = run_module("ngpu_jax.aggregate", str(tmp_path / "nothing"))
  assert proc.returncode == 2 and "no runs" in proc.stderr
