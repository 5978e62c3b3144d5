"""An adding model's errors sorted by the longest run of digit pairs that pass a carry on.

A pair of digits summing to base-1 passes on whatever carry comes into it, so the sum's digits
over a run of such pairs are decided by the pair below the run. A model that looks only a few
digits down has to guess there, and random 200-bit sums hold runs of 10-17 that 20-bit training
sums almost never do. The table counts, per band of that longest run's length and per whether
a carry enters it, how many of the fresh problems the evaluation scores are wrong. Per column,
the same bands sort every digit of the answers by the run directly below it: the chance that
one digit goes wrong after such a run, and, for each wrong problem, the run under each of its
wrong spans.

Random problems rarely hold a run longer than a dozen pairs, so the reach of a model's carries
is measured on planted runs too: random operands with one run of exactly r pairs, with and
without a carry entering it (run_sweep), per r the share of problems answered wrong, and on
runs as wide as the number (reach): the lowest wrong column says how many columns up the
model carries the verdict of the lowest pair.
"""

from collections.abc import Sequence

import numpy as np

from ngpu_jax import evaluation, probes, tasks

BANDS = ((0, 4), (5, 8), (9, 12), (13, 16), (17, None))  # run lengths, inclusive
COLUMN_HEADING = (
  "wrong / answer digits by the run of pairs summing to base-1 directly below the digit (and"
  " whether a carry enters it)"
)


def is_sum(task_name: str) -> bool:
  """Whether carry runs are defined for the task: the sums (badd, qadd, add)."""
  return task_name in tasks.ARITHMETIC and task_name.endswith("add")


def check_task(task: tasks.Task) -> int:
  """The task's base; a ValueError for a task that is not a sum."""
  if not is_sum(task.name):
    raise ValueError(f"carry runs are defined for sums (badd, qadd, add), not {task.name}")
  return probes.base_of(task)


def operand_digits(x_BxW: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
  """(a_BxK, b_BxK): the digits, lowest first, of full-length problems 'a + b' of K digits each."""
  k = (x_BxW.shape[1] - 1) // 2
  return x_BxW[:, :k] - 1, x_BxW[:, k + 1 : 2 * k + 1] - 1  # symbol = digit + 1


def runs_below(a_BxK: np.ndarray, b_BxK: np.ndarray, base: int) -> tuple[np.ndarray, np.ndarray]:
  """(run_BxC, carry_BxC) for each of the C = K + 1 columns of the sum: how many pairs directly
  below the column sum to base-1, and the carry into the column, which is the carry that
  entered that run: what a model has to look past to write the column's digit."""
  s_BxK = a_BxK + b_BxK
  batch, k = s_BxK.shape
  run_BxC, carry_BxC = np.zeros((batch, k + 1), np.int64), np.zeros((batch, k + 1), np.int64)
  run, carry = np.zeros(batch, np.int64), np.zeros(batch, np.int64)
  for j in range(k + 1):
    run_BxC[:, j], carry_BxC[:, j] = run, carry
    if j < k:
      run = np.where(s_BxK[:, j] == base - 1, run + 1, 0)
      carry = (s_BxK[:, j] + carry >= base).astype(np.int64)
  return run_BxC, carry_BxC


def longest_runs(a_BxK: np.ndarray, b_BxK: np.ndarray, base: int) -> tuple[np.ndarray, np.ndarray]:
  """(length_B, carry_in_B) of each problem's longest run of pairs summing to base-1 (the lowest
  of equally long ones): carry_in is 1 when the digits below the run make a carry into it."""
  run_BxC, carry_BxC = runs_below(a_BxK, b_BxK, base)
  # The run ending just below column c is passed by the carry into c unchanged, so the carry
  # into the column above the longest run is the carry that entered it.
  above_B = run_BxC.argmax(1)  # the first column above a longest run: the lowest such run
  best_B = run_BxC[np.arange(len(run_BxC)), above_B]
  return best_B, np.where(best_B > 0, carry_BxC[np.arange(len(run_BxC)), above_B], 0)


def column_run_errors(rows, base: int) -> np.ndarray:
  """counts[carry, band, (columns, wrong)] over the answer columns (the K + 1 digits of each
  sum) of evaluation.evaluate_lengths' answers, by the run below each column: per column, not
  per problem, so a band's rate is the chance that one digit goes wrong after such a run."""
  counts = np.zeros((2, len(BANDS), 2), np.int64)
  for x_BxW, pred_BxW, target_BxW in rows:
    run_BxC, carry_BxC = runs_below(*operand_digits(x_BxW), base)
    c = run_BxC.shape[1]
    wrong_BxC = pred_BxW[:, :c] != target_BxW[:, :c]
    np.add.at(counts, (carry_BxC, band_of(run_BxC), 0), 1)
    np.add.at(counts, (carry_BxC, band_of(run_BxC), 1), wrong_BxC.astype(np.int64))
  return counts


def span_runs(rows, base: int) -> list[tuple[int, list[tuple[int, int, int]]]]:
  """(index in the stream, [(first column, run below, carry in)] per span of wrong answer
  columns) of each problem wrong in its answer columns: where one carry went astray."""
  listing, i = [], 0
  for x_BxW, pred_BxW, target_BxW in rows:
    run_BxC, carry_BxC = runs_below(*operand_digits(x_BxW), base)
    c = run_BxC.shape[1]
    for b, wrong_C in enumerate(pred_BxW[:, :c] != target_BxW[:, :c]):
      cols = np.flatnonzero(wrong_C)
      if cols.size:
        starts = cols[np.concatenate([[True], np.diff(cols) != 1])]
        listing.append((i, [(int(s), int(run_BxC[b, s]), int(carry_BxC[b, s])) for s in starts]))
      i += 1
  return listing


def format_span_runs(listing: dict[int, list], limit: int = 10) -> str:
  """Per length, the first `limit` problems of span_runs(), one line each."""

  def line(i, spans):
    cells = [f"{s} ({r} below, {'carry' if c else 'no carry'})" for s, r, c in spans]
    return f"#{i:<5} " + "; ".join(cells)

  return evaluation.format_listing(
    "the wrong answer columns by the run below them: per span of wrong columns, its first"
    " column, the pairs summing to base-1 directly below it, and whether a carry enters them",
    listing,
    line,
    limit,
    "wrong in the answer",
  )


def band_of(length_B: np.ndarray) -> np.ndarray:
  return np.searchsorted([lo for lo, _ in BANDS[1:]], length_B, side="right")


def run_errors(rows, base: int) -> np.ndarray:
  """counts[carry_in, band, (problems, wrong)] over the (x, pred, target) batches of
  evaluation.evaluate_lengths' answers."""
  counts = np.zeros((2, len(BANDS), 2), np.int64)
  for x_BxW, pred_BxW, target_BxW in rows:
    run_B, carry_in_B = longest_runs(*operand_digits(x_BxW), base)
    wrong_B = (pred_BxW != target_BxW).any(1)
    np.add.at(counts, (carry_in_B, band_of(run_B), 0), 1)
    np.add.at(counts, (carry_in_B, band_of(run_B), 1), wrong_B.astype(np.int64))
  return counts


def format_table(
  tallies: dict[int, np.ndarray],
  heading: str = "wrong / problems by the longest run of digit pairs summing to base-1 (and"
  " whether a carry enters it)",
) -> str:
  """One line per length and carry: wrong / counted in each band of run length (run_errors'
  problems, or column_run_errors' columns with their own heading)."""
  heads = [f"{lo}-{hi}" if hi is not None else f"{lo}+" for lo, hi in BANDS]
  width = max([9, *(len(f"{w}/{n}") for t in tallies.values() for n, w in t.reshape(-1, 2))])
  rows = [heading, f"{'length':>7}  {'carry in':>8}  " + "  ".join(f"{h:>{width}}" for h in heads)]
  for length, counts in sorted(tallies.items()):
    for carry_in in (0, 1):
      cells = [f"{w}/{n}" if n else "-" for n, w in counts[carry_in]]
      rows.append(
        f"{length:>7}  {('yes' if carry_in else 'no'):>8}  "
        + "  ".join(f"{c:>{width}}" for c in cells)
      )
  return "\n".join(rows)


def planted_rng(seed: int, length: int, run: int, carry_in: bool) -> np.random.Generator:
  """The planted-run problems' own stream (tag 2: neither training nor the random evaluation)."""
  return np.random.default_rng([seed, length, 2, run, int(carry_in)])


def check_runs(runs: Sequence[int], lengths: Sequence[int]) -> None:
  """A ValueError naming the first run that does not fit below the top digit at every length."""
  for n in lengths:
    k = (n - 1) // 2
    for r in runs:
      if not 1 <= r < k:
        raise ValueError(f"a run of {r} pairs does not fit {k}-digit operands (length {n})")


def run_sweep(
  eval_step,
  params,
  task: tasks.Task,
  mesh,
  lengths: Sequence[int],
  runs: Sequence[int],
  examples: int,
  batch_size: int,
  seed: int,
) -> dict[tuple[int, int, int], dict]:
  """{(length, carry_in, run): score} on problems with one planted run of exactly `run` pairs."""
  base = check_task(task)
  check_runs(runs, lengths)
  results = {}
  for n in lengths:
    k = (n - 1) // 2
    for carry_in in (0, 1):
      for r in runs:
        rng = planted_rng(seed, n, r, bool(carry_in))

        def make(bs, rng=rng, n=n, r=r, carry_in=carry_in):
          return probes.pairs_batch(task, probes.planted_runs(rng, base, k, r, carry_in, bs), n)

        results[(int(n), carry_in, int(r))] = evaluation.score(
          eval_step, params, mesh, make, examples, batch_size
        )
  return results


def format_sweep_table(results: dict[tuple[int, int, int], dict]) -> str:
  """One line per length and carry: wrong / problems at each planted run length."""
  runs = sorted({r for _, _, r in results})
  rows = [
    "wrong / problems with one planted run of exactly r pairs summing to base-1 (and whether a"
    " carry enters it)",
    f"{'length':>7}  {'carry in':>8}  " + "  ".join(f"{'r=' + str(r):>7}" for r in runs),
  ]
  for n, carry_in in sorted({(n, c) for n, c, _ in results}):
    cells = []
    for r in runs:
      m = results[(n, carry_in, r)]
      cells.append(f"{round(m['seq_error'] * m['examples'])}/{m['examples']}")
    rows.append(
      f"{n:>7}  {('yes' if carry_in else 'no'):>8}  " + "  ".join(f"{c:>7}" for c in cells)
    )
  return "\n".join(rows)


def reach_rng(seed: int, length: int, split: str, carry_in: bool) -> np.random.Generator:
  """The whole-run problems' own stream (tag 3: apart from the planted runs and the rest)."""
  return np.random.default_rng([seed, length, 3, probes.SPLITS.index(split), int(carry_in)])


def first_wrong_columns(rows) -> np.ndarray:
  """Per problem of the (x, pred, target) answer batches, its lowest wrong column (-1: right)."""
  firsts = []
  for _, pred_BxW, target_BxW in rows:
    wrong_BxW = np.asarray(pred_BxW) != np.asarray(target_BxW)
    firsts.extend(np.where(wrong_BxW.any(1), wrong_BxW.argmax(1), -1).tolist())
  return np.asarray(firsts, np.int64)


def lowest_wrong(first_B: np.ndarray) -> tuple[int, int | None]:
  """(problems wrong, the lowest of their lowest wrong columns or None) of first_wrong_columns."""
  wrong_B = first_B[first_B >= 0]
  return int(wrong_B.size), (int(wrong_B.min()) if wrong_B.size else None)


def reach(
  eval_step,
  params,
  task: tasks.Task,
  mesh,
  lengths: Sequence[int],
  examples: int,
  batch_size: int,
  seed: int,
) -> dict[tuple[int, int, str], np.ndarray]:
  """{(length, carry_in, split): first_wrong_B} on problems whose pairs all sum to base-1 above
  the lowest (probes.whole_runs), scored by an eval step made with answers=True. The lowest
  wrong column is how far up the model carries that one pair's verdict: the reach of its
  carries in columns, on the number's whole width."""
  base = check_task(task)
  results = {}
  for n in lengths:
    k = (n - 1) // 2
    for carry_in in (0, 1):
      for split in probes.SPLITS:
        rng, rows = reach_rng(seed, n, split, bool(carry_in)), []

        def make(bs, rng=rng, k=k, n=n, split=split, carry_in=carry_in):
          return probes.pairs_batch(
            task, probes.whole_runs(rng, base, k, split, bool(carry_in), bs), n
          )

        evaluation.score(eval_step, params, mesh, make, examples, batch_size, answers=rows)
        results[(int(n), carry_in, split)] = first_wrong_columns(rows)
  return results


def format_reach_table(results: dict[tuple[int, int, str], np.ndarray]) -> str:
  """One line per length, carry and split: how many are wrong and their lowest wrong columns."""
  rows = [
    "the reach of the carries: problems whose digit pairs all sum to base-1 above the lowest,"
    " the run's digits all in a, all in b or mixed; per wrong problem its lowest wrong column",
    f"{'length':>7}  {'carry in':>8}  {'split':>5}  {'wrong':>7}  lowest wrong column: min  median",
  ]
  for (n, carry_in, split), first_B in sorted(
    results.items(), key=lambda kv: (kv[0][0], kv[0][1], probes.SPLITS.index(kv[0][2]))
  ):
    wrong, lowest = lowest_wrong(first_B)
    median = int(np.median(first_B[first_B >= 0])) if wrong else None
    cols = f"{lowest:>24}  {median:>6}" if wrong else f"{'-':>24}"
    rows.append(
      f"{n:>7}  {('yes' if carry_in else 'no'):>8}  {split:>5}  "
      f"{f'{wrong}/{first_B.size}':>7}  {cols}"
    )
  return "\n".join(rows)
