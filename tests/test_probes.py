"""Hard-case probe families: the right structure, and answers from independent arithmetic."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ngpu_jax import configlib, data, probes, steps, tasks, train


def _operands(row, base, k):
  """Little-endian digit symbols -> ints, read independently of tasks.py."""
  digits = [s - 1 for s in row]
  a = int("".join(str(d) for d in reversed(digits[:k])), base)
  b = int("".join(str(d) for d in reversed(digits[k + 1 : 2 * k + 1])), base)
  return a, b


def _value(row, base):
  digits = [s - 1 for s in row if s != 0]
  return int("".join(str(d) for d in reversed(digits)), base) if digits else None


@settings(max_examples=60, deadline=None)
@given(st.sampled_from(tasks.ARITHMETIC), st.integers(3, 61), st.integers(0, 2**32 - 1))
def test_every_family_has_exact_answers(name, length, seed):
  task = tasks.get_task(name)
  base, k = probes.base_of(task), (length - 1) // 2
  for family in probes.families(task):
    b = probes.probe_batch(task, family, np.random.default_rng(seed), length, 3)
    assert b.x_BxW.shape == (3, length) and np.all(b.n_B == length)
    for x, y in zip(b.x_BxW.tolist(), b.y_BxW.tolist()):
      a, c = _operands(x, base, k)
      want = a * c if name.endswith("mul") else a + c
      assert _value(y, base) == want, (family, x, y)


def test_family_structure():
  badd, bmul = tasks.get_task("badd"), tasks.get_task("bmul")
  assert set(probes.families(badd)) == set(probes.ADD_FAMILIES)
  assert set(probes.families(bmul)) == set(probes.MUL_FAMILIES)
  assert probes.families(tasks.get_task("copy")) == {}
  rng = np.random.default_rng(0)
  b = probes.probe_batch(badd, "max_plus_one", rng, 41, 1)
  assert b.y_BxW[0, :21].tolist() == [1] * 20 + [2]  # 2^20 - 1 + 1 = 1 followed by 20 zeros
  b = probes.probe_batch(bmul, "one_digit_padded", rng, 41, 2)
  assert b.x_BxW[:, 1:20].max() == 1 and b.x_BxW[:, 21:41].max() == 2  # zeros but the lowest digit
  b = probes.probe_batch(bmul, "zero_run", rng, 41, 4)
  for i, row in enumerate(b.x_BxW.tolist()):
    hole = "".join(str(s) for s in (row[:20] if i % 2 == 0 else row[21:41]))
    assert "1" * 10 in hole  # symbol 1 = digit 0: half the operand zero in a row
  for a, c in probes._carry_chain_at_random_position(rng, 2, 20, 50):  # pylint: disable=protected-access
    assert (a + c) >> 20 == 1  # the carry always leaves the top digit


@pytest.mark.parametrize("name", ["badd", "bmul", "add", "qmul"])
def test_long_probes(name):
  task = tasks.get_task(name)
  for family in probes.families(task):
    b = probes.probe_batch(task, family, np.random.default_rng(1), 4001, 2)
    assert b.x_BxW.shape == (2, 4001)


@settings(max_examples=30, deadline=None)
@given(
  st.sampled_from(tasks.ARITHMETIC),
  st.integers(3, 30),
  st.integers(0, 9),
  st.integers(0, 2**32 - 1),
)
def test_mix_into_replaces_a_fraction_with_exact_hard_cases(name, length, extra, seed):
  task = tasks.get_task(name)
  batch = data.make_batch(task, np.random.default_rng(seed), 8, length, length + extra)
  mixed = probes.mix_into(task, batch, np.random.default_rng([seed, 2]), 0.25)
  again = probes.mix_into(task, batch, np.random.default_rng([seed, 2]), 0.25)
  assert all(np.array_equal(a, b) for a, b in zip(mixed, again))  # deterministic in its rng
  np.testing.assert_array_equal(mixed.x_BxW[2:], batch.x_BxW[2:])  # 2 of 8 replaced, rest kept
  np.testing.assert_array_equal(mixed.n_B, batch.n_B)
  base, k = probes.base_of(task), (length - 1) // 2
  for x, y in zip(mixed.x_BxW[:2].tolist(), mixed.y_BxW[:2].tolist()):
    assert not any(x[length:]) and not any(y[length:])  # padded to the batch's width
    a, c = _operands(x, base, k)
    assert _value(y, base) == (a * c if name.endswith("mul") else a + c)
  assert probes.mix_into(task, batch, np.random.default_rng(0), 0.0) is batch


def test_hard_mix_config_is_checked_and_reaches_the_training_batches():
  from conftest import tiny_config  # pylint: disable=g-import-not-at-top

  with pytest.raises(ValueError, match="hard_mix: the probe families exist"):
    configlib.validate(tiny_config("copy", hard_mix=0.5))
  with pytest.raises(ValueError, match=r"hard_mix: must be in \[0, 1\)"):
    configlib.validate(tiny_config("badd", hard_mix=1.0))
  task = tasks.get_task("badd")
  for step in range(3):
    (p,) = train.training_batches(tiny_config("badd"), task, step, 6)
    (m,) = train.training_batches(tiny_config("badd", hard_mix=0.5), task, step, 6)
    np.testing.assert_array_equal(m.x_BxW[2:], p.x_BxW[2:])  # batch 4: 2 replaced, the rest kept
    assert not np.array_equal(m.x_BxW[:2], p.x_BxW[:2])
  c = tiny_config(
    "bmul",
    hard_mix=0.25,
    **{
      "curriculum.mode": "all_buckets",
      "batch_size": 8,
      "buckets": (8, 12),
      "curriculum.max_length": 12,
      "model.dropout_by_length": False,
      "curriculum.bin_groups": 1,
    },
  )
  layout = steps.bin_layout(c)
  (packed,) = train.training_batches(c, tasks.get_task("bmul"), 0, 12, layout)
  assert packed.x_BxW.shape == (16, 12)
  assert sorted(packed.n_B.tolist()) == [8] * 8 + [12] * 8
  # Spread bins: each hard case takes the length of the problem it replaces.
  c.curriculum.bin_lengths = "spread"
  (packed,) = train.training_batches(c, tasks.get_task("bmul"), 0, 12, layout)
  no_mix = c.copy_and_resolve_references()
  no_mix.hard_mix = 0.0
  (plain,) = train.training_batches(no_mix, tasks.get_task("bmul"), 0, 12, layout)
  np.testing.assert_array_equal(packed.n_B, plain.n_B)
  assert len(set(packed.n_B.tolist())) > 2
  bmul = tasks.get_task("bmul")
  for x, y, n in zip(packed.x_BxW.tolist(), packed.y_BxW.tolist(), packed.n_B.tolist()):
    assert not any(x[n:]) and y[:n] == bmul.target(x[:n])
