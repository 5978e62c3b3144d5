"""The vectorized training data (fastgen) against the exact generators, and batch prefetching."""

import threading

import numpy as np
import pytest

from ngpu_jax import configlib, data, fastgen, tasks, train, workdir_files

from conftest import tiny_config

BINS = (8, 12, 16, 20, 25, 28, 31, 36, 41)  # the DNGPU's


def _assert_rows_are_problems(task, x_BxW, y_BxW, n_B):
  """Each row: a problem of length n, its exact answer, PAD past n in both."""
  assert x_BxW.dtype == y_BxW.dtype == np.int32
  for x_W, y_W, n in zip(x_BxW.tolist(), y_BxW.tolist(), np.asarray(n_B).tolist()):
    assert not any(x_W[n:]) and not any(y_W[n:])
    assert task.target(x_W[:n]) == y_W[:n]
    assert task.target(x_W) == y_W  # the padding changes nothing


@pytest.mark.parametrize("name", sorted(tasks.TASKS))
def test_targets_are_the_exact_answers(name):
  task = tasks.get_task(name)
  assert fastgen.covers(task)
  rng = np.random.default_rng(list(name.encode()))
  for _ in range(25):
    width = int(rng.integers(task.min_length, 45))
    n_B = rng.integers(task.min_length, width + 1, size=12)  # widths above lengths: padding
    x_BxW, y_BxW = fastgen.sample(task, rng, n_B, width)
    assert x_BxW.shape == y_BxW.shape == (12, width)
    _assert_rows_are_problems(task, x_BxW, y_BxW, n_B)


class _Constant:
  """A generator stand-in whose every integer draw is its lowest or highest value."""

  def __init__(self, highest: bool):
    self.highest = highest

  def integers(self, low, high=None, size=None, endpoint=False):
    top = np.asarray(high) if endpoint else np.asarray(high) - 1
    value = top if self.highest else np.broadcast_to(np.asarray(low), top.shape)
    return np.broadcast_to(value, top.shape if size is None else size).astype(np.int64)


@pytest.mark.parametrize("highest", [True, False])
@pytest.mark.parametrize("name", sorted(tasks.TASKS))
def test_extreme_digits_carry_through_every_column(name, highest):
  # Highest: all-ones operands in base 2 (all (base-1) digits), n = 99...9: the longest carry
  # chains. Lowest: all zeros, whose answer is one '0' digit.
  task = tasks.get_task(name)
  n_B = np.arange(task.min_length, 44)
  x_BxW, y_BxW = fastgen.sample(task, _Constant(highest), n_B, 48)
  _assert_rows_are_problems(task, x_BxW, y_BxW, n_B)


@pytest.mark.parametrize("base", [2, 4, 10])
def test_digit_arithmetic_matches_python_ints(base):
  rng = np.random.default_rng(base)
  for k in (1, 2, 7, 20, 33):
    d_BxK = np.concatenate([rng.integers(0, base, size=(30, k)), np.full((1, k), base - 1)])
    e_BxK = np.concatenate([rng.integers(0, base, size=(30, k)), np.full((1, k), base - 1)])
    value = lambda d: sum(int(v) * base**j for j, v in enumerate(d))  # noqa: E731
    for d, e, s, p in zip(
      d_BxK,
      e_BxK,
      fastgen._sum(d_BxK, e_BxK, base),  # pylint: disable=protected-access
      fastgen._product(d_BxK, e_BxK, base),
    ):  # pylint: disable=protected-access
      assert value(s) == value(d) + value(e) and value(p) == value(d) * value(e)


@pytest.mark.parametrize("name", sorted(tasks.TASKS))
def test_problems_have_the_exact_generators_distribution(name):
  # Per column, how often each symbol appears, in inputs and in targets: the two generators
  # agree to sampling noise (2000 rows each: a frequency's std is at most 0.011).
  task, length, rows = tasks.get_task(name), 9, 2000
  x_ex, y_ex = task.sample_batch(np.random.default_rng(1), rows, length)
  x_fa, y_fa = fastgen.sample(task, np.random.default_rng(2), np.full(rows, length), length)
  np.testing.assert_array_equal(x_ex == tasks.PAD, x_fa == tasks.PAD)  # the same layout
  for col in range(length):  # every input symbol is common, so both draw the same ones
    np.testing.assert_array_equal(np.unique(x_ex[:, col]), np.unique(x_fa[:, col]))
  for ex, fa in ((x_ex, x_fa), (y_ex, y_fa)):
    for col in range(length):
      f_ex = np.bincount(ex[:, col], minlength=13) / rows
      f_fa = np.bincount(fa[:, col], minlength=13) / rows
      np.testing.assert_allclose(f_fa, f_ex, atol=0.06, err_msg=f"{name} column {col}")


def _old_train_batch(task, seed, step, batch_size, min_length, cur_length, max_length, buckets):
  """The exact generator's curriculum batch as built before fastgen existed."""
  rng = data.train_rng(seed, step)
  length = data.sample_length(rng, min_length, cur_length, max_length)
  width = data.bucket_for(length, buckets)
  x_BxL, y_BxL = task.sample_batch(rng, batch_size, length)
  pad = ((0, 0), (0, width - length))
  return np.pad(x_BxL, pad), np.pad(y_BxL, pad), np.full((batch_size,), length)


def _old_spread_bins(task, seed, step, batch_size, lengths, lo, shorter_fraction):
  """The exact generator's spread bins as built before fastgen existed."""
  rng, floor, out = data.train_rng(seed, step), lo, []
  for n in lengths:
    n_B = rng.integers(lo, n + 1, size=batch_size).astype(np.int32)
    if shorter_fraction > 0 and lo > floor:
      short_B = rng.integers(floor, lo, size=batch_size).astype(np.int32)
      n_B = np.where(rng.random(batch_size) < shorter_fraction, short_B, n_B)
    x_BxW, y_BxW = np.zeros((batch_size, n), np.int32), np.zeros((batch_size, n), np.int32)
    for i, length in enumerate(n_B.tolist()):
      x_BxW[i, :length], y_BxW[i, :length] = task.sample(rng, length)
    out.append((x_BxW, y_BxW, n_B))
    lo = n + 1
  return out


@pytest.mark.parametrize("name", ["badd", "bmul", "copy"])
def test_exact_mode_makes_the_batches_it_always_made(name):
  task = tasks.get_task(name)
  for step in range(3):
    old = _old_train_batch(task, 5, step, 8, 3, 12, 41, BINS)
    for new in (
      data.train_batch(task, 5, step, 8, 3, 12, 41, BINS),
      data.train_batch(task, 5, step, 8, 3, 12, 41, BINS, vectorized=False),
    ):
      for a, b in zip(old, new):
        np.testing.assert_array_equal(a, b)
    old_bins = _old_spread_bins(task, 5, step, 16, BINS, 3, 0.05)
    new_bins = data.all_bucket_batches(task, 5, step, 16, BINS, 3, 0.05)
    for old_bin, new_bin in zip(old_bins, new_bins, strict=True):
      for a, b in zip(old_bin, new_bin):
        np.testing.assert_array_equal(a, b)
        assert b.dtype == np.int32


def test_vectorized_spread_bins_keep_the_lengths_and_hold_exact_answers():
  task = tasks.get_task("badd")
  exact = data.all_bucket_batches(task, 0, 7, 32, BINS, 3, 0.3)
  fast = data.all_bucket_batches(task, 0, 7, 32, BINS, 3, 0.3, vectorized=True)
  # Each bin's lengths are drawn as without fastgen, before its problems: the first bin's
  # are the exact mode's, the later ones follow other streams.
  np.testing.assert_array_equal(exact[0].n_B, fast[0].n_B)
  for f, n, below in zip(fast, BINS, (2,) + BINS[:-1], strict=True):
    assert f.x_BxW.shape == (32, n) and f.n_B.dtype == np.int32
    assert np.all((f.n_B >= 3) & (f.n_B <= n))
    assert np.mean(f.n_B > below) > 0.4  # most from (previous bin, bin]
    _assert_rows_are_problems(task, f.x_BxW, f.y_BxW, f.n_B)
  assert any(int(f.n_B.min()) < lo for f, lo in zip(fast[1:], BINS))  # shorter ones occur
  for e in data.all_bucket_batches(task, 0, 7, 32, BINS, None, vectorized=True):
    assert np.all(e.n_B == e.x_BxW.shape[1])
    _assert_rows_are_problems(task, e.x_BxW, e.y_BxW, e.n_B)


@pytest.mark.parametrize("mode", ["paper", "all_buckets"])
def test_vectorized_batches_are_a_function_of_seed_and_step(mode):
  config = tiny_config(
    "bmul",
    **{"curriculum.mode": mode, "buckets": (8, 12), "curriculum.max_length": 12, "batch_size": 8},
  )
  assert config.data_generator == "vectorized"
  layout = [[8], [12]] if mode == "all_buckets" else None
  task = tasks.get_task("bmul")
  make = lambda step: train.training_batches(config, task, step, 12, layout)  # noqa: E731
  a, b, other = make(3), make(3), make(4)
  for p, q in zip(a, b, strict=True):
    for u, v in zip(p, q):
      np.testing.assert_array_equal(u, v)
  assert any(
    p.x_BxW.shape != q.x_BxW.shape or not np.array_equal(p.x_BxW, q.x_BxW) for p, q in zip(a, other)
  )
  for p in a:
    _assert_rows_are_problems(task, p.x_BxW, p.y_BxW, p.n_B)
  config.data_generator = "exact"
  exact = train.training_batches(config, task, 3, 12, layout)
  for p, q in zip(a, exact):
    np.testing.assert_array_equal(p.n_B, q.n_B)  # same lengths, other problems


def test_data_generator_is_checked_and_old_runs_keep_the_exact_one():
  config = tiny_config(data_generator="fast")
  with pytest.raises(ValueError, match="data_generator: must be exact or vectorized"):
    configlib.validate(config)
  saved = workdir_files.config_to_dict(configlib.base("badd"))
  del saved["data_generator"]
  assert workdir_files.with_defaults(saved)["data_generator"] == "exact"


def test_prefetcher_gives_each_step_its_own_batches():
  made = []

  def make(step, cur_length):
    made.append((step, cur_length))
    if step == 13:
      raise KeyError("bad step")
    return ("batch", step, cur_length)

  p = train._Prefetcher(make, depth=2)  # pylint: disable=protected-access
  asks = [(0, 6), (1, 6), (2, 7), (3, 7), (1, 7), (2, 7), (9, 7), (10, 8)]
  try:
    assert [p.get(*ask) for ask in asks] == [("batch", *ask) for ask in asks]
    with pytest.raises(KeyError, match="bad step"):
      p.get(13, 8)
    assert p.get(12, 8) == ("batch", 12, 8)  # a failure leaves the prefetcher usable
  finally:
    p.stop()
  assert not [t for t in threading.enumerate() if t.name == "ngpu-batches"]
  assert set(asks) <= set(made)
  assert train._Prefetcher(make, depth=0).get(5, 6) == ("batch", 5, 6)  # pylint: disable=protected-access


def _train_lines(workdir):
  return [
    {k: v for k, v in m.items() if k != "train_seconds"}
    for m in workdir_files.read_metrics(workdir)
    if m["kind"] == "train"
  ]


@pytest.mark.slow
def test_prefetching_trains_exactly_as_without_it(tmp_path, monkeypatch):
  # threshold 1: the curriculum advances (at a window end) while batches are made ahead.
  config = tiny_config(
    num_steps=15, **{"curriculum.threshold": 1.0, "final_eval.probe_examples": 0}
  )
  train.train_and_evaluate(config, str(tmp_path / "ahead"))
  monkeypatch.setattr(train, "PREFETCH_DEPTH", 0)
  train.train_and_evaluate(config, str(tmp_path / "inline"))
  ahead, inline = _train_lines(tmp_path / "ahead"), _train_lines(tmp_path / "inline")
  assert ahead == inline and len(ahead) == 3
  assert len({m["cur_length"] for m in ahead}) > 1
  assert not [t for t in threading.enumerate() if t.name == "ngpu-batches"]
