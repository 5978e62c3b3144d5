"""A run directory: its config.json, and loading a trained model back from it."""

import dataclasses
import json
import os
from typing import Any

import ml_collections

from ngpu_jax import checkpoint, configlib, parallel, steps, tasks

CONFIG_FILE = "config.json"


class ConfigMismatchError(ValueError):
  """The workdir holds a run of another configuration."""


def config_diff(old: dict, new: dict, prefix: str = "") -> list[str]:
  """Dotted names of the fields that differ between two config dicts."""
  out = []
  for k in sorted(set(old) | set(new)):
    a, b = old.get(k, "<missing>"), new.get(k, "<missing>")
    if isinstance(a, dict) and isinstance(b, dict):
      out += config_diff(a, b, f"{prefix}{k}.")
    elif _norm(a) != _norm(b):
      out.append(f"{prefix}{k}: {a!r} -> {b!r}")
  return out


def _norm(v):
  return list(v) if isinstance(v, tuple) else v


def config_to_dict(config: ml_collections.ConfigDict) -> dict[str, Any]:
  return json.loads(config.to_json())


def check_or_write_config(workdir: str, config: ml_collections.ConfigDict,
                          allow_change: bool = False) -> None:
  """Writes config.json, or refuses a workdir that holds another configuration.

  Fields in configlib.RESUMABLE_CHANGES (step budget, logging, evaluation) may
  change on resume; anything else is a different experiment.
  """
  os.makedirs(workdir, exist_ok=True)
  path = os.path.join(workdir, CONFIG_FILE)
  new = config_to_dict(config)
  if os.path.exists(path):
    with open(path) as f:
      old = json.load(f)
    diff = [d for d in config_diff(old, new)
            if d.split(".")[0].split(":")[0] not in configlib.RESUMABLE_CHANGES]
    if diff and not allow_change:
      raise ConfigMismatchError(
          f"{workdir} holds a run of another configuration:\n  " + "\n  ".join(diff) +
          "\nUse another --workdir, or pass --allow_config_change to continue it anyway.")
  if parallel.is_main_process():
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
      json.dump(new, f, indent=2)
    os.replace(tmp, path)  # never a half-written config.json


def load_config(workdir: str) -> ml_collections.ConfigDict:
  path = os.path.join(workdir, CONFIG_FILE)
  if not os.path.exists(path):
    raise FileNotFoundError(f"{path} not found: is {workdir!r} a training run directory?")
  with open(path) as f:
    d = json.load(f)
  config = ml_collections.ConfigDict(d)
  configlib.validate(config)
  return config


@dataclasses.dataclass
class LoadedRun:
  config: ml_collections.ConfigDict
  task: tasks.Task
  mesh: Any
  params: Any
  step: int
  eval_step: Any
  predict_step: Any


def load_run(workdir: str) -> LoadedRun:
  """Config and newest checkpointed params of a run, with compiled eval/predict steps."""
  config = load_config(workdir)
  task = tasks.get_task(config.task)
  mesh = parallel.make_mesh()
  optimizer = steps.make_optimizer(config)
  ckpt = checkpoint.Checkpointer(workdir, config.keep_checkpoints)
  restored = ckpt.restore(steps.abstract_state(config, task, optimizer, mesh))
  ckpt.close()
  if restored is None:
    raise FileNotFoundError(f"no checkpoint in {ckpt.directory}")
  state, _ = restored
  return LoadedRun(config, task, mesh, state.params, int(state.step),
                   steps.make_eval_step(config, mesh), steps.make_predict_step(config, mesh))
