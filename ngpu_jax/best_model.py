"""The best model of a run so far, by its periodic evaluations on fresh problems.

A run's generalization often peaks before its last step (a front that reaches 51 at step
1,500 and falls back to 41 later), so the model to study or ship is chosen on the fresh
problems of every periodic evaluation, not taken from the end. It is kept as an exported
model directory, WORKDIR/best (config.json, params/, step.json with its step and scores),
which every tool that takes --model or --workdir loads.
"""

import json
import os

from ngpu_jax import evaluation, loading, parallel, workdir_files

BEST_DIR = "best"


def rank(results: dict[int, dict], lengths=None, gate: float = 1.0) -> tuple[int, ...]:
  """Larger is better: with a gate below 1, first the longer front at that tolerance; then the
  longer front, the longer length measured, fewer wrong rows, fewer wrong symbols (summed over
  `lengths`, default all evaluated).

  The gate (the run's eval.far_gate) puts a model mostly right far out above one exact a little
  further: DNGPU bmul's step 7,000, 6% wrong at 801, over its later steps, as right to 401
  (0-2% of rows wrong) but 41-49% wrong at 801. With gate 1 every measured length is within
  it, so the key would only repeat the length measured.
  """
  summed = [results[n] for n in (results if lengths is None else lengths)]
  return (
    evaluation.generalization_front(results, gate) if gate < 1.0 else 0,
    evaluation.generalization_front(results),
    max(results),
    -round(sum(r["seq_error"] for r in summed), 9),
    -round(sum(r["symbol_error"] for r in summed), 9),
  )


class BestModel:
  """Keeps WORKDIR/best: the params of the best-ranked evaluation so far (ties: the earlier).

  At equal fronts an evaluation that measured the far lengths outranks one that did not, and
  errors are summed over the lengths both measured. Without the middle key the choice is not
  transitive: a near-only evaluation with fewer errors at 41-121 displaces a model good at
  401, and the next far evaluation, which collapsed at 401, displaces it in turn (DNGPU bmul,
  steps 3,000, 3,500 and 4,000).
  """

  def __init__(self, workdir: str):
    self.directory = os.path.join(workdir, BEST_DIR)
    self.info = loading.read_model_info(self.directory)

  def offer(self, step: int, results: dict[int, dict], params, config) -> bool:
    """Writes params as the best model if `results` rank above the best so far; True if so."""
    if self.info is not None:
      best = {int(n): r for n, r in self.info["eval"].items()}
      shared = set(best) & set(results)
      gate = config.eval.far_gate
      if shared and rank(results, shared, gate) <= rank(best, shared, gate):
        return False
    self.info = {
      "step": step,
      "front": evaluation.generalization_front(results),
      "eval": {
        str(n): {k: r[k] for k in ("seq_error", "symbol_error")} for n, r in results.items()
      },
    }
    loading.write_model(params, config, self.info, self.directory)
    return True

  def rescore(self, lengths, gate: float, score, load) -> list[int]:
    """Scores the kept model at the `lengths` its record lacks; returns those scored.

    A run resumed with new far lengths would otherwise rank every later evaluation, which
    measured further, above a kept model that was never asked. Shortest first, stopping past a
    length wrong beyond `gate` as the periodic evaluation does. score(params, lengths) ->
    {length: result}; load(directory) -> params.
    """
    if self.info is None:
      return []
    record = {int(n): r for n, r in self.info["eval"].items()}
    params, scored = None, []
    for n in sorted(set(lengths) - set(record)):
      shorter = [m for m in record if m < n]
      if shorter and record[max(shorter)]["seq_error"] > gate:
        break
      params = load(self.directory) if params is None else params
      record.update({n: score(params, [n])[n]})
      scored.append(n)
    if scored:
      self.info["eval"] = {
        str(n): {k: r[k] for k in ("seq_error", "symbol_error")} for n, r in sorted(record.items())
      }
      self.info["front"] = evaluation.generalization_front(record)
      if parallel.is_main_process():
        path = os.path.join(self.directory, workdir_files.MODEL_STEP_FILE)
        with open(path + ".tmp", "w") as f:
          json.dump(self.info, f)
        os.replace(path + ".tmp", path)
    return scored
