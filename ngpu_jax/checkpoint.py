"""Orbax checkpoints of a run: the train state plus the host-side schedule (JSON).

Layout: WORKDIR/checkpoints/<step>/{state,schedule}. Orbax writes each step to a
temporary directory and renames it when complete, so a save killed half-way
never looks finished. A finished checkpoint that cannot be read (damaged on
disk) is moved to WORKDIR/damaged_checkpoints/ with a warning and the previous
one is used: nothing a person might want is deleted.
"""

import os
import shutil
import signal
import time

import orbax.checkpoint as ocp
from absl import logging

# Test hook: NGPU_JAX_FAULT=kill_during_save:STEP makes the process SIGKILL itself
# right after the save of STEP has started, before orbax has finished writing it.
FAULT_ENV = "NGPU_JAX_FAULT"


class CheckpointWriteError(RuntimeError):
  """Orbax could not write a checkpoint; the earlier ones are untouched."""


# Orbax reports a failed (asynchronous) write at the next save or wait, as one of these.
_WRITE_ERRORS = (OSError, ValueError, RuntimeError)


class Checkpointer:
  """Saves and restores (TrainState, schedule dict) pairs under workdir/checkpoints."""

  def __init__(self, workdir: str, keep: int = 3, keep_every: int = 0):
    """keep: the newest checkpoints kept; keep_every > 0: also every step divisible by it."""
    self.workdir = os.path.abspath(workdir)
    self.directory = os.path.join(self.workdir, "checkpoints")
    self._keep, self._keep_every = keep, keep_every
    self._mngr = self._manager()

  def _manager(self):
    return ocp.CheckpointManager(
      self.directory,
      options=ocp.CheckpointManagerOptions(
        max_to_keep=self._keep, keep_period=self._keep_every or None, create=True
      ),
      item_names=("state", "schedule"),
    )

  def latest_step(self) -> int | None:
    return self._mngr.latest_step()

  def save(self, step: int, state, schedule: dict) -> None:
    try:
      self._mngr.save(
        step,
        args=ocp.args.Composite(
          state=ocp.args.StandardSave(state), schedule=ocp.args.JsonSave(schedule)
        ),
      )
    except _WRITE_ERRORS as e:
      raise CheckpointWriteError(_first_line(e)) from e
    if os.environ.get(FAULT_ENV) == f"kill_during_save:{step}":
      # Fault injection for tests: the write is still in flight in orbax's thread.
      os.kill(os.getpid(), signal.SIGKILL)

  def restore(self, abstract_state, older=None):
    """(state, schedule) of the newest readable checkpoint, or None when there is none.

    older: (abstract_state, upgrade) for a checkpoint saved in an earlier layout of this
    run's state (the moving average turned on since): one that fits it is restored and
    passed through upgrade instead of being set aside as damaged.
    """
    for step in sorted(self._mngr.all_steps(), reverse=True):
      try:
        state, schedule = self._read(step, abstract_state, older)
      except Exception as e:  # pylint: disable=broad-except  (any unreadable file)
        self._set_aside(step, e)
        continue
      if schedule is None:
        self._set_aside(step, ValueError("schedule missing"))
        continue
      return state, schedule
    return None

  def restore_at(self, step: int, abstract_state, older=None):
    """(state, schedule) of the checkpoint of `step`; ValueError naming the steps kept if none.

    older: as for restore.
    """
    kept = sorted(self._mngr.all_steps())
    if step not in kept:
      raise ValueError(f"no checkpoint of step {step} in {self.directory}; kept: {kept}")
    return self._read(step, abstract_state, older)

  def _read(self, step: int, abstract_state, older):
    """(state, schedule) of `step` in the current layout, else in `older`'s and upgraded;
    the current layout's error when it fits neither."""
    try:
      out = self._restore_step(step, abstract_state)
    except Exception as error:  # pylint: disable=broad-except  (re-raised unless older fits)
      if older is None:
        raise
      abstract_older, upgrade = older
      try:
        out = self._restore_step(step, abstract_older)
      except Exception as older_error:  # pylint: disable=broad-except
        raise error from older_error
      return upgrade(out.state), out.schedule
    return out.state, out.schedule

  def _restore_step(self, step: int, abstract_state):
    return self._mngr.restore(
      step,
      args=ocp.args.Composite(
        state=ocp.args.StandardRestore(abstract_state), schedule=ocp.args.JsonRestore()
      ),
    )

  def _set_aside(self, step: int, error: Exception) -> None:
    src = os.path.join(self.directory, str(step))
    dst_dir = os.path.join(self.workdir, "damaged_checkpoints")
    os.makedirs(dst_dir, exist_ok=True)
    dst = os.path.join(dst_dir, f"{step}-{time.strftime('%Y%m%d-%H%M%S')}")
    msg = (
      f"checkpoint {src} is unreadable ({type(error).__name__}: {str(error)[:200]}); moved to {dst}"
    )
    logging.warning(msg)
    print(f"warning: {msg}", flush=True)
    shutil.move(src, dst)
    self._mngr.close()
    self._mngr = self._manager()  # forget the step it had listed

  def wait(self) -> None:
    try:
      self._mngr.wait_until_finished()
    except _WRITE_ERRORS as e:
      raise CheckpointWriteError(_first_line(e)) from e

  def close(self) -> None:
    try:
      self._mngr.close()
    except _WRITE_ERRORS as e:  # already reported by save/wait when it mattered
      logging.warning("closing the checkpoint manager: %s", _first_line(e))


def has_checkpoint(workdir: str) -> bool:
  """Whether workdir holds a finished checkpoint (orbax names them by their step alone)."""
  directory = os.path.join(workdir, "checkpoints")
  return os.path.isdir(directory) and any(name.isdigit() for name in os.listdir(directory))


def _first_line(e: Exception) -> str:
  return f"{type(e).__name__}: {str(e).strip().splitlines()[0] if str(e).strip() else ''}"
