"""Speed of the paper's model on this machine: train steps, long forward passes, FLOP rates.

  python -m benchmarks.run [--quick] [--out=benchmarks/results.json]

Prints a table and writes JSON. FLOPs are the convolutions' multiply-adds x 2
(the model's useful work: elementwise ops and the rematerialised forward are
not counted), for every scan step; a train step counts forward + backward = 3x
forward. The same run measures a large float32 matmul, so the ratio
"achieved / matmul GFLOP/s" means the same on any machine. Timings never fail
anything: this only reports.
"""

import json
import os
import platform
import statistics
import sys
import time

from absl import app, flags

flags.DEFINE_bool("quick", False, "Fewer repetitions and no length-4001 pass (CI form, < 3 min).")
flags.DEFINE_string("out", "", "Where to write the JSON (default: print only).")
flags.DEFINE_integer("cpu_devices", -1, "CPU devices to split the host into (-1: all cores).")
FLAGS = flags.FLAGS


def conv_flops(batch: int, width: int, steps: int, *, maps: int, rows: int, layers: int) -> float:
  """2 x multiply-adds of the gate (M -> 2M) and candidate (M -> M) 3x3 convs."""
  per_cell = 9 * maps * (2 * maps) + 9 * maps * maps
  return 2.0 * batch * width * rows * per_cell * layers * steps


def _time(fn, reps: int) -> tuple[float, float]:
  """(first call incl. compile, median of reps later calls), seconds."""
  import jax  # pylint: disable=g-import-not-at-top
  t = time.perf_counter()
  jax.block_until_ready(fn())
  first = time.perf_counter() - t
  times = []
  for _ in range(reps):
    t = time.perf_counter()
    jax.block_until_ready(fn())
    times.append(time.perf_counter() - t)
  return first, statistics.median(times)


def matmul_gflops(n: int = 2048, reps: int = 10) -> float:
  import jax  # pylint: disable=g-import-not-at-top
  import jax.numpy as jnp  # pylint: disable=g-import-not-at-top
  a = jnp.ones((n, n), jnp.float32)
  f = jax.jit(lambda a: a @ a)
  _, t = _time(lambda: f(a), reps)
  return 2.0 * n**3 / t / 1e9


def bench_train(config, task, mesh, lengths, reps):
  import numpy as np  # pylint: disable=g-import-not-at-top
  from ngpu_jax import data, parallel, steps  # pylint: disable=g-import-not-at-top
  optimizer = steps.make_optimizer(config)
  state = steps.init_state(config, task, optimizer, mesh)
  train_step = steps.make_train_step(config, optimizer, mesh)
  rows = []
  for length in lengths:
    batch = data.make_batch(task, np.random.default_rng(0), config.batch_size, length, length)
    args = (parallel.global_batch(mesh, *batch),)
    holder = {"state": state}

    def one():
      holder["state"], m = train_step(holder["state"], args, np.float32(1e-3), np.float32(0.5),
                                      np.float32(0.0))
      return m
    compile_s, step_s = _time(one, reps)
    state = holder["state"]
    flops = 3 * conv_flops(config.batch_size, length, length, maps=config.model.maps,
                           rows=config.model.rows, layers=config.model.layers)
    rows.append({"fn": "train_step", "length": length, "batch": config.batch_size,
                 "first_call_s": compile_s, "step_s": step_s,
                 "examples_per_s": config.batch_size / step_s, "gflop": flops / 1e9,
                 "gflops_per_s": flops / step_s / 1e9})
  return rows


def bench_forward(config, task, mesh, length, batch_sizes, reps):
  import jax  # pylint: disable=g-import-not-at-top
  import numpy as np  # pylint: disable=g-import-not-at-top
  from ngpu_jax import data, parallel, steps  # pylint: disable=g-import-not-at-top
  params = steps.init_state(config, task, steps.make_optimizer(config), mesh).params
  eval_step = steps.make_eval_step(config, mesh)
  best = None
  for bs in batch_sizes:
    batch = data.make_batch(task, np.random.default_rng(0), bs, length, length)
    args = parallel.global_batch(mesh, *batch)
    compiled = eval_step.lower(params, *args).compile()
    mem = compiled.memory_analysis()
    peak = None if mem is None else (mem.temp_size_in_bytes + mem.argument_size_in_bytes
                                      + mem.output_size_in_bytes)
    compile_s, step_s = _time(lambda: eval_step(params, *args), reps)
    flops = conv_flops(bs, length, length, maps=config.model.maps, rows=config.model.rows,
                       layers=config.model.layers)
    row = {"fn": "forward", "length": length, "batch": bs, "first_call_s": compile_s,
           "step_s": step_s, "examples_per_s": bs / step_s, "gflop": flops / 1e9,
           "gflops_per_s": flops / step_s / 1e9, "peak_bytes": peak}
    print(f"  forward length {length} batch {bs}: {row['examples_per_s']:.2f} examples/s", flush=True)
    if best is None or row["examples_per_s"] > best["examples_per_s"]:
      best = row
  return best


def bench_launch(cache_dir: str) -> float:
  """Seconds from starting the launcher (paper config) to its first training step's line."""
  import subprocess  # pylint: disable=g-import-not-at-top
  import tempfile  # pylint: disable=g-import-not-at-top
  repo = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
  with tempfile.TemporaryDirectory() as workdir:
    t = time.perf_counter()
    proc = subprocess.Popen(
        [sys.executable, "-m", "ngpu_jax.main", "--config=experiments/badd.py",
         f"--workdir={workdir}", "--config.num_steps=1", "--config.log_every=1",
         f"--compilation_cache={cache_dir}"],
        cwd=repo, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
        env={**os.environ, "PYTHONPATH": repo})
    seconds = float("nan")
    for line in proc.stdout:
      if line.startswith("step 1/"):
        seconds = time.perf_counter() - t
        break
    proc.kill()
    proc.wait()
  return seconds


def main(argv):
  del argv
  from ngpu_jax import configlib, parallel, tasks  # pylint: disable=g-import-not-at-top
  config = configlib.base("badd")  # the paper's model: M=24, 4 rows, 2 layers, r=6, batch 32
  parallel.setup_cpu_devices(FLAGS.cpu_devices, config.batch_size)
  import jax  # pylint: disable=g-import-not-at-top
  task = tasks.get_task("badd")
  mesh = parallel.make_mesh()
  reps = 5 if FLAGS.quick else 20
  peak = matmul_gflops(reps=reps)
  print(f"devices: {mesh.devices.size} x {jax.devices()[0].platform}; "
        f"float32 matmul 2048^3: {peak:.1f} GFLOP/s", flush=True)
  rows = bench_train(config, task, mesh, (8, 20, 41), reps)
  rows.append(bench_forward(config, task, mesh, 401, (8, 16, 32) if not FLAGS.quick else (16,),
                            3 if FLAGS.quick else 5))
  if not FLAGS.quick:
    rows.append(bench_forward(config, task, mesh, 4001, (2, 4), 1))
  for r in rows:
    r["matmul_fraction"] = r["gflops_per_s"] / peak
  import tempfile  # pylint: disable=g-import-not-at-top
  with tempfile.TemporaryDirectory() as cache:
    launch = {"cold_cache_s": bench_launch(cache), "warm_cache_s": bench_launch(cache)}
  print(f"launch to first training step (paper config): {launch['cold_cache_s']:.1f} s with an "
        f"empty compilation cache, {launch['warm_cache_s']:.1f} s with a warm one")
  header = (f"{'function':>10} {'length':>6} {'batch':>5} {'first call s':>12} {'step s':>8} "
            f"{'ex/s':>8} {'GFLOP':>8} {'GFLOP/s':>8} {'of matmul':>9} {'peak MiB':>8}")
  print(header)
  for r in rows:
    peak_mib = "-" if r.get("peak_bytes") is None else f"{r['peak_bytes'] / 2**20:.0f}"
    print(f"{r['fn']:>10} {r['length']:>6} {r['batch']:>5} {r['first_call_s']:>12.2f} "
          f"{r['step_s']:>8.4f} {r['examples_per_s']:>8.2f} {r['gflop']:>8.1f} "
          f"{r['gflops_per_s']:>8.1f} {r['matmul_fraction']:>8.0%} {peak_mib:>8}")
  result = {"machine": platform.processor() or platform.machine(), "cpu_count": os.cpu_count(),
            "devices": mesh.devices.size, "platform": jax.devices()[0].platform,
            "jax": jax.__version__, "matmul_gflops_per_s": peak, "quick": FLAGS.quick,
            "rows": rows, "launch": launch}
  if FLAGS.out:
    with open(FLAGS.out, "w") as f:
      json.dump(result, f, indent=2)
    print(f"wrote {FLAGS.out}")


if __name__ == "__main__":
  sys.exit(app.run(main))
