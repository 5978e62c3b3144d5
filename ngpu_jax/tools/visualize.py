"""Pictures of the Neural GPU's mental image, step by step, for one problem.

  python -m ngpu_jax.tools.visualize --model=DIR_OR_NAME --task=badd --problem=1011+110 \\
      --out=FILE.png [--steps=1,5,-1]

The state after step t is a W x H x M grid (columns x rows x maps). A panel shows it with the
W columns along x and, down y, one band per row h holding its M maps (row 0, where the answer
is read, on top); colour is the value, blue -1 .. red +1. Under the columns: the input
symbols, little-endian as the model reads them ('_' is a blank), and under the answer step n
also the model's output and the expected answer (a wrong output digit is red). The colour
scale is fixed at [-1, 1]; values beyond it (mostly the unsquashed input embedding in early
steps) take its end colours, and the caption then gives their range.

FILE.png: one panel per chosen step (default: about 6, from step 1 to the answer step n).
FILE.gif: one frame per step 1..n; FILE.mp4 the same, where ffmpeg is installed.
Steps count from 1; a negative step counts from the end (-1 is step n).
"""

import functools
import math
import os
import textwrap
from collections.abc import Sequence
from typing import NamedTuple

import jax
import numpy as np
from absl import flags
from matplotlib import animation
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from ngpu_jax import console, loading, model, parallel, tasks
from ngpu_jax.tools import common

FORMATS = (".png", ".gif", ".mp4")
DEFAULT_PANELS = 6
CMAP = "RdBu_r"  # diverging: blue < 0 < red, white at 0
TEXT_ROW_PT = 12  # height of one row of decoded symbols under a panel
_LAYOUT_IN = {"left": 1.25, "gap": 0.35, "top": 0.4, "bottom": 1.05, "cbar": 1.0, "panel_h": 3.0}


class VisualizeError(ValueError):
  """A request that cannot be drawn (bad step, format, length): exit 2 with this message."""


class Trace(NamedTuple):
  """One problem through the model: what the pictures show."""

  inp: list[int]  # the n input symbols, little-endian
  s_TxWxHxM: np.ndarray  # the state after step t + 1 (T = W = n)
  pred: list[int]  # the model's output class per column, read after step n
  target: list[int]  # the exact answer per column


@functools.cache
def _apply_with_states(spec: model.Spec):
  return jax.jit(lambda p, x, n: model.apply(p, x, n, spec, keep_states=True))


def states_for(loaded, text: str) -> Trace:
  """The model's states and answer for one problem text (raises tasks.ProblemError)."""
  if loaded.config.model.ensemble > 1:
    raise VisualizeError(
      f"the model is an ensemble of {loaded.config.model.ensemble}, with a state per member; "
      "picture a member alone"
    )
  task = loaded.task
  inp = task.parse(text)
  target = task.target(inp)
  # W = n: a single problem needs no padding, and every state column is a problem column.
  x_1xW = np.asarray([inp], np.int32)
  n_1 = np.asarray([len(inp)], np.int32)
  out = _apply_with_states(model.Spec.from_config(loaded.config))(loaded.params, x_1xW, n_1)
  logits_1xWxC, s_TxBxWxHxM = jax.device_get((out.logits_BxWxC, out.states_TxBxWxHxM))
  pred = np.argmax(logits_1xWxC[0], axis=-1).tolist()
  return Trace(inp, np.asarray(s_TxBxWxHxM[:, 0]), pred, target)


def pick_steps(
  spec: Sequence[int] | None, n: int, default_count: int = DEFAULT_PANELS
) -> list[int]:
  """Step numbers in 1..n, sorted; by default `default_count` spread from 1 to n."""
  if not spec:
    return sorted({int(round(t)) for t in np.linspace(1, n, min(n, default_count))})
  out = set()
  for t in spec:
    step = t if t > 0 else n + 1 + t
    if not 1 <= step <= n:
      raise VisualizeError(
        f"step {t} is outside 1..{n}: this problem takes {n} steps "
        "(steps count from 1; -1 is the last)"
      )
    out.add(step)
  return sorted(out)


def symbol_char(s: int) -> str:
  """An input symbol or output class as one character: a digit, '+', '*', '_' for blank."""
  return {tasks.PAD: "_", tasks.PLUS: "+", tasks.TIMES: "*"}.get(int(s), str(int(s) - 1))


def headline(trace: Trace, task: tasks.Task) -> str:
  answer = task.format_output(trace.pred) or "(blank)"
  verdict = (
    "correct"
    if trace.pred == trace.target
    else f"wrong: expected {task.format_output(trace.target)}"
  )
  return f"{task.name}  {task.format_input(trace.inp)}  ->  model: {answer}  ({verdict})"


def _panel_width_in(w: int) -> float:
  return min(max(0.25 * w + 0.8, 3.0), 16.0)


class _Layout(NamedTuple):
  """Where things go, in inches: fixed for all frames of an animation."""

  rows: int
  cols: int
  panel_w: float
  head: float  # the caption's band at the top
  caption: str
  clipped: bool  # some value outside [-1, 1]: the colour bar gets arrows


def _layout(
  trace: Trace, task: tasks.Task, n_panels: int, steps: Sequence[int], note: str
) -> _Layout:
  """Panels side by side as fit in about 18 inches; the caption wrapped to the width."""
  _, w, h, m = trace.s_TxWxHxM.shape
  lay = _LAYOUT_IN
  pw = _panel_width_in(w)
  cols = max(1, min(n_panels, int(18 // (lay["left"] + pw + lay["gap"]))))
  width_in = cols * (lay["left"] + pw + lay["gap"]) + lay["cbar"]
  # Fixed colour limits keep frames comparable, but the state can leave [-1, 1] (the
  # input's embedding is not squashed; the CGRU only mixes it with tanh values).
  shown = trace.s_TxWxHxM[np.asarray(steps) - 1]
  lo, hi = float(shown.min()), float(shown.max())
  clipped = max(-lo, hi) > 1
  facts = [note, f"state: {h} rows x {m} maps per column"]
  if clipped:
    facts.append(f"colours clip at ±1 (values here span {lo:.2f}..{hi:.2f})")
  chars = int(width_in * 72 / 7)  # ~7 pt per character at 11 pt
  caption = "\n".join(
    [
      textwrap.fill(headline(trace, task), chars),
      textwrap.fill("; ".join(f for f in facts if f), chars),
    ]
  )
  head = 0.35 + 0.2 * caption.count("\n")
  return _Layout(math.ceil(n_panels / cols), cols, pw, head, caption, clipped)


def _new_figure(plan: _Layout) -> Figure:
  lay = _LAYOUT_IN
  width = plan.cols * (lay["left"] + plan.panel_w + lay["gap"]) + lay["cbar"]
  height = plan.head + plan.rows * (lay["top"] + lay["panel_h"] + lay["bottom"])
  fig = Figure(figsize=(width, height))
  FigureCanvasAgg(fig)  # Agg: no display needed
  return fig


def _decode_rows(ax, rows: list[tuple[str, list[str], list[str]]], every: int) -> None:
  """Rows of characters under the x axis, one per column, each named on the left."""
  for i, (name, chars, colors) in enumerate(rows):
    dy = -(5 + i * TEXT_ROW_PT)  # clear of the tick marks
    ax.annotate(
      name,
      xy=(0, 0),
      xycoords="axes fraction",
      xytext=(-6, dy),
      textcoords="offset points",
      ha="right",
      va="top",
      fontsize=9,
    )
    for c in range(0, len(chars), every):
      ax.annotate(
        chars[c],
        xy=(c, 0),
        xycoords=ax.get_xaxis_transform(),
        xytext=(0, dy),
        textcoords="offset points",
        ha="center",
        va="top",
        fontsize=9,
        family="monospace",
        color=colors[c],
        weight="bold",
      )


def draw(fig: Figure, plan: _Layout, trace: Trace, steps: Sequence[int]) -> None:
  """Draws one panel per step (1-based) into a figure made by _new_figure(plan)."""
  t_all, w, h, m = trace.s_TxWxHxM.shape
  lay = _LAYOUT_IN
  fw, fh = fig.get_size_inches()
  pw = plan.panel_w
  image = None
  for i, t in enumerate(steps):
    r, c = divmod(i, plan.cols)
    x0 = c * (lay["left"] + pw + lay["gap"]) + lay["left"]
    y0 = fh - plan.head - (r + 1) * (lay["top"] + lay["panel_h"] + lay["bottom"]) + lay["bottom"]
    ax = fig.add_axes((x0 / fw, y0 / fh, pw / fw, lay["panel_h"] / fh))
    # Rows stacked as bands of M maps: y index h * M + map.
    img_HMxW = trace.s_TxWxHxM[t - 1].transpose(1, 2, 0).reshape(h * m, w)
    image = ax.imshow(
      img_HMxW, cmap=CMAP, vmin=-1.0, vmax=1.0, aspect="auto", interpolation="nearest"
    )
    for band in range(1, h):
      ax.axhline(band * m - 0.5, color="black", lw=3)
    ax.set_yticks(
      [band * m + (m - 1) / 2 for band in range(h)],
      [f"row {band}\n(read out)" if band == 0 else f"row {band}" for band in range(h)],
    )
    ax.tick_params(axis="y", length=0, labelsize=9)
    ax.set_xticks(range(w), [""] * w)
    ax.tick_params(axis="x", length=2)
    final = t == t_all
    ax.set_title(
      f"after step {t} of {t_all}" + ("  (answer read here)" if final else ""),
      fontsize=10,
      weight="bold" if final else "normal",
    )
    rows = [("input", [symbol_char(s) for s in trace.inp], ["black"] * w)]
    if final:
      ok = [p == y for p, y in zip(trace.pred, trace.target)]
      rows += [
        (
          "model",
          [symbol_char(s) for s in trace.pred],
          ["tab:green" if good else "red" for good in ok],
        ),
        ("answer", [symbol_char(s) for s in trace.target], ["black"] * w),
      ]
    col_pt = pw * 72 / w
    _decode_rows(ax, rows, every=max(1, math.ceil(8 / col_pt)))
    ax.set_xlabel(
      f"{w} columns, little-endian (least significant digit left)",
      labelpad=4 + len(rows) * TEXT_ROW_PT,
      fontsize=9,
    )
  fig.suptitle(plan.caption, fontsize=11, y=1 - 0.1 / fh, va="top")
  cax = fig.add_axes(
    (
      (fw - lay["cbar"] + 0.15) / fw,
      lay["bottom"] / fh,
      0.15 / fw,
      (fh - plan.head - lay["bottom"] - lay["top"]) / fh,
    )
  )
  fig.colorbar(image, cax=cax, extend="both" if plan.clipped else "neither").set_label(
    "state value"
  )


def render_png(
  trace: Trace, task: tasks.Task, steps: Sequence[int], out: str, note: str = "", dpi: int = 100
) -> None:
  plan = _layout(trace, task, len(steps), steps, note)
  fig = _new_figure(plan)
  draw(fig, plan, trace, steps)
  fig.savefig(out, dpi=dpi)


def render_animation(
  trace: Trace,
  task: tasks.Task,
  out: str,
  steps: Sequence[int] | None = None,
  note: str = "",
  fps: float = 2.0,
  dpi: int = 100,
) -> None:
  """One frame per step (default: every step 1..n); .gif via Pillow, .mp4 via ffmpeg."""
  steps = list(steps or range(1, len(trace.inp) + 1))
  if out.lower().endswith(".mp4"):
    if not animation.writers.is_available("ffmpeg"):
      raise VisualizeError("writing .mp4 needs ffmpeg, which is not installed: use --out=NAME.gif")
    writer = animation.FFMpegWriter(fps=fps)
  else:
    writer = animation.PillowWriter(fps=fps)
  plan = _layout(trace, task, 1, steps, note)  # one caption for all frames
  fig = _new_figure(plan)
  with writer.saving(fig, out, dpi):
    for t in steps:
      fig.clear()
      draw(fig, plan, trace, [t])
      writer.grab_frame()


def check_out(out: str) -> str:
  """The output's extension, or VisualizeError before any work is done."""
  ext = os.path.splitext(out)[1].lower()
  if ext not in FORMATS:
    raise VisualizeError(
      f"--out={out!r}: unknown format {ext or '(none)'!r}; use one of " + ", ".join(FORMATS)
    )
  if ext == ".mp4" and not animation.writers.is_available("ffmpeg"):
    raise VisualizeError("writing .mp4 needs ffmpeg, which is not installed: use --out=NAME.gif")
  return ext


def define_flags():
  common.define_model_flags(201, "the states kept grow with the square of the length")
  flags.DEFINE_string("problem", None, "The problem as a person writes it, e.g. 1011+110.")
  flags.DEFINE_string("out", None, "Output file: .png (panels), .gif or .mp4 (one frame per step).")
  flags.DEFINE_list(
    "steps",
    [],
    "Steps to show, 1-based; -1 is the last (default: ~6 for .png, all for animations).",
  )
  flags.DEFINE_float("fps", 2.0, "Frames per second of an animation.")
  flags.DEFINE_integer("dpi", 100, "Resolution.")
  flags.mark_flags_as_required(["problem", "out"])


def main(argv):
  del argv
  f = flags.FLAGS
  console.quiet_absl_logging()
  parallel.setup_cpu_devices(1, 1)  # one problem: no batch to split
  try:
    ext = check_out(f.out)
    if f.fps <= 0 or f.dpi <= 0:
      raise VisualizeError("--fps and --dpi must be positive")
    try:
      spec = common.integers("steps", f.steps)
    except ValueError as e:
      raise VisualizeError(str(e)) from None
    workdir, config = common.model_config(f.model, f.task)
    task = tasks.get_task(config.task)
    n = len(task.parse(f.problem))  # bad text fails here, before the checkpoint is read
    if n > f.max_length:
      raise VisualizeError(
        f"the problem needs {n} columns; the limit is --max_length="
        f"{f.max_length} (the states kept grow with the square of the length)"
      )
    steps = pick_steps(spec, n) if spec or ext == ".png" else None
    loaded = loading.load_run(workdir)
    trace = states_for(loaded, f.problem)
    note = f"model {os.path.basename(os.path.normpath(workdir))} at training step {loaded.step}"
    if ext == ".png":
      render_png(trace, task, steps, f.out, note, f.dpi)
    else:
      render_animation(trace, task, f.out, steps, note, f.fps, f.dpi)
  except (ValueError, OSError) as e:  # ProblemError and PredictError are ValueErrors
    console.fail(str(e))
  print(f"{headline(trace, task)}\nwrote {f.out}")


if __name__ == "__main__":
  common.run(main, define_flags)
