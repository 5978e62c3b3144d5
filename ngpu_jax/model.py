"""The Neural GPU: init(key, ...) -> params and apply(params, x_BxW, n_B) -> logits_BxWxC.

Params are a plain dict pytree:
  embed        VxM     symbol embeddings (row 0, the blank, is held at zero)
  embed_proj   {k: MxM, b: M}     1x1 conv from the embedding into row 0 of the state
  (or, for the one-hot input path: embed VxM = the 1x1 conv's kernel, embed_b M its bias)
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
         relax_copies: int, kernel_rows: int = 3, kernel_scale: float = KERNEL_SCALE,
         relax_init: str = "shared", input_path: str = "embed") -> Params:
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
        "gates_k": _uniform(key_g, shape_prefix + (layers, 3, kh, m, 2 * m), 3 * kh * m,
                            kernel_scale),
        "gates_b": jnp.zeros(shape_prefix + (layers, 2 * m)),
        "cand_k": _uniform(key_c, shape_prefix + (layers, 3, kh, m, m), 3 * kh * m, kernel_scale),
        "cand_b": jnp.zeros(shape_prefix + (layers, m)),
    }

  if relax_init == "independent":
    steps = step_set(k[2], k[3], (relax_copies,))
  elif relax_init == "shared":
    steps = jax.tree.map(lambda a: jnp.broadcast_to(a, (relax_copies,) + a.shape),
                         step_set(k[2], k[3], ()))
  else:
    raise ValueError(f"unknown relax_init {relax_init!r}")
  params = {"steps": steps,
            "readout": {"k": _uniform(k[4], (m, n_classes), m), "b": jnp.zeros((n_classes,))}}
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


def _dropout(key, s, rate):
  keep = 1.0 - rate
  return jnp.where(jax.random.bernoulli(key, keep, s.shape), s / keep, 0.0)


def apply(params: Params, x_BxW: jax.Array, n_B: jax.Array, *, rows: int = 4,
          cell: cgru.Cell = cgru.Cell(), conv_impl: str = "auto", dropout_rate: float = 0.0,
          dropout_on: str = "state", dropout_key: jax.Array | None = None, remat: bool = True,
          scan_unroll: int = 1, return_states: bool = False, return_saturation: bool = False,
          readout: str = "own_length"):
  """Logits after each example's own n steps (n_B <= W), read from row 0.

  The scan runs W steps (the padded width); example b's output is captured
  after step n_B[b], so padding the batch changes no example's answer.
  readout='final' instead reads every example (n_B > 0) after all W steps, with
  every column active (see readout_lengths).
  Dropout hits the whole state between steps (the paper) or the embedded
  input and each layer's candidate (DNGPU). With return_states or return_saturation the result is
  (logits, aux): aux["states"] is the mental image after every step,
  s_TxBxWxHxM (T = W; for pictures: it keeps the whole history), and
  aux["saturation"] the saturation cost per active column and step.
  """
  b, w = x_BxW.shape
  n_B = readout_lengths(n_B, w, readout)
  steps = params["steps"]
  relax_copies = jax.tree.leaves(steps)[0].shape[0]
  maps = params["embed"].shape[1]
  impl = cgru.resolve_conv_impl(conv_impl)
  mask_BxW = jnp.arange(w)[None, :] < n_B[:, None]
  mask_BxWx1x1 = mask_BxW[:, :, None, None].astype(jnp.float32)

  if "embed_proj" in params:  # the paper's input path
    embed = params["embed"].at[0].set(0.0)  # the blank reads as an empty column
    e_BxWxM = jnp.tanh(embed[x_BxW]) @ params["embed_proj"]["k"] + params["embed_proj"]["b"]
  else:  # one-hot @ kernel is a row lookup; the blank has a row of its own
    e_BxWxM = params["embed"][x_BxW] + params["embed_b"]
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


def readout_lengths(n_B: jax.Array, width: int, readout: str) -> jax.Array:
  """The steps each example runs and the columns it owns: n_B itself ('own_length'), or the
  full width for every real example ('final': the DNGPU's bins, where a short problem is
  padded into the bin and must hold its answer to the last step). Rows with n = 0 (batch
  padding) stay empty."""
  if readout == "own_length":
    return n_B
  if readout == "final":
    return jnp.where(n_B > 0, width, 0).astype(n_B.dtype)
  raise ValueError(f"unknown readout {readout!r}")


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
