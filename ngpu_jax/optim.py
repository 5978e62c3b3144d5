"""The optimizer chain: clip -> Neural GPU gradient noise -> Adam (or AdaMax).

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
  key: jax.Array    # in the state, not a closure: donated buffers would delete it


def noise_std(scale, seq_error, count, *, decay=NOISE_DECAY, threshold=NOISE_ERROR_THRESHOLD):
  """scale * sqrt(seq_error / (t + 1)^decay), and 0 when seq_error < threshold."""
  std = scale * jnp.sqrt(jnp.maximum(seq_error, 0.0) / jnp.power(count + 1.0, decay))
  return jnp.where(seq_error < threshold, 0.0, std)


def neural_gpu_noise(scale: float, seed: int = 0, *, decay: float = NOISE_DECAY,
                     threshold: float = NOISE_ERROR_THRESHOLD
                     ) -> optax.GradientTransformationExtraArgs:
  """Adds truncated-normal noise (cut at 2 std) scaled by the training error.

  The update takes the extra argument `seq_error`: the recent training sequence
  error (a scalar). Unlike optax.add_noise, the variance follows the error, so
  a model that has learned its task is left alone.
  """

  def init_fn(params):
    del params
    return NoiseState(count=jnp.zeros((), jnp.int32), key=jax.random.key(seed))

  def update_fn(updates, state, params=None, *, seq_error=1.0, **extra_args):
    del params, extra_args
    std = noise_std(scale, jnp.asarray(seq_error, jnp.float32), state.count,
                    decay=decay, threshold=threshold)
    leaves, treedef = jax.tree.flatten(updates)
    key, sub = jax.random.split(state.key)
    keys = jax.random.split(sub, len(leaves))
    noisy = [g + std * jax.random.truncated_normal(k, -2.0, 2.0, g.shape, g.dtype)
             for g, k in zip(leaves, keys)]
    return jax.tree.unflatten(treedef, noisy), NoiseState(state.count + 1, key)

  return optax.GradientTransformationExtraArgs(init_fn, update_fn)


def make_optimizer(*, learning_rate: float, adam_eps: float, clip_norm: float,
                   noise_scale: float, seed: int = 0, name: str = "adam",
                   clip_mode: str = "global_norm") -> optax.GradientTransformationExtraArgs:
  """clip -> noise (if noise_scale > 0) -> Adam (or AdaMax) with an injectable learning rate."""
  clip = optax.clip_by_global_norm if clip_mode == "global_norm" else optax.clip
  parts = [clip(clip_norm)]
  if noise_scale > 0:
    parts.append(neural_gpu_noise(noise_scale, seed))  # after clipping, as the paper says
  scale = {"adam": optax.adam, "adamax": optax.adamax}[name]
  parts.append(optax.inject_hyperparams(scale)(learning_rate=learning_rate, eps=adam_eps))
  return optax.chain(*parts)


def get_learning_rate(opt_state) -> jax.Array:
  return optax.tree_utils.tree_get(opt_state, "learning_rate")


def set_learning_rate(opt_state, learning_rate):
  return optax.tree_utils.tree_set(
      opt_state, learning_rate=jnp.asarray(learning_rate, jnp.float32))
