"""Step-size schedules α_t for t = 0, 1, 2, … (the t-th optimizer step).

The theory's decaying step α₀/√t counts steps from 1, so step index t uses α₀/√(t+1).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

SCHEDULES: dict[str, str] = {
    "constant": "alpha_t = lr",
    "invsqrt": "alpha_t = lr / sqrt(t + 1)  (the rate the convergence theorems use)",
    "inv": "alpha_t = lr / (t + 1)",
}


@dataclass(frozen=True)
class Schedule:
    kind: str
    lr: float

    def __post_init__(self) -> None:
        if self.kind not in SCHEDULES:
            raise ValueError(
                f"unknown schedule {self.kind!r}; choose one of {', '.join(SCHEDULES)}"
            )
        if not (self.lr > 0 and math.isfinite(self.lr)):
            raise ValueError(f"the step size lr must be positive and finite, got {self.lr}")

    def __call__(self, t: int) -> float:
        if self.kind == "constant":
            return self.lr
        if self.kind == "invsqrt":
            return self.lr / math.sqrt(t + 1)
        return self.lr / (t + 1)
