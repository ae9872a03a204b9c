"""A diagnostic: does MAXRIGHT's zig-zag across the kink of its max cost it its target at large λ
(docs/tiny-targets.md)? ``MaxRightOnKink`` is MAXRIGHT, except that while the two weighted gaps
on the batch are within ``MARGIN`` of each other (relative to the larger) it steps on both
objectives with weights ½, ½: the average of the zig-zag's two alternating steps, taken at once,
at Mix's cost (two gradients) on those steps. Runs ``toyopt-llm`` with every argument passed
through, MAXRIGHT replaced by this variant; the other rules are unchanged. For example::

    python -m benchmarks.maxright_kink study --model tiny --eval-every 100 \\
        --lams 0.75,0.9 --seeds 1,2,3 --rules maxright,mix --output-dir runs/tiny-kink
    python -m benchmarks.maxright_target runs/tiny-kink
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass

import numpy as np

import toyopt.llm.setup as setup
import toyopt.llm.train as train
from toyopt.llm.__main__ import main
from toyopt.rules import MaxRight, larger_gap, weighted_gaps

MARGIN = float(os.environ.get("MAXRIGHT_KINK_MARGIN", "0.1"))


@dataclass(frozen=True)
class MaxRightOnKink(MaxRight):
    def choose(self, state, step, values):
        gaps = weighted_gaps(self.lam, self.optima, values)
        weights = larger_gap(self.lam, gaps)
        top = np.maximum(np.abs(gaps["dpo"]), np.abs(gaps["sft"]))
        on_kink = np.abs(gaps["dpo"] - gaps["sft"]) <= MARGIN * top
        return {k: np.where(on_kink, 0.5, w) for k, w in weights.items()}, state


def build_rule(cfg):
    rule = setup.build_rule(cfg)
    return MaxRightOnKink(rule.lam, rule.optima) if cfg.rule == "maxright" else rule


if __name__ == "__main__":
    train.build_rule = build_rule  # the trainer's own name for it
    sys.exit(main(sys.argv[1:]))
