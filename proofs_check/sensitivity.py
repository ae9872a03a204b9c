"""How small an error each check detects: bisection on the size of four kinds of error.

Each error is a one-parameter family (size 0 = the correct run) applied to the real rules:

- coin bias δ: ALRIGHT steps on DPO with probability λ + δ (toy2d, λ = ½);
- slow decay ε: the step is α₀/(t+1)^(½ − ε) instead of α₀/√(t+1) (ε = ½: a constant step);
- optima error ε: MAXRIGHT is given f*_dpo + ε;
- plateau shift ε: C1's closed-form plateau prediction is off by ε.

For each (error, record kind) the smallest size that makes a record of that kind fail is found
by bisection on log ε between the family's range ends, with the budgets of the full or the
quick run (:mod:`proofs_check.suite`). Bisection assumes detection is monotone in ε; the fixed
seeds make every evaluation deterministic. ``python -m proofs_check --sensitivity`` prints the
table (both modes); docs/sensitivity.md shows it, beside the claims table of docs/claims.md.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

from proofs_check.c1_sequential import check_c1, step_size
from proofs_check.c2_alright import check_c2
from proofs_check.c3_maxright import check_c3
from proofs_check.c6_tradeoff import check_c6
from proofs_check.record import Record
from proofs_check.suite import Settings, settings
from toyopt.pareto import Geometry
from toyopt.problems import get_problem
from toyopt.rules import AlRight

STEPS = 8  # bisection halvings of the log range: the size is found to a factor (hi/lo)^(1/256)


@dataclass(frozen=True)
class PowerSchedule:
    """α_t = lr / (t + 1)^power (a schedule is any t ↦ α_t)."""

    lr: float
    power: float

    def __call__(self, t: int) -> float:
        return self.lr / (t + 1) ** self.power


@dataclass(frozen=True)
class Probe:
    error: str  # what is wrong, with its parameter's name
    kinds: tuple[str, ...]  # the record kinds watched
    lo: float
    hi: float
    run: Callable[[float, Settings], list[Record]]  # size, budgets -> records


def _toy():
    return get_problem("toy2d")


def _optima(eps: float) -> dict[str, float]:
    f_star = Geometry(_toy()).f_star
    return {"sft": f_star["sft"], "dpo": f_star["dpo"] + eps}


def probes() -> list[Probe]:
    toy = _toy()
    alpha0 = step_size(toy)
    return [
        Probe("ALRIGHT coin bias δ (toy2d, λ = ½)", ("C2 bound", "C2 rate"), 1e-4, 0.5,
              lambda d, s: check_c2(toy, "toy2d", 0.5, s.c2_steps, s.c2_seeds,
                                    rule=AlRight(0.5 + d))),
        Probe("ALRIGHT coin bias δ (toy2d, λ = ½)", ("C6 same point",), 1e-4, 0.5,
              lambda d, s: check_c6(toy, "toy2d", (0.5,), s.c6_steps, s.c6_seeds,
                                    alright_lam=0.5 + d, splits=False)),
        Probe("ALRIGHT step α₀/(t+1)^(½−ε) (toy2d)", ("C2 bound", "C2 rate"), 1e-3, 0.5,
              lambda e, s: check_c2(toy, "toy2d", 0.5, s.c2_steps, s.c2_seeds,
                                    schedule=PowerSchedule(alpha0, 0.5 - e))),
        Probe("MAXRIGHT step α₀/(t+1)^(½−ε) (toy2d, λ = ½)", ("C3 bound", "C3 convergence"),
              1e-3, 0.5, lambda e, s: check_c3(toy, "toy2d", (0.5,), s.c3_steps, stale=(),
                                             schedule=PowerSchedule(alpha0, 0.5 - e))),
        Probe("MAXRIGHT given f*_dpo + ε (toy2d, λ = ½)", ("C3 bound", "C3 convergence"),
              1e-4, 1.0, lambda e, s: check_c3(toy, "toy2d", (0.5,), s.c3_steps, stale=(),
                                             optima=_optima(e))),
        Probe("MAXRIGHT given f*_dpo + ε (toy2d)",
              ("C6 smallest ideal distance", "C6 ideal distance tie"), 1e-4, 1.0,
              lambda e, s: check_c6(toy, "toy2d", (0.25, 0.5), s.c6_steps, 2,
                                    maxright_optima=_optima(e), splits=False)),
        Probe("C1 plateau prediction + ε (toy2d, λ = ½)", ("C1 plateau",), 1e-7, 1.0,
              lambda e, s: check_c1(toy, "toy2d", (0.5,), s.c1_budgets, (), plateau_shift=e)),
    ]  # fmt: skip


def smallest_detected(
    probe: Probe, kind: str, mode: Settings, runs: dict | None = None
) -> tuple[float, str]:
    """(size, how): the smallest detected size; how is 'found', 'below range' or 'never'.
    ``runs`` caches the records per size (one run serves every kind of the probe)."""
    runs = {} if runs is None else runs

    def detected(size: float) -> bool:
        if size not in runs:
            runs[size] = probe.run(size, mode)
        return any(r.kind == kind and not r.holds for r in runs[size])

    if detected(probe.lo):
        return probe.lo, "below range"
    if not detected(probe.hi):
        return probe.hi, "never"
    lo, hi = math.log10(probe.lo), math.log10(probe.hi)
    for _ in range(STEPS):
        mid = (lo + hi) / 2
        lo, hi = (lo, mid) if detected(10**mid) else (mid, hi)
    return 10**hi, "found"


def rows() -> list[tuple[str, str]]:
    """(error, record kind) of every row of the table, without running anything."""
    return [(p.error, kind) for p in probes() for kind in p.kinds]


def _cell(size: float, how: str) -> str:
    if how == "below range":
        return f"≤ {size:.2g}"
    if how == "never":
        return f"not up to {size:.2g}"
    return f"{size:.2g}"


def table(progress: Callable[[str], None] = lambda _: None) -> str:
    """The Markdown table (quick and full budgets); minutes of runs."""
    lines = ["| error | record | smallest detected, --quick | full |", "|---|---|---|---|"]
    for probe in probes():
        runs: dict[bool, dict] = {True: {}, False: {}}
        for kind in probe.kinds:
            progress(f"{probe.error}: {kind}")
            cells = [_cell(*smallest_detected(probe, kind, settings(q), runs[q]))
                     for q in (True, False)]  # fmt: skip
            lines.append(f"| {probe.error} | {kind} | {cells[0]} | {cells[1]} |")
    return "\n".join(lines)
