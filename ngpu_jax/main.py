"""Trains a Neural GPU: python -m ngpu_jax.main --config=experiments/badd.py --workdir=DIR

Config overrides: --config.seed=3, --config.model.maps=48; the smoke form of
any experiment: --config=experiments/badd.py:smoke. Several hosts: --distributed
(auto-detected cluster) or --coordinator_address/--num_processes/--process_id.
"""

import jax
from absl import app, flags
from ml_collections import config_flags

from ngpu_jax import configlib, parallel, report, runs, train

_CONFIG = config_flags.DEFINE_config_file("config", None, "Experiment config file.", lock_config=True)
_WORKDIR = flags.DEFINE_string("workdir", None, "Directory for config.json, metrics and checkpoints.")
_ALLOW = flags.DEFINE_bool("allow_config_change", False,
                           "Continue a workdir that holds a run of another configuration.")
_DISTRIBUTED = flags.DEFINE_bool("distributed", False,
                                 "Call jax.distributed.initialize() (cluster auto-detected).")
_COORD = flags.DEFINE_string("coordinator_address", None, "host:port of process 0 (implies --distributed).")
_NPROC = flags.DEFINE_integer("num_processes", None, "Number of processes (with --coordinator_address).")
_PID = flags.DEFINE_integer("process_id", None, "This process's index (with --coordinator_address).")


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"unexpected arguments: {argv[1:]}")
  if _DISTRIBUTED.value or _COORD.value:
    parallel.initialize_distributed(_COORD.value, _NPROC.value, _PID.value)
  report.quiet_absl_logging()
  config = _CONFIG.value
  try:  # bad config or a workdir of another run: a message, not a trace
    configlib.validate(config)
    runs.check_or_write_config(_WORKDIR.value, config, _ALLOW.value)
  except (ValueError, OSError) as e:
    report.fail(str(e))
  train.train_and_evaluate(config, _WORKDIR.value, allow_config_change=_ALLOW.value)


if __name__ == "__main__":
  flags.mark_flags_as_required(["config", "workdir"])
  app.run(main)
