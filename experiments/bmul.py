"""Neural GPU, binary multiplication (bmul), at the paper's settings.

Train (CPU or accelerator):
  python -m ngpu_jax.main --config=experiments/bmul.py --workdir=/tmp/ngpu/bmul
Smoke form (seconds):
  python -m ngpu_jax.main --config=experiments/bmul.py:smoke --workdir=/tmp/ngpu/bmul_smoke
Evaluate at 20-, 200- and 2000-bit operand lengths:
  python -m ngpu_jax.tools.evaluate --workdir=/tmp/ngpu/bmul --lengths=41,401,4001

Expected result. The paper: error-free on 2000-bit operands; a successor reports ~30,000 steps for the original model.
"""

from ngpu_jax import configlib, experiment_files


def get_config(arg: str | None = None):
  return configlib.get_config_for("bmul", arg)


def get_sweep(arg: str | None = None):
  """The seeds of the reproduction table (python -m ngpu_jax.tools.sweep --config=experiments/bmul.py)."""
  del arg
  return experiment_files.reproduction_sweep("bmul")
