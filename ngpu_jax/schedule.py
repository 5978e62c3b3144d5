"""Host-side training schedule: curriculum length, relaxation pull, learning-rate decay.

All decisions are taken at the end of each window of `window` steps from the
training statistics of the global batch, so they are the same whatever the
number of devices or processes. As in the released code, the window counts
only batches no longer than the curriculum length: the occasional full-length
batches (p_full) are trained on but would otherwise keep the error above the
threshold until the model already generalizes, and the curriculum would stall. The state is a small JSON-able dataclass that
is saved with every checkpoint.
"""

import dataclasses
from typing import Any

LR_DECAY_RULES = ("worse_than_3", "original", "no_progress_2")
# The original trainer also decays the rate when it averages the copies while the window's
# error is below this: after the curriculum, the rate keeps falling as long as the model is good.
AVERAGING_DECAY_ERROR = 0.05


@dataclasses.dataclass
class Schedule:
  cur_length: int  # curriculum: longest length drawn (besides the full-length look)
  pull: float  # relaxation penalty weight
  window_seq_wrong: int = 0  # training sequences wrong in the current window
  window_examples: int = 0  # training sequences seen in the current window
  window_loss_sum: float = 0.0
  window_steps: int = 0
  last_seq_error: float = 1.0  # sequence error of the last full window (drives the noise)
  recent_losses: list[float] = dataclasses.field(default_factory=list)  # last 3 window losses
  averaged: int = 0  # how many times the copies were replaced by their mean
  lr_factor: float = 1.0  # product of the lr decays so far; lr = optim.learning_rate * this
  train_seconds: float = 0.0  # wall time spent training, summed over resumed sessions
  sat_weight: float = 1e-3  # weight of the saturation cost (when it is enabled)
  window_sat_sum: float = 0.0
  just_advanced: bool = False  # the last window advanced the curriculum ('original' rule)
  rollbacks: int = 0  # returns to the last checkpoint after a non-finite loss

  def to_json(self) -> dict[str, Any]:
    return dataclasses.asdict(self)

  @classmethod
  def from_json(cls, d: dict[str, Any]) -> "Schedule":
    return cls(**d)


@dataclasses.dataclass(frozen=True)
class Decision:
  """What the end of a window asks the trainer to do."""

  seq_error: float
  loss: float
  advanced: bool  # curriculum length went up
  pull_raised: bool
  average: bool  # replace every relaxation copy by the mean
  decay_lr: bool  # the learning rate was multiplied by the decay factor
  saturation: float = 0.0  # mean saturation cost of the window's steps


def record(
  sched: Schedule, seq_wrong: int, examples: int, loss: float, saturation: float = 0.0
) -> None:
  sched.window_sat_sum += float(saturation)
  sched.window_seq_wrong += int(seq_wrong)
  sched.window_examples += int(examples)
  sched.window_loss_sum += float(loss)
  sched.window_steps += 1


def end_window(
  sched: Schedule,
  *,
  max_length: int,
  threshold: float,
  pull_factor: float,
  pull_max: float,
  relax: bool,
  lr_decay: float = 1.0,
  lr_decay_rule: str = "worse_than_3",
  min_lr_factor: float = 0.0,
) -> Decision:
  """Applies the reference's rules and resets the window.

  When the window's sequence error is below `threshold` (the curriculum criterion):
  the curriculum advances by one (until max_length), and the pull is multiplied by
  pull_factor until it reaches pull_max, after which each such window averages
  the copies instead. The learning rate decays (lr_factor *= lr_decay, never
  below min_lr_factor) when the window's loss is worse than each of the last
  three windows' losses ('worse_than_3'), or when neither this window nor the one
  before beat the loss of the window before them ('no_progress_2', the DNGPU's code).
  'original' is the original trainer's: 'worse_than_3' except at the window right
  after a curriculum advance, and also at every averaging window whose sequence
  error is below AVERAGING_DECAY_ERROR.
  """
  seq_error = sched.window_seq_wrong / max(sched.window_examples, 1)
  loss = sched.window_loss_sum / max(sched.window_steps, 1)
  ok = sched.window_examples > 0 and seq_error < threshold
  advanced = ok and sched.cur_length < max_length
  if advanced:
    sched.cur_length += 1
  pull_raised = ok and relax and sched.pull < pull_max
  average = ok and relax and not pull_raised
  if pull_raised:
    sched.pull = min(sched.pull * pull_factor, pull_max)
  if average:
    sched.averaged += 1
  recent = sched.recent_losses
  worse_than_3 = sched.window_steps > 0 and len(recent) >= 3 and loss > max(recent[-3:])
  if lr_decay_rule == "worse_than_3":
    decay_lr = worse_than_3
  elif lr_decay_rule == "original":
    # The first window after an advance trains on longer problems, so its loss is worse for
    # that reason alone: the original guards that check with a sentinel.
    decay_lr = (worse_than_3 and not sched.just_advanced) or (
      average and seq_error < AVERAGING_DECAY_ERROR
    )
  elif lr_decay_rule == "no_progress_2":
    decay_lr = sched.window_steps > 0 and len(recent) >= 2 and recent[-2] < min(recent[-1], loss)
  else:
    raise ValueError(f"unknown lr_decay_rule {lr_decay_rule!r}")
  if sched.window_steps > 0:
    sched.just_advanced = advanced
  if decay_lr:
    sched.lr_factor = max(sched.lr_factor * lr_decay, min_lr_factor)
  if sched.window_steps > 0:
    sched.recent_losses = (sched.recent_losses + [loss])[-3:]
    sched.last_seq_error = seq_error
  saturation = sched.window_sat_sum / max(sched.window_steps, 1)
  sched.window_seq_wrong = sched.window_examples = sched.window_steps = 0
  sched.window_loss_sum = sched.window_sat_sum = 0.0
  return Decision(seq_error, loss, advanced, pull_raised, average, decay_lr, saturation)


def adapt_saturation_weight(
  sched: Schedule, decision: Decision, *, learning_rate: float, lo: float, hi: float
) -> None:
  """The DNGPU rule: w = clip(w * lr * loss / (w * cost), lo, hi) = clip(lr * loss / cost).

  In the DNGPU's code the cost in the denominator is the weighted one (the
  saturation term as it enters the loss), so the weight is set to make that
  term lr * loss. Dividing by the unweighted cost instead multiplies w by
  ~lr every window and drives it to the lower bound (measured here: 1e-20
  after a few windows).
  """
  if decision.saturation > 0:
    w = learning_rate * decision.loss / decision.saturation
    sched.sat_weight = float(min(max(w, lo), hi))
