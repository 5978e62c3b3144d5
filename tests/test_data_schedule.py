"""Buckets, curriculum length sampling, batches, and the window schedule."""

import numpy as np
import pytest

from ngpu_jax import data, schedule, tasks

BUCKETS = (8, 12, 16, 20, 24, 28, 32, 36, 41, 48, 64)


def test_bucket_for():
  assert data.bucket_for(3, BUCKETS) == 8
  assert data.bucket_for(8, BUCKETS) == 8
  assert data.bucket_for(9, BUCKETS) == 12
  assert data.bucket_for(41, BUCKETS) == 41
  assert data.bucket_for(42, BUCKETS) == 48
  with pytest.raises(ValueError, match="exceeds the largest bucket 64"):
    data.bucket_for(65, BUCKETS)


def test_curriculum_lengths_stay_in_range_and_are_biased_long():
  rng = np.random.default_rng(0)
  draws = np.array([data.sample_length(rng, 3, 10, 41) for _ in range(20000)])
  assert draws.min() == 3 and draws.max() == 41
  # Above cur only through the p_full = 0.25 draw: P(l > 10) = 0.25 * 31/39.
  assert np.mean(draws > 10) == pytest.approx(0.25 * 31 / 39, abs=0.015)
  # Within [3, 10] the max-of-two draws favour long lengths.
  inside = draws[draws <= 10]
  assert np.mean(inside == 10) > np.mean(inside == 3) * 3
  # Without the biases the draw is uniform on {min..cur}.
  plain = np.array([data.sample_length(rng, 3, 10, 41, 0.0, 0.0) for _ in range(8000)])
  assert set(plain) == set(range(3, 11))
  assert np.mean(plain) == pytest.approx(6.5, abs=0.1)


def test_train_batch_is_a_function_of_seed_and_step():
  task = tasks.get_task("badd")
  a = data.train_batch(task, 0, 17, 8, 3, 12, 41, BUCKETS)
  b = data.train_batch(task, 0, 17, 8, 3, 12, 41, BUCKETS)
  c = data.train_batch(task, 0, 18, 8, 3, 12, 41, BUCKETS)
  for x, y in zip(a, b):
    np.testing.assert_array_equal(x, y)
  assert not all(np.array_equal(x, y) for x, y in zip(a, c) if x.shape == y.shape)
  width = a.x_BxW.shape[1]
  assert width in BUCKETS and np.all(a.n_B == a.n_B[0]) and a.n_B[0] <= width
  assert np.all(a.x_BxW[:, a.n_B[0] :] == 0) and np.all(a.y_BxW[:, a.n_B[0] :] == 0)
  for x, y in zip(a.x_BxW, a.y_BxW):  # targets are the task's exact answers
    assert task.target(x[: a.n_B[0]].tolist()) == y[: a.n_B[0]].tolist()


def _window(sched, err, loss=1.0, steps=10, **kw):
  for _ in range(steps):
    schedule.record(sched, int(err * 100), 100, loss)
  args = dict(
    max_length=8, threshold=0.15, pull_factor=1.2, pull_max=0.001, relax=True, lr_decay=0.5
  )
  return schedule.end_window(sched, **{**args, **kw})


def test_curriculum_advances_only_below_threshold_and_stops_at_max():
  s = schedule.Schedule(cur_length=6, pull=0.0005)
  d = _window(s, 0.5)
  assert not d.advanced and s.cur_length == 6 and d.seq_error == pytest.approx(0.5)
  assert s.last_seq_error == pytest.approx(0.5) and s.window_examples == 0
  assert _window(s, 0.10).advanced and s.cur_length == 7
  assert _window(s, 0.10).advanced and s.cur_length == 8
  assert not _window(s, 0.0).advanced and s.cur_length == 8


def test_pull_grows_to_its_max_then_windows_average():
  s = schedule.Schedule(cur_length=6, pull=0.0005)
  d = _window(s, 0.1)
  assert d.pull_raised and not d.average and s.pull == pytest.approx(0.0006)
  for _ in range(3):
    _window(s, 0.1)
  assert s.pull == pytest.approx(0.001)  # 0.0005 * 1.2^4 > 0.001: capped
  d = _window(s, 0.1)
  assert d.average and not d.pull_raised and s.averaged == 1
  assert not _window(s, 0.9).average  # only windows that meet the criterion
  assert not _window(s, 0.1, relax=False).average  # r = 1: nothing to average


def test_lr_decays_when_loss_is_worse_than_last_three_windows():
  s = schedule.Schedule(cur_length=6, pull=0.0005)
  assert not any(_window(s, 0.5, loss).decay_lr for loss in (1.0, 0.9, 0.8))
  assert not _window(s, 0.5, 0.95).decay_lr  # worse than 0.8 and 0.9 but not than 1.0
  assert s.lr_factor == 1.0
  assert _window(s, 0.5, 0.96).decay_lr  # worse than 0.9, 0.8, 0.95
  assert s.lr_factor == 0.5
  assert s.recent_losses == pytest.approx([0.8, 0.95, 0.96])


def test_schedule_json_round_trip():
  s = schedule.Schedule(cur_length=9, pull=0.01, recent_losses=[1.0, 0.5])
  schedule.record(s, 3, 32, 0.7)
  assert schedule.Schedule.from_json(s.to_json()) == s


def test_empty_window_decides_nothing():
  s = schedule.Schedule(cur_length=6, pull=0.0005, recent_losses=[1.0, 1.0, 1.0])
  d = schedule.end_window(
    s, max_length=8, threshold=0.15, pull_factor=1.2, pull_max=0.1, relax=True
  )
  assert not (d.advanced or d.pull_raised or d.average or d.decay_lr)
  assert s.cur_length == 6 and s.last_seq_error == 1.0 and s.recent_losses == [1.0, 1.0, 1.0]
