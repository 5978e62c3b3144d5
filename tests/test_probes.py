"""Hard-case probe families: the right structure, and answers from independent arithmetic."""

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from ngpu_jax import probes, tasks


def _operands(row, base, k):
  """Little-endian digit symbols -> ints, read independently of tasks.py."""
  digits = [s - 1 for s in row]
  a = int("".join(str(d) for d in reversed(digits[:k])), base)
  b = int("".join(str(d) for d in reversed(digits[k + 1:2 * k + 1])), base)
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
  for a, c in probes._carry_chain_at_random_position(rng, 2, 20, 50):  # pylint: disable=protected-access
    assert (a + c) >> 20 == 1  # the carry always leaves the top digit


@pytest.mark.parametrize("name", ["badd", "bmul", "add", "qmul"])
def test_long_probes(name):
  task = tasks.get_task(name)
  for family in probes.families(task):
    b = probes.probe_batch(task, family, np.random.default_rng(1), 4001, 2)
    assert b.x_BxW.shape == (2, 4001)
