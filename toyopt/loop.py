"""The one training loop: choose → step → observe, for every rule and every backend.

Everything except the rule (data order, batches, losses, optimizer, logging) is this same code
for every method, so differences between methods come from the rule alone.

A backend owns the parameters (a batch of toy iterates, or a torch model) and offers
``values() -> {"sft": (S,), "dpo": (S,)}`` (no gradients; one entry per objective of the
problem, so K named objectives for a K-objective toy problem) and
``step(weights, lr, step) -> losses``: one update along Σ_k weights[k]·∇f_k, computing only the
objectives whose weight is non-zero in a row, and returning their values at the pre-step iterate.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np

from toyopt.errors import check_stops
from toyopt.rules import OBJECTIVES, Rule, State, Values, Weights


class Backend(Protocol):
    def values(self) -> dict[str, np.ndarray]: ...

    def step(self, weights: Weights, lr: float, step: int) -> dict[str, np.ndarray]: ...


@dataclass
class Counters:
    """Evaluations summed over the rows of the batch (C5 counts them per row and step); an
    objective beyond sft and dpo gets its entries when first counted."""

    grad_evals: dict[str, int] = field(default_factory=lambda: dict.fromkeys(OBJECTIVES, 0))
    func_evals: dict[str, int] = field(default_factory=lambda: dict.fromkeys(OBJECTIVES, 0))

    def per_step(self, rows: int, steps: int) -> dict[str, float]:
        """Average evaluations per row and per step, e.g. {"grad_sft": 0.5, ...}."""
        out = {f"grad_{k}": v / (rows * steps) for k, v in self.grad_evals.items()}
        out.update({f"func_{k}": v / (rows * steps) for k, v in self.func_evals.items()})
        return out


StepCallback = Callable[[int, Weights, Values, Values | None], None]


# An open-loop rule makes the choices of up to BLOCK steps at once, and of at most
# BLOCK_ELEMENTS (step, row) pairs: larger temporaries would be fresh pages on every operation.
BLOCK, BLOCK_ELEMENTS = 256, 16_384


def train(
    backend: Backend,
    rule: Rule,
    state: State,
    steps: int,
    schedule: Callable[[int], float],
    *,
    start: int = 0,
    counters: Counters | None = None,
    on_step: StepCallback | None = None,
    progress: bool = False,
) -> tuple[State, Counters]:
    """Run optimizer steps ``start … steps−1``; return the rule state and the counters.

    ``on_step(step, weights, losses, values)`` is called after each update (for logging,
    snapshots and checkpoints); ``values`` is what the rule asked for, else None. A rule with
    ``choose_block`` (its choice depends on the seed and the step only) makes its choices
    :data:`BLOCK` steps at a time; every other rule chooses step by step.
    """
    counters = counters or Counters()
    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=steps - start, desc=rule.name, leave=False)
    blocks = hasattr(rule, "choose_block")
    size = max(1, min(BLOCK, BLOCK_ELEMENTS // max(len(state["seeds"]), 1)))
    block: Weights = {}
    block_start = start
    for t in range(start, steps):
        values = None
        if blocks:
            if t == start or t - block_start == size:
                block_start, block = t, rule.choose_block(state, t, min(t + size, steps))
                _count(counters.grad_evals, block)
            weights = {k: w[t - block_start] for k, w in block.items()}
        else:
            if rule.wants_values(state, t):
                values = backend.values()
                for k in values:
                    counters.func_evals[k] = counters.func_evals.get(k, 0) + len(state["seeds"])
            weights, state = rule.choose(state, t, values)
            _count(counters.grad_evals, weights)
        losses = backend.step(weights, schedule(t), t)
        check_stops()  # a Ctrl-C or SIGTERM whose exception C code swallowed during the step
        state = rule.observe(state, weights, losses)
        if on_step is not None:
            on_step(t, weights, losses, values)
        if bar is not None:
            bar.update()
    if bar is not None:
        bar.close()
    return state, counters


def _count(grad_evals: dict[str, int], weights: Weights) -> None:
    """Add the rows (of a step or a block of steps) that compute each objective's gradient."""
    for k in weights:
        grad_evals[k] = grad_evals.get(k, 0) + int(np.count_nonzero(np.asarray(weights[k]) > 0))
