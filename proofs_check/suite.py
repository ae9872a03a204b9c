"""The instances and settings of the full and quick runs of ``python -m proofs_check``.

Random instances are drawn from the core's seeded generators (``random_loglinear``,
``random_quadratic``) with the seeds written here, so the table is reproducible. The worst-case
instances of :mod:`proofs_check.worst_cases` show that the C2 and C4 bounds are attained.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from proofs_check import llm
from proofs_check.c1_sequential import BUDGETS, MAIN_LAMS, SWEEP_LAMS, TAIL, check_c1
from proofs_check.c2_alright import check_c2
from proofs_check.c3_maxright import check_c3
from proofs_check.c4_mix import check_c4, check_c4_worst_cases
from proofs_check.c5_cost import check_c5
from proofs_check.c6_tradeoff import check_c6
from proofs_check.k_objectives import check_k3
from proofs_check.record import Record
from proofs_check.worst_cases import equal_curvature_quadratic
from toyopt.problems import get_problem, random_loglinear, random_quadratic
from toyopt.problems.base import Problem

Job = tuple[str, Callable[[], list[Record]]]


@dataclass(frozen=True)
class Settings:
    """Budgets of one mode (the sensitivity table runs the checks with these too)."""

    c1_budgets: tuple[int, ...]
    c1_sweep: tuple[float, ...]
    c2_steps: int
    c2_seeds: int
    c3_steps: int
    c4_steps: int
    c6_steps: int
    c6_seeds: int


FULL = Settings(
    c1_budgets=(*BUDGETS, *TAIL),
    c1_sweep=SWEEP_LAMS,
    c2_steps=10_000,
    c2_seeds=100,
    c3_steps=10_000,
    c4_steps=10_000,
    c6_steps=10_000,
    c6_seeds=300,
)
QUICK = Settings(
    c1_budgets=(*BUDGETS[:3], *TAIL),
    c1_sweep=SWEEP_LAMS[::3],
    c2_steps=2000,
    c2_seeds=100,
    c3_steps=2000,
    c4_steps=1000,
    c6_steps=2000,
    c6_seeds=200,
)


def settings(quick: bool) -> Settings:
    return QUICK if quick else FULL


def instances() -> dict[str, Problem]:
    """Built-in instances, two random ones (seeds fixed here) and C2's attaining instance."""
    return {
        "toy2d": get_problem("toy2d"),
        "quad2d": get_problem("quad2d"),
        "loglinear5d": get_problem("loglinear5d"),
        "random-loglinear(seed 1)": random_loglinear(np.random.default_rng(1)),
        "random-quadratic(seed 2)": random_quadratic(np.random.default_rng(2), rank_dpo=2),
        "equal curvatures (1-D)": equal_curvature_quadratic(),
    }


def jobs(quick: bool = False) -> list[Job]:
    """(label, thunk) pairs; each thunk returns the records of one check on one instance."""
    p, s = instances(), settings(quick)
    c1_names = ["toy2d", "quad2d"] if quick else ["toy2d", "quad2d", "random-loglinear(seed 1)",
                                                 "random-quadratic(seed 2)"]  # fmt: skip
    out: list[Job] = [
        (f"C1 {n}", lambda n=n: check_c1(p[n], n, MAIN_LAMS, s.c1_budgets, s.c1_sweep))
        for n in c1_names
    ]
    c2 = [("toy2d", None), ("loglinear5d", 2), ("equal curvatures (1-D)", None)] if quick else [
        ("toy2d", None), ("toy2d", 1), ("loglinear5d", 2), ("random-loglinear(seed 1)", 4),
        ("quad2d", None), ("random-quadratic(seed 2)", None), ("equal curvatures (1-D)", None),
    ]  # fmt: skip
    out += [
        (f"C2 {n} B={b}", lambda n=n, b=b: check_c2(p[n], n, 0.5, s.c2_steps, s.c2_seeds, batch=b))
        for n, b in c2
    ]
    c3 = ["toy2d"] if quick else ["toy2d", "quad2d", "loglinear5d"]
    out += [(f"C3 {n}", lambda n=n: check_c3(p[n], n, t_max=s.c3_steps)) for n in c3]
    c4 = ["toy2d", "quad2d"] if quick else ["toy2d", "quad2d", "loglinear5d",
                                            "random-quadratic(seed 2)"]  # fmt: skip
    out += [(f"C4 {n}", lambda n=n: check_c4(p[n], n, t_max=s.c4_steps)) for n in c4]
    out += [("C4 worst cases", lambda: check_c4_worst_cases(t_max=s.c4_steps))]
    out += [(f"C5 {n}", lambda n=n: check_c5(p[n], n)) for n in ("toy2d", "loglinear5d")]
    c6 = ["toy2d"] if quick else ["toy2d", "quad2d", "loglinear5d"]
    out += [
        (f"C6 {n}", lambda n=n: check_c6(p[n], n, t_max=s.c6_steps, seeds=s.c6_seeds)) for n in c6
    ]
    k3_steps, k3_seeds = (2000, 64) if quick else (10_000, 100)
    out += [("K3 3-objective quadratic", lambda: check_k3(t_max=k3_steps, seeds=k3_seeds))]
    if not quick and llm.available():  # the language-model claims (a minute or two)
        out += [("L tiny language model", llm.check_llm)]
    return out
