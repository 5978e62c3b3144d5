"""Hard-case probe families: the right structure, and answers from independent arithmetic."""

import json

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ngpu_jax import configlib, data, probes, steps, tasks, train, workdir_files

from conftest import tiny_config


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


def _digits(v, base, k):
  """The k digits of v, lowest first."""
  return [(v // base**i) % base for i in range(k)]


@pytest.mark.parametrize("base", [2, 4, 10])
def test_carry_chain_in_random_carries_across_half_the_operand_or_more(base):
  """A carry made at one digit crosses k/2 to k-1 more, with both operands' digits in the
  chain (not all base-1 digits in one operand, as the other carry families have them)."""
  k, longest, top_in_a = 20, [], []
  for a, b in probes._carry_chain_in_random(np.random.default_rng(base), base, k, 200):  # pylint: disable=protected-access
    da, db = _digits(a, base, k), _digits(b, base, k)
    carry, run, best = 0, [], []
    for x, y in zip(da, db):
      run = run + [x] if carry and x + y == base - 1 else []
      carry = int(x + y + carry >= base)
      best = max(best, run, key=len)
    longest.append(len(best))
    top_in_a += [x == base - 1 for x in best]  # a's digit is base-1, so b's is 0
  assert min(longest) >= k // 2 and max(longest) <= k - 1 and np.mean(longest) < k - 2
  assert 0.5 / base < np.mean(top_in_a) < 1.5 / base  # the chain's digits split between a and b


def _sum_runs(a, b, base, k):
  """(length, carry into it) of the longest run of digit pairs summing to base-1."""
  da, db = _digits(a, base, k), _digits(b, base, k)
  carry, best, start, carry_at_start = 0, (0, 0), None, 0
  for i, (x, y) in enumerate(zip(da, db)):
    if x + y == base - 1:
      if start is None:
        start, carry_at_start = i, carry
      best = max(best, (i - start + 1, carry_at_start))
    else:
      start = None
    carry = int(x + y + carry >= base)
  return best


@pytest.mark.parametrize("base", [2, 4, 10])
def test_no_carry_chain_in_random_is_the_chain_with_no_carry_coming_in(base):
  """The same long mixed runs as carry_chain_in_random, but no carry enters them, so the
  sum's digits over the run are all base-1; carry_chain_in_random's runs all carry."""
  k, rng = 20, np.random.default_rng(base)
  without = [
    _sum_runs(a, b, base, k) for a, b in probes._no_carry_chain_in_random(rng, base, k, 200)
  ]  # pylint: disable=protected-access
  with_ = [_sum_runs(a, b, base, k) for a, b in probes._carry_chain_in_random(rng, base, k, 200)]  # pylint: disable=protected-access
  assert min(n for n, _ in without) >= k // 2 and min(n for n, _ in with_) >= k // 2
  # The longest run may be another, random one only when it is as long: count the designed.
  assert sum(c == 0 for n, c in without) >= 190 and sum(c == 1 for n, c in with_) >= 190
  for a, b in probes._no_carry_chain_in_random(rng, base, 1, 5):  # pylint: disable=protected-access
    assert a + b < base  # k = 1: one pair, no run, no carry


def test_hard_families_pick_what_hard_mix_draws():
  badd, bmul = tasks.get_task("badd"), tasks.get_task("bmul")
  assert probes.mix_families(badd) == sorted(set(probes.ADD_FAMILIES) - probes.NAMED_ONLY)
  assert "no_carry_chain_in_random" in probes.mix_families(badd, tuple(probes.ADD_FAMILIES))
  legacy = configlib.LEGACY_DEFAULTS["hard_families"]
  assert probes.mix_families(badd, legacy) == sorted(
    set(probes.ADD_FAMILIES) - {"carry_chain_in_random", "no_carry_chain_in_random"}
  )
  assert probes.mix_families(bmul, legacy) == sorted(probes.MUL_FAMILIES)
  batch = data.make_batch(badd, np.random.default_rng(0), 64, 41, 41)
  only = probes.mix_into(badd, batch, np.random.default_rng(1), 0.5, ("max_plus_one", "zero_run"))
  for x in only.x_BxW[:32].tolist():
    assert _operands(x, 2, 20) == (2**20 - 1, 1)
  with pytest.raises(ValueError, match="hard_families: no probe family 'max_plus_two'; known: "):
    configlib.validate(tiny_config("badd", hard_mix=0.1, hard_families=("max_plus_two",)))
  with pytest.raises(
    ValueError, match=r"hard_families: none of \['zero_run'\] is a family of 'badd'"
  ):
    configlib.validate(tiny_config("badd", hard_mix=0.1, hard_families=("zero_run",)))


def test_a_run_from_before_hard_families_resumes_with_the_families_it_drew_from(tmp_path):
  """Its config.json has no hard_families: it drew from every family there was, so it resumes
  with those named (in full or by its task's names) and is refused with the new family."""
  old = workdir_files.config_to_dict(tiny_config("badd", hard_mix=0.1))
  del old["hard_families"]
  (tmp_path / "config.json").write_text(json.dumps(old))
  four = ("alternating", "carry_chain_random_start", "max_plus_max", "max_plus_one")
  for ok in (four, configlib.LEGACY_DEFAULTS["hard_families"]):
    c = tiny_config("badd", hard_mix=0.1, hard_families=ok)
    workdir_files.check_or_write_config(str(tmp_path), c, write=False)
  with pytest.raises(workdir_files.ConfigMismatchError, match="carry_chain_in_random"):
    workdir_files.check_or_write_config(
      str(tmp_path), tiny_config("badd", hard_mix=0.1), write=False
    )
  old["hard_mix"] = 0.0  # no hard cases drawn: the list changes nothing
  (tmp_path / "config.json").write_text(json.dumps(old))
  workdir_files.check_or_write_config(str(tmp_path), tiny_config("badd"), write=False)


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
