"""The convolutional gated recurrent unit (CGRU) of the Neural GPU, as pure functions.

Shapes: the mental image is s_BxWxHxM (batch, columns, rows, maps). Kernels are
k_3x3xMxO with the first spatial axis along W and the second along H, i.e. the
HWIO layout of `lax.conv_general_dilated` with our W playing its "H".
"""

from typing import Literal

import jax
import jax.numpy as jnp

ConvImpl = Literal["auto", "hybrid", "im2col", "xla"]
CONV_IMPLS = ("auto", "hybrid", "im2col", "xla")
_DIMS = ("NHWC", "HWIO", "NHWC")

# The "+1" that the CGRU adds to both gate pre-activations on top of the
# trainable bias: gates start mostly open, which keeps the state alive early on.
GATE_OFFSET = 1.0


def resolve_conv_impl(impl: ConvImpl) -> str:
  """'auto' picks the form that is fast on the default backend."""
  if impl == "auto":
    # XLA:CPU computes the kernel gradient of a convolution inside scan very
    # slowly (jax#12868); 'hybrid' takes that one gradient as a matmul. On GPU/TPU
    # the native convolution and its autodiff are fast.
    return "hybrid" if jax.default_backend() == "cpu" else "xla"
  if impl not in CONV_IMPLS:
    raise ValueError(f"conv_impl must be one of {CONV_IMPLS}, got {impl!r}")
  return impl


def _xla_conv(s_BxWxHxC, k_3x3xCxO):
  return jax.lax.conv_general_dilated(s_BxWxHxC, k_3x3xCxO, window_strides=(1, 1),
                                      padding="SAME", dimension_numbers=_DIMS)


def _patches(s_BxWxHxC):
  """BxWxHx9C: the 3x3 neighbourhood of every cell, tap (i, j) reading column w+i-1, row h+j-1."""
  _, w, h, _ = s_BxWxHxC.shape
  p_BxW2xH2xC = jnp.pad(s_BxWxHxC, ((0, 0), (1, 1), (1, 1), (0, 0)))
  return jnp.concatenate(
      [p_BxW2xH2xC[:, i:i + w, j:j + h, :] for i in range(3) for j in range(3)], axis=-1)


def _im2col_conv(s_BxWxHxC, k_3x3xCxO):
  # The kernel flattens (i, j, c) in the same order as _patches, so one matmul does all taps.
  return _patches(s_BxWxHxC) @ k_3x3xCxO.reshape(-1, k_3x3xCxO.shape[-1])


@jax.custom_vjp
def _hybrid_conv(s_BxWxHxC, k_3x3xCxO):
  return _xla_conv(s_BxWxHxC, k_3x3xCxO)


def _hybrid_fwd(s_BxWxHxC, k_3x3xCxO):
  return _xla_conv(s_BxWxHxC, k_3x3xCxO), (s_BxWxHxC, k_3x3xCxO)


def _hybrid_bwd(res, g_BxWxHxO):
  s_BxWxHxC, k_3x3xCxO = res
  # d/ds: the same SAME correlation with the kernel flipped in space and transposed.
  ds_BxWxHxC = _xla_conv(g_BxWxHxO, jnp.transpose(k_3x3xCxO[::-1, ::-1], (0, 1, 3, 2)))
  # d/dk as one matmul: the conv kernel gradient is what is slow in scan on CPU.
  dk_9CxO = jnp.einsum("bwhp,bwho->po", _patches(s_BxWxHxC), g_BxWxHxO)
  return ds_BxWxHxC, dk_9CxO.reshape(k_3x3xCxO.shape)


_hybrid_conv.defvjp(_hybrid_fwd, _hybrid_bwd)


def conv3x3(s_BxWxHxC: jax.Array, k_3x3xCxO: jax.Array, impl: str = "hybrid") -> jax.Array:
  """SAME 3x3 convolution (cross-correlation, stride 1) in one of three equal forms.

  'xla': lax.conv and its autodiff. 'im2col': pad + 9 shifted slices + one
  matmul. 'hybrid': lax.conv forward and input gradient, im2col kernel gradient.
  """
  if impl == "xla":
    return _xla_conv(s_BxWxHxC, k_3x3xCxO)
  if impl == "im2col":
    return _im2col_conv(s_BxWxHxC, k_3x3xCxO)
  return _hybrid_conv(s_BxWxHxC, k_3x3xCxO)


def sigmoid_cutoff(x: jax.Array, cutoff: float = 1.2) -> jax.Array:
  """clip(cutoff * sigmoid(x) - (cutoff - 1) / 2, 0, 1): reaches exactly 0 and 1."""
  return jnp.clip(cutoff * jax.nn.sigmoid(x) - 0.5 * (cutoff - 1.0), 0.0, 1.0)


def cgru(p: dict, s_BxWxHxM: jax.Array, *, cutoff: float = 1.2, impl: str = "hybrid") -> jax.Array:
  """One CGRU layer: u keeps the old state, r resets what the candidate reads.

  p holds 'gates_k' (3x3xMx2M, u then r), 'gates_b' (2M), 'cand_k' (3x3xMxM), 'cand_b' (M).
  """
  g_BxWxHx2M = conv3x3(s_BxWxHxM, p["gates_k"], impl) + p["gates_b"]
  u_BxWxHxM, r_BxWxHxM = jnp.split(sigmoid_cutoff(g_BxWxHx2M + GATE_OFFSET, cutoff), 2, axis=-1)
  c_BxWxHxM = jnp.tanh(conv3x3(r_BxWxHxM * s_BxWxHxM, p["cand_k"], impl) + p["cand_b"])
  return u_BxWxHxM * s_BxWxHxM + (1.0 - u_BxWxHxM) * c_BxWxHxM


def step(p_layers: dict, s_BxWxHxM: jax.Array, mask_BxWx1x1: jax.Array, *,
         cutoff: float = 1.2, impl: str = "hybrid") -> jax.Array:
  """One Neural GPU step: L CGRU layers (leading axis of every leaf), masking after each."""
  n_layers = jax.tree.leaves(p_layers)[0].shape[0]
  for layer in range(n_layers):
    p = jax.tree.map(lambda a, i=layer: a[i], p_layers)
    # Columns past the input length must stay empty, or the padded width of the
    # bucket would change what the model computes.
    s_BxWxHxM = cgru(p, s_BxWxHxM, cutoff=cutoff, impl=impl) * mask_BxWx1x1
  return s_BxWxHxM
