"""What the commands share: each flag defined once, the start-up, and the model they load.

Flags are defined by functions, not at import: tests import several commands into one
process, and absl refuses a flag defined twice.
"""

from collections.abc import Callable

from absl import app, flags

from ngpu_jax import console


def define_cpu_devices(when_unset: str = "as many cores as divide the batch") -> None:
  # XLA:CPU runs a device's small convolutions on about one thread; one device per core
  # keeps the cores busy (see parallel.setup_cpu_devices).
  flags.DEFINE_integer("cpu_devices", -1, f"CPU devices to split the host into (-1: {when_unset}).")


def define_model_flags(max_length: int, why: str) -> None:
  """--model, --task and --max_length, as the commands that answer problems take them."""
  flags.DEFINE_string(
    "model",
    None,
    "Training workdir, or the name of a shipped model (ngpu_jax/pretrained/: badd, copy, reverse).",
  )
  flags.DEFINE_string("task", None, "Task of the problems; must be the model's task (default: it).")
  flags.DEFINE_integer("max_length", max_length, f"Longest problem accepted, in columns ({why}).")
  flags.mark_flag_as_required("model")


def integers(name: str, values: list[str]) -> list[int]:
  """A list flag's values (absl keeps them as text) as ints; ValueError names the flag."""
  try:
    return [int(v) for v in values]
  except ValueError:
    raise ValueError(
      f"--{name}={','.join(values)}: give whole numbers separated by commas"
    ) from None


def start(batch_size: int) -> None:
  """What a command that computes does first: quiet absl logging, one XLA device per core."""
  from ngpu_jax import parallel  # pylint: disable=g-import-not-at-top  (aggregate needs no jax)

  console.quiet_absl_logging()
  parallel.setup_cpu_devices(flags.FLAGS.cpu_devices, batch_size)


def model_config(model: str, task: str | None):
  """(directory, config) of --model, refusing a --task other than the model's."""
  from ngpu_jax import loading, workdir_files  # pylint: disable=g-import-not-at-top

  directory = loading.resolve_model(model)
  config = workdir_files.load_config(directory)
  if task and task != config.task:
    raise ValueError(f"--task={task} but the model at {directory} was trained on {config.task!r}")
  return directory, config


def run(
  main: Callable,
  define_flags: Callable[[], None],
  *,
  jax_flags: bool = True,
  flags_parser: Callable | None = None,
) -> None:
  """Defines the command's flags and runs it; jax_flags adds JAX's own (--jax_platforms=cpu)."""
  define_flags()
  if jax_flags:
    import jax  # pylint: disable=g-import-not-at-top

    jax.config.config_with_absl()
  app.run(main, **({"flags_parser": flags_parser} if flags_parser else {}))
