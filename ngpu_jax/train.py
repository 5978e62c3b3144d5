"""train_and_evaluate(config, workdir): the training loop of a Neural GPU run.

Per step: the global batch of (seed, step) at a curriculum length, padded to
its bucket (made ahead in a background thread); one jitted update. Per window: curriculum, pull and lr decisions.
Periodically: console progress, metrics lines, evaluation, checkpoints.
Running the same command again resumes from the newest checkpoint and
continues exactly as an uninterrupted run would.
"""

import dataclasses
import queue
import threading
import time
from collections.abc import Callable

import jax
import ml_collections
import numpy as np

from ngpu_jax import (
  best_model,
  carry_runs,
  checkpoint,
  configlib,
  console,
  data,
  evaluation,
  loading,
  optim,
  parallel,
  probes,
  schedule,
  steps,
  tasks,
  workdir_files,
)


class TrainingDivergedError(RuntimeError):
  """The loss or the parameters became NaN/Inf; nothing non-finite was saved."""


class WorkdirWriteError(RuntimeError):
  """A write to the workdir failed (disk full, permissions); earlier checkpoints are intact."""


class _Rollback(Exception):
  """Non-finite numbers with rollbacks left: go back to the last checkpoint, lower the lr."""


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


def training_batches(
  config, task, step: int, cur_length: int, layout=None
) -> tuple[data.Batch, ...]:
  """The global batches of `step`: one curriculum batch, or every bin packed per `layout`.

  A function of (config, step, curriculum length) only, so every process and every resume
  builds the same ones; hard_mix then swaps a fraction of each for hard cases.
  """
  c, cur = config, config.curriculum
  vectorized = c.data_generator == "vectorized"
  if layout is not None:
    spread_from = max(cur.min_length, task.min_length) if cur.bin_lengths == "spread" else None
    batches = data.all_bucket_batches(
      task,
      c.seed,
      step,
      c.batch_size,
      [n for group in layout for n in group],
      spread_from,
      cur.shorter_fraction,
      vectorized,
      cur.length_mix,
    )
  else:
    batches = (
      data.train_batch(
        task,
        c.seed,
        step,
        c.batch_size,
        cur.min_length,
        cur_length,
        cur.max_length,
        c.buckets,
        cur.p_recent,
        cur.p_full,
        vectorized,
      ),
    )
  if c.hard_mix:
    rng = data.hard_mix_rng(c.seed, step)
    batches = tuple(probes.mix_into(task, b, rng, c.hard_mix, c.hard_families) for b in batches)
  return batches if layout is None else data.pack(batches, layout)


# Steps whose batches a background thread makes ahead while the device trains; 0: each step
# makes its own.
PREFETCH_DEPTH = 2


class _Prefetcher:
  """The batches of the coming steps, made in a background thread.

  make(step, cur_length) must be a pure function. The thread makes consecutive steps at one
  curriculum length; a request for any other (step, cur_length) -- the length changed at a
  window end, or a rollback went back -- discards what was made and starts again there, so a
  step always trains on make(step, its own cur_length), with or without the thread.
  """

  def __init__(self, make: Callable[[int, int], tuple], depth: int):
    self._make, self._depth = make, depth
    self._thread = None

  def get(self, step: int, cur_length: int) -> tuple:
    if self._depth <= 0:
      return self._make(step, cur_length)
    if self._thread is None or self._next != (step, cur_length):
      self.stop()
      self._start(step, cur_length)
    key, batches, error = self._take()
    if error is not None:
      self.stop()
      raise error
    assert key == (step, cur_length), (key, step, cur_length)
    self._next = (step + 1, cur_length)
    return batches

  def stop(self) -> None:
    """Ends the thread (after the batch it is making); what it made is dropped."""
    if self._thread is not None:
      self._halt.set()
      self._thread.join()
      self._thread = None

  def _start(self, step: int, cur_length: int) -> None:
    # A fresh queue and flag per thread, so nothing of a stopped thread can reach a new one.
    self._queue, self._halt = queue.Queue(maxsize=self._depth), threading.Event()
    self._next = (step, cur_length)
    self._thread = threading.Thread(
      target=self._produce,
      name="ngpu-batches",
      daemon=True,
      args=(step, cur_length, self._queue, self._halt),
    )
    self._thread.start()

  def _produce(self, step, cur_length, out: queue.Queue, halt: threading.Event) -> None:
    while not halt.is_set():
      try:
        item = ((step, cur_length), self._make(step, cur_length), None)
      except BaseException as e:  # pylint: disable=broad-except
        item = ((step, cur_length), None, e)  # raised in the training thread instead
      while not halt.is_set():
        try:
          out.put(item, timeout=0.1)
          break
        except queue.Full:
          pass
      if item[2] is not None:
        return
      step += 1

  def _take(self):
    while True:
      try:
        return self._queue.get(timeout=1.0)
      except queue.Empty:
        if not self._thread.is_alive():
          raise RuntimeError("the batch thread stopped without a batch") from None


class _CompileNotice:
  """A jitted step that says on the console when it meets new widths, and how long the first
  call (tracing and compiling: XLA compiles once per shape) took: else a new width of the
  curriculum is a silent minute or two."""

  def __init__(self, fn, what: str):
    self.fn, self.what, self._seen = fn, what, set()

  def __call__(self, widths: tuple[int, ...], *args):
    if widths in self._seen:
      return self.fn(*args)
    self._seen.add(widths)
    shown = ", ".join(map(str, sorted(set(widths))))
    console.log(f"compiling the {self.what} for width {shown} (first use of this width)")
    start = time.perf_counter()
    out = self.fn(*args)
    console.log(
      f"compiled the {self.what} for width {shown} in {time.perf_counter() - start:.1f} s"
    )
    return out


class Compiled:
  """The jitted functions of runs of one configuration (the seed aside): made once, shared by
  every run of a pack. train_step is the solo update (None when the runs are packed)."""

  def __init__(self, config, optimizer, mesh, solo: bool = True):
    self.train_step = (
      _CompileNotice(steps.make_train_step(config, optimizer, mesh), "training step")
      if solo
      else None
    )
    self.eval_step = steps.make_eval_step(config, mesh)
    self.answer_step = steps.make_eval_step(config, mesh, answers=True)  # compiled when called
    self.adjust = steps.make_adjust(mesh)
    self.all_finite = steps.make_all_finite(mesh)


class _Run:
  """The state of one training run and the jitted functions that move it.

  compiled: shared jitted functions (see Compiled); label: a prefix of its console lines.
  """

  def __init__(
    self, config, workdir, mesh, task, on_log=None, compiled=None, label="", initial=None
  ):
    self.config, self.workdir, self.mesh, self.task = config, workdir, mesh, task
    self._initial = initial  # loading.initial_params of config.init_from, if already loaded
    self.on_log, self.label = on_log, label
    self.reporter = workdir_files.MetricsWriter(workdir, parallel.is_main_process())
    self._optimizer = steps.make_optimizer(config)
    self.ckpt = checkpoint.Checkpointer(
      workdir, config.keep_checkpoints, config.keep_checkpoints_every
    )
    self.best = best_model.BestModel(workdir) if config.keep_best else None
    self._layout = steps.bin_layout(config)  # all_buckets: the bins, grouped as packed
    self._prefetch = _Prefetcher(
      lambda step, cur_length: training_batches(config, task, step, cur_length, self._layout),
      PREFETCH_DEPTH,
    )
    fns = compiled if compiled is not None else Compiled(config, self._optimizer, mesh)
    self._train_step, self._eval_step = fns.train_step, fns.eval_step
    self._answer_step = fns.answer_step
    self._adjust, self._all_finite = fns.adjust, fns.all_finite
    self._restore()
    self.reporter.truncate_after(self.step)  # lines of a killed run's lost steps go
    if self.best is not None:
      self._rescore_best()
    # The lr lives in the optimizer state; set it from the config, so that a run
    # resumed with another --config.optim.learning_rate uses it.
    self._apply(average=False)
    self._pending = []  # (device metrics, in_curriculum, seed index or None) not yet on the host
    self._line = []  # host metrics since the last train line
    self.progress = console.Progress(self.step, config.num_steps)
    self._clock = time.perf_counter()

  def _restore(self) -> None:
    """State and schedule from the newest checkpoint, or fresh ones at step 0."""
    c = self.config
    self._prefetch.stop()  # its batches are for steps past the one restored
    older, upgraded = None, []  # a checkpoint saved before the moving average was turned on
    before_ema = steps.layout_before_ema(c, self.task, self._optimizer, self.mesh)
    if before_ema is not None:
      abstract_plain, upgrade = before_ema
      older = (abstract_plain, lambda state: upgraded.append(state.step) or upgrade(state))
    restored = self.ckpt.restore(
      steps.abstract_state(c, self.task, self._optimizer, self.mesh), older=older
    )
    if upgraded:
      self.reporter.write("ema_started", int(upgraded[-1]), {"ema_decay": c.optim.ema_decay})
      self._log(f"step {int(upgraded[-1])}: the checkpoint has no moving average; it starts here")
    if restored is None:
      params = None
      if c.init_from:
        if self._initial is None:  # kept: a rollback to step 0 starts from them again
          self._initial = loading.initial_params(c, self.task)
        params, source_step, source = self._initial
        self.reporter.write("init_from", 0, {"source": source, "source_step": source_step})
        self._log(f"starting from the parameters of {source} (its step {source_step})")
      self.state = steps.init_state(c, self.task, self._optimizer, self.mesh, params)
      no_curriculum = c.curriculum.mode == "all_buckets"
      self.sched = schedule.Schedule(
        cur_length=c.curriculum.max_length if no_curriculum else c.curriculum.start_length,
        pull=c.relax.pull_start,
        sat_weight=c.saturation.start,
      )
    else:
      self.state, sched_json = restored
      self.sched = schedule.Schedule.from_json(sched_json)
    self.step = int(self.state.step)
    self.last_saved = self.step if restored is not None else None
    if restored is not None:
      self._fit_curriculum()

  def _fit_curriculum(self) -> None:
    """A fork that lowered curriculum.max_length trains on at the new maximum."""
    top = self.config.curriculum.max_length
    if self.sched.cur_length > top:
      was = self.sched.cur_length
      self.sched = dataclasses.replace(self.sched, cur_length=top)
      self.reporter.write("curriculum_lowered", self.step, {"from": was, "to": top})
      self._log(
        f"the checkpoint's curriculum length {was} is above curriculum.max_length; now {top}"
      )

  def _rescore_best(self) -> None:
    """The kept best model, scored at eval lengths it was not (the run's far lengths grew)."""
    c, step = self.config, self.best.info["step"] if self.best.info else 0

    def score(params, lengths):
      draw, results = step if c.eval.fresh else None, {}
      for n in lengths:
        results.update(evaluation.evaluate_lengths(
          self._eval_step, params, self.task, self.mesh, [n], self.eval_examples(n),
          c.eval.batch_size, c.seed, draw,
        ))  # fmt: skip
      return results

    load = lambda directory: loading.load_exported(directory, c, self.task, self.mesh)[0]
    lengths = tuple(c.eval.lengths) + tuple(c.eval.far_lengths)
    scored = self.best.rescore(lengths, c.eval.far_gate, score, load)
    if scored:
      record = self.best.info["eval"]
      self._log(
        f"the best model (step {step}) scored at the new lengths: "
        + ", ".join(f"len {n}: seq_err {record[str(n)]['seq_error']:.3f}" for n in scored)
      )

  def _log(self, text: str) -> None:
    console.log(self.label + text)

  def rollback(self, what: str) -> None:
    """Back to the last checkpoint with the learning rate lowered; the run goes on by itself."""
    self.ckpt.wait()
    failed_at = self.step
    rollbacks = self.sched.rollbacks + 1
    seconds = self.sched.train_seconds + time.perf_counter() - self._clock
    self._restore()
    self.sched.rollbacks = rollbacks
    self.sched.lr_factor *= self.config.optim.rollback_lr_factor
    self.sched.train_seconds = seconds  # the lost steps took time too
    self._pending, self._line = [], []
    self.reporter.truncate_after(self.step)
    self.reporter.write(
      "rollback",
      self.step,
      {
        "reason": what,
        "failed_at": failed_at,
        "rollbacks": rollbacks,
        "lr_factor": self.sched.lr_factor,
      },
    )
    self._log(
      f"{what}: rolled back to step {self.step} with the learning rate x"
      f"{self.config.optim.rollback_lr_factor} (rollback {rollbacks} of at most "
      f"{self.config.optim.max_rollbacks})"
    )
    self._apply(average=False)
    self._clock = time.perf_counter()

  def _apply(self, average: bool) -> None:
    lr = self.config.optim.learning_rate * self.sched.lr_factor
    self.state = self._adjust(self.state, np.bool_(average), np.float32(lr))

  def batches(self) -> tuple[data.Batch, ...]:
    return self._prefetch.get(self.step, self.sched.cur_length)

  def stop_batches(self) -> None:
    """Training is over: no more batches are made ahead (a later batches() starts again)."""
    self._prefetch.stop()

  def train_step(self) -> None:
    batches = self.batches()
    on_device = tuple(parallel.global_batch(self.mesh, *b) for b in batches)
    widths = tuple(b.x_BxW.shape[1] for b in batches)
    self.state, m = self._train_step(
      widths,
      self.state,
      on_device,
      np.float32(self.sched.pull),
      np.float32(self.sched.last_seq_error),
      np.float32(self.sched.sat_weight),
    )
    self.stepped(m, batches)

  def stepped(self, m, batches, index=None) -> None:
    """A step was taken (m: its device metrics; in a pack, row `index` of each is this run's)."""
    in_curriculum = all(int(b.n_B.max()) <= self.sched.cur_length for b in batches)
    self._pending.append((m, in_curriculum, index))
    self.step += 1

  def pull_metrics(self) -> None:
    """Brings pending metrics to the host (one sync per log interval, not per step)."""
    for m, in_curriculum, index in jax.device_get(self._pending):
      if index is not None:
        m = {k: v[index] for k, v in m.items()}
      if not np.isfinite(m["loss"]):
        self.diverged(f"loss {m['loss']} at step {int(m['step']) + 1}")
      if in_curriculum:
        schedule.record(self.sched, m["seq_wrong"], m["examples"], m["loss"], m["saturation"])
      self._line.append({**m, "in_curriculum": in_curriculum})
    self._pending = []

  def end_window(self) -> None:
    c = self.config
    decision = schedule.end_window(
      self.sched,
      max_length=c.curriculum.max_length,
      threshold=c.curriculum.threshold,
      pull_factor=c.relax.pull_factor,
      pull_max=c.relax.pull_max,
      relax=c.relax.copies > 1,
      lr_decay=c.optim.lr_decay,
      lr_decay_rule=c.optim.lr_decay_rule,
      min_lr_factor=c.optim.min_lr_factor,
    )
    if c.saturation.enabled:
      schedule.adapt_saturation_weight(
        self.sched,
        decision,
        learning_rate=c.optim.learning_rate * self.sched.lr_factor,
        lo=c.saturation.min,
        hi=c.saturation.max,
      )
    if decision.average or decision.decay_lr:
      self._apply(average=decision.average)

  def out_of_time(self) -> bool:
    """True once max_train_minutes of training (over all resumes) are spent."""
    budget = self.config.max_train_minutes * 60.0
    return budget > 0 and self.sched.train_seconds + time.perf_counter() - self._clock >= budget

  def log_line(self) -> None:
    if not self._line:
      return
    now = time.perf_counter()
    self.sched.train_seconds += now - self._clock
    self._clock = now
    line = _train_line(self.sched, self._line, float(optim.get_learning_rate(self.state.opt_state)))
    line["train_seconds"] = round(self.sched.train_seconds, 3)
    if self.config.saturation.enabled:
      line["saturation"] = float(np.mean([m["saturation"] for m in self._line]))
      line["sat_weight"] = self.sched.sat_weight
    self._line = []
    self.reporter.write("train", self.step, line)
    self._log(self.progress.line(self.step, line))
    if self.on_log is not None:
      self.on_log(self.step, line)

  def eval_examples(self, length: int) -> int:
    """Problems per periodic evaluation at this length (eval.far_examples at a far one)."""
    c = self.config.eval
    far = length in c.far_lengths and length not in c.lengths
    return c.far_examples if far and c.far_examples else c.examples

  def evaluate(
    self, lengths, examples, seed, draw=None, batch_size=None, stop_on_error=False, **extra
  ) -> dict:
    results = evaluation.evaluate_lengths(
      self._eval_step,
      steps.eval_params(self.state),
      self.task,
      self.mesh,
      lengths,
      examples,
      batch_size or self.config.eval.batch_size,
      seed,
      draw,
      stop_on_error=stop_on_error,
    )
    for length, r in results.items():
      self.reporter.write("eval", self.step, {"eval_length": length, **r, **extra})
    return results

  def measure_reach(self) -> None:
    """eval.reach_length: the lowest wrong column per split and carry (carry_runs.reach)."""
    c = self.config
    n = c.eval.reach_length
    got = carry_runs.reach(
      self._answer_step,
      steps.eval_params(self.state),
      self.task,
      self.mesh,
      [n],
      c.eval.reach_examples,
      c.eval.batch_size,
      c.seed,
    )
    cells = []
    for (_, carry_in, split), first_B in sorted(got.items()):
      wrong, lowest = carry_runs.lowest_wrong(first_B)
      self.reporter.write(
        "reach",
        self.step,
        {
          "reach_length": n,
          "carry_in": bool(carry_in),
          "split": split,
          "wrong": wrong,
          "examples": int(first_B.size),
          "lowest_wrong_column": lowest,
        },
      )
      cells.append(
        f"{split}{' after a carry' if carry_in else ''} {'exact' if lowest is None else lowest}"
      )
    self._log(f"reach at length {n} (lowest wrong column): " + ", ".join(cells))

  def evaluate_probes(self, lengths, examples, seed) -> dict:
    if examples <= 0 or not probes.families(self.task):
      return {}
    results = evaluation.evaluate_probes(
      self._eval_step,
      steps.eval_params(self.state),
      self.task,
      self.mesh,
      lengths,
      examples,
      self.config.eval.batch_size,
      seed,
    )
    for (family, length), r in results.items():
      self.reporter.write(
        "eval", self.step, {"eval_length": length, "probe": family, **r, "final": True}
      )
    return results

  def save(self) -> None:
    if self.last_saved == self.step:
      return
    if not bool(self._all_finite(self.state)):
      self.diverged(f"non-finite parameters at step {self.step}")
    self.ckpt.save(self.step, self.state, self.sched.to_json())
    self.last_saved = self.step

  def last_good(self) -> str:
    last = self.ckpt.latest_step()
    return (
      f"the last good checkpoint is {self.ckpt.directory}/{last} (step {last})"
      if last is not None
      else "no checkpoint was saved yet"
    )

  def periodic_eval(self) -> bool:
    """The evaluation of eval.every (far lengths every eval.far_every); True once solved."""
    c = self.config
    far = []
    if self.step % c.eval.far_every == 0:
      far = sorted(n for n in c.eval.far_lengths if n not in c.eval.lengths)
    lengths = sorted(c.eval.lengths)
    if c.eval.far_gate >= 1.0 and not c.eval.far_examples:  # one call measures every length
      lengths, far = sorted(set(lengths) | set(far)), []
    draw = self.step if c.eval.fresh else None
    results = self.evaluate(lengths, c.eval.examples, c.seed, draw)
    for n in far:  # shortest first; past a length wrong beyond the gate, longer ones only cost
      if results[max(results)]["seq_error"] > c.eval.far_gate:
        break
      results.update(self.evaluate([n], self.eval_examples(n), c.seed, draw))
    results = dict(sorted(results.items()))
    front = evaluation.generalization_front(results)
    self.reporter.write("front", self.step, {"front": front, "lengths": sorted(results)})
    if c.eval.reach_length and self.step % c.eval.far_every == 0:
      self.measure_reach()
    self._log(
      f"eval at step {self.step}: "
      + ", ".join(f"len {n}: seq_err {r['seq_error']:.3f}" for n, r in results.items())
      + f"; exact up to length {front}"
    )
    if self.best is not None and self.best.offer(
      self.step, results, steps.eval_params(self.state), self.config
    ):
      self._log(f"the best model so far: {self.best.directory} (step {self.step})")
    if not c.stop_when_solved or self.sched.cur_length < c.curriculum.max_length:
      return False
    if not all(r["seq_error"] == 0.0 for r in results.values()):
      return False
    if c.stop_rule == "exact_at_eval_lengths":
      self._log(f"solved at step {self.step}: no errors at lengths {list(results)}")
      return True
    # exact_at_long: the far lengths must have been among these, then fresh 4001s decide.
    if not set(c.eval.far_lengths) <= set(results):
      return False
    long_lengths = [n for n in c.final_eval.long_lengths if n not in results]
    if long_lengths:
      self._log(
        f"exact at every length up to {front}; checking {c.final_eval.long_examples} "
        f"fresh problems at lengths {long_lengths}"
      )
      for n in long_lengths:  # a few small batches each, ended by the first wrong answer
        r = self.evaluate(
          [n],
          c.final_eval.long_examples,
          c.seed + 2,
          self.step,
          batch_size=c.final_eval.check_batch_size,
          stop_on_error=True,
          stop_check=True,
        )[n]
        if r["seq_error"] > 0.0:
          wrong = round(r["seq_error"] * r["examples"])
          self._log(f"not yet: len {n}: {wrong} wrong in the first {r['examples']} problems")
          return False
    self._log(f"solved at step {self.step}: no errors at lengths {sorted(results) + long_lengths}")
    return True

  def diverged(self, what: str) -> None:
    self.ckpt.wait()
    if self.sched.rollbacks < self.config.optim.max_rollbacks:
      raise _Rollback(what)
    if self.config.optim.max_rollbacks:
      what += f" after {self.sched.rollbacks} rollback(s)"
    raise TrainingDivergedError(
      f"training diverged: {what}; {self.last_good()}; the same command resumes from it "
      f"(try a lower --config.optim.learning_rate with --allow_config_change)"
    )

  def after_step(self) -> bool:
    """The host's part of a step (windows, lines, evaluation, checkpoints); True: stop here."""
    c = self.config
    window_end = self.step % c.curriculum.window == 0
    log_now = self.step % c.log_every == 0 or self.step == c.num_steps
    if log_now or window_end:
      self.pull_metrics()
    if window_end:
      self.end_window()
    if log_now:
      self.log_line()
    solved = self.step % c.eval.every == 0 and self.periodic_eval()
    if self.step % c.checkpoint_every == 0 or solved:
      self.save()
    if log_now and not solved and self.out_of_time():
      self._log(f"time budget reached at step {self.step}: max_train_minutes={c.max_train_minutes}")
      return True
    return solved or self.step >= c.num_steps

  def final_evaluation(self, train_seconds: float) -> dict:
    """Saves the last state, evaluates it (and at the long lengths if exact), probes it."""
    c = self.config
    self.save()
    self.stop_batches()
    self.ckpt.wait()
    final = self.evaluate(c.final_eval.lengths, c.final_eval.examples, c.seed + 1, final=True)
    long_lengths = long_eval_lengths(c, final)
    if long_lengths:
      self._log(
        f"error-free at lengths {list(final)}; evaluating {c.final_eval.long_examples} "
        f"examples at lengths {long_lengths}"
      )
      final.update(self.evaluate(long_lengths, c.final_eval.long_examples, c.seed + 2, final=True))
    self._log(
      f"final evaluation at step {self.step} (this process trained "
      f"{console.format_duration(train_seconds)}):\n"
      + evaluation.format_table(final, self.task.name)
    )
    # Probes run wherever random problems were evaluated, 4001 included once reached.
    probe_results = self.evaluate_probes(
      list(c.final_eval.lengths) + long_lengths, c.final_eval.probe_examples, c.seed + 1
    )
    if probe_results:
      self._log(evaluation.format_probe_table(probe_results))
    return {
      "step": self.step,
      "cur_length": self.sched.cur_length,
      "eval": final,
      "probes": probe_results,
      "train_seconds": train_seconds,
    }

  def close(self) -> None:
    self.stop_batches()
    self.reporter.close()
    self.ckpt.close()


def validate_for_training(config: ml_collections.ConfigDict) -> None:
  """configlib.validate, and what only training refuses (ValueError naming the field)."""
  configlib.validate(config)
  if config.model.ensemble != 1:
    raise ValueError(
      f"model.ensemble: a run trains one model, got {config.model.ensemble}; train each "
      "member as a run of its own and join them with `export --ensemble`"
    )


def check_init_from(config, workdir: str):
  """loading.initial_params of config.init_from for a run without a checkpoint yet (else
  None): raises (ValueError, OSError) before anything is written if it cannot start there."""
  if config.init_from and not checkpoint.has_checkpoint(workdir):
    return loading.initial_params(config, tasks.get_task(config.task))
  return None


def checked_mesh(config: ml_collections.ConfigDict):
  """The device mesh, once the batch is known to split evenly over it."""
  mesh = parallel.make_mesh()
  if config.batch_size % mesh.devices.size:
    raise ValueError(
      f"batch_size {config.batch_size} does not split over {mesh.devices.size} devices"
    )
  return mesh


def train_and_evaluate(
  config: ml_collections.ConfigDict,
  workdir: str,
  *,
  allow_config_change: bool = False,
  on_log: Callable[[int, dict], None] | None = None,
) -> dict:
  """Trains (or resumes) the run in workdir; returns the final evaluation.

  on_log(step, train_line) is called after every train line (e.g. a notebook's
  progress bar).
  """
  validate_for_training(config)
  task = tasks.get_task(config.task)
  initial = check_init_from(config, workdir)
  workdir_files.check_or_write_config(
    workdir, config, allow_config_change, write=parallel.is_main_process()
  )
  mesh = checked_mesh(config)
  run = _Run(config, workdir, mesh, task, on_log, initial=initial)
  console.log(
    f"{task.name}: {config.num_steps} steps, batch {config.batch_size} over "
    f"{mesh.devices.size} device(s), {jax.device_count()} device(s) in "
    f"{jax.process_count()} process(es); starting at step {run.step}"
  )
  try:
    return _train(run)
  except (OSError, checkpoint.CheckpointWriteError) as e:
    raise WorkdirWriteError(
      f"writing to {workdir} failed at step {run.step}: {e}; {run.last_good()}"
    ) from e
  finally:
    run.close()


def long_eval_lengths(config, final: dict) -> list[int]:
  """final_eval.long_lengths not yet evaluated, if every final length was error-free."""
  if not all(r["seq_error"] == 0.0 for r in final.values()):
    return []
  return [n for n in config.final_eval.long_lengths if n not in final]


def _train_steps(run: _Run) -> None:
  """Trains until num_steps, the stop rule or the time budget; saves the last state."""
  while run.step < run.config.num_steps:
    run.train_step()
    if run.after_step():
      break
  run.save()


def _train(run: _Run) -> dict:
  t_start = time.perf_counter()
  while True:
    try:
      _train_steps(run)
      break
    except _Rollback as e:
      run.rollback(str(e))
  return run.final_evaluation(time.perf_counter() - t_start)
