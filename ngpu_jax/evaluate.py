"""Errors per length, on fresh random problems; and the evaluate command.

  python -m ngpu_jax.evaluate --workdir=DIR --lengths=41,401,4001 [--examples=128]
      [--average_steps=1500,1650]

prints a table and appends eval lines to DIR/metrics.jsonl. With --average_steps it
scores the mean of those checkpoints' parameters, and its lines say so.
"""

from typing import Callable, Sequence

import jax
import numpy as np
from absl import app, flags

from ngpu_jax import data, parallel, probes, report, runs, tasks


def batch_size_for(requested: int, num_devices: int) -> int:
  """A batch size that splits evenly over the devices."""
  return max(num_devices, (requested // num_devices) * num_devices)


def score(eval_step, params, mesh, make: Callable[[int], data.Batch], examples: int,
          batch_size: int) -> dict:
  """{seq_error, symbol_error, examples} over ALL output cells of `examples` problems.

  make(bs) returns the next batch of bs problems. Batches are padded to the
  device count; rows of length 0 count nothing (empty mask), so only
  `examples` problems enter the figures.
  """
  bs = batch_size_for(min(batch_size, examples), mesh.devices.size)
  seq = sym = total = seen = 0
  while seen < examples:
    b = make(bs)
    take = min(bs, examples - seen)
    b.n_B[take:] = 0
    m = jax.device_get(eval_step(params, *parallel.global_batch(mesh, *b)))
    seq += int(m["seq_wrong"])
    sym += int(m["sym_wrong"])
    total += int(m["sym_total"])
    seen += take
  return {"seq_error": seq / seen, "symbol_error": sym / max(total, 1), "examples": seen}


def evaluate_lengths(eval_step, params, task: tasks.Task, mesh, lengths: Sequence[int],
                     examples: int, batch_size: int, seed: int,
                     draw: int | None = None) -> dict[int, dict]:
  """{length: score} on random problems from a stream of their own per (seed, length, draw)."""
  results = {}
  for length in lengths:
    rng = data.eval_rng(seed, length, draw)
    results[int(length)] = score(
        eval_step, params, mesh, lambda bs, rng=rng, n=length: data.make_batch(task, rng, bs, n, n),
        examples, batch_size)
  return results


def evaluate_probes(eval_step, params, task: tasks.Task, mesh, lengths: Sequence[int],
                    examples: int, batch_size: int, seed: int) -> dict[tuple[str, int], dict]:
  """{(family, length): score} for every hard-case probe family of the task."""
  results = {}
  for family in probes.families(task):
    for length in lengths:
      rng = data.eval_rng(seed, length)
      results[(family, int(length))] = score(
          eval_step, params, mesh,
          lambda bs, f=family, rng=rng, n=length: probes.probe_batch(task, f, rng, n, bs),
          examples, batch_size)
  return results


def format_probe_table(results: dict[tuple[str, int], dict]) -> str:
  rows = [f"{'probe family':>26} {'length':>7} {'examples':>8} {'seq_error':>10} {'symbol_error':>12}"]
  for (family, length), r in results.items():
    rows.append(f"{family:>26} {length:>7} {r['examples']:>8} {r['seq_error']:>10.4f} "
                f"{r['symbol_error']:>12.6f}")
  return "\n".join(rows)


def format_table(results: dict[int, dict], task_name: str) -> str:
  rows = [f"{'length':>7} {'operand digits':>14} {'examples':>8} {'seq_error':>10} {'symbol_error':>12}"]
  for length, r in sorted(results.items()):
    digits = (length - 1) // 2 if task_name in tasks.ARITHMETIC else "-"
    rows.append(f"{length:>7} {digits!s:>14} {r['examples']:>8} {r['seq_error']:>10.4f} "
                f"{r['symbol_error']:>12.6f}")
  return "\n".join(rows)


def define_flags():
  """The command's flags (defined on demand: train.py imports this module too)."""
  flags.DEFINE_string("workdir", None, "Run directory holding config.json and checkpoints.")
  flags.DEFINE_list("lengths", ["41", "401"], "Input lengths to evaluate (401 = 200-bit operands).")
  flags.DEFINE_integer("examples", 128, "Fresh random problems per length.")
  flags.DEFINE_integer("batch_size", 0, "Problems per forward pass (0: the config's eval.batch_size).")
  flags.DEFINE_integer("seed", 1234, "Seed of the evaluation problems.")
  flags.DEFINE_integer("probe_examples", 16, "Problems per hard-case probe family and length "
                       "(arithmetic tasks; 0 = no probes).")
  flags.DEFINE_list("average_steps", [], "Score the mean of the parameters of these checkpoints "
                    "(steps) instead of the newest checkpoint.")
  flags.DEFINE_integer("cpu_devices", -1, "CPU devices to split the host into (-1: all cores).")
  flags.mark_flag_as_required("workdir")


def main(argv):
  del argv
  f = flags.FLAGS
  report.quiet_absl_logging()
  parallel.setup_cpu_devices(f.cpu_devices, 64)
  try:
    lengths = [int(x) for x in f.lengths]
    average_steps = [int(x) for x in f.average_steps]
  except ValueError:
    report.fail(f"--lengths and --average_steps must be integers, got {f.lengths}, "
                f"{f.average_steps}")
  try:
    loaded = runs.load_run(f.workdir, average_steps)
  except (ValueError, FileNotFoundError) as e:
    report.fail(f"{e}")
  config, task = loaded.config, loaded.task
  bad = [n for n in lengths if n < task.min_length]
  if bad:
    report.fail(f"lengths {bad} are below the shortest {task.name} problem ({task.min_length})")
  results = evaluate_lengths(loaded.eval_step, loaded.params, task, loaded.mesh, lengths,
                             f.examples, f.batch_size or config.eval.batch_size, f.seed)
  what = f"the mean of steps {average_steps}" if average_steps else f"step {loaded.step}"
  print(f"{task.name} at {what} ({f.workdir})")
  print(format_table(results, task.name))
  probe_results = {}
  if f.probe_examples > 0 and probes.families(task):
    probe_results = evaluate_probes(loaded.eval_step, loaded.params, task, loaded.mesh, lengths,
                                    f.probe_examples, f.batch_size or config.eval.batch_size, f.seed)
    print(format_probe_table(probe_results))
  source = {"source": "evaluate", **({"averaged_steps": average_steps} if average_steps else {})}
  reporter = report.Reporter(f.workdir, parallel.is_main_process())
  for length, r in results.items():
    reporter.write("eval", loaded.step, {"eval_length": length, **r, **source})
  for (family, length), r in probe_results.items():
    reporter.write("eval", loaded.step, {"eval_length": length, "probe": family, **r, **source})
  reporter.close()


if __name__ == "__main__":
  define_flags()
  app.run(main)
