"""Trains a Neural GPU: python -m ngpu_jax.main --config=experiments/badd.py --workdir=DIR

Config overrides: --config.seed=3, --config.model.maps=48; the smoke form of
any experiment: --config=experiments/badd.py:smoke. Several hosts: --distributed
(auto-detected cluster) or --coordinator_address/--num_processes/--process_id.
JAX's own options as flags: --jax_platforms=cpu, --jax_debug_nans, ...

Several seeds in one program (each its own run and workdir; see packed.py):
  python -m ngpu_jax.main --config=experiments/badd.py --seeds=0,1,2,3 --workdir='runs/badd/seed={seed}'
"""

from absl import app, flags
from ml_collections import config_flags

from ngpu_jax import console, packed, parallel, steps, train, workdir_files
from ngpu_jax.tools import common

_CONFIG = config_flags.DEFINE_config_file(
  "config", None, "Experiment config file.", lock_config=True
)
_WORKDIR = flags.DEFINE_string(
  "workdir", None, "Directory for config.json, metrics and checkpoints."
)
_ALLOW = flags.DEFINE_bool(
  "allow_config_change", False, "Continue a workdir that holds a run of another configuration."
)
_DISTRIBUTED = flags.DEFINE_bool(
  "distributed", False, "Call jax.distributed.initialize() (cluster auto-detected)."
)
_COORD = flags.DEFINE_string(
  "coordinator_address", None, "host:port of process 0 (implies --distributed)."
)
_NPROC = flags.DEFINE_integer(
  "num_processes", None, "Number of processes (with --coordinator_address)."
)
_PID = flags.DEFINE_integer(
  "process_id", None, "This process's index (with --coordinator_address)."
)
_SEEDS = flags.DEFINE_list(
  "seeds",
  None,
  "Train these seeds in one program, stacked on a seed axis (--workdir must hold {seed}); "
  "--config.seed is then unused.",
)
_PACK_MODE = flags.DEFINE_enum(
  "pack_mode",
  "auto",
  ["auto", "vmap", "map"],
  "With --seeds: vmap the seeds' step, or loop over them inside the program (map); auto: "
  "vmap on GPU/TPU, map on CPU.",
)
_CACHE = flags.DEFINE_string(
  "compilation_cache", "~/.cache/ngpu_jax/xla", "Persistent compilation cache directory ('' = off)."
)


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"unexpected arguments: {argv[1:]}")
  console.quiet_absl_logging()
  config = _CONFIG.value
  try:  # a bad config is a message, not a trace, and nothing is compiled or written
    train.validate_for_training(config)
  except (ValueError, OSError) as e:  # OSError: the config file did not load
    console.fail(str(e).split("\n\nThe above")[0])
  parallel.setup_cpu_devices(flags.FLAGS.cpu_devices, config.batch_size)
  steps.enable_compilation_cache(_CACHE.value)
  if _DISTRIBUTED.value or _COORD.value:
    parallel.initialize_distributed(_COORD.value, _NPROC.value, _PID.value)
  if _SEEDS.value is not None:
    _main_packed(config)
    return
  try:
    train.check_init_from(config, _WORKDIR.value)
    workdir_files.check_or_write_config(
      _WORKDIR.value, config, _ALLOW.value, write=parallel.is_main_process()
    )
  except (ValueError, OSError) as e:
    console.fail(str(e))
  try:
    train.train_and_evaluate(config, _WORKDIR.value, allow_config_change=_ALLOW.value)
  except (train.TrainingDivergedError, train.WorkdirWriteError) as e:
    console.fail(str(e))


def packed_workdirs(template: str, seeds: list[str]) -> tuple[list[int], list[str]]:
  """The seeds as ints and their workdirs, template.format(seed=s); ValueError names the flaw."""
  ints = common.integers("seeds", seeds)
  if not ints:
    raise ValueError("--seeds is empty")
  if len(set(ints)) != len(ints):
    raise ValueError(f"--seeds repeats a seed: {ints}")
  if "{seed}" not in template:
    raise ValueError(f"--workdir={template} must contain {{seed}} with --seeds")
  try:
    return ints, [template.format(seed=s) for s in ints]
  except (KeyError, IndexError, ValueError) as e:
    raise ValueError(f"--workdir={template}: only {{seed}} may be in braces ({e})") from None


def _main_packed(config):
  try:
    seeds, workdirs = packed_workdirs(_WORKDIR.value, _SEEDS.value)
    for c, w in zip(packed.seed_configs(config, seeds), workdirs):  # all checked before any write
      train.validate_for_training(c)
      train.check_init_from(c, w)
      workdir_files.check_or_write_config(w, c, _ALLOW.value, write=False)
  except (ValueError, OSError) as e:
    console.fail(str(e))
  results = packed.train_and_evaluate_packed(
    config, seeds, workdirs, allow_config_change=_ALLOW.value, mode=_PACK_MODE.value
  )
  failed = [f"seed {s}: {r}" for s, r in zip(seeds, results) if isinstance(r, Exception)]
  if failed:
    console.fail(f"{len(failed)} of {len(seeds)} runs failed: " + "; ".join(failed))


def parse_flags(argv):
  """absl's parser, with config override mistakes as one line instead of a trace."""
  try:
    return flags.FLAGS(argv)
  except flags.Error as e:
    console.fail(str(e))
  except (AttributeError, KeyError) as e:  # --config.FIELD that the config does not have
    field = next((a.split("=")[0] for a in argv if str(e).strip("\"'") in a), str(e))
    console.fail(f"{field}: no such config field ({e})")


def define_flags():
  common.define_cpu_devices()
  flags.mark_flags_as_required(["config", "workdir"])


if __name__ == "__main__":
  common.run(main, define_flags, flags_parser=parse_flags)
