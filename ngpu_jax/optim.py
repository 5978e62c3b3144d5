"""The optimizer chain: clip -> Neural GPU gradient noise -> Adam (or AdaMax) [-> params EMA].

Also the DNGPU's optimizer ('clipped_adamax'): AdaMax whose gradients are
clipped per element against the running infinity norm, with a beta2 warm-up.

The learning rate lives in the Adam state (optax.inject_hyperparams) so the
decay rule of the reference (x0.98 when the loss gets worse) is a checkpointed
state change rather than a schedule function of the step.
"""

from typing import NamedTuple

import jax
import jax.numpy as jnp
import optax

# The reference adds no noise once the recent training sequence error is below 2%.
NOISE_ERROR_THRESHOLD = 0.02
NOISE_DECAY = 0.55


class NoiseState(NamedTuple):
  count: jax.Array  # updates seen, for the (t + 1)^-0.55 annealing
  key: jax.Array  # in the state, not a closure: donated buffers would delete it


def noise_std(scale, seq_error, count, *, decay=NOISE_DECAY, threshold=NOISE_ERROR_THRESHOLD):
  """scale * sqrt(seq_error / (t + 1)^decay), and 0 when seq_error < threshold."""
  std = scale * jnp.sqrt(jnp.maximum(seq_error, 0.0) / jnp.power(count + 1.0, decay))
  return jnp.where(seq_error < threshold, 0.0, std)


NOISE_KINDS = ("error_scaled", "lr_scaled")


def neural_gpu_noise(
  scale: float,
  seed: int = 0,
  *,
  kind: str = "error_scaled",
  decay: float = NOISE_DECAY,
  threshold: float = NOISE_ERROR_THRESHOLD,
) -> optax.GradientTransformationExtraArgs:
  """Adds truncated-normal noise (cut at 2 std) to the gradients.

  kind 'error_scaled' (the paper): std = noise_std(scale, seq_error, t), from the
  extra argument `seq_error`, the recent training sequence error. Unlike
  optax.add_noise, the variance follows the error, so a model that has learned
  its task is left alone. kind 'lr_scaled' (the DNGPU): std = scale * the extra
  argument `learning_rate`, so the noise shrinks as the rate decays.
  """
  if kind not in NOISE_KINDS:
    raise ValueError(f"unknown noise kind {kind!r}; known: {NOISE_KINDS}")

  def init_fn(params):
    del params
    return NoiseState(count=jnp.zeros((), jnp.int32), key=jax.random.key(seed))

  def update_fn(updates, state, params=None, *, seq_error=1.0, learning_rate=1.0, **extra_args):
    del params, extra_args
    if kind == "lr_scaled":
      std = scale * jnp.asarray(learning_rate, jnp.float32)
    else:
      std = noise_std(
        scale, jnp.asarray(seq_error, jnp.float32), state.count, decay=decay, threshold=threshold
      )
    leaves, treedef = jax.tree.flatten(updates)
    key, sub = jax.random.split(state.key)
    keys = jax.random.split(sub, len(leaves))
    noisy = [
      g + std * jax.random.truncated_normal(k, -2.0, 2.0, g.shape, g.dtype)
      for g, k in zip(leaves, keys)
    ]
    return jax.tree.unflatten(treedef, noisy), NoiseState(state.count + 1, key)

  return optax.GradientTransformationExtraArgs(init_fn, update_fn)


class ClippedAdamaxState(NamedTuple):
  count: jax.Array
  mu: optax.Updates  # first moment (no bias correction, as in the DNGPU)
  nu: optax.Updates  # running infinity norm: max(b2 * nu, |g|)


def dngpu_b2(count, *, start_gap: float = 0.01, min_gap: float = 5e-4, halflife: float = 2000.0):
  """1 - max(min_gap, start_gap * 0.5^(t / halflife)): 0.99 at first, 0.9995 from ~9k steps."""
  return 1.0 - jnp.maximum(min_gap, start_gap * jnp.power(0.5, count / halflife))


def scale_by_clipped_adamax(
  b1: float = 0.9, eps: float = 1e-8, clip_multiplier: float = 1.2, clip_epsilon: float = 1e-4
) -> optax.GradientTransformation:
  """AdaMax direction, each gradient element first clipped to +-(1.2 * nu + 1e-4).

  The clip bound follows the element's own running maximum, so a sudden spike
  in one weight's gradient is cut without touching the others (no global norm).
  """

  def init_fn(params):
    zeros = jax.tree.map(jnp.zeros_like, params)
    return ClippedAdamaxState(count=jnp.zeros((), jnp.int32), mu=zeros, nu=zeros)

  def update_fn(updates, state, params=None):
    del params
    b2 = dngpu_b2(state.count.astype(jnp.float32))
    bound = jax.tree.map(lambda nu: nu * clip_multiplier + clip_epsilon, state.nu)
    g = jax.tree.map(lambda g, c: jnp.clip(g, -c, c), updates, bound)
    mu = jax.tree.map(lambda m, g: b1 * m + (1.0 - b1) * g, state.mu, g)
    nu = jax.tree.map(lambda n, g: jnp.maximum(b2 * n, jnp.abs(g)), state.nu, g)
    direction = jax.tree.map(lambda m, n: m / (n + eps), mu, nu)
    return direction, ClippedAdamaxState(state.count + 1, mu, nu)

  return optax.GradientTransformation(init_fn, update_fn)


def clipped_adamax(learning_rate: float, eps: float = 1e-8) -> optax.GradientTransformation:
  return optax.chain(scale_by_clipped_adamax(eps=eps), optax.scale_by_learning_rate(learning_rate))


class ParamsEmaState(NamedTuple):
  count: jax.Array  # updates seen, for the warm-up of the decay
  ema: optax.Params  # the moving average of the parameters after each update


def ema_rate(decay: float, count):
  """min(decay, (1 + t) / (10 + t)): early averages do not hold on to the initial parameters."""
  return jnp.minimum(decay, (1.0 + count) / (10.0 + count))


def params_ema(decay: float) -> optax.GradientTransformation:
  """Keeps a moving average of the parameters in the optimizer state; updates pass unchanged.

  Last in the chain, so it sees the final updates. Living in the optimizer state, the
  average is checkpointed, sharded and resumed like the Adam moments.
  """

  def init_fn(params):
    return ParamsEmaState(count=jnp.zeros((), jnp.int32), ema=jax.tree.map(jnp.array, params))

  def update_fn(updates, state, params=None):
    if params is None:
      raise ValueError("params_ema: update needs the current params")
    rate = ema_rate(decay, state.count.astype(jnp.float32))
    ema = optax.incremental_update(optax.apply_updates(params, updates), state.ema, 1.0 - rate)
    return updates, ParamsEmaState(state.count + 1, ema)

  return optax.GradientTransformation(init_fn, update_fn)


def averaged_params(opt_state, params):
  """The moving average kept by params_ema, or params when the chain keeps none."""
  is_ema = lambda s: isinstance(s, ParamsEmaState)
  found = [s.ema for s in jax.tree.leaves(opt_state, is_leaf=is_ema) if is_ema(s)]
  return found[0] if found else params


def map_averaged_params(opt_state, fn):
  """opt_state with fn applied to the moving average of params_ema (unchanged if none)."""
  is_ema = lambda s: isinstance(s, ParamsEmaState)
  return jax.tree.map(
    lambda s: s._replace(ema=fn(s.ema)) if is_ema(s) else s, opt_state, is_leaf=is_ema
  )


OPTIMIZERS = {"adam": optax.adam, "adamax": optax.adamax, "clipped_adamax": clipped_adamax}
CLIP_MODES = ("global_norm", "element", "none")


def make_optimizer(
  *,
  learning_rate: float,
  adam_eps: float,
  clip_norm: float,
  noise_scale: float,
  noise_kind: str = "error_scaled",
  seed: int = 0,
  name: str = "adam",
  clip_mode: str = "global_norm",
  ema_decay: float = 0.0,
) -> optax.GradientTransformationExtraArgs:
  """clip -> noise (if noise_scale > 0) -> Adam (or AdaMax) with an injectable learning rate
  -> a moving average of the parameters (if ema_decay > 0)."""
  parts = []
  if clip_mode == "global_norm":
    parts.append(optax.clip_by_global_norm(clip_norm))
  elif clip_mode == "element":
    parts.append(optax.clip(clip_norm))
  if noise_scale > 0:
    parts.append(neural_gpu_noise(noise_scale, seed, kind=noise_kind))  # after clipping
  parts.append(
    optax.inject_hyperparams(OPTIMIZERS[name])(learning_rate=learning_rate, eps=adam_eps)
  )
  if ema_decay > 0:
    parts.append(params_ema(ema_decay))
  return optax.chain(*parts)


def get_learning_rate(opt_state) -> jax.Array:
  return optax.tree_utils.tree_get(opt_state, "learning_rate")


def set_learning_rate(opt_state, learning_rate):
  return optax.tree_utils.tree_set(opt_state, learning_rate=jnp.asarray(learning_rate, jnp.float32))
