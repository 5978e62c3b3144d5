"""The picture commands: visualize (states over steps) and plot (learning curves)."""

import json
import os
import shutil

import numpy as np
import pytest
from PIL import Image

from ngpu_jax import inference, loading, model, probes, train
from ngpu_jax.tools import plot, visualize

from conftest import run_module, tiny_config

PROBLEM = "1011+110"  # 4-bit operands: n = 9 columns, so 9 steps


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
  wd = str(tmp_path_factory.mktemp("viz") / "badd")
  train.train_and_evaluate(tiny_config(), wd)
  return wd


@pytest.fixture(scope="module")
def loaded(workdir):
  return loading.load_run(workdir)


def test_states_match_the_models_own_answer(loaded):
  trace = visualize.states_for(loaded, PROBLEM)
  n, m = len(trace.inp), loaded.config.model
  assert trace.s_TxWxHxM.shape == (n, n, m.rows, m.maps)
  assert np.all(np.isfinite(trace.s_TxWxHxM))
  assert trace.target == loaded.task.target(loaded.task.parse(PROBLEM))
  logits_1xWxC = np.asarray(
    model.apply(
      loaded.params,
      np.asarray([trace.inp], np.int32),
      np.asarray([n], np.int32),
      model.Spec.from_config(loaded.config),
    ).logits_BxWxC
  )
  assert trace.pred == np.argmax(logits_1xWxC[0], -1).tolist()
  # The pictured last state is the one the answer is read from: row 0 through the readout.
  readout = loaded.params["readout"]
  logits_WxC = trace.s_TxWxHxM[n - 1, :, 0, :] @ np.asarray(readout["k"]) + np.asarray(readout["b"])
  np.testing.assert_allclose(logits_WxC, logits_1xWxC[0], rtol=1e-4, atol=1e-4)
  answers = inference.predict(
    loaded.predict_step,
    loaded.params,
    loaded.mesh,
    loaded.task,
    [trace.inp],
    loaded.config.buckets,
    4,
  )
  assert answers == [loaded.task.format_output(trace.pred)]


def test_pick_steps():
  assert visualize.pick_steps(None, 9) == [1, 3, 4, 6, 7, 9]
  assert visualize.pick_steps(None, 3) == [1, 2, 3]
  assert visualize.pick_steps([5, -1, 1, 9], 9) == [1, 5, 9]
  for bad in ([0], [10], [-10]):
    with pytest.raises(visualize.VisualizeError, match="outside 1..9"):
      visualize.pick_steps(bad, 9)


def test_visualize_writes_a_png(workdir, tmp_path):
  out = str(tmp_path / "steps.png")
  proc = run_module(
    "ngpu_jax.tools.visualize",
    f"--model={workdir}",
    "--task=badd",
    f"--problem={PROBLEM}",
    f"--out={out}",
  )
  assert proc.returncode == 0, proc.stderr[-3000:]
  assert "1011+0110" in proc.stdout
  with Image.open(out) as img:
    assert img.format == "PNG" and img.size[0] > 400 and img.size[1] > 300


def test_visualize_writes_a_gif_with_one_frame_per_step(workdir, tmp_path):
  out = str(tmp_path / "steps.gif")
  proc = run_module(
    "ngpu_jax.tools.visualize", f"--model={workdir}", f"--problem={PROBLEM}", f"--out={out}"
  )
  assert proc.returncode == 0, proc.stderr[-3000:]
  with Image.open(out) as img:
    assert img.format == "GIF" and getattr(img, "n_frames", 1) == 9


@pytest.mark.parametrize(
  "args,message",
  [
    (["--problem=12+1"], "left operand in base 2: digit '2'"),
    (["--problem=101"], "missing operator"),
    (["--problem=1*1", "--task=bmul"], "trained on 'badd'"),
    (["--problem=1+1", "--steps=0"], "outside 1..3"),
    (["--problem=1+1", "--steps=1,x"], "--steps=1,x: give whole numbers"),
    (["--problem=1+1", "--out=x.jpg"], "unknown format"),
  ],
)
def test_visualize_rejects_bad_requests(workdir, tmp_path, args, message):
  out = [] if any(a.startswith("--out") for a in args) else [f"--out={tmp_path / 'x.png'}"]
  proc = run_module("ngpu_jax.tools.visualize", f"--model={workdir}", *out, *args)
  assert proc.returncode == 2
  assert message in proc.stderr and "Traceback" not in proc.stderr


def test_mp4_without_ffmpeg_asks_for_a_gif():
  if visualize.animation.writers.is_available("ffmpeg"):
    pytest.skip("ffmpeg is installed")
  with pytest.raises(visualize.VisualizeError, match="use --out=NAME.gif"):
    visualize.check_out("steps.mp4")


def test_plot_one_and_two_runs(workdir, tmp_path):
  other = str(tmp_path / "seed1")
  os.makedirs(other)
  shutil.copy(os.path.join(workdir, "metrics.jsonl"), other)
  with open(os.path.join(other, "config.json"), "w") as f:
    json.dump({"task": "badd", "seed": 1}, f)
  assert plot.run_label(other) == "seed1 (badd, seed 1)"
  for dirs in ([workdir], [workdir, other]):
    out = str(tmp_path / f"curves{len(dirs)}.png")
    plot.plot_runs(dirs, out)
    with Image.open(out) as img:
      assert img.format == "PNG" and img.size[0] > 400


def _fork_like_run(path) -> str:
  """A run evaluated at 41 and 401 every 10 steps, 10-40 (no training needed)."""
  os.makedirs(path)
  lines = []
  for step in (10, 20, 30, 40):
    lines.append({"step": step, "kind": "train", "loss": 1.0 / step, "cur_length": 41})
    for length in (41, 401):
      lines.append(
        {"step": step, "kind": "eval", "eval_length": length, "seq_error": 0.5, "symbol_error": 0.1}
      )
    lines.append({"step": step, "kind": "front", "front": 41, "lengths": [41, 401]})
  with open(os.path.join(path, "metrics.jsonl"), "w") as f:
    f.writelines(json.dumps(m) + "\n" for m in lines)
  return str(path)


def test_plot_from_a_step_and_chosen_lengths(tmp_path):
  run = _fork_like_run(tmp_path / "fork")
  fig = plot.plot_runs([run], str(tmp_path / "zoom.png"), from_step=30, lengths=[401])
  ax_eval, ax_front = fig.axes[3], fig.axes[4]
  drawn = [line for line in ax_eval.get_lines() if len(line.get_xdata())]
  assert drawn and all(sorted(line.get_xdata()) == [30, 40] for line in drawn)
  assert [t.get_text() for t in ax_eval.get_legend().get_texts()] == ["length 401"]
  assert [t.get_text() for t in fig.legends[0].get_texts()] == ["fork"]
  assert all(min(line.get_xdata()) >= 30 for line in ax_front.get_lines())
  everything = plot.plot_runs([run], str(tmp_path / "all.png")).axes[3]
  assert [t.get_text() for t in everything.get_legend().get_texts()] == ["length 41", "length 401"]
  assert len(everything.get_lines()) > len(drawn)
  for kw, message in (
    ({"from_step": 50}, "no metrics to plot from step 50 on"),
    ({"lengths": [81]}, "no run evaluated length 81"),
  ):
    with pytest.raises(plot.PlotError, match=message):
      plot.plot_runs([run], str(tmp_path / "none.png"), **kw)
  proc = run_module("ngpu_jax.tools.plot", run, "--lengths=4x", f"--out={tmp_path / 'x.png'}")
  assert proc.returncode == 2 and "--lengths=4x" in proc.stderr
  proc = run_module(
    "ngpu_jax.tools.plot", run, "--from_step=20", "--lengths=41", f"--out={tmp_path / 'z.png'}"
  )
  assert proc.returncode == 0 and os.path.getsize(tmp_path / "z.png") > 0, proc.stderr[-2000:]


def test_plot_draws_the_reach_of_the_carries_where_a_run_measured_it(tmp_path):
  run = _fork_like_run(tmp_path / "fork")
  assert len(plot.plot_runs([run], str(tmp_path / "no_reach.png")).axes) == 6
  with open(os.path.join(run, "metrics.jsonl"), "a") as f:
    for step, lowest in ((20, {("a", True): 30, ("mixed", False): 45}), (40, {})):
      for carry_in in (False, True):
        for split in probes.SPLITS:
          col = lowest.get((split, carry_in))
          line = {"step": step, "kind": "reach", "reach_length": 401, "carry_in": carry_in}
          line |= {"split": split, "lowest_wrong_column": col, "wrong": int(col is not None)}
          f.write(json.dumps(line) + "\n")
  assert plot.read_reach(run, from_step=30) == [{"step": 40, "reach_length": 401, "reach": 201}]
  fig = plot.plot_runs([run, _fork_like_run(tmp_path / "other")], str(tmp_path / "reach.png"))
  ax_reach = fig.axes[6]
  assert len(fig.axes) == 7 and "reach of the carries at length 401" in ax_reach.get_title()
  (line,) = [ln for ln in ax_reach.get_lines() if len(ln.get_xdata())]  # the other has none
  assert list(line.get_xdata()) == [20, 40] and list(line.get_ydata()) == [30, 201]


def test_plot_command_and_missing_metrics(workdir, tmp_path):
  out = str(tmp_path / "curves.png")
  proc = run_module("ngpu_jax.tools.plot", workdir, f"--out={out}")
  assert proc.returncode == 0, proc.stderr[-3000:]
  assert os.path.getsize(out) > 0
  empty = str(tmp_path / "empty_run")
  os.makedirs(empty)
  proc = run_module("ngpu_jax.tools.plot", workdir, empty, f"--out={tmp_path / 'no.png'}")
  assert proc.returncode == 2
  assert empty in proc.stderr and "Traceback" not in proc.stderr
  assert not os.path.exists(tmp_path / "no.png")
