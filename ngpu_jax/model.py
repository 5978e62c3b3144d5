"""The Neural GPU: init(key, ...) -> params and apply(params, x_BxW, n_B) -> logits_BxWxC.

Params are a plain dict pytree:
  embed        VxM     symbol embeddings (row 0, the blank, is held at zero)
  embed_proj   {k: MxM, b: M}     1x1 conv from the embedding into row 0 of the state
  steps        {gates_k: RxLx3xKxMx2M, gates_b: RxLx2M, cand_k: RxLx3xKxMxM, cand_b: RxLxM}
               (K = 3 kernel rows, or 1 for a 1-D state)
               R relaxation copies of the L CGRU layers of one step; step t uses copy t % R
  readout      {k: MxC, b: C}     1x1 conv from row 0 to the output classes
"""

from typing import Any

import jax
import jax.numpy as jnp

from ngpu_jax import cgru

Params = dict[str, Any]

EMBED_SCALE = 1.7    # embeddings start uniform in (-1.7, 1.7)
KERNEL_SCALE = 1.8   # kernels start uniform in +-1.8 * sqrt(3 / fan_in) (the paper's code)


def _uniform(key, shape, fan_in, scale=KERNEL_SCALE):
  limit = scale * (3.0 / fan_in) ** 0.5
  return jax.random.uniform(key, shape, jnp.float32, -limit, limit)


def init(key: jax.Array, *, n_symbols: int, n_classes: int, maps: int, layers: int,
         relax_copies: int, kernel_rows: int = 3, kernel_scale: float = KERNEL_SCALE) -> Params:
  """Fresh parameters; every relaxation copy starts from the same draw.

  kernel_rows is 3 for the paper's 4-row image and 1 for a 1-D state (3x1 kernels).
  Step kernels start uniform in +-kernel_scale * sqrt(3 / fan_in); 1.0 is Glorot's
  bound for these square kernels (the DNGPU's), 1.8 the paper code's.
  """
  m, k, kh = maps, jax.random.split(key, 5), kernel_rows
  embed = jax.random.uniform(k[0], (n_symbols, m), jnp.float32, -EMBED_SCALE, EMBED_SCALE)
  one = {
      "gates_k": _uniform(k[2], (layers, 3, kh, m, 2 * m), 3 * kh * m, kernel_scale),
      "gates_b": jnp.zeros((layers, 2 * m)),
      "cand_k": _uniform(k[3], (layers, 3, kh, m, m), 3 * kh * m, kernel_scale),
      "cand_b": jnp.zeros((layers, m)),
  }
  return {
      "embed": embed.at[0].set(0.0),
      "embed_proj": {"k": _uniform(k[1], (m, m), m), "b": jnp.zeros((m,))},
      "steps": jax.tree.map(lambda a: jnp.broadcast_to(a, (relax_copies,) + a.shape), one),
      "readout": {"k": _uniform(k[4], (m, n_classes), m), "b": jnp.zeros((n_classes,))},
  }


def count_params(params: Params) -> int:
  return sum(int(a.size) for a in jax.tree.leaves(params))


def _dropout(key, s, rate):
  keep = 1.0 - rate
  return jnp.where(jax.random.bernoulli(key, keep, s.shape), s / keep, 0.0)


def apply(params: Params, x_BxW: jax.Array, n_B: jax.Array, *, rows: int = 4,
          cell: cgru.Cell = cgru.Cell(), conv_impl: str = "auto", dropout_rate: float = 0.0,
          dropout_on: str = "state", dropout_key: jax.Array | None = None, remat: bool = True,
          scan_unroll: int = 1, return_states: bool = False, return_saturation: bool = False):
  """Logits after each example's own n steps (n_B <= W), read from row 0.

  The scan runs W steps (the padded width); example b's output is captured
  after step n_B[b], so padding the batch changes no example's answer.
  Dropout hits the whole state between steps (the paper) or the embedded
  input and each layer's candidate (DNGPU). With return_states or return_saturation the result is
  (logits, aux): aux["states"] is the mental image after every step,
  s_TxBxWxHxM (T = W; for pictures: it keeps the whole history), and
  aux["saturation"] the saturation cost per active column and step.
  """
  b, w = x_BxW.shape
  steps = params["steps"]
  relax_copies = jax.tree.leaves(steps)[0].shape[0]
  maps = params["embed"].shape[1]
  impl = cgru.resolve_conv_impl(conv_impl)
  mask_BxW = jnp.arange(w)[None, :] < n_B[:, None]
  mask_BxWx1x1 = mask_BxW[:, :, None, None].astype(jnp.float32)

  embed = params["embed"].at[0].set(0.0)  # the blank reads as an empty column
  e_BxWxM = jnp.tanh(embed[x_BxW]) @ params["embed_proj"]["k"] + params["embed_proj"]["b"]
  sat_in = jnp.zeros((), jnp.float32)
  if cell.squash_input:
    # Counted once per step it stands in for, as the DNGPU weights it by the length.
    sat_in = cgru.saturation(e_BxWxM * mask_BxW[..., None], cell.saturation_limit) * w
    e_BxWxM = cgru.candidate_fn(cell, e_BxWxM)
  s_BxWxHxM = jnp.zeros((b, w, rows, maps), jnp.float32).at[:, :, 0, :].set(e_BxWxM)
  s_BxWxHxM = s_BxWxHxM * mask_BxWx1x1

  use_dropout = dropout_rate > 0.0 and dropout_key is not None
  on_state = use_dropout and dropout_on == "state"
  on_candidate = use_dropout and dropout_on == "candidate"
  if on_candidate:  # the DNGPU also drops out the embedded input
    s_BxWxHxM = _dropout(jax.random.fold_in(dropout_key, 2**31 - 1), s_BxWxHxM, dropout_rate)

  def body(carry, t):
    s, out_BxWxM, sat = carry
    if on_state:  # on the initial state and between steps
      s = _dropout(jax.random.fold_in(dropout_key, t), s, dropout_rate)
    drop = None
    if on_candidate:
      key_t = jax.random.fold_in(dropout_key, t)
      drop = lambda layer: (lambda c: _dropout(jax.random.fold_in(key_t, layer), c, dropout_rate))
    p_layers = jax.tree.map(lambda a: a[t % relax_copies], steps)
    s, sat_t = cgru.step(p_layers, s, mask_BxWx1x1, cell=cell, impl=impl, candidate_dropout=drop)
    done_Bx1x1 = (t + 1 == n_B)[:, None, None]
    out_BxWxM = jnp.where(done_Bx1x1, s[:, :, 0, :], out_BxWxM)
    if return_saturation:
      sat = sat + sat_t
    return (s, out_BxWxM, sat), (s if return_states else None)

  if remat:
    body = jax.checkpoint(body)
  out0_BxWxM = jnp.zeros((b, w, maps), jnp.float32)
  carry0 = (s_BxWxHxM, out0_BxWxM, jnp.zeros((), jnp.float32))
  # Unrolling trades compile time for fewer loop iterations; it pays where each iteration
  # costs a kernel launch and a host sync (GPU), and changes no number.
  (_, out_BxWxM, sat), s_TxBxWxHxM = jax.lax.scan(body, carry0, jnp.arange(w),
                                                   unroll=min(scan_unroll, w))
  logits_BxWxC = out_BxWxM @ params["readout"]["k"] + params["readout"]["b"]
  if not (return_states or return_saturation):
    return logits_BxWxC
  # Per active column and step, summed over rows, maps and pre-activations: the
  # DNGPU's scale, so the starting weight 1e-3 means what it means there.
  column_steps = jnp.maximum(jnp.sum(mask_BxW), 1) * w
  return logits_BxWxC, {"states": s_TxBxWxHxM, "saturation": (sat + sat_in) / column_steps}


def loss_and_metrics(logits_BxWxC: jax.Array, y_BxW: jax.Array, n_B: jax.Array):
  """Cross-entropy over active columns / (B * W), and errors over ALL active cells.

  Blank is a real class: a digit where blank is expected counts as an error.
  Returns (loss, metrics) with metrics holding per-batch sums so that callers
  can aggregate across batches exactly.
  """
  b, w, _ = logits_BxWxC.shape
  mask_BxW = jnp.arange(w)[None, :] < n_B[:, None]
  logp_BxWxC = jax.nn.log_softmax(logits_BxWxC)
  nll_BxW = -jnp.take_along_axis(logp_BxWxC, y_BxW[..., None], axis=-1)[..., 0]
  loss = jnp.sum(nll_BxW * mask_BxW) / (b * w)
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
