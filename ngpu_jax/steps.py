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
  return model.init(
    jax.random.key(config.seed),
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


def init_state(config, task, optimizer, mesh) -> TrainState:
  """The step-0 state, created directly with replicated sharding."""

  def init():
    params = init_params(config, task)
    return TrainState(
      step=jnp.zeros((), jnp.int32), params=params, opt_state=optimizer.init(params)
    )

  return jax.jit(init, out_shardings=parallel.replicated(mesh))()


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


def _forward(config, params, x_BxW, n_B, dropout_key=None, train=False) -> model.Output:
  return model.apply(
    params, x_BxW, n_B, model.Spec.from_config(config), train=train, dropout_key=dropout_key
  )


def scored_targets(config, y_BxW, n_B):
  """zero_pad_targets: blanks inside each problem's own length become '0' digits, the way
  the DNGPU writes bmul answers (the number, then zeros to the problem's length)."""
  if not config.zero_pad_targets:
    return y_BxW
  inside_BxW = jnp.arange(y_BxW.shape[1])[None, :] < n_B[:, None]
  return jnp.where(inside_BxW & (y_BxW == tasks.PAD), tasks.digit_symbol(0), y_BxW)


def _scored(config, n_B, width):
  """The lengths that decide which columns are scored (all of the width for readout 'final')."""
  return model.readout_lengths(n_B, width, config.model.readout)


def bin_layout(config) -> list[list[int]] | None:
  """The bins of 'all_buckets' mode as packed groups (widths), or None in the paper's mode."""
  cur = config.curriculum
  if cur.mode != "all_buckets":
    return None
  return data.bin_groups(data.all_bucket_lengths(config.buckets, cur.max_length), cur.bin_groups)


def make_train_step(config, optimizer, mesh):
  """(state, batches, pull, seq_error, sat_weight) -> (state, metrics).

  batches is a tuple of (x_BxW, y_BxW, n_B): one batch in the paper's
  curriculum; in 'all_buckets' mode one per group of bin_layout(config), each
  the group's bins stacked (data.pack). The loss is the mean of the bins' losses,
  each over its own width, as the DNGPU averages its bins.
  """
  base_key = jax.random.key(config.seed + 2)
  use_relax = config.relax.copies > 1
  use_sat = bool(config.saturation.enabled)
  layout = bin_layout(config)

  def loss_fn(params, batches, pull, sat_weight, dropout_key):
    loss, sat, metrics = 0.0, 0.0, []
    for i, (x_BxW, y_BxW, n_B) in enumerate(batches):
      key = dropout_key if i == 0 else jax.random.fold_in(dropout_key, i)
      out = _forward(config, params, x_BxW, n_B, key, train=True)
      logits = out.logits_BxWxC
      widths = layout[i] if layout is not None else [x_BxW.shape[1]]
      rows = x_BxW.shape[0] // len(widths)
      for j, w in enumerate(widths):
        r = slice(j * rows, (j + 1) * rows)
        loss_j, metrics_j = model.loss_and_metrics(
          logits[r, :w], scored_targets(config, y_BxW[r, :w], n_B[r]), _scored(config, n_B[r], w)
        )
        loss, metrics = loss + loss_j, metrics + [metrics_j]
      if use_sat:
        sat = sat + out.saturation * len(widths)
    loss, sat = loss / len(metrics), sat / len(metrics)
    total = loss
    if use_relax:
      total = total + pull * relax.penalty(params["steps"])
    if use_sat:
      total = total + sat_weight * sat
    metrics = jax.tree.map(lambda *a: sum(a), *metrics)
    return total, (loss, sat, metrics)

  def train_step(state, batches, pull, seq_error, sat_weight):
    dropout_key = jax.random.fold_in(base_key, state.step)
    grads, (loss, sat, metrics) = jax.grad(loss_fn, has_aux=True)(
      state.params, batches, pull, sat_weight, dropout_key
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

  repl, data = parallel.replicated(mesh), parallel.data_sharded(mesh)
  return jax.jit(
    train_step,
    in_shardings=(repl, data, repl, repl, repl),
    out_shardings=(repl, repl),
    donate_argnums=0,
  )


def make_eval_step(config, mesh):
  """(params, x_BxW, y_BxW, n_B) -> summed error counts of the batch."""

  def eval_step(params, x_BxW, y_BxW, n_B):
    logits = _forward(config, params, x_BxW, n_B).logits_BxWxC
    return model.loss_and_metrics(
      logits, scored_targets(config, y_BxW, n_B), _scored(config, n_B, x_BxW.shape[1])
    )[1]

  repl, data = parallel.replicated(mesh), parallel.data_sharded(mesh)
  return jax.jit(eval_step, in_shardings=(repl, data, data, data), out_shardings=repl)


def make_predict_step(config, mesh):
  """(params, x_BxW, n_B) -> predicted symbols y_BxW."""

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
