"""Tasks: problems are well-formed, answers match an independent oracle, text round-trips."""

import sys

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ngpu_jax import tasks
from ngpu_jax.tasks import PAD, ProblemError

NAMES = sorted(tasks.TASKS)
ARITH = {
  "badd": (2, "+"),
  "qadd": (4, "+"),
  "add": (10, "+"),
  "bmul": (2, "*"),
  "qmul": (4, "*"),
  "mul": (10, "*"),
}
SETTINGS = settings(
  max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)


# --- An independent oracle: strings and Python ints / list ops only. ---------------------------


def _content(inp):
  inp = list(inp)
  while inp and inp[-1] == PAD:
    inp.pop()
  return inp


def _le_to_int(syms, base):
  return int("".join(str(s - 1) for s in reversed(syms)), base)


def _int_to_le(value, base):
  return [int(c, base) + 1 for c in reversed(np.base_repr(value, base))]


def _pairs(syms):
  return [(syms[i], syms[i + 1]) for i in range(0, len(syms), 2)]


def oracle(name, inp):
  """The expected answer (unpadded) for a sampled input."""
  x = _content(inp)
  if name in ARITH:
    base, op = ARITH[name]
    at = x.index(11 if op == "+" else 12)
    a, b = _le_to_int(x[:at], base), _le_to_int(x[at + 1 :], base)
    return _int_to_le(a + b if op == "+" else a * b, base)
  if name == "incr":
    return _int_to_le(_le_to_int(x, 10) + 1, 10)
  if name == "kvsort":
    return [s for kv in sorted(_pairs(x), key=lambda kv: kv[0]) for s in kv]
  if name == "rev2":
    return [s for kv in reversed(_pairs(x)) for s in kv]
  if name == "search":
    return [v for k, v in _pairs(x[:-1]) if k == x[-1]][-1:]
  return {
    "copy": lambda: x,
    "reverse": lambda: list(reversed(x)),
    "duplicate": lambda: x * 2,
    "sort": lambda: sorted(x),
    "left": lambda: [x[0]],
    "right": lambda: [x[-1]],
    "left-shift": lambda: x[1:] + [PAD],
    "right-shift": lambda: [PAD] + x[:-1],
  }[name]()


def expected_layout(name, length):
  """How many leading columns the sampled input fills, and which symbols may fill them."""
  if name in ARITH:
    return 2 * ((length - 1) // 2) + 1, set(range(1, ARITH[name][0] + 1)) | {11, 12}
  if name == "incr":
    return length - 1, set(range(1, 11))
  if name in ("kvsort", "rev2"):
    return 2 * (length // 2), set(range(1, 11))
  if name == "search":
    return 2 * ((length - 1) // 2) + 1, set(range(1, 11))
  if name == "duplicate":
    return length // 2, {1, 2, 3, 4}
  return length, {1, 2, 3, 4}


def padded(row, length):
  return list(row) + [PAD] * (length - len(row))


# --- Contract of every task ---------------------------------------------------------------------


@pytest.mark.parametrize("name", NAMES)
def test_sample_contract(name):
  task = tasks.get_task(name)
  assert task.name == name and task.min_length >= 1
  for length in sorted({task.min_length, task.min_length + 1, 8, 13, 40}):
    inp, tgt = task.sample(np.random.default_rng(length), length)
    assert len(inp) == len(tgt) == length
    assert all(isinstance(s, int) for s in inp + tgt)
    assert all(0 <= s < task.n_symbols for s in inp)
    assert all(0 <= s < task.n_classes for s in tgt)
    filled, alphabet = expected_layout(name, length)
    assert all(s in alphabet for s in inp[:filled]) and inp[filled:] == [PAD] * (length - filled)
    assert task.target(inp) == tgt
    assert task.sample(np.random.default_rng(length), length) == (inp, tgt)
  with pytest.raises(ValueError):
    task.sample(np.random.default_rng(0), task.min_length - 1)


@pytest.mark.parametrize("name", NAMES)
def test_sample_batch(name):
  task = tasks.get_task(name)
  x_BxL, y_BxL = task.sample_batch(np.random.default_rng(7), 5, 11)
  assert x_BxL.shape == y_BxL.shape == (5, 11)
  assert x_BxL.dtype == y_BxL.dtype == np.int32
  for x, y in zip(x_BxL.tolist(), y_BxL.tolist()):
    assert task.target(x) == y
  x2_BxL, y2_BxL = task.sample_batch(np.random.default_rng(7), 5, 11)
  np.testing.assert_array_equal(x_BxL, x2_BxL)
  np.testing.assert_array_equal(y_BxL, y2_BxL)
  assert len({tuple(r) for r in x_BxL.tolist()}) > 1  # rows are not all the same draw


@pytest.mark.parametrize("name", NAMES)
@SETTINGS
@given(seed=st.integers(0, 2**32 - 1), extra=st.integers(0, 60))
def test_target_matches_oracle(name, seed, extra):
  task = tasks.get_task(name)
  length = task.min_length + extra
  inp, tgt = task.sample(np.random.default_rng(seed), length)
  assert tgt == padded(oracle(name, inp), length)


@pytest.mark.parametrize("name", NAMES)
@SETTINGS
@given(seed=st.integers(0, 2**32 - 1), extra=st.integers(0, 30), more_pad=st.integers(0, 5))
def test_text_round_trip(name, seed, extra, more_pad):
  task = tasks.get_task(name)
  length = task.min_length + extra
  inp, tgt = task.sample(np.random.default_rng(seed), length)
  parsed = task.parse(task.format_input(inp))
  assert len(parsed) == task.problem_length(inp) <= length
  assert padded(parsed, length) == inp
  # The answer does not depend on how much padding follows the problem.
  assert task.target(parsed + [PAD] * more_pad) == padded(_content(tgt), len(parsed) + more_pad)
  assert isinstance(task.format_output(tgt), str)


# --- Text examples and errors -------------------------------------------------------------------


@pytest.mark.parametrize(
  "name,text,answer",
  [
    ("badd", "1011+110", "10001"),
    ("badd", " 0 + 0 ", "0"),
    ("bmul", "11*11", "1001"),
    ("bmul", "0*111", "0"),
    ("qadd", "33+1", "100"),
    ("qmul", "3*3", "21"),
    ("add", "999+1", "1000"),
    ("mul", "12*12", "144"),
    ("sort", "3 1 2", "1 2 3"),
    ("copy", "3 1 2", "3 1 2"),
    ("reverse", "3 1 2", "2 1 3"),
    ("duplicate", "3 1", "3 1 3 1"),
    ("left", "3 1 2", "3"),
    ("right", "3 1 2", "2"),
    ("left-shift", "3 1 2", "1 2"),
    ("right-shift", "3 1 2", "_ 3 1"),
    ("incr", "199", "200"),
    ("incr", "999", "1000"),
    ("kvsort", "2:5 0:7 2:6", "0:7 2:5 2:6"),
    ("rev2", "2:5 0:7 1:9", "1:9 0:7 2:5"),
    ("search", "0:5 1:6 0:7 ?0", "7"),
    ("search", "0:5 1:6 0:7 ?1", "6"),
  ],
)
def test_text_examples(name, text, answer):
  task = tasks.get_task(name)
  assert task.format_output(task.target(task.parse(text))) == answer


def test_parse_layout():
  assert tasks.get_task("badd").parse("1011+110") == [2, 2, 1, 2, 11, 1, 2, 2, 1]
  assert tasks.get_task("incr").parse("19") == [10, 2, PAD]
  assert tasks.get_task("duplicate").parse("0 3") == [1, 4, PAD, PAD]
  assert tasks.get_task("search").parse("0:5 ?0") == [1, 6, 1]


@pytest.mark.parametrize(
  "name,text,why",
  [
    ("badd", "", "empty"),
    ("badd", "   ", "empty"),
    ("badd", "1021+1", "digit '2'"),
    ("badd", "1011", "missing operator"),
    ("badd", "10*1", "wrong operator"),
    ("badd", "1+1+1", "too many operators"),
    ("badd", "+11", "missing left operand"),
    ("badd", "11+", "missing right operand"),
    ("badd", "1a+1", "bad character 'a'"),
    ("badd", "1 1+1", "space inside"),
    ("add", "12-3", "bad character '-'"),
    ("qmul", "4*1", "digit '4'"),
    ("sort", "3 5 1", "digit '5'"),
    ("sort", "3,1", "bad character ','"),
    ("incr", "1 9", "space inside"),
    ("kvsort", "2:5 0", "bad pair '0'"),
    ("kvsort", "5:5", "key"),
    ("kvsort", "1:2", "value"),
    ("search", "0:5 1:6", "missing query"),
    ("search", "?1", "at least one"),
    ("search", "0:5 ?3", "not among the keys"),
  ],
)
def test_parse_errors(name, text, why):
  with pytest.raises(ProblemError, match=why):
    tasks.get_task(name).parse(text)


@pytest.mark.parametrize("name", NAMES)
@SETTINGS
@given(text=st.one_of(st.text(), st.text(alphabet="0123456789+*:?_ x\t")))
def test_parse_fuzz(name, text):
  task = tasks.get_task(name)
  try:
    inp = task.parse(text)
  except ProblemError:
    return
  assert len(inp) == task.problem_length(inp) >= task.min_length
  assert all(isinstance(s, int) and 0 <= s < task.n_symbols for s in inp)
  out = task.target(inp)
  assert len(out) == len(inp) and all(0 <= s < task.n_classes for s in out)


@pytest.mark.parametrize("name", NAMES)
@SETTINGS
@given(row=st.lists(st.integers(-3, 20), max_size=12))
def test_target_and_format_on_arbitrary_rows(name, row):
  task = tasks.get_task(name)
  try:
    out = task.target(row)
  except ProblemError:
    pass
  else:
    assert len(out) == len(row)
  assert isinstance(task.format_output(row), str)  # never raises, whatever the model emits


def test_format_output_best_effort():
  badd = tasks.get_task("badd")
  assert badd.format_output([2, PAD, 2, PAD]) == "1_1"
  assert badd.format_output([1, 1, PAD]) == "0"
  assert badd.format_output([PAD, PAD]) == ""
  assert badd.format_output([5, 2]) == "1?"
  assert badd.format_output(np.array([2, 1, 2], np.int32)) == "101"
  assert tasks.get_task("kvsort").format_output([1, 6, 2]) == "0:5 1:_"


def test_target_rejects_malformed_rows():
  badd = tasks.get_task("badd")
  for row, why in [
    ([PAD, PAD], "empty"),
    ([2, PAD, 11, 2], "blank at column 1"),
    ([2, 2], "exactly one"),
    ([3, 11, 2], "not one of the digits"),
  ]:
    with pytest.raises(ProblemError, match=why):
      badd.target(row)
  with pytest.raises(ProblemError, match="columns"):
    tasks.get_task("incr").target([10, 10])  # 99 + 1 needs three columns
  with pytest.raises(ProblemError, match="columns"):
    tasks.get_task("duplicate").target([1, 2, 3])


# --- Long problems ------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["badd", "bmul", "mul"])
def test_long_problems(name):
  task, (base, op) = tasks.get_task(name), ARITH[name]
  x_BxL, y_BxL = task.sample_batch(np.random.default_rng(1), 64, 4001)
  for x, y in zip(x_BxL[:4].tolist(), y_BxL[:4].tolist()):
    a, b = _le_to_int(x[:2000], base), _le_to_int(x[2001:], base)
    assert x[2000] == (11 if op == "+" else 12)
    assert y == padded(_int_to_le(a + b if op == "+" else a * b, base), 4001)
  assert task.format_output(y_BxL[0]) == np.base_repr(int(task.format_output(y_BxL[0]), base), base)


def test_decimal_beyond_python_str_limit():
  # Python refuses str <-> int beyond ~4300 decimal digits by default; the tasks must not care.
  mul = tasks.get_task("mul")
  inp, tgt = mul.sample(np.random.default_rng(3), 10001)
  assert inp[5000] == 12
  limit = sys.get_int_max_str_digits()
  sys.set_int_max_str_digits(0)  # only the oracle lifts the limit
  try:
    a, b = _le_to_int(inp[:5000], 10), _le_to_int(inp[5001:], 10)
    assert tgt == padded(_int_to_le(a * b, 10), 10001)
  finally:
    sys.set_int_max_str_digits(limit)


# --- Registry -----------------------------------------------------------------------------------


def test_registry():
  assert set(NAMES) == set(ARITH) | {
    "copy",
    "reverse",
    "duplicate",
    "sort",
    "incr",
    "kvsort",
    "left",
    "right",
    "left-shift",
    "right-shift",
    "rev2",
    "search",
  }
  for name, task in tasks.TASKS.items():
    assert tasks.get_task(name) is task


def test_unknown_task():
  with pytest.raises(ValueError, match="unknown task 'nope'.*badd"):
    tasks.get_task("nope")
