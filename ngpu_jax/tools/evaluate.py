"""Scores a trained run: errors per length and per hard-case probe, on fresh random problems.

  python -m ngpu_jax.tools.evaluate --workdir=DIR --lengths=41,401,4001 [--examples=128]
      [--average_steps=1500,1650] [--columns] [--carry_runs] [--run_sweep=4,8,16,32]
      [--reach] [--with_dropout] [--float64] [--extra_steps=1,2]

prints a table and appends eval lines to DIR/metrics.jsonl. DIR may also be an exported model
(WORKDIR/best, an export, or a shipped model by name: --workdir=badd); those are read-only
artifacts, so nothing is appended to them. With --average_steps it scores the mean of those
checkpoints' parameters, and its lines say so. --columns also
prints where in the answer the errors sit; --carry_runs (sums) sorts the wrong answers by the
longest run of digit pairs that pass a carry on, and --run_sweep scores problems holding one
planted run of each given length, and --reach problems whose pairs all sum to base-1, where
the lowest wrong column is the reach of its carries; --with_dropout scores with the training's dropout
on, and --float64 computes in float64; both print and append nothing. --extra_steps=E scores
the same problems again, each run E steps past its length and read after the last (E blank
columns after it, kept empty): whether the model holds an answer once computed (printed only;
with --columns, its wrong problems listed too).
"""

import jax
import numpy as np
from absl import flags

from ngpu_jax import (
  carry_runs,
  console,
  evaluation,
  loading,
  parallel,
  probes,
  steps,
  workdir_files,
)
from ngpu_jax.tools import common


def define_flags():
  flags.DEFINE_string(
    "workdir",
    None,
    "Run directory holding config.json and checkpoints, or an exported model "
    "(a directory, or the name of a shipped one).",
  )
  flags.DEFINE_list("lengths", ["41", "401"], "Input lengths to evaluate (401 = 200-bit operands).")
  flags.DEFINE_integer("examples", 128, "Fresh random problems per length.")
  flags.DEFINE_integer(
    "batch_size", 0, "Problems per forward pass (0: the config's eval.batch_size)."
  )
  flags.DEFINE_integer("seed", 1234, "Seed of the evaluation problems.")
  flags.DEFINE_integer(
    "probe_examples",
    16,
    "Problems per hard-case probe family and length (arithmetic tasks; 0 = no probes).",
  )
  flags.DEFINE_list(
    "average_steps",
    [],
    "Score the mean of the parameters of these checkpoints "
    "(steps) instead of the newest checkpoint.",
  )
  flags.DEFINE_boolean(
    "columns",
    False,
    "Also print where the errors sit: per band of columns, the largest fraction of problems "
    "wrong in one column, and for each wrong problem (the first 10 per length) its wrong "
    "columns and the answer's last column (the answers the table scores).",
  )
  flags.DEFINE_boolean(
    "carry_runs",
    False,
    "Sums only: also print the wrong answers by the length of each problem's longest run of "
    "digit pairs summing to base-1, and by whether a carry enters it (the answers the table "
    "scores).",
  )
  flags.DEFINE_list(
    "run_sweep",
    [],
    "Sums only: also score problems with one planted run of exactly r digit pairs summing to "
    "base-1, for each r given, with and without a carry entering it (printed only).",
  )
  flags.DEFINE_integer(
    "run_examples", 32, "Problems per planted run length (or --reach split), carry and length."
  )
  flags.DEFINE_boolean(
    "reach",
    False,
    "Sums only: also score problems whose digit pairs all sum to base-1 above the lowest, the "
    "run's digits all in a, all in b, or mixed, with and without a carry from the lowest pair; "
    "per wrong problem its lowest wrong column, how far up its carries reach (printed only).",
  )
  flags.DEFINE_boolean(
    "with_dropout",
    False,
    "Score with the training's dropout on (fresh masks per batch) instead of off: how much "
    "the model leans on it. Printed only; nothing is appended to metrics.jsonl.",
  )
  flags.DEFINE_boolean(
    "float64",
    False,
    "Compute in float64 (the parameters cast up): whether an error at a long length is float32 "
    "rounding over the thousands of steps or the model's own. Printed only.",
  )
  flags.DEFINE_list(
    "extra_steps",
    [],
    "Also score the same problems run for n + E steps, for each E given (whole numbers >= 0; "
    "E blank columns after each problem, kept empty; the answer read after the last step; "
    "dropout off): whether the model holds an answer once it has computed it. Printed only.",
  )
  common.define_cpu_devices("all cores")
  flags.mark_flag_as_required("workdir")


def main(argv):
  del argv
  f = flags.FLAGS
  common.start(64)
  try:
    lengths = common.integers("lengths", f.lengths)
    average_steps = common.integers("average_steps", f.average_steps)
    runs = common.integers("run_sweep", f.run_sweep)
    extra_steps = common.integers("extra_steps", f.extra_steps)
  except ValueError as e:
    console.fail(str(e))
  if any(e < 0 for e in extra_steps):
    console.fail(f"--extra_steps={','.join(f.extra_steps)}: each must be 0 or more")
  try:
    workdir = loading.resolve_model(f.workdir, "--workdir")
    loaded = loading.load_run(workdir, average_steps)
  except (ValueError, FileNotFoundError) as e:
    console.fail(f"{e}")
  config, task = loaded.config, loaded.task
  params = loaded.params
  if f.float64:
    jax.config.update("jax_enable_x64", True)  # for the rest of this process
    params = jax.tree.map(lambda a: a.astype(np.float64) if a.dtype == np.float32 else a, params)
  if f.carry_runs:
    try:
      base = carry_runs.check_task(task)
    except ValueError as e:
      console.fail(f"--carry_runs: {e}")
  if runs:
    try:
      carry_runs.check_task(task)
      carry_runs.check_runs(runs, lengths)
    except ValueError as e:
      console.fail(f"--run_sweep: {e}")
  if f.reach:
    try:
      carry_runs.check_task(task)
    except ValueError as e:
      console.fail(f"--reach: {e}")
  bad = [n for n in lengths if n < task.min_length]
  if bad:
    console.fail(f"lengths {bad} are below the shortest {task.name} problem ({task.min_length})")
  eval_step, batch_size = loaded.eval_step, f.batch_size or config.eval.batch_size
  # The column and carry-run diagnoses read the answers the table scores: one pass for all.
  rows = {} if f.columns or f.carry_runs else None
  if f.with_dropout:
    eval_step = steps.make_eval_step(config, loaded.mesh, dropout_seed=f.seed)
  # One step that also returns the answers, for the diagnoses and --reach alike (one compile).
  answer_step = None
  if rows is not None or f.reach:
    dropout_seed = f.seed if f.with_dropout else None
    answer_step = steps.make_eval_step(config, loaded.mesh, dropout_seed, answers=True)
  table_step = eval_step if rows is None else answer_step

  def score(step, answers, extra_steps=0):  # the same fresh problems for every table
    return evaluation.evaluate_lengths(
      step,
      params,
      task,
      loaded.mesh,
      lengths,
      f.examples,
      batch_size,
      f.seed,
      answers=answers,
      extra_columns=extra_steps,
    )

  results = score(table_step, rows)
  what = f"the mean of steps {average_steps}" if average_steps else f"step {loaded.step}"
  what += ", dropout on" if f.with_dropout else ""
  what += ", in float64" if f.float64 else ""
  print(f"{task.name} at {what} ({workdir})")
  print(evaluation.format_table(results, task.name))
  if f.columns:
    profiles = {n: evaluation.column_errors(rows[n]) for n in lengths}
    print(evaluation.format_column_table(profiles))
    print(
      evaluation.format_wrong_problems({n: evaluation.wrong_problems(rows[n]) for n in lengths})
    )
  if extra_steps:
    held_step = steps.make_eval_step(config, loaded.mesh, answers=f.columns, held=True)
  for e in extra_steps:
    held_rows = {} if f.columns else None
    held = score(held_step, held_rows, e)
    print(f"The same problems, each run {e} step(s) past its length and read after the last:")
    print(evaluation.format_table(held, task.name))
    if f.columns:
      listing = {n: evaluation.wrong_problems(held_rows[n]) for n in lengths}
      print(evaluation.format_wrong_problems(listing))
  if f.carry_runs:
    print(carry_runs.format_table({n: carry_runs.run_errors(rows[n], base) for n in lengths}))
    by_column = {n: carry_runs.column_run_errors(rows[n], base) for n in lengths}
    print(carry_runs.format_table(by_column, carry_runs.COLUMN_HEADING))
    print(carry_runs.format_span_runs({n: carry_runs.span_runs(rows[n], base) for n in lengths}))
  if runs:
    sweep = carry_runs.run_sweep(
      eval_step,
      params,
      task,
      loaded.mesh,
      lengths,
      runs,
      f.run_examples,
      batch_size,
      f.seed,
    )
    print(carry_runs.format_sweep_table(sweep))
  if f.reach:
    whole = carry_runs.reach(
      answer_step, params, task, loaded.mesh, lengths, f.run_examples, batch_size, f.seed
    )
    print(carry_runs.format_reach_table(whole))
  probe_results = {}
  if f.probe_examples > 0 and probes.families(task):
    probe_results = evaluation.evaluate_probes(
      eval_step,
      params,
      task,
      loaded.mesh,
      lengths,
      f.probe_examples,
      batch_size,
      f.seed,
    )
    print(evaluation.format_probe_table(probe_results))
  if f.with_dropout or f.float64:  # not the model as trained: no line a table could take
    return
  if workdir_files.is_model_dir(workdir):
    # A model directory is what export wrote (in the package, for a shipped one): a record
    # appended there would change the artifact and the wheel built from it.
    print(f"({workdir} is an exported model: the results are printed, not appended)")
    return
  source = {"source": "evaluate", **({"averaged_steps": average_steps} if average_steps else {})}
  reporter = workdir_files.MetricsWriter(workdir, parallel.is_main_process())
  for length, r in results.items():
    reporter.write("eval", loaded.step, {"eval_length": length, **r, **source})
  for (family, length), r in probe_results.items():
    reporter.write("eval", loaded.step, {"eval_length": length, "probe": family, **r, **source})
  reporter.close()


if __name__ == "__main__":
  common.run(main, define_flags)
