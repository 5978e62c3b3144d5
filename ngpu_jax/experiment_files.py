"""Experiment files (experiments/*.py) loaded as modules, and the seeds of the reproduction table."""

import importlib.util
import os


def load_experiment(path: str):
  """The experiment file at path as a module (its get_config, and get_sweep if any)."""
  spec = importlib.util.spec_from_file_location("_ngpu_experiment", path)
  if spec is None or not os.path.exists(path):
    raise ValueError(f"no experiment file {path!r}")
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  return module


# Seeds per task in the reproduction table: 5 where a run is cheap, 3 where
# the curriculum alone takes hours on a CPU.
REPRODUCTION_SEEDS = {
  "badd": 5,
  "copy": 5,
  "reverse": 5,
  "duplicate": 5,
  "sort": 5,
  "bmul": 3,
  "add": 3,
  "mul": 3,
}


def reproduction_sweep(task: str) -> list[dict]:
  """One {'seed': s} per seed of task's row in the reproduction table."""
  if task not in REPRODUCTION_SEEDS:
    raise ValueError(
      f"no reproduction seeds for task {task!r}; known: {sorted(REPRODUCTION_SEEDS)}"
    )
  return [{"seed": s} for s in range(REPRODUCTION_SEEDS[task])]
