"""Answers problems with a trained model: text in on stdin, answers out on stdout.

  echo 1011+110 | python -m ngpu_jax.predict --model=DIR_OR_NAME --task=badd

--model is a training workdir or the name of a shipped model under pretrained/.
Every line is parsed before anything runs: one malformed line (wrong symbols,
missing operator, empty) prints its line number and the reason to stderr and
exits with status 2, printing no answers.
"""

import os
import sys
from typing import Sequence

import jax
import numpy as np
from absl import app, flags

from ngpu_jax import data, parallel, report, runs, tasks

PRETRAINED_DIR = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                              "pretrained")


class PredictError(ValueError):
  """A problem with the request (bad line, wrong task, too long): exit 2 with this message."""


def resolve_model(model: str) -> str:
  """A workdir path as given, or pretrained/<name>."""
  if os.path.isdir(model):
    return model
  shipped = os.path.join(PRETRAINED_DIR, model)
  if os.path.isdir(shipped):
    return shipped
  raise PredictError(f"--model {model!r} is neither a run directory nor a shipped model "
                     f"under {PRETRAINED_DIR}")


def parse_lines(task: tasks.Task, lines: Sequence[str], max_length: int) -> list[list[int]]:
  """Every line parsed, or PredictError naming the first bad line (1-based) and why."""
  problems = []
  for i, line in enumerate(lines, 1):
    try:
      inp = task.parse(line)
    except tasks.ProblemError as e:
      raise PredictError(f"line {i}: {e}") from None
    if len(inp) > max_length:
      raise PredictError(f"line {i}: the problem needs {len(inp)} columns; the limit is "
                         f"--max_length={max_length} (memory grows with the length)")
    problems.append(inp)
  return problems


def width_for(length: int, buckets: Sequence[int]) -> int:
  """Training buckets where they fit, else multiples of 64, to bound recompilation."""
  if length <= max(buckets):
    return data.bucket_for(length, buckets)
  return -(-length // 64) * 64


def predict(predict_step, params, mesh, task: tasks.Task, problems: list[list[int]],
            buckets: Sequence[int], batch_size: int) -> list[str]:
  """Answers in input order; each problem runs for its own number of steps."""
  ndev = mesh.devices.size
  order = sorted(range(len(problems)), key=lambda i: len(problems[i]))
  answers = [""] * len(problems)
  for start in range(0, len(order), batch_size):
    chunk = order[start:start + batch_size]
    width = width_for(max(len(problems[i]) for i in chunk), buckets)
    rows = -(-len(chunk) // ndev) * ndev  # n = 0 rows fill the device multiple
    x_BxW = np.zeros((rows, width), np.int32)
    n_B = np.zeros((rows,), np.int32)
    for r, i in enumerate(chunk):
      x_BxW[r, :len(problems[i])] = problems[i]
      n_B[r] = len(problems[i])
    pred_BxW = jax.device_get(predict_step(params, *parallel.global_batch(mesh, x_BxW, n_B)))
    for r, i in enumerate(chunk):
      answers[i] = task.format_output(pred_BxW[r, :n_B[r]].tolist())
  return answers


def define_flags():
  flags.DEFINE_string("model", None, "Training workdir, or the name of a model in pretrained/.")
  flags.DEFINE_string("task", None, "Task of the problems; must be the model's task (default: it).")
  flags.DEFINE_integer("batch_size", 64, "Problems per forward pass.")
  flags.DEFINE_integer("max_length", 20001, "Longest problem accepted, in columns.")
  flags.DEFINE_integer("cpu_devices", -1, "CPU devices to split the host into (-1: all cores).")
  flags.mark_flag_as_required("model")


def main(argv):
  del argv
  f = flags.FLAGS
  report.quiet_absl_logging()
  parallel.setup_cpu_devices(f.cpu_devices, 64)
  try:
    workdir = resolve_model(f.model)
    config = runs.load_config(workdir)
    if f.task and f.task != config.task:
      raise PredictError(f"--task={f.task} but the model at {workdir} was trained on {config.task!r}")
    task = tasks.get_task(config.task)
    problems = parse_lines(task, sys.stdin.read().splitlines(), f.max_length)
    if f.batch_size < 1:
      raise PredictError("--batch_size must be positive")
    loaded = runs.load_run(workdir)
  except (PredictError, ValueError, FileNotFoundError) as e:
    report.fail(str(e))
  for answer in predict(loaded.predict_step, loaded.params, loaded.mesh, task, problems,
                        config.buckets, f.batch_size):
    print(answer)


if __name__ == "__main__":
  define_flags()
  app.run(main)
