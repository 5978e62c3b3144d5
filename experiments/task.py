"""Any registered task at the paper's settings: the task name is the config argument.

  python -m ngpu_jax.main --config=experiments/task.py:kvsort --workdir=/tmp/ngpu/kvsort
  python -m ngpu_jax.main --config=experiments/task.py:qadd,smoke --workdir=/tmp/ngpu/qadd_smoke

Tasks: see ngpu_jax/tasks.py (badd qadd add bmul qmul mul copy reverse duplicate sort
incr kvsort left right left-shift right-shift rev2 search). No expected result is
claimed for the tasks without an experiment file of their own.
"""

from ngpu_jax import configlib


def get_config(arg: str | None = None):
  if not arg:
    raise ValueError("experiments/task.py needs the task name: --config=experiments/task.py:TASK")
  task, _, form = arg.partition(",")
  return configlib.get_config_for(task, form or None)
