"""The C4 rates are the exact worst cases PEPit computes (performance estimation, Drori &
Teboulle 2014; Taylor, Hendrickx & Glineur 2017): gradient descent with step 1/L on

- L-smooth convex f, ‖x₀ − x*‖ ≤ R: f(x_N) − f* ≤ L R²/(4N + 2) (Drori–Teboulle);
- L-smooth μ-strongly convex f: f(x_N) − f* ≤ (1 − μ/L)^{2N} (f(x₀) − f*) (de Klerk et al.).

PEPit solves a small semidefinite programme per N (``pip install -e ".[pep]"``; skipped without)."""

from __future__ import annotations

import pytest

from proofs_check.c4_mix import drori_teboulle, strongly_convex

pep = pytest.importorskip("PEPit", reason="PEPit is an optional extra: pip install -e '.[pep]'")
functions = pytest.importorskip("PEPit.functions")


def worst_case(big_l: float, mu: float, steps: int, by_distance: bool) -> float:
    problem = pep.PEP()
    if mu > 0:
        f = problem.declare_function(functions.SmoothStronglyConvexFunction, L=big_l, mu=mu)
    else:
        f = problem.declare_function(functions.SmoothConvexFunction, L=big_l)
    star = f.stationary_point()
    x = x0 = problem.set_initial_point()
    if by_distance:
        problem.set_initial_condition((x0 - star) ** 2 <= 1)
    else:
        problem.set_initial_condition(f(x0) - f(star) <= 1)
    for _ in range(steps):
        x = x - 1 / big_l * f.gradient(x)
    problem.set_performance_metric(f(x) - f(star))
    return problem.solve(verbose=0)


@pytest.mark.parametrize("steps", [1, 2, 5, 8])
def test_drori_teboulle_rate_is_the_worst_case(steps):
    want = float(drori_teboulle(2.0, 1.0, steps))
    assert worst_case(2.0, 0.0, steps, by_distance=True) == pytest.approx(want, rel=1e-3)


@pytest.mark.parametrize("mu, steps", [(0.1, 1), (0.1, 4), (0.5, 3), (0.8, 1)])
def test_strongly_convex_rate_is_the_worst_case(mu, steps):
    want = float(strongly_convex(1.0, mu, 1.0, steps))
    # the SDP solvers are accurate to about 1e-5 (absolute)
    assert worst_case(1.0, mu, steps, by_distance=False) == pytest.approx(want, rel=2e-3, abs=1e-5)
