"""Training and evaluation batches: curriculum length sampling, buckets, padding.

Every batch is a pure function of (seed, step): the generator is seeded with
both, so a resumed run, or any number of processes, sees the same global batch.
"""

from typing import NamedTuple, Sequence

import numpy as np

from ngpu_jax import tasks


class Batch(NamedTuple):
  x_BxW: np.ndarray  # input symbols, PAD past each example's length
  y_BxW: np.ndarray  # target symbols
  n_B: np.ndarray    # each example's true length = number of steps the model runs


def bucket_for(length: int, buckets: Sequence[int]) -> int:
  """The smallest bucket that holds `length`; one compiled shape per bucket."""
  for b in sorted(buckets):
    if b >= length:
      return b
  raise ValueError(f"length {length} exceeds the largest bucket {max(buckets)}")


def sample_length(rng: np.random.Generator, min_length: int, cur_length: int,
                  max_length: int, p_recent: float = 0.6, p_full: float = 0.25) -> int:
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


def make_batch(task: tasks.Task, rng: np.random.Generator, batch_size: int, length: int,
               width: int) -> Batch:
  """batch_size problems of `length`, padded to `width` columns."""
  if length > width:
    raise ValueError(f"length {length} does not fit width {width}")
  x_BxL, y_BxL = task.sample_batch(rng, batch_size, length)
  pad = ((0, 0), (0, width - length))
  return Batch(np.pad(x_BxL, pad).astype(np.int32), np.pad(y_BxL, pad).astype(np.int32),
               np.full((batch_size,), length, np.int32))


def train_rng(seed: int, step: int) -> np.random.Generator:
  return np.random.default_rng([seed, step, 0])


def eval_rng(seed: int, length: int) -> np.random.Generator:
  # A stream of its own (tag 1), so evaluation never consumes training data.
  return np.random.default_rng([seed, length, 1])


def train_batch(task: tasks.Task, seed: int, step: int, batch_size: int, min_length: int,
                cur_length: int, max_length: int, buckets: Sequence[int],
                p_recent: float = 0.6, p_full: float = 0.25) -> Batch:
  """The global training batch of `step`: one curriculum length for the whole batch."""
  rng = train_rng(seed, step)
  length = sample_length(rng, min_length, cur_length, max_length, p_recent, p_full)
  return make_batch(task, rng, batch_size, length, bucket_for(length, buckets))


def all_bucket_lengths(buckets: Sequence[int], max_length: int) -> list[int]:
  """The DNGPU's bins: every bucket below max_length, and max_length itself."""
  return sorted({b for b in buckets if b < max_length} | {max_length})


def all_bucket_batches(task: tasks.Task, seed: int, step: int, batch_size: int,
                       lengths: Sequence[int]) -> tuple[Batch, ...]:
  """One batch of batch_size problems at each length (no curriculum), for `step`."""
  rng = train_rng(seed, step)
  return tuple(make_batch(task, rng, batch_size, n, n) for n in lengths)
