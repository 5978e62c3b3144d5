"""Several seeds of one experiment in one program: train_and_evaluate_packed(config, seeds, ...).

The runs' parameters and optimizer states (moments, noise keys, learning rates, relaxation
copies) are stacked on a leading seed axis and updated by one vmapped step
(steps.make_packed_train_step). Everything else of a run stays its own (train._Run): data
stream, curriculum length, pull, saturation weight, windows, evaluations, stopping, workdir
and checkpoints. So each workdir holds what the same seed trained alone would write, and
evaluate, export, aggregate and plot read it unchanged. A run that has finished is masked out
of the update while the others go on.

On an accelerator the step of one seed leaves the chip mostly idle (launch-bound), and S seeds
cost little more than one; on a compute-bound CPU packing only saves the per-step overheads.
"""

import time

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from ngpu_jax import (
  checkpoint,
  console,
  data,
  parallel,
  steps,
  tasks,
  train,
  workdir_files,
)


class _Stack:
  """The stacked state of S runs, row i read and written by run i (see _Member)."""

  def __init__(self, size: int, mesh):
    repl = parallel.replicated(mesh)
    self._rows, self.state = [None] * size, None
    self._take = jax.jit(lambda st, i: jax.tree.map(lambda a: a[i], st), out_shardings=repl)
    self._put = jax.jit(
      lambda st, i, row: jax.tree.map(lambda a, r: a.at[i].set(r), st, row),
      out_shardings=repl,
      donate_argnums=0,
    )
    self._stack = jax.jit(lambda rows: jax.tree.map(lambda *a: jnp.stack(a), *rows))
    self._repl = repl

  def get(self, i: int):
    return self._rows[i] if self.state is None else self._take(self.state, np.int32(i))

  def put(self, i: int, row) -> None:
    if self.state is None:
      self._rows[i] = row
    else:
      self.state = self._put(self.state, np.int32(i), row)

  def stack(self) -> None:
    """Every run has put its restored (or fresh) state: from now on they live stacked."""
    self.state = jax.device_put(self._stack(self._rows), self._repl)
    self._rows = None


class _Member(train._Run):  # pylint: disable=protected-access
  """A run whose state is row `index` of a _Stack; its update happens in the pack's step."""

  def __init__(self, stack: _Stack, index: int, *args, **kwargs):
    self._stack, self._index = stack, index
    super().__init__(*args, **kwargs)

  @property
  def state(self):
    return self._stack.get(self._index)

  @state.setter
  def state(self, value):
    self._stack.put(self._index, value)


def seed_configs(config: ml_collections.ConfigDict, seeds) -> list[ml_collections.ConfigDict]:
  out = []
  for s in seeds:
    c = config.copy_and_resolve_references()
    with c.unlocked():
      c.seed = int(s)
    out.append(c)
  return out


def _padded(batches_S: list[tuple[data.Batch, ...]], active_S: list[bool]):
  """The runs' batches stacked per group, S x B x W (a curriculum batch padded with blanks to
  the widest of the pack; a finished run's rows empty), and each run's own width."""
  template = next(b for b, a in zip(batches_S, active_S) if a)
  groups = []
  for g, like in enumerate(template):
    width = max(b[g].x_BxW.shape[1] for b, a in zip(batches_S, active_S) if a)

    def pad(a, width=width):
      return np.pad(a, ((0, 0), (0, width - a.shape[1])))

    xs, ys, ns = [], [], []
    for b, a in zip(batches_S, active_S):
      if a:
        xs.append(pad(b[g].x_BxW)), ys.append(pad(b[g].y_BxW)), ns.append(b[g].n_B)
      else:  # no problem at all: n = 0 rows compute nothing that counts
        xs.append(pad(np.zeros_like(like.x_BxW))), ys.append(pad(np.zeros_like(like.y_BxW)))
        ns.append(np.zeros_like(like.n_B))
    groups.append((np.stack(xs), np.stack(ys), np.stack(ns)))
  own_width_S = np.array(
    [b[0].x_BxW.shape[1] if a else template[0].x_BxW.shape[1] for b, a in zip(batches_S, active_S)],
    np.int32,
  )
  return groups, own_width_S


def train_and_evaluate_packed(
  config: ml_collections.ConfigDict,
  seeds: list[int],
  workdirs: list[str],
  *,
  allow_config_change: bool = False,
  mode: str = "auto",
) -> list[dict | Exception]:
  """Trains (or resumes) one run per seed, each in its workdir, in one program.

  mode: how the seeds share the program, 'vmap' or 'map' ('auto': steps.resolve_pack_mode).

  Returns per run its final evaluation (as train.train_and_evaluate), or the error that ended
  it (divergence past its rollbacks, a failed write): one run's failure stops only that run.
  """
  if len(seeds) != len(workdirs) or len(set(workdirs)) != len(workdirs):
    raise ValueError(f"need one distinct workdir per seed, got seeds {seeds}, workdirs {workdirs}")
  if len(set(seeds)) != len(seeds):
    raise ValueError(f"seeds repeat: {seeds}")
  configs = seed_configs(config, seeds)
  for c, w in zip(configs, workdirs):
    train.validate_for_training(c)
    workdir_files.check_or_write_config(w, c, allow_config_change, write=parallel.is_main_process())
  task = tasks.get_task(config.task)
  mesh = train.checked_mesh(config)
  mode = steps.resolve_pack_mode(mode)
  optimizer = steps.make_optimizer(configs[0])  # the update needs no seed (its keys are state)
  compiled = train.Compiled(configs[0], optimizer, mesh, solo=False)
  stack = _Stack(len(seeds), mesh)
  runs = [
    _Member(stack, i, c, w, mesh, task, compiled=compiled, label=f"[seed {c.seed}] ")
    for i, (c, w) in enumerate(zip(configs, workdirs))
  ]
  stack.stack()
  console.log(
    f"{task.name}: {len(seeds)} seeds {list(seeds)} in one program ({mode}), "
    f"{config.num_steps} steps, "
    f"batch {config.batch_size} each over {mesh.devices.size} device(s); starting at steps "
    f"{[r.step for r in runs]}"
  )
  packed_step = train._CompileNotice(  # pylint: disable=protected-access
    steps.make_packed_train_step(configs[0], optimizer, mesh, mode), "packed training step"
  )
  repl = parallel.replicated(mesh)
  base_key_S = jax.device_put(jnp.stack([steps.dropout_base_key(c.seed) for c in configs]), repl)
  results: list = [None] * len(runs)
  active = [r.step < c.num_steps for r, c in zip(runs, configs)]
  t_start = time.perf_counter()
  try:
    for i, r in enumerate(runs):  # already at num_steps: evaluated again, as a solo rerun is
      if not active[i]:
        results[i] = _finish(r, t_start)
    while any(active):
      batches_S = [r.batches() if a else None for r, a in zip(runs, active)]
      groups, width_S = _padded(batches_S, active)
      on_device = tuple(parallel.global_batch(mesh, *g, seed_axis=True) for g in groups)
      stack.state, m_S = packed_step(
        tuple(g[0].shape[2] for g in groups),
        stack.state,
        on_device,
        np.array([r.sched.pull for r in runs], np.float32),
        np.array([r.sched.last_seq_error for r in runs], np.float32),
        np.array([r.sched.sat_weight for r in runs], np.float32),
        base_key_S,
        width_S,
        np.array(active),
      )
      for i, r in enumerate(runs):
        if not active[i]:
          continue
        r.stepped(m_S, batches_S[i], index=i)
        try:
          done = r.after_step()
          if done:
            r.save()
        except train._Rollback as e:  # pylint: disable=protected-access
          r.rollback(str(e))
          continue
        except (train.TrainingDivergedError, OSError, checkpoint.CheckpointWriteError) as e:
          r._log(f"stopped: {e}")  # pylint: disable=protected-access
          results[i], active[i] = e, False
          r.stop_batches()
          continue
        if done:
          active[i] = False
          results[i] = _finish(r, t_start)
  finally:
    for r in runs:
      r.close()
  return results


def _finish(run: train._Run, t_start: float):  # pylint: disable=protected-access
  try:
    return run.final_evaluation(time.perf_counter() - t_start)
  except (OSError, checkpoint.CheckpointWriteError) as e:
    return train.WorkdirWriteError(f"writing to {run.workdir} failed at step {run.step}: {e}")
