"""Step-size schedules α_t for t = 0, 1, 2, … (the t-th optimizer step).

The theory's decaying step α₀/√t counts steps from 1, so step index t uses α₀/√(t+1).

``linear`` and ``cosine`` are the decays language-model trainers use by default (TRL's
``lr_scheduler_type="linear"``; OpenRLHF's ``cosine_with_min_lr`` with a 3 % warmup and a floor of
0.1·lr): they need the run's budget ``steps`` = T and decay over the steps after the warmup,
W ≤ t < T, with progress p = (t − W)/(T − W) ∈ [0, 1):

- linear: α_t = lr·(m + (1 − m)(1 − p)),
- cosine: α_t = lr·(m + (1 − m)·½(1 + cos πp)),

with m = ``min_ratio`` (0: decay to 0, as TRL; the last step keeps a small positive α). A warmup of
W steps (any kind) multiplies α_t by (t + 1)/(W + 1) for t < W, rising linearly towards lr.

:class:`Restarted` runs one schedule, then another from its own step 0: the step sizes of two
trainings run one after the other (sequential SFT → DPO as it is run in practice: a TRL SFT run,
then a DPO run, each with its warmup and decay).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

SCHEDULES: dict[str, str] = {
    "constant": "alpha_t = lr",
    "invsqrt": "alpha_t = lr / sqrt(t + 1)  (the rate the convergence theorems use)",
    "inv": "alpha_t = lr / (t + 1)",
    "linear": "lr decayed linearly to a floor (0 by default) after the warmup (TRL's default)",
    "cosine": "lr decayed along a half cosine to a floor after the warmup (OpenRLHF's default)",
}
DECAYS = ("linear", "cosine")


@dataclass(frozen=True)
class Schedule:
    """α_t for kind ``kind`` and base step ``lr``; ``steps`` (the budget T) is needed by the
    decays, ``warmup`` (W steps) and ``min_ratio`` (m) are optional (module docstring)."""

    kind: str
    lr: float
    steps: int | None = None
    warmup: int = 0
    min_ratio: float = 0.0

    def __post_init__(self) -> None:
        if self.kind not in SCHEDULES:
            raise ValueError(
                f"unknown schedule {self.kind!r}; choose one of {', '.join(SCHEDULES)}"
            )
        if not (self.lr > 0 and math.isfinite(self.lr)):
            raise ValueError(f"the step size lr must be positive and finite, got {self.lr}")
        if self.kind in DECAYS and (self.steps is None or self.steps < 1):
            raise ValueError(f"schedule {self.kind!r} needs the budget steps >= 1")
        if self.warmup < 0 or (self.steps is not None and self.warmup >= max(self.steps, 1)):
            raise ValueError(f"warmup must lie in [0, steps), got {self.warmup}")
        if not 0.0 <= self.min_ratio <= 1.0:
            raise ValueError(f"min_ratio must lie in [0, 1], got {self.min_ratio}")

    def __call__(self, t: int) -> float:
        warm = (t + 1) / (self.warmup + 1) if t < self.warmup else 1.0
        return warm * self.lr * self.factor(t)

    def factor(self, t: int) -> float:
        """α_t / lr before the warmup factor."""
        if self.kind == "constant":
            return 1.0
        if self.kind == "invsqrt":
            return 1.0 / math.sqrt(t + 1)
        if self.kind == "inv":
            return 1.0 / (t + 1)
        p = min(max(t - self.warmup, 0) / (self.steps - self.warmup), 1.0)
        shape = 1.0 - p if self.kind == "linear" else 0.5 * (1.0 + math.cos(math.pi * p))
        return self.min_ratio + (1.0 - self.min_ratio) * shape


@dataclass(frozen=True)
class Restarted:
    """α_t = first(t) for t < ``at``, then second(t − at): each stage its own schedule."""

    first: Schedule
    second: Schedule
    at: int

    def __call__(self, t: int) -> float:
        return self.first(t) if t < self.at else self.second(t - self.at)
