"""The convolutional gated recurrent unit (CGRU) of the Neural GPU, as pure functions.

Shapes: the mental image is s_BxWxHxM (batch, columns, rows, maps). Kernels are
k_3x3xMxO with the first spatial axis along W and the second along H, i.e. the
HWIO layout of `lax.conv_general_dilated` with our W playing its "H".
"""

import functools
from typing import Literal, NamedTuple

import jax
import jax.numpy as jnp

ConvImpl = Literal["auto", "hybrid", "im2col", "xla"]
CONV_IMPLS = ("auto", "hybrid", "im2col", "xla")
_DIMS = ("NHWC", "HWIO", "NHWC")

# The "+1" that the CGRU adds to both gate pre-activations on top of the
# trainable bias: gates start mostly open, which keeps the state alive early on.
GATE_OFFSET = 1.0


def resolve_conv_impl(impl: ConvImpl, rows: int = 4) -> str:
  """'auto' picks the form that is fast on the default backend for a state of `rows` rows."""
  if impl == "auto":
    # A 1-row state (the DNGPU's) convolves with 3x1 kernels: as one matmul over the three
    # shifted copies (im2col) its CPU train step took 0.40 s against 0.63 s as hybrid
    # (benchmarks/results_cpu_dngpu_badd.json); the 4-row paper model is faster as hybrid.
    if rows == 1 and jax.default_backend() == "cpu":
      return "im2col"
    # XLA:CPU computes the kernel gradient of a convolution inside scan very
    # slowly (jax#12868); 'hybrid' takes that one gradient as a matmul. On an
    # H200 (benchmarks/results_h200.json) the train step at length 41 took
    # 9.5 ms as im2col, 11.9 ms as lax.conv and 13.1 ms as hybrid. TPU is
    # unmeasured: its native convolution is the safe choice there.
    backend = jax.default_backend()
    return {"cpu": "hybrid", "gpu": "im2col", "cuda": "im2col", "rocm": "im2col"}.get(
      backend, "xla"
    )
  if impl not in CONV_IMPLS:
    raise ValueError(f"conv_impl must be one of {CONV_IMPLS}, got {impl!r}")
  return impl


def _xla_conv(s_BxWxHxC, k_3x3xCxO, precision=None):
  return jax.lax.conv_general_dilated(
    s_BxWxHxC,
    k_3x3xCxO,
    window_strides=(1, 1),
    padding="SAME",
    dimension_numbers=_DIMS,
    precision=precision,
  )


def _patches(s_BxWxHxC, kh: int = 3):
  """BxWxHx(3*kh*C): each cell's neighbourhood, tap (i, j) reading column w+i-1, row h+j-kh//2."""
  _, w, h, _ = s_BxWxHxC.shape
  ph = kh // 2
  p_BxW2xH2xC = jnp.pad(s_BxWxHxC, ((0, 0), (1, 1), (ph, ph), (0, 0)))
  return jnp.concatenate(
    [p_BxW2xH2xC[:, i : i + w, j : j + h, :] for i in range(3) for j in range(kh)], axis=-1
  )


def _im2col_conv(s_BxWxHxC, k_3xKxCxO, precision=None):
  # The kernel flattens (i, j, c) in the same order as _patches, so one matmul does all taps.
  return jnp.matmul(
    _patches(s_BxWxHxC, k_3xKxCxO.shape[1]),
    k_3xKxCxO.reshape(-1, k_3xKxCxO.shape[-1]),
    precision=precision,
  )


# The precision is a static argument: the backward pass is traced after the forward's caller
# has returned, so it must carry the precision itself.
@functools.partial(jax.custom_vjp, nondiff_argnums=(2,))
def _hybrid_conv(s_BxWxHxC, k_3x3xCxO, precision):
  return _xla_conv(s_BxWxHxC, k_3x3xCxO, precision)


def _hybrid_fwd(s_BxWxHxC, k_3x3xCxO, precision):
  return _xla_conv(s_BxWxHxC, k_3x3xCxO, precision), (s_BxWxHxC, k_3x3xCxO)


def _hybrid_bwd(precision, res, g_BxWxHxO):
  s_BxWxHxC, k_3x3xCxO = res
  # d/ds: the same SAME correlation with the kernel flipped in space and transposed.
  k_flip = jnp.transpose(k_3x3xCxO[::-1, ::-1], (0, 1, 3, 2))
  ds_BxWxHxC = _xla_conv(g_BxWxHxO, k_flip, precision)
  # d/dk as one matmul: the conv kernel gradient is what is slow in scan on CPU.
  dk_9CxO = jnp.einsum(
    "bwhp,bwho->po",
    _patches(s_BxWxHxC, k_3x3xCxO.shape[1]),
    g_BxWxHxO,
    precision=precision,
  )
  return ds_BxWxHxC, dk_9CxO.reshape(k_3x3xCxO.shape)


_hybrid_conv.defvjp(_hybrid_fwd, _hybrid_bwd)


def conv3x3(
  s_BxWxHxC: jax.Array, k_3x3xCxO: jax.Array, impl: str = "hybrid", precision: str | None = None
) -> jax.Array:
  """SAME 3x3 convolution (cross-correlation, stride 1) in one of three equal forms.

  'xla': lax.conv and its autodiff. 'im2col': pad + 9 shifted slices + one
  matmul. 'hybrid': lax.conv forward and input gradient, im2col kernel gradient.
  precision: of the products, forward and backward (None: jax's default_matmul_precision).
  """
  if impl == "xla":
    return _xla_conv(s_BxWxHxC, k_3x3xCxO, precision)
  if impl == "im2col":
    return _im2col_conv(s_BxWxHxC, k_3x3xCxO, precision)
  return _hybrid_conv(s_BxWxHxC, k_3x3xCxO, precision)


def sigmoid_cutoff(x: jax.Array, cutoff: float = 1.2) -> jax.Array:
  """clip(cutoff * sigmoid(x) - (cutoff - 1) / 2, 0, 1): reaches exactly 0 and 1."""
  return jnp.clip(cutoff * jax.nn.sigmoid(x) - 0.5 * (cutoff - 1.0), 0.0, 1.0)


def hard_sigmoid(x: jax.Array) -> jax.Array:
  return jnp.clip(0.5 * x + 0.5, 0.0, 1.0)


def hard_tanh(x: jax.Array) -> jax.Array:
  return jnp.clip(x, -1.0, 1.0)


class Cell(NamedTuple):
  """How one gated unit computes; the defaults are the paper's CGRU.

  The other settings are the DNGPU's (Freivalds & Liepins 2017), each on its own:
  hard nonlinearities, constant gate offsets 0.7 (u) / 0.5 (r), diagonal keep path.
  """

  gate: str = "sigmoid_cutoff"  # or "hard_sigmoid"
  candidate: str = "tanh"  # or "hard_tanh"
  cutoff: float = 1.2  # of sigmoid_cutoff
  u_offset: float = GATE_OFFSET  # constant added to the keep gate's pre-activation
  r_offset: float = GATE_OFFSET  # constant added to the reset gate's pre-activation
  diagonal: bool = False  # keep path reads a third of the maps from each neighbour
  squash_input: bool = False  # embedded input goes through the candidate function first
  saturation_limit: float = 0.9  # pre-activations past +-this count as saturated


def _gate(cell: Cell, x):
  return hard_sigmoid(x) if cell.gate == "hard_sigmoid" else sigmoid_cutoff(x, cell.cutoff)


def candidate_fn(cell: Cell, x):
  return hard_tanh(x) if cell.candidate == "hard_tanh" else jnp.tanh(x)


def diagonal_shift(s_BxWxHxM: jax.Array) -> jax.Array:
  """First third of the maps from the left neighbour column, second third from the right."""
  t = s_BxWxHxM.shape[-1] // 3
  from_left = jnp.pad(s_BxWxHxM[:, :-1, :, :t], ((0, 0), (1, 0), (0, 0), (0, 0)))
  from_right = jnp.pad(s_BxWxHxM[:, 1:, :, t : 2 * t], ((0, 0), (0, 1), (0, 0), (0, 0)))
  return jnp.concatenate([from_left, from_right, s_BxWxHxM[..., 2 * t :]], axis=-1)


def saturation(x: jax.Array, limit: float) -> jax.Array:
  """sum(relu(|x| - limit)): how far pre-activations sit in the flat part of a hard function."""
  return jnp.sum(jax.nn.relu(jnp.abs(x) - limit))


def cgru(
  p: dict,
  s_BxWxHxM: jax.Array,
  *,
  cell: Cell = Cell(),
  impl: str = "hybrid",
  candidate_dropout=None,
  mask_BxWx1x1=None,
  precision: str | None = None,
) -> tuple[jax.Array, jax.Array]:
  """One CGRU layer: u keeps the old state, r resets what the candidate reads.

  p holds 'gates_k' (3xKxMx2M, u then r), 'gates_b' (2M), 'cand_k' (3xKxMxM), 'cand_b' (M).
  Returns (new state, saturation cost of this layer's pre-activations inside the mask;
  XLA drops that computation when the caller ignores it).
  """
  g_BxWxHx2M = conv3x3(s_BxWxHxM, p["gates_k"], impl, precision) + p["gates_b"]
  gu_BxWxHxM, gr_BxWxHxM = jnp.split(g_BxWxHx2M, 2, axis=-1)
  pre_u, pre_r = gu_BxWxHxM + cell.u_offset, gr_BxWxHxM + cell.r_offset
  u_BxWxHxM, r_BxWxHxM = _gate(cell, pre_u), _gate(cell, pre_r)
  pre_c = conv3x3(r_BxWxHxM * s_BxWxHxM, p["cand_k"], impl, precision) + p["cand_b"]
  c_BxWxHxM = candidate_fn(cell, pre_c)
  if candidate_dropout is not None:
    c_BxWxHxM = candidate_dropout(c_BxWxHxM)
  keep_BxWxHxM = diagonal_shift(s_BxWxHxM) if cell.diagonal else s_BxWxHxM
  m = 1.0 if mask_BxWx1x1 is None else mask_BxWx1x1
  sat = sum(saturation(x * m, cell.saturation_limit) for x in (pre_u, pre_r, pre_c))
  return u_BxWxHxM * keep_BxWxHxM + (1.0 - u_BxWxHxM) * c_BxWxHxM, sat


def step(
  p_layers: dict,
  s_BxWxHxM: jax.Array,
  mask_BxWx1x1: jax.Array,
  *,
  cell: Cell = Cell(),
  impl: str = "hybrid",
  candidate_dropout=None,
  precision: str | None = None,
) -> tuple[jax.Array, jax.Array]:
  """One Neural GPU step: L CGRU layers (leading axis of every leaf), masking after each.

  candidate_dropout(layer) gives that layer's dropout function, or None.
  Returns (new state, summed saturation cost).
  """
  n_layers = jax.tree.leaves(p_layers)[0].shape[0]
  sat = jnp.zeros((), s_BxWxHxM.dtype)
  for layer in range(n_layers):
    p = jax.tree.map(lambda a, i=layer: a[i], p_layers)
    drop = candidate_dropout(layer) if candidate_dropout is not None else None
    s_BxWxHxM, sat_l = cgru(
      p,
      s_BxWxHxM,
      cell=cell,
      impl=impl,
      candidate_dropout=drop,
      mask_BxWx1x1=mask_BxWx1x1,
      precision=precision,
    )
    # Columns past the input length must stay empty, or the padded width of the
    # bucket would change what the model computes.
    s_BxWxHxM = s_BxWxHxM * mask_BxWx1x1
    sat = sat + sat_l
  return s_BxWxHxM, sat
