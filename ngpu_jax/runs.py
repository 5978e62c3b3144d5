"""A run directory: its config.json, and loading a trained model back from it."""

import dataclasses
import json
import os
import shutil
from typing import Any, Sequence

import jax
import ml_collections
import numpy as np
import orbax.checkpoint as ocp

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
      old = with_defaults(json.load(f))
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


def with_defaults(saved: dict) -> dict:
  """A saved config with the fields it predates filled in from the base config.

  A field missing from the saved config takes the value the run actually had: its
  configlib.LEGACY_DEFAULTS entry where the default has changed since, else the base
  default. So runs written by an older version load (and resume) unchanged.
  """
  def merge(base, over):
    out = dict(base)
    for k, v in over.items():
      out[k] = merge(base[k], v) if isinstance(v, dict) and isinstance(base.get(k), dict) else v
    return out
  if saved.get("task") not in tasks.TASKS:
    return saved
  defaults = config_to_dict(configlib.base(saved["task"]))
  for dotted, value in configlib.LEGACY_DEFAULTS.items():
    *path, name = dotted.split(".")
    here, there = saved, defaults
    for k in path:
      here, there = here.get(k, {}), there[k]
    if name not in here:  # the run predates the field: it ran with the old behaviour
      there[name] = list(value) if isinstance(value, tuple) else value
  return merge(defaults, saved)


def load_config(workdir: str) -> ml_collections.ConfigDict:
  path = os.path.join(workdir, CONFIG_FILE)
  if not os.path.exists(path):
    raise FileNotFoundError(f"{path} not found: is {workdir!r} a training run directory?")
  with open(path) as f:
    d = with_defaults(json.load(f))
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


def load_run(workdir: str, average_steps: Sequence[int] = ()) -> LoadedRun:
  """Config and params of a run (newest checkpoint) or of an exported model, compiled steps.

  average_steps: the mean of these checkpoints' parameters instead (step: the last of them).
  """
  config = load_config(workdir)
  task = tasks.get_task(config.task)
  mesh = parallel.make_mesh()
  if os.path.isdir(os.path.join(workdir, EXPORT_DIR)):
    if average_steps:
      raise ValueError(f"{workdir} is an exported model: it has no checkpoints to average")
    params, step = load_exported(workdir, config, task, mesh)
  else:
    abstract = steps.abstract_state(config, task, steps.make_optimizer(config), mesh)
    ckpt = checkpoint.Checkpointer(workdir, config.keep_checkpoints)
    try:
      if average_steps:
        states = [ckpt.restore_at(int(s), abstract)[0] for s in average_steps]
        params = jax.tree.map(lambda *a: sum(a) / len(a), *map(steps.eval_params, states))
        step = max(int(s) for s in average_steps)
      else:
        restored = ckpt.restore(abstract)
        if restored is None:
          raise FileNotFoundError(f"no checkpoint in {ckpt.directory}")
        params, step = steps.eval_params(restored[0]), int(restored[0].step)
    finally:
      ckpt.close()
  return LoadedRun(config, task, mesh, params, step,
                   steps.make_eval_step(config, mesh), steps.make_predict_step(config, mesh))


# An exported model: config.json + params/ (orbax) + step.json; no optimizer state.
EXPORT_DIR = "params"


def load_exported(model_dir: str, config, task, mesh):
  repl = parallel.replicated(mesh)
  abstract = jax.tree.map(lambda s: jax.ShapeDtypeStruct(s.shape, s.dtype, sharding=repl),
                          jax.eval_shape(lambda: steps.init_params(config, task)))
  params = ocp.StandardCheckpointer().restore(
      os.path.abspath(os.path.join(model_dir, EXPORT_DIR)), abstract)
  with open(os.path.join(model_dir, "step.json")) as f:
    return params, int(json.load(f)["step"])


def collapse_averaged_copies(params, config):
  """(params, config) with identical relaxation copies stored once (relax.copies = 1)."""
  config = ml_collections.ConfigDict(config_to_dict(config))
  copies = jax.tree.leaves(params["steps"])[0].shape[0]
  if copies > 1 and all(np.array_equal(a[0], a[i]) for a in jax.tree.leaves(params["steps"])
                        for i in range(1, copies)):
    params = {**params, "steps": jax.tree.map(lambda a: a[:1], params["steps"])}
    config.relax.copies = 1
  return params, config


def export(workdir: str, out: str) -> dict:
  """Writes the newest params of a run as a small model directory (for pretrained/).

  Relaxation copies that training has averaged into one are stored once
  (relax.copies = 1 in the exported config): the model computes the same.
  """
  loaded = load_run(workdir)
  params, config = collapse_averaged_copies(jax.device_get(loaded.params), loaded.config)
  if os.path.exists(out):
    raise FileExistsError(f"{out} exists; remove it first")
  tmp = out.rstrip("/") + ".tmp"
  shutil.rmtree(tmp, ignore_errors=True)
  os.makedirs(tmp)
  ckptr = ocp.StandardCheckpointer()
  ckptr.save(os.path.abspath(os.path.join(tmp, EXPORT_DIR)), params)
  ckptr.wait_until_finished()  # the save is asynchronous; rename only what is complete
  ckptr.close()
  with open(os.path.join(tmp, CONFIG_FILE), "w") as f:
    json.dump(config_to_dict(config), f, indent=2)
  with open(os.path.join(tmp, "step.json"), "w") as f:
    json.dump({"step": loaded.step, "source": os.path.abspath(workdir)}, f)
  os.replace(tmp, out)  # all or nothing
  return {"step": loaded.step, "relax_copies": config.relax.copies,
          "params": sum(int(np.size(a)) for a in jax.tree.leaves(params))}
