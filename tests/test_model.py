"""Model: padding invariance, per-example readout, loss and metrics over all cells."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from ngpu_jax import cgru, configlib, model

from conftest import spec


@pytest.fixture(scope="module")
def params():
  return model.init(jax.random.key(0), n_symbols=13, n_classes=3, maps=6, layers=2, relax_copies=3)


def _apply(params, x, n, *, train=False, dropout_key=None, **changes):
  """Logits of the paper model's spec with `changes` (dropout and remat only when training)."""
  sp = spec(**changes)
  f = lambda p, x, n: model.apply(p, x, n, sp, train=train, dropout_key=dropout_key).logits_BxWxC
  return jax.jit(f)(params, jnp.asarray(x), jnp.asarray(n))


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


@pytest.mark.parametrize(
  "changes",
  [
    {"dropout": 0.3},  # the paper's: on the state, rate by the width
    {"dropout": 0.3, "dropout_on": "candidate", "dropout_by_length": False, "saturation": True},
    {"dropout": 0.3, "readout": "final"},
    {
      "dropout": 0.3,
      "dropout_on": "candidate",
      "dropout_by_length": False,
      "saturation": True,
      "readout": "final_masked",
    },
  ],
  ids=["state_dropout", "candidate_dropout_saturation", "final_readout", "final_masked"],
)
def test_training_forward_and_loss_are_padding_invariant_given_the_width(params, changes):
  """A batch of width 7 padded to 16 and told its width gives the same logits, saturation and
  loss as at 7, dropout on (its masks are drawn width-first): what packed seeds rely on."""
  x = np.random.default_rng(5).integers(1, 13, (3, 7))
  n = np.array([7, 4, 6])
  for b, k in enumerate(n):
    x[b, k:] = 0
  y = np.random.default_rng(6).integers(0, 3, (3, 7))
  sp = spec(**changes)
  key = jax.random.key(4)

  def run(x, y, width):
    out = model.apply(params, x, n, sp, train=True, dropout_key=key, width=width)
    scored = model.readout_lengths(n, 7, sp.readout)
    loss, m = model.loss_and_metrics(out.logits_BxWxC, y, scored, width=width)
    return out.logits_BxWxC, out.saturation, loss, m["sym_wrong"]

  narrow = jax.jit(lambda x, y: run(x, y, None))(x, y)
  pad = ((0, 0), (0, 9))
  wide = jax.jit(lambda x, y, w: run(x, y, w))(np.pad(x, pad), np.pad(y, pad), jnp.int32(7))
  np.testing.assert_allclose(wide[0][:, :7], narrow[0], rtol=1e-5, atol=1e-5)
  for a, b in zip(wide[1:], narrow[1:]):
    np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
  if changes.get("saturation"):
    assert float(narrow[1]) > 0
  # Without the width the padded batch is another computation (rate, loss scale, masks).
  unaware = jax.jit(lambda x, y: run(x, y, None))(np.pad(x, pad), np.pad(y, pad))
  assert not np.isclose(float(unaware[2]), float(narrow[2]), rtol=1e-3)


def test_readout_is_the_state_after_exactly_n_steps(params):
  """Each example's logits are row 0 of its state after its own n-th step, through the
  readout, and match the state after no other step: the states come from the same run, so
  every reading shares the example's mask and only the step differs."""
  x = np.random.default_rng(2).integers(1, 13, (3, 8))
  n = np.array([3, 5, 8])
  for b, k in enumerate(n):
    x[b, k:] = 0
  out = jax.jit(lambda p, x, n: model.apply(p, x, n, spec(), keep_states=True))(params, x, n)
  assert out.states_TxBxWxHxM.shape == (8, 3, 8, 4, 6)
  readout = lambda s_WxM: s_WxM @ params["readout"]["k"] + params["readout"]["b"]
  for b, k in enumerate(n):
    after = [readout(out.states_TxBxWxHxM[t, b, :, 0, :]) for t in range(8)]  # after step t + 1
    np.testing.assert_allclose(out.logits_BxWxC[b], after[k - 1], rtol=1e-5, atol=1e-5)
    for t in range(8):
      if t != k - 1:
        assert not np.allclose(out.logits_BxWxC[b, :k], after[t][:k], rtol=1e-3, atol=1e-3), t


@pytest.mark.parametrize("changes", [{}, {"readout": "final_masked", "saturation": True}])
def test_float64_params_compute_in_float64_with_the_same_answers(params, changes):
  x = np.random.default_rng(4).integers(1, 13, (3, 8))
  n = np.array([8, 6, 3])
  single = _apply(params, x, n, **changes)
  with jax.enable_x64(True):
    wide = jax.tree.map(lambda a: a.astype(np.float64), params)
    double = _apply(wide, x, n, **changes)
    saturation = model.apply(wide, x, n, spec(**changes)).saturation
  assert double.dtype == saturation.dtype == np.float64
  np.testing.assert_allclose(double, single, rtol=1e-4, atol=1e-5)
  assert np.array_equal(np.argmax(double, -1), np.argmax(single, -1))


@pytest.mark.slow
def test_remat_and_conv_forms_agree(params):
  x = np.random.default_rng(3).integers(1, 13, (2, 6))
  n = np.array([6, 6])
  base = _apply(params, x, n, conv_impl="im2col", remat=False)
  np.testing.assert_allclose(
    _apply(params, x, n, train=True, conv_impl="xla", remat=True, dropout=0.0),
    base,
    rtol=1e-4,
    atol=1e-4,
  )
  for unroll in (4, 99):  # partial (6 = 4 + 2) and full; the gradient too, as training uses it
    np.testing.assert_allclose(
      _apply(params, x, n, conv_impl="im2col", remat=False, scan_unroll=unroll),
      base,
      rtol=1e-5,
      atol=1e-5,
    )

  def grad(**kw):
    sp = spec(dropout=0.0, **kw)
    loss = lambda p: jnp.sum(
      model.apply(p, jnp.asarray(x), jnp.asarray(n), sp, train=True).logits_BxWxC ** 2
    )
    return jax.tree.leaves(jax.jit(jax.grad(loss))(params))

  for g1, g4 in zip(grad(), grad(scan_unroll=4)):
    np.testing.assert_allclose(g4, g1, rtol=1e-4, atol=1e-5)


def _product_precisions(jaxpr):
  """The precision of every matmul and convolution in a jaxpr, its loops' bodies included."""
  out = []
  for eqn in jaxpr.eqns:
    if eqn.primitive.name in ("dot_general", "conv_general_dilated"):
      out.append(eqn.params["precision"])
    for v in eqn.params.values():
      for sub in v if isinstance(v, (tuple, list)) else (v,):
        sub = getattr(sub, "jaxpr", sub)  # a ClosedJaxpr's jaxpr
        if hasattr(sub, "eqns"):
          out += _product_precisions(sub)
  return out


@pytest.mark.parametrize("conv", ["xla", "im2col", "hybrid"])
def test_every_product_of_the_training_gradient_runs_at_the_configured_precision(params, conv):
  """GPUs run float32 products in TF32 unless told otherwise; the config tells every one of
  them, the hand-written backward pass of the 'hybrid' convolution included."""
  x, n = jnp.ones((2, 5), jnp.int32), jnp.array([5, 3])
  for precision, want in (("highest", jax.lax.Precision.HIGHEST), ("default", None)):
    sp = spec(conv_impl=conv, precision=precision, dropout_on="candidate")
    loss = lambda p: jnp.sum(
      model.apply(p, x, n, sp, train=True, dropout_key=jax.random.key(0)).logits_BxWxC ** 2
    )
    found = _product_precisions(jax.make_jaxpr(jax.grad(loss))(params).jaxpr)
    assert len(found) >= 6  # the step's two convolutions, forward and backward; embed; readout
    if want is None:
      assert all(p in (None, (jax.lax.Precision.DEFAULT,) * 2) for p in found), found
    else:
      assert all(p == (want, want) for p in found), found


def test_dropout_changes_output_only_when_on(params):
  x = np.random.default_rng(4).integers(1, 13, (2, 6))
  n = np.array([6, 6])
  key = jax.random.key(9)
  a = _apply(params, x, n, train=True, dropout_key=key, dropout=0.2, dropout_by_length=False)
  b = _apply(params, x, n, train=True, dropout_key=key, dropout=0.2, dropout_by_length=False)
  np.testing.assert_array_equal(a, b)  # deterministic given the key
  assert not np.allclose(a, _apply(params, x, n))
  assert model.dropout_rate_for(20, 0.15) == pytest.approx(0.06)


def test_loss_and_metrics_count_all_active_cells():
  # 2 examples, width 4, 3 classes; example 0 active on 3 columns, example 1 on 2.
  y = jnp.array([[1, 2, 0, 0], [2, 0, 0, 0]])
  n = jnp.array([3, 2])
  pred = jnp.array(
    [[1, 2, 1, 2], [2, 1, 0, 0]]
  )  # ex 0 wrong at col 2 (digit where blank); ex1 wrong at col 1
  logits = 10.0 * jax.nn.one_hot(pred, 3)
  loss, m = model.loss_and_metrics(logits, y, n)
  assert int(m["seq_wrong"]) == 2 and int(m["sym_wrong"]) == 2 and int(m["sym_total"]) == 5
  # Columns past n are ignored: a wrong prediction at ex 0 col 3 did not count.
  logp = jax.nn.log_softmax(logits)
  want = -(logp[0, 0, 1] + logp[0, 1, 2] + logp[0, 2, 0] + logp[1, 0, 2] + logp[1, 1, 0]) / 8
  assert float(loss) == pytest.approx(float(want), rel=1e-6)
  _, m = model.loss_and_metrics(10.0 * jax.nn.one_hot(y, 3), y, n)
  assert int(m["seq_wrong"]) == 0 and int(m["sym_wrong"]) == 0


def test_the_paper_config_builds_the_paper_cell():
  """cgru.Cell's defaults are the paper's CGRU; configlib.base must build exactly that cell."""
  s = model.Spec.from_config(configlib.base("badd"))
  assert s.cell == cgru.Cell()
  assert (s.rows, s.readout, s.dropout_on, s.saturation) == (4, "own_length", "state", False)
