"""Deliberately broken variants: a check that cannot fail is not a check.

Each variant composes the real rule objects with one wrong ingredient (a biased λ, a step size
that does not decay, wrong optima, a perturbed prediction, a rule that asks for values it does
not need) and runs the same check. The tests assert that every variant makes its check fail.
Nothing here re-implements a rule.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from proofs_check.c1_sequential import check_c1
from proofs_check.c2_alright import alright_gaps, check_c2
from proofs_check.c3_maxright import check_c3
from proofs_check.c4_mix import check_c4
from proofs_check.c5_cost import check_c5
from proofs_check.c6_tradeoff import check_c6
from proofs_check.record import Record
from toyopt.pareto import Geometry
from toyopt.problems import get_problem
from toyopt.rules import AlRight, Mix, Rule, State
from toyopt.schedules import Schedule


@dataclass(frozen=True)
class AsksForValues:
    """Wraps a rule and requests both objective values at every step (wasted evaluations)."""

    inner: Rule

    @property
    def name(self) -> str:
        return self.inner.name

    def init(self, seeds: np.ndarray) -> State:
        return self.inner.init(seeds)

    def wants_values(self, state: State, step: int) -> bool:
        return True

    def choose(self, state, step, values):
        inner_values = values if self.inner.wants_values(state, step) else None
        return self.inner.choose(state, step, inner_values)

    def observe(self, state, weights, losses):
        return self.inner.observe(state, weights, losses)


def _wrong_optima(problem) -> dict[str, float]:
    f_star = Geometry(problem).f_star
    return {"sft": f_star["sft"], "dpo": f_star["dpo"] + 0.3}


def _constant_alright_step(problem, lam: float, t_max: int) -> Schedule:
    """ALRIGHT's own α₀ (= D/G from C2), but never decayed."""
    return Schedule("constant", alright_gaps(problem, lam, 1, 2)["alpha0"])


def variants(quick: bool = True) -> dict[str, Callable[[], list[Record]]]:
    """Named broken runs; each returns the records of the check it should break."""
    toy, quad = get_problem("toy2d"), get_problem("quad2d")
    t2 = 2000 if quick else 10_000
    return {
        "C1 plateau prediction perturbed by +0.05": lambda: check_c1(
            toy, "toy2d", budgets=(100, 1000), sweep=(), plateau_shift=0.05
        ),
        "C1 second stage secretly mixes both objectives": lambda: check_c1(
            toy, "toy2d", (0.5,), budgets=(100, 1000), sweep=(), stage2=Mix(0.5)
        ),
        "C2 ALRIGHT with a biased choice (λ+0.25)": lambda: [
            check_c2(toy, "toy2d", 0.5, t2, 64, rule=AlRight(0.75))
        ],
        "C2 ALRIGHT with a step that does not decay": lambda: [
            check_c2(toy, "toy2d", 0.5, t2, 64, schedule=_constant_alright_step(toy, 0.5, t2))
        ],
        "C3 MAXRIGHT with wrong optima (f*_dpo+0.3)": lambda: check_c3(
            toy, "toy2d", (0.5,), t2, stale=(), optima=_wrong_optima(toy)
        ),
        "C4 Mix run with λ+0.2": lambda: check_c4(quad, "quad2d", (0.5,), 1000, lam_used=0.7),
        "C4 Mix with step 2.2/L": lambda: check_c4(quad, "quad2d", (0.5,), 1000, lr_factor=2.2),
        "C5 rules that ask for values every step": lambda: check_c5(
            toy, "toy2d", wrap=AsksForValues
        ),
        "C6 ALRIGHT with a biased choice (λ+0.25)": lambda: check_c6(
            toy, "toy2d", (0.5,), t2, 32, alright_lam=0.75
        ),
        "C6 sequential that never switches": lambda: check_c6(
            toy, "toy2d", (0.5,), t2, 32, never_switch=True
        ),
    }
