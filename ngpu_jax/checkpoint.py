"""Orbax checkpoints of a run: the train state plus the host-side schedule (JSON).

Layout: WORKDIR/checkpoints/<step>/{state,schedule}. Orbax writes each step to a
temporary directory and renames it when complete, so a killed save never
leaves a checkpoint that looks finished.
"""

import os

import orbax.checkpoint as ocp
from absl import logging


class Checkpointer:
  """Saves and restores (TrainState, schedule dict) pairs under workdir/checkpoints."""

  def __init__(self, workdir: str, keep: int = 3):
    self.directory = os.path.join(os.path.abspath(workdir), "checkpoints")
    self._mngr = ocp.CheckpointManager(
        self.directory,
        options=ocp.CheckpointManagerOptions(max_to_keep=keep, create=True),
        item_names=("state", "schedule"))

  def latest_step(self) -> int | None:
    return self._mngr.latest_step()

  def save(self, step: int, state, schedule: dict) -> None:
    self._mngr.save(step, args=ocp.args.Composite(
        state=ocp.args.StandardSave(state), schedule=ocp.args.JsonSave(schedule)))

  def restore(self, abstract_state, step: int | None = None):
    """(state, schedule) of `step` (default: newest), or None when there is none."""
    step = self.latest_step() if step is None else step
    if step is None:
      return None
    logging.info("restoring checkpoint %s/%d", self.directory, step)
    out = self._mngr.restore(step, args=ocp.args.Composite(
        state=ocp.args.StandardRestore(abstract_state), schedule=ocp.args.JsonRestore()))
    return out.state, out.schedule

  def wait(self) -> None:
    self._mngr.wait_until_finished()

  def close(self) -> None:
    self._mngr.close()
