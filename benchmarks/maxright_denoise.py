"""A diagnostic: does the noise of MAXRIGHT's comparisons (the two weighted gaps of one 8-row batch
each) keep it from its target at large λ (docs/tiny-targets.md)? MAXRIGHT with less noisy values
to compare, the step itself unchanged (the step's own batch, one gradient). ``MAXRIGHT_DENOISE``:

- ``ema:B`` (default ``ema:0.9``): an exponential moving average, factor B, of each objective's
  batch values (bias-corrected as Adam's moments), compared instead of the batch values; free.
- ``batch:N``: both values on an N-row batch (N pairs for DPO) drawn from the training set at each
  step, instead of the step's 8 rows; N/8 times the forward passes of a value refresh.
- ``heldout:N``: both values on N rows (pairs) of the *held-out* sets drawn at each step, to be
  compared with held-out optima (give ``--optima`` a file whose ``sft``/``dpo`` are the held-out
  values). An upper bound on what comparing values on a validation split could do for the
  held-out gap: the rule then sees the very rows it is scored on.
- ``rotate:C`` (with ``--validation-rows N``): the validation split in chunks of C rows (pairs);
  the first comparison scores every chunk, each later one re-scores the next chunk of each
  objective and compares the weighted means of every chunk's latest values (each at most ⌈N/C⌉ − 1
  steps old): the whole split's precision at the forward passes of C rows per objective and step.
  No checkpoint keeps the chunks' values (a diagnostic: a resumed run starts them afresh).

Runs ``toyopt-llm`` with every argument passed through, MAXRIGHT replaced by this variant; the
other rules are unchanged. For example::

    MAXRIGHT_DENOISE=ema:0.9 python -m benchmarks.maxright_denoise train --model tiny \\
        --rule maxright --lam 0.9 --seed 1 --optima runs/exp-plain/seed-1/optima.json \\
        --eval-every 100 --output-dir runs/exp-ema/seed-1/maxright-lam0.9
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass

import numpy as np
import torch

import toyopt.llm.setup as setup
import toyopt.llm.train as train
from toyopt.llm.__main__ import main
from toyopt.llm.backend import LMBackend, Objective, batch_indices, target_tokens
from toyopt.llm.objectives import batch_stream
from toyopt.llm.scoring import evaluate_objectives
from toyopt.rules import OBJECTIVES, MaxRight, larger_gap, weighted_gaps

KIND, _, ARG = os.environ.get("MAXRIGHT_DENOISE", "ema:0.9").partition(":")
if KIND not in ("ema", "batch", "heldout", "rotate"):
    raise SystemExit(f"MAXRIGHT_DENOISE={KIND}:{ARG}: give ema:B, batch:N, heldout:N or rotate:C")
BETA = float(ARG) if KIND == "ema" else 0.0
WIDE = int(ARG) if KIND in ("batch", "heldout", "rotate") else 0


@dataclass(frozen=True)
class EmaMaxRight(MaxRight):
    """MAXRIGHT on bias-corrected moving averages (factor BETA) of the batch values."""

    def init(self, seeds):
        state = super().init(seeds)
        zero = np.zeros(state["seeds"].shape)
        return {**state, "n": zero, **{f"ema_{k}": zero for k in OBJECTIVES}}

    def choose(self, state, step, values):
        if values is None:
            raise ValueError("MAXRIGHT needs both objective values at every step")
        n = state["n"] + 1
        ema = {k: BETA * state[f"ema_{k}"] + (1 - BETA) * np.asarray(values[k]) for k in OBJECTIVES}
        mean = {k: ema[k] / (1 - BETA**n) for k in OBJECTIVES}
        weights = larger_gap(self.lam, weighted_gaps(self.lam, self.optima, mean))
        return weights, {**state, "n": n, **{f"ema_{k}": ema[k] for k in OBJECTIVES}}


class WideValues(LMBackend):
    """``values()`` on WIDE rows (pairs) of each objective drawn at each step (one process), from
    its training set, or with ``held`` (the held-out :class:`Objective` of each name, attached
    after the run is built: ``heldout:N``) from its held-out set."""

    held: dict[str, Objective] | None = None

    def values(self):
        step, out = self.next_step, {}
        with torch.no_grad():
            for name, obj in (self.held or self.by_name).items():
                n = len(obj.rows) if obj.kind == "sft" else len(obj.rows) // 2
                idx = batch_indices(self.seed, step, n, WIDE, obj.stream)
                if obj.kind == "sft":
                    total = max(target_tokens([obj.rows[i] for i in idx]), 1)
                    out[name] = float(self.sft_share(obj, idx, total))
                else:
                    out[name] = float(self.pair_share(obj, idx)) * self.batch_size / WIDE
        return {k: np.array([v]) for k, v in out.items()}


def attach_held_out(build):
    """Wrap ``Run._build`` to hand the backend the held-out rows and reference log-probs."""

    def _build(self, cfg, engine):
        build(self, cfg, engine)
        ref = self.ref.eval or {}
        self.backend.held = {k: Objective(kind, self.data.eval[k], batch_stream(k), ref.get(k),
                                          self.losses.get(k))
                             for k, kind in self.data.kinds.items()}  # fmt: skip

    return _build


class RotatingSplit:
    """``compare`` for a run with a validation split (``rotate:C``): chunks of WIDE rows (pairs),
    each objective's value the weighted mean of its chunks' latest values (weights: response
    tokens for SFT, pairs for a preference set, so that with every chunk fresh it is the split's
    value); the first call scores every chunk, each later call the next one of each objective."""

    def __init__(self, run):
        self.run, self.calls, self.chunks, self.latest, self.weights = run, 0, {}, {}, {}
        for name, kind in run.data.kinds.items():
            rows, ref = run.data.val[name], (run.ref.val or {}).get(name)
            if kind == "sft":
                self.chunks[name] = [(rows[i : i + WIDE], None, None, target_tokens(rows[i : i + WIDE]))
                                     for i in range(0, len(rows), WIDE)]  # fmt: skip
            else:
                n = len(rows) // 2
                self.chunks[name] = [(rows[2 * i : 2 * (i + WIDE)],
                                      None if ref is None else ref[i : i + WIDE],
                                      run.losses.get(name), min(WIDE, n - i))
                                     for i in range(0, n, WIDE)]  # fmt: skip
            self.latest[name] = [0.0] * len(self.chunks[name])
            self.weights[name] = [w for *_, w in self.chunks[name]]

    def __call__(self) -> dict[str, float]:
        run, out = self.run, {}
        for name, chunks in self.chunks.items():
            todo = range(len(chunks)) if self.calls == 0 else [(self.calls - 1) % len(chunks)]
            for j in todo:
                rows, ref, loss, _ = chunks[j]
                scored = evaluate_objectives(run.model, {name: (rows, ref, loss)},
                                             run.tok.pad_token_id, run.cfg.eval_batch_size,
                                             run.engine)  # fmt: skip
                self.latest[name][j] = scored[f"eval_{name}"]
            weights = self.weights[name]
            out[name] = sum(v * w for v, w in zip(self.latest[name], weights)) / sum(weights)
        self.calls += 1
        return out


def rotating_split(build):
    """Wrap ``Run._build`` to compare the validation split chunk by chunk (``rotate:C``)."""

    def _build(self, cfg, engine):
        build(self, cfg, engine)
        if not self.data.val:
            raise SystemExit("MAXRIGHT_DENOISE=rotate:C needs --validation-rows N")
        self.backend.compare = RotatingSplit(self)

    return _build


def build_rule(cfg):
    rule = setup.build_rule(cfg)
    return EmaMaxRight(rule.lam, rule.optima) if cfg.rule == "maxright" else rule


if __name__ == "__main__":
    if KIND == "ema":
        train.build_rule = build_rule  # the trainer's own name for it
    elif KIND == "rotate":
        train.Run._build = rotating_split(train.Run._build)
    else:
        train.LMBackend = WideValues  # only MAXRIGHT asks for values
        if KIND == "heldout":
            train.Run._build = attach_held_out(train.Run._build)
    sys.exit(main(sys.argv[1:]))
