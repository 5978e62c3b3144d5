"""Hard-case probes for the arithmetic tasks: the structured inputs that break Neural GPUs.

Random operands almost never contain a long carry chain, so a model can be
perfect on random numbers and still fail on 111...1 + 1, or on Price et al.'s
000...002 x 000...002. Each family draws operand pairs (Python ints, k digits
with leading zeros) for a given length; the answers come from the task's exact
arithmetic like every other problem.
"""

from collections.abc import Callable, Sequence

import numpy as np

from ngpu_jax import data, tasks

Pairs = list[tuple[int, int]]
Family = Callable[[np.random.Generator, int, int, int], Pairs]  # (rng, base, k, count)


def _number(digits, base):
  """The int whose little-endian digits these are."""
  return sum(int(d) * base**i for i, d in enumerate(digits))


def _rand(rng, base, k):
  return _number(rng.integers(0, base, k), base)


def _carry_chain_at_random_position(rng, base, k, count):
  """a has a run of (base-1) digits from position p up; b adds 1 at p: the carry runs to the top."""
  pairs = []
  for _ in range(count):
    p = int(rng.integers(0, k))
    low = _rand(rng, base, p)
    a = low + (base**k - base**p)  # digits p..k-1 are base-1, random below p
    pairs.append((a, base**p))
  return pairs


SPLITS = ("a", "b", "mixed")  # where the digits of a run of pairs summing to base-1 sit


def _plant_run(rng, base, da, db, p, span, carry_in: bool, split: str = "mixed"):
  """Digits p..p+span of da, db (in place): a pair at p that makes a carry (carry_in) or one
  that cannot pass one on (its digits sum to base-2 or less), and `span` pairs above it that
  each sum to base-1, their digits split at random between a and b ('mixed'), or all base-1
  in a ('a') or in b ('b') with zeros in the other."""
  if carry_in:
    da[p] = rng.integers(1, base)
    db[p] = rng.integers(base - da[p], base)  # da[p] + db[p] >= base: a carry out of p
  else:
    da[p] = rng.integers(0, base - 1)
    db[p] = rng.integers(0, base - 1 - da[p])  # da[p] + db[p] <= base - 2: none out of p
  top = {"a": base - 1, "b": 0}.get(split)
  da[p + 1 : p + span + 1] = rng.integers(0, base, span) if top is None else top
  db[p + 1 : p + span + 1] = base - 1 - da[p + 1 : p + span + 1]


def _chain_in_random(rng, base, k, count, carry_in: bool):
  """Random operands around one run of k/2 to k-1 digit pairs that each sum to base-1, above a
  pair that makes a carry (carry_in) or one that cannot pass one on."""
  pairs = []
  for _ in range(count):
    da, db = (rng.integers(0, base, k) for _ in range(2))
    span = int(rng.integers(max(1, k // 2), k)) if k > 1 else 0
    p = int(rng.integers(0, k - span))
    _plant_run(rng, base, da, db, p, span, carry_in)
    pairs.append((_number(da, base), _number(db, base)))
  return pairs


def planted_runs(rng, base: int, k: int, span: int, carry_in: bool, count: int) -> Pairs:
  """Random k-digit operands holding one run of exactly `span` pairs summing to base-1 (1 <=
  span < k), at a random place, above a pair that makes a carry (carry_in) or cannot pass one;
  the pair above the run, if any, does not sum to base-1. The rest is random, so its own runs
  are as short as random numbers make them (about log2 of k)."""
  if not 1 <= span < k:
    raise ValueError(f"a run of {span} pairs needs 1 <= run < {k}, the operands' digits")
  pairs = []
  for _ in range(count):
    da, db = (rng.integers(0, base, k) for _ in range(2))
    p = int(rng.integers(0, k - span))
    _plant_run(rng, base, da, db, p, span, carry_in)
    top = p + span + 1
    if top < k and da[top] + db[top] == base - 1:
      db[top] = (db[top] + 1) % base  # the sum becomes base or a (< base-1 as db was base-1)
    pairs.append((_number(da, base), _number(db, base)))
  return pairs


def whole_runs(rng, base: int, k: int, split: str, carry_in: bool, count: int) -> Pairs:
  """k-digit operands whose pairs sum to base-1 from digit 1 to the top, split as `split` says
  (SPLITS), above a lowest pair that makes a carry (carry_in) or cannot pass one. With a
  carry every digit of the sum above the lowest is decided by that one pair, k - 1 digits
  down: the longest carry a k-digit sum can ask for."""
  if split not in SPLITS:
    raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
  if k < 2:
    raise ValueError(f"a run above the lowest digit needs operands of 2 or more digits, got {k}")
  pairs = []
  for _ in range(count):
    da, db = np.zeros(k, np.int64), np.zeros(k, np.int64)
    _plant_run(rng, base, da, db, 0, k - 1, carry_in, split)
    pairs.append((_number(da, base), _number(db, base)))
  return pairs


def _carry_chain_in_random(rng, base, k, count):
  """Random operands around one long carry chain: a carry made at p (digits summing to base or
  more) crosses the next k/2 to k-1 digits, each pair summing to base-1 with the digits split
  at random between a and b, and stops somewhere inside the number.

  Random operands make such a chain about once per 2^11 positions in base 2, so 20-bit training
  problems almost never hold one, and a model exact on them carries wrongly across 10 or more
  mixed digits of a 200-bit sum, where the other carry families (all base-1 digits in one
  operand) are right.
  """
  return _chain_in_random(rng, base, k, count, carry_in=True)


def _no_carry_chain_in_random(rng, base, k, count):
  """carry_chain_in_random with no carry entering the run: the same k/2 to k-1 pairs summing
  to base-1 above a pair that sums to base-2 or less, so the run's digits of the sum are all
  base-1.

  Random operands hold runs with and without a carry coming in equally often; a model trained
  on the carrying ones alone learns that a long run carries, and the wrong digits of its
  200-bit sums sit at the top of runs that no carry enters.
  """
  return _chain_in_random(rng, base, k, count, carry_in=False)


def _alternating(rng, base, k, count):
  """a = 1010...1, b = its complement pattern 0101...0, and the same pattern twice."""
  a = sum((i % 2) * base**i for i in range(k))
  b = sum(((i + 1) % 2) * base**i for i in range(k))
  return [(a, b) if i % 2 == 0 else (a, a) for i in range(count)]


def _one_digit(rng, base, k, count):
  """All zeros but the lowest digit, zero-padded to full length (Price's 000...002 x 000...002)."""
  return [(int(rng.integers(1, base)), int(rng.integers(1, base))) for _ in range(count)]


def _powers(rng, base, k, count):
  return [(base ** int(rng.integers(0, k)), base ** int(rng.integers(0, k))) for _ in range(count)]


def _all_max(rng, base, k, count):
  """(base^k - 1) with itself: every digit carries (addition) / maximal partial sums (product)."""
  return [(base**k - 1, base**k - 1)] * count


def _max_plus_one(rng, base, k, count):
  """(base^k - 1) + 1: the carry crosses every digit."""
  return [(base**k - 1, 1)] * count


def _max_times_random(rng, base, k, count):
  """(base^k - 1) x random: partial sums whose carries travel far."""
  return [(base**k - 1, _rand(rng, base, k)) for _ in range(count)]


def _zero_run(rng, base, k, count):
  """Random operands, one of them (a, then b, alternately) zero over half its digits in a row.

  Random k-digit operands hold zero runs of about log_base(k) digits, so training up to
  20 digits never shows a run longer than 20; a model can multiply random 200-digit
  numbers exactly and still answer 0 once a run outgrows the training range.
  """
  pairs, run = [], k // 2
  for i in range(count):
    start = int(rng.integers(0, k - run + 1))
    hole = _rand(rng, base, start) + _rand(rng, base, k - start - run) * base ** (start + run)
    other = _rand(rng, base, k)
    pairs.append((hole, other) if i % 2 == 0 else (other, hole))
  return pairs


ADD_FAMILIES: dict[str, Family] = {
  "max_plus_one": _max_plus_one,
  "max_plus_max": _all_max,
  "alternating": _alternating,
  "carry_chain_random_start": _carry_chain_at_random_position,
  "carry_chain_in_random": _carry_chain_in_random,
  "no_carry_chain_in_random": _no_carry_chain_in_random,
}
# Drawn by hard_mix only when hard_families names them: hard_families=() keeps meaning the
# families it meant for the runs that recorded it.
NAMED_ONLY = frozenset({"no_carry_chain_in_random"})
MUL_FAMILIES: dict[str, Family] = {
  "one_digit_padded": _one_digit,
  "powers_of_base": _powers,
  "max_times_max": _all_max,
  "max_times_random": _max_times_random,
  "zero_run": _zero_run,
}


def families(task: tasks.Task) -> dict[str, Family]:
  """The probe families of an arithmetic task ({} for the others)."""
  if task.name not in tasks.ARITHMETIC:
    return {}
  return MUL_FAMILIES if task.name.endswith("mul") else ADD_FAMILIES


def mix_families(task: tasks.Task, names: Sequence[str] = ()) -> list[str]:
  """The task's families among names (for (): all but NAMED_ONLY), in the order hard_mix
  draws by."""
  own = families(task)
  return sorted(n for n in (names or [n for n in own if n not in NAMED_ONLY]) if n in own)


def base_of(task: tasks.Task) -> int:
  return task.n_classes - 1  # classes are blank + the base's digits


def problem_text(a: int, b: int, base: int, k: int, op: str) -> str:
  """Both operands written with exactly k digits (leading zeros kept), as a person would."""
  return f"{np.base_repr(a, base).zfill(k)}{op}{np.base_repr(b, base).zfill(k)}"


def probe_batch(
  task: tasks.Task, family: str, rng: np.random.Generator, length: int, count: int
) -> data.Batch:
  """count problems of one family at `length` (k = (length - 1) // 2 digits per operand)."""
  base, k = base_of(task), (length - 1) // 2
  return pairs_batch(task, families(task)[family](rng, base, k, count), length)


def pairs_batch(task: tasks.Task, pairs: Pairs, length: int) -> data.Batch:
  """The problems 'a op b' of these operand pairs, each operand (length - 1) // 2 digits."""
  base, k = base_of(task), (length - 1) // 2
  op = "*" if task.name.endswith("mul") else "+"
  x_BxW = np.zeros((len(pairs), length), np.int32)
  y_BxW = np.zeros((len(pairs), length), np.int32)
  for i, (a, b) in enumerate(pairs):
    inp = task.parse(problem_text(a, b, base, k, op))
    inp += [tasks.PAD] * (length - len(inp))
    x_BxW[i], y_BxW[i] = inp, task.target(inp)
  return data.Batch(x_BxW, y_BxW, np.full((len(pairs),), length, np.int32))


def mix_into(
  task: tasks.Task,
  batch: data.Batch,
  rng: np.random.Generator,
  fraction: float,
  names: Sequence[str] = (),
) -> data.Batch:
  """The batch with its first round(fraction * B) problems replaced by hard cases.

  Each replacement is one problem of a family drawn uniformly, at the length of the
  problem it replaces, padded to the batch's width. names: the families to draw from (those
  of another task are skipped, so one list serves a config used for several tasks); () = all.
  """
  count = int(round(fraction * batch.x_BxW.shape[0]))
  if count == 0:
    return batch
  names = mix_families(task, names)
  x_BxW, y_BxW = batch.x_BxW.copy(), batch.y_BxW.copy()
  for i, f in enumerate(rng.integers(0, len(names), count)):
    length = int(batch.n_B[i])
    hard = probe_batch(task, names[int(f)], rng, length, 1)
    x_BxW[i], y_BxW[i] = tasks.PAD, tasks.PAD
    x_BxW[i, :length], y_BxW[i, :length] = hard.x_BxW[0], hard.y_BxW[0]
  return data.Batch(x_BxW, y_BxW, batch.n_B)
