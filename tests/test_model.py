"""Model: padding invariance, per-example readout, loss and metrics over all cells."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from ngpu_jax import cgru, model


@pytest.fixture(scope="module")
def params():
  return model.init(jax.random.key(0), n_symbols=13, n_classes=3, maps=6, layers=2, relax_copies=3)


def _apply(params, x, n, **kw):
  return jax.jit(lambda p, x, n: model.apply(p, x, n, **kw))(params, jnp.asarray(x), jnp.asarray(n))


def test_shapes(params):
  x = np.random.default_rng(0).integers(1, 13, (4, 9))
  logits = _apply(params, x, np.full(4, 9))
  assert logits.shape == (4, 9, 3)
  assert np.all(np.isfinite(logits))


def test_padding_does_not_change_answers(params):
  x = np.random.default_rng(1).integers(1, 13, (2, 7))
  n = np.array([7, 5])
  x[1, 5:] = 0
  narrow = _apply(params, x, n)
  wide = _apply(params, np.pad(x, ((0, 0), (0, 9))), n)
  np.testing.assert_allclose(wide[:, :7], narrow, rtol=1e-5, atol=1e-5)
  # The second example alone, at its own width, reads out after its own 5 steps.
  alone = _apply(params, x[1:, :5], n[1:])
  np.testing.assert_allclose(narrow[1, :5], alone[0], rtol=1e-5, atol=1e-5)


def test_readout_after_own_steps_differs_from_full_width(params):
  x = np.random.default_rng(2).integers(1, 13, (1, 8))
  x[0, 4:] = 0
  at4 = _apply(params, x, np.array([4]))
  at8 = _apply(params, x, np.array([8]))
  assert not np.allclose(at4[0, :4], at8[0, :4])


def test_remat_and_conv_forms_agree(params):
  x = np.random.default_rng(3).integers(1, 13, (2, 6))
  n = np.array([6, 6])
  base = _apply(params, x, n, conv_impl="im2col", remat=False)
  np.testing.assert_allclose(_apply(params, x, n, conv_impl="xla", remat=True), base, rtol=1e-4, atol=1e-4)
  for unroll in (4, 99):  # partial (6 = 4 + 2) and full; the gradient too, as training uses it
    np.testing.assert_allclose(_apply(params, x, n, conv_impl="im2col", remat=False,
                                      scan_unroll=unroll), base, rtol=1e-5, atol=1e-5)

  def grad(**kw):
    loss = lambda p: jnp.sum(model.apply(p, jnp.asarray(x), jnp.asarray(n), **kw) ** 2)
    return jax.tree.leaves(jax.jit(jax.grad(loss))(params))
  for g1, g4 in zip(grad(), grad(scan_unroll=4)):
    np.testing.assert_allclose(g4, g1, rtol=1e-4, atol=1e-5)


def test_dropout_changes_output_only_when_on(params):
  x = np.random.default_rng(4).integers(1, 13, (2, 6))
  n = np.array([6, 6])
  key = jax.random.key(9)
  a = _apply(params, x, n, dropout_rate=0.2, dropout_key=key)
  b = _apply(params, x, n, dropout_rate=0.2, dropout_key=key)
  np.testing.assert_array_equal(a, b)  # deterministic given the key
  assert not np.allclose(a, _apply(params, x, n))
  assert model.dropout_rate_for(20, 0.15) == pytest.approx(0.06)


def test_loss_and_metrics_count_all_active_cells():
  # 2 examples, width 4, 3 classes; example 0 active on 3 columns, example 1 on 2.
  y = jnp.array([[1, 2, 0, 0], [2, 0, 0, 0]])
  n = jnp.array([3, 2])
  pred = jnp.array([[1, 2, 1, 2], [2, 1, 0, 0]])  # ex 0 wrong at col 2 (digit where blank); ex1 wrong at col 1
  logits = 10.0 * jax.nn.one_hot(pred, 3)
  loss, m = model.loss_and_metrics(logits, y, n)
  assert int(m["seq_wrong"]) == 2 and int(m["sym_wrong"]) == 2 and int(m["sym_total"]) == 5
  # Columns past n are ignored: a wrong prediction at ex 0 col 3 did not count.
  logp = jax.nn.log_softmax(logits)
  want = -(logp[0, 0, 1] + logp[0, 1, 2] + logp[0, 2, 0] + logp[1, 0, 2] + logp[1, 1, 0]) / 8
  assert float(loss) == pytest.approx(float(want), rel=1e-6)
  _, m = model.loss_and_metrics(10.0 * jax.nn.one_hot(y, 3), y, n)
  assert int(m["seq_wrong"]) == 0 and int(m["sym_wrong"]) == 0
