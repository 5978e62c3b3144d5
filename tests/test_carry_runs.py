"""Errors sorted by carry runs: the runs found, and the counts of a known wrong model."""

import numpy as np
import pytest

from ngpu_jax import carry_runs, data, evaluation, parallel, probes, tasks

from conftest import run_module


def _answering(answer):
  """An eval step (answers=True) of a 'model' whose answers are answer(x_BxW, target_BxW)."""

  def eval_step(params, x_BxW, y_BxW, n_B):
    del params
    x_BxW, target_BxW = np.asarray(x_BxW), np.asarray(y_BxW)
    pred_BxW = answer(x_BxW, target_BxW)
    wrong_BxW = (pred_BxW != target_BxW) & (np.arange(x_BxW.shape[1]) < np.asarray(n_B)[:, None])
    return {
      "seq_wrong": wrong_BxW.any(1).sum(),
      "sym_wrong": wrong_BxW.sum(),
      "sym_total": np.asarray(n_B).sum(),
      "pred_BxW": pred_BxW,
      "target_BxW": target_BxW,
    }

  return eval_step


def test_longest_run_and_the_carry_into_it():
  # lowest digit first: 1+1 makes a carry that enters the run of three 1+0 / 0+1 pairs above
  a_BxK = np.array([[1, 0, 1, 1, 0], [0, 0, 1, 1, 0], [1, 0, 0, 1, 1], [0, 0, 0, 0, 0]])
  b_BxK = np.array([[1, 1, 0, 0, 0], [0, 1, 0, 0, 0], [0, 1, 1, 1, 0], [0, 0, 0, 0, 0]])
  length_B, carry_in_B = carry_runs.longest_runs(a_BxK, b_BxK, 2)
  # row 3: runs 0-2 (length 3, at the bottom, no carry) and 4 (a carry from 1+1 below);
  # row 4: no run at all
  assert length_B.tolist() == [3, 3, 3, 0] and carry_in_B.tolist() == [1, 0, 0, 0]
  # base 10, two runs of two: 4+5, 5+4 above 5+5 (a carry comes in), and 7+2, 2+7 (none)
  a_1xK, b_1xK = np.array([[5, 4, 5, 0, 7, 2]]), np.array([[5, 5, 4, 3, 2, 7]])
  ties = carry_runs.longest_runs(a_1xK, b_1xK, 10)
  assert [t.tolist() for t in ties] == [[2], [1]]  # the lower of equally long runs


@pytest.mark.parametrize("base", [2, 4, 10])
def test_longest_run_agrees_with_integer_addition(base):
  """A carry enters the run starting at s exactly when the operands' digits below s overflow."""
  rng = np.random.default_rng(base)
  a_BxK, b_BxK = rng.integers(0, base, (2, 300, 12))
  b_BxK[:100] = base - 1 - a_BxK[:100]  # one long run that takes the whole operand
  b_BxK[100:200, 3:9] = base - 1 - a_BxK[100:200, 3:9]  # one of 6 or more
  length_B, carry_in_B = carry_runs.longest_runs(a_BxK, b_BxK, base)
  value = lambda d_K: sum(int(d) * base**i for i, d in enumerate(d_K))
  for a, b, n, c in zip(a_BxK, b_BxK, length_B, carry_in_B):
    passes = "".join("1" if x + y == base - 1 else "0" for x, y in zip(a, b))
    assert "1" * n in passes and "1" * (n + 1) not in passes
    s = passes.find("1" * n) if n else 0
    assert c == int(n > 0 and value(a[:s]) + value(b[:s]) >= base**s)
  assert (length_B[:100] == 12).all() and (length_B[100:200] >= 6).all()


@pytest.mark.parametrize("base", [2, 10])
def test_the_run_below_each_column_and_its_carry_agree_with_integer_addition(base):
  rng = np.random.default_rng(base)
  a_BxK, b_BxK = rng.integers(0, base, (2, 200, 9))
  b_BxK[:50, 2:8] = base - 1 - a_BxK[:50, 2:8]
  run_BxC, carry_BxC = carry_runs.runs_below(a_BxK, b_BxK, base)
  assert run_BxC.shape == (200, 10) and run_BxC[:50, 8].min() >= 6
  value = lambda d_K: sum(int(d) * base**i for i, d in enumerate(d_K))
  for a, b, run_C, carry_C in zip(a_BxK, b_BxK, run_BxC, carry_BxC):
    passes = "".join("1" if x + y == base - 1 else "0" for x, y in zip(a, b))
    for c in range(10):
      below = passes[:c]
      assert run_C[c] == len(below) - len(below.rstrip("1"))
      assert carry_C[c] == int(value(a[:c]) + value(b[:c]) >= base**c)


def test_column_tally_and_spans_find_a_model_wrong_after_runs_with_no_carry():
  """A 'model' wrong in each answer digit above 5 or more pairs summing to 1 with no carry
  entering them: the per-digit tally counts exactly those digits, the spans start on them."""
  task, mesh = tasks.get_task("badd"), parallel.make_mesh()

  def answer(x_BxW, target_BxW):
    pred_BxW = target_BxW.copy()
    run_BxC, carry_BxC = carry_runs.runs_below(*carry_runs.operand_digits(x_BxW), 2)
    c = run_BxC.shape[1]
    flip_BxC = (run_BxC >= 5) & (carry_BxC == 0)
    pred_BxW[:, :c] = np.where(flip_BxC, 3 - target_BxW[:, :c], target_BxW[:, :c])  # 1 <-> 2
    return pred_BxW

  answers = {}
  table = evaluation.evaluate_lengths(
    _answering(answer), None, task, mesh, [81], 100, 50, 5, answers=answers
  )
  counts = carry_runs.column_run_errors(answers[81], 2)
  columns, wrong = counts[..., 0], counts[..., 1]
  assert columns.sum() == 100 * 41 and wrong.sum() > 0
  assert (wrong[1] == 0).all() and wrong[0, 0] == 0 and (wrong[0, 1:] == columns[0, 1:]).all()
  spans = carry_runs.span_runs(answers[81], 2)
  assert len(spans) == round(table[81]["seq_error"] * 100)
  assert all(r >= 5 and c == 0 for _, found in spans for _, r, c in found)
  i, [(first, r, _), *_] = spans[0]
  listing = carry_runs.format_span_runs({81: spans}, limit=1)
  assert f"#{i:<5} {first} ({r} below, no carry)" in listing and "more)" in listing
  text = carry_runs.format_table({81: counts}, carry_runs.COLUMN_HEADING)
  assert text.startswith(carry_runs.COLUMN_HEADING) and f" 0/{columns[0, 0]} " in text


def test_bands_are_closed_and_cover_every_length():
  assert carry_runs.band_of(np.array([0, 4, 5, 8, 9, 12, 13, 16, 17, 200])).tolist() == [
    0,
    0,
    1,
    1,
    2,
    2,
    3,
    3,
    4,
    4,
  ]


def test_run_errors_count_the_problems_a_model_gets_wrong():
  """A 'model' that answers exactly except on problems whose longest run is 5 or more and has no
  carry coming in: the table counts exactly those, on the problems evaluate_lengths scores."""
  task, mesh = tasks.get_task("badd"), parallel.make_mesh()

  def answer(x_BxW, target_BxW):
    pred_BxW = np.array([task.target(row) for row in x_BxW])
    length_B, carry_in_B = carry_runs.longest_runs(*carry_runs.operand_digits(x_BxW), 2)
    pred_BxW[(length_B >= 5) & (carry_in_B == 0), 0] = tasks.PAD  # one wrong digit
    return pred_BxW

  answers = {}
  table = evaluation.evaluate_lengths(
    _answering(answer), None, task, mesh, [61], 300, 64, 7, answers=answers
  )
  rows = answers[61]
  counts = carry_runs.run_errors(rows, carry_runs.check_task(task))
  problems, wrong = counts[..., 0], counts[..., 1]
  assert problems.sum() == 300 and problems[:, 0].sum() < 300  # some runs of 5 or more
  assert (wrong[1] == 0).all() and wrong[0, 0] == 0
  assert (wrong[0, 1:] == problems[0, 1:]).all() and wrong.sum() > 0
  assert wrong.sum() == round(table[61]["seq_error"] * 300)
  # the same problems as the error table of evaluate_lengths
  x_BxW = np.concatenate([x for x, _, _ in rows])
  rng = data.eval_rng(7, 61, None)
  assert (x_BxW[:64] == data.make_batch(task, rng, 64, 61, 61).x_BxW).all()
  with pytest.raises(ValueError, match="not bmul"):
    carry_runs.check_task(tasks.get_task("bmul"))


@pytest.mark.parametrize("base", [2, 4, 10])
def test_planted_runs_hold_one_run_of_exactly_the_length_asked(base):
  k, rng = 30, np.random.default_rng(base)
  for span in (1, 5, 18, 29):
    for carry_in in (False, True):
      pairs = probes.planted_runs(rng, base, k, span, carry_in, 40)
      digits = lambda x: [(x // base**i) % base for i in range(k)]
      a_BxK = np.array([digits(a) for a, _ in pairs])
      b_BxK = np.array([digits(b) for _, b in pairs])
      assert (a_BxK.max(1) < base).all() and max(max(p) for p in pairs) < base**k
      for a, b in zip(a_BxK, b_BxK):
        passes = "0" + "".join("1" if x + y == base - 1 else "0" for x, y in zip(a, b)) + "0"
        assert "0" + "1" * span + "0" in passes  # a maximal run of exactly span
      if span > k // 2:  # no room for a longer or equally long run in the random rest
        length_B, carry_in_B = carry_runs.longest_runs(a_BxK, b_BxK, base)
        assert (length_B == span).all() and (carry_in_B == int(carry_in)).all()
  with pytest.raises(ValueError, match="a run of 30 pairs needs 1 <= run < 30"):
    probes.planted_runs(rng, base, k, 30, True, 1)


def test_run_sweep_scores_a_model_that_carries_only_a_few_digits():
  """A 'model' wrong exactly where a carry must cross a run of 10 or more: the sweep finds
  every such planted problem wrong and none without a carry coming in."""
  task, mesh = tasks.get_task("badd"), parallel.make_mesh()

  def eval_step(params, x_BxW, y_BxW, n_B):
    del params
    x_BxW, n_B = np.asarray(x_BxW), np.asarray(n_B)
    length_B, carry_in_B = carry_runs.longest_runs(*carry_runs.operand_digits(x_BxW), 2)
    wrong_B = (length_B >= 10) & (carry_in_B == 1) & (n_B > 0)
    cells = int((n_B > 0).sum()) * x_BxW.shape[1]
    return {"seq_wrong": wrong_B.sum(), "sym_wrong": wrong_B.sum(), "sym_total": cells}

  sweep = carry_runs.run_sweep(eval_step, None, task, mesh, [41, 61], [2, 12, 19], 20, 8, 3)
  assert len(sweep) == 12 and all(m["examples"] == 20 for m in sweep.values())
  wrong = {key: round(m["seq_error"] * 20) for key, m in sweep.items()}
  for n in (41, 61):
    assert [wrong[(n, 0, r)] for r in (2, 12, 19)] == [0, 0, 0]
    assert wrong[(n, 1, 12)] == wrong[(n, 1, 19)] == 20 and wrong[(n, 1, 2)] < 20
  table = carry_runs.format_sweep_table(sweep)
  assert "     61       yes     " in table and table.count("20/20") == 4
  with pytest.raises(ValueError, match="a run of 20 pairs does not fit 20-digit operands"):
    carry_runs.run_sweep(eval_step, None, task, mesh, [41], [20], 4, 4, 0)


@pytest.mark.parametrize("base", [2, 4, 10])
def test_whole_runs_span_the_number_above_the_lowest_pair(base):
  k, rng = 12, np.random.default_rng(base)
  digits = lambda x: [(x // base**i) % base for i in range(k)]
  for split in probes.SPLITS:
    for carry_in in (False, True):
      pairs = probes.whole_runs(rng, base, k, split, carry_in, 20)
      for a, b in pairs:
        da, db = digits(a), digits(b)
        assert max(a, b) < base**k and all(x + y == base - 1 for x, y in zip(da[1:], db[1:]))
        assert (da[0] + db[0] >= base) == carry_in and (carry_in or da[0] + db[0] <= base - 2)
        # with a carry the sum is the lowest digit, zeros, and a 1 at digit k
        assert carry_in == ((a + b) // base == base ** (k - 1))
        if split != "mixed":
          assert set((da if split == "a" else db)[1:]) == {base - 1}
          assert set((db if split == "a" else da)[1:]) == {0}
  with pytest.raises(ValueError, match="split must be one of"):
    probes.whole_runs(rng, base, k, "both", True, 1)
  with pytest.raises(ValueError, match="needs operands of 2 or more digits"):
    probes.whole_runs(rng, base, 1, "a", True, 1)


def test_reach_finds_the_lowest_wrong_column_per_split_and_carry():
  """A 'model' wrong in column 7 (and above) where the run is all in a and a carry enters it,
  and in the top column where it is all in b and none enters: the reach says exactly that."""
  task, mesh = tasks.get_task("badd"), parallel.make_mesh()

  def answer(x_BxW, target_BxW):
    a_BxK, b_BxK = carry_runs.operand_digits(x_BxW)
    k = a_BxK.shape[1]
    pred_BxW = target_BxW.copy()
    in_a = (b_BxK[:, 1:] == 0).all(1) & (a_BxK[:, 0] + b_BxK[:, 0] == 2)
    in_b = (a_BxK[:, 1:] == 0).all(1) & (a_BxK[:, 0] + b_BxK[:, 0] == 0)
    pred_BxW[in_a, 7:k] = 3 - pred_BxW[in_a, 7:k]  # symbols 1, 2 are the digits 0, 1
    pred_BxW[in_b, k] = 3 - pred_BxW[in_b, k]
    return pred_BxW

  got = carry_runs.reach(_answering(answer), None, task, mesh, [41, 61], 5, 4, 0)
  assert len(got) == 12 and all(v.shape == (5,) for v in got.values())
  for n, k in ((41, 20), (61, 30)):
    assert got[(n, 1, "a")].tolist() == [7] * 5 and got[(n, 0, "b")].tolist() == [k] * 5
    others = [key for key in got if key[0] == n and key not in ((n, 1, "a"), (n, 0, "b"))]
    assert all((got[key] == -1).all() for key in others)
  table = carry_runs.format_reach_table(got)
  assert "     41       yes      a      5/5                         7       7" in table
  assert "     61        no      b      5/5                        30      30" in table
  assert table.count("0/5") == 8 and len(table.splitlines()) == 14


def test_evaluate_prints_the_carry_run_tables_and_refuses_what_does_not_fit():
  proc = run_module(
    "ngpu_jax.tools.evaluate",
    "--workdir=badd",
    "--lengths=41",
    "--examples=24",
    "--probe_examples=0",
    "--carry_runs",
    "--run_sweep=4,19",
    "--run_examples=8",
    "--reach",
  )
  assert proc.returncode == 0, proc.stderr[-3000:]
  rest, reach_table = proc.stdout.split("the reach of the carries")
  runs_table, sweep_table = rest.split("one planted run of exactly r pairs")
  reach = [r.split() for r in reach_table.splitlines() if r.strip().startswith("41 ")]
  assert [(r[1], r[2]) for r in reach] == [(c, s) for c in ("no", "yes") for s in probes.SPLITS]
  assert all(r[3].endswith("/8") for r in reach)
  assert "by the longest run of digit pairs summing to base-1" in runs_table
  assert carry_runs.COLUMN_HEADING in runs_table and "     41  0 wrong in the answer" in runs_table
  line = next(r for r in runs_table.splitlines() if r.strip().startswith("41") and "no" in r)
  assert sum(int(c.split("/")[1]) for c in line.split()[2:] if "/" in c) > 0
  sweep = [r.split() for r in sweep_table.splitlines() if r.strip().startswith("41 ")]
  assert [r[1] for r in sweep] == ["no", "yes"]
  assert all(c.endswith("/8") for r in sweep for c in r[2:]) and len(sweep[0]) == 4
  proc = run_module("ngpu_jax.tools.evaluate", "--workdir=badd", "--lengths=41", "--run_sweep=20")
  assert proc.returncode != 0
  assert "--run_sweep: a run of 20 pairs does not fit 20-digit operands (length 41)" in proc.stderr
  proc = run_module("ngpu_jax.tools.evaluate", "--workdir=copy", "--carry_runs")
  assert proc.returncode != 0
  assert "--carry_runs: carry runs are defined for sums (badd, qadd, add), not copy" in proc.stderr
  proc = run_module("ngpu_jax.tools.evaluate", "--workdir=copy", "--reach")
  assert proc.returncode != 0
  assert "--reach: carry runs are defined for sums (badd, qadd, add), not copy" in proc.stderr
