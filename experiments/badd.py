"""Neural GPU, binary addition (badd), at the paper's settings.

Train (CPU or accelerator):
  python -m ngpu_jax.main --config=experiments/badd.py --workdir=/tmp/ngpu/badd
Smoke form (seconds):
  python -m ngpu_jax.main --config=experiments/badd.py:smoke --workdir=/tmp/ngpu/badd_smoke
Evaluate at 20-, 200- and 2000-bit operand lengths:
  python -m ngpu_jax.evaluate --workdir=/tmp/ngpu/badd --lengths=41,401,4001

Expected result. Measured here (seed 0, 2 CPU cores): curriculum at 41 by step 11,000, no
errors at length 41 (128 problems) at step 13,000 after 44 minutes, where the run stops as
solved; at that point 100% sequence error at length 401 (results/badd_default/). The paper:
error-free on 2000-bit operands after longer training on up to 20 bits.
"""

from ngpu_jax import configlib


def get_config(arg: str | None = None):
  return configlib.get_config_for("badd", arg)


def get_sweep(arg: str | None = None):
  """The seeds of the reproduction table (python -m ngpu_jax.sweep --config=experiments/badd.py)."""
  del arg
  return configlib.reproduction_sweep("badd")
