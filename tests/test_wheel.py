"""The wheel a user installs: built from this tree, installed into a fresh virtual environment
outside the clone, it answers with the shipped model it carries, from any directory."""

import importlib.metadata
import importlib.util
import os
import shutil
import subprocess
import sys
import zipfile

import pytest

from conftest import REPO

pytestmark = pytest.mark.slow

# What the build reads: the metadata files and the package (no runs, results or tests).
SOURCES = ("setup.cfg", "pyproject.toml", "README.md", "LICENSE", "ngpu_jax")


def _builds_offline() -> bool:
  """setuptools builds wheels by itself from 70.1 on; before, it needs the wheel package."""
  major, minor = (int(p) for p in importlib.metadata.version("setuptools").split(".")[:2])
  return (major, minor) >= (70, 1) or importlib.util.find_spec("wheel") is not None


def _package_files() -> list[str]:
  """Every file of the package the wheel must carry, as paths inside the wheel."""
  out = []
  for root, dirs, files in os.walk(os.path.join(REPO, "ngpu_jax")):
    dirs[:] = [d for d in dirs if d != "__pycache__"]
    out += [
      os.path.relpath(os.path.join(root, f), REPO).replace(os.sep, "/")
      for f in files
      if not f.endswith(".pyc")
    ]
  return sorted(out)


def _run(cmd, **kw):
  proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600, **kw)
  assert proc.returncode == 0, f"{cmd}\n{proc.stdout[-2000:]}\n{proc.stderr[-3000:]}"
  return proc


def test_wheel_installs_and_answers_outside_the_clone(tmp_path):
  # Built from a copy, so no build/ left in the clone (stale files there would ship too).
  src = tmp_path / "src"
  src.mkdir()
  for name in SOURCES:
    path = os.path.join(REPO, name)
    if os.path.isdir(path):
      shutil.copytree(path, src / name, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    else:
      shutil.copy(path, src / name)
  # Nothing of the clone on the path (PYTHONPATH would also let pip think it installed).
  env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME")}
  dist = tmp_path / "dist"
  build = [sys.executable, "-m", "pip", "wheel", str(src), "--no-deps", "-w", str(dist)]
  # Offline where the installed setuptools can; else pip fetches pyproject's build requirements.
  _run(build + (["--no-build-isolation"] if _builds_offline() else []), cwd=tmp_path, env=env)
  [wheel] = list(dist.glob("ngpu_jax-*.whl"))

  names = set(zipfile.ZipFile(wheel).namelist())
  wanted = _package_files()
  assert any(p.startswith("ngpu_jax/pretrained/badd/params/") for p in wanted)
  assert "ngpu_jax/tools/predict.py" in wanted
  assert [p for p in wanted if p not in names] == []  # code, tools and every shipped model file
  assert any(
    n.endswith(".dist-info/LICENSE") or n.endswith(".dist-info/licenses/LICENSE") for n in names
  )

  venv = tmp_path / "venv"
  _run([sys.executable, "-m", "venv", "--system-site-packages", str(venv)], env=env)  # jax etc.
  python = str(venv / "bin" / "python")
  _run([python, "-m", "pip", "install", "--no-deps", "--no-index", str(wheel)], env=env)

  elsewhere = tmp_path / "elsewhere"
  elsewhere.mkdir()
  assert not os.path.realpath(elsewhere).startswith(os.path.realpath(REPO) + os.sep)
  where = _run(
    [
      python,
      "-c",
      "import os\nfrom ngpu_jax import loading\nfrom ngpu_jax.tools import "
      "predict\nfor p in (loading.__file__, predict.__file__, loading.PRETRAINED_DIR): "
      "print(os.path.realpath(p))",
    ],
    cwd=elsewhere,
    env=env,
  ).stdout.split()
  inside = os.path.realpath(venv) + os.sep
  assert len(where) == 3 and all(p.startswith(inside) for p in where), where  # not the clone's

  proc = _run(
    [python, "-m", "ngpu_jax.tools.predict", "--model=badd"],
    input="1011+110\n",
    cwd=elsewhere,
    env=env,
  )
  assert proc.stdout == "10001\n"
