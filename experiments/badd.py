"""Neural GPU, binary addition (badd), with the original trainer's protocol.

Train (CPU or accelerator):
  python -m ngpu_jax.main --config=experiments/badd.py --workdir=/tmp/ngpu/badd
Smoke form (seconds):
  python -m ngpu_jax.main --config=experiments/badd.py:smoke --workdir=/tmp/ngpu/badd_smoke
The same with the paper's gradient noise on (the released code trained without it), and
with this project's earlier protocol (stop at the first exact evaluation at 41):
  python -m ngpu_jax.main --config=experiments/badd.py:noise --workdir=/tmp/ngpu/badd_noise
  python -m ngpu_jax.main --config=experiments/badd.py:previous --workdir=/tmp/ngpu/badd_prev
Evaluate at 20-, 200- and 2000-bit operand lengths:
  python -m ngpu_jax.tools.evaluate --workdir=/tmp/ngpu/badd --lengths=41,401,4001

The protocol: six relaxation copies drawn independently; no lr decay at the window right
after a curriculum advance, a decay at every averaging of the copies while the error is
below 5%; fresh problems at every evaluation, at 41-121 every 1,000 steps and at 201 and
401 every 5,000 (the generalization front in metrics.jsonl and `plot`); training goes on
after the curriculum until an evaluation is exact up to 401 and then on 64 fresh problems
at 4001, or until num_steps (30,000).

Expected result. The paper: error-free on 2000-bit operands after training on up to 20
bits. Measured here with the earlier protocol (seed 0, 2 CPU cores): curriculum at 41 by
step 11,000, no errors at length 41 (128 problems) at step 13,000 after 44 minutes, where
that protocol stops; 100% sequence error at length 401 then (results/badd_default/); 0 of
5 seeds exact at 401. With this protocol and --config.num_steps=60000 (seed 0, 2 CPU cores,
results/long/badd_reference_seed0/): curriculum at 41 by step 10,000; by step 22,000 exact
at 51 and 0-4 of 128 wrong at 61, 16-53% wrong at 81, every problem wrong at 401; flat from
step 27,000 (41,000 steps, 213 minutes). Seed 2 (--config.seed=2, 18,000 steps) like seed 0 so far;
seed 1 (results/long/badd_reference_seed1/, 29,000 steps, 206 minutes on one core): 1-5 of
128 wrong at 41 up to step 24,000, but symbol error 0.004 at 121 at step 19,000 and 0.066 at 401 at step
20,000, where seeds 0 and 2 stay at chance (0.24-0.39); from step 23,000, as the lr decayed,
back towards seed 0 (step 29,000: exact at 41, 30% wrong at 61, symbol error 0.077 at 121).
Seed 1 forked at step 20,000 with the lr held (--config.optim.lr_decay=1.0,
results/long/badd_reference_seed1_lr_held_from20000/): at step 35,000 exact to 61 and 13%
of 128 200-bit sums wrong (symbol error 0.0007), 56% wrong at step 30,000, 60% and 91% at
40,000 and 45,000; the mean of its steps 35,000-38,000 (evaluate --average_steps) 7.6% of
512 wrong. Seed 0 forked at 15,000 with the lr held: at chance at 401 to step 26,000.
All of that from step 0 in one run (--config.optim.min_lr_factor=0.57
--config.optim.ema_decay=0.9995 --config.hard_mix=0.1, seed 1,
results/long/badd_reference_lr_floor0.57_ema0.9995_hard_mix0.1_seed1/): 31% of 128 fresh
200-bit sums right at step 14,000, 82% at step 18,000 and 95.7% of 512 at step 33,000
(211 minutes), where it stays; seed 0 under it like its plain run to step 35,000 (exact to 61,
10-39% of 81 wrong, every 401 wrong; 157 minutes). With
the no-carry chains named too from step 28,000 (--config.hard_families=..., docs/findings.md):
98.05% of 512 200-bit sums right at step 33,000 and 99.22% at step 50,000 (339 minutes), the
long chains at 401 all wrong; 30% hard cases from step 36,000 (--config.hard_mix=0.3) learn the
short no-carry chains, not the long ones, and get 98.44%. With 30% of the two chain families
alone from step 50,000 (--config.hard_mix=0.3 --config.hard_families=... naming
carry_chain_in_random and no_carry_chain_in_random): exact on 128 fresh problems at every length
to 401 at steps 54,000 and 57,000, 61 of 64 fresh 2000-bit sums right at step 54,000, 511 of 512
200-bit sums at step 57,500 (436 minutes); runs of more than 16-24 carry-passing digits still wrong.
Its step-54,000 model was the shipped badd; to step 70,000 (525 minutes) it stays about there
(6 of 128 200-bit sums wrong at 70,000), and so does a fork at a tenth of the rate from 58,000.
Trained on from step 70,000 with --config.curriculum.max_length=101 (50-bit operands, past the
paper's setting; buckets up to 101): exact on 128 fresh problems at every length to 401 at
steps 75,000, 77,000 and 79,000, but 11, 5 and 7 of 64 2000-bit sums wrong; the curriculum
reached 101 at step 82,000, after which the training error rose (0.06 to 0.17 by step 86,000,
the rate at its floor) and step 84,000 has 21 of 64 2000-bit sums wrong. A copy of step
77,000 with the floor at 0.1 (--config.optim.min_lr_factor=0.1) did no better at 101 (20 of 512
fresh 200-bit sums wrong at step 83,000; results/long/..._max_length101_from70000_lr_floor0.1_from77000/);
another, back at length 41 with that floor (--config.curriculum.max_length=41, buckets to 41;
results/long/..._max_length41_lr_floor0.1_from77000/), has 0-3 of 512 wrong from step 83,000 but
6 of 64 2000-bit sums at step 85,000, five of them at the answer's top digit. The share of 512
fresh 200-bit sums wrong, p, predicts the 2000-bit count, 64 x (1 - (1 - p)^10) wrong of 64 (2.5,
3.7, 7.1, 9.3 and 18.3 predicted against 3, 5, 7, 11 and 21 measured), for errors inside the
answer, not for one ending in the wrong place; --config.eval.far_examples=512 gives a run's far
evaluations that many problems. The mean of four checkpoints 54,000-70,000 (tools.export
--average) has none of 512 200-bit sums wrong and 3 of 64 2000-bit ones. The run's step 70,000
with the floor at 0.1 (--config.optim.min_lr_factor=0.1, at 41; results/long/..._lr_floor0.1_from70000/):
0 of 512 fresh 200-bit sums wrong at steps 75,000, 76,000 and 79,000 (4 of 4,096 over
75,000-82,000), 2000-bit stop checks 1 wrong in 40, 2 in 32, 1 in 8; the mean of its checkpoints
75,000-79,000 is the shipped badd: 0 of 512 wrong at 41 and at 401, 1 of 64 2000-bit sums
(one wrong digit; 3 of another 64, --seed=1234), all-ones chains right to 44 bits.
"""

from ngpu_jax import configlib, experiment_files


def get_config(arg: str | None = None):
  return configlib.get_config_for("badd", arg)


def get_sweep(arg: str | None = None):
  """The seeds of the reproduction table (python -m ngpu_jax.tools.sweep --config=experiments/badd.py)."""
  del arg
  return experiment_files.reproduction_sweep("badd")
