"""Jitted functions of a run: init, train step, eval step, window adjustments.

Each is compiled once per input width (bucket) with params replicated and the
batch split over the mesh's 'data' axis.
"""

import os

import jax
import jax.numpy as jnp
import ml_collections
import optax
from flax import struct

from ngpu_jax import data, model, optim, parallel, relax, tasks


def enable_compilation_cache(path: str) -> None:
  """Persistent XLA cache: a second launch of the same config skips compilation."""
  if path:
    jax.config.update("jax_compilation_cache_dir", os.path.expanduser(path))
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.5)


class TrainState(struct.PyTreeNode):
  step: jax.Array
  params: model.Params
  opt_state: optax.OptState


def make_optimizer(config: ml_collections.ConfigDict) -> optax.GradientTransformationExtraArgs:
  o = config.optim
  return optim.make_optimizer(
    learning_rate=o.learning_rate,
    adam_eps=o.adam_eps,
    clip_norm=o.clip_norm,
    noise_scale=o.noise_scale,
    noise_kind=o.noise_kind,
    seed=config.seed + 1,
    name=o.name,
    clip_mode=o.clip_mode,
    ema_decay=o.ema_decay,
  )


def eval_params(state: TrainState) -> model.Params:
  """The parameters that evaluation, export and predict use: the moving average if kept."""
  return optim.averaged_params(state.opt_state, state.params)


def init_params(config: ml_collections.ConfigDict, task: tasks.Task) -> model.Params:
  """Fresh parameters; for model.ensemble = K, K models' stacked on a leading axis."""
  if config.model.ensemble > 1:
    single = config.copy_and_resolve_references()
    single.model.ensemble = 1
    keys = jax.random.split(jax.random.key(config.seed), config.model.ensemble)
    return jax.vmap(lambda k: _init_one(single, task, k))(keys)
  return _init_one(config, task, jax.random.key(config.seed))


def _init_one(config, task, key) -> model.Params:
  return model.init(
    key,
    n_symbols=task.n_symbols,
    n_classes=task.n_classes,
    maps=config.model.maps,
    layers=config.model.layers,
    relax_copies=config.relax.copies,
    kernel_rows=3 if config.model.rows > 1 else 1,
    kernel_scale=config.model.kernel_init_scale,
    relax_init=config.relax.init,
    input_path=config.model.input_path,
  )


def init_state(config, task, optimizer, mesh, params=None) -> TrainState:
  """The step-0 state, created directly with replicated sharding; params: given ones instead
  of fresh random ones (the parameter average, if kept, starts from them too)."""

  def init(params):
    params = init_params(config, task) if params is None else params
    return TrainState(
      step=jnp.zeros((), jnp.int32), params=params, opt_state=optimizer.init(params)
    )

  return jax.jit(init, out_shardings=parallel.replicated(mesh))(params)


def abstract_state(config, task, optimizer, mesh) -> TrainState:
  """Shapes and shardings of the state, without computing it (a restore target)."""
  shapes = jax.eval_shape(
    lambda: TrainState(
      step=jnp.zeros((), jnp.int32),
      params=init_params(config, task),
      opt_state=optimizer.init(init_params(config, task)),
    )
  )
  repl = parallel.replicated(mesh)
  return jax.tree.map(lambda s: jax.ShapeDtypeStruct(s.shape, s.dtype, sharding=repl), shapes)


def layout_before_ema(config, task, optimizer, mesh):
  """(abstract state, upgrade) of a checkpoint saved before optim.ema_decay was turned on,
  or None when this config keeps no moving average (a Checkpointer.restore `older`).

  upgrade keeps the restored Adam moments and starts the average from the restored
  parameters, so a run can be forked from a checkpoint with the average on. Its warm-up
  counts from the run's step 0: it is there to forget random initial parameters, and a
  fork's are trained, so the average of a late fork runs at the full decay at once.
  """
  if config.optim.ema_decay <= 0:
    return None
  plain = config.copy_and_resolve_references()
  plain.optim.ema_decay = 0.0

  def upgrade(state: TrainState) -> TrainState:
    def add(state):
      ema_state = optimizer.init(state.params)[-1]  # params_ema is last in the chain
      ema_state = ema_state._replace(count=state.step.astype(ema_state.count.dtype))
      return state.replace(opt_state=(*state.opt_state, ema_state))

    return jax.jit(add, out_shardings=parallel.replicated(mesh))(state)

  return abstract_state(plain, task, make_optimizer(plain), mesh), upgrade


def _forward(config, params, x_BxW, n_B, dropout_key=None, train=False, width=None):
  apply = lambda p: model.apply(
    p,
    x_BxW,
    n_B,
    model.Spec.from_config(config),
    train=train,
    dropout_key=dropout_key,
    width=width,
  )
  if config.model.ensemble == 1:
    return apply(params)
  if resolve_pack_mode("auto") == "vmap":
    out_K = jax.vmap(apply)(params)
  else:  # on CPU one member after another: the same work, a Kth of the memory
    out_K = jax.lax.map(apply, params)
  # The members vote with their probabilities: log of their mean, so that argmax, loss and
  # error counts read it as one model's logits.
  logp_KxBxWxC = jax.nn.log_softmax(out_K.logits_BxWxC, axis=-1)
  logits_BxWxC = jax.nn.logsumexp(logp_KxBxWxC, axis=0) - jnp.log(config.model.ensemble)
  return out_K._replace(logits_BxWxC=logits_BxWxC, saturation=jnp.mean(out_K.saturation))


def scored_targets(config, y_BxW, n_B):
  """zero_pad_targets: blanks inside each problem's own length become '0' digits, the way
  the DNGPU writes bmul answers (the number, then zeros to the problem's length)."""
  if not config.zero_pad_targets:
    return y_BxW
  inside_BxW = jnp.arange(y_BxW.shape[1])[None, :] < n_B[:, None]
  return jnp.where(inside_BxW & (y_BxW == tasks.PAD), tasks.digit_symbol(0), y_BxW)


def computing_lengths(config, x_BxW, y_BxW, n_B):
  """The columns the model computes on: n_B, or under readout 'final_masked' each problem's
  columns up to the last that holds an input or a target symbol (the DNGPU's mask is 1 where
  either is not blank). So an even-length badd problem, whose last column is blank in both,
  computes as the odd-length problem it is, and a duplicate keeps its answer's columns."""
  if config.model.readout != "final_masked":
    return n_B
  w = x_BxW.shape[1]
  col_BxW = jnp.arange(w)[None, :] + 1
  used_BxW = ((x_BxW != tasks.PAD) | (y_BxW != tasks.PAD)) & (col_BxW <= n_B[:, None])
  last_B = jnp.max(jnp.where(used_BxW, col_BxW, 0), axis=1)
  return jnp.where(n_B > 0, jnp.maximum(last_B, 1), 0).astype(n_B.dtype)


def _scored(config, n_B, width):
  """The lengths that decide which columns are scored (all of the width for readout 'final')."""
  return model.readout_lengths(n_B, width, config.model.readout)


def bin_layout(config) -> list[list[int]] | None:
  """The bins of 'all_buckets' mode as packed groups (widths), or None in the paper's mode."""
  cur = config.curriculum
  if cur.mode != "all_buckets":
    return None
  return data.bin_groups(data.all_bucket_lengths(config.buckets, cur.max_length), cur.bin_groups)


def train_step_fn(config, optimizer):
  """The pure update of one run: (state, batches, pull, seq_error, sat_weight, base_key,
  width) -> (state, metrics).

  batches is a tuple of (x_BxW, y_BxW, n_B): one batch in the paper's curriculum; in
  'all_buckets' mode one per group of bin_layout(config), each the group's bins stacked
  (data.pack). The loss is the mean of the bins' losses, each over its own width, as the
  DNGPU averages its bins. width: the curriculum batch's own width when it is padded wider
  (packed seeds), else None. The dropout key of a step is fold_in(base_key, step).
  """
  use_relax = config.relax.copies > 1
  use_sat = bool(config.saturation.enabled)
  layout = bin_layout(config)

  def loss_fn(params, batches, pull, sat_weight, dropout_key, width):
    loss, sat, metrics = 0.0, 0.0, []
    for i, (x_BxW, y_BxW, n_B) in enumerate(batches):
      key = dropout_key if i == 0 else jax.random.fold_in(dropout_key, i)
      y_BxW = scored_targets(config, y_BxW, n_B)
      active_B = computing_lengths(config, x_BxW, y_BxW, n_B)
      if layout is None:  # one curriculum batch, perhaps padded past its width
        out = _forward(config, params, x_BxW, active_B, key, train=True, width=width)
        own_w = x_BxW.shape[1] if width is None else width
        loss_i, metrics_i = model.loss_and_metrics(
          out.logits_BxWxC, y_BxW, _scored(config, n_B, own_w), width=width
        )
        loss, metrics = loss + loss_i, metrics + [metrics_i]
        sat = sat + out.saturation
        continue
      out = _forward(config, params, x_BxW, active_B, key, train=True)
      logits = out.logits_BxWxC
      widths = layout[i]
      rows = x_BxW.shape[0] // len(widths)
      for j, w in enumerate(widths):
        r = slice(j * rows, (j + 1) * rows)
        loss_j, metrics_j = model.loss_and_metrics(
          logits[r, :w], y_BxW[r, :w], _scored(config, n_B[r], w)
        )
        loss, metrics = loss + loss_j, metrics + [metrics_j]
      sat = sat + out.saturation * len(widths)
    loss, sat = loss / len(metrics), sat / len(metrics)
    total = loss
    if use_relax:
      total = total + pull * relax.penalty(params["steps"])
    if use_sat:
      total = total + sat_weight * sat
    metrics = jax.tree.map(lambda *a: sum(a), *metrics)
    return total, (loss, sat if use_sat else 0.0, metrics)

  def train_step(state, batches, pull, seq_error, sat_weight, base_key, width=None):
    dropout_key = jax.random.fold_in(base_key, state.step)
    grads, (loss, sat, metrics) = jax.grad(loss_fn, has_aux=True)(
      state.params, batches, pull, sat_weight, dropout_key, width
    )
    updates, opt_state = optimizer.update(
      grads,
      state.opt_state,
      state.params,
      seq_error=seq_error,
      learning_rate=optim.get_learning_rate(state.opt_state),
    )
    params = optax.apply_updates(state.params, updates)
    metrics = {
      **metrics,
      "loss": loss,
      "saturation": jnp.asarray(sat, jnp.float32),
      "grad_norm": optax.tree.norm(grads),
      "step": state.step,
    }
    return TrainState(state.step + 1, params, opt_state), metrics

  return train_step


def dropout_base_key(seed: int) -> jax.Array:
  return jax.random.key(seed + 2)


def make_train_step(config, optimizer, mesh):
  """(state, batches, pull, seq_error, sat_weight) -> (state, metrics), jitted: train_step_fn
  with the run's own dropout key, params replicated and the batches split over the mesh."""
  step = train_step_fn(config, optimizer)
  base_key = dropout_base_key(config.seed)

  def train_step(state, batches, pull, seq_error, sat_weight):
    return step(state, batches, pull, seq_error, sat_weight, base_key)

  repl, data = parallel.replicated(mesh), parallel.data_sharded(mesh)
  return jax.jit(
    train_step,
    in_shardings=(repl, data, repl, repl, repl),
    out_shardings=(repl, repl),
    donate_argnums=0,
  )


PACK_MODES = ("auto", "vmap", "map")


def resolve_pack_mode(mode: str) -> str:
  """'auto': vmap on accelerators, where one seed's step leaves the chip idle and S stacked
  seeds cost little more; map (a loop over the seeds inside the program) on CPU, where the
  step is compute-bound and vmap turns each seed's convolution into a grouped one that XLA:CPU
  runs several times slower."""
  if mode not in PACK_MODES:
    raise ValueError(f"unknown pack mode {mode!r}; known: {PACK_MODES}")
  if mode == "auto":
    return "map" if jax.default_backend() == "cpu" else "vmap"
  return mode


def make_packed_train_step(config, optimizer, mesh, mode: str = "auto"):
  """S runs that differ only in their seed, in one program: train_step_fn under vmap (or
  lax.map, see resolve_pack_mode).

  (state_S, batches_S, pull_S, seq_error_S, sat_weight_S, base_key_S, width_S, active_S) ->
  (state_S, metrics_S): every leaf carries a leading seed axis S, the batches' rows are split
  over the mesh (axis 1). A run with active False keeps its state (it has finished). width_S
  is each run's own curriculum width, its batch padded to the widest of the pack.
  """
  step = train_step_fn(config, optimizer)
  curriculum = bin_layout(config) is None

  def one(state, batches, pull, seq_error, sat_weight, base_key, width, active):
    new, metrics = step(
      state, batches, pull, seq_error, sat_weight, base_key, width if curriculum else None
    )
    kept = jax.tree.map(lambda a, b: jnp.where(active, a, b), new, state)
    return kept, metrics

  if resolve_pack_mode(mode) == "vmap":
    packed = jax.vmap(one)
  else:
    packed = lambda *args: jax.lax.map(lambda a: one(*a), args)
  repl, data = parallel.replicated(mesh), parallel.seed_data_sharded(mesh)
  return jax.jit(
    packed,
    in_shardings=(repl, data, repl, repl, repl, repl, repl, repl),
    out_shardings=(repl, repl),
    donate_argnums=0,
  )


def make_eval_step(
  config, mesh, dropout_seed: int | None = None, answers: bool = False, held: bool = False
):
  """(params, x_BxW, y_BxW, n_B) -> summed error counts of the batch.

  dropout_seed: score with the training's dropout on (masks drawn from this seed and the
  batch's symbols, so every batch gets its own), to measure how much a model leans on it.
  answers: also return the answers the counts come from, pred_BxW and target_BxW (the scored
  target; pred equals it in the columns that are not scored), so a diagnosis of where the
  errors sit needs no second pass.
  held: run every problem for all W steps and read it after the last (readout 'final_masked':
  the columns past its own stay empty), its own n_B columns scored, whatever the config's
  readout. Whether a model keeps an answer once it has computed it: the DNGPU's bins ask for
  that, the paper's own-length readout does not. With W = n_B it is the ordinary evaluation
  of an own-length model; evaluation.evaluate_lengths(extra_columns=E) gives W = n_B + E.
  """
  run = config
  if held:
    run = config.copy_and_resolve_references()
    run.model.readout = "final_masked"

  def eval_step(params, x_BxW, y_BxW, n_B):
    y_BxW = scored_targets(config, y_BxW, n_B)
    active_B = computing_lengths(run, x_BxW, y_BxW, n_B)
    key, train = None, dropout_seed is not None
    if train:
      weights_BxW = jnp.arange(1, x_BxW.size + 1, dtype=jnp.uint32).reshape(x_BxW.shape)
      key = jax.random.fold_in(
        jax.random.key(dropout_seed), jnp.sum(x_BxW.astype(jnp.uint32) * weights_BxW)
      )
    logits = _forward(run, params, x_BxW, active_B, key, train=train).logits_BxWxC
    scored_B = n_B if held else _scored(config, n_B, x_BxW.shape[1])
    metrics = model.loss_and_metrics(logits, y_BxW, scored_B)[1]
    if not answers:
      return metrics
    in_BxW = jnp.arange(x_BxW.shape[1])[None, :] < scored_B[:, None]
    pred_BxW = jnp.where(in_BxW, jnp.argmax(logits, axis=-1).astype(y_BxW.dtype), y_BxW)
    return {**metrics, "pred_BxW": pred_BxW, "target_BxW": y_BxW}

  repl, data = parallel.replicated(mesh), parallel.data_sharded(mesh)
  return jax.jit(eval_step, in_shardings=(repl, data, data, data), out_shardings=repl)


def make_predict_step(config, mesh):
  """(params, x_BxW, n_B) -> predicted symbols y_BxW. With no target to read, every column of
  a problem's own length computes (for readout 'final_masked' too)."""

  def predict_step(params, x_BxW, n_B):
    logits = _forward(config, params, x_BxW, n_B).logits_BxWxC
    return jnp.argmax(logits, axis=-1).astype(jnp.int32)

  repl, data = parallel.replicated(mesh), parallel.data_sharded(mesh)
  return jax.jit(predict_step, in_shardings=(repl, data, data), out_shardings=repl)


def make_all_finite(mesh):
  """state -> True when every parameter and optimizer number is finite."""

  def all_finite(state):
    leaves = [a for a in jax.tree.leaves(state) if jnp.issubdtype(a.dtype, jnp.floating)]
    return jnp.all(jnp.stack([jnp.all(jnp.isfinite(a)) for a in leaves]))

  return jax.jit(
    all_finite, in_shardings=parallel.replicated(mesh), out_shardings=parallel.replicated(mesh)
  )


def make_adjust(mesh):
  """(state, average, learning_rate) -> state: the window decisions, applied on device."""

  def adjust(state, average, learning_rate):
    mean_if = lambda p: jax.tree.map(lambda a, b: jnp.where(average, a, b), relax.average(p), p)
    # The parameters' moving average is averaged with them: else evaluation would score a
    # model whose copies still differ, long after training made them one.
    opt_state = optim.map_averaged_params(state.opt_state, mean_if)
    return state.replace(
      params=mean_if(state.params), opt_state=optim.set_learning_rate(opt_state, learning_rate)
    )

  repl = parallel.replicated(mesh)
  return jax.jit(adjust, in_shardings=(repl, repl, repl), out_shardings=repl, donate_argnums=0)
