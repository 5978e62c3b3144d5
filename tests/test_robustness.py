"""Bad numbers and damaged files: never continue corrupted, never lose what is on disk."""

import os
import subprocess

import jax
import numpy as np
import pytest

from ngpu_jax import loading, train

from conftest import tiny_config


@pytest.mark.slow
def test_divergence_stops_with_the_last_good_checkpoint_and_saves_nothing_bad(tmp_path):
  wd = str(tmp_path)
  train.train_and_evaluate(tiny_config(num_steps=10), wd)
  bad = tiny_config(num_steps=20, **{"optim.learning_rate": 1e30, "optim.clip_norm": 1e30})
  with pytest.raises(
    train.TrainingDivergedError, match=r"last good checkpoint is .*checkpoints/10 \(step 10\)"
  ):
    train.train_and_evaluate(bad, wd, allow_config_change=True)
  assert sorted(os.listdir(os.path.join(wd, "checkpoints"))) == ["10"]
  params = jax.device_get(loading.load_run(wd).params)
  assert all(np.all(np.isfinite(a)) for a in jax.tree.leaves(params))


@pytest.mark.slow
def test_damaged_checkpoint_is_set_aside_and_the_previous_one_used(tmp_path, capsys):
  wd = str(tmp_path)
  config = tiny_config(num_steps=20)
  train.train_and_evaluate(config, wd)
  # Damage every array file of the newest checkpoint.
  newest = os.path.join(wd, "checkpoints", "20", "state")
  damaged = 0
  for root, _, files in os.walk(newest):
    for f in files:
      with open(os.path.join(root, f), "wb") as fh:
        fh.write(b"\0garbage")
      damaged += 1
  assert damaged
  loaded = loading.load_run(wd)
  assert loaded.step == 10
  out = capsys.readouterr().out
  assert "checkpoints/20 is unreadable" in out
  kept = os.listdir(os.path.join(wd, "damaged_checkpoints"))
  assert len(kept) == 1 and kept[0].startswith("20-")
  # Training resumes from step 10 and can write step 20 again.
  assert train.train_and_evaluate(config, wd)["step"] == 20
  assert "20" in os.listdir(os.path.join(wd, "checkpoints"))


@pytest.fixture
def tiny_disk(tmp_path):
  """A 700 KiB tmpfs: room for about two checkpoints of the smoke model."""
  mnt = tmp_path / "disk"
  mnt.mkdir()
  proc = subprocess.run(
    ["mount", "-t", "tmpfs", "-o", "size=700k", "tmpfs", str(mnt)], capture_output=True, text=True
  )
  if proc.returncode != 0:
    pytest.skip(f"cannot mount a tmpfs here (needs root): {proc.stderr.strip()}")
  yield mnt
  subprocess.run(["umount", str(mnt)], check=False)


@pytest.mark.slow
def test_disk_full_is_a_clear_error_and_earlier_checkpoints_survive(tiny_disk):
  wd = str(tiny_disk / "run")
  config = tiny_config(num_steps=60, checkpoint_every=10, **{"model.maps": 8})
  with pytest.raises(
    train.WorkdirWriteError, match=r"No space left on device.*last good checkpoint is"
  ):
    train.train_and_evaluate(config, wd)
  loaded = loading.load_run(wd)  # the newest complete checkpoint still restores
  assert loaded.step >= 10 and loaded.step % 10 == 0
  assert all(np.all(np.isfinite(a)) for a in jax.tree.leaves(jax.device_get(loaded.params)))


def test_workdir_that_cannot_be_created_is_refused_before_training(tmp_path):
  blocker = tmp_path / "file"
  blocker.write_text("not a directory")
  with pytest.raises(OSError):
    train.train_and_evaluate(tiny_config(), str(blocker / "run"))
