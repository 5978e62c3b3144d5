"""notebooks/demo.ipynb runs top to bottom (small parameters injected, papermill-style)."""

import os

import nbclient
import nbformat
import pytest

from conftest import REPO, tiny_config
from ngpu_jax import train

pytestmark = pytest.mark.slow
NOTEBOOK = os.path.join(REPO, "notebooks", "demo.ipynb")


def _inject(nb, params: dict):
  """Adds a cell after the one tagged 'parameters' that overrides its values."""
  idx = next(i for i, c in enumerate(nb.cells) if "parameters" in c.metadata.get("tags", []))
  src = "\n".join(f"{k} = {v!r}" for k, v in params.items())
  cell = nbformat.v4.new_code_cell("# Injected parameters\n" + src)
  cell.metadata["tags"] = ["injected-parameters"]
  nb.cells.insert(idx + 1, cell)


def test_demo_notebook_runs(tmp_path):
  model = tmp_path / "model"
  train.train_and_evaluate(tiny_config(num_steps=10, **{"eval.every": 10}), str(model))
  nb = nbformat.read(NOTEBOOK, as_version=4)
  _inject(nb, {"MODEL": str(model), "PROBLEMS": ["101+11", "1+1"], "LONG_BITS": 30,
               "LONG_PROBLEMS": 1, "TRAIN_STEPS": 60, "TRAIN_WORKDIR": str(tmp_path / "live")})
  client = nbclient.NotebookClient(nb, timeout=600, kernel_name="python3",
                                   resources={"metadata": {"path": os.path.dirname(NOTEBOOK)}})
  client.execute()
  outputs = "".join(o.get("text", "") for c in nb.cells if c.cell_type == "code"
                    for o in c.get("outputs", []))
  assert "101+11 = " in outputs and "30-bit + 30-bit" in outputs
  assert "seq_error" in outputs  # the live run's evaluation table
  images = [o for c in nb.cells for o in c.get("outputs", []) if "image/png" in o.get("data", {})]
  assert len(images) == 2  # the mental image and the learning curves
  assert os.path.exists(tmp_path / "live" / "metrics.jsonl")
