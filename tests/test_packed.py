"""Seeds packed into one program: each run's lines equal the same seed trained alone."""

import os

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from ngpu_jax import data, packed, parallel, steps, tasks, train, workdir_files
from ngpu_jax import main as launcher

from conftest import run_module, tiny_config, tiny_dngpu_config

NUMBERS = ("loss", "seq_error", "symbol_error", "seq_error_all", "grad_norm", "lr", "saturation")


def _paper(**overrides):
  """Two buckets, so that runs of one step pad to the wider; a threshold the runs cross at
  different windows, so that their curricula part; dropout on the state, scaled by width."""
  return tiny_config(
    **{
      "buckets": (5, 8),
      "curriculum.start_length": 5,
      "curriculum.threshold": 0.99,
      "model.dropout": 0.2,
      "optim.noise_scale": 0.5,
      "final_eval.probe_examples": 0,
      **overrides,
    }
  )


def _dngpu(**overrides):
  """The DNGPU's step with its readout, candidate dropout, spread bins and optimizer."""
  return tiny_dngpu_config(
    **{
      "model.dropout": 0.3,
      "model.dropout_by_length": False,
      "model.readout": "final",
      "curriculum.bin_lengths": "spread",
      "optim.name": "clipped_adamax",
      "optim.clip_mode": "none",
      "optim.noise_kind": "lr_scaled",
      "optim.noise_scale": 1e-4,
      **overrides,
    }
  )


@pytest.mark.parametrize("mode", ["vmap", pytest.param("map", marks=pytest.mark.slow)])
def test_one_packed_step_equals_each_seeds_own_step(mode):
  """Two seeds at different widths (5 and 8, padded to 8), dropout scaled by each one's own
  width: the packed update gives each the parameters and metrics of its solo update."""
  config = _paper()
  task, mesh = tasks.get_task("badd"), parallel.make_mesh()
  opt = steps.make_optimizer(config)
  configs = packed.seed_configs(config, [0, 3])
  rng = np.random.default_rng(0)
  batches = [data.make_batch(task, rng, 4, n, n) for n in (5, 8)]
  pull, err, sat = np.float32([5e-4, 1e-3]), np.float32([0.5, 0.9]), np.float32([0.0, 0.0])
  repl = parallel.replicated(mesh)
  init = [steps.init_state(c, task, opt, mesh) for c in configs]
  copy = lambda tree: jax.tree.map(lambda a: jax.device_put(a.copy(), repl), tree)
  fresh = lambda i: copy(init[i])  # the steps donate their state
  solo = []
  for i, c in enumerate(configs):
    step = steps.make_train_step(c, opt, mesh)
    batch = (parallel.global_batch(mesh, *batches[i]),)
    solo.append(jax.device_get(step(fresh(i), batch, pull[i], err[i], sat[i])))
  stacked = lambda: jax.device_put(jax.tree.map(lambda *a: jnp.stack(a), *init), repl)
  pad = lambda a: np.pad(a, ((0, 0), (0, 8 - a.shape[1])))
  group = [np.stack([pad(b[k]) for b in batches]) for k in (0, 1)] + [
    np.stack([b.n_B for b in batches])
  ]
  step = steps.make_packed_train_step(config, opt, mesh, mode)
  args = (
    (parallel.global_batch(mesh, *group, seed_axis=True),),
    pull,
    err,
    sat,
    jnp.stack([steps.dropout_base_key(c.seed) for c in configs]),
    np.int32([5, 8]),
  )
  new, m = jax.device_get(step(stacked(), *args, np.array([True, True])))
  for i, (state_i, m_i) in enumerate(solo):
    for k in ("loss", "grad_norm", "seq_wrong", "sym_wrong", "sym_total"):
      assert m[k][i] == pytest.approx(m_i[k], rel=1e-5), (i, k)
    for a, b in zip(jax.tree.leaves(new.params), jax.tree.leaves(state_i.params)):
      np.testing.assert_allclose(a[i], b, rtol=1e-5, atol=1e-6)
  # A run that is not active keeps its state.
  kept, _ = step(stacked(), *args, np.array([True, False]))
  for a, b in zip(jax.tree.leaves(kept.params), jax.tree.leaves(init[1].params)):
    np.testing.assert_array_equal(a[1], b)
  assert int(kept.step[1]) == 0 and int(kept.step[0]) == 1


def _lines(workdir, kind):
  return [m for m in workdir_files.read_metrics(str(workdir)) if m["kind"] == kind]


def _assert_same_run(packed_dir, solo_dir):
  for kind in ("train", "eval"):
    a, b = _lines(packed_dir, kind), _lines(solo_dir, kind)
    assert len(a) == len(b) > 0, (kind, len(a), len(b))
    for x, y in zip(a, b):
      assert set(x) == set(y)
      for k, v in y.items():
        if k in NUMBERS or k == "symbol_error":
          assert x[k] == pytest.approx(v, rel=2e-4, abs=1e-6), (kind, x["step"], k)
        elif k != "train_seconds":
          assert x[k] == v, (kind, x["step"], k)


def _solo(config, seed, workdir):
  c = config.copy_and_resolve_references()
  c.seed = seed
  train.train_and_evaluate(c, str(workdir))


@pytest.mark.parametrize(
  "make,mode",
  [
    pytest.param(_paper, "vmap", marks=pytest.mark.slow),
    pytest.param(_paper, "map", marks=pytest.mark.slow),
    pytest.param(_dngpu, "vmap", marks=pytest.mark.slow),
    pytest.param(_dngpu, "map", marks=pytest.mark.slow),
  ],
  ids=["paper-vmap", "paper-map", "dngpu-vmap", "dngpu-map"],
)
def test_packed_runs_equal_the_same_seeds_trained_alone(tmp_path, make, mode):
  config = make()
  seeds = [0, 3]
  dirs = [tmp_path / f"packed{s}" for s in seeds]
  results = packed.train_and_evaluate_packed(config, seeds, [str(d) for d in dirs], mode=mode)
  assert all(isinstance(r, dict) and r["step"] == config.num_steps for r in results)
  for s, d in zip(seeds, dirs):
    _solo(config, s, tmp_path / f"solo{s}")
    _assert_same_run(d, tmp_path / f"solo{s}")
    assert os.listdir(d / "checkpoints") and (d / "config.json").exists()
  if make is _paper:  # the two runs stood at different curriculum lengths at some step
    lengths = [[m["cur_length"] for m in _lines(d, "train")] for d in dirs]
    assert lengths[0] != lengths[1], lengths


@pytest.mark.slow
def test_runs_at_different_steps_share_the_program_and_a_finished_one_waits(tmp_path):
  """Seed 0 resumes at step 10 from its own checkpoint, seed 1 starts at 0: seed 0 finishes
  first and is masked while seed 1 goes on; both end as the uninterrupted solo runs."""
  config = _paper()
  half = config.copy_and_resolve_references()
  half.num_steps, half.seed = 10, 0
  a, b = tmp_path / "a", tmp_path / "b"
  train.train_and_evaluate(half, str(a))  # its final lines at 10 are a finished run's
  packed.train_and_evaluate_packed(config, [0, 1], [str(a), str(b)], mode="vmap")
  _solo(config, 0, tmp_path / "solo0")
  _solo(config, 1, tmp_path / "solo1")
  _assert_same_run(b, tmp_path / "solo1")
  solo0 = [m for m in _lines(tmp_path / "solo0", "train")]
  assert [m["loss"] for m in _lines(a, "train")] == pytest.approx(
    [m["loss"] for m in solo0], rel=2e-4
  )


@pytest.mark.slow
def test_a_crashed_pack_resumes_every_run_exactly(tmp_path, monkeypatch):
  config = _paper(**{"num_steps": 30})
  full = [str(tmp_path / f"full{s}") for s in (0, 1)]
  packed.train_and_evaluate_packed(config, [0, 1], full)
  cut = [str(tmp_path / f"cut{s}") for s in (0, 1)]
  after_step = train._Run.after_step  # pylint: disable=protected-access

  def crash(self):
    if self.config.seed == 1 and self.step == 15:
      raise KeyboardInterrupt  # past the step-10 checkpoint, lines up to 15 written
    return after_step(self)

  monkeypatch.setattr(train._Run, "after_step", crash)  # pylint: disable=protected-access
  with pytest.raises(KeyboardInterrupt):
    packed.train_and_evaluate_packed(config, [0, 1], cut)
  monkeypatch.setattr(train._Run, "after_step", after_step)  # pylint: disable=protected-access
  packed.train_and_evaluate_packed(config, [0, 1], cut)
  for f, c in zip(full, cut):
    assert [m["step"] for m in _lines(c, "train")] == [m["step"] for m in _lines(f, "train")]
    _assert_same_run(c, f)


def test_packed_workdirs_and_bad_seeds():
  assert launcher.packed_workdirs("r/seed={seed}", ["0", "2"]) == ([0, 2], ["r/seed=0", "r/seed=2"])
  for template, seeds, named in [
    ("r/run", ["0", "1"], "{seed}"),
    ("r/{seed}", ["0", "x"], "--seeds=0,x: give whole numbers"),
    ("r/{seed}", ["1", "1"], "repeats"),
    ("r/{seed}/{other}", ["1"], "braces"),
  ]:
    with pytest.raises(ValueError, match=named):
      launcher.packed_workdirs(template, seeds)
  with pytest.raises(ValueError, match="unknown pack mode"):
    steps.resolve_pack_mode("pmap")


@pytest.mark.slow
def test_launcher_trains_seeds_in_one_program(tmp_path):
  args = [
    "--config=experiments/badd.py:smoke",
    "--config.num_steps=10",
    "--config.eval.every=10",
    "--config.checkpoint_every=10",
    "--config.final_eval.lengths=(8,)",
    "--config.final_eval.probe_examples=0",
    "--seeds=4,5",
    f"--workdir={tmp_path}/seed={{seed}}",
  ]
  proc = run_module("ngpu_jax.main", *args)
  assert proc.returncode == 0, proc.stderr[-3000:]
  assert "2 seeds [4, 5] in one program (map)" in proc.stdout
  assert "[seed 5] step 10/10" in proc.stdout
  for s in (4, 5):
    assert any(m.get("final") for m in _lines(tmp_path / f"seed={s}", "eval"))
  bad = run_module("ngpu_jax.main", *args[:-1], f"--workdir={tmp_path}/same")
  assert bad.returncode == 2 and "{seed}" in bad.stderr
  assert not os.path.exists(tmp_path / "same")
