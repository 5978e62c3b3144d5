"""CGRU step: conv forms agree, gate saturation, masking, shapes."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from ngpu_jax import cgru, model


def _layer(key, m):
  k = jax.random.split(key, 4)
  return {
    "gates_k": 0.3 * jax.random.normal(k[0], (3, 3, m, 2 * m)),
    "gates_b": 0.1 * jax.random.normal(k[1], (2 * m,)),
    "cand_k": 0.3 * jax.random.normal(k[2], (3, 3, m, m)),
    "cand_b": 0.1 * jax.random.normal(k[3], (m,)),
  }


@pytest.mark.parametrize("shape", [(2, 7, 4, 5), (1, 3, 1, 2), (3, 12, 4, 8)])
def test_im2col_conv_matches_lax_conv(shape):
  key = jax.random.key(0)
  s = jax.random.normal(key, shape)
  k = jax.random.normal(jax.random.fold_in(key, 1), (3, 3, shape[-1], 6))
  want = jax.lax.conv_general_dilated(
    s, k, (1, 1), "SAME", dimension_numbers=("NHWC", "HWIO", "NHWC")
  )
  for impl in ("im2col", "hybrid", "xla"):
    np.testing.assert_allclose(cgru.conv3x3(s, k, impl), want, rtol=1e-5, atol=1e-5)


def test_conv_forms_agree_in_gradient():
  key = jax.random.key(1)
  s = jax.random.normal(key, (2, 6, 4, 4))
  k = jax.random.normal(jax.random.fold_in(key, 1), (3, 3, 4, 4))
  grads = [
    jax.grad(lambda s, k, impl=impl: jnp.sum(jnp.sin(cgru.conv3x3(s, k, impl))), argnums=(0, 1))(
      s, k
    )
    for impl in ("im2col", "hybrid", "xla")
  ]
  for other in grads[1:]:
    for a, b in zip(grads[0], other):
      np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-4)


def test_resolve_conv_impl():
  expected = {"cpu": "hybrid", "gpu": "im2col"}.get(jax.default_backend(), "xla")
  assert cgru.resolve_conv_impl("auto") == expected
  one_row = "im2col" if jax.default_backend() == "cpu" else expected
  assert cgru.resolve_conv_impl("auto", rows=1) == one_row
  assert cgru.resolve_conv_impl("xla") == "xla"
  with pytest.raises(ValueError, match="conv_impl"):
    cgru.resolve_conv_impl("fft")


def test_sigmoid_cutoff_saturates_exactly():
  x = jnp.array([-10.0, -2.5, 0.0, 2.5, 10.0])
  g = cgru.sigmoid_cutoff(x)
  np.testing.assert_allclose(g, [0.0, 0.0, 0.5, 1.0, 1.0], atol=1e-7)
  # Past ln(11) ~ 2.40 the gate is flat: no gradient flows.
  grad = np.asarray(jax.vmap(jax.grad(cgru.sigmoid_cutoff))(x))
  np.testing.assert_array_equal(grad[[0, 1, 3, 4]], 0.0)
  assert grad[2] == pytest.approx(1.2 * 0.25)


def test_cgru_keep_gate_fully_open_keeps_state():
  m = 3
  p = _layer(jax.random.key(2), m)
  # A huge bias on u (the first M gate maps) saturates the keep gate at 1.
  p["gates_k"] = jnp.zeros_like(p["gates_k"])
  p["gates_b"] = jnp.concatenate([jnp.full((m,), 10.0), jnp.zeros((m,))])
  s = jax.random.normal(jax.random.key(3), (2, 5, 4, m))
  np.testing.assert_allclose(cgru.cgru(p, s)[0], s, atol=1e-6)
  # And closed (u = 0): the state becomes the candidate tanh(conv(r*s) + b).
  p["gates_b"] = jnp.concatenate([jnp.full((m,), -10.0), jnp.full((m,), 10.0)])
  want = jnp.tanh(cgru.conv3x3(s, p["cand_k"]) + p["cand_b"])
  np.testing.assert_allclose(cgru.cgru(p, s)[0], want, atol=1e-5)


def test_gate_offset_is_plus_one():
  m = 2
  p = _layer(jax.random.key(4), m)
  p = {k: jnp.zeros_like(v) for k, v in p.items()}
  s = jnp.ones((1, 3, 1, m))
  # Zero kernels and biases: u = g(0 + 1) = 1.2 * sigmoid(1) - 0.1; candidate tanh(0) = 0.
  u = 1.2 * jax.nn.sigmoid(1.0) - 0.1
  np.testing.assert_allclose(cgru.cgru(p, s)[0], u * s, rtol=1e-6)


def test_step_masks_after_each_layer_and_shapes():
  m, layers = 4, 2
  key = jax.random.key(5)
  p = jax.tree.map(
    lambda *a: jnp.stack(a), *[_layer(jax.random.fold_in(key, i), m) for i in range(layers)]
  )
  s = jax.random.normal(key, (2, 6, 4, m))
  mask = (jnp.arange(6) < jnp.array([[3], [6]]))[:, :, None, None].astype(jnp.float32)
  out, _ = cgru.step(p, s, mask)
  assert out.shape == s.shape
  np.testing.assert_array_equal(out[0, 3:], 0.0)
  assert np.any(np.asarray(out[1, 3:]) != 0)  # the full-length example keeps its columns


def test_param_count_matches_paper():
  params = model.init(
    jax.random.key(0), n_symbols=13, n_classes=3, maps=24, layers=2, relax_copies=1
  )
  assert model.count_params(params["steps"]) == 31_248
  params6 = model.init(
    jax.random.key(0), n_symbols=13, n_classes=3, maps=24, layers=2, relax_copies=6
  )
  assert model.count_params(params6["steps"]) == 6 * 31_248


def test_init_ranges():
  params = model.init(
    jax.random.key(0), n_symbols=13, n_classes=3, maps=24, layers=2, relax_copies=2
  )
  limit = 1.8 * (3.0 / (9 * 24)) ** 0.5
  k = np.asarray(params["steps"]["cand_k"])
  assert np.abs(k).max() <= limit and np.abs(k).max() > 0.9 * limit
  np.testing.assert_array_equal(params["embed"][0], 0.0)
  assert np.abs(np.asarray(params["embed"])).max() <= 1.7
  # model.init's default draws the copies from one draw (relax.init='shared'); the independent
  # draws are tested in test_reference_protocol.py.
  np.testing.assert_array_equal(k[0], k[1])
