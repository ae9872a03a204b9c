"""The instances and settings of the full and quick runs of ``python -m proofs_check``.

Random instances are drawn from the core's seeded generators (``random_loglinear``,
``random_quadratic``) with the seeds written here, so the table is reproducible.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from proofs_check.c1_sequential import BUDGETS, MAIN_LAMS, SWEEP_LAMS, TAIL, check_c1
from proofs_check.c2_alright import check_c2
from proofs_check.c3_maxright import check_c3
from proofs_check.c4_mix import check_c4
from proofs_check.c5_cost import check_c5
from proofs_check.c6_tradeoff import check_c6
from proofs_check.record import Record
from toyopt.problems import get_problem, random_loglinear, random_quadratic
from toyopt.problems.base import Problem

Job = tuple[str, Callable[[], list[Record]]]


def instances() -> dict[str, Problem]:
    """Built-in instances and two random ones (seeds fixed here)."""
    return {
        "toy2d": get_problem("toy2d"),
        "quad2d": get_problem("quad2d"),
        "loglinear5d": get_problem("loglinear5d"),
        "random-loglinear(seed 1)": random_loglinear(np.random.default_rng(1)),
        "random-quadratic(seed 2)": random_quadratic(np.random.default_rng(2), rank_dpo=2),
    }


def jobs(quick: bool = False) -> list[Job]:
    """(label, thunk) pairs; each thunk returns the records of one check on one instance."""
    p = instances()
    c1_names = ["toy2d", "quad2d"] if quick else ["toy2d", "quad2d", "random-loglinear(seed 1)",
                                                 "random-quadratic(seed 2)"]  # fmt: skip
    budgets = (*BUDGETS[:3], *TAIL) if quick else (*BUDGETS, *TAIL)
    sweep = SWEEP_LAMS[::3] if quick else SWEEP_LAMS
    out: list[Job] = [
        (f"C1 {n}", lambda n=n: check_c1(p[n], n, MAIN_LAMS, budgets, sweep)) for n in c1_names
    ]
    t2, seeds = (2000, 100) if quick else (10_000, 100)
    c2 = [("toy2d", None), ("loglinear5d", 2)] if quick else [
        ("toy2d", None), ("toy2d", 1), ("loglinear5d", 2), ("random-loglinear(seed 1)", 4),
        ("quad2d", None),
    ]  # fmt: skip
    out += [
        (f"C2 {n} B={b}", lambda n=n, b=b: [check_c2(p[n], n, 0.5, t2, seeds, batch=b)])
        for n, b in c2
    ]
    c3 = ["toy2d"] if quick else ["toy2d", "quad2d", "loglinear5d"]
    out += [(f"C3 {n}", lambda n=n: check_c3(p[n], n, t_max=t2)) for n in c3]
    c4 = ["toy2d", "quad2d"] if quick else ["toy2d", "quad2d", "loglinear5d",
                                            "random-quadratic(seed 2)"]  # fmt: skip
    out += [(f"C4 {n}", lambda n=n: check_c4(p[n], n, t_max=1000 if quick else 10_000)) for n in c4]
    out += [(f"C5 {n}", lambda n=n: check_c5(p[n], n)) for n in ("toy2d", "loglinear5d")]
    c6 = ["toy2d"] if quick else ["toy2d", "quad2d", "loglinear5d"]
    t6, s6 = 6000, 64  # ALRIGHT needs this many steps at λ = 0.75 on toy2d (slow direction)
    out += [(f"C6 {n}", lambda n=n: check_c6(p[n], n, t_max=t6, seeds=s6)) for n in c6]
    return out
