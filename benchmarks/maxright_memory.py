"""A diagnostic: does AdamW, normalising MAXRIGHT's two conflicting gradients one step at a time,
lose their net, the direction that slides along the kink of its max (docs/tiny-targets.md)?

On the kink MAXRIGHT alternates between ∇f_sft and ∇f_dpo, which largely cancel; AdamW scales
each up to about lr per coordinate, and the sliding direction is the small residual of two large
normalised steps. Mix's AdamW sees the net, λ ∇f_dpo + (1 − λ) ∇f_sft, and normalises that.

:class:`SharedMemory` keeps MAXRIGHT's choices (one gradient per step) and steps the optimizer on
Σ_k s_k ĝ_k, ĝ_k the latest gradient of objective k (the memory of ALRIGHT's ``memory`` step,
:class:`toyopt.llm.optim.GradientMemory`) and s_k MAXRIGHT's recent share of steps on k: a
bias-corrected moving average, factor ``MAXRIGHT_MEMORY_BETA`` (default 0.9), of its one-hot
choices (Σ_k s_k = 1). That estimates MAXRIGHT's own time-averaged direction; AdamW's moments see
it as Mix's see the mixed gradient. ``MAXRIGHT_MEMORY_CLIP``: ``sum`` (default; as
``GradientMemory``) clips the weighted sum, as Mix's gradient is clipped; ``each`` clips each
gradient on its own before it is stored, as plain MAXRIGHT's steps are (SFT's gradient, about ten
times DPO's, cut to norm 1), so the sum is the share-weighted average of the steps plain MAXRIGHT
would take (its norm at most 1: the second clipping does nothing). Runs ``toyopt-llm`` with every argument
passed through, MAXRIGHT's optimizer replaced; the other rules are unchanged. For example::

    python -m benchmarks.maxright_memory train --model tiny --rule maxright --lam 0.9 --seed 1 \\
        --optima runs/exp-memory/seed-1/optima.json --eval-every 100 \\
        --output-dir runs/exp-memory/seed-1/maxright-lam0.9 --threads 1
    python -m benchmarks.maxright_target runs/exp-memory
"""

from __future__ import annotations

import os
import sys

import toyopt.llm.setup as setup
import toyopt.llm.train as train
from toyopt.llm.__main__ import main
from toyopt.llm.optim import GradientMemory, clip_
from toyopt.rules import OBJECTIVES

BETA = float(os.environ.get("MAXRIGHT_MEMORY_BETA", "0.9"))
CLIP = os.environ.get("MAXRIGHT_MEMORY_CLIP", "sum")
if CLIP not in ("sum", "each"):
    raise SystemExit(f"MAXRIGHT_MEMORY_CLIP={CLIP}: give sum or each")


class SharedMemory(GradientMemory):
    """:class:`GradientMemory` whose weights are the recent shares of the steps on each objective
    (bias-corrected moving average, factor ``beta``, of the one-hot choices) instead of Mix's."""

    def __init__(self, base, beta: float = BETA, clip: str = CLIP, names=OBJECTIVES):
        super().__init__(base, dict.fromkeys(names, 0.0))
        self.beta, self.clip = beta, clip
        self.ema = dict.fromkeys(names, 0.0)
        self.n = 0

    def transform(self, weights, max_norm):
        self.n += 1
        for k in self.ema:
            self.ema[k] = self.beta * self.ema[k] + (1 - self.beta) * float(weights.get(k, 0) > 0)
        self.mix = {k: v / (1 - self.beta**self.n) for k, v in self.ema.items()}
        if self.clip == "each":
            clip_(self.params(), max_norm)
        super().transform(weights, max_norm)

    def state_dict(self) -> dict:
        return {**super().state_dict(), "ema": dict(self.ema), "n": self.n}

    def load_state_dict(self, state: dict) -> None:
        super().load_state_dict(state)
        self.ema = {k: float(v) for k, v in state["ema"].items()}
        self.n = int(state["n"])
        self.mix = {k: v / (1 - self.beta ** max(self.n, 1)) for k, v in self.ema.items()}


_plain = setup.build_optimizer


def build_optimizer(cfg, model, prepare=None):
    if cfg.rule != "maxright":
        return _plain(cfg, model, prepare)
    params = [p for p in model.parameters() if p.requires_grad]
    return SharedMemory(setup.base_optimizer(cfg, params))


if __name__ == "__main__":
    train.build_optimizer = build_optimizer  # the trainer's own name for it
    sys.exit(main(sys.argv[1:]))
