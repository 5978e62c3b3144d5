"""Sweep: runs seeds as independent launcher jobs, resumes, shards; aggregate: the table."""

import json
import os

import pytest

from ngpu_jax import configlib, experiment_files, workdir_files
from ngpu_jax.tools import aggregate, sweep

from conftest import REPO, run_module

pytestmark = pytest.mark.slow
SWEEP = [
  "--config=experiments/task.py:copy,smoke",
  "--seeds=0,1",
  "--set=num_steps=20",
  "--set=eval.every=10",
]


def test_sweep_runs_resumes_shards_and_aggregates(tmp_path):
  root = str(tmp_path / "sweep")
  proc = run_module("ngpu_jax.tools.sweep", *SWEEP, f"--root={root}", "--shard=1/2")
  assert proc.returncode == 0, proc.stderr[-3000:]
  assert sorted(os.listdir(root)) == ["seed=1", "sweep.json"]  # shard 1 of 2: the second run
  proc = run_module("ngpu_jax.tools.sweep", *SWEEP, f"--root={root}", "--jobs=2")
  assert proc.returncode == 0, proc.stderr[-3000:]
  assert "finished  " + os.path.join(root, "seed=1") in proc.stdout.splitlines()[1]  # skipped
  assert "started  " + os.path.join(root, "seed=0") in proc.stdout
  assert sweep.is_finished(os.path.join(root, "seed=0"))
  with open(os.path.join(root, "seed=0", "config.json")) as f:
    assert json.load(f)["num_steps"] == 20

  out = tmp_path / "results.md"
  proc = run_module("ngpu_jax.tools.aggregate", root, f"--out={out}")
  assert proc.returncode == 0, proc.stderr[-3000:]
  text = out.read_text()
  assert text.startswith("Made by `python -m ngpu_jax.tools.aggregate")
  row = next(line for line in text.splitlines() if line.startswith("| copy |"))
  cells = [c.strip() for c in row.strip("|").split("|")]
  assert cells[2] == "2" and cells[3].endswith("/2") and cells[4] == "20"  # steps trained
  summaries = [aggregate.summarize(w) for w in aggregate.find_workdirs([root])]
  assert [s["seed"] for s in summaries] == [0, 1]
  assert len({s["variant"] for s in summaries}) == 1  # seeds of one setting form one row

  # A larger budget continues a finished run from its checkpoint only when asked to.
  seed1 = os.path.join(root, "seed=1")
  proc = run_module(
    "ngpu_jax.tools.sweep", *SWEEP, f"--root={root}", "--set=num_steps=30", "--dry_run"
  )
  assert "finished  " + seed1 in proc.stdout
  proc = run_module(
    "ngpu_jax.tools.sweep",
    *SWEEP,
    f"--root={root}",
    "--set=num_steps=30",
    "--only=seed=1",
    "--extend",
  )
  assert proc.returncode == 0, proc.stderr[-3000:]
  assert "  extend  " + seed1 in proc.stdout
  assert {m["step"] for m in workdir_files.read_metrics(seed1) if m.get("final")} == {20, 30}
  assert {
    m["step"] for m in workdir_files.read_metrics(os.path.join(root, "seed=0")) if m.get("final")
  } == {20}
  with open(os.path.join(seed1, "config.json")) as f:
    assert json.load(f)["num_steps"] == 30


def test_sweep_from_the_experiment_file_and_bad_shard(tmp_path):
  assert [r["seed"] for r in sweep.load_sweep("experiments/badd.py")] == [0, 1, 2, 3, 4]
  assert sweep.load_sweep("experiments/badd.py", [0, 7]) == [{"seed": 0}, {"seed": 7}]
  ablation = sweep.load_sweep("experiments/dngpu.py:badd,ablation")
  more = sweep.load_sweep("experiments/dngpu.py:badd,ablation", [5])
  variants = list(dict.fromkeys(r["variant"] for r in ablation))
  assert [r["variant"] for r in more] == variants and all(r["seed"] == 5 for r in more)
  assert [sweep.run_name(r) for r in more] == [
    sweep.run_name({**r, "seed": 5}) for r in ablation if r["seed"] == ablation[0]["seed"]
  ]
  proc = run_module(
    "ngpu_jax.tools.sweep", "--config=experiments/badd.py", f"--root={tmp_path}", "--shard=3/2"
  )
  assert proc.returncode == 2 and "--shard 3/2" in proc.stderr
  proc = run_module("ngpu_jax.tools.aggregate", str(tmp_path / "nothing"))
  assert proc.returncode == 2 and "no runs" in proc.stderr


def test_skip_leaves_out_runs_by_name(tmp_path):
  proc = run_module(
    "ngpu_jax.tools.sweep",
    "--config=experiments/dngpu.py:badd,ablation",
    f"--root={tmp_path}",
    "--skip=4x2,adam",
    "--dry_run",
  )
  assert proc.returncode == 0, proc.stderr[-3000:]
  listed = [line for line in proc.stdout.splitlines() if line.strip().startswith("to run")]
  assert len(listed) == 3 * 5
  assert not any("4x2" in line or "adam" in line for line in listed)
  proc = run_module(
    "ngpu_jax.tools.sweep",
    "--config=experiments/dngpu.py:badd,ablation",
    f"--root={tmp_path}",
    "--only=4x2,adam",
    "--skip=seed=0",
    "--dry_run",
  )
  listed = [line for line in proc.stdout.splitlines() if line.strip().startswith("to run")]
  assert len(listed) == 2 * 2 and all("seed=0" not in line for line in listed)
  assert all("4x2" in line or "adam" in line for line in listed)


def test_dngpu_ablation_sweep_is_valid_and_named_by_variant():
  exp = experiment_files.load_experiment(os.path.join(REPO, "experiments", "dngpu.py"))
  runs_ = sweep.load_sweep("experiments/dngpu.py:bmul")
  assert len(runs_) == 3 * len(exp.ABLATIONS)
  names = {sweep.run_name(r) for r in runs_}
  assert len(names) == len(runs_) and all("/" not in n and " " not in n for n in names)
  assert "dngpu-no-diagonal,seed=2" in names
  for overrides in runs_:
    c = exp.get_config("bmul")
    for key, value in overrides.items():
      node = c
      *path, last = key.split(".")
      for p in path:
        node = node[p]
      node[last] = value
    configlib.validate(c)
    changed = {k for k in overrides if k not in ("seed", "variant")}
    base = exp.get_config("bmul")
    # each ablation really changes what it names
    assert all(_get(c, k) != _get(base, k) for k in changed), overrides


def test_dngpu_experiment_covers_every_reproduction_task():
  # the reproduction table has a DNGPU row for every task, beside the faithful model's
  exp = experiment_files.load_experiment(os.path.join(REPO, "experiments", "dngpu.py"))
  for task in experiment_files.REPRODUCTION_SEEDS:
    c = exp.get_config(task)
    configlib.validate(c)
    assert (c.task, c.variant, c.model.rows, c.model.diagonal) == (
      task,
      "dngpu, reference protocol",
      1,
      True,
    )
  assert exp.get_config("mul").model.maps == 192 and exp.get_config("sort").model.maps == 48
  assert [r["seed"] for r in sweep.load_sweep("experiments/dngpu.py:sort")] == [0, 1, 2]
  with pytest.raises(ValueError, match="unknown task 'nosuchtask'"):
    configlib.validate(exp.get_config("nosuchtask"))  # the check every launch runs


def _get(c, key):
  for p in key.split("."):
    c = c[p]
  return c


def test_aggregate_reads_runs_written_before_newer_config_fields():
  s = aggregate.summarize(os.path.join(REPO, "results", "badd_default"))
  # Written before the reference protocol became the default: labelled as the earlier one.
  assert s["variant"] == "paper, previous protocol" and s["steps_to_zero"] == 13000
  assert s["final"][41]["seq_error"] == 0.0 and not s["success"]  # 401 was all wrong


def test_aggregate_takes_every_final_length_from_the_last_final_step(tmp_path):
  ev = lambda step, n, err: {
    "step": step,
    "kind": "eval",
    "eval_length": n,
    "seq_error": err,
    "symbol_error": err / 10,
    "final": True,
  }
  _fake_run(
    str(tmp_path / "r"),
    0,
    [
      ev(100, 41, 0.0),
      ev(100, 401, 0.0),
      ev(100, 4001, 0.0),
      {**ev(100, 401, 0.0), "probe": "all_zeros"},
      {**ev(100, 4001, 0.0), "probe": "all_zeros"},
      ev(200, 41, 0.0),
      ev(200, 401, 0.5),  # resumed, then worse
      {**ev(200, 401, 1.0), "probe": "all_zeros"},
      {**ev(300, 401, 0.0), "averaged_steps": [200, 300]},  # another model: the mean of two
    ],
  )
  s = aggregate.summarize(str(tmp_path / "r"))
  assert sorted(s["final"]) == [41, 401] and s["final"][401]["step"] == 200 and not s["success"]
  assert (
    list(s["probes"]) == [("all_zeros", 401)] and s["probes"]["all_zeros", 401]["seq_error"] == 1.0
  )


def _fake_run(workdir, seed, lines):
  os.makedirs(workdir)
  c = configlib.base("badd")
  c.seed = seed
  with open(os.path.join(workdir, "config.json"), "w") as f:
    json.dump(workdir_files.config_to_dict(c), f)
  with open(os.path.join(workdir, "metrics.jsonl"), "w") as f:
    f.writelines(json.dumps(m) + "\n" for m in lines)


def test_aggregate_compares_runs_at_equal_steps_and_pivots_probes(tmp_path):
  ev = lambda step, n, err, **kw: {
    "step": step,
    "kind": "eval",
    "eval_length": n,
    "seq_error": err,
    "symbol_error": err / 10,
    **kw,
  }
  tr = lambda step, seconds: {"step": step, "kind": "train", "loss": 0.1, "train_seconds": seconds}
  _fake_run(
    str(tmp_path / "a"),
    0,
    [
      tr(1200, 130.0),
      ev(500, 41, 0.5),
      ev(1000, 41, 0.25),
      ev(1200, 41, 0.0, final=True),
      ev(1200, 41, 1.0, final=True, probe="carry_chain"),
    ],
  )
  _fake_run(
    str(tmp_path / "b"),
    1,
    [
      tr(700, 61.0),
      ev(500, 41, 1.0),
      ev(700, 41, 0.5, final=True),
      ev(700, 41, 0.0, final=True, probe="carry_chain"),
    ],
  )
  proc = run_module("ngpu_jax.tools.aggregate", str(tmp_path), "--at_steps=500,1000")
  assert proc.returncode == 0, proc.stderr[-3000:]
  assert "--at_steps=500,1000`" in proc.stdout.splitlines()[0]
  row = next(
    line
    for line in proc.stdout.splitlines()
    if line.startswith("| badd | paper, reference protocol |")
    and "n=" in line
    and "step" not in line
    and "(seed" not in line
    and "/ 0." in line
    and "n=2/2" in line
  )
  cells = [c.strip() for c in row.strip("|").split("|")]
  assert cells[2] == "0.750 / 0.0750 (0.50, 1.00; n=2/2)"
  assert cells[3] == "0.250 / 0.0250 (0.25; n=1/2)"  # seed 1 stopped before step 1000
  main_row = next(
    line
    for line in proc.stdout.splitlines()
    if line.startswith("| badd | paper, reference protocol | 2 |")
  )
  main_cells = [c.strip() for c in main_row.strip("|").split("|")]
  assert main_cells[9] == "950"  # median final step
  assert main_cells[5] == "2, 1"  # training minutes, by seed
  probe = next(line for line in proc.stdout.splitlines() if "carry_chain" in line)
  assert probe.endswith("| 1.000 (seed 0), 0.000 (seed 1) |")
  proc = run_module("ngpu_jax.tools.aggregate", str(tmp_path), "--at_steps=x")
  assert proc.returncode == 2 and "--at_steps" in proc.stderr


@pytest.mark.parametrize(
  "task,seeds",
  [
    ("badd", 5),
    ("copy", 5),
    ("reverse", 5),
    ("duplicate", 5),
    ("sort", 5),
    ("bmul", 3),
    ("add", 3),
    ("mul", 3),
  ],
)
def test_each_task_file_sweeps_the_reproduction_seeds(task, seeds):
  runs = sweep.load_sweep(f"experiments/{task}.py")
  assert runs == [{"seed": s} for s in range(seeds)]
  assert experiment_files.load_experiment(f"experiments/{task}.py").get_config().task == task


def test_packs_group_runs_by_setting_and_cut_them_to_size(tmp_path):
  runs = [{"seed": s, "model.maps": m} for m in (8, 16) for s in (0, 1, 2)]
  got = sweep.packs(runs, 2)
  assert [[r["seed"] for r in g] for g in got] == [[0, 1], [2], [0, 1], [2]]
  assert all(len({r["model.maps"] for r in g}) == 1 for g in got)
  template = sweep.workdir_template(str(tmp_path), {"seed": 5, "model.maps": 8})
  assert template.format(seed=5) == os.path.join(
    str(tmp_path), sweep.run_name(runs[0]).replace("0", "5", 1)
  )
  cmd = sweep.command("x.py", template, {"seed": 5, "model.maps": 8}, 1, seeds=[4, 5])
  assert "--seeds=4,5" in cmd and "--config.model.maps=8" in cmd
  assert not any(a.startswith("--config.seed") for a in cmd)


def test_sweep_packs_seeds_into_programs(tmp_path):
  root = str(tmp_path / "sweep")
  args = [*SWEEP[:1], "--seeds=0,1,2", *SWEEP[2:], f"--root={root}", "--seeds_per_program=2"]
  proc = run_module("ngpu_jax.tools.sweep", *args)
  assert proc.returncode == 0, proc.stderr[-3000:]
  assert sorted(os.listdir(os.path.join(root, "packs"))) == ["seed=0+1.log", "seed=2+0.log"]
  with open(os.path.join(root, "packs", "seed=0+1.log")) as f:
    assert "2 seeds [0, 1] in one program (map)" in f.read()
  for s in (0, 1, 2):
    assert sweep.is_finished(os.path.join(root, f"seed={s}"))
    with open(os.path.join(root, f"seed={s}", "config.json")) as f:
      assert json.load(f)["seed"] == s
  proc = run_module("ngpu_jax.tools.sweep", *args)  # all finished: no pack left to run
  assert proc.returncode == 0 and "pack " not in proc.stdout
