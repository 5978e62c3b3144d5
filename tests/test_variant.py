"""The DNGPU parts, each on its own: hard functions, diagonal gates, offsets, 1-D state,
candidate dropout, saturation cost and its weight, all-bucket batches, AdaMax."""

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from ngpu_jax import (
  cgru,
  configlib,
  data,
  model,
  optim,
  parallel,
  schedule,
  steps,
  tasks,
  train,
  workdir_files,
)

from conftest import spec, tiny_config, tiny_dngpu_config


def test_hard_functions():
  x = jnp.array([-3.0, -1.0, -0.5, 0.0, 0.5, 1.0, 3.0])
  np.testing.assert_allclose(cgru.hard_sigmoid(x), [0, 0, 0.25, 0.5, 0.75, 1, 1])
  np.testing.assert_allclose(cgru.hard_tanh(x), [-1, -1, -0.5, 0, 0.5, 1, 1])


def test_diagonal_shift_moves_thirds_of_the_maps():
  s = jnp.arange(1 * 4 * 1 * 6, dtype=jnp.float32).reshape(1, 4, 1, 6)
  d = np.asarray(cgru.diagonal_shift(s))[0, :, 0]
  s = np.asarray(s)[0, :, 0]
  np.testing.assert_array_equal(d[1:, :2], s[:-1, :2])  # from the left neighbour
  np.testing.assert_array_equal(d[0, :2], 0)
  np.testing.assert_array_equal(d[:-1, 2:4], s[1:, 2:4])  # from the right neighbour
  np.testing.assert_array_equal(d[-1, 2:4], 0)
  np.testing.assert_array_equal(d[:, 4:], s[:, 4:])  # unshifted


def test_diagonal_keep_path_with_open_gate():
  m = 6
  p = {
    "gates_k": jnp.zeros((3, 3, m, 2 * m)),
    "gates_b": jnp.full((2 * m,), 10.0),
    "cand_k": jnp.zeros((3, 3, m, m)),
    "cand_b": jnp.zeros((m,)),
  }
  s = jax.random.normal(jax.random.key(0), (2, 5, 4, m))
  out, _ = cgru.cgru(p, s, cell=cgru.Cell(diagonal=True))
  np.testing.assert_allclose(out, cgru.diagonal_shift(s), atol=1e-6)


def test_gate_offsets_and_saturation_cost():
  m = 2
  p = {
    "gates_k": jnp.zeros((3, 3, m, 2 * m)),
    "gates_b": jnp.zeros((2 * m,)),
    "cand_k": jnp.zeros((3, 3, m, m)),
    "cand_b": jnp.full((m,), 2.0),
  }
  s = jnp.ones((1, 3, 1, m))
  cell = cgru.Cell(gate="hard_sigmoid", candidate="hard_tanh", u_offset=0.7, r_offset=0.5)
  out, sat = cgru.cgru(p, s, cell=cell)
  u = 0.5 * 0.7 + 0.5
  np.testing.assert_allclose(out, u * 1.0 + (1 - u) * 1.0, rtol=1e-6)  # hard_tanh(2) = 1
  # Only the candidate pre-activation (2.0) is past 0.9: 1.1 per cell, 3 columns x 2 maps.
  assert float(sat) == pytest.approx(1.1 * 6, rel=1e-5)
  mask = jnp.array([1.0, 1.0, 0.0])[None, :, None, None]
  _, sat = cgru.cgru(p, s, cell=cell, mask_BxWx1x1=mask)
  assert float(sat) == pytest.approx(1.1 * 4, rel=1e-5)


@pytest.mark.parametrize("impl", ["im2col", "hybrid", "xla"])
def test_one_row_state_uses_3x1_kernels(impl):
  params = model.init(
    jax.random.key(0), n_symbols=13, n_classes=3, maps=6, layers=1, relax_copies=1, kernel_rows=1
  )
  assert params["steps"]["gates_k"].shape == (1, 1, 3, 1, 6, 12)
  x = jnp.asarray(np.random.default_rng(0).integers(1, 13, (2, 7)))
  n = jnp.array([7, 5])
  sp = spec(rows=1, dropout=0.0)  # trained: the gradient as training takes it (remat)
  loss = lambda p, conv: jnp.sum(
    model.apply(p, x, n, sp._replace(conv_impl=conv), train=True).logits_BxWxC ** 2
  )
  f, ref = (lambda p: loss(p, impl)), (lambda p: loss(p, "xla"))
  np.testing.assert_allclose(f(params), ref(params), rtol=1e-5)
  for a, b in zip(jax.tree.leaves(jax.grad(f)(params)), jax.tree.leaves(jax.grad(ref)(params))):
    np.testing.assert_allclose(a, b, rtol=1e-3, atol=1e-5)


def test_candidate_dropout_is_used_only_where_asked():
  params = model.init(
    jax.random.key(0), n_symbols=13, n_classes=3, maps=6, layers=2, relax_copies=1
  )
  x = jnp.asarray(np.random.default_rng(1).integers(1, 13, (2, 6)))
  n = jnp.array([6, 6])
  key = jax.random.key(3)
  on_c, on_s = (
    spec(dropout=0.3, dropout_by_length=False, dropout_on=where) for where in ("candidate", "state")
  )
  logits = lambda sp, **kw: model.apply(params, x, n, sp, **kw).logits_BxWxC
  plain = logits(on_c._replace(dropout=0.0))
  trained_c = logits(on_c, train=True, dropout_key=key)
  assert not np.allclose(plain, trained_c)
  assert not np.allclose(trained_c, logits(on_s, train=True, dropout_key=key))
  # not asked: evaluating (train=False) with a key, training with rate 0, training without a key
  for sp, kw in (
    (on_c, {"dropout_key": key}),
    (on_c._replace(dropout=0.0), {"train": True, "dropout_key": key}),
    (on_c, {"train": True}),
  ):
    np.testing.assert_allclose(logits(sp, **kw), plain, rtol=1e-6, atol=1e-6)


def test_saturation_cost_is_the_hand_count_and_pulls_on_the_biases():
  """With zero step kernels every pre-activation is its bias plus the gate offset, whatever the
  state: the cost per active column and step is then a sum over layers, rows, maps and the
  three pre-activations, of how far each is past the limit 0.9. Padding columns count nothing."""
  maps, layers = 6, 2
  params = model.init(
    jax.random.key(0),
    n_symbols=13,
    n_classes=3,
    maps=maps,
    layers=layers,
    relax_copies=1,
    kernel_rows=1,
  )
  zero = jax.tree.map(jnp.zeros_like, params["steps"])
  zero["gates_b"] = zero["gates_b"].at[..., :maps].set(0.5)  # u: 0.5 + 0.7 = 1.2, 0.3 past
  zero["gates_b"] = zero["gates_b"].at[..., maps:].set(-2.0)  # r: -2.0 + 0.5 = -1.5, 0.6 past
  zero["cand_b"] = zero["cand_b"].at[..., :2].set(0.95)  # c: 0.05 past on two maps, 0 else
  params = {**params, "steps": zero}
  cell = cgru.Cell(gate="hard_sigmoid", candidate="hard_tanh", u_offset=0.7, r_offset=0.5)
  sp = spec(rows=1, cell=cell, saturation=True)
  x = np.random.default_rng(0).integers(1, 13, (2, 5))
  x[0, 3:] = 0
  n = np.array([3, 5])
  cost = lambda p: model.apply(p, x, n, sp).saturation
  assert float(cost(params)) == pytest.approx(
    layers * (maps * 0.3 + maps * 0.6 + 2 * 0.05), rel=1e-5
  )
  assert float(model.apply(params, x, n, sp._replace(saturation=False)).saturation) == 0.0
  # d cost / d bias: the sign of a saturated pre-activation (one row: one cell per column), else 0
  g = jax.grad(cost)(params)["steps"]
  np.testing.assert_allclose(g["gates_b"][..., :maps], 1.0, rtol=1e-5)
  np.testing.assert_allclose(g["gates_b"][..., maps:], -1.0, rtol=1e-5)
  np.testing.assert_allclose(g["cand_b"][..., :2], 1.0, rtol=1e-5)
  np.testing.assert_array_equal(g["cand_b"][..., 2:], 0.0)


def _dngpu_config(**overrides):
  return tiny_dngpu_config(**overrides)


@pytest.mark.slow
def test_saturation_weight_enters_the_training_gradient():
  config = _dngpu_config()
  task, mesh = tasks.get_task("bmul"), parallel.make_mesh()
  opt = steps.make_optimizer(config)
  train_step = steps.make_train_step(config, opt, mesh)
  batches = train.training_batches(config, task, 0, 8, steps.bin_layout(config))
  args = tuple(parallel.global_batch(mesh, *b) for b in batches)
  m = {}
  for weight in (0.0, 1.0):  # from the same initial state (the step donates it: a fresh one)
    state = steps.init_state(config, task, opt, mesh)
    _, m[weight] = jax.device_get(
      train_step(state, args, np.float32(0.0), np.float32(1.0), np.float32(weight))
    )
  assert float(m[0.0]["saturation"]) > 0 and m[0.0]["saturation"] == m[1.0]["saturation"]
  assert m[0.0]["loss"] == m[1.0]["loss"]  # the task loss alone; the weighted cost is added
  assert float(m[1.0]["grad_norm"]) != pytest.approx(float(m[0.0]["grad_norm"]), rel=1e-3)


def test_saturation_weight_rule():
  s = schedule.Schedule(cur_length=41, pull=0.0, sat_weight=1e-3)
  d = schedule.Decision(
    0.5,
    loss=2.0,
    advanced=False,
    pull_raised=False,
    average=False,
    decay_lr=False,
    saturation=4000.0,
  )
  schedule.adapt_saturation_weight(s, d, learning_rate=0.5, lo=1e-20, hi=1e-3)
  # weighted term w * cost becomes lr * loss, whatever w was before
  assert s.sat_weight == pytest.approx(0.5 * 2.0 / 4000.0)
  schedule.adapt_saturation_weight(s, d, learning_rate=0.5, lo=1e-20, hi=1e-3)
  assert s.sat_weight == pytest.approx(0.5 * 2.0 / 4000.0)  # a fixed point, no geometric decay
  schedule.adapt_saturation_weight(
    s, dataclasses.replace(d, loss=1e6), learning_rate=0.5, lo=1e-20, hi=1e-3
  )
  assert s.sat_weight == 1e-3  # clipped
  schedule.adapt_saturation_weight(
    s, dataclasses.replace(d, saturation=0.0), learning_rate=0.5, lo=1e-20, hi=1e-3
  )
  assert s.sat_weight == 1e-3  # no saturation measured: unchanged


def test_all_bucket_batches():
  task = tasks.get_task("bmul")
  lengths = data.all_bucket_lengths((8, 12, 16, 20, 24, 28, 32, 36, 41, 48), 41)
  assert lengths == [8, 12, 16, 20, 24, 28, 32, 36, 41]
  batches = data.all_bucket_batches(task, 0, 5, 4, lengths)
  assert [b.x_BxW.shape for b in batches] == [(4, n) for n in lengths]
  assert all(np.all(b.n_B == b.x_BxW.shape[1]) for b in batches)


def test_spread_bins_cover_every_length_with_exact_problems():
  task = tasks.get_task("badd")
  lengths = [8, 12, 16]
  seen = set()
  for step in range(20):
    batches = data.all_bucket_batches(task, 0, step, 8, lengths, spread_from=3)
    again = data.all_bucket_batches(task, 0, step, 8, lengths, spread_from=3)
    assert all(np.array_equal(a, b) for x, y in zip(batches, again) for a, b in zip(x, y))
    for lo, w, b in zip([3, 9, 13], lengths, batches):
      assert b.x_BxW.shape == (8, w) and np.all((lo <= b.n_B) & (b.n_B <= w))
      for x, y, n in zip(b.x_BxW.tolist(), b.y_BxW.tolist(), b.n_B.tolist()):
        assert not any(x[n:]) and not any(y[n:])  # PAD past the problem's own length
        assert y[:n] == task.target(x[:n])
        assert task.problem_length(x[:n]) == 2 * ((n - 1) // 2) + 1  # operands of (n - 1) // 2 bits
      seen.update(b.n_B.tolist())
  assert seen == set(range(3, 17))
  with pytest.raises(ValueError, match="spread bins need ascending lengths from 10"):
    data.all_bucket_batches(task, 0, 0, 8, lengths, spread_from=10)


def test_adamax_with_per_element_clipping():
  tx = optim.make_optimizer(
    learning_rate=1e-3,
    adam_eps=1e-4,
    clip_norm=0.5,
    noise_scale=0.0,
    name="adamax",
    clip_mode="element",
  )
  p = {"w": jnp.zeros(3)}
  st = tx.init(p)
  u, _ = tx.update({"w": jnp.array([10.0, -0.1, 0.0])}, st, p)
  # AdaMax's first step is -lr * g / (|g| + eps) with g clipped to [-0.5, 0.5] element-wise.
  np.testing.assert_allclose(
    u["w"], [-1e-3 * 0.5 / (0.5 + 1e-4), 1e-3 * 0.1 / (0.1 + 1e-4), 0.0], rtol=1e-5
  )
  assert optim.get_learning_rate(st) == pytest.approx(1e-3)


@pytest.mark.slow
@pytest.mark.parametrize("bin_lengths", ["exact", "spread"])
def test_dngpu_variant_trains_from_the_loop(tmp_path, monkeypatch, bin_lengths):
  config = _dngpu_config(
    **{"num_steps": 10, "curriculum.bin_lengths": bin_lengths, "eval.every": 10}
  )
  made, make = {}, train.training_batches

  def spy(config, task, step, cur_length, layout=None):
    made[step] = make(config, task, step, cur_length, layout)
    return made[step]

  monkeypatch.setattr(train, "training_batches", spy)
  result = train.train_and_evaluate(config, str(tmp_path))
  assert result["step"] == 10
  # No curriculum: from the first step on, every step trains on every bin, 6 and 8; the exact
  # bins hold problems of the bin's length only, the spread ones every length from 3 up.
  assert set(range(10)) <= set(made)
  seen = set()
  for step in range(10):
    assert [b.x_BxW.shape for b in made[step]] == [(4, 6), (4, 8)]
    for lo, b in zip((3, 7), made[step], strict=True):
      width = b.x_BxW.shape[1]
      assert (
        np.all(b.n_B == width)
        if bin_lengths == "exact"
        else np.all((lo <= b.n_B) & (b.n_B <= width))
      )
      seen.update(b.n_B.tolist())
  assert seen == ({6, 8} if bin_lengths == "exact" else set(range(3, 9)))
  lines = [m for m in workdir_files.read_metrics(str(tmp_path)) if m["kind"] == "train"]
  assert [m["step"] for m in lines] == [5, 10]
  assert all(m["saturation"] > 0 for m in lines)  # measured: hard functions past 0.9


def test_squash_input_bounds_the_initial_state_and_counts_its_saturation():
  params = model.init(
    jax.random.key(0), n_symbols=13, n_classes=3, maps=6, layers=1, relax_copies=1, kernel_rows=1
  )
  params["embed_proj"]["k"] = params["embed_proj"]["k"] * 50.0  # input far past +-1
  x = jnp.array([[2, 3, 11, 2, 2, 0, 0]])
  n = jnp.array([5])
  hard = spec(rows=1, cell=cgru.Cell(gate="hard_sigmoid", candidate="hard_tanh"))
  squash = lambda sp: sp._replace(cell=sp.cell._replace(squash_input=True))
  states = lambda sp: model.apply(params, x, n, sp, keep_states=True).states_TxBxWxHxM
  # a state read before any update would be the input; after one hard-gated step the
  # state is a convex mix of the (shifted) old state and a candidate in [-1, 1]
  assert float(jnp.max(jnp.abs(states(hard)[0]))) > 2.0
  for sp in (hard, hard._replace(saturation=True)):  # with the saturation cost or without
    assert float(jnp.max(jnp.abs(states(squash(sp))[0]))) <= 1.0 + 1e-6
  # with zero step kernels and offsets no step pre-activation saturates: what is
  # left is the input's own saturation, counted once per step
  zero = {**params, "steps": jax.tree.map(jnp.zeros_like, params["steps"])}
  sp = hard._replace(cell=hard.cell._replace(u_offset=0.0, r_offset=0.0), saturation=True)
  a, b = (model.apply(zero, x, n, s).saturation for s in (sp, squash(sp)))
  assert float(a) == 0.0 and float(b) > 0.0


def test_kernel_init_scale():
  small = model.init(
    jax.random.key(0),
    n_symbols=13,
    n_classes=3,
    maps=48,
    layers=1,
    relax_copies=1,
    kernel_rows=1,
    kernel_scale=1.0,
  )
  big = model.init(
    jax.random.key(0), n_symbols=13, n_classes=3, maps=48, layers=1, relax_copies=1, kernel_rows=1
  )
  bound = (3.0 / (3 * 48)) ** 0.5
  assert float(jnp.max(jnp.abs(small["steps"]["cand_k"]))) <= bound
  np.testing.assert_allclose(big["steps"]["cand_k"], 1.8 * small["steps"]["cand_k"], rtol=1e-5)


def test_bin_groups_minimise_padded_work():
  import itertools

  lengths = [8, 12, 16, 20, 25, 28, 31, 36, 41]
  for k in range(1, 10):
    groups = data.bin_groups(lengths, k)
    assert [n for g in groups for n in g] == lengths and len(groups) == min(k, 9)
    cost = sum(len(g) * max(g) ** 2 for g in groups)
    best = min(
      sum(len(g) * max(g) ** 2 for g in _splits(lengths, cuts))
      for cuts in itertools.combinations(range(1, 9), k - 1)
    )
    assert cost == best
  assert data.bin_groups(lengths, 0) == [[n] for n in lengths]


def _splits(xs, cuts):
  bounds = [0, *cuts, len(xs)]
  return [xs[a:b] for a, b in zip(bounds, bounds[1:])]


@pytest.mark.slow
def test_packed_bins_train_exactly_like_one_scan_per_bin():
  """Same problems, loss, metrics and update (dropout off: its masks differ by design)."""
  from ngpu_jax import parallel, steps

  task = tasks.get_task("badd")
  mesh = parallel.make_mesh()
  results = []
  for groups in (0, 2):
    config = tiny_config(
      "badd",
      **{
        "model.rows": 1,
        "model.layers": 1,
        "model.maps": 6,
        "model.gate": "hard_sigmoid",
        "model.candidate": "hard_tanh",
        "model.dropout": 0.0,
        "model.dropout_by_length": False,
        "saturation.enabled": True,
        "relax.copies": 1,
        "curriculum.mode": "all_buckets",
        "curriculum.bin_groups": groups,
        "buckets": (6, 8, 12, 16),
        "curriculum.max_length": 16,
        "optim.name": "clipped_adamax",
        "optim.clip_mode": "none",
      },
    )
    opt = steps.make_optimizer(config)
    state = steps.init_state(config, task, opt, mesh)
    bins = data.all_bucket_batches(task, 0, 0, 4, data.all_bucket_lengths(config.buckets, 16))
    batches = data.pack(bins, steps.bin_layout(config))
    assert len(batches) == (4 if groups == 0 else 2)
    args = tuple(parallel.global_batch(mesh, *b) for b in batches)
    state, m = steps.make_train_step(config, opt, mesh)(
      state, args, np.float32(0.0), np.float32(1.0), np.float32(0.0)
    )
    results.append((jax.device_get(m), jax.device_get(state.params)))
  (m0, p0), (m1, p1) = results
  for key in ("loss", "seq_wrong", "sym_wrong", "sym_total", "examples"):
    np.testing.assert_allclose(m0[key], m1[key], rtol=1e-5)
  jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-6), p0, p1)


def test_packing_with_length_scaled_dropout_is_refused():
  config = tiny_config("badd", **{"curriculum.mode": "all_buckets", "curriculum.bin_groups": 2})
  with pytest.raises(ValueError, match="curriculum.bin_groups: packing bins needs"):
    configlib.validate(config)
  for value, message in (
    ("wide", "must be exact or spread, got 'wide'"),
    ("spread", "must not exceed the first bin 8"),
  ):
    config = tiny_config(
      "badd",
      **{
        "curriculum.mode": "all_buckets",
        "buckets": (8, 12),
        "curriculum.bin_lengths": value,
        "curriculum.min_length": 9,
      },
    )
    with pytest.raises(ValueError, match=f"curriculum.bin_lengths: .*{message}"):
      configlib.validate(config)
  # The first bin is the one training uses: max_length when it is below every bucket.
  config = tiny_config(
    "badd",
    **{
      "curriculum.mode": "all_buckets",
      "buckets": (8, 12),
      "curriculum.bin_lengths": "spread",
      "curriculum.min_length": 7,
      "curriculum.start_length": 7,
      "curriculum.max_length": 6,
    },
  )
  with pytest.raises(ValueError, match="must not exceed the first bin 6"):
    configlib.validate(config)
  config = tiny_config("badd", **{"curriculum.bin_lengths": "spread"})
  with pytest.raises(ValueError, match="spread fills the bins of mode all_buckets; mode 'paper'"):
    configlib.validate(config)
