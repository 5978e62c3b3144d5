"""Writes a trained run, or the mean of several models, as a small model directory:

  python -m ngpu_jax.tools.export --workdir=runs/badd --out=ngpu_jax/pretrained/badd
  python -m ngpu_jax.tools.export --average=runs/a@54000,runs/a@57500,runs/b --out=models/mean
  python -m ngpu_jax.tools.export --ensemble=runs/a,runs/b,runs/c --out=models/vote

The directory holds config.json, params/ (orbax) and step.json; predict,
evaluate and visualize load it by path, or by name when it is under ngpu_jax/pretrained/.
--average takes model directories, workdirs (newest checkpoint) and WORKDIR@STEP, each
contributing its evaluation parameters (the moving average where the run keeps one); they
must be the same model (task, precision, model fields but the training-only ones).
--ensemble takes the same kinds of models and keeps each whole: the model it writes runs
every one of them and answers with the mean of their probabilities (model.ensemble).
"""

from absl import flags

from ngpu_jax import console, loading
from ngpu_jax.tools import common


def define_flags():
  flags.DEFINE_string("workdir", None, "Training run to export (its newest checkpoint).")
  flags.DEFINE_list("average", None, "Models whose parameters' mean to export (see above).")
  flags.DEFINE_list("ensemble", None, "Models to export as one that averages their answers.")
  flags.DEFINE_string("out", None, "Model directory to create (must not exist).")
  flags.mark_flags_as_required(["out"])
  flags.mark_flags_as_mutual_exclusive(["workdir", "average", "ensemble"], required=True)


def main(argv):
  del argv
  f = flags.FLAGS
  console.quiet_absl_logging()
  try:
    if f.average:
      info = loading.export_mean(f.average, f.out)
      what = f"the mean of {len(f.average)} models (newest step {info['step']})"
    elif f.ensemble:
      info = loading.export_ensemble(f.ensemble, f.out)
      what = f"an ensemble of {len(f.ensemble)} models (newest step {info['step']})"
    else:
      info = loading.export(f.workdir, f.out)
      what = f"step {info['step']} of {f.workdir}"
  except (ValueError, FileNotFoundError, FileExistsError) as e:
    console.fail(str(e))
  print(
    f"exported {what} to {f.out}: {info['params']} parameters, "
    f"{info['relax_copies']} relaxation copy(ies)"
  )


if __name__ == "__main__":
  common.run(main, define_flags)
