"""The best model of a run, chosen on its periodic evaluations and kept as WORKDIR/best."""

import json
import os

import numpy as np
import pytest

from ngpu_jax import best_model, evaluation, loading, train, workdir_files
from ngpu_jax.tools import aggregate

from conftest import tiny_config


def _results(**errors):
  """{length: {seq_error, symbol_error}} from keyword args like n41=(0.0, 0.0)."""
  return {int(k[1:]): {"seq_error": s, "symbol_error": y} for k, (s, y) in errors.items()}


def test_rank_prefers_the_longer_front_then_fewer_errors():
  exact51 = _results(n41=(0.0, 0.0), n51=(0.0, 0.0), n61=(1.0, 0.2))
  exact41 = _results(n41=(0.0, 0.0), n51=(0.1, 0.01), n61=(0.5, 0.02))
  none = _results(n41=(0.1, 0.01), n51=(0.0, 0.0), n61=(0.0, 0.0))
  assert best_model.rank(exact51) > best_model.rank(exact41) > best_model.rank(none)
  fewer_symbols = _results(n41=(0.0, 0.0), n51=(0.1, 0.005), n61=(0.5, 0.02))
  assert best_model.rank(fewer_symbols) > best_model.rank(exact41)


def _params(value):
  return {"w": np.full((2, 3), value, np.float32)}


def test_offer_keeps_only_a_better_model_and_compares_on_shared_lengths(tmp_path):
  config = tiny_config()
  best = best_model.BestModel(str(tmp_path))
  assert best.info is None
  assert best.offer(10, _results(n8=(0.5, 0.1), n12=(1.0, 0.3)), _params(1.0), config)
  assert not best.offer(20, _results(n8=(0.5, 0.1), n12=(1.0, 0.3)), _params(2.0), config)  # tie
  assert not best.offer(30, _results(n8=(0.6, 0.1)), _params(3.0), config)  # worse at 8
  # Better at 8, the one length both measured, though 12 was not measured this time.
  assert best.offer(40, _results(n8=(0.0, 0.0)), _params(4.0), config)
  info = json.load(open(tmp_path / "best" / workdir_files.MODEL_STEP_FILE))
  assert (
    info["step"] == 40
    and info["front"] == 8
    and info["eval"] == {"8": {"seq_error": 0.0, "symbol_error": 0.0}}
  )
  # A new process reads the best so far back, and the model loads as any exported one.
  again = best_model.BestModel(str(tmp_path))
  assert again.info == info
  assert not again.offer(50, _results(n8=(0.0, 0.0)), _params(5.0), config)
  assert not (tmp_path / "best.tmp").exists() and not (tmp_path / "best.old").exists()


def test_a_kill_between_the_renames_leaves_the_old_model_and_it_is_put_back(tmp_path):
  config = tiny_config()
  best_model.BestModel(str(tmp_path)).offer(10, _results(n8=(0.5, 0.1)), _params(1.0), config)
  os.replace(tmp_path / "best", tmp_path / "best.old")  # as a kill after the first rename
  best = best_model.BestModel(str(tmp_path))
  assert best.info["step"] == 10 and (tmp_path / "best").is_dir()
  assert not (tmp_path / "best.old").exists()


def test_a_far_evaluation_is_not_displaced_by_a_near_only_one(tmp_path):
  # DNGPU bmul, seed 0: step 3,000 measured 401 (2% wrong), step 3,500 measured only up to
  # 121 with fewer errors there, step 4,000 measured 401 again and collapsed there.
  config = tiny_config()
  best = best_model.BestModel(str(tmp_path))
  assert best.offer(
    3000, _results(n41=(0.03, 0.001), n121=(0.06, 0.001), n401=(0.02, 0.0001)), _params(1.0), config
  )
  assert not best.offer(
    3500, _results(n41=(0.02, 0.001), n121=(0.01, 0.0001)), _params(2.0), config
  )
  assert not best.offer(
    4000, _results(n41=(0.02, 0.001), n121=(0.01, 0.0001), n401=(1.0, 0.3)), _params(3.0), config
  )
  assert best.info["step"] == 3000
  # A near-only evaluation with a longer front still wins: the front comes first.
  assert best.offer(4500, _results(n41=(0.0, 0.0), n121=(0.5, 0.01)), _params(4.0), config)


def test_under_a_gate_a_model_mostly_right_further_out_is_kept(tmp_path):
  # DNGPU bmul, seed 0: step 7,000 against a later step exact to 401 but 48% wrong at 801.
  step7000 = _results(
    n41=(0.0, 0.0), n201=(0.016, 2e-4), n401=(0.008, 2e-5), n801=(0.055, 9e-5), n1601=(0.15, 2e-4)
  )
  later = _results(n41=(0.0, 0.0), n201=(0.0, 0.0), n401=(0.0, 0.0), n801=(0.48, 0.1))
  shared = {41, 201, 401, 801}
  assert best_model.rank(later, shared) > best_model.rank(step7000, shared)  # no gate: front
  assert best_model.rank(step7000, shared, 0.25) > best_model.rank(later, shared, 0.25)
  for gate, kept in ((0.25, 7000), (1.0, 17000)):
    config = tiny_config(**{"eval.far_gate": gate})
    best = best_model.BestModel(str(tmp_path / str(gate)))
    best.offer(7000, step7000, _params(7.0), config)
    best.offer(17000, later, _params(17.0), config)
    assert best.info["step"] == kept
  assert evaluation.generalization_front(step7000, 0.1) == 801
  assert evaluation.generalization_front(step7000) == 41


def test_rescore_asks_the_kept_model_the_lengths_its_record_lacks(tmp_path):
  # bmul seed 0, resumed with 801 and 1601 added: the step-7,000 model was measured to 401 only.
  config = tiny_config()
  best = best_model.BestModel(str(tmp_path))
  best.offer(7000, _results(n41=(0.0, 0.0), n401=(0.01, 1e-5)), _params(7.0), config)
  asked, loaded = [], []
  seq_error = {801: 0.06, 1601: 0.6, 3201: 1.0}

  def score(params, lengths):
    assert float(params["w"][0, 0]) == 7.0
    asked.extend(lengths)
    return {n: {"seq_error": seq_error[n], "symbol_error": 0.001} for n in lengths}

  def load(directory):
    loaded.append(directory)
    return _params(7.0)

  lengths = (41, 401, 801, 1601, 3201)
  assert best.rescore(lengths, 0.5, score, load) == [801, 1601]  # past 1601 (0.6): gated out
  assert asked == [801, 1601] and len(loaded) == 1
  info = best_model.BestModel(str(tmp_path)).info  # written to step.json
  assert info["step"] == 7000 and sorted(map(int, info["eval"])) == [41, 401, 801, 1601]
  assert info["eval"]["801"] == {"seq_error": 0.06, "symbol_error": 0.001}
  # Now a later evaluation to 801 no longer outranks it by having measured further.
  later = _results(n41=(0.0, 0.0), n401=(0.01, 1e-5), n801=(0.44, 0.1))
  assert not best.offer(13000, later, _params(13.0), config)
  assert best.rescore(lengths, 0.5, score, load) == [] and asked == [801, 1601]


@pytest.mark.slow
def test_a_run_keeps_the_params_of_its_best_evaluation(tmp_path):
  config = tiny_config(**{"num_steps": 40, "eval.lengths": (8, 12), "eval.examples": 16})
  workdir = str(tmp_path / "run")
  train.train_and_evaluate(config, workdir)
  periodic = {}
  for m in workdir_files.read_metrics(workdir):
    if m["kind"] == "eval" and not workdir_files.is_final_eval(m):
      periodic.setdefault(m["step"], {})[m["eval_length"]] = m
  assert sorted(periodic) == [10, 20, 30, 40]
  ranks = {step: best_model.rank(r) for step, r in periodic.items()}
  best_step = min(ranks, key=lambda s: (tuple(-x for x in ranks[s]), s))  # ties: the earlier
  info = json.load(open(os.path.join(workdir, "best", workdir_files.MODEL_STEP_FILE)))
  assert info["step"] == best_step
  # The kept params are those that were evaluated: the same fresh problems score the same.
  loaded = loading.load_run(os.path.join(workdir, "best"))
  assert loaded.step == best_step
  again = evaluation.evaluate_lengths(
    loaded.eval_step,
    loaded.params,
    loaded.task,
    loaded.mesh,
    [8, 12],
    16,
    config.eval.batch_size,
    config.seed,
    best_step,
  )
  for n in (8, 12):
    assert again[n]["seq_error"] == periodic[best_step][n]["seq_error"]
    assert again[n]["symbol_error"] == periodic[best_step][n]["symbol_error"]
  # `evaluate` on it appends a metrics.jsonl there; results tables still count the run once.
  reporter = workdir_files.MetricsWriter(os.path.join(workdir, "best"), True)
  reporter.write("eval", best_step, {"eval_length": 8, **again[8], "source": "evaluate"})
  reporter.close()
  assert aggregate.find_workdirs([str(tmp_path)]) == [workdir]
  # keep_best=False keeps nothing.
  off = str(tmp_path / "off")
  train.train_and_evaluate(tiny_config(keep_best=False), off)
  assert not os.path.exists(os.path.join(off, "best"))


@pytest.mark.slow
def test_a_resumed_run_scores_its_best_model_at_its_new_far_lengths(tmp_path):
  workdir = str(tmp_path / "run")
  train.train_and_evaluate(tiny_config(), workdir)
  before = best_model.BestModel(workdir).info
  assert list(before["eval"]) == ["8"]
  grown = tiny_config(**{"eval.far_lengths": (12,), "eval.far_every": 10})
  train.train_and_evaluate(grown, workdir)  # at num_steps already: resumes, scores, stops
  after = best_model.BestModel(workdir).info
  assert after["step"] == before["step"] and sorted(after["eval"]) == ["12", "8"]
  loaded = loading.load_run(os.path.join(workdir, "best"))
  again = evaluation.evaluate_lengths(
    loaded.eval_step, loaded.params, loaded.task, loaded.mesh, [12], 8, 8, 0, before["step"]
  )
  assert after["eval"]["12"]["seq_error"] == again[12]["seq_error"]
