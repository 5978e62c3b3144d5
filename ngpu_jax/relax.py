"""Parameter-sharing relaxation: R copies of the step parameters pulled together.

Step t of the recurrence uses copy t % R (see model.apply). The penalty
pull * sum_k ||theta_k - mean(theta)||^2 lets the copies differ early in
training; the pull grows on a schedule (see schedule.py) until the copies are
finally replaced by their mean, which leaves a model with one shared step.
"""

import jax
import jax.numpy as jnp


def penalty(steps: dict) -> jax.Array:
  """sum over copies and leaves of ||theta_k - mean(theta)||^2 (zero when copies agree)."""

  def one(a_RxD):
    return jnp.sum(jnp.square(a_RxD - jnp.mean(a_RxD, axis=0, keepdims=True)))

  return sum(jax.tree.leaves(jax.tree.map(one, steps)))


def average(params: dict) -> dict:
  """params with every relaxation copy replaced by the copies' mean."""
  steps = jax.tree.map(
    lambda a: jnp.broadcast_to(jnp.mean(a, axis=0, keepdims=True), a.shape), params["steps"]
  )
  return {**params, "steps": steps}


def shared_view(params: dict) -> dict:
  """params with a single copy (the mean): what a fully relaxed model computes."""
  return {
    **params,
    "steps": jax.tree.map(lambda a: jnp.mean(a, axis=0, keepdims=True), params["steps"]),
  }
