"""Speed of the paper's model on this machine: train steps, long forward passes, FLOP rates.

  python -m benchmarks.run [--quick] [--out=benchmarks/results.json]
  python -m benchmarks.run --sections=dngpu --dngpu_task=bmul --dngpu_settings=0:1,1:1,0:8

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

flags.DEFINE_bool(
  "quick",
  False,
  "Fewer repetitions, no conv-form comparison and no length-4001 pass (CI form, < 3 min).",
)
flags.DEFINE_string("out", "", "Where to write the JSON (default: print only).")
flags.DEFINE_integer("cpu_devices", -1, "CPU devices to split the host into (-1: all cores).")
flags.DEFINE_list(
  "conv_impls",
  ["hybrid", "im2col", "xla"],
  "Conv forms whose train step at length 41 is compared (model.conv_impl='auto' "
  "picks by backend; this shows whether the pick is the fast one).",
)
flags.DEFINE_list(
  "precisions",
  ["highest", "default"],
  "config.precision values the train step at length 41 is compared at (GPUs run float32 "
  "products in TF32 at 'default'; the CPU computes both in float32).",
)
flags.DEFINE_bool("launch", True, "Also time launcher start-up (two subprocesses).")
SECTIONS = ("train", "conv", "dngpu", "batches", "e2e", "forward", "launch", "packed")
flags.DEFINE_multi_enum("sections", list(SECTIONS), SECTIONS, "What to measure.")
flags.DEFINE_enum(
  "dngpu_task",
  "badd",
  ["badd", "bmul"],
  "Which experiments/dngpu.py config the "
  "DNGPU all-bins step is timed at (badd: 48 maps, bmul: 96).",
)
flags.DEFINE_integer(
  "e2e_steps",
  60,
  "Steps of the launcher's end-to-end DNGPU run (the first "
  "log interval, which compiles, is left out of its rate).",
)
flags.DEFINE_multi_string(
  "dngpu_set",
  [],
  "FIELD=VALUE overrides of the DNGPU config, to profile what its step costs "
  "(e.g. model.diagonal=False, saturation.enabled=False).",
)
flags.DEFINE_list(
  "dngpu_settings",
  ["0:1"],
  "BIN_GROUPS:SCAN_UNROLL pairs the DNGPU step is timed at (curriculum.bin_groups, "
  "model.scan_unroll); the numbers they compute are the same.",
)
flags.DEFINE_list(
  "packed_sizes",
  ["1", "4", "16", "64"],
  "Seeds per program S the packed step is timed at (seed-steps per second).",
)
flags.DEFINE_enum(
  "packed_model",
  "paper",
  ["paper", "dngpu"],
  "Whose step is packed: the paper model at --packed_length, or the DNGPU's all-bins step.",
)
flags.DEFINE_integer("packed_length", 20, "The paper model's batch length in the packed rows.")
flags.DEFINE_list(
  "pack_modes", ["auto"], "How the seeds are packed: auto, vmap, map (steps.resolve_pack_mode)."
)
FLAGS = flags.FLAGS


def conv_flops(batch: int, width: int, steps: int, *, maps: int, rows: int, layers: int) -> float:
  """2 x multiply-adds of the gate (M -> 2M) and candidate (M -> M) convs.

  Kernels are 3x3, or 3x1 for a 1-D state (rows == 1).
  """
  taps = 9 if rows > 1 else 3
  per_cell = taps * maps * (2 * maps) + taps * maps * maps
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


def train_step_flops(config, length: int) -> float:
  """The paper model's train step at one length: forward + backward = 3x the forward's convs."""
  m = config.model
  return 3 * conv_flops(
    config.batch_size, length, length, maps=m.maps, rows=m.rows, layers=m.layers
  )


def bench_train(config, task, mesh, lengths, reps, label="train_step"):
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
      holder["state"], m = train_step(
        holder["state"], args, np.float32(1e-3), np.float32(0.5), np.float32(0.0)
      )
      return m

    compile_s, step_s = _time(one, reps)
    state = holder["state"]
    flops = train_step_flops(config, length)
    rows.append(
      {
        "fn": label,
        "conv_impl": config.model.conv_impl,
        "precision": config.precision,
        "length": length,
        "batch": config.batch_size,
        "first_call_s": compile_s,
        "step_s": step_s,
        "examples_per_s": config.batch_size / step_s,
        "gflop": flops / 1e9,
        "gflops_per_s": flops / step_s / 1e9,
      }
    )
  return rows


def bench_all_buckets(config, task, mesh, reps):
  """One DNGPU-style step: a batch of batch_size at every bin, their losses averaged."""
  import numpy as np  # pylint: disable=g-import-not-at-top

  from ngpu_jax import cgru, parallel, steps, train  # pylint: disable=g-import-not-at-top

  optimizer = steps.make_optimizer(config)
  holder = {"state": steps.init_state(config, task, optimizer, mesh)}
  train_step = steps.make_train_step(config, optimizer, mesh)
  layout = steps.bin_layout(config)
  lengths = [n for group in layout for n in group]
  batches = train.training_batches(config, task, 0, config.curriculum.max_length, layout)
  args = tuple(parallel.global_batch(mesh, *b) for b in batches)

  def one():
    holder["state"], m = train_step(
      holder["state"], args, np.float32(0.0), np.float32(0.5), np.float32(1e-3)
    )
    return m

  compile_s, step_s = _time(one, reps)
  flops = dngpu_step_flops(config)
  examples = config.batch_size * len(lengths)
  return {
    "fn": "dngpu_step",
    "conv_impl": cgru.resolve_conv_impl(config.model.conv_impl, config.model.rows),
    "length": max(lengths),
    "task": task.name,
    "maps": config.model.maps,
    "bin_groups": config.curriculum.bin_groups,
    "scan_unroll": config.model.scan_unroll,
    "batch": examples,
    "first_call_s": compile_s,
    "step_s": step_s,
    "examples_per_s": examples / step_s,
    "gflop": flops / 1e9,
    "gflops_per_s": flops / step_s / 1e9,
  }


def bench_packed(config, task, mesh, sizes, length, reps, mode="auto") -> list[dict]:
  """S seeds' train steps in one program (steps.make_packed_train_step), each seed its own
  state and batch, against the solo step of one seed: seed-steps per second."""
  import jax  # pylint: disable=g-import-not-at-top
  import jax.numpy as jnp  # pylint: disable=g-import-not-at-top
  import numpy as np  # pylint: disable=g-import-not-at-top

  from ngpu_jax import data, packed, parallel, steps, train  # pylint: disable=g-import-not-at-top

  layout = steps.bin_layout(config)
  optimizer = steps.make_optimizer(config)
  if layout is None:
    flops = train_step_flops(config, length)
  else:
    flops, length = dngpu_step_flops(config), config.curriculum.max_length

  def batches_of(c):
    if layout is None:
      rng = np.random.default_rng(c.seed)
      return (data.make_batch(task, rng, c.batch_size, length, length),)
    return train.training_batches(c, task, 0, c.curriculum.max_length, layout)

  solo = steps.make_train_step(config, optimizer, mesh)
  holder = {"state": steps.init_state(config, task, optimizer, mesh)}
  solo_args = tuple(parallel.global_batch(mesh, *b) for b in batches_of(config))

  def one_solo():
    holder["state"], m = solo(
      holder["state"], solo_args, np.float32(1e-3), np.float32(0.5), np.float32(1e-3)
    )
    return m

  _, solo_s = _time(one_solo, reps)
  step = steps.make_packed_train_step(config, optimizer, mesh, mode)
  rows = []
  for size in sizes:
    configs = packed.seed_configs(config, range(size))
    states = [steps.init_state(c, task, optimizer, mesh) for c in configs]
    stacked = jax.device_put(
      jax.tree.map(lambda *a: jnp.stack(a), *states), parallel.replicated(mesh)
    )
    per_seed = [batches_of(c) for c in configs]
    args = tuple(
      parallel.global_batch(mesh, *(np.stack(arrays) for arrays in zip(*group)), seed_axis=True)
      for group in zip(*per_seed)
    )
    keys = jnp.stack([steps.dropout_base_key(c.seed) for c in configs])
    vec = lambda v, dtype=np.float32, size=size: np.full(size, v, dtype)
    holder = {"state": stacked}

    def one(args=args, keys=keys, vec=vec):
      holder["state"], m = step(
        holder["state"],
        args,
        vec(1e-3),
        vec(0.5),
        vec(1e-3),
        keys,
        vec(length, np.int32),
        vec(True, bool),
      )
      return m

    compile_s, step_s = _time(one, max(2, reps // size))
    rows.append(
      {
        "fn": "packed_step",
        "pack_mode": steps.resolve_pack_mode(mode),
        "model": "paper" if layout is None else "dngpu",
        "conv_impl": "auto",
        "length": length,
        "batch": config.batch_size,
        "seeds": size,
        "first_call_s": compile_s,
        "step_s": step_s,
        "seed_steps_per_s": size / step_s,
        "solo_step_s": solo_s,
        "vs_one_after_another": size * solo_s / step_s,
        "examples_per_s": size * config.batch_size / step_s,
        "gflop": size * flops / 1e9,
        "gflops_per_s": size * flops / step_s / 1e9,
      }
    )
  return rows


def format_packed(rows: list[dict]) -> str:
  lines = [
    f"packed seeds ({rows[0]['model']} step, {rows[0]['pack_mode']}, length {rows[0]['length']};"
    f" one seed alone "
    f"{rows[0]['solo_step_s']:.4f} s a step):",
    f"{'S':>5} {'step s':>9} {'seed-steps/s':>13} {'x S=1 packed':>13} {'x one after another':>20}",
  ]
  base = rows[0]["seed_steps_per_s"] if rows[0]["seeds"] == 1 else None
  for r in rows:
    vs1 = f"{r['seed_steps_per_s'] / base:.2f}" if base else "-"
    lines.append(
      f"{r['seeds']:>5} {r['step_s']:>9.4f} {r['seed_steps_per_s']:>13.2f} {vs1:>13} "
      f"{r['vs_one_after_another']:>20.2f}"
    )
  return "\n".join(lines)


def bench_batches(config, task, reps: int) -> dict:
  """Host time to build one step's training batches, per data generator (median over steps)."""
  from ngpu_jax import steps, train  # pylint: disable=g-import-not-at-top

  layout = steps.bin_layout(config)
  out = {}
  for generator in ("exact", "vectorized"):
    config.data_generator = generator
    times = []
    for step in range(reps + 1):  # step 0 warms up
      t = time.perf_counter()
      train.training_batches(config, task, step, config.curriculum.max_length, layout)
      times.append(time.perf_counter() - t)
    out[f"{generator}_ms"] = 1e3 * statistics.median(times[1:])
  bins = [n for group in layout for n in group] if layout else [config.curriculum.max_length]
  return {
    "task": task.name,
    "bins": bins,
    "batch": config.batch_size,
    "bin_lengths": config.curriculum.bin_lengths,
    "shorter_fraction": config.curriculum.shorter_fraction,
    **out,
    "speedup": out["exact_ms"] / out["vectorized_ms"],
  }


def format_batches(r: dict) -> str:
  return (
    f"host batch ({r['task']}, {len(r['bins'])} bins x {r['batch']}, {r['bin_lengths']}, "
    f"shorter {r['shorter_fraction']:g}): exact {r['exact_ms']:.1f} ms, vectorized "
    f"{r['vectorized_ms']:.2f} ms ({r['speedup']:.0f}x)"
  )


def bench_forward(config, task, mesh, length, batch_sizes, reps):
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
    peak = (
      None
      if mem is None
      else (mem.temp_size_in_bytes + mem.argument_size_in_bytes + mem.output_size_in_bytes)
    )
    compile_s, step_s = _time(lambda: eval_step(params, *args), reps)
    flops = conv_flops(
      bs, length, length, maps=config.model.maps, rows=config.model.rows, layers=config.model.layers
    )
    row = {
      "fn": "forward",
      "length": length,
      "batch": bs,
      "first_call_s": compile_s,
      "step_s": step_s,
      "examples_per_s": bs / step_s,
      "gflop": flops / 1e9,
      "gflops_per_s": flops / step_s / 1e9,
      "peak_bytes": peak,
    }
    print(
      f"  forward length {length} batch {bs}: {row['examples_per_s']:.2f} examples/s", flush=True
    )
    if best is None or row["examples_per_s"] > best["examples_per_s"]:
      best = row
  return best


def dngpu_step_flops(config) -> float:
  """Multiply-add FLOPs of one DNGPU all-bins train step (forward + backward = 3x forward)."""
  from ngpu_jax import steps  # pylint: disable=g-import-not-at-top

  lengths = [n for group in steps.bin_layout(config) for n in group]
  return 3 * sum(
    conv_flops(
      config.batch_size,
      n,
      n,
      maps=config.model.maps,
      rows=config.model.rows,
      layers=config.model.layers,
    )
    for n in lengths
  )


def bench_end_to_end(task: str, num_steps: int, cache_dir: str) -> dict:
  """The launcher's steady step, end to end (host batches, device step, metrics, logging):
  a real run of experiments/dngpu.py:TASK, timed by its own train_seconds between the first
  and the last train line (the first interval holds the compile)."""
  import subprocess  # pylint: disable=g-import-not-at-top
  import tempfile  # pylint: disable=g-import-not-at-top

  repo = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
  log_every = max(num_steps // 6, 1)
  with tempfile.TemporaryDirectory() as workdir:
    subprocess.run(
      [
        sys.executable,
        "-m",
        "ngpu_jax.main",
        f"--config=experiments/dngpu.py:{task}",
        f"--workdir={workdir}",
        f"--config.num_steps={num_steps}",
        f"--config.log_every={log_every}",
        f"--config.eval.every={100 * num_steps}",
        f"--config.checkpoint_every={100 * num_steps}",
        "--config.eval.far_lengths=()",
        "--config.final_eval.lengths=(41,)",
        "--config.final_eval.examples=2",
        "--config.final_eval.probe_examples=0",
        *(f"--config.{item}" for item in FLAGS.dngpu_set),
        f"--compilation_cache={cache_dir}",
      ],
      cwd=repo,
      check=True,
      stdout=subprocess.DEVNULL,
      stderr=subprocess.DEVNULL,
      env={**os.environ, "PYTHONPATH": repo},
    )
    with open(os.path.join(workdir, "metrics.jsonl")) as f:
      lines = [json.loads(line) for line in f if '"kind": "train"' in line]
  first, last = lines[0], lines[-1]
  step_s = (last["train_seconds"] - first["train_seconds"]) / (last["step"] - first["step"])
  return {"task": task, "steps": last["step"] - first["step"], "step_s": step_s}


def bench_launch(cache_dir: str) -> float:
  """Seconds from starting the launcher (paper config) to its first training step's line."""
  import subprocess  # pylint: disable=g-import-not-at-top
  import tempfile  # pylint: disable=g-import-not-at-top

  repo = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
  with tempfile.TemporaryDirectory() as workdir:
    t = time.perf_counter()
    proc = subprocess.Popen(
      [
        sys.executable,
        "-m",
        "ngpu_jax.main",
        "--config=experiments/badd.py",
        f"--workdir={workdir}",
        "--config.num_steps=1",
        "--config.log_every=1",
        f"--compilation_cache={cache_dir}",
      ],
      cwd=repo,
      stdout=subprocess.PIPE,
      stderr=subprocess.DEVNULL,
      text=True,
      env={**os.environ, "PYTHONPATH": repo},
    )
    seconds = float("nan")
    for line in proc.stdout:
      if line.startswith("step 1/"):
        seconds = time.perf_counter() - t
        break
    proc.kill()
    proc.wait()
  return seconds


def dngpu_config(task="badd"):
  """experiments/dngpu.py:TASK, the variant at the DNGPU's settings for that task."""
  from ngpu_jax import configlib, experiment_files  # pylint: disable=g-import-not-at-top

  path = os.path.join(
    os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "experiments", "dngpu.py"
  )
  config = experiment_files.load_experiment(path).get_config(task)
  for field, value in _dngpu_overrides():
    configlib.set_field(config, field, value)
  configlib.validate(config)
  return config


def _dngpu_overrides() -> list[tuple[str, object]]:
  """--dngpu_set=FIELD=VALUE pairs, values as Python literals (True, 0.0, (41,)) or strings."""
  import ast  # pylint: disable=g-import-not-at-top

  out = []
  for item in FLAGS.dngpu_set:
    field, _, text = item.partition("=")
    try:
      value = ast.literal_eval(text)
    except (ValueError, SyntaxError):
      value = text
    out.append((field, value))
  return out


HEADER = (
  f"{'function':>16} {'conv':>6} {'length':>6} {'batch':>5} {'first call s':>12} "
  f"{'step s':>8} {'ex/s':>8} {'GFLOP':>8} {'GFLOP/s':>8} {'of matmul':>9} {'peak MiB':>8}"
)


def format_row(r: dict) -> str:
  peak_mib = "-" if r.get("peak_bytes") is None else f"{r['peak_bytes'] / 2**20:.0f}"
  label = r["fn"] + (f" g{r['bin_groups']}u{r['scan_unroll']}" if "scan_unroll" in r else "")
  return (
    f"{label:>16} {r.get('conv_impl', '-'):>6} {r['length']:>6} {r['batch']:>5} "
    f"{r['first_call_s']:>12.2f} {r['step_s']:>8.4f} {r['examples_per_s']:>8.2f} "
    f"{r['gflop']:>8.1f} {r['gflops_per_s']:>8.1f} {r['matmul_fraction']:>8.0%} {peak_mib:>8}"
  )


def main(argv):
  del argv
  from ngpu_jax import cgru, configlib, parallel, tasks  # pylint: disable=g-import-not-at-top

  config = configlib.base("badd")  # the paper's model: M=24, 4 rows, 2 layers, r=6, batch 32
  parallel.setup_cpu_devices(FLAGS.cpu_devices, config.batch_size)
  import jax  # pylint: disable=g-import-not-at-top

  task = tasks.get_task("badd")
  mesh = parallel.make_mesh()
  gpu = jax.default_backend() != "cpu"
  reps = 5 if FLAGS.quick else 20
  peak = matmul_gflops(n=8192 if gpu else 2048, reps=reps)
  result = {
    "machine": platform.processor() or platform.machine(),
    "cpu_count": os.cpu_count(),
    "device_kind": jax.devices()[0].device_kind,
    "devices": mesh.devices.size,
    "platform": jax.devices()[0].platform,
    "jax": jax.__version__,
    "matmul_gflops_per_s": peak,
    "quick": FLAGS.quick,
    "rows": [],
    "launch": None,
    "batches": None,
    "e2e": None,
    "packed": None,
  }
  print(
    f"devices: {mesh.devices.size} x {result['device_kind']}; float32 matmul "
    f"{8192 if gpu else 2048}^3: {peak:.1f} GFLOP/s\n{HEADER}",
    flush=True,
  )

  def emit(rows):
    # Printed and written as measured, so a run cut short keeps what it measured.
    for r in rows:
      r["matmul_fraction"] = r["gflops_per_s"] / peak
      print(format_row(r), flush=True)
      result["rows"].append(r)
    if FLAGS.out:
      with open(FLAGS.out, "w") as f:
        json.dump(result, f, indent=2)

  sections = set(FLAGS.sections)
  auto = cgru.resolve_conv_impl("auto")
  if "train" in sections:
    rows = bench_train(config, task, mesh, (8, 20, 41), reps)
    for r in rows:
      r["conv_impl"] = auto
    emit(rows)
  # xla's backward on CPU: ~15 s a step, so not in the quick form
  for impl in [] if FLAGS.quick or "conv" not in sections else FLAGS.conv_impls:
    if impl != auto:
      config.model.conv_impl = impl
      emit(bench_train(config, task, mesh, (41,), reps))
  config.model.conv_impl = "auto"
  highest = config.precision
  for precision in [] if FLAGS.quick or "conv" not in sections else FLAGS.precisions:
    if precision != highest:
      config.precision = precision
      rows = bench_train(config, task, mesh, (41,), reps, label=f"train {precision}")
      for r in rows:
        r["conv_impl"] = auto
      emit(rows)
  config.precision = highest
  for setting in FLAGS.dngpu_settings if "dngpu" in sections else []:
    dconfig = dngpu_config(FLAGS.dngpu_task)
    groups, _, unroll = setting.partition(":")
    dconfig.curriculum.bin_groups, dconfig.model.scan_unroll = int(groups), int(unroll or 1)
    configlib.validate(dconfig)
    emit([bench_all_buckets(dconfig, tasks.get_task(FLAGS.dngpu_task), mesh, max(2, reps // 2))])
  if "batches" in sections:
    dconfig = dngpu_config(FLAGS.dngpu_task)
    result["batches"] = bench_batches(dconfig, tasks.get_task(FLAGS.dngpu_task), reps)
    print(format_batches(result["batches"]), flush=True)
    emit([])
  if "e2e" in sections:
    import tempfile  # pylint: disable=g-import-not-at-top

    dconfig = dngpu_config(FLAGS.dngpu_task)
    with tempfile.TemporaryDirectory() as cache:
      e2e = bench_end_to_end(FLAGS.dngpu_task, FLAGS.e2e_steps, cache)
    flops = dngpu_step_flops(dconfig)
    e2e.update(
      gflops_per_s=flops / e2e["step_s"] / 1e9, matmul_fraction=flops / e2e["step_s"] / 1e9 / peak
    )
    device = [
      r for r in result["rows"] if r["fn"] == "dngpu_step" and r["task"] == FLAGS.dngpu_task
    ]
    line = (
      f"launcher end to end (dngpu {FLAGS.dngpu_task}, {e2e['steps']} steady steps): "
      f"{e2e['step_s']:.3f} s a step, {e2e['gflops_per_s']:.1f} GFLOP/s = "
      f"{e2e['matmul_fraction']:.0%} of matmul"
    )
    if device:
      e2e["device_step_s"] = device[0]["step_s"]
      line += (
        f"; device step alone {device[0]['step_s']:.3f} s ({device[0]['matmul_fraction']:.0%})"
      )
    if result["batches"]:
      e2e["host_batch_fraction"] = (
        result["batches"]["vectorized_ms"] / 1e3 / e2e.get("device_step_s", e2e["step_s"])
      )
      line += f"; host batch {e2e['host_batch_fraction']:.1%} of the step"
    result["e2e"] = e2e
    print(line, flush=True)
    emit([])
  sizes_401 = (32, 128, 512) if gpu else (8, 16, 32)
  if "forward" in sections:
    emit(
      [
        bench_forward(
          config,
          task,
          mesh,
          401,
          sizes_401[1:2] if FLAGS.quick else sizes_401,
          3 if FLAGS.quick else 5,
        )
      ]
    )
  if "forward" in sections and not FLAGS.quick:
    emit([bench_forward(config, task, mesh, 4001, (16, 64) if gpu else (2, 4), 1)])
  if "packed" in sections:
    pconfig = config if FLAGS.packed_model == "paper" else dngpu_config(FLAGS.dngpu_task)
    ptask = task if FLAGS.packed_model == "paper" else tasks.get_task(FLAGS.dngpu_task)
    sizes = [int(s) for s in FLAGS.packed_sizes]
    if FLAGS.quick:
      sizes = [s for s in sizes if s <= 4]
    result["packed"] = []
    for mode in FLAGS.pack_modes:
      rows = bench_packed(pconfig, ptask, mesh, sizes, FLAGS.packed_length, reps, mode)
      result["packed"] += rows
      print(format_packed(rows), flush=True)
      emit(rows)
  if FLAGS.launch and "launch" in sections:
    import tempfile  # pylint: disable=g-import-not-at-top

    with tempfile.TemporaryDirectory() as cache:
      result["launch"] = {"cold_cache_s": bench_launch(cache), "warm_cache_s": bench_launch(cache)}
    print(
      f"launch to first training step (paper config): {result['launch']['cold_cache_s']:.1f} s "
      f"with an empty compilation cache, {result['launch']['warm_cache_s']:.1f} s with a warm one"
    )
    emit([])
  if FLAGS.out:
    print(f"wrote {FLAGS.out}")


if __name__ == "__main__":
  sys.exit(app.run(main))
