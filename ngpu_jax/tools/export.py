"""Writes a trained run as a small model directory, e.g. for ngpu_jax/pretrained/:

  python -m ngpu_jax.tools.export --workdir=runs/badd --out=ngpu_jax/pretrained/badd

The directory holds config.json, params/ (orbax) and step.json; predict,
evaluate and visualize load it by path, or by name when it is under ngpu_jax/pretrained/.
"""

from absl import flags

from ngpu_jax import console, loading
from ngpu_jax.tools import common


def define_flags():
  flags.DEFINE_string("workdir", None, "Training run to export.")
  flags.DEFINE_string("out", None, "Model directory to create (must not exist).")
  flags.mark_flags_as_required(["workdir", "out"])


def main(argv):
  del argv
  f = flags.FLAGS
  console.quiet_absl_logging()
  try:
    info = loading.export(f.workdir, f.out)
  except (ValueError, FileNotFoundError, FileExistsError) as e:
    console.fail(str(e))
  print(
    f"exported step {info['step']} of {f.workdir} to {f.out}: {info['params']} "
    f"parameters, {info['relax_copies']} relaxation copy(ies)"
  )


if __name__ == "__main__":
  common.run(main, define_flags)
