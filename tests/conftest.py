"""Shared fixtures: tiny configs that compile in seconds."""

import os
import subprocess
import sys

import pytest

from ngpu_jax import configlib

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def tiny_config(task="badd", **overrides):
  """The smoke form shrunk further: one bucket, 4 maps."""
  c = configlib.smoke(configlib.base(task))
  c.batch_size = 4
  c.model.maps = 4
  c.curriculum.max_length = 8
  c.curriculum.start_length = 6
  c.curriculum.window = 5
  c.buckets = (8,)
  c.num_steps = 20
  c.log_every = 5
  c.checkpoint_every = 10
  c.eval.every = 10
  c.eval.lengths = (8,)
  c.eval.examples = 8
  c.eval.batch_size = 8
  c.final_eval.lengths = (8,)
  c.final_eval.examples = 8
  c.final_eval.long_lengths = ()
  for key, value in overrides.items():
    node = c
    *path, last = key.split(".")
    for p in path:
      node = node[p]
    node[last] = value
  return c


def tiny_dngpu_config(task="bmul", **overrides):
  """tiny_config with the DNGPU's cell, 1-row state, all bins per step and AdaMax."""
  return tiny_config(
    task,
    **{
      "model.rows": 1,
      "model.layers": 1,
      "model.maps": 6,
      "model.gate": "hard_sigmoid",
      "model.candidate": "hard_tanh",
      "model.diagonal": True,
      "model.u_offset": 0.7,
      "model.r_offset": 0.5,
      "model.dropout_on": "candidate",
      "saturation.enabled": True,
      "relax.copies": 1,
      "curriculum.mode": "all_buckets",
      "buckets": (6, 8),
      "optim.name": "adamax",
      "optim.clip_mode": "element",
      **overrides,
    },
  )


def spec(**changes):
  """The paper model's model.Spec (experiments/badd.py's), with the given fields changed."""
  from ngpu_jax import model  # pylint: disable=g-import-not-at-top

  return model.Spec.from_config(configlib.base("badd"))._replace(**changes)


def run_module(module, *args, stdin=None, env=None, timeout=300):
  """python -m module args..., from the repo root; returns the CompletedProcess."""
  full_env = {**os.environ, "PYTHONPATH": REPO, **(env or {})}
  return subprocess.run(
    [sys.executable, "-m", module, *args],
    input=stdin,
    capture_output=True,
    text=True,
    cwd=REPO,
    env=full_env,
    timeout=timeout,
  )


@pytest.fixture
def tiny():
  return tiny_config
