"""Relaxation penalty and averaging; the Neural GPU gradient-noise transform."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from ngpu_jax import model, optim, relax


def test_penalty_zero_when_copies_equal_and_positive_otherwise():
  params = model.init(jax.random.key(0), n_symbols=5, n_classes=5, maps=4, layers=2, relax_copies=6)
  assert float(relax.penalty(params["steps"])) == pytest.approx(0.0, abs=1e-9)
  steps = jax.tree.map(lambda a: a.at[2].add(0.1), params["steps"])
  n = sum(a[0].size for a in jax.tree.leaves(steps))
  # One copy off by 0.1 everywhere: its deviation is 0.1 * 5/6, the others' 0.1/6.
  want = n * (0.1 * 5 / 6) ** 2 + 5 * n * (0.1 / 6) ** 2
  assert float(relax.penalty(steps)) == pytest.approx(want, rel=1e-4)


def test_average_replaces_every_copy_by_the_mean():
  params = model.init(jax.random.key(0), n_symbols=5, n_classes=5, maps=4, layers=1, relax_copies=3)
  steps = jax.tree.map(lambda a: a + jnp.arange(3.0).reshape((3,) + (1,) * (a.ndim - 1)), params["steps"])
  avg = relax.average({**params, "steps": steps})
  for a, b in zip(jax.tree.leaves(avg["steps"]), jax.tree.leaves(steps)):
    np.testing.assert_allclose(a[0], b.mean(0), rtol=1e-6)
    np.testing.assert_array_equal(a[0], a[2])
  assert float(relax.penalty(avg["steps"])) == pytest.approx(0.0, abs=1e-6)
  np.testing.assert_array_equal(avg["embed"], params["embed"])  # only the step copies move


def test_noise_std_schedule():
  assert float(optim.noise_std(1.0, 0.5, 0)) == pytest.approx(np.sqrt(0.5))
  assert float(optim.noise_std(2.0, 0.5, 99)) == pytest.approx(2.0 * np.sqrt(0.5 / 100**0.55))
  assert float(optim.noise_std(1.0, 0.019, 0)) == 0.0  # below 2% error: no noise
  assert float(optim.noise_std(1.0, 0.02, 0)) > 0.0


def test_noise_transform_variance_and_off_switch():
  g = {"w": jnp.zeros((200_000,))}
  tx = optim.neural_gpu_noise(scale=1.0, seed=3)
  state = tx.init(g)
  out, state = tx.update(g, state, seq_error=0.25)
  # Truncated at 2 std, the std of a unit normal shrinks to ~0.880.
  assert float(jnp.std(out["w"])) == pytest.approx(0.5 * 0.8796, rel=0.02)
  assert float(jnp.max(jnp.abs(out["w"]))) <= 2 * 0.5 + 1e-6
  for _ in range(8):
    out, state = tx.update(g, state, seq_error=0.25)
  assert int(state.count) == 9
  assert float(jnp.std(out["w"])) == pytest.approx(0.5 * 0.8796 / 9**0.275, rel=0.02)
  quiet, _ = tx.update(g, state, seq_error=0.01)
  np.testing.assert_array_equal(quiet["w"], 0.0)


def test_optimizer_chain_clips_then_noises_and_decays_lr():
  params = {"w": jnp.ones((4,))}
  tx = optim.make_optimizer(learning_rate=1e-3, adam_eps=1e-4, clip_norm=1.0, noise_scale=0.0)
  state = tx.init(params)
  assert float(optim.get_learning_rate(state)) == pytest.approx(1e-3)
  state = optim.set_learning_rate(state, 0.5e-3)
  updates, state = tx.update({"w": jnp.full((4,), 100.0)}, state, params, seq_error=1.0)
  # Adam's first step is lr * g / (|g| + eps) per element, whatever the clipped size.
  np.testing.assert_allclose(updates["w"], -0.5e-3 * 0.5 / (0.5 + 1e-4), rtol=1e-5)
  noisy = optim.make_optimizer(learning_rate=1e-3, adam_eps=1e-4, clip_norm=1.0, noise_scale=1.0)
  assert len(noisy.init(params)) == 3  # clip, noise, adam
  assert isinstance(noisy, optax.GradientTransformationExtraArgs)
