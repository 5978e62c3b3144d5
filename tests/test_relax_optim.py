"""Relaxation penalty and averaging; the Neural GPU gradient-noise transform."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from ngpu_jax import model, optim, relax, schedule


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
  steps = jax.tree.map(
    lambda a: a + jnp.arange(3.0).reshape((3,) + (1,) * (a.ndim - 1)), params["steps"]
  )
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
  # With the noise on: the gradient is clipped to norm 1, then the noise is added. adam_eps = 1
  # keeps Adam's first step, lr * g / (|g| + 1), a one-to-one function of the gradient it gets.
  noisy = optim.make_optimizer(
    learning_rate=1e-3, adam_eps=1.0, clip_norm=1.0, noise_scale=0.3, seed=5
  )
  assert isinstance(noisy, optax.GradientTransformationExtraArgs)
  g = jnp.array([100.0, -50.0, 30.0, 0.0])
  updates, _ = noisy.update({"w": g}, noisy.init(params), params, seq_error=1.0)
  # the same draw as the chain's: the noise transform alone, same seed, first step, on zeros
  noise_tx = optim.neural_gpu_noise(0.3, 5)
  noise = noise_tx.update({"w": jnp.zeros(4)}, noise_tx.init(params), seq_error=1.0)[0]["w"]
  assert float(jnp.std(noise)) > 0.05  # std 0.3 * sqrt(1.0) at step 0
  clipped = g / float(jnp.linalg.norm(g))
  adam = lambda grad: -1e-3 * grad / (jnp.abs(grad) + 1.0)
  np.testing.assert_allclose(updates["w"], adam(clipped + noise), rtol=1e-5, atol=1e-9)
  noised_then_clipped = (g + noise) / jnp.linalg.norm(g + noise)
  assert not np.allclose(updates["w"], adam(noised_then_clipped), rtol=1e-3, atol=1e-6)


def test_clipped_adamax_matches_a_hand_computation():
  opt = optim.scale_by_clipped_adamax(b1=0.9, eps=1e-8, clip_multiplier=1.2, clip_epsilon=1e-4)
  params = {"w": jnp.zeros(3)}
  state = opt.init(params)
  g1 = {"w": jnp.array([0.5, -2e-5, 0.0])}
  d1, state = opt.update(g1, state)
  # step 1: nu = 0, so every gradient is clipped to +-1e-4 first
  c1 = np.clip(np.array([0.5, -2e-5, 0.0]), -1e-4, 1e-4)
  mu, nu = 0.1 * c1, np.abs(c1)
  np.testing.assert_allclose(d1["w"], mu / (nu + 1e-8), rtol=1e-5)
  g2 = {"w": jnp.array([1.0, 1e-5, -3e-4])}
  d2, state = opt.update(g2, state)
  b2 = 1.0 - 0.01 * 0.5 ** (1 / 2000)
  c2 = np.clip(np.array([1.0, 1e-5, -3e-4]), -(1.2 * nu + 1e-4), 1.2 * nu + 1e-4)
  mu = 0.9 * mu + 0.1 * c2
  nu = np.maximum(b2 * nu, np.abs(c2))
  np.testing.assert_allclose(d2["w"], mu / (nu + 1e-8), rtol=1e-5)
  assert float(optim.dngpu_b2(0.0)) == pytest.approx(0.99)
  assert float(optim.dngpu_b2(1e6)) == pytest.approx(0.9995)


def test_lr_decay_rules_and_floor():
  def run(rule, losses, factor_floor=0.0):
    s = schedule.Schedule(cur_length=6, pull=0.0)
    decays = []
    for loss in losses:
      schedule.record(s, 1, 1, loss)
      d = schedule.end_window(
        s,
        max_length=41,
        threshold=0.0001,
        pull_factor=1.2,
        pull_max=0.1,
        relax=False,
        lr_decay=0.5,
        lr_decay_rule=rule,
        min_lr_factor=factor_floor,
      )
      decays.append(d.decay_lr)
    return decays, s.lr_factor

  # no_progress_2: 1.0 beaten by neither 1.1 nor 1.2 -> decay; then 1.05 < 1.2 but not < 1.1
  assert run("no_progress_2", [1.0, 1.1, 1.2, 0.9]) == ([False, False, True, False], 0.5)
  assert run("worse_than_3", [1.0, 1.1, 1.2, 1.3]) == ([False, False, False, True], 0.5)
  assert run("no_progress_2", [1.0, 2.0, 3.0, 4.0, 5.0], factor_floor=0.3)[1] == 0.3


def test_params_ema_tracks_the_updated_params_and_leaves_updates_alone():
  params = {"w": jnp.array([1.0, -2.0])}
  plain = optim.make_optimizer(learning_rate=0.1, adam_eps=1e-8, clip_norm=10.0, noise_scale=0.0)
  tx = optim.make_optimizer(
    learning_rate=0.1, adam_eps=1e-8, clip_norm=10.0, noise_scale=0.0, ema_decay=0.5
  )
  s_plain, state = plain.init(params), tx.init(params)
  assert optim.averaged_params(s_plain, params) is params  # no average kept: the params
  ema = np.array([1.0, -2.0])
  for t, g in enumerate(([1.0, 1.0], [-3.0, 0.5], [2.0, 2.0])):
    grads = {"w": jnp.array(g)}
    u_plain, s_plain = plain.update(grads, s_plain, params)
    updates, state = tx.update(grads, state, params)
    np.testing.assert_array_equal(updates["w"], u_plain["w"])
    params = optax.apply_updates(params, updates)
    rate = min(0.5, (1 + t) / (10 + t))  # the warm-up: 0.1, 0.18, 0.25 before 0.5
    ema = rate * ema + (1 - rate) * np.asarray(params["w"])
    np.testing.assert_allclose(optim.averaged_params(state, params)["w"], ema, rtol=1e-6)
  assert float(optim.get_learning_rate(state)) == pytest.approx(0.1)
