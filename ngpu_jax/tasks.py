"""The Neural GPU's tasks: random problems, exact answers, and their text forms.

A problem of length L is a row of L input symbols and a row of L target symbols, both padded
with PAD. Symbols: PAD = 0 (blank; also a real output class), digit d -> d + 1 (so 1..10 for
0..9), '+' = 11, '*' = 12. Inside the model numbers are LITTLE-endian (least significant digit
in column 0); in text they are written most significant digit first, as a person writes them.

  task         input at length L                      target                   text example
  -----------  -------------------------------------  -----------------------  --------------------
  badd qadd    a op b, both k digits, then PAD;       a op b, as many digits   badd 101+11 -> 1000
  add          k = (L - 1) // 2, leading zeros         as it needs ('0' for 0)  add 999+1 -> 1000
  bmul qmul    allowed; base 2 / 4 / 10,              then PAD                 bmul 11*11 -> 1001
  mul          op '+' for *add, '*' for *mul
  copy         L symbols                              the same                 3 1 2 -> 3 1 2
  reverse      L symbols                              reversed                 3 1 2 -> 2 1 3
  duplicate    x = L // 2 symbols, PAD                x x, PAD                 3 1 -> 3 1 3 1
  sort         L symbols                              sorted ascending         3 1 2 -> 1 2 3
  left         L symbols                              the first, PAD           3 1 2 -> 3
  right        L symbols                              the last, PAD            3 1 2 -> 2
  left-shift   L symbols                              x[1:], PAD               3 1 2 -> 1 2
  right-shift  L symbols                              PAD, x[:-1]              3 1 2 -> _ 3 1
  incr         n (L - 1 decimal digits), PAD          n + 1, like arithmetic   199 -> 200
  kvsort       L // 2 pairs: key value key value ...  pairs stably by key      2:5 0:7 -> 0:7 2:5
  rev2         L // 2 pairs: key value key value ...  the pairs in reverse      2:5 0:7 -> 0:7 2:5
                                                      order, each kept (k v)
  search       (L - 1) // 2 pairs, then a query key   the value of the LAST    0:5 1:6 0:7 ?0 -> 7
                                                      pair with that key, PAD

Alphabets: copy .. right-shift use the digits 0-3 (symbols 1-4), a small alphabet as in the
original. kvsort, rev2 and search draw keys from the digits 0-4 (symbols 1-5) and values from
5-9 (symbols 6-10), so a key can never be mistaken for a value. incr is decimal. All symbol
tasks write symbols as digits separated by spaces (the spaces are optional except between pairs);
'_' in an output means a blank.

Vocabularies (n_symbols / n_classes): arithmetic 13 (shared, so one model can see several
arithmetic tasks) / base + 1; copy .. right-shift 5 / 5; incr, kvsort, rev2, search 11 / 11.
Digits are drawn uniformly, so long carry chains are rare (in incr especially); a search's
query is always a key that occurs.

The answer sits from column 0 whatever the task, and every cell past it must be blank: a
target row is fully determined by the input row, and `target` computes it with Python ints and
list operations only. Problems shorter than L (e.g. parsed from text) are padded with PAD; the
answer does not depend on how much padding follows the problem.
"""

import dataclasses
import operator
from collections.abc import Callable, Sequence
from typing import Protocol

import numpy as np

PAD = 0
PLUS, TIMES = 11, 12


def digit_symbol(d: int) -> int:
  """The symbol of digit d."""
  return d + 1


_OP_SYMBOL = {"+": PLUS, "*": TIMES}
_DIGITS = "0123456789"
_SPACES = " \t\r\n\v\f"


class ProblemError(ValueError):
  """A problem text (or symbol row) that cannot be read; the message says exactly why."""


# ---------------------------------------------------------------------------------------------
# Digits <-> Python ints. Python refuses decimal str <-> int conversions beyond ~4300 digits,
# so numbers go through int64 chunks of digits instead of through strings.


def _chunk_width(base: int) -> int:
  """The most digits of `base` whose value always fits an int64."""
  n = 1
  while base ** (n + 1) < 2**62:
    n += 1
  return n


def _digits_to_int(d_N: np.ndarray, base: int) -> int:
  """Little-endian digits -> int."""
  width = _chunk_width(base)
  d_N = np.concatenate([np.asarray(d_N, np.int64), np.zeros(-len(d_N) % width, np.int64)])
  chunks_C = d_N.reshape(-1, width) @ (base ** np.arange(width, dtype=np.int64))
  value = 0
  for chunk in reversed(chunks_C.tolist()):
    value = value * base**width + chunk
  return value


def _int_to_digits(value: int, base: int) -> np.ndarray:
  """int >= 0 -> little-endian digits, as many as needed (one for zero)."""
  width = _chunk_width(base)
  chunks = []
  while value:
    value, low = divmod(value, base**width)
    chunks.append(low)
  chunks_C = np.array(chunks or [0], np.int64)
  d_N = (chunks_C[:, None] // base ** np.arange(width, dtype=np.int64) % base).reshape(-1)
  return d_N[: max(1, len(np.trim_zeros(d_N, "b")))]


# ---------------------------------------------------------------------------------------------
# Reading symbol rows and text.


def _body(inp: Sequence[int]) -> np.ndarray:
  """The problem part of a symbol row: everything before its trailing run of PAD."""
  try:
    row_L = np.asarray(inp)
  except (TypeError, ValueError) as e:
    raise ProblemError(f"not a row of symbols: {e}") from None
  if row_L.ndim != 1 or (row_L.size and row_L.dtype.kind not in "iu"):
    raise ProblemError(f"not a row of integer symbols (shape {row_L.shape}, {row_L.dtype})")
  filled = np.flatnonzero(row_L != PAD)
  if filled.size == 0:
    raise ProblemError("empty problem: the row is all padding")
  body = row_L[: filled[-1] + 1].astype(np.int64)
  if filled.size != body.size:
    hole = int(np.flatnonzero(body == PAD)[0])
    raise ProblemError(f"blank at column {hole} inside the problem")
  return body


def _symbol_digits(syms: np.ndarray, lo: int, hi: int, what: str) -> np.ndarray:
  """Symbols that must be the digits lo..hi -> those digits."""
  d = syms - 1
  bad = np.flatnonzero((d < lo) | (d > hi))
  if bad.size:
    raise ProblemError(f"{what}: symbol {int(syms[bad[0]])} is not one of the digits {lo}-{hi}")
  return d


def _check_chars(text: str, allowed: str) -> str:
  """The text without surrounding whitespace, after rejecting empty text and foreign chars."""
  stripped = text.strip()
  if not stripped:
    raise ProblemError("empty problem")
  for i, c in enumerate(text):
    if c not in allowed and c not in _SPACES:
      raise ProblemError(f"bad character {c!r} at position {i}")
  return stripped


def _digit_text(text: str, lo: int, hi: int, what: str) -> list[int]:
  """A string of digits (already known to be ASCII digits) -> digits, all within lo..hi."""
  for c in text:
    if not lo <= int(c) <= hi:
      raise ProblemError(f"{what}: digit {c!r} is not one of {lo}-{hi}")
  return [int(c) for c in text]


def _trim(out: Sequence[int]) -> list:
  """Output symbols without their trailing PAD; anything odd is kept for display."""
  try:
    syms = list(out)
  except TypeError:
    return []
  while syms and _as_int(syms[-1]) == PAD:
    syms.pop()
  return syms


def _as_int(s) -> int | None:
  try:
    return operator.index(s)
  except TypeError:
    return None


def _out_char(s, n_classes: int) -> str:
  """One output symbol for display: its digit, '_' for a blank, '?' for a non-class."""
  s = _as_int(s)
  if s == PAD:
    return "_"
  if s is not None and 1 <= s < min(n_classes, 11):
    return str(s - 1)
  return "?"


# ---------------------------------------------------------------------------------------------
# Task kinds. Each knows how to draw an input, solve it, and read and write its text.


class _Kind(Protocol):
  def draw(self, rng: np.random.Generator, length: int) -> list[int]: ...
  def solve(self, inp: Sequence[int]) -> list[int]: ...
  def room(self, inp: Sequence[int]) -> int: ...
  def parse(self, text: str) -> list[int]: ...
  def format_input(self, inp: Sequence[int]) -> str: ...
  def format_output(self, out: Sequence[int], n_classes: int) -> str: ...


@dataclasses.dataclass(frozen=True)
class _Arithmetic:
  """a op b in `base`; both operands k digits, little-endian, separated by the op symbol."""

  base: int
  op: str  # '+' or '*'

  def draw(self, rng, length):
    k = (length - 1) // 2
    a, b = rng.integers(0, self.base, size=(2, k)) + 1
    return a.tolist() + [_OP_SYMBOL[self.op]] + b.tolist()

  def _operands(self, inp) -> tuple[np.ndarray, np.ndarray]:
    body = _body(inp)
    at = np.flatnonzero(body == _OP_SYMBOL[self.op])
    if at.size != 1:
      raise ProblemError(
        f"expected exactly one {self.op!r} symbol ({_OP_SYMBOL[self.op]}), found {at.size}"
      )
    a, b = body[: at[0]], body[at[0] + 1 :]
    if not a.size or not b.size:
      raise ProblemError(f"missing {'left' if not a.size else 'right'} operand")
    top = self.base - 1
    return (_symbol_digits(a, 0, top, "left operand"), _symbol_digits(b, 0, top, "right operand"))

  def solve(self, inp):
    a, b = (_digits_to_int(d, self.base) for d in self._operands(inp))
    return (_int_to_digits(a + b if self.op == "+" else a * b, self.base) + 1).tolist()

  def room(self, inp):
    a, b = self._operands(inp)
    return len(a) + 1 + len(b)

  def distinct(self, length: int) -> int:
    k, even = divmod(length - 1, 2)
    return 0 if even else self.base ** (2 * k)  # an even length holds the problems one shorter

  def parse(self, text):
    line = _check_chars(text, _DIGITS + "+*")
    ops = [c for c in line if c in "+*"]
    if not ops:
      raise ProblemError(f"missing operator {self.op!r}")
    if any(c != self.op for c in ops):
      raise ProblemError(
        f"wrong operator {next(c for c in ops if c != self.op)!r}: this task uses {self.op!r}"
      )
    if len(ops) > 1:
      raise ProblemError(f"too many operators: {len(ops)} {self.op!r}, expected one")
    left, right = (s.strip() for s in line.split(self.op))
    operands = []
    for side, s in (("left", left), ("right", right)):
      if not s:
        raise ProblemError(f"missing {side} operand")
      if any(c in _SPACES for c in s):
        raise ProblemError(f"space inside the {side} operand {s!r}")
      operands.append(_digit_text(s, 0, self.base - 1, f"{side} operand in base {self.base}"))
    # Both operands get the same width, as in sampled problems: pad with leading zeros.
    k = max(map(len, operands))
    a, b = ([0] * (k - len(d)) + d for d in operands)
    return [d + 1 for d in reversed(a)] + [_OP_SYMBOL[self.op]] + [d + 1 for d in reversed(b)]

  def format_input(self, inp):
    a, b = self._operands(inp)
    return "".join(map(str, a[::-1])) + self.op + "".join(map(str, b[::-1]))

  def format_output(self, out, n_classes):
    return _number_text(out, n_classes)


def _number_text(out, n_classes: int) -> str:
  """Little-endian digit symbols -> the number as a person writes it (no leading zeros)."""
  syms = _trim(out)
  if not syms:
    return ""
  text = "".join(_out_char(s, n_classes) for s in reversed(syms))
  return text.lstrip("0") or "0"


@dataclasses.dataclass(frozen=True)
class _Increment:
  """n + 1 for a decimal n of L - 1 digits (leading zeros allowed), leaving a column to carry."""

  def draw(self, rng, length):
    return (rng.integers(0, 10, size=length - 1) + 1).tolist()

  def _digits(self, inp):
    return _symbol_digits(_body(inp), 0, 9, "number")

  def solve(self, inp):
    return (_int_to_digits(_digits_to_int(self._digits(inp), 10) + 1, 10) + 1).tolist()

  def room(self, inp):
    return len(self._digits(inp)) + 1

  def parse(self, text):
    line = _check_chars(text, _DIGITS)
    if any(c in _SPACES for c in line):
      raise ProblemError(f"space inside the number {line!r}")
    return [d + 1 for d in reversed(_digit_text(line, 0, 9, "number"))] + [PAD]

  def format_input(self, inp):
    return "".join(map(str, self._digits(inp)[::-1]))

  def format_output(self, out, n_classes):
    return _number_text(out, n_classes)


@dataclasses.dataclass(frozen=True)
class _Sequence:
  """A row of symbols from the digits 0..alphabet-1, mapped to an answer by `fn`."""

  fn: Callable[[list[int]], list[int]]
  alphabet: int = 4
  copies: int = 1  # the answer needs `copies` times the input's columns (duplicate: 2)

  def draw(self, rng, length):
    return (rng.integers(0, self.alphabet, size=length // self.copies) + 1).tolist()

  def _symbols(self, inp) -> list[int]:
    body = _body(inp)
    _symbol_digits(body, 0, self.alphabet - 1, "symbol")
    return body.tolist()

  def solve(self, inp):
    return self.fn(self._symbols(inp))

  def room(self, inp):
    return len(self._symbols(inp)) * self.copies

  def parse(self, text):
    _check_chars(text, _DIGITS)
    digits = "".join(c for c in text if c not in _SPACES)
    syms = [d + 1 for d in _digit_text(digits, 0, self.alphabet - 1, "symbol")]
    return syms + [PAD] * (len(syms) * (self.copies - 1))

  def format_input(self, inp):
    return " ".join(str(s - 1) for s in self._symbols(inp))

  def format_output(self, out, n_classes):
    return " ".join(_out_char(s, n_classes) for s in _trim(out))


_KEYS, _VALUES = (0, 4), (5, 9)  # digit ranges


def _draw_pairs(rng, n: int) -> np.ndarray:
  """n random (key, value) pairs as symbols, pairs_Nx2."""
  return (
    np.stack(
      [rng.integers(*_KEYS, endpoint=True, size=n), rng.integers(*_VALUES, endpoint=True, size=n)],
      axis=1,
    )
    + 1
  )


def _read_pairs(body: np.ndarray) -> list[tuple[int, int]]:
  """Symbols key value key value ... -> (key digit, value digit) pairs."""
  if body.size % 2:
    raise ProblemError(f"{body.size} symbols do not make (key, value) pairs")
  keys = _symbol_digits(body[0::2], *_KEYS, "key")
  values = _symbol_digits(body[1::2], *_VALUES, "value")
  return list(zip(keys.tolist(), values.tolist()))


def _parse_pair(token: str) -> list[int]:
  """'k:v' -> [key symbol, value symbol]."""
  if len(token) != 3 or token[1] != ":" or token[0] not in _DIGITS or token[2] not in _DIGITS:
    raise ProblemError(f"bad pair {token!r}: write key:value, e.g. 0:5")
  key = _digit_text(token[0], *_KEYS, f"key of {token!r}")[0]
  value = _digit_text(token[2], *_VALUES, f"value of {token!r}")[0]
  return [key + 1, value + 1]


def _pair_text(pairs) -> str:
  return " ".join(f"{k}:{v}" for k, v in pairs)


@dataclasses.dataclass(frozen=True)
class _Pairs:
  """L // 2 (key, value) pairs laid out key value key value ...; `fn` maps pairs to pairs."""

  fn: Callable[[list[tuple[int, int]]], list[tuple[int, int]]]

  def draw(self, rng, length):
    return _draw_pairs(rng, length // 2).reshape(-1).tolist()

  def solve(self, inp):
    return [d + 1 for pair in self.fn(_read_pairs(_body(inp))) for d in pair]

  def room(self, inp):
    return 2 * len(_read_pairs(_body(inp)))

  def parse(self, text):
    tokens = _check_chars(text, _DIGITS + ":").split()
    return [s for token in tokens for s in _parse_pair(token)]

  def format_input(self, inp):
    return _pair_text(_read_pairs(_body(inp)))

  def format_output(self, out, n_classes):
    chars = [_out_char(s, n_classes) for s in _trim(out)]
    chars += ["_"] * (len(chars) % 2)
    return _pair_text(zip(chars[0::2], chars[1::2]))


@dataclasses.dataclass(frozen=True)
class _Search:
  """(L - 1) // 2 pairs, then one query key; the answer is the value the key was given last."""

  def draw(self, rng, length):
    pairs_Nx2 = _draw_pairs(rng, (length - 1) // 2)
    query = pairs_Nx2[rng.integers(len(pairs_Nx2)), 0]  # a key that is present
    return pairs_Nx2.reshape(-1).tolist() + [int(query)]

  def _problem(self, inp) -> tuple[list[tuple[int, int]], int]:
    body = _body(inp)
    if body.size < 3:
      raise ProblemError("a search needs at least one key:value pair and a query key")
    pairs = _read_pairs(body[:-1])
    query = int(_symbol_digits(body[-1:], *_KEYS, "query key")[0])
    if query not in dict(pairs):
      raise ProblemError(f"query key {query} is not among the keys")
    return pairs, query

  def solve(self, inp):
    pairs, query = self._problem(inp)
    return [dict(pairs)[query] + 1]  # dict keeps the last value given to a key

  def room(self, inp):
    pairs, _ = self._problem(inp)
    return 2 * len(pairs) + 1

  def parse(self, text):
    *pair_tokens, last = _check_chars(text, _DIGITS + ":?").split()
    if not (len(last) == 2 and last[0] == "?" and last[1] in _DIGITS):
      raise ProblemError("missing query: end the problem with ?key, e.g. 0:5 1:6 ?1")
    if not pair_tokens:
      raise ProblemError("a search needs at least one key:value pair before the query")
    syms = [s for token in pair_tokens for s in _parse_pair(token)]
    query = _digit_text(last[1], *_KEYS, "query key")[0]
    if query + 1 not in syms[0::2]:
      raise ProblemError(f"query key {query} is not among the keys")
    return syms + [query + 1]

  def format_input(self, inp):
    pairs, query = self._problem(inp)
    return f"{_pair_text(pairs)} ?{query}"

  def format_output(self, out, n_classes):
    return " ".join(_out_char(s, n_classes) for s in _trim(out))


# ---------------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Task:
  """One task: random problems at a given length, exact answers, and text in and out."""

  name: str
  n_symbols: int  # input vocabulary size, including PAD
  n_classes: int  # output classes, including PAD (the blank is a real class)
  min_length: int  # the shortest length at which a problem exists
  description: str
  _kind: _Kind = dataclasses.field(repr=False, compare=False)

  def _check_length(self, length: int) -> int:
    length = operator.index(length)
    if length < self.min_length:
      raise ValueError(f"{self.name}: length {length} is below the minimum {self.min_length}")
    return length

  def distinct_problems(self, length: int) -> int | None:
    """How many different problems are drawn at exactly `length` (None: not counted for this
    task); 0 where a length only repeats shorter ones."""
    count = getattr(self._kind, "distinct", None)
    return None if count is None else count(self._check_length(length))

  def sample(self, rng: np.random.Generator, length: int) -> tuple[list[int], list[int]]:
    """One random problem in `length` columns: (input, target), both `length` long, PAD-padded."""
    length = self._check_length(length)
    inp = self._kind.draw(rng, length)
    inp += [PAD] * (length - len(inp))
    return inp, self.target(inp)

  def sample_batch(
    self, rng: np.random.Generator, batch_size: int, length: int
  ) -> tuple[np.ndarray, np.ndarray]:
    """batch_size problems: x_BxL, y_BxL int32."""
    length = self._check_length(length)
    x_BxL = np.zeros((batch_size, length), np.int32)
    y_BxL = np.zeros((batch_size, length), np.int32)
    for i in range(batch_size):
      x_BxL[i], y_BxL[i] = self.sample(rng, length)
    return x_BxL, y_BxL

  def target(self, inp: Sequence[int]) -> list[int]:
    """The exact answer row for an input row (same length as inp, PAD-padded).

    Raises ProblemError for a row that is not a problem of this task, or whose answer
    does not fit in its columns.
    """
    answer = self._kind.solve(inp)
    if len(answer) > len(inp):
      raise ProblemError(f"the answer needs {len(answer)} columns; the row has {len(inp)}")
    return answer + [PAD] * (len(inp) - len(answer))

  def problem_length(self, inp: Sequence[int]) -> int:
    """The fewest columns that hold this problem and its answer."""
    return self._kind.room(inp)

  def parse(self, text: str) -> list[int]:
    """Text as a person writes it -> input symbols, problem_length() long. Raises ProblemError."""
    if not isinstance(text, str):
      raise ProblemError(f"expected text, got {type(text).__name__}")
    return self._kind.parse(text)

  def format_input(self, inp: Sequence[int]) -> str:
    """Input symbols -> text that parse() reads back. Raises ProblemError for a malformed row."""
    return self._kind.format_input(inp)

  def format_output(self, out: Sequence[int]) -> str:
    """Output symbols -> text; never raises: blanks inside show as '_', non-classes as '?'."""
    return self._kind.format_output(out, self.n_classes)


def _shift_left(x):
  return x[1:] + [PAD]


def _shift_right(x):
  return [PAD] + x[:-1]  # within the problem's columns: nothing is read past its end


def _make_tasks() -> dict[str, Task]:
  tasks = []
  for prefix, base in (("b", 2), ("q", 4), ("", 10)):
    for op, word, desc in (("+", "add", "sum"), ("*", "mul", "product")):
      tasks.append(
        Task(
          prefix + word,
          13,
          base + 1,
          3,
          f"the {desc} of two base-{base} numbers",
          _Arithmetic(base, op),
        )
      )
  seq = [
    ("copy", lambda x: x, 1, "the input unchanged"),
    ("reverse", lambda x: x[::-1], 1, "the input reversed"),
    ("duplicate", lambda x: x + x, 2, "the input twice"),
    ("sort", sorted, 1, "the input sorted ascending"),
    ("left", lambda x: x[:1], 1, "the first symbol"),
    ("right", lambda x: x[-1:], 1, "the last symbol"),
    ("left-shift", _shift_left, 1, "the input shifted one column left"),
    ("right-shift", _shift_right, 1, "the input shifted one column right"),
  ]
  for name, fn, copies, desc in seq:
    tasks.append(Task(name, 5, 5, copies, desc, _Sequence(fn, 4, copies)))
  tasks += [
    Task("incr", 11, 11, 2, "a decimal number plus one", _Increment()),
    Task(
      "kvsort",
      11,
      11,
      2,
      "key:value pairs stably sorted by key",
      _Pairs(lambda p: sorted(p, key=lambda kv: kv[0])),
    ),
    Task("rev2", 11, 11, 2, "key:value pairs in reverse order", _Pairs(lambda p: p[::-1])),
    Task("search", 11, 11, 3, "the value last given to the query key", _Search()),
  ]
  return {t.name: t for t in tasks}


TASKS: dict[str, Task] = _make_tasks()


def get_task(name: str) -> Task:
  try:
    return TASKS[name]
  except (KeyError, TypeError):
    raise ValueError(f"unknown task {name!r}; known tasks: {', '.join(sorted(TASKS))}") from None


ARITHMETIC = tuple(t.name for t in TASKS.values() if isinstance(t._kind, _Arithmetic))  # pylint: disable=protected-access
