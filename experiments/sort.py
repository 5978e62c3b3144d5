"""Neural GPU, sort (counting by sorting) (sort), at the paper's settings.

Train (CPU or accelerator):
  python -m ngpu_jax.main --config=experiments/sort.py --workdir=/tmp/ngpu/sort
Smoke form (seconds):
  python -m ngpu_jax.main --config=experiments/sort.py:smoke --workdir=/tmp/ngpu/sort_smoke
Evaluate at 20-, 200- and 2000-bit operand lengths:
  python -m ngpu_jax.tools.evaluate --workdir=/tmp/ngpu/sort --lengths=41,401,4001

Expected result. The paper: generalizes to long inputs.
"""

from ngpu_jax import configlib, experiment_files


def get_config(arg: str | None = None):
  return configlib.get_config_for("sort", arg)


def get_sweep(arg: str | None = None):
  """The seeds of the reproduction table (python -m ngpu_jax.tools.sweep --config=experiments/sort.py)."""
  del arg
  return experiment_files.reproduction_sweep("sort")
