"""The commands as a user runs them: main, evaluate, predict, and their errors."""

import json
import os

import jax
import numpy as np
import pytest

from ngpu_jax import (
  configlib,
  data,
  evaluation,
  inference,
  loading,
  parallel,
  relax,
  steps,
  tasks,
  workdir_files,
)

from conftest import run_module, tiny_config, tiny_dngpu_config

SMOKE = [
  "--config=experiments/badd.py:smoke",
  "--config.num_steps=20",
  "--config.eval.every=10",
  "--config.final_eval.lengths=(12,)",
]


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
  wd = str(tmp_path_factory.mktemp("run") / "badd")
  proc = run_module("ngpu_jax.main", *SMOKE, "--config.checkpoint_every=10", f"--workdir={wd}")
  assert proc.returncode == 0, proc.stderr[-3000:]
  return wd, proc.stdout


def test_main_writes_the_run_directory(workdir):
  wd, stdout = workdir
  assert "step 20/20" in stdout and "steps/s" in stdout and "ETA" in stdout
  assert "final evaluation at step 20" in stdout
  with open(os.path.join(wd, "config.json")) as f:
    assert json.load(f)["task"] == "badd"
  lines = workdir_files.read_metrics(wd)
  train = [m for m in lines if m["kind"] == "train"]
  evals = [m for m in lines if m["kind"] == "eval"]
  assert [m["step"] for m in train] == [10, 20]
  for m in train:
    assert {"loss", "cur_length", "seq_error", "symbol_error"} <= set(m)
  assert {(m["step"], m["eval_length"]) for m in evals} >= {(10, 12), (20, 12)}
  assert any(
    f.startswith("events.out.tfevents") for f in os.listdir(os.path.join(wd, "tensorboard"))
  )
  assert "20" in os.listdir(os.path.join(wd, "checkpoints"))


def _evaluate(wd, *flags):
  """Runs the evaluate command on wd; it must succeed."""
  proc = run_module("ngpu_jax.tools.evaluate", f"--workdir={wd}", *flags)
  assert proc.returncode == 0, proc.stderr[-3000:]
  return proc


def test_evaluate_prints_a_table_and_appends_eval_lines(workdir):
  wd, _ = workdir
  before = len(workdir_files.read_metrics(wd))
  proc = _evaluate(
    wd,
    "--lengths=7,41",
    "--examples=10",
    "--probe_examples=3",
    "--columns",
  )
  assert "seq_error" in proc.stdout and "     41             20       10" in proc.stdout
  assert "where the errors sit" in proc.stdout and "     41  0-4:" in proc.stdout
  assert "the wrong problems:" in proc.stdout and "      7  " in proc.stdout
  assert "max_plus_one      41        3" in proc.stdout
  new = workdir_files.read_metrics(wd)[before:]
  assert [(m["eval_length"], m["examples"]) for m in new if "probe" not in m] == [(7, 10), (41, 10)]
  probe_lines = {(m["probe"], m["eval_length"]) for m in new if "probe" in m}
  assert probe_lines == {
    (f, n)
    for f in (
      "max_plus_one",
      "max_plus_max",
      "alternating",
      "carry_chain_random_start",
      "carry_chain_in_random",
      "no_carry_chain_in_random",
    )
    for n in (7, 41)
  }


def test_column_errors_count_the_same_problems_as_the_table(workdir):
  """The column profile's mean is the table's symbol error and no column is wrong more often
  than whole problems are: the answers the table scores, column by column."""
  loaded = loading.load_run(workdir[0])
  step = steps.make_eval_step(loaded.config, loaded.mesh, answers=True)
  args = (loaded.task, loaded.mesh, [41], 24, 8, 3)
  answers = {}
  r = evaluation.evaluate_lengths(step, loaded.params, *args, answers=answers)[41]
  assert r == evaluation.evaluate_lengths(loaded.eval_step, loaded.params, *args)[41]
  rows = answers[41]
  assert sum(len(x) for x, _, _ in rows) == 24  # the batch of 8 splits evenly: 3 batches
  wrong_W = evaluation.column_errors(rows)
  assert wrong_W.shape == (41,) and 0 < r["symbol_error"]
  assert wrong_W.mean() == pytest.approx(r["symbol_error"], abs=1e-9)
  assert wrong_W.max() <= r["seq_error"]
  wrong = evaluation.wrong_problems(rows)
  assert len(wrong) == round(r["seq_error"] * 24) > 0
  bad_per_column = np.bincount(np.concatenate([c for _, _, c in wrong]), minlength=41)
  np.testing.assert_allclose(bad_per_column / 24, wrong_W)


def test_the_wrong_problems_list_their_wrong_columns_as_runs():
  target_BxW = np.array([[2, 1, 2, 0, 0, 0], [2, 2, 0, 0, 0, 0], [1, 1, 1, 1, 1, 2]])
  pred_BxW = np.array([[2, 2, 1, 0, 2, 0], [2, 2, 0, 0, 0, 0], [1, 2, 1, 1, 1, 1]])
  wrong = evaluation.wrong_problems(
    [(None, pred_BxW[:2], target_BxW[:2]), (None, pred_BxW[2:], target_BxW[2:])]
  )
  assert [(i, last, c.tolist()) for i, last, c in wrong] == [(0, 2, [1, 2, 4]), (2, 5, [1, 5])]
  text = evaluation.format_wrong_problems({6: wrong, 9: []}, limit=1)
  assert "#0     answer to column 2      wrong: 1-2, 4" in text
  assert "(and 1 more)" in text and "#2" not in text and "      9  0 wrong" in text


def test_evaluate_with_dropout_scores_other_numbers_and_appends_nothing(workdir):
  wd, _ = workdir
  config = tiny_dngpu_config("badd", **{"model.dropout": 0.5, "model.readout": "final_masked"})
  task, mesh = tasks.get_task("badd"), parallel.make_mesh()
  params = steps.init_params(config, task)
  batch = parallel.global_batch(mesh, *data.make_batch(task, np.random.default_rng(0), 64, 21, 21))
  on = steps.make_eval_step(config, mesh, dropout_seed=3)
  first, again, plain = (
    jax.device_get(f(params, *batch)) for f in (on, on, steps.make_eval_step(config, mesh))
  )
  assert first == again  # the masks come from the seed and the batch: the same every time
  assert first["sym_wrong"] != plain["sym_wrong"]
  before = len(workdir_files.read_metrics(wd))
  proc = _evaluate(
    wd,
    "--lengths=12",
    "--examples=8",
    "--probe_examples=0",
    "--with_dropout",
  )
  assert "dropout on" in proc.stdout and "     12" in proc.stdout
  assert len(workdir_files.read_metrics(wd)) == before


def test_evaluate_in_float64_scores_the_same_problems_and_appends_nothing(workdir):
  wd, _ = workdir
  flags = ("--lengths=12,16", "--examples=16", "--probe_examples=0")
  plain = _evaluate(wd, *flags).stdout
  before = len(workdir_files.read_metrics(wd))
  double = _evaluate(wd, *flags, "--float64").stdout
  assert "in float64" in double
  table = lambda out: [line for line in out.splitlines() if line.startswith("     1")]
  assert len(table(double)) == 2 and table(double) == table(plain)
  assert len(workdir_files.read_metrics(wd)) == before


def test_held_evaluation_with_no_extra_step_is_the_ordinary_one(workdir):
  """Run for n steps on n columns, an own-length model's held score is its table's: the same
  problems, the same counts, whatever the step does to read them."""
  loaded = loading.load_run(workdir[0])
  held = steps.make_eval_step(loaded.config, loaded.mesh, held=True)
  args = (loaded.task, loaded.mesh, [7, 12, 41], 24, 8, 3)
  plain = evaluation.evaluate_lengths(loaded.eval_step, loaded.params, *args)
  assert evaluation.evaluate_lengths(held, loaded.params, *args) == plain
  assert any(r["symbol_error"] > 0 for r in plain.values())  # errors to agree on
  # Twice the steps on the same problems: other answers.
  twice = {}
  for n in (7, 12, 41):
    more = (loaded.task, loaded.mesh, [n], 24, 8, 3)
    twice.update(evaluation.evaluate_lengths(held, loaded.params, *more, extra_columns=n))
  assert twice != plain


def test_shipped_badd_does_not_hold_its_answer():
  """The paper's own-length readout never asks a model to keep an answer: the shipped badd is
  exact after n and n + 1 steps and wrong on every problem from n + 2 on (columns past it
  empty): the answer appears at step n and is gone two steps later."""
  proc = run_module(
    "ngpu_jax.tools.evaluate",
    "--workdir=badd",
    "--lengths=41",
    "--examples=16",
    "--probe_examples=0",
    "--extra_steps=0,1,2,41",
    "--columns",
  )
  assert proc.returncode == 0, proc.stderr[-3000:]
  rows = [line.split() for line in proc.stdout.splitlines() if line.startswith("     41    ")]
  assert [r[3] for r in rows] == ["0.0000", "0.0000", "0.0000", "1.0000", "1.0000"], proc.stdout
  # --columns lists each table's wrong problems: none, none, none, then all 16 twice.
  listed = [line.split() for line in proc.stdout.splitlines() if line.startswith("     41  ")]
  counts = [w[1] for w in listed if w[2].startswith("wrong")]
  assert counts == ["0", "0", "0", "16", "16"], proc.stdout
  after = proc.stdout.split("each run 2 step(s) past its length")[1]
  assert "#0     answer to column" in after


def test_evaluate_rejects_a_negative_extra_step_count(workdir):
  proc = run_module("ngpu_jax.tools.evaluate", f"--workdir={workdir[0]}", "--extra_steps=2,-1")
  assert proc.returncode != 0 and "--extra_steps=2,-1: each must be 0 or more" in proc.stderr


def test_evaluate_scores_the_mean_of_checkpoints(workdir):
  wd, _ = workdir
  before = len(workdir_files.read_metrics(wd))
  proc = _evaluate(
    wd,
    "--lengths=12",
    "--examples=10",
    "--probe_examples=0",
    "--average_steps=10,20",
  )
  assert "badd at the mean of steps [10, 20]" in proc.stdout
  new = workdir_files.read_metrics(wd)[before:]
  assert [(m["step"], m["eval_length"], m["averaged_steps"]) for m in new] == [(20, 12, [10, 20])]
  p10, p20, mean = (
    jax.tree.leaves(jax.device_get(loading.load_run(wd, s).params)) for s in ([10], [20], [10, 20])
  )
  assert any(not np.array_equal(a, b) for a, b in zip(p10, p20))
  for a, b, m in zip(p10, p20, mean):
    np.testing.assert_allclose(m, (a + b) / 2, rtol=1e-6)
  proc = run_module("ngpu_jax.tools.evaluate", f"--workdir={wd}", "--average_steps=10,15")
  assert proc.returncode == 2
  assert "no checkpoint of step 15" in proc.stderr and "kept: [10, 20]" in proc.stderr


def test_predict_answers_one_line_per_problem(workdir):
  """Each printed line is the answer to that line's problem, in the input's order: the exact
  sum from the shipped model, and from a run's workdir what its model computes for the line."""
  wd, _ = workdir
  lines = ["1011+110", "1+1", "111+1", "10+1011", "1+1", "11111+1", "1111111111+1010101010"]
  stdin = "".join(f"{line}\n" for line in lines)  # widths mixed, one line twice
  proc = run_module("ngpu_jax.tools.predict", "--model=badd", "--batch_size=2", stdin=stdin)
  assert proc.returncode == 0, proc.stderr[-3000:]
  sums = [f"{int(a, 2) + int(b, 2):b}" for a, b in (line.split("+") for line in lines)]
  assert proc.stdout == "".join(f"{s}\n" for s in sums)

  proc = run_module(
    "ngpu_jax.tools.predict", f"--model={wd}", "--task=badd", "--batch_size=2", stdin=stdin
  )
  assert proc.returncode == 0, proc.stderr[-3000:]
  # The reference: each problem on its own, a batch of one at the width predict gives it.
  loaded = loading.load_run(wd)
  rows = loaded.mesh.devices.size  # n = 0 rows fill the device multiple
  want = []
  for line in lines:
    inp = loaded.task.parse(line)
    x_BxW = np.zeros((rows, inference.width_for(len(inp), loaded.config.buckets)), np.int32)
    x_BxW[0, : len(inp)] = inp
    n_B = np.array([len(inp)] + [0] * (rows - 1), np.int32)
    pred_BxW = jax.device_get(
      loaded.predict_step(loaded.params, *parallel.global_batch(loaded.mesh, x_BxW, n_B))
    )
    want.append(loaded.task.format_output(pred_BxW[0, : len(inp)].tolist()))
  assert proc.stdout == "".join(f"{a}\n" for a in want)


@pytest.mark.parametrize(
  "stdin,message",
  [
    ("1011+110\n12+1\n", "line 2: left operand in base 2: digit '2'"),
    ("\n", "line 1: empty problem"),
    ("101\n", "line 1:"),
    ("1+1\n1*1\n", "line 2:"),
  ],
)
def test_predict_rejects_malformed_lines(workdir, stdin, message):
  wd, _ = workdir
  proc = run_module("ngpu_jax.tools.predict", f"--model={wd}", stdin=stdin)
  assert proc.returncode == 2
  assert message in proc.stderr
  assert proc.stdout == ""


def test_predict_rejects_wrong_task_and_unknown_model(workdir):
  wd, _ = workdir
  proc = run_module("ngpu_jax.tools.predict", f"--model={wd}", "--task=bmul", stdin="1*1\n")
  assert proc.returncode == 2 and "trained on 'badd'" in proc.stderr
  proc = run_module("ngpu_jax.tools.predict", "--model=no-such-model", stdin="1+1\n")
  assert proc.returncode == 2 and "no-such-model" in proc.stderr


def test_predict_names_the_length_limit(workdir):
  wd, _ = workdir
  proc = run_module(
    "ngpu_jax.tools.predict", f"--model={wd}", "--max_length=41", stdin="1" * 30 + "+1\n"
  )
  assert proc.returncode == 2 and "limit is --max_length=41" in proc.stderr


@pytest.mark.parametrize(
  "args,message",
  [
    (["--config=experiments/task.py:nosuchtask"], "unknown task 'nosuchtask'"),
    (
      ["--config=experiments/badd.py:smoke", "--config.model.maps=-3"],
      "model.maps: must be a positive int",
    ),
    (
      ["--config=experiments/badd.py:smoke", "--config.curriculum.max_length=100"],
      "above the largest bucket 12",
    ),
    (
      ["--config=experiments/badd.py:smoke", "--config.nosuchfield=1"],
      "--config.nosuchfield: no such config field",
    ),
    (["--config=experiments/badd.py:smoke", "--config.model.maps=abc"], "--config.model.maps=abc"),
    (
      ["--config=experiments/badd.py:smoke", "--config.precision=tf32"],
      "precision: must be one of default, high, highest, got 'tf32'",
    ),
    (
      ["--config=experiments/nosuchfile.py"],
      "No such file or directory: 'experiments/nosuchfile.py'",
    ),
  ],
)
def test_main_rejects_bad_configs_before_compiling(tmp_path, args, message):
  proc = run_module("ngpu_jax.main", *args, f"--workdir={tmp_path / 'w'}")
  assert proc.returncode == 2, proc.stderr[-2000:]
  assert message in proc.stderr
  assert not os.path.exists(tmp_path / "w" / "checkpoints")


def test_evaluate_scores_a_shipped_model_by_name_and_writes_nothing_into_it():
  shipped = os.path.join(loading.PRETRAINED_DIR, "badd")
  listing = lambda: sorted(
    os.path.relpath(os.path.join(d, n), shipped) for d, _, ns in os.walk(shipped) for n in ns
  )
  before = listing()
  proc = _evaluate("badd", "--lengths=7", "--examples=8", "--probe_examples=2")
  assert (
    f"({shipped})" in proc.stdout and "      7              3        8     0.0000" in proc.stdout
  )
  assert "is an exported model: the results are printed, not appended" in proc.stdout
  assert listing() == before


def test_evaluate_rejects_a_directory_without_a_run(tmp_path):
  proc = run_module("ngpu_jax.tools.evaluate", f"--workdir={tmp_path}")
  assert proc.returncode == 2 and "config.json not found" in proc.stderr


@pytest.mark.parametrize("flag", ["--lengths=41,4o1", "--average_steps=10,x"])
def test_evaluate_names_a_list_flag_that_is_not_numbers(tmp_path, flag):
  proc = run_module("ngpu_jax.tools.evaluate", f"--workdir={tmp_path}", flag)
  assert proc.returncode == 2 and f"{flag}: give whole numbers" in proc.stderr


def test_predict_parse_lines_fuzz():
  """Any text: every line parses to a problem the task accepts, or PredictError names the line."""
  from hypothesis import given, settings
  from hypothesis import strategies as st

  alphabet = st.sampled_from(list("0123456789+*: ?_-x\t"))
  line = st.one_of(st.text(max_size=12), st.text(alphabet, max_size=12))

  @settings(max_examples=300, deadline=None)
  @given(st.sampled_from(sorted(tasks.TASKS)), st.lists(line, max_size=4))
  def check(name, lines):
    task = tasks.get_task(name)
    try:
      problems = inference.parse_lines(task, lines, max_length=64)
    except inference.PredictError as e:
      assert str(e).startswith("line ")
      return
    for inp in problems:
      assert len(task.target(inp)) == len(inp)  # an exact answer exists and fits

  check()


def test_main_rejects_a_workdir_it_cannot_write(tmp_path):
  (tmp_path / "file").write_text("x")
  proc = run_module(
    "ngpu_jax.main", "--config=experiments/badd.py:smoke", f"--workdir={tmp_path / 'file' / 'run'}"
  )
  assert proc.returncode == 2
  assert "error:" in proc.stderr and "Traceback" not in proc.stderr


@pytest.mark.slow
def test_export_gives_a_model_that_predicts_the_same(workdir, tmp_path):
  wd, _ = workdir
  out = tmp_path / "model"
  proc = run_module("ngpu_jax.tools.export", f"--workdir={wd}", f"--out={out}")
  assert proc.returncode == 0, proc.stderr[-3000:]
  assert sorted(os.listdir(out)) == ["config.json", "params", "step.json"]
  problems = "1011+110\n111+1\n10+10\n"
  a = run_module("ngpu_jax.tools.predict", f"--model={wd}", stdin=problems)
  b = run_module("ngpu_jax.tools.predict", f"--model={out}", stdin=problems)
  assert a.returncode == b.returncode == 0 and a.stdout == b.stdout
  again = run_module("ngpu_jax.tools.export", f"--workdir={wd}", f"--out={out}")
  assert again.returncode == 2 and "exists" in again.stderr


def test_recorded_path_keeps_the_checkout_prefix_out(tmp_path, monkeypatch):
  """step.json names sources under the working directory relatively, others absolutely."""
  (tmp_path / "repo" / "runs").mkdir(parents=True)
  monkeypatch.chdir(tmp_path / "repo")
  assert loading.recorded_path(str(tmp_path / "repo" / "runs" / "a")) == os.path.join("runs", "a")
  assert loading.recorded_path("runs/a/") == os.path.join("runs", "a")
  assert loading.recorded_path("../elsewhere") == str(tmp_path / "elsewhere")
  assert loading.recorded_path("..") == str(tmp_path)
  assert loading.recorded_path("..x") == "..x"  # a name that starts with dots, not a parent


def test_collapse_averaged_copies():
  import jax
  import numpy as np

  from conftest import tiny_config

  config = tiny_config()
  params = jax.device_get(steps.init_params(config, tasks.get_task("badd")))
  moved = {
    **params,
    "steps": jax.tree.map(
      lambda a: a + np.arange(a.shape[0]).reshape((-1,) + (1,) * (a.ndim - 1)), params["steps"]
    ),
  }
  same, cfg = loading.collapse_averaged_copies(moved, config)
  assert cfg.relax.copies == 6 and same is moved  # copies differ: kept
  averaged = jax.device_get(relax.average(moved))
  one, cfg = loading.collapse_averaged_copies(averaged, config)
  assert cfg.relax.copies == 1 and config.relax.copies == 6
  assert all(a.shape[0] == 1 for a in jax.tree.leaves(one["steps"]))


def test_export_average_writes_the_mean_of_the_models(workdir, tmp_path):
  """A checkpoint (WORKDIR@STEP) and an exported model, averaged into one model directory."""
  wd, _ = workdir
  at_20 = tmp_path / "at20"
  assert run_module("ngpu_jax.tools.export", f"--workdir={wd}", f"--out={at_20}").returncode == 0
  out = tmp_path / "mean"
  proc = run_module("ngpu_jax.tools.export", f"--average={wd}@10,{at_20}", f"--out={out}")
  assert proc.returncode == 0, proc.stderr[-3000:]
  assert "exported the mean of 2 models (newest step 20)" in proc.stdout
  info = loading.read_model_info(str(out))
  assert [(a["source"], a["step"]) for a in info["averaged"]] == [(wd, 10), (str(at_20), 20)]
  p10, p20, mean = (
    jax.device_get(run.params)
    for run in (loading.load_run(wd, [10]), loading.load_run(wd), loading.load_run(str(out)))
  )
  for a, b, m in zip(jax.tree.leaves(p10), jax.tree.leaves(p20), jax.tree.leaves(mean)):
    np.testing.assert_allclose(m, (a + b) / 2, rtol=1e-6)
  again = run_module("ngpu_jax.tools.export", f"--average={wd}@10,{wd}@15", f"--out={out}x")
  assert again.returncode == 2 and "no checkpoint of step 15" in again.stderr
  assert not os.path.exists(f"{out}x")


def _tiny_model(path, **overrides):
  """A tiny config's initial parameters written as a model directory."""
  from conftest import tiny_config

  config = tiny_config(**overrides)
  params = jax.device_get(steps.init_params(config, tasks.get_task(config.task)))
  loading.write_model(params, config, {"step": 0}, str(path))
  return str(path), params


def test_mean_of_models_refuses_models_that_compute_differently(tmp_path):
  base, _ = _tiny_model(tmp_path / "base")
  # Dropout is read in training only: these two average into a model.
  dropout, _ = _tiny_model(tmp_path / "dropout", **{"model.dropout": 0.3})
  _, config, info = loading.mean_of_models([base, dropout])
  assert config.model.dropout == 0.15 and info["step"] == 0
  wider, _ = _tiny_model(tmp_path / "wider", **{"model.maps": 6})
  with pytest.raises(ValueError, match=r"wider is not the same model as .*model.maps: 4 -> 6"):
    loading.mean_of_models([base, wider])
  other_task, _ = _tiny_model(tmp_path / "task", task="bmul")
  with pytest.raises(ValueError, match=r"task: 'badd' -> 'bmul'"):
    loading.mean_of_models([base, other_task])
  with pytest.raises(ValueError, match="at least two models"):
    loading.mean_of_models([base])
  with pytest.raises(ValueError, match="WORKDIR@STEP"):
    loading.mean_of_models([base, f"{base}@x"])


def test_export_ensemble_answers_with_its_members_mean_probability(tmp_path):
  """Two models of other seeds (one stored with one relaxation copy) as one ensemble model:
  its logits are the log of the members' mean probabilities, and evaluate and predict run it."""
  a, _ = _tiny_model(tmp_path / "a", seed=1)
  b, _ = _tiny_model(tmp_path / "b", seed=2, **{"relax.copies": 1})
  out = tmp_path / "vote"
  proc = run_module("ngpu_jax.tools.export", f"--ensemble={a},{b}", f"--out={out}")
  assert proc.returncode == 0, proc.stderr[-3000:]
  assert "exported an ensemble of 2 models" in proc.stdout
  assert [m["source"] for m in loading.read_model_info(str(out))["members"]] == [a, b]
  vote = loading.load_run(str(out))
  assert vote.config.model.ensemble == 2 and vote.config.relax.copies == 6
  rng = np.random.default_rng(0)
  batch = data.make_batch(vote.task, rng, 8, 8, 8)
  member_a, member_b = loading.load_run(a), loading.load_run(b)
  logits = {
    name: jax.device_get(
      steps._forward(run.config, run.params, batch.x_BxW, batch.n_B).logits_BxWxC
    )
    for name, run in (("a", member_a), ("b", member_b), ("vote", vote))
  }
  assert not np.allclose(logits["a"], logits["b"])
  mean_p = (jax.nn.softmax(logits["a"]) + jax.nn.softmax(logits["b"])) / 2
  np.testing.assert_allclose(jax.nn.softmax(logits["vote"]), mean_p, rtol=1e-5, atol=1e-6)
  assert not np.allclose(logits["vote"], logits["a"])
  ran = run_module("ngpu_jax.tools.evaluate", f"--workdir={out}", "--lengths=8", "--examples=8")
  assert ran.returncode == 0 and "badd at step 0" in ran.stdout, ran.stderr[-3000:]
  task = vote.task
  problems = inference.parse_lines(task, ["101+11", "1+1"], 8)
  answers = inference.predict(
    vote.predict_step, vote.params, vote.mesh, task, problems, vote.config.buckets, 2
  )
  x_BxW = np.zeros((2, 8), np.int32)
  for i, inp in enumerate(problems):
    x_BxW[i, : len(inp)] = inp
  n_B = np.asarray([len(inp) for inp in problems], np.int32)
  mean_p = sum(
    jax.nn.softmax(steps._forward(r.config, r.params, x_BxW, n_B).logits_BxWxC)
    for r in (member_a, member_b)
  )
  want = [task.format_output(np.argmax(mean_p[i, : n_B[i]], -1).tolist()) for i in range(2)]
  assert answers == want


def test_ensembles_are_built_from_single_models_and_not_trained(tmp_path):
  a, _ = _tiny_model(tmp_path / "a", seed=1)
  b, _ = _tiny_model(tmp_path / "b", seed=2)
  vote = str(tmp_path / "vote")
  loading.export_ensemble([a, b], vote)
  with pytest.raises(ValueError, match="is an ensemble already"):
    loading.ensemble_of_models([vote, a])
  with pytest.raises(ValueError, match="is an ensemble already"):
    loading.mean_of_models([a, vote])
  with pytest.raises(ValueError, match="at least two models"):
    loading.ensemble_of_models([a])
  from ngpu_jax.tools import visualize

  with pytest.raises(visualize.VisualizeError, match="an ensemble of 2"):
    visualize.states_for(loading.load_run(vote), "101+11")
  wd = tmp_path / "run"
  proc = run_module("ngpu_jax.main", *SMOKE, "--config.model.ensemble=2", f"--workdir={wd}")
  assert proc.returncode != 0 and "model.ensemble: a run trains one model" in proc.stderr
  assert not os.path.exists(wd / "config.json")
  with pytest.raises(ValueError, match="is an ensemble of 2 models; start from one"):
    loading.initial_params(tiny_config(init_from=vote), tasks.get_task("badd"))
  with pytest.raises(ValueError, match="model.ensemble: must be an int >= 1"):
    configlib.validate(tiny_config(**{"model.ensemble": 0}))


def test_mean_of_models_repeats_a_single_copy(tmp_path):
  """A model stored with one relaxation copy counts as that copy repeated."""
  six, p6 = _tiny_model(tmp_path / "six", **{"relax.copies": 6})
  one, p1 = _tiny_model(tmp_path / "one", **{"relax.copies": 1})
  mean, config, _ = loading.mean_of_models([six, one])
  assert config.relax.copies == 6
  for a, b, m in zip(
    jax.tree.leaves(p6["steps"]), jax.tree.leaves(p1["steps"]), jax.tree.leaves(mean["steps"])
  ):
    assert a.shape[0] == 6 and b.shape[0] == 1
    np.testing.assert_allclose(m, (a + b) / 2, rtol=1e-6)
  np.testing.assert_allclose(mean["embed"], (p6["embed"] + p1["embed"]) / 2, rtol=1e-6)
