"""Answering problems written as text with a model: parse every line, batch by width, decode."""

from collections.abc import Sequence

import jax
import numpy as np

from ngpu_jax import data, parallel, tasks


class PredictError(ValueError):
  """A problem with the request (bad line, wrong task, too long): exit 2 with this message."""


def parse_lines(task: tasks.Task, lines: Sequence[str], max_length: int) -> list[list[int]]:
  """Every line parsed, or PredictError naming the first bad line (1-based) and why."""
  problems = []
  for i, line in enumerate(lines, 1):
    try:
      inp = task.parse(line)
    except tasks.ProblemError as e:
      raise PredictError(f"line {i}: {e}") from None
    if len(inp) > max_length:
      raise PredictError(
        f"line {i}: the problem needs {len(inp)} columns; the limit is "
        f"--max_length={max_length} (memory grows with the length)"
      )
    problems.append(inp)
  return problems


def width_for(length: int, buckets: Sequence[int]) -> int:
  """Training buckets where they fit, else multiples of 64, to bound recompilation."""
  if length <= max(buckets):
    return data.bucket_for(length, buckets)
  return -(-length // 64) * 64


def predict(
  predict_step,
  params,
  mesh,
  task: tasks.Task,
  problems: list[list[int]],
  buckets: Sequence[int],
  batch_size: int,
) -> list[str]:
  """Answers in input order; each problem runs for its own number of steps."""
  ndev = mesh.devices.size
  order = sorted(range(len(problems)), key=lambda i: len(problems[i]))
  answers = [""] * len(problems)
  for start in range(0, len(order), batch_size):
    chunk = order[start : start + batch_size]
    width = width_for(max(len(problems[i]) for i in chunk), buckets)
    rows = -(-len(chunk) // ndev) * ndev  # n = 0 rows fill the device multiple
    x_BxW = np.zeros((rows, width), np.int32)
    n_B = np.zeros((rows,), np.int32)
    for r, i in enumerate(chunk):
      x_BxW[r, : len(problems[i])] = problems[i]
      n_B[r] = len(problems[i])
    pred_BxW = jax.device_get(predict_step(params, *parallel.global_batch(mesh, x_BxW, n_B)))
    for r, i in enumerate(chunk):
      answers[i] = task.format_output(pred_BxW[r, : n_B[r]].tolist())
  return answers
