"""Training and evaluation batches: curriculum length sampling, buckets, padding.

Every batch is a pure function of (seed, step): the generator is seeded with
both, so a resumed run, or any number of processes, sees the same global batch.
"""

from collections.abc import Sequence
from typing import NamedTuple

import numpy as np

from ngpu_jax import fastgen, tasks


class Batch(NamedTuple):
  x_BxW: np.ndarray  # input symbols, PAD past each example's length
  y_BxW: np.ndarray  # target symbols
  n_B: np.ndarray  # each example's true length = number of steps the model runs


def bucket_for(length: int, buckets: Sequence[int]) -> int:
  """The smallest bucket that holds `length`; one compiled shape per bucket."""
  for b in sorted(buckets):
    if b >= length:
      return b
  raise ValueError(f"length {length} exceeds the largest bucket {max(buckets)}")


def sample_length(
  rng: np.random.Generator,
  min_length: int,
  cur_length: int,
  max_length: int,
  p_recent: float = 0.6,
  p_full: float = 0.25,
) -> int:
  """The reference's long-biased curriculum draw.

  l ~ U{min, cur}; with prob p_recent l = max(l, U{min, cur}); with prob p_full
  l = max(l, U{min, max}) -- an occasional look at the full training length.
  """
  length = int(rng.integers(min_length, cur_length + 1))
  if rng.random() < p_recent:
    length = max(length, int(rng.integers(min_length, cur_length + 1)))
  if rng.random() < p_full:
    length = max(length, int(rng.integers(min_length, max_length + 1)))
  return length


def make_batch(
  task: tasks.Task,
  rng: np.random.Generator,
  batch_size: int,
  length: int,
  width: int,
  vectorized: bool = False,
) -> Batch:
  """batch_size problems of `length`, padded to `width` columns.

  vectorized: drawn by fastgen (same distribution, another random stream) instead of
  problem by problem.
  """
  if length > width:
    raise ValueError(f"length {length} does not fit width {width}")
  if vectorized:
    n_B = np.full((batch_size,), length, np.int32)
    return Batch(*fastgen.sample(task, rng, n_B, width), n_B)
  x_BxL, y_BxL = task.sample_batch(rng, batch_size, length)
  pad = ((0, 0), (0, width - length))
  return Batch(
    np.pad(x_BxL, pad).astype(np.int32),
    np.pad(y_BxL, pad).astype(np.int32),
    np.full((batch_size,), length, np.int32),
  )


def train_rng(seed: int, step: int) -> np.random.Generator:
  return np.random.default_rng([seed, step, 0])


def hard_mix_rng(seed: int, step: int) -> np.random.Generator:
  # Tag 2: mixing hard cases in leaves the random problems of the step unchanged.
  return np.random.default_rng([seed, step, 2])


def eval_rng(seed: int, length: int, draw: int | None = None) -> np.random.Generator:
  """Evaluation problems: a stream of their own (tag 1), so evaluation never consumes
  training data; each `draw` (e.g. the step of a periodic evaluation) a fresh set."""
  return np.random.default_rng([seed, length, 1] + ([] if draw is None else [draw]))


def train_batch(
  task: tasks.Task,
  seed: int,
  step: int,
  batch_size: int,
  min_length: int,
  cur_length: int,
  max_length: int,
  buckets: Sequence[int],
  p_recent: float = 0.6,
  p_full: float = 0.25,
  vectorized: bool = False,
) -> Batch:
  """The global training batch of `step`: one curriculum length for the whole batch."""
  rng = train_rng(seed, step)
  length = sample_length(rng, min_length, cur_length, max_length, p_recent, p_full)
  return make_batch(task, rng, batch_size, length, bucket_for(length, buckets), vectorized)


def all_bucket_lengths(buckets: Sequence[int], max_length: int) -> list[int]:
  """The DNGPU's bins: every bucket below max_length, and max_length itself."""
  return sorted({b for b in buckets if b < max_length} | {max_length})


def all_bucket_batches(
  task: tasks.Task,
  seed: int,
  step: int,
  batch_size: int,
  lengths: Sequence[int],
  spread_from: int | None = None,
  shorter_fraction: float = 0.0,
  vectorized: bool = False,
  length_mix: str = "uniform",
) -> tuple[Batch, ...]:
  """One batch of batch_size problems per bin length (no curriculum), for `step`.

  spread_from=None: every problem of a bin has the bin's length. spread_from=m:
  each problem's length is drawn from (previous bin, bin] (from m for the first
  bin) and padded to the bin, so training sees every length from m to the last bin.
  shorter_fraction (spread only): each problem of a bin after the first is, with this
  probability, drawn from [m, previous bin] instead (the DNGPU's ~5%).
  vectorized: the problems drawn by fastgen (the lengths are drawn as without it).
  length_mix (spread only): 'uniform' draws every length of a bin equally often; 'distinct'
  as the DNGPU's pools: each length in proportion to its distinct problems, at most
  POOL_PROBLEMS (lengths that only repeat shorter problems never), and a shorter problem
  from a previous bin chosen uniformly.
  """
  rng = train_rng(seed, step)
  if spread_from is None:
    return tuple(make_batch(task, rng, batch_size, n, n, vectorized) for n in lengths)
  if list(lengths) != sorted(lengths) or spread_from > lengths[0]:
    raise ValueError(f"spread bins need ascending lengths from {spread_from}, got {list(lengths)}")
  if length_mix == "distinct":
    return _pooled_bins(task, rng, batch_size, lengths, spread_from, shorter_fraction, vectorized)
  out, lo = [], spread_from
  for n in lengths:
    n_B = rng.integers(lo, n + 1, size=batch_size).astype(np.int32)
    if shorter_fraction > 0 and lo > spread_from:
      # Nothing is drawn at fraction 0, so the streams of runs without it stay as they were.
      short_B = rng.integers(spread_from, lo, size=batch_size).astype(np.int32)
      n_B = np.where(rng.random(batch_size) < shorter_fraction, short_B, n_B)
    out.append(Batch(*_spread_problems(task, rng, n_B, n, vectorized), n_B))
    lo = n + 1
  return tuple(out)


# The DNGPU fills its bins from a pool of at most this many different problems per length.
POOL_PROBLEMS = 10_000


def length_weights(task: tasks.Task, lo: int, hi: int) -> tuple[np.ndarray, np.ndarray]:
  """(lengths lo..hi, the share of a bin's problems at each): by the distinct problems of
  each length, at most POOL_PROBLEMS."""
  n_L = np.arange(lo, hi + 1)
  counts = [task.distinct_problems(int(n)) for n in n_L]
  if None in counts:
    raise ValueError(f"{task.name}: its problems are not counted by length (length_mix)")
  w_L = np.minimum(np.array(counts, np.float64), POOL_PROBLEMS)
  if not w_L.sum():
    raise ValueError(f"{task.name}: no problem has a length in [{lo}, {hi}]")
  return n_L, w_L / w_L.sum()


def _pooled_bins(task, rng, batch_size, lengths, spread_from, shorter_fraction, vectorized):
  """all_bucket_batches' bins with length_mix 'distinct'."""
  ranges = list(zip([spread_from] + [n + 1 for n in lengths[:-1]], lengths))
  mixes = [length_weights(task, lo, hi) for lo, hi in ranges]
  out = []
  for i, n in enumerate(lengths):
    n_B = rng.choice(mixes[i][0], size=batch_size, p=mixes[i][1]).astype(np.int32)
    if shorter_fraction > 0 and i > 0:
      short = rng.random(batch_size) < shorter_fraction
      for row, j in zip(np.flatnonzero(short), rng.integers(0, i, size=int(short.sum()))):
        n_B[row] = rng.choice(mixes[j][0], p=mixes[j][1])
    out.append(Batch(*_spread_problems(task, rng, n_B, n, vectorized), n_B))
  return tuple(out)


def _spread_problems(
  task: tasks.Task, rng: np.random.Generator, n_B: np.ndarray, width: int, vectorized: bool
) -> tuple[np.ndarray, np.ndarray]:
  """x_BxW, y_BxW: one problem of length n_B[i] per row, padded to width."""
  if vectorized:
    return fastgen.sample(task, rng, n_B, width)
  x_BxW, y_BxW = np.zeros((len(n_B), width), np.int32), np.zeros((len(n_B), width), np.int32)
  for i, length in enumerate(n_B.tolist()):
    x_BxW[i, :length], y_BxW[i, :length] = task.sample(rng, length)
  return x_BxW, y_BxW


def bin_groups(lengths: Sequence[int], n_groups: int) -> list[list[int]]:
  """Splits sorted bin lengths into n_groups runs, each to be padded to its longest bin.

  A run of bins padded to width W costs about (bins x W^2) of work in one scan
  of W steps instead of one scan per bin; the split minimises that sum. Fewer
  scans matter where each scan step has a fixed cost (small kernels on a GPU,
  per-op overhead on a CPU). n_groups = 0 (or >= the bins) keeps every bin alone.
  """
  lengths = sorted(lengths)
  k = len(lengths)
  if n_groups <= 0 or n_groups >= k:
    return [[n] for n in lengths]
  inf = float("inf")
  # best[g][i]: cost of the first i bins in g groups; cut[g][i]: where the last group starts
  best = [[inf] * (k + 1) for _ in range(n_groups + 1)]
  cut = [[0] * (k + 1) for _ in range(n_groups + 1)]
  best[0][0] = 0.0
  for g in range(1, n_groups + 1):
    for i in range(1, k + 1):
      for j in range(g - 1, i):
        cost = best[g - 1][j] + (i - j) * lengths[i - 1] ** 2
        if cost < best[g][i]:
          best[g][i], cut[g][i] = cost, j
  groups, i = [], k
  for g in range(n_groups, 0, -1):
    j = cut[g][i]
    groups.append(lengths[j:i])
    i = j
  return groups[::-1]


def pack(batches: Sequence[Batch], groups: Sequence[Sequence[int]]) -> tuple[Batch, ...]:
  """Concatenates the batches of each group (in order), padded to the group's widest."""
  out, k = [], 0
  for group in groups:
    part = batches[k : k + len(group)]
    k += len(group)
    width = max(b.x_BxW.shape[1] for b in part)
    pad = lambda a: np.pad(a, ((0, 0), (0, width - a.shape[1])))  # noqa: E731
    out.append(
      Batch(
        np.concatenate([pad(b.x_BxW) for b in part]),
        np.concatenate([pad(b.y_BxW) for b in part]),
        np.concatenate([b.n_B for b in part]),
      )
    )
  return tuple(out)
