"""What a command tells the person at the console: progress, notes, and errors that end it."""

import sys
import time

from absl import logging


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
    return (
      f"step {step}/{self.num_steps} | {rate:.1f} steps/s | len {m['cur_length']}"
      f" | loss {m['loss']:.4f} | seq_err {m['seq_error']:.3f} sym_err {m['symbol_error']:.4f}"
      f" (all lengths {m['seq_error_all']:.3f})"
      f" | pull {m['pull']:.2g} | lr {m['lr']:.2g} | ETA {eta}"
    )


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
  import jax  # pylint: disable=g-import-not-at-top  (the console alone needs no jax)

  if jax.process_index() == 0:
    print(msg, flush=True)
  logging.info(msg)
