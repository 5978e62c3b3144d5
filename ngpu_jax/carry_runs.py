"""An adding model's errors sorted by the longest run of digit pairs that pass a carry on.

A pair of digits summing to base-1 passes on whatever carry comes into it, so the sum's digits
over a run of such pairs are decided by the pair below the run. A model that looks only a few
digits down has to guess there, and random 200-bit sums hold runs of 10-17 that 20-bit training
sums almost never do. The table counts, per band of that longest run's length and per whether
a carry enters it, how many of the fresh problems the evaluation scores are wrong.
"""

import numpy as np

from ngpu_jax import probes, tasks

BANDS = ((0, 4), (5, 8), (9, 12), (13, 16), (17, None))  # run lengths, inclusive


def check_task(task: tasks.Task) -> int:
  """The task's base; a ValueError for a task that is not a sum."""
  if task.name not in tasks.ARITHMETIC or not task.name.endswith("add"):
    raise ValueError(f"carry runs are defined for sums (badd, qadd, add), not {task.name}")
  return probes.base_of(task)


def operand_digits(x_BxW: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
  """(a_BxK, b_BxK): the digits, lowest first, of full-length problems 'a + b' of K digits each."""
  k = (x_BxW.shape[1] - 1) // 2
  return x_BxW[:, :k] - 1, x_BxW[:, k + 1 : 2 * k + 1] - 1  # symbol = digit + 1


def longest_runs(a_BxK: np.ndarray, b_BxK: np.ndarray, base: int) -> tuple[np.ndarray, np.ndarray]:
  """(length_B, carry_in_B) of each problem's longest run of pairs summing to base-1 (the lowest
  of equally long ones): carry_in is 1 when the digits below the run make a carry into it."""
  s_BxK = a_BxK + b_BxK
  batch = len(s_BxK)
  carry, run, run_carry_in, best, best_carry_in = (np.zeros(batch, np.int64) for _ in range(5))
  for j in range(s_BxK.shape[1]):
    passes = s_BxK[:, j] == base - 1
    run_carry_in = np.where(passes & (run == 0), carry, run_carry_in)
    run = np.where(passes, run + 1, 0)
    longer = run > best
    best, best_carry_in = np.where(longer, run, best), np.where(longer, run_carry_in, best_carry_in)
    carry = (s_BxK[:, j] + carry >= base).astype(np.int64)
  return best, best_carry_in


def band_of(length_B: np.ndarray) -> np.ndarray:
  return np.searchsorted([lo for lo, _ in BANDS[1:]], length_B, side="right")


def run_errors(rows, base: int) -> np.ndarray:
  """counts[carry_in, band, (problems, wrong)] over the (x, pred, target) batches of
  evaluation.predictions()."""
  counts = np.zeros((2, len(BANDS), 2), np.int64)
  for x_BxW, pred_BxW, target_BxW in rows:
    run_B, carry_in_B = longest_runs(*operand_digits(x_BxW), base)
    wrong_B = (pred_BxW != target_BxW).any(1)
    np.add.at(counts, (carry_in_B, band_of(run_B), 0), 1)
    np.add.at(counts, (carry_in_B, band_of(run_B), 1), wrong_B.astype(np.int64))
  return counts


def format_table(tallies: dict[int, np.ndarray]) -> str:
  """One line per length and carry: wrong / problems in each band of the longest run's length."""
  heads = [f"{lo}-{hi}" if hi is not None else f"{lo}+" for lo, hi in BANDS]
  rows = [
    "wrong / problems by the longest run of digit pairs summing to base-1 (and whether a carry"
    " enters it)",
    f"{'length':>7}  {'carry in':>8}  " + "  ".join(f"{h:>9}" for h in heads),
  ]
  for length, counts in sorted(tallies.items()):
    for carry_in in (0, 1):
      cells = [f"{w}/{n}" if n else "-" for n, w in counts[carry_in]]
      rows.append(
        f"{length:>7}  {('yes' if carry_in else 'no'):>8}  " + "  ".join(f"{c:>9}" for c in cells)
      )
  return "\n".join(rows)
