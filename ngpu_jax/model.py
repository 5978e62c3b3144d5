"""The Neural GPU: init(key, ...) -> params; apply(params, x_BxW, n_B, spec) -> Output (logits).

Params are a plain dict pytree:
  embed        VxM     symbol embeddings (row 0, the blank, is held at zero)
  embed_proj   {k: MxM, b: M}     1x1 conv from the embedding into row 0 of the state
  (or, for the one-hot input path: embed VxM = the 1x1 conv's kernel, embed_b M its bias)
  steps        {gates_k: RxLx3xKxMx2M, gates_b: RxLx2M, cand_k: RxLx3xKxMxM, cand_b: RxLxM}
               (K = 3 kernel rows, or 1 for a 1-D state)
               R relaxation copies of the L CGRU layers of one step; step t uses copy t % R
  readout      {k: MxC, b: C}     1x1 conv from row 0 to the output classes
"""

import functools
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from ngpu_jax import cgru

Params = dict[str, Any]

EMBED_SCALE = 1.7  # embeddings start uniform in (-1.7, 1.7)
KERNEL_SCALE = 1.8  # kernels start uniform in +-1.8 * sqrt(3 / fan_in) (the paper's code)


def _uniform(key, shape, fan_in, scale=KERNEL_SCALE):
  limit = scale * (3.0 / fan_in) ** 0.5
  return jax.random.uniform(key, shape, jnp.float32, -limit, limit)


def init(
  key: jax.Array,
  *,
  n_symbols: int,
  n_classes: int,
  maps: int,
  layers: int,
  relax_copies: int,
  kernel_rows: int = 3,
  kernel_scale: float = KERNEL_SCALE,
  relax_init: str = "shared",
  input_path: str = "embed",
) -> Params:
  """Fresh parameters.

  kernel_rows is 3 for the paper's 4-row image and 1 for a 1-D state (3x1 kernels).
  Step kernels start uniform in +-kernel_scale * sqrt(3 / fan_in); 1.0 is Glorot's
  bound for these square kernels (the DNGPU's), 1.8 the paper code's.
  relax_init 'independent' draws every relaxation copy on its own (the original's
  code); 'shared' starts them all from one draw. input_path 'embed' is the paper's
  embedding + 1x1 projection; 'onehot' a Glorot-initialised 1x1 conv of the one-hot
  symbols (embed: VxM, embed_b: M), the DNGPU's.
  """
  m, k, kh = maps, jax.random.split(key, 5), kernel_rows

  def step_set(key_g, key_c, shape_prefix):
    return {
      "gates_k": _uniform(
        key_g, shape_prefix + (layers, 3, kh, m, 2 * m), 3 * kh * m, kernel_scale
      ),
      "gates_b": jnp.zeros(shape_prefix + (layers, 2 * m)),
      "cand_k": _uniform(key_c, shape_prefix + (layers, 3, kh, m, m), 3 * kh * m, kernel_scale),
      "cand_b": jnp.zeros(shape_prefix + (layers, m)),
    }

  if relax_init == "independent":
    steps = step_set(k[2], k[3], (relax_copies,))
  elif relax_init == "shared":
    steps = jax.tree.map(
      lambda a: jnp.broadcast_to(a, (relax_copies,) + a.shape), step_set(k[2], k[3], ())
    )
  else:
    raise ValueError(f"unknown relax_init {relax_init!r}")
  params = {
    "steps": steps,
    "readout": {"k": _uniform(k[4], (m, n_classes), m), "b": jnp.zeros((n_classes,))},
  }
  if input_path == "embed":
    embed = jax.random.uniform(k[0], (n_symbols, m), jnp.float32, -EMBED_SCALE, EMBED_SCALE)
    params["embed"] = embed.at[0].set(0.0)
    params["embed_proj"] = {"k": _uniform(k[1], (m, m), m), "b": jnp.zeros((m,))}
  elif input_path == "onehot":
    glorot = (6.0 / (n_symbols + m)) ** 0.5
    params["embed"] = jax.random.uniform(k[0], (n_symbols, m), jnp.float32, -glorot, glorot)
    params["embed_b"] = jnp.zeros((m,))
  else:
    raise ValueError(f"unknown input_path {input_path!r}")
  return params


def count_params(params: Params) -> int:
  return sum(int(a.size) for a in jax.tree.leaves(params))


def _dropout(key, s_BxWx___, rate):
  """Inverted dropout. The mask is drawn width-first: with partitionable threefry its first w
  columns are the same at any padded width, so padding a batch wider changes no dropped cell."""
  keep = 1.0 - rate
  b, w, *rest = s_BxWx___.shape
  keep_WxBx___ = jax.random.bernoulli(key, keep, (w, b, *rest))
  return jnp.where(jnp.moveaxis(keep_WxBx___, 0, 1), s_BxWx___ / keep, 0.0)


class Spec(NamedTuple):
  """Everything apply needs besides the parameters, built once from the config (from_config).

  Hashable, so a jitted function can close over it or take it as a static argument.
  """

  rows: int  # rows of the mental image (4: the paper; 1: the DNGPU's 1-D state)
  cell: cgru.Cell  # how each gated unit computes
  conv_impl: str  # one of cgru.CONV_IMPLS; "auto" picks by backend and rows
  dropout: float  # rate, when training
  dropout_by_length: bool  # scale the rate by 8 / W, as the paper's code does
  dropout_on: str  # "state" (the paper) or "candidate" (the DNGPU)
  remat: bool  # recompute each step in the backward pass, when training
  scan_unroll: int  # steps per loop iteration (changes no number)
  readout: str  # "own_length", "final" or "final_masked" (see readout_lengths)
  saturation: bool  # sum the saturation cost (Output.saturation; else it is 0)
  precision: str  # of every matmul and convolution (configlib.PRECISIONS)

  @classmethod
  def from_config(cls, config) -> "Spec":
    m = config.model
    cell = cgru.Cell(
      gate=m.gate,
      candidate=m.candidate,
      cutoff=float(m.cutoff),
      u_offset=float(m.u_offset),
      r_offset=float(m.r_offset),
      diagonal=bool(m.diagonal),
      squash_input=bool(m.squash_input),
      saturation_limit=float(config.saturation.limit),
    )
    return cls(
      rows=int(m.rows),
      cell=cell,
      conv_impl=m.conv_impl,
      dropout=float(m.dropout),
      dropout_by_length=bool(m.dropout_by_length),
      dropout_on=m.dropout_on,
      remat=bool(m.remat),
      scan_unroll=int(m.scan_unroll),
      readout=m.readout,
      saturation=bool(config.saturation.enabled),
      precision=config.precision,
    )


class Output(NamedTuple):
  logits_BxWxC: jax.Array
  saturation: jax.Array  # the saturation cost per active column and step
  states_TxBxWxHxM: jax.Array | None  # the image after every step (keep_states), else None


def apply(
  params: Params,
  x_BxW: jax.Array,
  n_B: jax.Array,
  spec: Spec,
  *,
  train: bool = False,
  dropout_key: jax.Array | None = None,
  keep_states: bool = False,
  width: jax.Array | None = None,
) -> Output:
  """Logits after each example's own n steps (n_B <= W), read from row 0.

  The scan runs W steps (the padded width); example b's output is captured
  after step n_B[b], so padding the batch changes no example's answer.
  spec.readout='final' instead reads every example (n_B > 0) after all W steps, with
  every column active; 'final_masked' reads it after all W steps too, but keeps the
  columns past n_B empty at every step, as the DNGPU's model does (see readout_lengths).
  train=True turns on dropout (given dropout_key) and rematerialisation (spec.remat).
  Dropout hits the whole state between steps (the paper) or the embedded
  input and each layer's candidate (DNGPU). keep_states keeps the mental image after
  every step (for pictures: it holds the whole history). Every matmul and convolution runs at
  spec.precision.
  width: the width this batch stands for when it is padded wider (seeds packed into one
  program, see steps.make_packed_train_step); the dropout rate, the 'final' readout and the
  saturation cost follow it, so the padding changes no number. None: the array's width.
  """
  b, w = x_BxW.shape
  own_w = w if width is None else width
  read_B = readout_lengths(n_B, own_w, spec.readout)
  n_B = n_B if spec.readout == "final_masked" else read_B  # the columns that compute
  steps = params["steps"]
  relax_copies = jax.tree.leaves(steps)[0].shape[0]
  maps = params["embed"].shape[1]
  cell, rows = spec.cell, spec.rows
  impl = cgru.resolve_conv_impl(spec.conv_impl, rows)
  mm = functools.partial(jnp.matmul, precision=spec.precision)
  dt = params["embed"].dtype  # float64 params (evaluate --float64) compute in float64
  mask_BxW = jnp.arange(w)[None, :] < n_B[:, None]
  mask_BxWx1x1 = mask_BxW[:, :, None, None].astype(dt)

  if "embed_proj" in params:  # the paper's input path
    embed = params["embed"].at[0].set(0.0)  # the blank reads as an empty column
    e_BxWxM = mm(jnp.tanh(embed[x_BxW]), params["embed_proj"]["k"]) + params["embed_proj"]["b"]
  else:  # one-hot @ kernel is a row lookup; the blank has a row of its own
    e_BxWxM = params["embed"][x_BxW] + params["embed_b"]
  sat_in = jnp.zeros((), dt)
  if cell.squash_input:
    if spec.saturation:  # counted once per step it stands in for, as the DNGPU weights it
      sat_in = cgru.saturation(e_BxWxM * mask_BxW[..., None], cell.saturation_limit) * own_w
    e_BxWxM = cgru.candidate_fn(cell, e_BxWxM)
  s_BxWxHxM = jnp.zeros((b, w, rows, maps), dt).at[:, :, 0, :].set(e_BxWxM)
  s_BxWxHxM = s_BxWxHxM * mask_BxWx1x1

  dropout_rate = dropout_rate_for(own_w, spec.dropout) if spec.dropout_by_length else spec.dropout
  use_dropout = train and spec.dropout > 0.0 and dropout_key is not None
  on_state = use_dropout and spec.dropout_on == "state"
  on_candidate = use_dropout and spec.dropout_on == "candidate"
  if on_candidate:  # the DNGPU also drops out the embedded input
    s_BxWxHxM = _dropout(jax.random.fold_in(dropout_key, 2**31 - 1), s_BxWxHxM, dropout_rate)

  def body(carry, t):
    s, out_BxWxM, sat = carry
    if on_state:  # on the initial state and between steps
      s = _dropout(jax.random.fold_in(dropout_key, t), s, dropout_rate)
    drop = None
    if on_candidate:
      key_t = jax.random.fold_in(dropout_key, t)
      drop = lambda layer: lambda c: _dropout(jax.random.fold_in(key_t, layer), c, dropout_rate)
    p_layers = jax.tree.map(lambda a: a[t % relax_copies], steps)
    s, sat_t = cgru.step(
      p_layers,
      s,
      mask_BxWx1x1,
      cell=cell,
      impl=impl,
      candidate_dropout=drop,
      precision=spec.precision,
    )
    done_Bx1x1 = (t + 1 == read_B)[:, None, None]
    out_BxWxM = jnp.where(done_Bx1x1, s[:, :, 0, :], out_BxWxM)
    if spec.saturation:  # else left out, so that XLA does not carry it through the loop
      sat = sat + (sat_t if width is None else jnp.where(t < width, sat_t, 0.0))
    return (s, out_BxWxM, sat), (s if keep_states else None)

  if train and spec.remat:
    body = jax.checkpoint(body)
  out0_BxWxM = jnp.zeros((b, w, maps), dt)
  carry0 = (s_BxWxHxM, out0_BxWxM, jnp.zeros((), dt))
  # Unrolling trades compile time for fewer loop iterations; it pays where each iteration
  # costs a kernel launch and a host sync (GPU), and changes no number.
  (_, out_BxWxM, sat), s_TxBxWxHxM = jax.lax.scan(
    body, carry0, jnp.arange(w), unroll=min(spec.scan_unroll, w)
  )
  logits_BxWxC = mm(out_BxWxM, params["readout"]["k"]) + params["readout"]["b"]
  # Per active column and step, summed over rows, maps and pre-activations: the
  # DNGPU's scale, so the starting weight 1e-3 means what it means there.
  # The scored columns, not the computing ones: the DNGPU divides by bin width^2 per problem.
  column_steps = jnp.maximum(jnp.sum(jnp.arange(w)[None, :] < read_B[:, None]), 1) * own_w
  return Output(logits_BxWxC, (sat + sat_in) / column_steps, s_TxBxWxHxM)


def readout_lengths(n_B: jax.Array, width: int, readout: str) -> jax.Array:
  """The step after which each example is read, and the columns that are scored: n_B itself
  ('own_length'), or the full width for every real example ('final' and 'final_masked': the
  DNGPU's bins, where a short problem is padded into the bin and must hold its answer to the
  last step; the padding must read blank). Rows with n = 0 (batch padding) stay empty."""
  if readout == "own_length":
    return n_B
  if readout in ("final", "final_masked"):
    return jnp.where(n_B > 0, width, 0).astype(n_B.dtype)
  raise ValueError(f"unknown readout {readout!r}")


def loss_and_metrics(logits_BxWxC: jax.Array, y_BxW: jax.Array, n_B: jax.Array, width=None):
  """Cross-entropy over active columns / (B * W), and errors over ALL active cells.

  width: the W of the normalisation when the batch is padded wider (see apply).

  Blank is a real class: a digit where blank is expected counts as an error.
  Returns (loss, metrics) with metrics holding per-batch sums so that callers
  can aggregate across batches exactly.
  """
  b, w, _ = logits_BxWxC.shape
  mask_BxW = jnp.arange(w)[None, :] < n_B[:, None]
  logp_BxWxC = jax.nn.log_softmax(logits_BxWxC)
  nll_BxW = -jnp.take_along_axis(logp_BxWxC, y_BxW[..., None], axis=-1)[..., 0]
  loss = jnp.sum(nll_BxW * mask_BxW) / (b * (w if width is None else width))
  wrong_BxW = (jnp.argmax(logits_BxWxC, -1) != y_BxW) & mask_BxW
  metrics = {
    "seq_wrong": jnp.sum(jnp.any(wrong_BxW, axis=1)),
    "sym_wrong": jnp.sum(wrong_BxW),
    "sym_total": jnp.sum(mask_BxW),
    "examples": jnp.asarray(b),
  }
  return loss, metrics


def dropout_rate_for(width: int, dropout: float) -> float:
  """The reference scales dropout inversely with the padded length: dropout * 8 / W."""
  return dropout * 8.0 / width
