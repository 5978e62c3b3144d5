"""A run's workdir: config.json (written, compared, read back) and metrics.jsonl.

Imports no jax, so that the commands that only read results (aggregate, plot) start fast.
One JSON object per metrics line: train lines carry {"step", "kind": "train", "loss",
"cur_length", "seq_error", "symbol_error", ...}; eval lines {"step", "kind": "eval",
"eval_length", "seq_error", "symbol_error", ...}.
"""

import json
import os
from typing import Any

import ml_collections

from ngpu_jax import configlib, tasks

CONFIG_FILE = "config.json"
METRICS_FILE = "metrics.jsonl"
# An exported model directory: CONFIG_FILE + MODEL_PARAMS_DIR (orbax) + MODEL_STEP_FILE.
MODEL_PARAMS_DIR = "params"
MODEL_STEP_FILE = "step.json"


def is_model_dir(path: str) -> bool:
  """An exported model (export, WORKDIR/best, the shipped ones), not a training run."""
  return os.path.isdir(os.path.join(path, MODEL_PARAMS_DIR))


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


def check_or_write_config(
  workdir: str, config: ml_collections.ConfigDict, allow_change: bool = False, *, write: bool
) -> None:
  """Writes config.json, or refuses a workdir that holds another configuration.

  write: whether this process writes (only process 0 of a multi-process run may: two
  writers race on the file); the others only check. Fields in configlib.RESUMABLE_CHANGES
  (step budget, logging, evaluation) may change on resume; anything else is a different
  experiment.
  """
  os.makedirs(workdir, exist_ok=True)
  path = os.path.join(workdir, CONFIG_FILE)
  new = config_to_dict(config)
  if os.path.exists(path):
    with open(path) as f:
      old = with_defaults(json.load(f))
    diff = [
      d
      for d in config_diff(resolved(old), resolved(new))
      if d.split(".")[0].split(":")[0] not in configlib.RESUMABLE_CHANGES
    ]
    if diff and not allow_change:
      raise ConfigMismatchError(
        f"{workdir} holds a run of another configuration:\n  "
        + "\n  ".join(diff)
        + "\nUse another --workdir, or pass --allow_config_change to continue it anyway."
      )
  if write:  # only process 0 writes
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
      json.dump(new, f, indent=2)
    os.replace(tmp, path)  # never a half-written config.json


def resolved(config: dict) -> dict:
  """The config with hard_families as the families its task draws from: the same mix whether
  named in full, by the task's own names alone, or (an older run) by every family there was;
  [] when it draws none."""
  if "hard_families" not in config:
    return config
  if not config.get("hard_mix") or config.get("task") not in tasks.ARITHMETIC:
    return {**config, "hard_families": []}  # no hard cases drawn: the list changes nothing
  from ngpu_jax import probes  # pylint: disable=g-import-not-at-top

  names = probes.mix_families(tasks.get_task(config["task"]), config["hard_families"])
  return {**config, "hard_families": names}


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


def _scalar(v):
  return v.item() if hasattr(v, "item") else v


class MetricsWriter:
  """Appends metric lines to metrics.jsonl and mirrors them to TensorBoard."""

  def __init__(self, workdir: str, enabled: bool = True):
    self.enabled = enabled
    self.path = os.path.join(workdir, METRICS_FILE)
    self._tb = None
    if enabled:
      # tensorboard.summary.Writer writes event files with numpy alone (no TensorFlow).
      from tensorboard.summary import Writer  # pylint: disable=g-import-not-at-top

      self._tb = Writer(os.path.join(workdir, "tensorboard"))

  def truncate_after(self, step: int) -> None:
    """Drops lines past `step`: a resumed run redoes those steps and writes them again.

    The dropped lines (from the lost part of a killed run) go to
    metrics.dropped.jsonl rather than away.
    """
    if not self.enabled or not os.path.exists(self.path):
      return
    with open(self.path) as f:
      lines = [line for line in f if line.strip()]
    keep = [line for line in lines if json.loads(line)["step"] <= step]
    if len(keep) == len(lines):
      return
    with open(os.path.join(os.path.dirname(self.path), "metrics.dropped.jsonl"), "a") as f:
      f.writelines(line for line in lines if json.loads(line)["step"] > step)
    tmp = self.path + ".tmp"
    with open(tmp, "w") as f:
      f.writelines(keep)
    os.replace(tmp, self.path)

  def write(self, kind: str, step: int, metrics: dict) -> None:
    if not self.enabled:
      return
    line = {"step": int(step), "kind": kind, **{k: _scalar(v) for k, v in metrics.items()}}
    with open(self.path, "a") as f:
      f.write(json.dumps(line) + "\n")
    suffix = f"/{line['eval_length']}" if "eval_length" in line else ""
    for k, v in line.items():
      if isinstance(v, (int, float)) and k not in ("step", "eval_length"):
        self._tb.add_scalar(f"{kind}/{k}{suffix}", float(v), int(step))
    self._tb.flush()

  def close(self) -> None:
    if self._tb is not None:
      self._tb.close()


def read_metrics(workdir: str) -> list[dict]:
  path = os.path.join(workdir, METRICS_FILE)
  if not os.path.exists(path):
    return []
  with open(path) as f:
    return [json.loads(line) for line in f if line.strip()]


def is_final_eval(m: dict) -> bool:
  """An evaluation of the finished model (end of training or the evaluate command), as opposed
  to the periodic ones during training."""
  return bool(m.get("final")) or m.get("source") == "evaluate"
