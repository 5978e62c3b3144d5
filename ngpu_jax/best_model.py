"""The best model of a run so far, by its periodic evaluations on fresh problems.

A run's generalization often peaks before its last step (a front that reaches 51 at step
1,500 and falls back to 41 later), so the model to study or ship is chosen on the fresh
problems of every periodic evaluation, not taken from the end. It is kept as an exported
model directory, WORKDIR/best (config.json, params/, step.json with its step and scores),
which every tool that takes --model or --workdir loads.
"""

import os

from ngpu_jax import evaluation, loading

BEST_DIR = "best"


def rank(results: dict[int, dict]) -> tuple[int, float, float]:
  """Larger is better: the longer front, then fewer wrong rows, then fewer wrong symbols
  (summed over the evaluated lengths)."""
  return (
    evaluation.generalization_front(results),
    -round(sum(r["seq_error"] for r in results.values()), 9),
    -round(sum(r["symbol_error"] for r in results.values()), 9),
  )


class BestModel:
  """Keeps WORKDIR/best: the params of the best-ranked evaluation so far (ties: the earlier).

  Two evaluations are ranked on the lengths both measured, so one that also measured the
  far lengths and one that did not are still compared fairly.
  """

  def __init__(self, workdir: str):
    self.directory = os.path.join(workdir, BEST_DIR)
    self.info = loading.read_model_info(self.directory)

  def offer(self, step: int, results: dict[int, dict], params, config) -> bool:
    """Writes params as the best model if `results` rank above the best so far; True if so."""
    if self.info is not None:
      best = {int(n): r for n, r in self.info["eval"].items()}
      shared = set(best) & set(results)
      if shared and rank({n: results[n] for n in shared}) <= rank({n: best[n] for n in shared}):
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
