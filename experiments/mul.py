"""Neural GPU, decimal multiplication (mul), at the paper's settings.

Train (CPU or accelerator):
  python -m ngpu_jax.main --config=experiments/mul.py --workdir=/tmp/ngpu/mul
Smoke form (seconds):
  python -m ngpu_jax.main --config=experiments/mul.py:smoke --workdir=/tmp/ngpu/mul_smoke
Evaluate at 20-, 200- and 2000-bit operand lengths:
  python -m ngpu_jax.tools.evaluate --workdir=/tmp/ngpu/mul --lengths=41,401,4001

Expected result. The paper: decimal multiplication did not generalize.
"""

from ngpu_jax import configlib, experiment_files


def get_config(arg: str | None = None):
  return configlib.get_config_for("mul", arg)


def get_sweep(arg: str | None = None):
  """The seeds of the reproduction table (python -m ngpu_jax.tools.sweep --config=experiments/mul.py)."""
  del arg
  return experiment_files.reproduction_sweep("mul")
