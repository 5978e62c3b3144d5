"""Neural GPU, decimal addition (add), at the paper's settings.

Train (CPU or accelerator):
  python -m ngpu_jax.main --config=experiments/add.py --workdir=/tmp/ngpu/add
Smoke form (seconds):
  python -m ngpu_jax.main --config=experiments/add.py:smoke --workdir=/tmp/ngpu/add_smoke
Evaluate at 20-, 200- and 2000-bit operand lengths:
  python -m ngpu_jax.tools.evaluate --workdir=/tmp/ngpu/add --lengths=41,401,4001

Expected result. The paper: not reported to generalize with the original model (Price et al. needed a base-2 -> 4 -> 10 curriculum and larger models).
"""

from ngpu_jax import configlib, experiment_files


def get_config(arg: str | None = None):
  return configlib.get_config_for("add", arg)


def get_sweep(arg: str | None = None):
  """The seeds of the reproduction table (python -m ngpu_jax.tools.sweep --config=experiments/add.py)."""
  del arg
  return experiment_files.reproduction_sweep("add")
