"""Results table (markdown) from the runs of one or more sweep roots or workdirs.

  python -m ngpu_jax.tools.aggregate runs/sweeps/badd runs/sweeps/bmul --out=RESULTS.md

Per task and variant (the config without its seed), over seeds: success rate
(a success has zero sequence errors in its final evaluation at every final_eval
length, the long ones included: a run not yet evaluated at 4001 is not a success),
median steps and training wall time to the first periodic evaluation with zero
errors at the training length, each seed's training minutes (runs of one
setting may have been given different budgets), and the mean sequence and symbol error of the
final evaluation per length. Hard-case probes, where run, get a table of their
own (one row per family and length, one error per seed).

With --at_steps=1000,2000 it adds the periodic evaluation at the training length
at those steps: variants compared after equal training, whatever their final step
(runs stopped by a time budget end at different steps).

With --readme=README.md it also writes the short form, success per task and variant, into
that file between the lines <!-- results table --> and <!-- /results table -->, under the
command that made it; nothing else in the file changes.
"""

import json
import os
import statistics

from absl import flags

from ngpu_jax import configlib, console, workdir_files
from ngpu_jax.tools import common

README_BEGIN = "<!-- results table -->"
README_END = "<!-- /results table -->"


def define_flags():
  flags.DEFINE_string("out", "", "Markdown file to write (default: print only).")
  flags.DEFINE_list(
    "at_steps",
    [],
    "Steps at which to compare the periodic evaluation at the "
    "training length (runs that did not evaluate there count as missing).",
  )
  flags.DEFINE_string(
    "readme",
    "",
    f"Markdown file whose block between {README_BEGIN} and {README_END} becomes the success table.",
  )


def find_workdirs(paths: list[str]) -> list[str]:
  """Every directory at or below the paths that holds a config.json and metrics.jsonl, save
  exported models (a run's best/, which `evaluate` may have given a metrics.jsonl)."""
  found = []
  for path in paths:
    for root, _, files in os.walk(path):
      if (
        workdir_files.CONFIG_FILE in files
        and workdir_files.METRICS_FILE in files
        and not workdir_files.is_model_dir(root)
      ):
        found.append(root)
  return sorted(found)


def _variant(config: dict) -> str:
  """The config's variant label, else the fields (besides the seed) that differ from the base."""
  if config.get("variant"):
    return config["variant"]
  config = workdir_files.with_defaults(config)  # older runs: the settings they really had
  base = workdir_files.config_to_dict(configlib.base(config["task"]))
  diff = [
    d
    for d in workdir_files.config_diff(*map(workdir_files.resolved, (base, config)))
    if not d.startswith(
      (
        "seed:",
        "final_eval.",
        "eval.",
        "log_every",
        "checkpoint_every",
        "keep_checkpoints",
        "num_steps",
        "max_train_minutes",
        "stop_when_solved",
        "stop_rule",
        "data_generator",
      )
    )
  ]  # same problems' distribution either way
  labels = [d.split(":")[0] + "=" + d.split("-> ")[-1] for d in diff]
  # The training settings of the earlier protocol, all at once, read as one label.
  previous = [
    f"{k}={v!r}"
    for k, v in configlib.LEGACY_DEFAULTS.items()
    if not k.startswith(("eval.", "stop_rule", "data_generator", "hard_families"))
  ]
  if previous and all(p in labels for p in previous):
    labels = ["paper, previous protocol"] + [x for x in labels if x not in previous]
  return "; ".join(labels) or "paper, reference protocol"


def _last_step(entries: list[dict]) -> list[dict]:
  """The entries of the latest step among them. A resumed run is evaluated again at its new
  final step; an older step's 4001 result must not stand beside the newer model's 41 and 401."""
  last = max((m["step"] for m in entries), default=None)
  return [m for m in entries if m["step"] == last]


def summarize(workdir: str) -> dict:
  with open(os.path.join(workdir, workdir_files.CONFIG_FILE)) as f:
    config = workdir_files.with_defaults(
      json.load(f)
    )  # fields added since the run count as defaults
  lines = workdir_files.read_metrics(workdir)
  train = [m for m in lines if m["kind"] == "train"]
  # The mean of several checkpoints (evaluate --average_steps) is another model than the run's.
  evals = [
    m for m in lines if m["kind"] == "eval" and "probe" not in m and "averaged_steps" not in m
  ]
  max_len = config["curriculum"]["max_length"]
  final = {
    m["eval_length"]: m for m in _last_step([m for m in evals if workdir_files.is_final_eval(m)])
  }
  first_zero = next(
    (
      m["step"]
      for m in evals
      if not workdir_files.is_final_eval(m)
      and m["eval_length"] == max_len
      and m["seq_error"] == 0.0
    ),
    None,
  )
  seconds = None
  if first_zero is not None:
    seconds = next((m.get("train_seconds") for m in train if m["step"] >= first_zero), None)
  probes = {
    (m["probe"], m["eval_length"]): m
    for m in _last_step([m for m in lines if m["kind"] == "eval" and "probe" in m])
  }
  # Success needs every final length, the long (2000-bit) ones included, evaluated error-free.
  required = set(config["final_eval"]["lengths"]) | set(config["final_eval"]["long_lengths"])
  periodic = {
    m["step"]: m
    for m in evals
    if not workdir_files.is_final_eval(m) and m["eval_length"] == max_len
  }
  return {
    "workdir": workdir,
    "task": config["task"],
    "variant": _variant(config),
    "seed": config["seed"],
    "steps": max((m["step"] for m in lines), default=0),
    "final": final,
    "success": required <= set(final) and all(m["seq_error"] == 0 for m in final.values()),
    "steps_to_zero": first_zero,
    "seconds_to_zero": seconds,
    "probes": probes,
    "periodic": periodic,
    "last_loss": train[-1]["loss"] if train else None,
    "train_seconds": train[-1].get("train_seconds") if train else None,
  }


def _median(xs):
  xs = [x for x in xs if x is not None]
  return statistics.median(xs) if xs else None


def _groups(summaries: list[dict]) -> dict:
  """Runs by (task, variant), each group in seed order (the order of every per-seed column)."""
  groups = {}
  for s in sorted(summaries, key=lambda s: s["seed"]):
    groups.setdefault((s["task"], s["variant"]), []).append(s)
  return groups


def table_at_steps(summaries: list[dict], at_steps: list[int]) -> str:
  """Periodic evaluation at the training length at each step: mean, and each seed's seq error."""
  head = ["task", "variant"] + [f"step {n}: seq / sym err (per seed seq err)" for n in at_steps]
  out = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
  for (task, variant), group in sorted(_groups(summaries).items()):
    row = [task, variant]
    for n in at_steps:
      at = [s["periodic"][n] for s in group if n in s["periodic"]]
      per_seed = ", ".join(f"{m['seq_error']:.2f}" for m in at)
      row.append(
        "-"
        if not at
        else f"{statistics.mean(m['seq_error'] for m in at):.3f} / "
        f"{statistics.mean(m['symbol_error'] for m in at):.4f} "
        f"({per_seed}; n={len(at)}/{len(group)})"
      )
    out.append("| " + " | ".join(row) + " |")
  return "\n".join(out)


def _minutes(group: list[dict]) -> str:
  """Each run's training minutes: runs of one row may have had different budgets (some were
  continued)."""
  return ", ".join(
    "-" if s["train_seconds"] is None else f"{s['train_seconds'] / 60:.0f}" for s in group
  )


def _final_lengths(summaries: list[dict]) -> list[int]:
  return sorted({n for s in summaries for n in s["final"]})


def success_table(summaries: list[dict]) -> str:
  """Per task and variant: successes over seeds, and at each final length how many of the
  seeds evaluated there made no error (the long length is evaluated only after the shorter
  ones are exact)."""
  lengths = _final_lengths(summaries)
  head = (
    ["task", "variant", "success"]
    + [f"exact @{n}" for n in lengths]
    + ["median steps trained", "train minutes per seed"]
  )
  out = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
  for (task, variant), group in sorted(_groups(summaries).items()):
    row = [task, variant, f"{sum(s['success'] for s in group)}/{len(group)}"]
    for n in lengths:
      exact = [s["final"][n]["seq_error"] == 0 for s in group if n in s["final"]]
      row.append(f"{sum(exact)}/{len(exact)}" if exact else "-")
    row += [f"{_median([s['steps'] for s in group]):.0f}", _minutes(group)]
    out.append("| " + " | ".join(row) + " |")
  return "\n".join(out)


def _block_span(text: str) -> tuple[int, int]:
  """Where the lines between README_BEGIN and README_END start and end in text."""
  begin = text.find(README_BEGIN + "\n")
  end = text.find("\n" + README_END, begin + len(README_BEGIN)) if begin >= 0 else -1
  if end < 0:
    raise ValueError(f"no {README_BEGIN} ... {README_END} block (each marker on a line of its own)")
  return begin + len(README_BEGIN) + 1, end


def read_block(text: str) -> str:
  begin, end = _block_span(text)
  return text[begin:end]


def replace_block(text: str, block: str) -> str:
  begin, end = _block_span(text)
  return text[:begin] + block + text[end:]


def table(summaries: list[dict]) -> str:
  groups = _groups(summaries)
  lengths = _final_lengths(summaries)
  head = [
    "task",
    "variant",
    "seeds",
    "success",
    "median steps trained",
    "train minutes per seed",
    "median last train loss",
    "median steps to 0 err @train len",
    "median train time to 0 err",
    "median step of final eval",
  ] + [f"seq / sym err @{n}" for n in lengths]
  out = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
  for (task, variant), group in sorted(groups.items()):
    wins = sum(s["success"] for s in group)
    steps = _median([s["steps_to_zero"] for s in group])
    secs = _median([s["seconds_to_zero"] for s in group])
    trained = _median([s["steps"] for s in group])
    loss = _median([s["last_loss"] for s in group])
    row = [
      task,
      variant,
      str(len(group)),
      f"{wins}/{len(group)}",
      f"{trained:.0f}",
      _minutes(group),
      "-" if loss is None else f"{loss:.3f}",
      "-" if steps is None else f"{steps:.0f}",
      "-" if secs is None else console.format_duration(secs),
    ]
    final_steps = _median(
      [max(m["step"] for m in s["final"].values()) for s in group if s["final"]]
    )
    row.append("-" if final_steps is None else f"{final_steps:.0f}")
    for n in lengths:
      at = [s["final"][n] for s in group if n in s["final"]]
      row.append(
        "-"
        if not at
        else f"{statistics.mean(m['seq_error'] for m in at):.3f} / "
        f"{statistics.mean(m['symbol_error'] for m in at):.4f} (n={len(at)})"
      )
    out.append("| " + " | ".join(row) + " |")
  probe_rows = {}
  for (task, variant), group in sorted(groups.items()):
    for s in group:
      for (fam, n), m in sorted(s["probes"].items()):
        probe_rows.setdefault((task, variant, fam, n), []).append((s["seed"], m["seq_error"]))
  if probe_rows:
    out += [
      "",
      "| task | variant | probe family | length | seq err per seed |",
      "|---|---|---|---|---|",
    ]
    out += [
      f"| {t} | {v} | {fam} | {n} | {', '.join(f'{e:.3f} (seed {seed})' for seed, e in errs)} |"
      for (t, v, fam, n), errs in probe_rows.items()
    ]
  return "\n".join(out)


def made_by(paths: list[str], at_steps: list[int], out: str, readme: str) -> str:
  """The line above every table: the command that makes it again."""
  opts = (
    (f" --at_steps={','.join(map(str, at_steps))}" if at_steps else "")
    + (f" --out={out}" if out else "")
    + (f" --readme={readme}" if readme else "")
  )
  return f"Made by `python -m ngpu_jax.tools.aggregate {' '.join(paths)}{opts}`"


def report(summaries: list[dict], at_steps: list[int]) -> str:
  """The tables --out writes below the made_by line."""
  text = table(summaries)
  if at_steps:
    text += (
      "\n\nPeriodic evaluation at the training length, after equal training:\n\n"
      + table_at_steps(summaries, at_steps)
    )
  return text


def main(argv):
  out, readme = flags.FLAGS.out, flags.FLAGS.readme
  paths = argv[1:]
  try:
    at_steps = [int(n) for n in flags.FLAGS.at_steps]
  except ValueError:
    console.fail(f"--at_steps: give step numbers, got {','.join(flags.FLAGS.at_steps)!r}")
  if not paths:
    console.fail("give one or more sweep roots or workdirs")
  workdirs = find_workdirs(paths)
  if not workdirs:
    console.fail(f"no runs (config.json + metrics.jsonl) under {', '.join(paths)}")
  summaries = [summarize(w) for w in workdirs]
  command = made_by(paths, at_steps, out, readme)
  if readme:  # read before anything is written: a README without the block fails cleanly
    try:
      with open(readme) as f:
        new_readme = replace_block(f.read(), f"{command}\n\n{success_table(summaries)}")
    except (OSError, ValueError) as e:
      console.fail(f"--readme={readme}: {e}")
  text = f"{command}\n\n{report(summaries, at_steps)}"
  print(text)
  if out:
    with open(out, "w") as f:
      f.write(text + "\n")
  if readme:
    with open(readme, "w") as f:
      f.write(new_readme)


if __name__ == "__main__":
  common.run(main, define_flags, jax_flags=False)
