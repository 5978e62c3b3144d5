"""The base config shared by every experiment, its smoke form, and validation.

Experiment files (experiments/*.py) start from `base(task)` and change what
their experiment needs; `smoke(config)` shrinks any of them to a run of seconds.
"""

import ml_collections

# Fields a resumed run may change without being a different experiment.
RESUMABLE_CHANGES = (
  "variant",
  "precision",
  "num_steps",
  "max_train_minutes",
  "log_every",
  "eval",
  "final_eval",
  "stop_when_solved",
  "stop_rule",
  "checkpoint_every",
  "keep_checkpoints",
  "keep_checkpoints_every",
  "keep_best",
)

# jax.default_matmul_precision's names for float32 inputs: the backend's fastest, 3 bfloat16
# passes (TPU) or TF32, and full float32.
PRECISIONS = ("default", "high", "highest")

# Fields whose base() default changed when the references' training protocol became the
# default: a config.json written before a field existed ran with the value here, so that is
# what loading it fills in (workdir_files.with_defaults), and what aggregate labels it by.
LEGACY_DEFAULTS = {
  "stop_rule": "exact_at_eval_lengths",
  "relax.init": "shared",
  "optim.lr_decay_rule": "worse_than_3",
  "eval.fresh": False,
  "eval.far_lengths": (),
  "data_generator": "exact",
  # Every family there was before carry_chain_in_random: what a hard_mix run drew from then.
  "hard_families": (
    "alternating",
    "carry_chain_random_start",
    "max_plus_max",
    "max_plus_one",
    "max_times_max",
    "max_times_random",
    "one_digit_padded",
    "powers_of_base",
    "zero_run",
  ),
}


def base(task: str) -> ml_collections.ConfigDict:
  """The paper's model and training settings for `task`."""
  c = ml_collections.ConfigDict()
  c.task = task  # a name from ngpu_jax.tasks.TASKS
  c.seed = 0  # seeds the parameters, the data stream, dropout and noise
  c.variant = ""  # a label for results tables (aggregate); "" = list the changed fields
  c.batch_size = 32  # global batch, split over all devices of all processes
  c.precision = "highest"  # of the float32 matmuls and convolutions: 'highest' is float32 on
  # every backend; 'default' lets GPUs use TF32 (10-bit mantissa) and TPUs bfloat16 passes, the
  # backend's default, which the numbers of a 2000-step recurrence may not survive
  c.num_steps = 30_000  # training steps (the run may stop earlier, see stop_when_solved)
  c.max_train_minutes = 0.0  # stop (checkpoint, final evaluation) after this much training time,
  # summed over resumes; 0 = no limit. For budgets like "30 CPU minutes".
  c.zero_pad_targets = False  # arithmetic: '0' digits instead of blanks up to the problem's length
  # (the DNGPU writes bmul answers so); evaluation and predict follow
  c.hard_mix = 0.0  # fraction of every training batch drawn from the task's hard-case probe
  # families instead of random operands (robustness training); arithmetic only
  c.hard_families = ()  # the probe families hard_mix draws from, uniformly; () = all of the
  # task's but those drawn only by name (probes.NAMED_ONLY: no_carry_chain_in_random). Names of
  # another task's families are skipped (one list can serve badd and bmul)
  c.init_from = ""  # start from these parameters instead of random ones (fine-tuning): a run
  # directory (its newest checkpoint), an exported model such as a run's best/, or a shipped
  # model's name; the step, optimizer and schedule start fresh. Ignored once the run has a
  # checkpoint, so the run resumes as any other.
  c.data_generator = (
    "vectorized"  # training problems a batch at a time (fastgen), or 'exact': one by one
  )

  c.model = ml_collections.ConfigDict()
  c.model.maps = 24  # M: maps (channels) of the mental image
  c.model.rows = 4  # H: rows of the mental image; the input is written into row 0
  c.model.layers = 2  # L: CGRU layers in one step, each with its own kernels
  c.model.kernel_init_scale = 1.8  # step kernels ~ U(+-scale * sqrt(3 / fan_in)); DNGPU: 1.0
  c.model.cutoff = 1.2  # gates are clip(cutoff * sigmoid(x) - (cutoff - 1) / 2, 0, 1)
  c.model.dropout = 0.15  # dropout rate (at width 8 when dropout_by_length)
  c.model.dropout_by_length = True  # rate = dropout * 8 / width (paper); False: fixed (DNGPU)
  c.model.dropout_on = "state"  # 'state' between steps (paper) or each layer's 'candidate' (DNGPU)
  c.model.gate = "sigmoid_cutoff"  # or 'hard_sigmoid' = clip(0.5x + 0.5, 0, 1) (DNGPU)
  c.model.candidate = "tanh"  # or 'hard_tanh' = clip(x, -1, 1) (DNGPU)
  c.model.u_offset = 1.0  # constant added to the keep gate's pre-activation (DNGPU: 0.7)
  c.model.r_offset = 1.0  # constant added to the reset gate's pre-activation (DNGPU: 0.5)
  c.model.diagonal = False  # keep path reads 1/3 of the maps from each neighbour column (DNGPU)
  c.model.squash_input = False  # pass the embedded input through the candidate function, so the
  # state starts inside [-1, 1] (DNGPU; without it hard gates let
  # the input scale grow: measured, grad norm 1e5 by step 25)
  c.model.input_path = "embed"  # 'embed': U(-1.7, 1.7) embedding, tanh, 1x1 conv (the paper's
  # code); 'onehot': one-hot symbols through a Glorot-initialised
  # 1x1 conv with bias, nothing else (the DNGPU's)
  c.model.readout = "own_length"  # 'own_length': each example read after its own n steps (paper);
  # 'final': every example read after the batch's full width, so a
  # short problem must hold its answer to the end, every column
  # computing; 'final_masked': the same, with the columns past the
  # problem kept empty at every step (the DNGPU's model)
  c.model.conv_impl = "auto"  # 'hybrid' (fast on CPU), 'im2col' (GPU), 'xla' (lax.conv), or 'auto':
  # the one measured fastest on the running backend
  c.model.scan_unroll = 1  # steps per scan iteration (same numbers; fewer loop trips on GPU)
  c.model.remat = True  # rematerialise each step in the backward pass (memory / W)
  c.model.ensemble = 1  # K > 1: K trained models (every parameter has a leading K axis) whose
  # answer probabilities are averaged; only `export --ensemble` writes one,
  # training takes 1

  c.relax = ml_collections.ConfigDict()
  c.relax.copies = 6  # R copies of the step parameters; step t uses copy t % R; 1 = plain sharing
  c.relax.pull_start = 0.0005  # initial weight of sum_k ||theta_k - mean||^2
  c.relax.pull_factor = 1.2  # pull x this at each window that meets the curriculum criterion
  c.relax.pull_max = 0.1  # from here on such windows average the copies instead
  c.relax.init = "independent"  # each copy its own random draw (the original's code), or 'shared':
  # every copy starts from one draw

  c.optim = ml_collections.ConfigDict()
  c.optim.name = "adam"  # or 'adamax' (optax.adamax), or 'clipped_adamax' (the DNGPU's:
  # per-element clip at 1.2x the running max, beta2 0.99 -> 0.9995)
  c.optim.clip_mode = "global_norm"  # clip the gradient's global norm, each 'element', or 'none'
  c.optim.learning_rate = 1e-3
  c.optim.adam_eps = 1e-4  # the reference's eps; optax's default 1e-8 is much smaller
  c.optim.clip_norm = 1.0  # the clipping bound (global norm, or per element)
  c.optim.lr_decay = 0.98  # lr x this when lr_decay_rule fires at the end of a window
  c.optim.lr_decay_rule = (
    "original"  # 'worse_than_3': loss worse than the last 3 windows'; 'original':
  )
  # that, except at the window right after a curriculum advance,
  # plus a decay at each averaging of the copies whose window
  # error is below 5% (the original trainer's late phase);
  # 'no_progress_2': 2 windows without improvement (DNGPU)
  c.optim.min_lr_factor = 0.0  # decays stop at learning_rate * this (DNGPU: 1/60)
  c.optim.noise_scale = 0.0  # gradient noise (truncated normal after clipping); 0 = off
  c.optim.noise_kind = "error_scaled"  # std = scale * sqrt(seq_err / (t+1)^0.55), none below 2%
  # error (the paper); 'lr_scaled': std = scale * lr (DNGPU)
  c.optim.rollback_lr_factor = 0.5  # on a non-finite loss: back to the last checkpoint, lr x this
  c.optim.max_rollbacks = 3  # rollbacks allowed per run; past them the run stops with an error
  c.optim.ema_decay = 0.0  # > 0: evaluate, export and predict with a moving average of the
  # parameters (decay per step); 0 = the last parameters

  c.saturation = ml_collections.ConfigDict()  # DNGPU's cost on saturated pre-activations
  c.saturation.enabled = False
  c.saturation.limit = 0.9  # cost = mean relu(|pre-activation| - limit)
  c.saturation.start = 1e-3  # initial weight; each window: clip(w * lr * loss / cost, min, max)
  c.saturation.min = 1e-20
  c.saturation.max = 1e-3

  c.curriculum = ml_collections.ConfigDict()
  c.curriculum.mode = "paper"  # 'paper', or 'all_buckets': every step trains one batch per
  # bucket up to max_length at that length, no curriculum (DNGPU)
  c.curriculum.bin_groups = 0  # all_buckets: pad the bins into this many groups, one scan
  # each (0 = one scan per bin); same problems and loss
  c.curriculum.bin_lengths = "exact"  # all_buckets: 'exact' puts every problem of a bin at the
  # bin's length; 'spread' draws each from (previous bin, bin],
  # so every length from min_length on is trained, not 9 of them
  c.curriculum.shorter_fraction = 0.0  # spread: this fraction of each bin drawn from the lengths
  # below the previous bin (DNGPU: ~5%; with readout 'final' those
  # must hold their answer through many more steps)
  c.curriculum.length_mix = "uniform"  # spread: 'uniform' trains every length of a bin
  # equally often; 'distinct' each in proportion to its distinct problems, at most 10,000, as
  # the DNGPU's pools (arithmetic tasks: no even lengths, 20-bit problems 1/3 of bin 41, not 1/5)
  c.curriculum.min_length = 3  # shortest training length
  c.curriculum.start_length = 6  # curriculum length at step 0
  c.curriculum.max_length = 41  # the paper's training length (two 20-bit operands + operator)
  c.curriculum.threshold = 0.15  # advance when a window's training sequence error is below this
  c.curriculum.window = 200  # steps per decision window (curriculum, pull, lr decay)
  c.curriculum.p_recent = 0.6  # probability of the second U{min, cur} draw
  c.curriculum.p_full = 0.25  # probability of a U{min, max_length} draw

  # Widths that batches are padded to: one compiled step per bucket in use.
  c.buckets = (8, 12, 16, 20, 24, 28, 32, 36, 41, 48, 64)

  c.log_every = 100  # steps between console lines and train lines in metrics.jsonl
  c.checkpoint_every = 1000  # steps between orbax checkpoints
  c.keep_checkpoints = 3  # newest checkpoints kept
  c.keep_checkpoints_every = 0  # > 0: also keep every checkpoint whose step is a multiple of
  # this, for scoring the mean of a run's checkpoints (tools.evaluate --average_steps)
  c.keep_best = True  # keep the best model by the periodic evaluations (longest front, then
  # the furthest measured, then fewest errors) as the exported model WORKDIR/best: a run's
  # front often peaks mid-run

  c.eval = ml_collections.ConfigDict()
  c.eval.every = 1000  # steps between evaluations during training
  # Lengths evaluated during training: the training length and past it, so metrics.jsonl shows
  # the generalization front (the longest length up to which every evaluated length is exact).
  c.eval.lengths = (41, 51, 61, 81, 121)
  c.eval.far_lengths = (201, 401)  # evaluated every far_every steps only (they cost W^2)
  c.eval.far_every = 5000
  c.eval.far_gate = 1.0  # a far length is measured only while the longest length measured before
  # it has at most this sequence error (1.0: always; the original tests 401 only under 0.05)
  c.eval.examples = 128  # random examples per length
  # Per far length (0: eval.examples). Exact on 128 at 401 passes a model with 0.4% of 200-bit
  # sums wrong 61% of the time; 512 there predict the count of 64 at 4001 (docs/findings.md).
  c.eval.far_examples = 0
  c.eval.fresh = True  # new problems at every evaluation (False: the same ones each time)
  c.eval.batch_size = 64  # examples per forward pass (memory bound at long lengths)
  # Sums: every far_every steps, how far the carries reach at this length (evaluate --reach:
  # the lowest wrong column on pairs that all sum to base-1), a "reach" line per split and
  # carry in metrics.jsonl. Random problems rarely hold a run past a dozen pairs, so this is
  # the signal for the long-chain probes. 0: off.
  c.eval.reach_length = 0
  c.eval.reach_examples = 4  # per split and carry (the same problems at every evaluation)

  c.final_eval = ml_collections.ConfigDict()
  c.final_eval.lengths = (41, 401)  # evaluated once when training ends
  c.final_eval.examples = 128
  c.final_eval.probe_examples = 16  # per hard-case probe family and length (arithmetic; 0 = off)
  # Evaluated only when every final_eval length is error-free (the paper's 2000-bit test:
  # ~4 TFLOP per example, ~23 s each on 2 CPU cores).
  c.final_eval.long_lengths = (4001,)
  c.final_eval.long_examples = 64
  # Problems per forward pass of stop_rule's check at the long lengths, which ends at the first
  # batch with a wrong answer: a model not there yet is told so after a few minutes on a CPU,
  # not after all long_examples.
  c.final_eval.check_batch_size = 8

  c.stop_when_solved = True  # stop once stop_rule holds (else at num_steps / max_train_minutes)
  c.stop_rule = "exact_at_long"  # 'exact_at_long': an evaluation exact at every length up to 401
  # (far lengths included) and then on fresh final_eval.long_lengths
  # problems (4001); 'exact_at_eval_lengths': curriculum done and
  # eval.lengths exact (stops 1-2k steps after reaching 41)
  return c


def smoke(c: ml_collections.ConfigDict) -> ml_collections.ConfigDict:
  """A tiny version of any experiment: seconds on 2 CPU cores, same code paths."""
  c.num_steps = 60
  c.batch_size = 8
  c.model.maps = 8
  c.curriculum.max_length = min(c.curriculum.max_length, 12)
  c.curriculum.start_length = min(c.curriculum.start_length, c.curriculum.max_length)
  c.curriculum.window = 20
  c.buckets = (8, 12)
  c.log_every = 10
  c.checkpoint_every = 20
  c.eval.every = 30
  c.eval.lengths = (12,)
  c.eval.far_lengths = ()
  c.eval.far_every = 60
  c.eval.examples = 16
  c.eval.batch_size = 16
  c.final_eval.lengths = (12, 24)
  c.final_eval.examples = 16
  c.final_eval.probe_examples = 4
  c.final_eval.long_lengths = ()
  c.stop_when_solved = False
  return c


def set_field(c: ml_collections.ConfigDict, dotted: str, value) -> None:
  """c.a.b = value for dotted = 'a.b'."""
  *path, name = dotted.split(".")
  for k in path:
    c = c[k]
  c[name] = value


# The paper model's forms besides the default (its reference protocol):
#   noise     the paper's gradient noise, on (the released code trained without it)
#   previous  this project's earlier protocol: LEGACY_DEFAULTS (stop at the first exact
#             evaluation at 41, copies from one draw, the plain x0.98 rule, fixed problems)
#   smoke     a run of seconds (combines with the others: 'noise,smoke')
FORMS = ("noise", "previous", "smoke")
NOISE_SCALE = 1.0


def get_config_for(task: str, arg: str | None) -> ml_collections.ConfigDict:
  """What an experiment file's get_config does: base(task) in the forms named by arg."""
  forms = [f for f in (arg or "").split(",") if f]
  unknown = [f for f in forms if f not in FORMS]
  if unknown:
    raise ValueError(f"unknown config form(s) {unknown} for {task}; known: {', '.join(FORMS)}")
  c = base(task)
  if "noise" in forms:
    c.optim.noise_scale = NOISE_SCALE
    c.variant = "paper + gradient noise"
  if "previous" in forms:
    for dotted, value in {**LEGACY_DEFAULTS, "eval.lengths": (41,)}.items():
      set_field(c, dotted, value)
  return smoke(c) if "smoke" in forms else c


def validate(c: ml_collections.ConfigDict) -> None:
  """Raises ValueError with one line per problem, before anything is compiled."""
  from ngpu_jax import (  # pylint: disable=g-import-not-at-top
    carry_runs,
    cgru,
    data,
    optim,
    probes,
    schedule,
    tasks,
  )

  errors = []

  def need(ok, msg):
    if not ok:
      errors.append(msg)

  need(
    c.task in tasks.TASKS, f"task: unknown task {c.task!r}; known: {', '.join(sorted(tasks.TASKS))}"
  )
  for name in ("batch_size", "num_steps", "log_every", "checkpoint_every", "keep_checkpoints"):
    need(
      isinstance(c[name], int) and c[name] > 0, f"{name}: must be a positive int, got {c[name]!r}"
    )
  k = c.keep_checkpoints_every
  need(
    isinstance(k, int) and k >= 0 and k % c.checkpoint_every == 0,
    f"keep_checkpoints_every: must be 0 or a multiple of checkpoint_every={c.checkpoint_every}, "
    f"got {k!r}",
  )
  need(isinstance(c.keep_best, bool), f"keep_best: must be True or False, got {c.keep_best!r}")
  need(
    isinstance(c.init_from, str), f"init_from: must be a path or a model name, got {c.init_from!r}"
  )
  need(0.0 <= c.hard_mix < 1.0, f"hard_mix: must be in [0, 1), got {c.hard_mix!r}")
  need(
    c.hard_mix == 0.0 or c.task in tasks.ARITHMETIC,
    f"hard_mix: the probe families exist for the arithmetic tasks only, not {c.task!r}",
  )
  known = sorted({n for t in tasks.ARITHMETIC for n in probes.families(tasks.get_task(t))})
  unknown = [n for n in c.hard_families if n not in known]
  need(
    not unknown,
    f"hard_families: no probe family {', '.join(map(repr, unknown))}; known: {', '.join(known)}",
  )
  need(
    not (c.hard_mix and c.task in tasks.ARITHMETIC)
    or probes.mix_families(tasks.get_task(c.task), c.hard_families),
    f"hard_families: none of {list(c.hard_families)} is a family of {c.task!r}",
  )
  need(
    c.data_generator in ("exact", "vectorized"),
    f"data_generator: must be exact or vectorized, got {c.data_generator!r}",
  )
  m, cur = c.model, c.curriculum
  for name in ("maps", "rows", "layers"):
    need(
      isinstance(m[name], int) and m[name] > 0,
      f"model.{name}: must be a positive int, got {m[name]!r}",
    )
  need(
    isinstance(m.ensemble, int) and m.ensemble >= 1,
    f"model.ensemble: must be an int >= 1, got {m.ensemble!r}",
  )
  need(m.kernel_init_scale > 0, f"model.kernel_init_scale: must be > 0, got {m.kernel_init_scale}")
  need(m.cutoff >= 1.0, f"model.cutoff: must be >= 1, got {m.cutoff}")
  need(0.0 <= m.dropout < 1.0, f"model.dropout: must be in [0, 1), got {m.dropout}")
  need(
    m.dropout_on in ("state", "candidate"),
    f"model.dropout_on: must be state or candidate, got {m.dropout_on!r}",
  )
  need(
    m.gate in ("sigmoid_cutoff", "hard_sigmoid"),
    f"model.gate: must be sigmoid_cutoff or hard_sigmoid, got {m.gate!r}",
  )
  need(
    m.candidate in ("tanh", "hard_tanh"),
    f"model.candidate: must be tanh or hard_tanh, got {m.candidate!r}",
  )
  need(not m.diagonal or m.maps >= 3, "model.diagonal: needs maps >= 3 (a third shifts each way)")
  need(
    c.optim.name in optim.OPTIMIZERS,
    f"optim.name: must be one of {sorted(optim.OPTIMIZERS)}, got {c.optim.name!r}",
  )
  need(
    c.optim.clip_mode in optim.CLIP_MODES,
    f"optim.clip_mode: must be one of {optim.CLIP_MODES}, got {c.optim.clip_mode!r}",
  )
  need(
    c.optim.lr_decay_rule in schedule.LR_DECAY_RULES,
    f"optim.lr_decay_rule: must be one of {schedule.LR_DECAY_RULES}, got {c.optim.lr_decay_rule!r}",
  )
  need(
    0 <= c.optim.min_lr_factor <= 1,
    f"optim.min_lr_factor: must be in [0, 1], got {c.optim.min_lr_factor}",
  )
  need(
    cur.mode in ("paper", "all_buckets"),
    f"curriculum.mode: must be paper or all_buckets, got {cur.mode!r}",
  )
  need(
    cur.bin_lengths in ("exact", "spread"),
    f"curriculum.bin_lengths: must be exact or spread, got {cur.bin_lengths!r}",
  )
  need(
    cur.bin_lengths == "exact" or cur.mode == "all_buckets",
    f"curriculum.bin_lengths: spread fills the bins of mode all_buckets; mode {cur.mode!r} "
    "has no bins to fill",
  )
  need(
    0.0 <= cur.shorter_fraction < 1.0
    and (cur.shorter_fraction == 0 or cur.bin_lengths == "spread"),
    f"curriculum.shorter_fraction: must be in [0, 1), and 0 unless bin_lengths is spread, "
    f"got {cur.shorter_fraction!r}",
  )
  need(
    cur.length_mix == "uniform"
    or (
      cur.length_mix == "distinct"
      and cur.bin_lengths == "spread"
      and c.task in tasks.TASKS
      and tasks.TASKS[c.task].distinct_problems(tasks.TASKS[c.task].min_length) is not None
    ),
    f"curriculum.length_mix: must be uniform, or distinct with bin_lengths spread on a task "
    f"whose problems are counted by length ({', '.join(tasks.ARITHMETIC)}), got "
    f"{cur.length_mix!r} ({cur.bin_lengths}, {c.task})",
  )
  need(
    m.readout in ("own_length", "final", "final_masked"),
    f"model.readout: must be own_length, final or final_masked, got {m.readout!r}",
  )
  need(
    not (m.readout.startswith("final") and cur.mode == "all_buckets" and cur.bin_groups > 0),
    "model.readout: final reads each bin after its own width; bin_groups packs bins into "
    "wider scans, so it needs curriculum.bin_groups=0",
  )
  need(
    m.input_path in ("embed", "onehot"),
    f"model.input_path: must be embed or onehot, got {m.input_path!r}",
  )
  need(
    c.relax.init in ("independent", "shared"),
    f"relax.init: must be independent or shared, got {c.relax.init!r}",
  )
  need(
    c.optim.noise_kind in optim.NOISE_KINDS,
    f"optim.noise_kind: must be one of {optim.NOISE_KINDS}, got {c.optim.noise_kind!r}",
  )
  need(
    0 < c.optim.rollback_lr_factor <= 1,
    f"optim.rollback_lr_factor: must be in (0, 1], got {c.optim.rollback_lr_factor}",
  )
  need(
    isinstance(c.optim.max_rollbacks, int) and c.optim.max_rollbacks >= 0,
    f"optim.max_rollbacks: must be an int >= 0, got {c.optim.max_rollbacks!r}",
  )
  need(
    c.stop_rule in ("exact_at_long", "exact_at_eval_lengths"),
    f"stop_rule: must be exact_at_long or exact_at_eval_lengths, got {c.stop_rule!r}",
  )
  need(
    not c.zero_pad_targets or c.task in tasks.ARITHMETIC,
    f"zero_pad_targets: pads numbers with '0' digits, so arithmetic tasks only, not {c.task!r}",
  )
  need(
    isinstance(cur.bin_groups, int) and cur.bin_groups >= 0,
    f"curriculum.bin_groups: must be an int >= 0, got {cur.bin_groups!r}",
  )
  need(
    not (cur.mode == "all_buckets" and cur.bin_groups > 0 and m.dropout_by_length),
    "curriculum.bin_groups: packing bins needs model.dropout_by_length=False (the rate "
    "would follow the group's width, not each bin's)",
  )
  need(
    isinstance(m.scan_unroll, int) and m.scan_unroll >= 1,
    f"model.scan_unroll: must be an int >= 1, got {m.scan_unroll!r}",
  )
  sat = c.saturation
  need(0 < sat.min <= sat.start <= sat.max, "saturation: need 0 < min <= start <= max")
  need(
    m.conv_impl in cgru.CONV_IMPLS,
    f"model.conv_impl: must be one of {cgru.CONV_IMPLS}, got {m.conv_impl!r}",
  )
  need(
    isinstance(c.relax.copies, int) and c.relax.copies >= 1,
    f"relax.copies: must be an int >= 1, got {c.relax.copies!r}",
  )
  need(
    c.relax.pull_start >= 0
    and c.relax.pull_factor >= 1.0
    and c.relax.pull_max >= c.relax.pull_start,
    "relax: need pull_start >= 0, pull_factor >= 1, pull_max >= pull_start",
  )
  o = c.optim
  need(o.learning_rate > 0, f"optim.learning_rate: must be > 0, got {o.learning_rate}")
  need(o.adam_eps > 0, f"optim.adam_eps: must be > 0, got {o.adam_eps}")
  need(o.clip_norm > 0, f"optim.clip_norm: must be > 0, got {o.clip_norm}")
  need(0 < o.lr_decay <= 1, f"optim.lr_decay: must be in (0, 1], got {o.lr_decay}")
  need(o.noise_scale >= 0, f"optim.noise_scale: must be >= 0, got {o.noise_scale}")
  need(0 <= o.ema_decay < 1, f"optim.ema_decay: must be in [0, 1), got {o.ema_decay}")
  buckets = tuple(c.buckets)
  need(
    len(buckets) > 0 and all(isinstance(b, int) and b > 0 for b in buckets),
    f"buckets: must be positive ints, got {buckets!r}",
  )
  if c.task in tasks.TASKS:
    need(
      cur.min_length >= tasks.TASKS[c.task].min_length,
      f"curriculum.min_length: {cur.min_length} is below the shortest {c.task} problem "
      f"({tasks.TASKS[c.task].min_length})",
    )
  if cur.bin_lengths == "spread" and buckets and all(isinstance(b, int) for b in buckets):
    # The same first bin and floor as train.training_batches, so no config passed here fails
    # at its first step.
    first_bin = data.all_bucket_lengths(buckets, cur.max_length)[0]
    floor = max(cur.min_length, tasks.TASKS[c.task].min_length if c.task in tasks.TASKS else 0)
    need(
      floor <= first_bin,
      f"curriculum.bin_lengths: spread draws from curriculum.min_length={floor} up, "
      f"which must not exceed the first bin {first_bin}",
    )
  need(
    cur.min_length <= cur.start_length <= cur.max_length,
    f"curriculum: need min_length <= start_length <= max_length, got "
    f"{cur.min_length}, {cur.start_length}, {cur.max_length}",
  )
  if buckets and all(isinstance(b, int) for b in buckets):
    need(
      cur.max_length <= max(buckets),
      f"curriculum.max_length: {cur.max_length} is above the largest bucket {max(buckets)}",
    )
  need(0 < cur.threshold <= 1, f"curriculum.threshold: must be in (0, 1], got {cur.threshold}")
  need(
    isinstance(cur.window, int) and cur.window > 0,
    f"curriculum.window: must be a positive int, got {cur.window!r}",
  )
  need(
    0 <= cur.p_recent <= 1 and 0 <= cur.p_full <= 1,
    "curriculum: p_recent and p_full must be probabilities",
  )
  need(
    isinstance(c.eval.far_every, int)
    and c.eval.far_every > 0
    and (not c.eval.far_lengths or c.eval.far_every % max(int(c.eval.every), 1) == 0),
    f"eval.far_every: must be a positive multiple of eval.every={c.eval.every}, got "
    f"{c.eval.far_every!r}",
  )
  for group, field in (("eval", "lengths"), ("eval", "far_lengths"), ("final_eval", "lengths")):
    lengths = tuple(c[group][field])
    need(
      all(isinstance(n, int) and n >= cur.min_length for n in lengths),
      f"{group}.{field}: must be ints >= curriculum.min_length, got {lengths!r}",
    )
    need(c[group].examples > 0, f"{group}.examples: must be positive")
  need(c.eval.batch_size > 0, "eval.batch_size: must be positive")
  need(
    isinstance(c.eval.far_examples, int) and c.eval.far_examples >= 0,
    f"eval.far_examples: must be a whole number >= 0 (0: eval.examples), got "
    f"{c.eval.far_examples!r}",
  )
  need(
    0.0 <= c.eval.far_gate <= 1.0,
    f"eval.far_gate: must be a sequence error in [0, 1], got {c.eval.far_gate!r}",
  )
  reach = c.eval.reach_length
  need(
    isinstance(reach, int) and (reach == 0 or (reach >= 5 and reach % 2 == 1)),
    f"eval.reach_length: must be 0 (off) or an odd length >= 5 (operands of two digits or "
    f"more), got {reach!r}",
  )
  need(
    not reach or carry_runs.is_sum(c.task),
    f"eval.reach_length: the reach of carries is measured on sums (badd, qadd, add), not "
    f"{c.task!r}",
  )
  need(
    isinstance(c.eval.reach_examples, int) and c.eval.reach_examples > 0,
    f"eval.reach_examples: must be a positive whole number, got {c.eval.reach_examples!r}",
  )
  need(c.max_train_minutes >= 0, f"max_train_minutes: must be >= 0, got {c.max_train_minutes}")
  need(
    c.precision in PRECISIONS,
    f"precision: must be one of {', '.join(PRECISIONS)}, got {c.precision!r}",
  )
  long_lengths = tuple(c.final_eval.long_lengths)
  need(
    all(isinstance(n, int) and n >= cur.min_length for n in long_lengths),
    f"final_eval.long_lengths: must be ints >= curriculum.min_length, got {long_lengths!r}",
  )
  need(c.final_eval.long_examples > 0, "final_eval.long_examples: must be positive")
  need(c.final_eval.check_batch_size > 0, "final_eval.check_batch_size: must be positive")
  need(c.final_eval.probe_examples >= 0, "final_eval.probe_examples: must be >= 0")
  need(c.eval.every > 0, "eval.every: must be positive")
  if errors:
    raise ValueError("invalid config:\n  " + "\n  ".join(errors))
