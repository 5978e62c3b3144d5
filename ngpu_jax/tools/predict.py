"""Answers problems with a trained model: text in on stdin, answers out on stdout.

  echo 1011+110 | python -m ngpu_jax.tools.predict --model=DIR_OR_NAME --task=badd

--model is a training workdir or the name of a shipped model under ngpu_jax/pretrained/.
Every line is parsed before anything runs: one malformed line (wrong symbols,
missing operator, empty) prints its line number and the reason to stderr and
exits with status 2, printing no answers.
"""

import sys

from absl import flags

from ngpu_jax import console, inference, loading, tasks
from ngpu_jax.tools import common


def define_flags():
  common.define_model_flags(20001, "memory grows with the length")
  common.define_cpu_devices("all cores")
  flags.DEFINE_integer("batch_size", 64, "Problems per forward pass.")


def main(argv):
  del argv
  f = flags.FLAGS
  common.start(64)
  try:
    workdir, config = common.model_config(f.model, f.task)
    task = tasks.get_task(config.task)
    problems = inference.parse_lines(task, sys.stdin.read().splitlines(), f.max_length)
    if f.batch_size < 1:
      raise ValueError("--batch_size must be positive")
    loaded = loading.load_run(workdir)
  except (ValueError, FileNotFoundError) as e:  # PredictError is a ValueError
    console.fail(str(e))
  for answer in inference.predict(
    loaded.predict_step, loaded.params, loaded.mesh, task, problems, config.buckets, f.batch_size
  ):
    print(answer)


if __name__ == "__main__":
  common.run(main, define_flags)
