"""train_and_evaluate(config, workdir): the training loop of a Neural GPU run.

Per step: the global batch of (seed, step) at a curriculum length, padded to
its bucket; one jitted update. Per window: curriculum, pull and lr decisions.
Periodically: console progress, metrics lines, evaluation, checkpoints.
Running the same command again resumes from the newest checkpoint and
continues exactly as an uninterrupted run would.
"""

import time

import jax
import ml_collections
import numpy as np

from ngpu_jax import (checkpoint, configlib, data, evaluate, optim, parallel, report, runs,
                      schedule, steps, tasks)


class TrainingDivergedError(RuntimeError):
  """The loss or the parameters became NaN/Inf; nothing non-finite was saved."""


def _errors(ms):
  seq = sum(int(m["seq_wrong"]) for m in ms)
  ex = sum(int(m["examples"]) for m in ms)
  sym = sum(int(m["sym_wrong"]) for m in ms)
  tot = sum(int(m["sym_total"]) for m in ms)
  return (seq / ex, sym / tot) if ex else (float("nan"), float("nan"))


def _train_line(sched, ms, lr):
  """Errors of the batches within the curriculum (what drives it), and of all batches."""
  seq, sym = _errors([m for m in ms if m["in_curriculum"]])
  seq_all, sym_all = _errors(ms)
  return {
      "loss": float(np.mean([m["loss"] for m in ms])),
      "cur_length": sched.cur_length,
      "seq_error": seq,
      "symbol_error": sym,
      "seq_error_all": seq_all,
      "symbol_error_all": sym_all,
      "grad_norm": float(np.mean([m["grad_norm"] for m in ms])),
      "pull": sched.pull,
      "lr": lr,
  }


def _diverged(what: str, ckpt) -> None:
  ckpt.wait()
  last = ckpt.latest_step()
  where = (f"the last good checkpoint is {ckpt.directory}/{last} (step {last}); the same command "
           f"resumes from it (try a lower --config.optim.learning_rate with --allow_config_change)"
           if last is not None else "no checkpoint was saved yet")
  raise TrainingDivergedError(f"training diverged: {what}; {where}")


def _save(ckpt, step, state, sched, all_finite) -> None:
  if not bool(all_finite(state)):
    _diverged(f"non-finite parameters at step {step}", ckpt)
  ckpt.save(step, state, sched.to_json())


def train_and_evaluate(config: ml_collections.ConfigDict, workdir: str, *,
                       allow_config_change: bool = False) -> dict:
  """Trains (or resumes) the run in workdir; returns the final evaluation."""
  configlib.validate(config)
  task = tasks.get_task(config.task)
  runs.check_or_write_config(workdir, config, allow_config_change)
  mesh = parallel.make_mesh()
  if config.batch_size % mesh.devices.size:
    raise ValueError(f"batch_size {config.batch_size} does not split over {mesh.devices.size} devices")
  main = parallel.is_main_process()
  reporter = report.Reporter(workdir, main)
  optimizer = steps.make_optimizer(config)
  ckpt = checkpoint.Checkpointer(workdir, config.keep_checkpoints)

  restored = ckpt.restore(steps.abstract_state(config, task, optimizer, mesh))
  if restored is None:
    state = steps.init_state(config, task, optimizer, mesh)
    sched = schedule.Schedule(cur_length=config.curriculum.start_length,
                              pull=config.relax.pull_start)
  else:
    state, sched_json = restored
    sched = schedule.Schedule.from_json(sched_json)
  step = int(state.step)
  reporter.truncate_after(step)
  adjust = steps.make_adjust(mesh)

  def lr(sched):
    return np.float32(config.optim.learning_rate * sched.lr_factor)
  # The lr lives in the optimizer state; set it from the config, so that a run
  # resumed with another --config.optim.learning_rate uses it.
  state = adjust(state, np.bool_(False), lr(sched))
  report.log(f"{task.name}: {config.num_steps} steps, batch {config.batch_size} over "
             f"{mesh.devices.size} device(s), {jax.device_count()} device(s) in "
             f"{jax.process_count()} process(es); starting at step {step}")

  train_step = steps.make_train_step(config, optimizer, mesh)
  eval_step = steps.make_eval_step(config, mesh)
  all_finite = steps.make_all_finite(mesh)
  cur = config.curriculum
  progress = report.Progress(step, config.num_steps)
  pending = []     # device metrics not yet pulled to the host
  line_metrics = []
  solved = False
  last_saved = step if restored is not None else None
  t_start = time.perf_counter()

  while step < config.num_steps and not solved:
    batch = data.train_batch(task, config.seed, step, config.batch_size, cur.min_length,
                             sched.cur_length, cur.max_length, config.buckets,
                             cur.p_recent, cur.p_full)
    state, m = train_step(state, *parallel.global_batch(mesh, *batch),
                          np.float32(sched.pull), np.float32(sched.last_seq_error))
    pending.append((m, int(batch.n_B[0]) <= sched.cur_length))
    step += 1

    window_end = step % cur.window == 0
    if step % config.log_every == 0 or window_end or step == config.num_steps:
      for host_m, in_curriculum in jax.device_get(pending):
        if not np.isfinite(host_m["loss"]):
          _diverged(f"loss {host_m['loss']} at step {int(host_m['step']) + 1}", ckpt)
        if in_curriculum:
          schedule.record(sched, host_m["seq_wrong"], host_m["examples"], host_m["loss"])
        line_metrics.append({**host_m, "in_curriculum": in_curriculum})
      pending = []
    if window_end:
      decision = schedule.end_window(
          sched, max_length=cur.max_length, threshold=cur.threshold,
          pull_factor=config.relax.pull_factor, pull_max=config.relax.pull_max,
          relax=config.relax.copies > 1, lr_decay=config.optim.lr_decay)
      if decision.average or decision.decay_lr:
        state = adjust(state, np.bool_(decision.average), lr(sched))
    if line_metrics and (step % config.log_every == 0 or step == config.num_steps):
      lr = float(optim.get_learning_rate(state.opt_state))
      line = _train_line(sched, line_metrics, lr)
      line_metrics = []
      reporter.write("train", step, line)
      report.log(progress.line(step, line))
    if step % config.eval.every == 0:
      results = evaluate.evaluate_lengths(
          eval_step, state.params, task, mesh, config.eval.lengths, config.eval.examples,
          config.eval.batch_size, config.seed)
      for length, r in results.items():
        reporter.write("eval", step, {"eval_length": length, **r})
      report.log(f"eval at step {step}: " + ", ".join(
          f"len {n}: seq_err {r['seq_error']:.3f}" for n, r in results.items()))
      solved = (config.stop_when_solved and sched.cur_length >= cur.max_length
                and all(r["seq_error"] == 0.0 for r in results.values()))
      if solved:
        report.log(f"solved at step {step}: no errors at lengths {list(results)}")
    if step % config.checkpoint_every == 0 or step == config.num_steps or solved:
      _save(ckpt, step, state, sched, all_finite)
      last_saved = step

  if last_saved != step:
    _save(ckpt, step, state, sched, all_finite)
  ckpt.wait()
  train_seconds = time.perf_counter() - t_start
  final = evaluate.evaluate_lengths(
      eval_step, state.params, task, mesh, config.final_eval.lengths, config.final_eval.examples,
      config.eval.batch_size, config.seed + 1)
  for length, r in final.items():
    reporter.write("eval", step, {"eval_length": length, **r, "final": True})
  report.log(f"final evaluation at step {step} (this session trained "
             f"{report.format_duration(train_seconds)}):\n"
             + evaluate.format_table(final, task.name))
  reporter.close()
  ckpt.close()
  return {"step": step, "cur_length": sched.cur_length, "eval": final}
