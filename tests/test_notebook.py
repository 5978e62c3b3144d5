"""notebooks/demo.ipynb runs top to bottom (small parameters injected, papermill-style)."""

import os
import re
import subprocess
import sys

import nbclient
import nbformat
import pytest

from conftest import REPO

NOTEBOOK = os.path.join(REPO, "notebooks", "demo.ipynb")


def _inject(nb, params: dict):
  """Adds a cell after the one tagged 'parameters' that overrides its values."""
  idx = next(i for i, c in enumerate(nb.cells) if "parameters" in c.metadata.get("tags", []))
  src = "\n".join(f"{k} = {v!r}" for k, v in params.items())
  cell = nbformat.v4.new_code_cell("# Injected parameters\n" + src)
  cell.metadata["tags"] = ["injected-parameters"]
  nb.cells.insert(idx + 1, cell)


@pytest.mark.slow
def test_demo_notebook_runs(tmp_path):
  """With the shipped model (the default MODEL), short live training."""
  nb = nbformat.read(NOTEBOOK, as_version=4)
  _inject(
    nb,
    {
      "PROBLEMS": ["101+11", "11111111111111111111+1"],
      "LONG_BITS": 30,
      "LONG_PROBLEMS": 1,
      "TRAIN_STEPS": 60,
      "TRAIN_WORKDIR": str(tmp_path / "live"),
    },
  )
  client = nbclient.NotebookClient(
    nb,
    timeout=600,
    kernel_name="python3",
    resources={"metadata": {"path": os.path.dirname(NOTEBOOK)}},
  )
  client.execute()
  outputs = "".join(
    o.get("text", "") for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", [])
  )
  assert "101+11 = 1000   correct" in outputs  # the shipped model is exact at this size
  assert "11111111111111111111+1 = 100000000000000000000   correct" in outputs
  assert re.search(r"30-bit \+ 30-bit: answer has 31 digits, correct", outputs)  # exact to 50 bits
  assert "seq_error" in outputs  # the live run's evaluation table
  images = [o for c in nb.cells for o in c.get("outputs", []) if "image/png" in o.get("data", {})]
  assert len(images) == 2  # the mental image and the learning curves
  assert os.path.exists(tmp_path / "live" / "metrics.jsonl")


def _install_cell():
  nb = nbformat.read(NOTEBOOK, as_version=4)
  return next(c.source for c in nb.cells if c.cell_type == "code" and "pip" in c.source)


@pytest.mark.parametrize("where,absent", [("clone", False), ("clone", True), ("colab", True)])
def test_install_cell_installs_what_is_missing(tmp_path, monkeypatch, capsys, where, absent):
  """Nothing when all is importable; else the clone (editable) or, outside one, the GitHub
  package: either brings the dependencies. pip is stubbed: what it would run is recorded."""
  source = _install_cell()
  if absent:  # a module the notebook needs that is not there
    source = source.replace("NEEDS = [", 'NEEDS = ["no_such_module_for_this_test", ', 1)
    assert "no_such_module_for_this_test" in source
  calls = []
  monkeypatch.setattr(subprocess, "check_call", lambda cmd: calls.append(cmd))
  monkeypatch.setattr(sys, "path", list(sys.path))
  monkeypatch.chdir(os.path.dirname(NOTEBOOK) if where == "clone" else tmp_path)
  if absent:
    with pytest.raises(RuntimeError, match="still missing after the install"):
      exec(source, {})
    target = ["-e", REPO] if where == "clone" else ["git+https://github.com/ngpu-jax/ngpu-jax"]
    assert calls == [[sys.executable, "-m", "pip", "install", "-q", *target]]
  else:
    exec(source, {})
    assert calls == []
    # the clone's own code, whatever other copy is installed
    assert f"from {os.path.join(REPO, 'ngpu_jax')}" in capsys.readouterr().out
