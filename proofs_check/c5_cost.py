"""C5 — cost per optimizer step: ALRIGHT and MAXRIGHT cost what sequential costs, Mix twice.

Claim (paper's cost table). Per step and per run: sequential 1 gradient / 0 function values,
ALRIGHT 1 / 0, MAXRIGHT 1 / 2, memory-efficient MAXRIGHT with refresh period K 1 / (2/K),
Mix 2 / 0. These are exact counts, so the check is an exact equality (the budget is a multiple
of K).

Two independent counts are compared with the table: the loop's
:class:`toyopt.loop.Counters`, and a :class:`CountingProblem` wrapped around the problem that
counts, per row, every gradient the backend really computes and every value computed *outside*
a gradient step (the loss a gradient step returns is a by-product; see ``toyopt.backends``).

Example::

    >>> from proofs_check.c5_cost import check_c5
    >>> from toyopt.problems import get_problem
    >>> all(r.holds for r in check_c5(get_problem("toy2d"), "toy2d"))
    True
"""

from __future__ import annotations

from collections.abc import Callable
from fractions import Fraction

import numpy as np

from proofs_check.record import Record, make_record
from toyopt.backends import NumpyBackend
from toyopt.loop import train
from toyopt.pareto import Geometry
from toyopt.problems.base import Problem, as_rows
from toyopt.rules import AlRight, MaxRight, Mix, Rule, Sequential, StaleMaxRight
from toyopt.schedules import Schedule

STEPS, ROWS = 200, 3


class CountingProblem(Problem):
    """Delegates to ``base`` and counts the rows of every grad() and value() call."""

    def __init__(self, base: Problem):
        self.base, self.kind, self.dim, self.start = base, base.kind, base.dim, base.start
        self.objectives = base.objectives
        self.grads = dict.fromkeys(base.objectives, 0)
        self.values = dict.fromkeys(base.objectives, 0)

    def value(self, objective, theta):
        self.values[objective] += len(as_rows(theta))
        return self.base.value(objective, theta)

    def grad(self, objective, theta):
        self.grads[objective] += len(as_rows(theta))
        return self.base.grad(objective, theta)

    def hessian(self, objective, theta):
        return self.base.hessian(objective, theta)

    def span(self, objective):
        return self.base.span(objective)

    def recession_rows(self, objective):
        return self.base.recession_rows(objective)

    def grad_bound(self, objective):
        return self.base.grad_bound(objective)

    def smoothness(self, objective):
        return self.base.smoothness(objective)

    def to_json(self):
        return self.base.to_json()


def expected_costs(lam: float, optima: dict[str, float]) -> list[tuple[Rule, Fraction, Fraction]]:
    """(rule, gradients per step, function values per step) from the paper's cost table."""
    rules: list[tuple[Rule, Fraction, Fraction]] = [
        (Sequential("sft", STEPS // 3), Fraction(1), Fraction(0)),
        (Sequential("dpo", STEPS // 3), Fraction(1), Fraction(0)),
        (AlRight(lam), Fraction(1), Fraction(0)),
        (MaxRight(lam, optima), Fraction(1), Fraction(2)),
        (Mix(lam), Fraction(2), Fraction(0)),
    ]
    for k in (1, 10, 100):
        rules.append((StaleMaxRight(lam, optima, k), Fraction(1), Fraction(2, k)))
    return rules


def measure(problem: Problem, rule: Rule) -> tuple[Fraction, Fraction, Fraction, Fraction]:
    """(grads, values) per step and row from the loop's counters and from the problem."""
    counting = CountingProblem(problem)
    backend = NumpyBackend(counting, np.arange(ROWS))
    _, counters = train(backend, rule, rule.init(np.arange(ROWS)), STEPS, Schedule("invsqrt", 0.1))
    per = ROWS * STEPS
    loop_g = Fraction(sum(counters.grad_evals.values()), per)
    loop_f = Fraction(sum(counters.func_evals.values()), per)
    prob_g = Fraction(sum(counting.grads.values()), per)
    # A gradient step also returns the loss (one value() per gradient): not a separate cost.
    prob_f = Fraction(sum(counting.values.values()) - sum(counting.grads.values()), per)
    return loop_g, loop_f, prob_g, prob_f


def check_c5(
    problem: Problem,
    name: str,
    lam: float = 0.5,
    *,
    wrap: Callable[[Rule], Rule] | None = None,
) -> list[Record]:
    """Two records per rule (gradients, function values). ``wrap`` alters the rule (broken
    variants, e.g. one that asks for values it does not need)."""
    records = []
    for rule, grads, funcs in expected_costs(lam, Geometry(problem).f_star):
        label = rule.name + (f" K={rule.refresh_every}" if hasattr(rule, "refresh_every") else "")
        lg, lf, pg, pf = measure(problem, wrap(rule) if wrap else rule)
        for kind, what, loop, prob, want in (
            ("C5 gradients", "gradients", lg, pg, grads),
            ("C5 values", "function values", lf, pf, funcs),
        ):
            records.append(make_record(
                kind, f"{name} {label}", f"{what} per step per row (loop counters)",
                float(loop), "==", float(want), extra_ok=bool(loop == want and prob == want),
                note=f"problem-side count {prob}; expected {want}",
            ))  # fmt: skip
    return records
