"""Property-based checks of the C1–C4 bounds on random instances (ranges in tests/strategies.py).

Cheap properties run the full profile (200 examples under CI=1). The plateau property needs
both stages to converge within the budget, so it draws quadratics (condition ≤ 100: the runs
reach a floating-point fixed point in a few thousand steps) and uses 20 examples. Random
log-linear instances can put an optimum far away in a flat region (a response of tiny SFT
weight), where 10⁵ steps are not enough; the plateau on log-linear instances is checked on
fixed ones in test_proofs_checks.py and by ``python -m proofs_check``.
"""

from __future__ import annotations

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from strategies import lams, orders, problems, quadratic_problems

from proofs_check.c1_sequential import lower_bound, plateau, run_sequential
from proofs_check.c2_alright import check_c2
from proofs_check.c3_maxright import maxright_run
from proofs_check.c4_mix import mix_run
from toyopt.pareto import Geometry
from toyopt.problems import QuadraticProblem

EXPENSIVE = settings(
    max_examples=min(20, settings().max_examples),
    suppress_health_check=[HealthCheck.too_slow],
)
CHEAP = settings(suppress_health_check=[HealthCheck.too_slow])


@CHEAP
@given(problems(), orders, lams)
def test_c1_certificate_is_below_the_measured_gap(problem, first, lam):
    geometry = Geometry(problem)
    budgets = (5, 40)
    stage1, final = run_sequential(problem, first, budgets)
    gaps = geometry.metrics(final, lam)["mix_gap"]
    for theta1, t, gap in zip(stage1, budgets, gaps):
        assert lower_bound(geometry, first, lam, theta1, t) <= gap + 1e-12


@EXPENSIVE
@given(quadratic_problems(), orders, lams)
def test_c1_gap_reaches_the_closed_form_plateau(problem, first, lam):
    geometry = Geometry(problem)
    _, final = run_sequential(problem, first, (200_000,))
    measured = geometry.metrics(final, lam)["mix_gap"][0]
    predicted = plateau(geometry, first, lam)
    assert predicted >= -1e-12
    assert abs(measured - predicted) <= 1e-6 + 1e-4 * abs(predicted)


@CHEAP
@given(problems(), lams, st.sampled_from((None, 1, 3)))
def test_c2_alright_expected_gap_below_last_iterate_bound(problem, lam, batch):
    batch = None if isinstance(problem, QuadraticProblem) else batch
    # Some random quadratics nearly attain the strongly convex bound: among many instances, a
    # stricter false-alarm level than the table's z = 3.
    record = check_c2(problem, "random", lam, 100, 32, batch=batch, z=4.5)[0]
    assert record.kind == "C2 bound" and record.holds, record


@CHEAP
@given(problems())
def test_c3_maxright_chebyshev_gap_below_subgradient_bound(problem):
    run = maxright_run(problem, 0.5, 100)
    assert np.all(run["gaps"][1:-1] <= run["bound"][1:])  # the bound at n needs the move from θ_n
    assert np.all(run["gaps"] >= -1e-9)  # the Chebyshev optimum is a minimum


@CHEAP
@given(problems(), lams)
def test_c4_mix_gap_below_gradient_descent_bounds(problem, lam):
    run = mix_run(problem, lam, 200)
    assert np.all(run["gaps"] <= run["smooth"] + 1e-12)
    if run["strong"] is not None:
        assert np.all(run["gaps"] <= run["strong"] + 1e-12)
