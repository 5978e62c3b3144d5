"""The references' training protocol: each item checked against the behaviour it replaced."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from ngpu_jax import (
  carry_runs,
  configlib,
  data,
  evaluation,
  experiment_files,
  loading,
  model,
  optim,
  parallel,
  probes,
  schedule,
  steps,
  tasks,
  train,
  workdir_files,
)
from ngpu_jax.tools import aggregate

from conftest import spec, tiny_config


def _init(**kw):
  return model.init(
    jax.random.key(0), n_symbols=13, n_classes=3, maps=6, layers=2, relax_copies=3, **kw
  )


def test_relaxation_copies_start_independent_or_shared():
  independent = _init(relax_init="independent")["steps"]["cand_k"]
  shared = _init(relax_init="shared")["steps"]["cand_k"]
  assert not np.array_equal(independent[0], independent[1])
  assert not np.array_equal(independent[1], independent[2])
  np.testing.assert_array_equal(shared[0], shared[1])
  # Every copy has the range of one draw.
  limit = 1.8 * (3.0 / (9 * 6)) ** 0.5
  assert np.abs(np.asarray(independent)).max() <= limit
  config = tiny_config()
  assert config.relax.init == "independent"
  k = steps.init_params(config, tasks.get_task("badd"))["steps"]["gates_k"]
  assert not np.array_equal(k[0], k[1])


def _windows(rule, windows, **kw):
  """Runs end_window over (seq_wrong of 100, loss) windows; returns the decay flags."""
  sched = schedule.Schedule(cur_length=kw.pop("cur_length", 6), pull=kw.pop("pull", 0.1))
  flags = []
  for wrong, loss in windows:
    schedule.record(sched, wrong, 100, loss)
    d = schedule.end_window(
      sched,
      max_length=8,
      threshold=0.15,
      pull_factor=1.2,
      pull_max=0.1,
      relax=True,
      lr_decay=0.5,
      lr_decay_rule=rule,
      **kw,
    )
    flags.append(d.decay_lr)
  return flags, sched


def test_original_rule_skips_the_check_after_an_advance():
  # Three windows, then one that advances the curriculum (5% wrong), then a worse one: its
  # loss is on longer problems. 'worse_than_3' decays there; 'original' does not.
  windows = [(50, 1.0), (50, 0.9), (50, 0.8), (5, 0.7), (50, 1.5), (50, 1.6)]
  old, _ = _windows("worse_than_3", windows, pull=0.001)
  new, _ = _windows("original", windows, pull=0.001)
  assert old == [False, False, False, False, True, True]
  assert new == [False, False, False, False, False, True]


def test_original_rule_decays_at_averaging_below_five_percent():
  # The pull is at its maximum, so every window under the curriculum threshold averages;
  # losses fall, so 'worse_than_3' never fires.
  windows = [(10, 1.0), (4, 0.9), (3, 0.8), (8, 0.7)]
  old, _ = _windows("worse_than_3", windows, cur_length=8)
  new, sched = _windows("original", windows, cur_length=8)
  assert old == [False, False, False, False]
  assert new == [False, True, True, False]  # averaged at every window; 10% and 8% are too high
  assert sched.averaged == 4 and sched.lr_factor == 0.25


def test_readout_final_reads_every_example_after_the_full_width():
  params = _init(relax_init="shared")
  rng = np.random.default_rng(0)
  x_BxW = np.zeros((2, 8), np.int32)
  x_BxW[:, :5] = rng.integers(1, 13, (2, 5))
  n_B = np.array([5, 8], np.int32)
  f = jax.jit(
    lambda n, readout: model.apply(params, x_BxW, n, spec(readout=readout)).logits_BxWxC,
    static_argnums=1,
  )
  own, final = f(n_B, "own_length"), f(n_B, "final")
  full = f(np.array([8, 8], np.int32), "own_length")
  np.testing.assert_allclose(final, full, rtol=1e-6)  # as if every problem filled the bin
  assert not np.allclose(own[0], final[0])
  np.testing.assert_allclose(own[1], final[1], rtol=1e-6)
  np.testing.assert_array_equal(
    model.readout_lengths(jnp.array([5, 0, 8]), 8, "final"), [8, 0, 8]
  )  # batch-padding rows stay empty


def test_readout_final_masked_keeps_the_padding_empty_through_every_step():
  """The DNGPU's model: a short problem in a wide bin runs the bin's steps, but the columns past
  it stay zero (so it sees the same edge as a problem that fills the bin) and read blank's
  bias; with 'final' they compute, and what sits there reaches the answer."""
  params = _init(relax_init="shared")
  rng = np.random.default_rng(0)
  x_BxW = np.zeros((2, 8), np.int32)
  x_BxW[:, :5] = rng.integers(1, 13, (2, 5))
  x_BxW[1, 5:] = rng.integers(1, 13, 3)
  n_B = np.array([5, 8], np.int32)
  f = jax.jit(
    lambda x, readout: model.apply(params, x, n_B, spec(readout=readout), keep_states=True),
    static_argnums=1,
  )
  masked, final = f(x_BxW, "final_masked"), f(x_BxW, "final")
  s_TxBxWxHxM = np.asarray(masked.states_TxBxWxHxM)
  assert s_TxBxWxHxM.shape[0] == 8 and not s_TxBxWxHxM[:, 0, 5:].any()
  assert np.abs(s_TxBxWxHxM[-1, 0, :5]).max() > 0.1
  assert np.abs(np.asarray(final.states_TxBxWxHxM)[:, 0, 5:]).max() > 0.1
  np.testing.assert_allclose(
    masked.logits_BxWxC[0, 5:], np.broadcast_to(params["readout"]["b"], (3, 3))
  )
  np.testing.assert_allclose(masked.logits_BxWxC[1], final.logits_BxWxC[1], rtol=1e-6)
  assert not np.allclose(masked.logits_BxWxC[0, :5], final.logits_BxWxC[0, :5], atol=1e-4)
  # Whatever sits past the problem changes nothing under the mask, and the answer under 'final'.
  noisy = x_BxW.copy()
  noisy[0, 5:] = [3, 7, 11]
  np.testing.assert_array_equal(f(noisy, "final_masked").logits_BxWxC, masked.logits_BxWxC)
  assert not np.allclose(f(noisy, "final").logits_BxWxC[0, :5], final.logits_BxWxC[0, :5])


def test_final_masked_computes_on_the_columns_that_hold_a_symbol():
  """The DNGPU masks by 'input or target not blank': an even-length badd problem (its last
  column blank in both) computes as the odd-length one it is; a duplicate keeps the columns of
  its answer's second half, where the input is blank; batch-padding rows stay empty."""
  rng = np.random.default_rng(0)
  badd, dup = tasks.get_task("badd"), tasks.get_task("duplicate")
  x_BxW, y_BxW = np.zeros((4, 10), np.int32), np.zeros((4, 10), np.int32)
  x_BxW[0, :8], y_BxW[0, :8] = badd.sample(rng, 8)  # a + b in 7 columns, then a blank one
  x_BxW[1, :7], y_BxW[1, :7] = badd.sample(rng, 7)
  x_BxW[2, :9], y_BxW[2, :9] = dup.sample(rng, 9)
  n_B = np.array([8, 7, 9, 0], np.int32)
  masked = tiny_config(**{"model.readout": "final_masked"})
  lengths = steps.computing_lengths(masked, x_BxW, y_BxW, n_B)
  np.testing.assert_array_equal(lengths, [7, 7, 8, 0])
  for readout in ("own_length", "final"):
    config = tiny_config(**{"model.readout": readout})
    np.testing.assert_array_equal(steps.computing_lengths(config, x_BxW, y_BxW, n_B), n_B)
  # The even problem answers as its odd self; with its blank column computing it would not.
  params = steps.init_params(masked, badd)
  x2, y2 = np.stack([x_BxW[0]] * 2), np.stack([y_BxW[0]] * 2)

  def forward(n_B):
    return steps._forward(masked, params, x2, n_B).logits_BxWxC  # pylint: disable=protected-access

  even_B, odd_B = np.array([8, 8], np.int32), np.array([7, 7], np.int32)
  np.testing.assert_array_equal(
    forward(steps.computing_lengths(masked, x2, y2, even_B)), forward(odd_B)
  )
  assert not np.allclose(forward(even_B), forward(odd_B), atol=1e-5)


def test_readout_final_scores_every_column_of_the_bin():
  task = tasks.get_task("badd")
  mesh = parallel.make_mesh()
  batch = data.all_bucket_batches(task, 0, 0, 4, [8, 12], spread_from=3)[1]
  assert batch.n_B.min() < 12  # problems shorter than the bin
  counts = {}
  for readout in ("own_length", "final", "final_masked"):
    config = tiny_config(**{"model.readout": readout})
    params = steps.init_params(config, task)
    m = steps.make_eval_step(config, mesh)(params, *parallel.global_batch(mesh, *batch))
    counts[readout] = int(m["sym_total"])
  assert counts == {"own_length": int(batch.n_B.sum()), "final": 4 * 12, "final_masked": 4 * 12}


@pytest.mark.parametrize("readout", ["own_length", "final", "final_masked"])
def test_the_answers_of_an_eval_step_are_the_ones_it_counts(readout):
  """pred differs from the target exactly in the cells counted wrong, whatever the readout
  scores, so the column diagnosis and the table agree on a bin of shorter problems too."""
  task, mesh = tasks.get_task("badd"), parallel.make_mesh()
  batch = data.all_bucket_batches(task, 0, 0, 4, [8, 12], spread_from=3)[1]
  config = tiny_config(**{"model.readout": readout})
  params = steps.init_params(config, task)
  args = (params, *parallel.global_batch(mesh, *batch))
  plain = jax.device_get(steps.make_eval_step(config, mesh)(*args))
  m = jax.device_get(steps.make_eval_step(config, mesh, answers=True)(*args))
  wrong_BxW = np.asarray(m["pred_BxW"]) != np.asarray(m["target_BxW"])
  assert {k: int(m[k]) for k in plain} == {k: int(v) for k, v in plain.items()}
  assert int(m["sym_wrong"]) == wrong_BxW.sum() > 0
  assert int(m["seq_wrong"]) == wrong_BxW.any(1).sum()


def test_bins_take_a_fraction_of_shorter_problems():
  task = tasks.get_task("badd")
  lengths = [8, 12, 16, 20, 25, 28, 31, 36, 41]
  plain = data.all_bucket_batches(task, 0, 5, 32, lengths, spread_from=3)
  same = data.all_bucket_batches(task, 0, 5, 32, lengths, spread_from=3, shorter_fraction=0.0)
  for a, b in zip(plain, same):
    np.testing.assert_array_equal(a.x_BxW, b.x_BxW)
  short = total = 0
  for step in range(40):
    batches = data.all_bucket_batches(
      task, 0, step, 32, lengths, spread_from=3, shorter_fraction=0.05
    )
    for prev, b in zip(lengths, batches[1:]):
      short += int(np.sum(b.n_B <= prev))
      total += len(b.n_B)
      assert b.n_B.min() >= 3
    for b in batches:  # each problem is still exact at its own length
      for x, y, n in zip(b.x_BxW[:4], b.y_BxW[:4], b.n_B[:4]):
        assert list(y[:n]) == task.target(list(x[:n]))
        assert not x[n:].any() and not y[n:].any()
  assert 0.03 < short / total < 0.07
  assert all(not np.any(b.n_B <= 0) for b in plain)
  assert sum(int(np.sum(b.n_B <= p)) for p, b in zip(lengths, plain[1:])) == 0


def test_pooled_lengths_weigh_a_bin_by_its_distinct_problems():
  badd = tasks.get_task("badd")
  assert [badd.distinct_problems(n) for n in (3, 4, 5, 41)] == [4, 0, 16, 2**40]
  assert tasks.get_task("copy").distinct_problems(5) is None
  lengths = [8, 12, 16, 20, 25, 28, 31, 36, 41]
  seen = {n: [] for n in lengths}
  for step in range(60):
    kw = dict(spread_from=3, shorter_fraction=0.05, length_mix="distinct")
    batches = data.all_bucket_batches(badd, 0, step, 32, lengths, **kw)
    fast = data.all_bucket_batches(badd, 0, step, 32, lengths, vectorized=True, **kw)
    for n, b, f in zip(lengths, batches, fast):
      seen[n].extend(b.n_B.tolist())
      assert np.all(f.n_B % 2)  # fastgen packs by the same rule
      for g in (b, f):
        for x, y, m in zip(g.x_BxW[:2], g.y_BxW[:2], g.n_B[:2]):
          assert list(y[:m]) == badd.target(list(x[:m])) and not x[m:].any()
  share = lambda n, m: np.mean(np.array(seen[n]) == m)
  assert all(m % 2 for n in lengths for m in seen[n])  # an even length repeats a shorter one
  # 20-bit problems a third of bin 41 (uniform: a fifth), 3-bit ones 76% of bin 8 (uniform: 1/3)
  assert 0.28 < share(41, 41) < 0.38 and 0.70 < share(8, 7) < 0.82
  assert 0.15 < share(12, 9) < 0.25 and set(seen[28]) <= {27} | set(range(3, 26))
  shorter = np.mean([m <= p for p, n in zip(lengths, lengths[1:]) for m in seen[n]])
  assert 0.03 < shorter < 0.07
  # The shorter ones come from a previous bin chosen uniformly: bin 8's lengths are about
  # 1/8 of bin 41's shorter problems, not the ~0.3% that lengths weighed by problems give.
  short41 = np.array([m for m in seen[41] if m <= 36])
  assert np.mean(short41 <= 8) > 0.04
  uniform = data.all_bucket_batches(badd, 0, 3, 32, lengths, spread_from=3)
  assert any(np.any(b.n_B % 2 == 0) for b in uniform)
  spread = {"curriculum.mode": "all_buckets", "curriculum.bin_lengths": "spread"}
  configlib.validate(tiny_config(**spread, **{"curriculum.length_mix": "distinct"}))
  with pytest.raises(ValueError, match="curriculum.length_mix"):
    configlib.validate(tiny_config("copy", **spread, **{"curriculum.length_mix": "distinct"}))
  with pytest.raises(ValueError, match="curriculum.length_mix"):
    configlib.validate(tiny_config(**{"curriculum.length_mix": "distinct"}))  # exact bins


def test_zero_padded_targets():
  task = tasks.get_task("bmul")
  x = task.parse("11*11") + [0, 0, 0]  # 3 * 3 = 9 = 1001; the problem has length 5
  y = task.target(x)
  config = tiny_config("bmul", zero_pad_targets=True)
  padded = np.asarray(steps.scored_targets(config, jnp.array([y]), jnp.array([5])))[0]
  zero, one = tasks.digit_symbol(0), tasks.digit_symbol(1)
  assert list(padded) == [one, zero, zero, one, zero, 0, 0, 0]
  plain = np.asarray(steps.scored_targets(tiny_config("bmul"), jnp.array([y]), jnp.array([5])))
  assert list(plain[0]) == [one, zero, zero, one, 0, 0, 0, 0]
  with pytest.raises(ValueError, match="zero_pad_targets"):
    configlib.validate(tiny_config("copy", zero_pad_targets=True))


def test_onehot_input_path():
  p = _init(relax_init="shared", input_path="onehot")
  assert "embed_proj" not in p and p["embed_b"].shape == (6,)
  limit = (6.0 / (13 + 6)) ** 0.5
  assert 0.8 * limit < np.abs(np.asarray(p["embed"])).max() <= limit
  assert np.abs(np.asarray(p["embed"][0])).max() > 0  # the blank has a row of its own
  x = np.array([[3, 4, 11, 2, 0, 0]], np.int32)
  n = np.array([6], np.int32)
  moved = {**p, "embed": p["embed"].at[0].add(0.5)}
  # One-hot @ kernel: the blank's row reaches the state (the paper's path zeroes it).
  logits = lambda params: model.apply(params, x, n, spec()).logits_BxWxC
  assert not np.allclose(logits(p), logits(moved))
  old = _init(relax_init="shared")
  moved_old = {**old, "embed": old["embed"].at[0].add(0.5)}
  np.testing.assert_allclose(logits(old), logits(moved_old))
  # No tanh and no projection: the state starts at embed[x] + b.
  b = p["embed_b"] + 0.25
  zero_steps = {**p, "embed_b": b, "steps": jax.tree.map(jnp.zeros_like, p["steps"])}
  states = model.apply(zero_steps, x, n, spec(), keep_states=True).states_TxBxWxHxM
  # With zero kernels and biases each gate is constant, so step 1 scales the input.
  first_BxWxM = np.asarray(states[0][:, :, 0, :])
  start = np.asarray(p["embed"][x] + b)
  ratio = first_BxWxM / start
  np.testing.assert_allclose(ratio, ratio.flat[0], rtol=1e-5)


def test_lr_scaled_gradient_noise():
  tx = optim.neural_gpu_noise(scale=0.5, seed=1, kind="lr_scaled")
  zeros = {"w": jnp.zeros((200_000,))}
  noisy, _ = tx.update(zeros, tx.init(zeros), seq_error=0.0, learning_rate=0.1)
  # Truncated at 2 std, the normal's std shrinks to 0.88 of the scale; here 0.5 * 0.1.
  assert abs(float(jnp.std(noisy["w"])) / (0.05 * 0.8796) - 1) < 0.02
  paper = optim.neural_gpu_noise(scale=0.5, seed=1)
  quiet, _ = paper.update(zeros, paper.init(zeros), seq_error=0.0, learning_rate=0.1)
  assert float(jnp.abs(quiet["w"]).max()) == 0.0  # the paper's noise stops below 2% error
  with pytest.raises(ValueError, match="noise kind"):
    optim.neural_gpu_noise(scale=1.0, kind="pink")


@pytest.mark.slow
def test_lr_scaled_noise_follows_the_decayed_rate_in_training():
  config = tiny_config(
    **{"optim.noise_kind": "lr_scaled", "optim.noise_scale": 1.0, "optim.clip_mode": "none"}
  )
  task, mesh = tasks.get_task("badd"), parallel.make_mesh()
  opt = steps.make_optimizer(config)
  train_step = steps.make_train_step(config, opt, mesh)
  b = data.train_batch(task, 0, 0, 4, 3, 6, 8, (8,))
  mus = []
  for lr in (1e-2, 1e-5):
    state = steps.init_state(config, task, opt, mesh)
    state = state.replace(opt_state=optim.set_learning_rate(state.opt_state, lr))
    state, _ = train_step(
      state, (parallel.global_batch(mesh, *b),), np.float32(0.0), np.float32(0.0), np.float32(0.0)
    )
    mus.append(_adam_mu(jax.device_get(state.opt_state)))
  # Adam's first moment after one step is 0.1 * (gradient + noise), the gradient and the
  # noise draw the same in both: what differs is the noise's scale, lr x 1.0.
  diff = (mus[0] - mus[1]) / 0.1
  assert abs(np.std(diff) / ((1e-2 - 1e-5) * 0.8796) - 1) < 0.05


def _adam_mu(opt_state):
  found = [
    s.mu for s in jax.tree.leaves(opt_state, is_leaf=lambda s: hasattr(s, "mu")) if hasattr(s, "mu")
  ]
  return np.concatenate([np.ravel(a) for a in jax.tree.leaves(found)])


def test_periodic_evaluations_draw_fresh_problems():
  assert not np.array_equal(
    data.eval_rng(0, 41, 500).integers(0, 2, 64), data.eval_rng(0, 41, 1000).integers(0, 2, 64)
  )
  np.testing.assert_array_equal(
    data.eval_rng(0, 41, None).integers(0, 2, 64),
    np.random.default_rng([0, 41, 1]).integers(0, 2, 64),
  )


@pytest.mark.slow
@pytest.mark.parametrize("fresh", [True, False])
def test_training_evaluates_fresh_problems_each_time(tmp_path, monkeypatch, fresh):
  draws = []
  real = train.evaluation.evaluate_lengths

  def spy(*args, **kwargs):
    draws.append(args[-1])
    return real(*args, **kwargs)

  monkeypatch.setattr(train.evaluation, "evaluate_lengths", spy)
  config = tiny_config(**{"eval.fresh": fresh, "final_eval.lengths": ()})
  train.train_and_evaluate(config, str(tmp_path / "run"))
  assert draws[:2] == ([10, 20] if fresh else [None, None])


@pytest.mark.slow
def test_far_lengths_and_the_generalization_front(tmp_path):
  config = tiny_config(**{"eval.lengths": (8, 9), "eval.far_lengths": (12,), "eval.far_every": 20})
  workdir = str(tmp_path / "run")
  train.train_and_evaluate(config, workdir)
  lines = workdir_files.read_metrics(workdir)
  periodic = [
    (m["step"], m["eval_length"])
    for m in lines
    if m["kind"] == "eval" and not workdir_files.is_final_eval(m)
  ]
  assert periodic == [(10, 8), (10, 9), (20, 8), (20, 9), (20, 12)]
  fronts = [(m["step"], m["lengths"]) for m in lines if m["kind"] == "front"]
  assert fronts == [(10, [8, 9]), (20, [8, 9, 12])]
  with pytest.raises(ValueError, match="eval.far_every"):
    configlib.validate(tiny_config(**{"eval.far_every": 15, "eval.far_lengths": (12,)}))
  configlib.validate(tiny_config(**{"eval.far_every": 15}))  # no far lengths: not used


def test_training_measures_the_reach_of_its_carries_every_far_every_steps(tmp_path):
  config = tiny_config(**{"eval.reach_length": 21, "eval.far_every": 20, "eval.reach_examples": 3})
  workdir = str(tmp_path / "run")
  train.train_and_evaluate(config, workdir)
  lines = [m for m in workdir_files.read_metrics(workdir) if m["kind"] == "reach"]
  assert [(m["step"], m["carry_in"], m["split"]) for m in lines] == [
    (20, c, s) for c in (False, True) for s in probes.SPLITS
  ]
  # the same numbers from the step-20 model, scored apart from training
  loaded = loading.load_run(workdir)
  answer_step = steps.make_eval_step(loaded.config, loaded.mesh, answers=True)
  again = carry_runs.reach(
    answer_step, loaded.params, loaded.task, loaded.mesh, [21], 3, 8, loaded.config.seed
  )
  for m in lines:
    first_B = again[(21, int(m["carry_in"]), m["split"])]
    wrong_B = first_B[first_B >= 0]
    assert m["reach_length"] == 21 and m["examples"] == 3 and m["wrong"] == wrong_B.size
    assert m["lowest_wrong_column"] == (int(wrong_B.min()) if wrong_B.size else None)
  assert any(m["wrong"] for m in lines)  # 20 steps of a 4-map model do not carry
  for bad, match in (
    ({"eval.reach_length": 20}, "eval.reach_length: must be 0 .off. or an odd length >= 5"),
    ({"eval.reach_length": 3}, "eval.reach_length: must be 0 .off. or an odd length >= 5"),
    ({"eval.reach_examples": 0}, "eval.reach_examples: must be a positive whole number"),
  ):
    with pytest.raises(ValueError, match=match):
      configlib.validate(tiny_config(**bad))
  with pytest.raises(ValueError, match="measured on sums .badd, qadd, add., not 'copy'"):
    configlib.validate(tiny_config("copy", **{"eval.reach_length": 21}))


@pytest.mark.slow
@pytest.mark.parametrize(
  "gate, measured", [(1.0, [8, 9, 12, 16]), (0.5, [8, 9, 12]), (0.2, [8, 9])]
)
def test_far_lengths_stop_past_a_length_wrong_beyond_the_gate(
  tmp_path, monkeypatch, gate, measured
):
  seq_error = {8: 0.0, 9: 0.3, 12: 0.6, 16: 1.0}
  asked = []

  def scores(eval_step, params, task, mesh, lengths, *rest, **kwargs):
    asked.extend(lengths)
    return {n: {"seq_error": seq_error[n], "symbol_error": 0.0, "examples": 8} for n in lengths}

  monkeypatch.setattr(train.evaluation, "evaluate_lengths", scores)
  config = tiny_config(
    **{
      "eval.lengths": (8, 9),
      "eval.far_lengths": (16, 12),
      "eval.far_every": 10,
      "eval.far_gate": gate,
      "num_steps": 10,
      "final_eval.lengths": (),
    }
  )
  workdir = str(tmp_path / "run")
  train.train_and_evaluate(config, workdir)
  assert asked == measured
  fronts = [m["lengths"] for m in workdir_files.read_metrics(workdir) if m["kind"] == "front"]
  assert fronts == [measured]
  with pytest.raises(ValueError, match="eval.far_gate"):
    configlib.validate(tiny_config(**{"eval.far_gate": 1.5}))


def test_far_lengths_take_their_own_number_of_problems(tmp_path, monkeypatch):
  asked = []

  def scores(eval_step, params, task, mesh, lengths, examples, *rest, **kwargs):
    asked.extend((n, examples) for n in lengths)
    return {n: {"seq_error": 0.0, "symbol_error": 0.0, "examples": examples} for n in lengths}

  monkeypatch.setattr(train.evaluation, "evaluate_lengths", scores)
  config = tiny_config(
    **{
      "eval.lengths": (8, 9),
      "eval.far_lengths": (16, 12),
      "eval.far_every": 10,
      "eval.examples": 8,
      "eval.far_examples": 24,
      "num_steps": 10,
      "final_eval.lengths": (),
    }
  )
  workdir = str(tmp_path / "run")
  train.train_and_evaluate(config, workdir)
  assert asked == [(8, 8), (9, 8), (12, 24), (16, 24)]
  lines = [m for m in workdir_files.read_metrics(workdir) if m["kind"] == "eval"]
  assert [(m["eval_length"], m["examples"]) for m in lines] == asked
  with pytest.raises(ValueError, match="eval.far_examples"):
    configlib.validate(tiny_config(**{"eval.far_examples": -1}))


def test_generalization_front():
  r = lambda *errs: {n: {"seq_error": e} for n, e in zip((41, 51, 61, 401), errs)}
  assert evaluation.generalization_front(r(0.0, 0.0, 0.1, 0.0)) == 51
  assert evaluation.generalization_front(r(0.0, 0.0, 0.0, 0.0)) == 401
  assert evaluation.generalization_front(r(0.2, 0.0, 0.0, 0.0)) == 0


def test_a_check_that_wants_no_errors_ends_at_the_first_wrong_batch():
  """Batches 3 and 5 of 8 hold a wrong answer: the stopping score counts three batches."""
  mesh, task = parallel.make_mesh(), tasks.get_task("badd")
  batches = iter(range(100))

  def eval_step(params, x_BxW, y_BxW, n_B):
    wrong = next(batches) in (2, 4)
    return {"seq_wrong": int(wrong), "sym_wrong": int(wrong), "sym_total": 4 * 9}

  rng = np.random.default_rng(0)
  make = lambda bs: data.make_batch(task, rng, bs, 9, 9)
  bs = evaluation.batch_size_for(4, mesh.devices.size)
  stopped = evaluation.score(eval_step, None, mesh, make, 8 * bs, bs, stop_on_error=True)
  assert stopped["examples"] == 3 * bs and stopped["seq_error"] == 1 / (3 * bs)
  batches = iter(range(100))
  full = evaluation.score(eval_step, None, mesh, make, 8 * bs, bs)
  assert full["examples"] == 8 * bs and full["seq_error"] == 2 / (8 * bs)


class _Canned:
  """Evaluation results by length, for the stop rule."""

  def __init__(self, wrong):
    self.wrong, self.calls, self.checks = wrong, [], []

  def __call__(
    self,
    eval_step,
    params,
    task,
    mesh,
    lengths,
    examples,
    batch_size,
    seed,
    draw=None,
    stop_on_error=False,
  ):
    self.calls.append(list(lengths))
    self.checks.append((batch_size, stop_on_error))
    return {
      n: {"seq_error": 0.5 if n in self.wrong else 0.0, "symbol_error": 0.0, "examples": examples}
      for n in lengths
    }


@pytest.mark.parametrize(
  "rule, wrong, step, solved, calls",
  [
    ("exact_at_eval_lengths", (), 10, True, [[8, 9]]),
    ("exact_at_long", (), 10, False, [[8, 9]]),  # far lengths not evaluated
    ("exact_at_long", (12,), 20, False, [[8, 9, 12]]),  # wrong at the far length
    ("exact_at_long", (40,), 20, False, [[8, 9, 12], [40]]),  # wrong at the long length
    ("exact_at_long", (), 20, True, [[8, 9, 12], [40]]),
  ],
)
@pytest.mark.slow
def test_stop_rules(tmp_path, monkeypatch, rule, wrong, step, solved, calls):
  config = tiny_config(
    **{
      "eval.lengths": (8, 9),
      "eval.far_lengths": (12,),
      "eval.far_every": 20,
      "final_eval.long_lengths": (40,),
      "stop_when_solved": True,
      "stop_rule": rule,
      "curriculum.start_length": 8,
    }
  )
  canned = _Canned(wrong)
  monkeypatch.setattr(train.evaluation, "evaluate_lengths", canned)
  task = tasks.get_task("badd")
  run = train._Run(config, str(tmp_path), parallel.make_mesh(), task)  # pylint: disable=protected-access
  try:
    run.step = step
    assert run.periodic_eval() == solved
    assert canned.calls == calls
    # the long check alone runs in small batches and ends at its first wrong answer
    long_check = [(config.final_eval.check_batch_size, True)] if len(calls) == 2 else []
    assert canned.checks == [(config.eval.batch_size, False)] + long_check
  finally:
    run.close()


@pytest.mark.slow
def test_averaging_the_copies_averages_the_moving_average_too():
  config = tiny_config(**{"optim.ema_decay": 0.9, "relax.copies": 3})
  task, mesh = tasks.get_task("badd"), parallel.make_mesh()
  opt = steps.make_optimizer(config)
  state = steps.init_state(config, task, opt, mesh)
  adjust = steps.make_adjust(mesh)
  ema = np.asarray(steps.eval_params(state)["steps"]["cand_k"])
  assert not np.allclose(ema[0], ema[1])  # independent copies, in the average too
  state = adjust(state, np.bool_(True), np.float32(1e-3))
  ema_after = np.asarray(steps.eval_params(state)["steps"]["cand_k"])
  np.testing.assert_allclose(ema_after[0], ema_after[2])
  np.testing.assert_allclose(ema_after[0], np.mean(np.asarray(ema), axis=0), rtol=1e-6)
  kept = adjust(steps.init_state(config, task, opt, mesh), np.bool_(False), np.float32(1e-3))
  np.testing.assert_array_equal(steps.eval_params(kept)["steps"]["cand_k"], ema)


def _nan_at(monkeypatch, bad_steps):
  """make_train_step whose metrics report a NaN loss at the given (0-based) steps."""
  real = steps.make_train_step

  def make(config, optimizer, mesh):
    step_fn = real(config, optimizer, mesh)
    seen = []

    def wrapped(state, *args):
      step = int(state.step)
      state, m = step_fn(state, *args)
      if step in bad_steps and step not in seen:
        seen.append(step)
        m = {**m, "loss": jnp.float32(np.nan)}
      return state, m

    return wrapped

  monkeypatch.setattr(train.steps, "make_train_step", make)


@pytest.mark.slow
def test_a_non_finite_loss_rolls_back_with_a_lower_rate(tmp_path, monkeypatch):
  _nan_at(monkeypatch, {12})
  config = tiny_config(**{"optim.lr_decay": 1.0})
  workdir = str(tmp_path / "run")
  out = train.train_and_evaluate(config, workdir)
  assert out["step"] == 20
  lines = workdir_files.read_metrics(workdir)
  rollbacks = [m for m in lines if m["kind"] == "rollback"]
  assert len(rollbacks) == 1
  assert rollbacks[0]["step"] == 10 and rollbacks[0]["failed_at"] == 15
  assert rollbacks[0]["lr_factor"] == 0.5 and "loss nan at step 13" in rollbacks[0]["reason"]
  lrs = [m["lr"] for m in lines if m["kind"] == "train"]
  assert lrs == pytest.approx([1e-3, 1e-3, 5e-4, 5e-4])  # steps 5, 10 | 15, 20 after it
  loaded = loading.load_run(workdir)
  assert loaded.step == 20


@pytest.mark.slow
def test_rollbacks_are_bounded(tmp_path, monkeypatch):
  _nan_at(monkeypatch, {12})
  config = tiny_config(**{"optim.max_rollbacks": 0})
  with pytest.raises(train.TrainingDivergedError, match="loss nan at step 13"):
    train.train_and_evaluate(config, str(tmp_path / "run"))


def test_old_runs_load_with_the_settings_they_had():
  new = workdir_files.config_to_dict(configlib.base("badd"))
  old = {k: v for k, v in new.items() if k not in ("stop_rule",)}
  old["relax"] = {k: v for k, v in new["relax"].items() if k != "init"}
  old["optim"] = {k: v for k, v in new["optim"].items() if k != "lr_decay_rule"}
  old["eval"] = {k: v for k, v in new["eval"].items() if k not in ("fresh", "far_lengths")}
  filled = workdir_files.with_defaults(old)
  assert filled["relax"]["init"] == "shared" and filled["stop_rule"] == "exact_at_eval_lengths"
  assert filled["optim"]["lr_decay_rule"] == "worse_than_3"
  assert filled["eval"]["fresh"] is False and filled["eval"]["far_lengths"] == []
  assert workdir_files.with_defaults(new)["relax"]["init"] == "independent"
  # The results table tells the two apart.
  assert aggregate._variant(new) == "paper, reference protocol"  # pylint: disable=protected-access
  assert aggregate._variant(old) == "paper, previous protocol"  # pylint: disable=protected-access
  old["relax"]["init"] = "independent"  # one earlier setting alone is named as a field
  label = aggregate._variant(old)  # pylint: disable=protected-access
  assert label == "optim.lr_decay_rule='worse_than_3'"


def test_dngpu_experiment_follows_the_reference_and_keeps_the_previous_form():
  exp = experiment_files.load_experiment("experiments/dngpu.py")
  badd, bmul = exp.get_config("badd"), exp.get_config("bmul")
  for c in (badd, bmul):
    configlib.validate(c)
    assert (c.model.readout, c.model.input_path, c.curriculum.bin_lengths) == (
      "final_masked",
      "onehot",
      "spread",
    )
    assert c.curriculum.shorter_fraction == 0.05 and c.num_steps == 20_000
    assert (c.optim.noise_kind, c.optim.noise_scale) == ("lr_scaled", 1e-4)
    assert c.eval.fresh and 401 in c.eval.far_lengths and c.stop_rule == "exact_at_long"
  assert badd.model.dropout == 0.5 and bmul.model.dropout == 0.1
  assert bmul.zero_pad_targets and not badd.zero_pad_targets
  prev = exp.get_config("badd,previous")
  configlib.validate(prev)
  assert prev.variant == "dngpu" and prev.model.readout == "own_length"
  assert prev.model.dropout == 0.1 and prev.model.input_path == "embed"
  light = exp.get_config("badd,light_dropout")
  configlib.validate(light)
  assert light.model.dropout == 0.1 and light.variant == "dngpu, reference protocol, dropout 0.1"
  with pytest.raises(ValueError, match="bmul already trains at dropout 0.1"):
    exp.get_config("bmul,light_dropout")
  with pytest.raises(ValueError, match="unknown form 'heavy'"):
    exp.get_config("badd,heavy")
  pooled = exp.get_config("badd,light_dropout+pooled_lengths")
  configlib.validate(pooled)
  assert pooled.model.dropout == 0.1 and pooled.curriculum.length_mix == "distinct"
  assert pooled.variant == "dngpu, reference protocol, dropout 0.1, pooled lengths"
  assert badd.curriculum.length_mix == "uniform"
  with pytest.raises(ValueError, match="unknown form 'heavy'"):
    exp.get_config("badd,pooled_lengths+heavy")
