"""Runs an experiment over seeds x settings, one launcher process per run; resumable.

  python -m ngpu_jax.tools.sweep --config=experiments/badd.py --root=runs/sweeps/badd --seeds=0,1,2,3,4
  python -m ngpu_jax.tools.sweep --config=experiments/badd.py --root=... --jobs=2        # 2 at a time
  python -m ngpu_jax.tools.sweep --config=experiments/badd.py --root=... --shard=1/3     # machine 2 of 3
  python -m ngpu_jax.tools.sweep --config=experiments/badd.py --root=... --extend --set=max_train_minutes=90
  python -m ngpu_jax.tools.sweep --config=experiments/badd.py --root=... --seeds=0,1,2,3 --seeds_per_program=4

An experiment file may define get_sweep(arg) -> list of override dicts (e.g.
[{"seed": 0, "model.maps": 48}, ...]); otherwise the sweep is one run per
--seeds value. --seeds given with such a file keeps its settings and replaces
its seeds (more seeds for a table, or one seed to try a setting). Each run is
`python -m ngpu_jax.main` in ROOT/<run name>, so an interrupted sweep resumes
every unfinished run from its checkpoint when the same command is given again,
and skips finished ones; --extend reruns those too, so a larger budget given with
--set (num_steps, max_train_minutes) continues each from its last checkpoint and
evaluates it again at its new end. Runs are independent
jobs: --shard=i/n takes every n-th run, so n machines (or n Slurm array tasks)
sharing ROOT split a sweep without talking to each other.

--seeds_per_program=S trains up to S runs that differ only in their seed in one program
(`python -m ngpu_jax.main --seeds=...`, stacked on a seed axis: what fills an accelerator that
one seed leaves idle); each keeps its own workdir, and the program's output goes to
ROOT/packs/<first run>+<S-1>.log.
"""

import json
import os
import re
import subprocess
import sys
import time

from absl import flags

from ngpu_jax import console, experiment_files, workdir_files
from ngpu_jax.tools import common


def define_flags():
  flags.DEFINE_string("config", None, "Experiment file, optionally FILE:ARG as for main.")
  flags.DEFINE_string("root", None, "Directory holding one workdir per run.")
  flags.DEFINE_list(
    "seeds",
    None,
    "Seeds; replace those of the file's get_sweep "
    "(default: the file's seeds, or 0,1,2 when it defines no get_sweep).",
  )
  flags.DEFINE_integer("jobs", 1, "Runs at a time on this machine (each gets cores / jobs).")
  flags.DEFINE_string("shard", "0/1", "i/n: run only the runs whose index is i mod n.")
  flags.DEFINE_multi_string("set", [], "Extra override for every run, e.g. --set=num_steps=5000.")
  flags.DEFINE_list("skip", [], "Leave out runs whose name contains any of these strings.")
  flags.DEFINE_list("only", [], "Keep only runs whose name contains one of these strings.")
  flags.DEFINE_bool(
    "extend",
    False,
    "Rerun finished runs too: each resumes from its last "
    "checkpoint under the --set budget and is evaluated again when it ends.",
  )
  flags.DEFINE_integer(
    "seeds_per_program",
    1,
    "Train up to this many runs that differ only in their seed in one program (packed).",
  )
  flags.DEFINE_bool("dry_run", False, "Print the runs and their commands, run nothing.")
  flags.mark_flags_as_required(["config", "root"])


def load_sweep(config_arg: str, seeds: list[int] | None = None) -> list[dict]:
  """The file's get_sweep(arg) with its seeds replaced by `seeds` if given; else one run per seed."""
  path, _, arg = config_arg.partition(":")
  module = experiment_files.load_experiment(path)
  if not hasattr(module, "get_sweep"):
    return [{"seed": s} for s in (seeds if seeds is not None else (0, 1, 2))]
  runs = list(module.get_sweep(arg or None))
  if seeds is None:
    return runs
  settings = {}  # setting without its seed -> the first run with it, whose key order names runs
  for r in runs:
    settings.setdefault(tuple((k, repr(v)) for k, v in r.items() if k != "seed"), r)
  return [
    {**{k: (s if k == "seed" else v) for k, v in r.items()}, "seed": s}
    for r in settings.values()
    for s in seeds
  ]


def run_name(overrides: dict) -> str:
  """seed=0,model.maps=48; a run with a variant label is named by it and its seed alone."""
  if "variant" in overrides:
    label = re.sub(r"[^A-Za-z0-9]+", "-", str(overrides["variant"])).strip("-").lower()
    rest = [f"seed={overrides['seed']}"] if "seed" in overrides else []
    return ",".join([label or "variant"] + rest)
  name = ",".join(f"{k}={v}" for k, v in overrides.items()) or "default"
  return re.sub(r"[^A-Za-z0-9=.,_+-]+", "_", name)


def is_finished(workdir: str) -> bool:
  """A run is done once its final evaluation is in metrics.jsonl."""
  return any(m.get("final") for m in workdir_files.read_metrics(workdir))


def command(
  config_arg: str, workdir: str, overrides: dict, cpu_devices: int, seeds: list | None = None
) -> list[str]:
  """The launcher's command line; with `seeds` one packed program (workdir holds {seed})."""
  args = [f"--config.{k}={v}" for k, v in overrides.items() if not (seeds and k == "seed")]
  packed = [f"--seeds={','.join(str(s) for s in seeds)}"] if seeds else []
  return [
    sys.executable,
    "-m",
    "ngpu_jax.main",
    f"--config={config_arg}",
    f"--workdir={workdir}",
    f"--cpu_devices={cpu_devices}",
    *packed,
    *args,
  ]


_SEED_TOKEN = "SEEDTOKEN"


def packs(runs: list[dict], size: int) -> list[list[dict]]:
  """Runs grouped by everything but their seed, in order, cut into groups of at most `size`."""
  groups: dict = {}
  for r in runs:
    key = tuple((k, repr(v)) for k, v in r.items() if k != "seed")
    groups.setdefault(key, []).append(r)
  return [g[i : i + size] for g in groups.values() for i in range(0, len(g), max(size, 1))]


def workdir_template(root: str, overrides: dict) -> str:
  """The workdir of a run with its seed left as {seed} (for main --seeds)."""
  name = run_name({**overrides, "seed": _SEED_TOKEN}).replace(_SEED_TOKEN, "{seed}")
  return os.path.join(root, name)


def parse_shard(shard: str) -> tuple[int, int]:
  try:
    i, n = (int(x) for x in shard.split("/"))
  except ValueError:
    raise ValueError(f"--shard must look like i/n, got {shard!r}") from None
  if not 0 <= i < n:
    raise ValueError(f"--shard {shard}: need 0 <= i < n")
  return i, n


def main(argv):
  del argv
  args = flags.FLAGS
  try:
    seeds = None if args.seeds is None else [int(s) for s in args.seeds]
    runs = load_sweep(args.config, seeds)
    i, n = parse_shard(args.shard)
    extra = dict(kv.split("=", 1) for kv in args.set)
  except ValueError as e:
    console.fail(str(e))
  os.makedirs(args.root, exist_ok=True)
  mine = [
    r
    for k, r in enumerate(runs)
    if k % n == i
    and not any(part in run_name(r) for part in args.skip)
    and (not args.only or any(part in run_name(r) for part in args.only))
  ]
  cpu_devices = max(1, (os.cpu_count() or 1) // max(args.jobs, 1))
  todo, unfinished = [], []
  for overrides in mine:
    workdir = os.path.join(args.root, run_name(overrides))
    cmd = command(args.config, workdir, {**overrides, **extra}, cpu_devices)
    state = "to run"
    if is_finished(workdir):
      state = "extend" if args.extend else "finished"
    shown = "" if not args.dry_run or args.seeds_per_program > 1 else "\n          " + " ".join(cmd)
    print(f"{state:>8}  {workdir}" + shown)
    if state != "finished":
      todo.append((workdir, os.path.join(workdir, "launcher.log"), cmd))
      unfinished.append(overrides)
  if args.seeds_per_program > 1:  # finished runs stay out, as they do unpacked
    todo = []
    for group in packs(unfinished, args.seeds_per_program):
      first = run_name(group[0])
      log = os.path.join(args.root, "packs", f"{first}+{len(group) - 1}.log")
      seeds = [r.get("seed", 0) for r in group]
      overrides = {**group[0], **extra}
      cmd = command(
        args.config, workdir_template(args.root, group[0]), overrides, cpu_devices, seeds
      )
      print(
        f"    pack  {len(group)} run(s) -> {log}"
        + ("\n          " + " ".join(cmd) if args.dry_run else "")
      )
      todo.append((log, log, cmd))
  with open(os.path.join(args.root, "sweep.json"), "w") as f:
    json.dump({"config": args.config, "runs": runs, "extra": extra}, f, indent=2)
  if args.dry_run:
    return
  failed = _run_all(todo, max(args.jobs, 1))
  if failed:
    console.fail(f"{len(failed)} run(s) failed: " + ", ".join(failed) + " (see their launcher.log)")
  print(f"sweep done: {len(mine)} run(s) in {args.root}")


def _run_all(todo, jobs: int) -> list[str]:
  """Runs the commands, `jobs` at a time; each one's output goes to its log file (a run's
  WORKDIR/launcher.log, a pack's ROOT/packs/...log)."""
  running, failed = [], []
  while todo or running:
    while todo and len(running) < jobs:
      workdir, log_path, cmd = todo.pop(0)
      os.makedirs(os.path.dirname(log_path), exist_ok=True)
      log = open(log_path, "a")  # pylint: disable=consider-using-with
      print(f" started  {workdir}", flush=True)
      running.append((workdir, subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT), log))
    time.sleep(0.5)
    for item in list(running):
      workdir, proc, log = item
      if proc.poll() is not None:
        log.close()
        running.remove(item)
        print(f"{'finished' if proc.returncode == 0 else 'FAILED':>8}  {workdir}", flush=True)
        if proc.returncode != 0:
          failed.append(workdir)
  return failed


if __name__ == "__main__":
  common.run(main, define_flags, jax_flags=False)
