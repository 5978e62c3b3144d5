"""Where a run's numbers go: metrics.jsonl, TensorBoard event files, the console.

Only process 0 writes. One JSON object per line: train lines carry
{"step", "kind": "train", "loss", "cur_length", "seq_error", "symbol_error", ...};
eval lines {"step", "kind": "eval", "eval_length", "seq_error", "symbol_error", ...}.
"""

import json
import os
import sys
import time

import jax
from absl import logging


def _scalar(v):
  return v.item() if hasattr(v, "item") else v


class Reporter:
  """Appends metric lines and mirrors them to TensorBoard and the log."""

  def __init__(self, workdir: str, enabled: bool = True):
    self.enabled = enabled
    self.path = os.path.join(workdir, "metrics.jsonl")
    self._tb = None
    if enabled:
      # tensorboard.summary.Writer writes event files with numpy alone (no TensorFlow).
      from tensorboard.summary import Writer  # pylint: disable=g-import-not-at-top
      self._tb = Writer(os.path.join(workdir, "tensorboard"))

  def truncate_after(self, step: int) -> None:
    """Drops lines past `step`: a resumed run redoes those steps and writes them again.

    The dropped lines (from the lost part of a killed run) go to
    metrics.dropped.jsonl rather than away.
    """
    if not self.enabled or not os.path.exists(self.path):
      return
    with open(self.path) as f:
      lines = [line for line in f if line.strip()]
    keep = [line for line in lines if json.loads(line)["step"] <= step]
    if len(keep) == len(lines):
      return
    with open(os.path.join(os.path.dirname(self.path), "metrics.dropped.jsonl"), "a") as f:
      f.writelines(line for line in lines if json.loads(line)["step"] > step)
    tmp = self.path + ".tmp"
    with open(tmp, "w") as f:
      f.writelines(keep)
    os.replace(tmp, self.path)

  def write(self, kind: str, step: int, metrics: dict) -> None:
    if not self.enabled:
      return
    line = {"step": int(step), "kind": kind, **{k: _scalar(v) for k, v in metrics.items()}}
    with open(self.path, "a") as f:
      f.write(json.dumps(line) + "\n")
    suffix = f"/{line['eval_length']}" if "eval_length" in line else ""
    for k, v in line.items():
      if isinstance(v, (int, float)) and k not in ("step", "eval_length"):
        self._tb.add_scalar(f"{kind}/{k}{suffix}", float(v), int(step))
    self._tb.flush()

  def close(self) -> None:
    if self._tb is not None:
      self._tb.close()


def read_metrics(workdir: str) -> list[dict]:
  path = os.path.join(workdir, "metrics.jsonl")
  if not os.path.exists(path):
    return []
  with open(path) as f:
    return [json.loads(line) for line in f if line.strip()]


def is_final_eval(m: dict) -> bool:
  """An evaluation of the finished model (end of training or the evaluate command), as opposed
  to the periodic ones during training."""
  return bool(m.get("final")) or m.get("source") == "evaluate"


def format_duration(seconds: float) -> str:
  seconds = int(max(seconds, 0))
  h, rem = divmod(seconds, 3600)
  m, s = divmod(rem, 60)
  return f"{h}h{m:02d}m" if h else f"{m}m{s:02d}s"


class Progress:
  """Console progress: steps/s over the last interval and an ETA to num_steps."""

  def __init__(self, start_step: int, num_steps: int):
    self.num_steps = num_steps
    self._t, self._step = time.perf_counter(), start_step

  def line(self, step: int, m: dict) -> str:
    now = time.perf_counter()
    rate = (step - self._step) / max(now - self._t, 1e-9)
    self._t, self._step = now, step
    eta = format_duration((self.num_steps - step) / max(rate, 1e-9))
    return (f"step {step}/{self.num_steps} | {rate:.1f} steps/s | len {m['cur_length']}"
            f" | loss {m['loss']:.4f} | seq_err {m['seq_error']:.3f} sym_err {m['symbol_error']:.4f}"
            f" (all lengths {m['seq_error_all']:.3f})"
            f" | pull {m['pull']:.2g} | lr {m['lr']:.2g} | ETA {eta}")


def quiet_absl_logging() -> None:
  """WARNING unless --verbosity was given: orbax logs every file it touches at INFO."""
  from absl import flags  # pylint: disable=g-import-not-at-top
  if not flags.FLAGS["verbosity"].present:
    logging.set_verbosity(logging.WARNING)


def fail(msg: str) -> None:
  """A user's mistake (bad flag, config, input): one line on stderr, exit status 2."""
  print(f"error: {msg}", file=sys.stderr)
  sys.exit(2)


def log(msg: str) -> None:
  """Progress for people: stdout of process 0, flushed, whatever absl's verbosity."""
  if jax.process_index() == 0:
    print(msg, flush=True)
  logging.info(msg)
