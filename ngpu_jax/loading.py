"""Trained models back from disk: a run's newest checkpoint, or an exported model directory
(config.json + params/ + step.json), with their compiled evaluation and prediction steps."""

import dataclasses
import importlib.resources
import json
import os
import shutil
from collections.abc import Sequence
from typing import Any, NamedTuple

import jax
import ml_collections
import numpy as np
import orbax.checkpoint as ocp

from ngpu_jax import checkpoint, parallel, steps, tasks, workdir_files
from ngpu_jax.workdir_files import CONFIG_FILE, config_to_dict, load_config

# The shipped models are package data, so a wheel or `pip install git+...` has them too.
PRETRAINED_DIR = str(importlib.resources.files("ngpu_jax") / "pretrained")


def resolve_model(model: str, flag: str = "--model") -> str:
  """A workdir path as given, or the directory of the shipped model of that name."""
  if os.path.isdir(model):
    return model
  shipped = os.path.join(PRETRAINED_DIR, model)
  if os.path.isdir(shipped):
    return shipped
  known = sorted(os.listdir(PRETRAINED_DIR)) if os.path.isdir(PRETRAINED_DIR) else []
  raise FileNotFoundError(
    f"{flag} {model!r} is neither a run directory nor a shipped model "
    f"(shipped: {', '.join(known) or 'none'})"
  )


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
  if workdir_files.is_model_dir(workdir):
    if average_steps:
      raise ValueError(f"{workdir} is an exported model: it has no checkpoints to average")
    params, step = load_exported(workdir, config, task, mesh)
  else:
    optimizer = steps.make_optimizer(config)
    abstract = steps.abstract_state(config, task, optimizer, mesh)
    older = steps.layout_before_ema(config, task, optimizer, mesh)  # a fork's first checkpoint
    ckpt = checkpoint.Checkpointer(workdir, config.keep_checkpoints)
    try:
      if average_steps:
        states = [ckpt.restore_at(int(s), abstract, older)[0] for s in average_steps]
        params = jax.tree.map(lambda *a: sum(a) / len(a), *map(steps.eval_params, states))
        step = max(int(s) for s in average_steps)
      else:
        restored = ckpt.restore(abstract, older)
        if restored is None:
          raise FileNotFoundError(f"no checkpoint in {ckpt.directory}")
        params, step = steps.eval_params(restored[0]), int(restored[0].step)
    finally:
      ckpt.close()
  return LoadedRun(
    config,
    task,
    mesh,
    params,
    step,
    steps.make_eval_step(config, mesh),
    steps.make_predict_step(config, mesh),
  )


# An exported model: config.json + params/ (orbax) + step.json (workdir_files names them);
# no optimizer state.


def load_exported(model_dir: str, config, task, mesh):
  repl = parallel.replicated(mesh)
  abstract = jax.tree.map(
    lambda s: jax.ShapeDtypeStruct(s.shape, s.dtype, sharding=repl),
    jax.eval_shape(lambda: steps.init_params(config, task)),
  )
  params = ocp.StandardCheckpointer().restore(
    os.path.abspath(os.path.join(model_dir, workdir_files.MODEL_PARAMS_DIR)), abstract
  )
  with open(os.path.join(model_dir, workdir_files.MODEL_STEP_FILE)) as f:
    return params, int(json.load(f)["step"])


def initial_params(config, task) -> tuple[Any, int, str]:
  """(host params, their step, source directory) named by config.init_from.

  Raises ValueError, naming what differs, unless the source was trained on the same task
  and its parameters have this config's shapes (other fields, e.g. dropout, may differ).
  """
  source = resolve_model(config.init_from, "init_from:")
  loaded = load_run(source)
  if loaded.task.name != task.name:
    raise ValueError(
      f"init_from: {source} was trained on {loaded.task.name}, this run is {task.name}"
    )
  if loaded.config.model.ensemble > 1:
    raise ValueError(
      f"init_from: {source} is an ensemble of {loaded.config.model.ensemble} models; "
      "start from one of its members"
    )
  want = jax.eval_shape(lambda: steps.init_params(config, task))
  got = jax.device_get(loaded.params)
  want_leaves = {jax.tree_util.keystr(k): v.shape for k, v in jax.tree.leaves_with_path(want)}
  got_leaves = {jax.tree_util.keystr(k): v.shape for k, v in jax.tree.leaves_with_path(got)}
  differ = [
    f"{k}: {got_leaves.get(k, 'missing')} there, {want_leaves.get(k, 'missing')} here"
    for k in sorted(want_leaves.keys() | got_leaves.keys())
    if want_leaves.get(k) != got_leaves.get(k)
  ]
  if differ:
    raise ValueError(
      f"init_from: the parameters of {source} do not fit this config's model "
      f"({len(differ)} differ; {'; '.join(differ[:3])})"
    )
  return got, loaded.step, source


def collapse_averaged_copies(params, config):
  """(params, config) with identical relaxation copies stored once (relax.copies = 1)."""
  config = ml_collections.ConfigDict(config_to_dict(config))
  copies = jax.tree.leaves(params["steps"])[0].shape[0]
  if copies > 1 and all(
    np.array_equal(a[0], a[i]) for a in jax.tree.leaves(params["steps"]) for i in range(1, copies)
  ):
    params = {**params, "steps": jax.tree.map(lambda a: a[:1], params["steps"])}
    config.relax.copies = 1
  return params, config


def export(workdir: str, out: str) -> dict:
  """Writes the newest params of a run as a small model directory (for ngpu_jax/pretrained/).

  Relaxation copies that training has averaged into one are stored once
  (relax.copies = 1 in the exported config): the model computes the same.
  """
  _refuse_existing(out)
  loaded = load_run(workdir)
  params, config = collapse_averaged_copies(jax.device_get(loaded.params), loaded.config)
  return _write_new(params, config, {"step": loaded.step, "source": recorded_path(workdir)}, out)


def recorded_path(path: str) -> str:
  """A source path as step.json records it: relative when it lies under the working directory.

  Models are exported from the repository root; a relative path keeps one machine's checkout
  prefix out of the committed model directories. Paths elsewhere stay absolute.
  """
  rel = os.path.relpath(path)
  return os.path.abspath(path) if rel == ".." or rel.startswith(".." + os.sep) else rel


def export_mean(sources: Sequence[str], out: str) -> dict:
  """Writes the mean of several models' parameters (mean_of_models) as a model directory."""
  _refuse_existing(out)
  return _write_new(*mean_of_models(sources), out)


def _refuse_existing(out: str) -> None:
  if os.path.exists(out):
    raise FileExistsError(f"{out} exists; remove it first")


def _write_new(params, config, info: dict, out: str) -> dict:
  write_model(params, config, info, out)
  return {
    "step": info["step"],
    "relax_copies": config.relax.copies,
    "params": sum(int(np.size(a)) for a in jax.tree.leaves(params)),
  }


# Model fields that only training reads: models that differ in them compute the same answers.
_TRAINING_ONLY_MODEL_FIELDS = (
  "dropout",
  "dropout_by_length",
  "dropout_on",
  "kernel_init_scale",
  "conv_impl",
  "scan_unroll",
  "remat",
)


def _what_computes(config) -> dict:
  d = config_to_dict(config)
  model_fields = {k: v for k, v in d["model"].items() if k not in _TRAINING_ONLY_MODEL_FIELDS}
  return {"task": d["task"], "precision": d["precision"], "model": model_fields}


def parse_model_source(text: str) -> tuple[str, int | None]:
  """'DIR' or 'WORKDIR@STEP' (that checkpoint of a run) as (DIR, STEP or None)."""
  path, at, step = text.rpartition("@")
  if not at:
    return text, None
  if not step.isdigit() or not path:
    raise ValueError(f"{text!r}: give a model directory, a workdir, or WORKDIR@STEP")
  return path, int(step)


class _Source(NamedTuple):
  """One model of a mean, as given and as loaded."""

  text: str
  directory: str
  step: int
  params: Any
  config: ml_collections.ConfigDict


def _same_models(sources: Sequence[str]):
  """Each source loaded (its relaxation copies collapsed where averaged) and checked to
  compute the same function of its parameters as the first: same task, precision and model
  fields (training-only ones aside). Returns (the sources, their params with every model's
  copies repeated to the most distinct copies any has, the first's config with that many)."""
  if len(sources) < 2:
    raise ValueError(f"a mean or an ensemble needs at least two models, got {len(sources)}")
  models = []
  for text in sources:
    path, step = parse_model_source(text)
    directory = resolve_model(path, "model")
    run = load_run(directory, [step] if step is not None else ())
    if run.config.model.ensemble > 1:
      raise ValueError(f"{text} is an ensemble already; give its members instead")
    params, config = collapse_averaged_copies(jax.device_get(run.params), run.config)
    models.append(_Source(text, directory, run.step, params, config))
  first = models[0]
  for m in models[1:]:
    differ = workdir_files.config_diff(_what_computes(first.config), _what_computes(m.config))
    if differ:
      raise ValueError(
        f"{m.text} is not the same model as {first.text} ({len(differ)} fields differ: "
        f"{'; '.join(differ[:3])})"
      )
  copies = max(m.config.relax.copies for m in models)
  for m in models:
    if m.config.relax.copies not in (1, copies):
      raise ValueError(
        f"{m.text} has {m.config.relax.copies} distinct relaxation copies, another model {copies}"
      )
  tiled = [
    {
      **m.params,
      "steps": jax.tree.map(
        lambda a: np.repeat(a, copies // a.shape[0], axis=0), m.params["steps"]
      ),
    }
    for m in models
  ]
  config = ml_collections.ConfigDict(config_to_dict(first.config))
  config.relax.copies = copies
  return models, tiled, config


def _sources_info(models: Sequence[_Source], what: str, key: str) -> dict:
  return {
    "step": max(m.step for m in models),
    "source": f"{what} of " + ", ".join(m.text for m in models),
    key: [{"source": recorded_path(m.directory), "step": m.step} for m in models],
  }


def mean_of_models(sources: Sequence[str]) -> tuple[Any, ml_collections.ConfigDict, dict]:
  """The mean of several trained models' parameters, as one model.

  sources: model directories (or shipped names), workdirs (their newest checkpoint) or
  WORKDIR@STEP; each contributes its evaluation parameters (the moving average if kept).
  They must be the same model (_same_models). A model whose relaxation copies were averaged
  into one counts as that copy repeated. Returns (host params, the first source's config
  with the copies that remain distinct, step.json info naming every source).
  """
  models, tiled, config = _same_models(sources)
  # Summed in float64, so that the mean is rounded to float32 once.
  mean = jax.tree.map(
    lambda *a: (sum(np.asarray(x, np.float64) for x in a) / len(a)).astype(a[0].dtype), *tiled
  )
  params, config = collapse_averaged_copies(mean, config)
  return params, config, _sources_info(models, "mean", "averaged")


def ensemble_of_models(sources: Sequence[str]) -> tuple[Any, ml_collections.ConfigDict, dict]:
  """Several trained models as one that averages their answer probabilities (model.ensemble).

  sources as for mean_of_models, the same checks. The parameters are stacked on a new
  leading axis, one entry per model, in the order given.
  """
  models, tiled, config = _same_models(sources)
  params = jax.tree.map(lambda *a: np.stack(a), *tiled)
  config.model.ensemble = len(models)
  return params, config, _sources_info(models, "ensemble", "members")


def export_ensemble(sources: Sequence[str], out: str) -> dict:
  """Writes ensemble_of_models(sources) as a model directory."""
  _refuse_existing(out)
  return _write_new(*ensemble_of_models(sources), out)


def write_model(params, config, info: dict, out: str) -> None:
  """Writes config.json, params/ and step.json (info, with "step") as `out`, all or nothing.

  An existing `out` is replaced only once the new one is complete. params may be global
  arrays spread over several processes: every process calls this, the main one renames.
  """
  main = parallel.is_main_process()
  tmp, old = out.rstrip("/") + ".tmp", out.rstrip("/") + ".old"
  if main:
    shutil.rmtree(tmp, ignore_errors=True)
    os.makedirs(tmp)
  parallel.sync("write_model:" + out)
  ckptr = ocp.StandardCheckpointer()
  ckptr.save(os.path.abspath(os.path.join(tmp, workdir_files.MODEL_PARAMS_DIR)), params)
  ckptr.wait_until_finished()  # the save is asynchronous; rename only what is complete
  ckptr.close()
  if main:
    with open(os.path.join(tmp, CONFIG_FILE), "w") as f:
      json.dump(config_to_dict(config), f, indent=2)
    with open(os.path.join(tmp, workdir_files.MODEL_STEP_FILE), "w") as f:
      json.dump(info, f)
    if os.path.exists(out):
      shutil.rmtree(old, ignore_errors=True)
      os.replace(out, old)  # a kill between the two renames leaves the old model as out.old
    os.replace(tmp, out)
    shutil.rmtree(old, ignore_errors=True)
  parallel.sync("wrote_model:" + out)


def read_model_info(model_dir: str) -> dict | None:
  """step.json of a model directory written by write_model (None: there is none).

  A directory that a kill left half-swapped (only out.old) is put back first.
  """
  old = model_dir.rstrip("/") + ".old"
  if not os.path.isdir(model_dir) and os.path.isdir(old) and parallel.is_main_process():
    os.replace(old, model_dir)
  try:
    with open(os.path.join(model_dir, workdir_files.MODEL_STEP_FILE)) as f:
      return json.load(f)
  except FileNotFoundError:
    return None
