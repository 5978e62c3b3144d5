"""Training problems a whole batch at a time, with numpy over the rows.

`sample(task, rng, n_B, width)` gives the same kind of batch as drawing each problem with
`Task.sample` and padding it: every row's input has the exact generator's distribution (uniform
digits and symbols from the same ranges, leading zeros allowed, a search's query a key that
occurs), and its target is what `Task.target` computes. It does not replay the exact generator's
random stream: it draws whole arrays (digits past a row's own length are drawn and dropped).
Answers come from array arithmetic: carries as a loop over digit positions, products as a
schoolbook convolution of digit arrays, so a batch costs a few milliseconds instead of one
Python problem (and big integer) at a time. Training uses it (config.data_generator); evaluation
and tests keep the exact generators, which stay the reference.
"""

from collections.abc import Callable

import numpy as np

from ngpu_jax import tasks

PAD = tasks.PAD


def sample(
  task: tasks.Task, rng: np.random.Generator, n_B, width: int
) -> tuple[np.ndarray, np.ndarray]:
  """One problem of length n_B[i] per row, PAD-padded to `width`: x_BxW, y_BxW int32."""
  n_B = np.asarray(n_B, np.int64).reshape(-1)
  if n_B.size and (n_B.min() < task.min_length or n_B.max() > width):
    raise ValueError(
      f"{task.name}: lengths {n_B.min()}..{n_B.max()} must lie in "
      f"[{task.min_length}, width {width}]"
    )
  make = _MAKERS.get(task.name, _exact)
  x_BxW, y_BxW = make(task, rng, n_B, width)
  return x_BxW.astype(np.int32), y_BxW.astype(np.int32)


def covers(task: tasks.Task) -> bool:
  """Whether `sample` has an array form for this task (else it draws problem by problem)."""
  return task.name in _MAKERS


def _exact(task, rng, n_B, width):
  """The fallback: Task.sample row by row."""
  x_BxW = np.zeros((len(n_B), width), np.int64)
  y_BxW = np.zeros((len(n_B), width), np.int64)
  for i, n in enumerate(n_B.tolist()):
    x_BxW[i, :n], y_BxW[i, :n] = task.sample(rng, n)
  return x_BxW, y_BxW


# ---------------------------------------------------------------------------------------------
# Helpers over rows of different lengths.


def _live(count_B: np.ndarray, width: int) -> np.ndarray:
  """live_BxW: column j < count_B[i]."""
  return np.arange(width)[None, :] < count_B[:, None]


def _draw(rng, lo: int, hi: int, count_B: np.ndarray) -> np.ndarray:
  """d_BxK uniform in [lo, hi], K = max(count_B); 0 past each row's count."""
  k = int(count_B.max(initial=0))
  return rng.integers(lo, hi, endpoint=True, size=(len(count_B), k)) * _live(count_B, k)


def _symbols(d_BxK: np.ndarray, count_B: np.ndarray, width: int) -> np.ndarray:
  """Digits -> symbols in the first count_B columns of `width`, PAD after."""
  out_BxW = np.zeros((len(count_B), width), np.int64)
  k = d_BxK.shape[1]
  out_BxW[:, :k] = np.where(_live(count_B, k), d_BxK + 1, PAD)
  return out_BxW


def _gather(x_BxW: np.ndarray, idx_BxW: np.ndarray, live_BxW: np.ndarray) -> np.ndarray:
  """x[i, idx[i, j]] where live, else PAD (idx may be out of range where not live)."""
  idx_BxW = np.clip(idx_BxW, 0, x_BxW.shape[1] - 1)
  return np.where(live_BxW, np.take_along_axis(x_BxW, idx_BxW, axis=1), PAD)


# ---------------------------------------------------------------------------------------------
# Numbers as little-endian digit arrays, one number per row.


def _carry(acc_BxN: np.ndarray, base: int) -> np.ndarray:
  """Column sums (any size >= 0) -> proper digits; the last column must absorb the carry."""
  out_BxN = np.empty_like(acc_BxN)
  carry_B = np.zeros(len(acc_BxN), acc_BxN.dtype)
  for j in range(acc_BxN.shape[1]):
    s_B = acc_BxN[:, j] + carry_B
    out_BxN[:, j], carry_B = s_B % base, s_B // base
  assert not carry_B.any(), "digit array too short for its value"
  return out_BxN


def _sum(a_BxK: np.ndarray, b_BxK: np.ndarray, base: int) -> np.ndarray:
  """a + b as K + 1 digits."""
  return _carry(np.pad(a_BxK + b_BxK, ((0, 0), (0, 1))), base)


def _product(a_BxK: np.ndarray, b_BxK: np.ndarray, base: int) -> np.ndarray:
  """a * b as 2K digits: column i + j collects a_i * b_j, then one carry pass.

  Column sums stay below K * base^2, far inside int64 at any length trained on.
  """
  b, k = a_BxK.shape[0], a_BxK.shape[1]
  acc_Bx2K = np.zeros((b, 2 * k), np.int64)
  for i in range(k):
    acc_Bx2K[:, i : i + k] += a_BxK[:, i : i + 1] * b_BxK
  return _carry(acc_Bx2K, base)


def _number_row(d_BxN: np.ndarray, width: int) -> np.ndarray:
  """Digits -> target symbols: as many digits as the value needs (one for zero), then PAD."""
  nonzero_BxN = d_BxN != 0
  n = d_BxN.shape[1]
  used_B = np.where(nonzero_BxN.any(axis=1), n - np.argmax(nonzero_BxN[:, ::-1], axis=1), 1)
  return _symbols(d_BxN, used_B, width)


# ---------------------------------------------------------------------------------------------
# Makers: (task, rng, n_B, width) -> (x_BxW, y_BxW).


def _arithmetic(task, rng, n_B, width):
  """a op b, k = (n - 1) // 2 digits each: a in columns 0..k-1, op at k, b at k+1..2k."""
  base, op = task._kind.base, task._kind.op  # pylint: disable=protected-access
  k_B = (n_B - 1) // 2
  a_BxK, b_BxK = _draw(rng, 0, base - 1, k_B), _draw(rng, 0, base - 1, k_B)
  k = a_BxK.shape[1]
  x_BxW = _symbols(a_BxK, k_B, width)
  rows_B = np.arange(len(n_B))
  x_BxW[rows_B, k_B] = tasks.PLUS if op == "+" else tasks.TIMES
  # b's digit j goes to column k_B + 1 + j; past the row's k that column is PAD anyway
  # (2k < n <= width), so writing the dropped digits' PAD there changes nothing.
  b_sym_BxK = np.where(_live(k_B, k), b_BxK + 1, PAD)
  np.put_along_axis(x_BxW, k_B[:, None] + 1 + np.arange(k)[None, :], b_sym_BxK, axis=1)
  digits = _sum(a_BxK, b_BxK, base) if op == "+" else _product(a_BxK, b_BxK, base)
  return x_BxW, _number_row(digits, width)


def _increment(task, rng, n_B, width):
  """n + 1 for n of (length - 1) decimal digits; the last column of the row stays PAD."""
  del task
  m_B = n_B - 1
  d_BxM = _draw(rng, 0, 9, m_B)
  acc_BxN = np.pad(d_BxM, ((0, 0), (0, 1)))
  acc_BxN[:, 0] += 1
  return _symbols(d_BxM, m_B, width), _number_row(_carry(acc_BxN, 10), width)


def _sequence(answer: Callable[[np.ndarray, np.ndarray], np.ndarray]):
  """A symbol task: n // copies symbols of the alphabet; `answer(x_BxW, m_B)` gives y_BxW."""

  def make(task, rng, n_B, width):
    kind = task._kind  # pylint: disable=protected-access
    m_B = n_B // kind.copies
    x_BxW = _symbols(_draw(rng, 0, kind.alphabet - 1, m_B), m_B, width)
    return x_BxW, answer(x_BxW, m_B)

  return make


def _copy(x_BxW, m_B):
  del m_B
  return x_BxW.copy()


def _reverse(x_BxW, m_B):
  cols_W = np.arange(x_BxW.shape[1])
  return _gather(x_BxW, m_B[:, None] - 1 - cols_W[None, :], _live(m_B, x_BxW.shape[1]))


def _duplicate(x_BxW, m_B):
  cols_W = np.arange(x_BxW.shape[1])
  return _gather(x_BxW, cols_W[None, :] % m_B[:, None], _live(2 * m_B, x_BxW.shape[1]))


def _sort(x_BxW, m_B):
  del m_B
  # PAD sorts last, so each row's symbols come first in order, then its padding.
  big = np.iinfo(np.int64).max
  y_BxW = np.sort(np.where(x_BxW == PAD, big, x_BxW), axis=1)
  return np.where(y_BxW == big, PAD, y_BxW)


def _first(x_BxW, m_B):
  del m_B
  y_BxW = np.zeros_like(x_BxW)
  y_BxW[:, 0] = x_BxW[:, 0]
  return y_BxW


def _last(x_BxW, m_B):
  y_BxW = np.zeros_like(x_BxW)
  y_BxW[:, 0] = x_BxW[np.arange(len(m_B)), m_B - 1]
  return y_BxW


def _shift_left(x_BxW, m_B):
  del m_B
  # x is PAD past each row's symbols, so the row's last column fills with PAD by itself.
  return np.pad(x_BxW[:, 1:], ((0, 0), (0, 1)))


def _shift_right(x_BxW, m_B):
  # Within the row's own columns: its last symbol is dropped, not moved into the padding.
  y_BxW = np.pad(x_BxW[:, :-1], ((0, 0), (1, 0)))
  return np.where(_live(m_B, x_BxW.shape[1]), y_BxW, PAD)


_KEYS, _VALUES = tasks._KEYS, tasks._VALUES  # pylint: disable=protected-access


def _draw_pairs(rng, p_B):
  """keys_BxP, values_BxP (digits), 0 past each row's p pairs."""
  return _draw(rng, *_KEYS, p_B), _draw(rng, *_VALUES, p_B)


def _interleave(keys_BxP, values_BxP, p_B, width):
  """Pairs -> symbols key value key value ... in the first 2p columns, PAD after."""
  p = keys_BxP.shape[1]
  kv_Bx2P = np.stack([keys_BxP, values_BxP], axis=2).reshape(len(p_B), 2 * p)
  return _symbols(kv_Bx2P, 2 * p_B, width)


def _pairs(order: Callable[[np.ndarray, np.ndarray], np.ndarray]):
  """A pairs task: n // 2 pairs; `order(keys_BxP, p_B)` says which pair goes where (BxP)."""

  def make(task, rng, n_B, width):
    del task
    p_B = n_B // 2
    keys_BxP, values_BxP = _draw_pairs(rng, p_B)
    idx_BxP = order(keys_BxP, p_B)
    keys_out = np.take_along_axis(keys_BxP, idx_BxP, axis=1)
    values_out = np.take_along_axis(values_BxP, idx_BxP, axis=1)
    return (
      _interleave(keys_BxP, values_BxP, p_B, width),
      _interleave(keys_out, values_out, p_B, width),
    )

  return make


def _by_key(keys_BxP, p_B):
  # A stable sort with dropped pairs last keeps equal keys in their input order.
  big = np.iinfo(np.int64).max
  return np.argsort(np.where(_live(p_B, keys_BxP.shape[1]), keys_BxP, big), axis=1, kind="stable")


def _reversed_pairs(keys_BxP, p_B):
  cols_P = np.arange(keys_BxP.shape[1])
  idx_BxP = p_B[:, None] - 1 - cols_P[None, :]
  return np.where(idx_BxP >= 0, idx_BxP, cols_P[None, :])  # dropped pairs stay (and stay PAD)


def _search(task, rng, n_B, width):
  """(n - 1) // 2 pairs, then a key drawn from the row's pairs; answer: its last value."""
  del task
  p_B = (n_B - 1) // 2
  keys_BxP, values_BxP = _draw_pairs(rng, p_B)
  rows_B = np.arange(len(n_B))
  query_B = keys_BxP[rows_B, rng.integers(0, p_B)]
  x_BxW = _interleave(keys_BxP, values_BxP, p_B, width)
  x_BxW[rows_B, 2 * p_B] = query_B + 1
  match_BxP = (keys_BxP == query_B[:, None]) & _live(p_B, keys_BxP.shape[1])
  last_B = keys_BxP.shape[1] - 1 - np.argmax(match_BxP[:, ::-1], axis=1)
  y_BxW = np.zeros((len(n_B), width), np.int64)
  y_BxW[:, 0] = values_BxP[rows_B, last_B] + 1
  return x_BxW, y_BxW


_MAKERS = {
  **{name: _arithmetic for name in tasks.ARITHMETIC},
  "incr": _increment,
  "copy": _sequence(_copy),
  "reverse": _sequence(_reverse),
  "duplicate": _sequence(_duplicate),
  "sort": _sequence(_sort),
  "left": _sequence(_first),
  "right": _sequence(_last),
  "left-shift": _sequence(_shift_left),
  "right-shift": _sequence(_shift_right),
  "kvsort": _pairs(_by_key),
  "rev2": _pairs(_reversed_pairs),
  "search": _search,
}
