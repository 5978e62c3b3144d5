"""Neural GPU, copy (copy), at the paper's settings.

Train (CPU or accelerator):
  python -m ngpu_jax.main --config=experiments/copy.py --workdir=/tmp/ngpu/copy
Smoke form (seconds):
  python -m ngpu_jax.main --config=experiments/copy.py:smoke --workdir=/tmp/ngpu/copy_smoke
Evaluate at 20-, 200- and 2000-bit operand lengths:
  python -m ngpu_jax.tools.evaluate --workdir=/tmp/ngpu/copy --lengths=41,401,4001

Expected result. The paper: generalizes to long inputs.
"""

from ngpu_jax import configlib, experiment_files


def get_config(arg: str | None = None):
  return configlib.get_config_for("copy", arg)


def get_sweep(arg: str | None = None):
  """The seeds of the reproduction table (python -m ngpu_jax.tools.sweep --config=experiments/copy.py)."""
  del arg
  return experiment_files.reproduction_sweep("copy")
