"""Errors per length and per hard-case probe family, on fresh random problems."""

from collections.abc import Callable, Sequence

import jax
import numpy as np

from ngpu_jax import data, parallel, probes, tasks


def batch_size_for(requested: int, num_devices: int) -> int:
  """A batch size that splits evenly over the devices."""
  return max(num_devices, (requested // num_devices) * num_devices)


def score(
  eval_step,
  params,
  mesh,
  make: Callable[[int], data.Batch],
  examples: int,
  batch_size: int,
  stop_on_error: bool = False,
  answers: list | None = None,
) -> dict:
  """{seq_error, symbol_error, examples} over ALL output cells of `examples` problems.

  make(bs) returns the next batch of bs problems. Batches are padded to the
  device count; rows of length 0 count nothing (empty mask), so only
  `examples` problems enter the figures. stop_on_error: end after the first batch with a
  wrong answer (a check that wants no errors has its answer; `examples` says how many counted).
  answers: a list that gets the (x_BxW, pred_BxW, target_BxW) of each batch's counted
  problems (eval_step made with answers=True), for column_errors and wrong_problems.
  """
  seq = sym = total = seen = 0
  for b, take in _batches(make, examples, batch_size, mesh):
    b.n_B[take:] = 0
    m = jax.device_get(eval_step(params, *parallel.global_batch(mesh, *b)))
    if answers is not None:
      answers.append((b.x_BxW[:take], np.asarray(m["pred_BxW"])[:take], m["target_BxW"][:take]))
    seq += int(m["seq_wrong"])
    sym += int(m["sym_wrong"])
    total += int(m["sym_total"])
    seen += take
    if stop_on_error and seq:
      break
  return {"seq_error": seq / seen, "symbol_error": sym / max(total, 1), "examples": seen}


def generalization_front(results: dict[int, dict], tolerance: float = 0.0) -> int:
  """The longest evaluated length up to which every evaluated length is error-free (0: none);
  with a tolerance, up to which none has a larger sequence error than it."""
  front = 0
  for length in sorted(results):
    if results[length]["seq_error"] > tolerance:
      break
    front = length
  return front


def _batches(make: Callable[[int], data.Batch], examples: int, batch_size: int, mesh):
  """(batch, rows of it that count) until `examples` problems, each batch split evenly over
  the devices."""
  bs = batch_size_for(min(batch_size, examples), mesh.devices.size)
  seen = 0
  while seen < examples:
    take = min(bs, examples - seen)
    yield make(bs), take
    seen += take


def evaluate_lengths(
  eval_step,
  params,
  task: tasks.Task,
  mesh,
  lengths: Sequence[int],
  examples: int,
  batch_size: int,
  seed: int,
  draw: int | None = None,
  stop_on_error: bool = False,
  answers: dict[int, list] | None = None,
  extra_columns: int = 0,
) -> dict[int, dict]:
  """{length: score} on random problems from a stream of their own per (seed, length, draw).

  answers: a dict that gets, per length, the list of answer batches score() collects.
  extra_columns: pad each problem with this many blank columns (for
  steps.make_eval_step(held=True): the same problems, run that many steps longer)."""
  results = {}
  for n in lengths:
    kept = None
    if answers is not None:
      kept = answers[int(n)] = []
    make = _fresh(task, seed, n, draw, extra_columns)
    results[int(n)] = score(
      eval_step, params, mesh, make, examples, batch_size, stop_on_error, kept
    )
  return results


def _fresh(task: tasks.Task, seed: int, length: int, draw: int | None = None, extra_columns=0):
  """make(bs): the next bs random problems of this length, from its own stream, with
  extra_columns blank columns after each."""
  rng = data.eval_rng(seed, length, draw)
  return lambda bs: data.make_batch(task, rng, bs, length, length + extra_columns)


def column_errors(rows) -> np.ndarray:
  """Fraction of problems wrong in each column (0 = the least significant digit), over the
  (x, pred, target) answer batches of evaluate_lengths: where in the answer a model that
  fails past its training range goes wrong."""
  wrong_W, seen = 0, 0
  for _, pred_BxW, target_BxW in rows:
    wrong_W = wrong_W + (pred_BxW != target_BxW).sum(0)
    seen += len(pred_BxW)
  return wrong_W / seen


def format_column_table(profiles: dict[int, np.ndarray], bands: int = 10) -> str:
  """One line per length: the worst column's error in each of `bands` equal column bands."""
  rows = [
    "where the errors sit: per band of columns (0 = least significant), the largest"
    " fraction of problems wrong in one column"
  ]
  for length, wrong_W in sorted(profiles.items()):
    cells = []
    for part in np.array_split(np.arange(length), min(bands, length)):
      cells.append(f"{part[0]}-{part[-1]}:{wrong_W[part].max():.2f}")
    rows.append(f"{length:>7}  " + " ".join(cells))
  return "\n".join(rows)


def wrong_problems(rows) -> list[tuple[int, int, np.ndarray]]:
  """(index in the stream, the answer's last non-blank column, the wrong columns) of each
  wrong problem in the (x, pred, target) answer batches of evaluate_lengths. The band table
  says how often a region goes wrong; this says whether one problem's errors sit together (a
  carry that went astray), apart, or past the end of its answer."""
  wrong, i = [], 0
  for _, pred_BxW, target_BxW in rows:
    for pred_W, target_W in zip(pred_BxW, target_BxW):
      bad_C = np.flatnonzero(pred_W != target_W)
      if bad_C.size:
        filled = np.flatnonzero(target_W != tasks.PAD)
        wrong.append((i, int(filled[-1]) if filled.size else -1, bad_C))
      i += 1
  return wrong


def _spans(columns: np.ndarray) -> str:
  """Sorted column numbers as runs: [3, 4, 5, 9] -> '3-5, 9'."""
  breaks = np.flatnonzero(np.diff(columns) != 1)
  starts = np.concatenate([columns[:1], columns[breaks + 1]])
  ends = np.concatenate([columns[breaks], columns[-1:]])
  return ", ".join(str(a) if a == b else f"{a}-{b}" for a, b in zip(starts, ends))


def format_wrong_problems(listing: dict[int, list], limit: int = 10) -> str:
  """Per length, the first `limit` wrong problems of wrong_problems(), one line each."""
  return format_listing(
    "the wrong problems: their number in the evaluation's stream, the answer's last column"
    " (blank past it), the wrong columns",
    listing,
    lambda i, last, bad_C: f"#{i:<5} answer to column {last:<6} wrong: {_spans(bad_C)}",
    limit,
  )


def format_listing(heading: str, listing: dict[int, list], line, limit: int, what="wrong") -> str:
  """heading, then per length the count of its items and the first `limit` as line(*item)."""
  rows = [heading]
  for length, items in sorted(listing.items()):
    rows.append(f"{length:>7}  {len(items)} {what}" + (":" if items else ""))
    rows.extend(f"{'':>9}{line(*item)}" for item in items[:limit])
    if len(items) > limit:
      rows.append(f"{'':>9}(and {len(items) - limit} more)")
  return "\n".join(rows)


def evaluate_probes(
  eval_step,
  params,
  task: tasks.Task,
  mesh,
  lengths: Sequence[int],
  examples: int,
  batch_size: int,
  seed: int,
) -> dict[tuple[str, int], dict]:
  """{(family, length): score} for every hard-case probe family of the task."""
  results = {}
  for family in probes.families(task):
    for length in lengths:
      rng = data.eval_rng(seed, length)
      results[(family, int(length))] = score(
        eval_step,
        params,
        mesh,
        lambda bs, f=family, rng=rng, n=length: probes.probe_batch(task, f, rng, n, bs),
        examples,
        batch_size,
      )
  return results


def format_probe_table(results: dict[tuple[str, int], dict]) -> str:
  rows = [
    f"{'probe family':>26} {'length':>7} {'examples':>8} {'seq_error':>10} {'symbol_error':>12}"
  ]
  for (family, length), r in results.items():
    rows.append(
      f"{family:>26} {length:>7} {r['examples']:>8} {r['seq_error']:>10.4f} "
      f"{r['symbol_error']:>12.6f}"
    )
  return "\n".join(rows)


def format_table(results: dict[int, dict], task_name: str) -> str:
  rows = [
    f"{'length':>7} {'operand digits':>14} {'examples':>8} {'seq_error':>10} {'symbol_error':>12}"
  ]
  for length, r in sorted(results.items()):
    digits = (length - 1) // 2 if task_name in tasks.ARITHMETIC else "-"
    rows.append(
      f"{length:>7} {digits!s:>14} {r['examples']:>8} {r['seq_error']:>10.4f} "
      f"{r['symbol_error']:>12.6f}"
    )
  return "\n".join(rows)
