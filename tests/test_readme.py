"""README: its results table is aggregate's output on the committed runs, and its code layout
names exactly the modules that exist."""

import os
import re
import shlex
import subprocess
import sys

from ngpu_jax.tools import aggregate

from conftest import REPO, run_module


def _readme() -> str:
  with open(os.path.join(REPO, "README.md")) as f:
    return f.read()


def _command(made_by: str) -> tuple[list[str], dict[str, str]]:
  """(paths, flags) of a 'Made by `python -m ngpu_jax.tools.aggregate ...`' line."""
  m = re.fullmatch(r"Made by `python -m ngpu_jax\.tools\.aggregate (.+)`", made_by)
  assert m, made_by
  args = shlex.split(m.group(1))
  flags = dict(a[2:].split("=", 1) for a in args if a.startswith("--"))
  return [a for a in args if not a.startswith("--")], flags


def test_readme_results_table_is_aggregate_on_the_committed_results(monkeypatch):
  monkeypatch.chdir(REPO)  # the command's paths are relative to the repository root
  made_by, _, table = aggregate.read_block(_readme()).partition("\n\n")
  paths, flags = _command(made_by)
  assert flags.get("readme") == "README.md", "the block must name the command that rewrites it"
  # Committed runs only: a table from runs/ could not be checked from a clean clone.
  assert paths and all(p.startswith("results/") and os.path.isdir(p) for p in paths), paths
  summaries = [aggregate.summarize(w) for w in aggregate.find_workdirs(paths)]
  assert table == aggregate.success_table(summaries), (
    "README's results table is stale: run the command in its first line"
  )
  if "out" in flags:  # the same command wrote the full table; it must be of the same runs
    at_steps = [int(n) for n in flags["at_steps"].split(",")] if "at_steps" in flags else []
    with open(flags["out"]) as f:
      assert f.read() == f"{made_by}\n\n{aggregate.report(summaries, at_steps)}\n"


def test_aggregate_rewrites_only_the_readme_block(tmp_path):
  readme = tmp_path / "README.md"
  before, after = "# Title\n\ntext\n", "\nmore text\n"
  readme.write_text(f"{before}{aggregate.README_BEGIN}\nold table\n{aggregate.README_END}{after}")
  proc = run_module("ngpu_jax.tools.aggregate", "results/badd_default", f"--readme={readme}")
  assert proc.returncode == 0, proc.stderr[-3000:]
  text = readme.read_text()
  assert text.startswith(before + aggregate.README_BEGIN + "\n") and text.endswith(
    aggregate.README_END + after
  )
  made_by, _, table = aggregate.read_block(text).partition("\n\n")
  assert (
    made_by
    == f"Made by `python -m ngpu_jax.tools.aggregate results/badd_default --readme={readme}`"
  )
  assert table.splitlines()[2].startswith("| badd | paper, previous protocol | 0/1 | 1/1 | 0/1 |")

  readme.write_text("no block here\n")
  proc = run_module("ngpu_jax.tools.aggregate", "results/badd_default", f"--readme={readme}")
  assert proc.returncode == 2 and "<!-- results table -->" in proc.stderr
  assert readme.read_text() == "no block here\n"


def test_aggregate_imports_no_jax():
  # It only reads JSON; importing jax would cost seconds on every table.
  proc = subprocess.run(
    [sys.executable, "-c", "import sys, ngpu_jax.tools.aggregate; print('jax' in sys.modules)"],
    capture_output=True,
    text=True,
    cwd=REPO,
    env={**os.environ, "PYTHONPATH": REPO},
    check=True,
  )
  assert proc.stdout.strip() == "False"


def _layout_entries(readme: str) -> set[str]:
  """Paths of the .py files listed in README's code layout: a line at the block's outer
  indent ending in '/' opens a directory, deeper lines name its files."""
  section = readme.split("\n## Code layout\n", 1)[1].split("\n## ", 1)[0]
  lines = [line for line in section.splitlines() if line.startswith("    ")]
  outer = min(len(line) - len(line.lstrip()) for line in lines)
  entries, directory = set(), ""
  for line in lines:
    name = line.split()[0]
    if len(line) - len(line.lstrip()) == outer:
      directory = name if name.endswith("/") else ""
    elif name.endswith(".py"):
      entries.add(directory + name)
  return entries


def test_readme_code_layout_names_every_module_and_no_other():
  entries = _layout_entries(_readme())
  modules = {
    f"{d}/{f}"
    for d in ("ngpu_jax", "ngpu_jax/tools")
    for f in os.listdir(os.path.join(REPO, d))
    if f.endswith(".py") and f != "__init__.py"
  }  # package markers, not modules to read
  assert not modules - entries, "modules missing from README's code layout"
  assert all(os.path.isfile(os.path.join(REPO, e)) for e in entries), (
    f"README's code layout names modules that do not exist: {sorted(entries - modules)}"
  )
