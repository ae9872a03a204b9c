"""A diagnostic: MAXRIGHT with one AdamW state per objective, to test whether AdamW's moments,
shared by two objectives whose gradient norms differ about tenfold, keep MAXRIGHT from its target
at large λ (docs/tiny-targets.md). Runs ``toyopt-llm`` with every argument passed through, MAXRIGHT's
optimizer being :class:`toyopt.llm.optim.SplitState` (the ``split-state`` diagnostic of ALRIGHT);
the other rules are unchanged. For example::

    python -m benchmarks.maxright_split_state study --model tiny --eval-every 100 \\
        --lams 0.75,0.9 --seeds 1,2,3 --rules maxright,mix --output-dir runs/tiny-split
    python -m benchmarks.maxright_target runs/tiny-split
"""

from __future__ import annotations

import sys

import toyopt.llm.setup as setup
import toyopt.llm.train as train
from toyopt.llm.__main__ import main
from toyopt.llm.optim import SplitState

_plain = setup.build_optimizer


def build_optimizer(cfg, model, prepare=None):
    if cfg.rule != "maxright":
        return _plain(cfg, model, prepare)
    params = [p for p in model.parameters() if p.requires_grad]
    return SplitState(lambda: setup.base_optimizer(cfg, params))


if __name__ == "__main__":
    train.build_optimizer = build_optimizer  # the trainer's own name for it
    sys.exit(main(sys.argv[1:]))
