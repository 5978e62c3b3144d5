"""The DNGPU variant (Freivalds & Liepins 2017) on binary addition or multiplication.

Each part is a separate config field, so it can be switched off on its own
(see ngpu_jax/configlib.py): hard nonlinearities + the adaptive saturation cost,
diagonal gates, gate offsets 0.7/0.5, a 1-D state with one gated unit per step,
dropout on the candidate, all buckets every step without a curriculum, AdaMax
with per-element clipping, and no relaxation. Maps: 48 for badd, 96 for bmul
(the reference's suggestion).

  python -m ngpu_jax.main --config=experiments/dngpu.py:bmul --workdir=runs/dngpu_bmul
  python -m ngpu_jax.main --config=experiments/dngpu.py:badd,smoke --workdir=/tmp/dngpu_smoke
Ablation, e.g. the original CGRU gates inside the DNGPU setup:
  python -m ngpu_jax.main --config=experiments/dngpu.py:bmul --config.model.diagonal=False ...

Expected result (reference, not yet reproduced here): binary multiplication learned in well
under 2,000 steps, with < 1% error at 100x the training length for all runs.
"""

from ngpu_jax import configlib

MAPS = {"badd": 48, "bmul": 96}


def dngpu(task: str):
  c = configlib.base(task)
  c.model.maps = MAPS.get(task, 48)
  c.model.rows = 1                 # 1-D state [batch, W, M]
  c.model.layers = 1               # one gated unit per step
  c.model.gate = "hard_sigmoid"
  c.model.candidate = "hard_tanh"
  c.model.u_offset = 0.7
  c.model.r_offset = 0.5
  c.model.diagonal = True
  c.model.dropout_on = "candidate"
  c.saturation.enabled = True
  c.relax.copies = 1
  c.curriculum.mode = "all_buckets"   # bins 8..41, batch_size examples each, every step
  c.buckets = (8, 12, 16, 20, 24, 28, 32, 36, 41)
  c.optim.name = "adamax"
  c.optim.clip_mode = "element"
  c.num_steps = 5000
  c.log_every = 50
  c.checkpoint_every = 500
  c.eval.every = 250
  return c


def get_config(arg: str | None = None):
  task, _, form = (arg or "bmul").partition(",")
  if task not in MAPS:
    raise ValueError(f"experiments/dngpu.py takes badd or bmul, got {task!r}")
  c = dngpu(task)
  if form == "smoke":
    c = configlib.smoke(c)
    c.buckets = (8, 12)
  return c


def get_sweep(arg: str | None = None):
  del arg
  return [{"seed": s} for s in range(3)]
