"""Every shipped model still answers, exactly, problems at the size its claims.json states:
arithmetic (checked against Python ints: random operands and the longest carry chains) and
sequence tasks (checked against Python list operations: random rows and constant ones)."""

import json
import os
import random

import jax
import numpy as np
import pytest

from ngpu_jax import inference, loading, parallel

from conftest import run_module

SHIPPED = (
  sorted(
    d
    for d in os.listdir(loading.PRETRAINED_DIR)
    if os.path.isdir(os.path.join(loading.PRETRAINED_DIR, d))
  )
  if os.path.isdir(loading.PRETRAINED_DIR)
  else []
)
BASE = {"badd": 2, "bmul": 2, "qadd": 4, "qmul": 4, "add": 10, "mul": 10}


def _problems(task: str, bits: int, count: int, seed: int = 7, chains: bool = True):
  """Random operands with their top digit set, plus (with chains) the all-ones carry chains."""
  rng = random.Random(seed)
  base = BASE[task]
  op = "*" if task.endswith("mul") else "+"
  pairs = [
    (rng.randrange(base ** (bits - 1), base**bits), rng.randrange(base ** (bits - 1), base**bits))
    for _ in range(count)
  ] + ([(base**bits - 1, 1), (base**bits - 1, base**bits - 1)] if chains else [])
  text = [f"{np.base_repr(a, base)}{op}{np.base_repr(b, base)}" for a, b in pairs]
  answers = [np.base_repr(a * b if op == "*" else a + b, base) for a, b in pairs]
  return text, answers


SEQUENCE = {
  "copy": lambda d: d,
  "reverse": lambda d: d[::-1],
  "duplicate": lambda d: d + d,
  "sort": sorted,
}


def _sequence_problems(task: str, length: int, count: int, constant_length: int, seed: int = 7):
  """Random rows of digits 0-3 of the claimed length, plus an all-3s and an all-0s row of the
  length claimed for constant rows (long constant runs are where a Neural GPU breaks first)."""
  rng = random.Random(seed)
  n, c = (x // (2 if task == "duplicate" else 1) for x in (length, constant_length))
  rows = [[rng.randrange(4) for _ in range(n)] for _ in range(count)] + [[3] * c, [0] * c]
  return (
    ["".join(map(str, r)) for r in rows],
    [" ".join(map(str, SEQUENCE[task](r))) for r in rows],
  )


def test_there_are_shipped_models():
  assert SHIPPED, "pretrained/ holds no model"


@pytest.mark.slow
@pytest.mark.parametrize("name", SHIPPED)
def test_shipped_model_answers_long_problems_exactly(name):
  with open(os.path.join(loading.PRETRAINED_DIR, name, "config.json")) as f:
    task = json.load(f)["task"]
  with open(os.path.join(loading.PRETRAINED_DIR, name, "claims.json")) as f:
    claims = json.load(f)
  if task in SEQUENCE:
    problems, answers = _sequence_problems(
      task,
      claims["exact_length"],
      count=16,
      constant_length=claims.get("constant_rows_exact_length", claims["exact_length"]),
    )
  else:
    problems, answers = _problems(task, bits=claims["exact_bits"], count=16)
    if "random_exact_bits" in claims:
      # A model can be exact on random operands well past the longest carry chain it resolves;
      # that claim is checked on random operands alone.
      more, more_answers = _problems(task, bits=claims["random_exact_bits"], count=16, chains=False)
      problems, answers = problems + more, answers + more_answers
  proc = run_module("ngpu_jax.tools.predict", f"--model={name}", stdin="\n".join(problems) + "\n")
  assert proc.returncode == 0, proc.stderr[-3000:]
  assert proc.stdout == "".join(f"{a}\n" for a in answers)
  if task in SEQUENCE:
    return  # every column is a symbol of the answer, and the text shows each one
  # A number's text drops its leading zeros, so a '0' where the answer has a blank prints as
  # if right: the model's output symbols, every column of the problem, must be the task's
  # exact target row.
  loaded = loading.load_run(loading.resolve_model(name))
  inputs = [loaded.task.parse(p) for p in problems]
  devices = loaded.mesh.devices.size
  x_BxW = np.zeros(
    (
      -(-len(inputs) // devices) * devices,
      inference.width_for(max(map(len, inputs)), loaded.config.buckets),
    ),
    np.int32,
  )
  n_B = np.zeros(x_BxW.shape[0], np.int32)
  for r, inp in enumerate(inputs):
    x_BxW[r, : len(inp)], n_B[r] = inp, len(inp)
  pred_BxW = jax.device_get(
    loaded.predict_step(loaded.params, *parallel.global_batch(loaded.mesh, x_BxW, n_B))
  )
  for text, inp, row in zip(problems, inputs, pred_BxW[: len(inputs)], strict=True):
    assert row[: len(inp)].tolist() == loaded.task.target(inp), text
