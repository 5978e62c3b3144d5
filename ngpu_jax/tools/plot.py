"""Learning curves of one or more runs, from their metrics.jsonl.

  python -m ngpu_jax.tools.plot WORKDIR [WORKDIR ...] --out=FILE.png [--from_step=N] [--lengths=L,...]

Six panels against the training step, one colour per run: the training loss (log scale),
the curriculum length, the training sequence error at the curriculum length (dotted: over all
lengths drawn), the evaluation sequence error, one line per (run, evaluated length) (stars
mark the final evaluation and later `evaluate` commands), the generalization front (the
longest length up to which every periodically evaluated length was error-free: the early sign
of whether a long run is worth continuing), and the periodic evaluation's symbol error.
`--from_step` zooms in on the later steps (forks of one run share their early history),
`--lengths` keeps the evaluation panels to a few lengths.
"""

import itertools
import json
import os
from collections.abc import Sequence

from absl import flags
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.lines import Line2D

from ngpu_jax import console, workdir_files
from ngpu_jax.tools import common

_LENGTH_STYLES = ("-", "--", ":", "-.")


class PlotError(ValueError):
  """A workdir without usable metrics, or an output that cannot be written: exit 2."""


def run_label(workdir: str, name: str | None = None) -> str:
  """The workdir's name, with the task and seed from its config.json when there is one."""
  label = name or os.path.basename(os.path.normpath(workdir))
  try:
    with open(os.path.join(workdir, "config.json")) as f:
      config = json.load(f)
    return f"{label} ({config['task']}, seed {config['seed']})"
  except (OSError, ValueError, KeyError, TypeError):
    return label


def _read_lines(workdir: str, from_step: int) -> list[dict]:
  """The metrics lines from from_step on; PlotError naming the workdir if unreadable."""
  if not os.path.isdir(workdir):
    raise PlotError(f"{workdir}: no such run directory")
  try:
    lines = workdir_files.read_metrics(workdir)
  except (OSError, ValueError) as e:
    raise PlotError(f"{workdir}: unreadable metrics.jsonl: {e}") from None
  return [m for m in lines if m.get("step", 0) >= from_step]


def read_run(
  workdir: str, from_step: int = 0, lines: list[dict] | None = None
) -> tuple[list[dict], list[dict], list[dict]]:
  """(train, eval, generalization-front lines) from from_step on, each by step.

  lines: the run's metrics lines from from_step on, if already read. PlotError naming the
  workdir if it has no train or eval lines there.
  """
  if lines is None:
    lines = _read_lines(workdir, from_step)
  train = sorted((m for m in lines if m.get("kind") == "train"), key=lambda m: m["step"])
  # Random-problem evaluations only: hard-case probe lines have tables of their own.
  evals = sorted(
    (m for m in lines if m.get("kind") == "eval" and "probe" not in m), key=lambda m: m["step"]
  )
  fronts = sorted((m for m in lines if m.get("kind") == "front"), key=lambda m: m["step"])
  if not train and not evals:
    where = f" from step {from_step} on" if from_step else ""
    raise PlotError(
      f"{workdir}: no metrics to plot{where} ({os.path.join(workdir, 'metrics.jsonl')} "
      "is missing or has no train/eval lines there)"
    )
  return train, evals, fronts


def read_reach(workdir: str, from_step: int = 0, lines: list[dict] | None = None) -> list[dict]:
  """Per step with `reach` lines (eval.reach_length), {step, reach_length, reach}: the lowest
  wrong column least over the splits and carries, or the answer's width where all were right.
  lines: as for read_run."""
  if lines is None:
    lines = _read_lines(workdir, from_step)
  by_step: dict[int, list[dict]] = {}
  for m in lines:
    if m.get("kind") == "reach":
      by_step.setdefault(m["step"], []).append(m)
  out = []
  for step, lines in sorted(by_step.items()):
    n = lines[0]["reach_length"]
    width = (n - 1) // 2 + 1  # the answer's columns: all right reaches the top
    cols = [m["lowest_wrong_column"] for m in lines if m["lowest_wrong_column"] is not None]
    out.append({"step": step, "reach_length": n, "reach": min(cols, default=width)})
  return out


def _names(workdirs: Sequence[str]) -> list[str]:
  """Basenames, or the paths as given where two runs share a basename."""
  base = [os.path.basename(os.path.normpath(w)) for w in workdirs]
  return [b if base.count(b) == 1 else os.path.normpath(w) for b, w in zip(base, workdirs)]


def _plot(ax, lines: list[dict], key: str, **kw) -> None:
  """key against step; short series get markers, since one point draws no line."""
  pts = [(m["step"], m[key]) for m in lines if m.get(key) is not None]
  kw.setdefault("marker", "o" if len(pts) <= 20 else None)
  kw.setdefault("ms", 3)
  ax.plot([s for s, _ in pts], [v for _, v in pts], **kw)


def plot_runs(
  workdirs: Sequence[str],
  out: str,
  dpi: int = 100,
  from_step: int = 0,
  lengths: Sequence[int] = (),
) -> Figure:
  """Writes the learning curves of the runs to `out` (any format matplotlib writes).

  from_step: only steps from there on; lengths: only these evaluation lengths (all if empty).
  """
  lines = [_read_lines(w, from_step) for w in workdirs]  # each metrics.jsonl read once
  runs = [read_run(w, from_step, ls) for w, ls in zip(workdirs, lines)]  # all checked first
  reaches = [read_reach(w, from_step, ls) for w, ls in zip(workdirs, lines)]
  rows = 4 if any(reaches) else 3
  fig = Figure(figsize=(13, 4 * rows), layout="constrained")
  canvas = FigureCanvasAgg(fig)  # Agg: no display needed
  ext = os.path.splitext(out)[1].lstrip(".").lower()
  if ext not in canvas.get_supported_filetypes():
    raise PlotError(f"--out={out!r}: unknown image format {ext or '(none)'!r}; use .png")
  if lengths:
    evaluated = {m["eval_length"] for _, evals, _ in runs for m in evals}
    missing = sorted(set(lengths) - evaluated)
    if missing:
      raise PlotError(
        f"--lengths: no run evaluated length {', '.join(map(str, missing))}"
        f" (evaluated: {', '.join(map(str, sorted(evaluated))) or 'none'})"
      )
    runs = [
      (train, [m for m in evals if m["eval_length"] in lengths], fronts)
      for train, evals, fronts in runs
    ]
  axes = fig.subplots(rows, 2, sharex=True).ravel()
  ax_loss, ax_len, ax_train, ax_eval, ax_front, ax_sym = axes[:6]
  ax_reach = axes[6] if rows == 4 else None
  if ax_reach is not None:
    fig.delaxes(axes[7])
  colors = itertools.cycle(f"C{i}" for i in range(10))
  # Colour says which run (one legend for the figure), line style which length (one legend
  # per evaluation panel), so the legends stay small however many runs are drawn.
  styles = {
    length: style
    for length, style in zip(
      sorted({m["eval_length"] for _, evals, _ in runs for m in evals}),
      itertools.cycle(_LENGTH_STYLES),
    )
  }
  for workdir, name, (train, evals, fronts), reach, color in zip(
    workdirs, _names(workdirs), runs, reaches, colors
  ):
    label = run_label(workdir, name)
    if ax_reach is not None:
      _plot(ax_reach, reach, "reach", color=color, marker="o")
    _plot(ax_loss, train, "loss", color=color, label=label)
    _plot(ax_len, train, "cur_length", color=color, drawstyle="steps-post")
    _plot(ax_train, train, "seq_error", color=color)
    _plot(ax_train, train, "seq_error_all", color=color, ls=":", alpha=0.7)
    for length in sorted({m["eval_length"] for m in evals}):
      at = [m for m in evals if m["eval_length"] == length]
      periodic = [m for m in at if not workdir_files.is_final_eval(m)]
      later = [m for m in at if m not in periodic]
      _plot(ax_eval, periodic, "seq_error", color=color, ls=styles[length], marker="o")
      if later:
        _plot(ax_eval, later, "seq_error", color=color, ls="none", marker="*", ms=10)
      _plot(ax_sym, periodic, "symbol_error", color=color, ls=styles[length], marker="o")
    # Steps where the far lengths were evaluated are drawn filled: only there can the
    # front pass the longest of the frequent lengths.
    _plot(ax_front, fronts, "front", color=color, drawstyle="steps-post", marker=None)
    widest = max((len(m["lengths"]) for m in fronts), default=0)
    _plot(
      ax_front,
      [m for m in fronts if len(m["lengths"]) == widest],
      "front",
      color=color,
      ls="none",
      marker="o",
    )
  ax_loss.set(yscale="log", title="training loss", ylabel="cross-entropy")
  ax_len.set(title="curriculum length", ylabel="columns")
  ax_train.set(
    title="training sequence error\n(solid: at the curriculum length; dotted: all lengths)",
    ylabel="fraction wrong",
    ylim=(-0.03, 1.03),
  )
  ax_eval.set(
    title="evaluation sequence error per length\n(stars: final evaluation, evaluate command)",
    ylabel="fraction wrong",
    ylim=(-0.03, 1.03),
  )
  ax_front.set(
    title="generalization front: longest length up to which every evaluated\n"
    "length is error-free (dots: far lengths evaluated too)",
    ylabel="length",
    ylim=(0, None),
  )
  ax_front.set_yscale("symlog", linthresh=10)  # 0 (nothing exact) stays drawable
  ax_sym.set(
    title="evaluation symbol error per length (periodic)", ylabel="fraction wrong", ylim=(0, 1.05)
  )
  ax_sym.set_yscale("symlog", linthresh=1e-3)
  bottom = [ax_front, ax_sym]
  if ax_reach is not None:
    lengths_measured = sorted({m["reach_length"] for r in reaches for m in r})
    ax_reach.set(
      title=f"reach of the carries at length {', '.join(map(str, lengths_measured))}: lowest wrong"
      " column\non runs as wide as the number (least over splits and carries;\nthe answer's"
      " width where all were right)",
      ylabel="column",
      ylim=(0, None),
    )
    ax_reach.grid(alpha=0.3)
    bottom.append(ax_reach)
  for ax in bottom:
    ax.set_xlabel("training step")
    ax.tick_params(labelbottom=True)  # shared x: the panels above the reach show their steps
  for ax in (ax_loss, ax_len, ax_train, ax_eval, ax_front, ax_sym):
    ax.grid(alpha=0.3)
  fig.legend(
    *ax_loss.get_legend_handles_labels(),
    loc="outside lower center",
    ncol=1 if len(workdirs) > 3 else len(workdirs),
    fontsize=9,
  )
  length_keys = [
    Line2D([], [], color="0.3", ls=style, label=f"length {length}")
    for length, style in styles.items()
  ]
  for ax in (ax_eval, ax_sym):
    if length_keys:
      ax.legend(handles=length_keys, fontsize=8, ncol=1 + len(length_keys) // 5)
  fig.suptitle("Neural GPU learning curves")
  try:
    fig.savefig(out, dpi=dpi)
  except OSError as e:
    raise PlotError(f"cannot write {out}: {e}") from None
  return fig


def define_flags():
  flags.DEFINE_string("out", None, "Image to write, e.g. curves.png.")
  flags.DEFINE_integer("dpi", 100, "Resolution.")
  flags.DEFINE_integer("from_step", 0, "Draw only the steps from this one on.", lower_bound=0)
  flags.DEFINE_list("lengths", [], "Evaluation lengths to draw (default: every one evaluated).")
  flags.mark_flag_as_required("out")


def main(argv):
  workdirs = argv[1:]
  if not workdirs:
    console.fail(
      "give at least one run directory: python -m ngpu_jax.tools.plot WORKDIR ... --out=FILE.png"
    )
  F = flags.FLAGS
  try:
    lengths = common.integers("lengths", F.lengths)
  except ValueError as e:
    console.fail(str(e))
  try:
    plot_runs(workdirs, F.out, F.dpi, F.from_step, lengths)
  except PlotError as e:
    console.fail(str(e))
  print(f"wrote {F.out}")


if __name__ == "__main__":
  common.run(main, define_flags, jax_flags=False)
