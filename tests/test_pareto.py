"""Optima, attainment, projections and the Chebyshev optimum."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.optimize import minimize

from toyopt.pareto import Geometry, NotAttainedError, is_attained
from toyopt.problems import get_problem, problem_from_dict, random_loglinear, random_quadratic
from toyopt.problems.builtin import TOY2D
from toyopt.rules import Sequential
from toyopt.schedules import Schedule
from toyopt.simulate import simulate


def random_problem(seed):
    rng = np.random.default_rng(seed)
    if seed % 2:
        return random_quadratic(rng, dim=int(rng.integers(2, 5)), rank_dpo=int(rng.integers(1, 3)))
    return random_loglinear(rng, dim=int(rng.integers(2, 5)), beta=float(rng.uniform(0.1, 2)))


@settings(deadline=None, max_examples=30)
@given(st.integers(0, 10_000), st.floats(0.0, 1.0))
def test_optima_are_stationary(seed, lam):
    problem = random_problem(seed)
    geometry = Geometry(problem)
    for k, opt in geometry.optima.items():
        assert np.linalg.norm(problem.grad(k, opt.point)) < 1e-8
    point = geometry.mix(lam).point
    g = lam * problem.grad("dpo", point) + (1 - lam) * problem.grad("sft", point)
    assert np.linalg.norm(g) < 1e-8


@settings(deadline=None, max_examples=15)
@given(st.integers(0, 10_000), st.floats(0.1, 0.9))
def test_chebyshev_optimum_matches_a_direct_solve(seed, lam):
    """min max{λ gap_dpo, (1−λ) gap_sft} as an epigraph problem solved by SLSQP from many
    starts never beats the front-bisection answer."""
    problem = random_problem(seed)
    geometry = Geometry(problem)
    ours = geometry.chebyshev(lam)
    gaps = geometry.gaps(ours.point)
    assert lam * gaps["dpo"][0] == pytest.approx((1 - lam) * gaps["sft"][0], abs=1e-7)

    def weighted(x):
        g = geometry.gaps(x[:-1])
        return np.array([x[-1] - lam * g["dpo"][0], x[-1] - (1 - lam) * g["sft"][0]])

    x0 = np.append(geometry.mix(lam).point, 10.0)
    res = minimize(
        lambda x: x[-1], x0, constraints={"type": "ineq", "fun": weighted}, method="SLSQP"
    )
    assert ours.value <= res.fun + 1e-6


def test_project_is_where_gradient_descent_goes():
    """The sequential plateau prediction: GD on one objective converges to the projection."""
    problem = get_problem("toy2d")
    geometry = Geometry(problem)
    start = np.array([[2.0, -1.0]])
    run = simulate(
        problem, Sequential("dpo", 10**9), 4000, Schedule("constant", 4.0), 1, start=start[0]
    )
    np.testing.assert_allclose(run.final, geometry.project("dpo", start), atol=1e-6)
    # The projection is the nearest minimiser: θ₂ − θ₁ = log 4 on toy2d.
    p = geometry.project("dpo", start)[0]
    assert p[1] - p[0] == pytest.approx(np.log(4))


def test_toy2d_closed_forms():
    geometry = Geometry(get_problem("toy2d"))
    np.testing.assert_allclose(geometry.optima["sft"].point, [np.log(6), np.log(3)])
    entropy = -(0.6 * np.log(0.6) + 0.3 * np.log(0.3) + 0.1 * np.log(0.1))
    assert geometry.f_star["sft"] == pytest.approx(entropy)
    assert geometry.f_star["dpo"] == pytest.approx(-(0.8 * np.log(0.8) + 0.2 * np.log(0.2)))


def test_separable_preferences_have_no_optimum():
    data = dict(TOY2D, preferences=[{"prompt": 0, "chosen": 1, "rejected": 0, "weight": 1.0}])
    problem = problem_from_dict(data)
    assert not is_attained(problem, "dpo") and is_attained(problem, "sft")
    with pytest.raises(NotAttainedError, match="f_dpo is not attained"):
        Geometry(problem).metrics(np.zeros((1, 2)), 0.5)


def test_sft_on_a_single_response_has_no_optimum():
    data = dict(TOY2D, sft=[{"prompt": 0, "response": 0, "weight": 1.0}])
    assert not is_attained(problem_from_dict(data), "sft")


def test_front_runs_from_the_sft_optimum_to_the_dpo_optimum():
    geometry = Geometry(get_problem("toy2d"))
    front = geometry.front(np.linspace(0, 1, 21))
    assert np.all(np.diff(front[:, 0]) >= -1e-12) and np.all(np.diff(front[:, 1]) <= 1e-12)
    assert front[0, 0] == pytest.approx(geometry.f_star["sft"])
    assert front[-1, 1] == pytest.approx(geometry.f_star["dpo"])


def test_metrics_vanish_at_the_optima():
    geometry = Geometry(get_problem("loglinear5d"))
    m = geometry.metrics(geometry.mix(0.3).point[None], 0.3)
    assert m["mix_gap"][0] == pytest.approx(0, abs=1e-12)
    m = geometry.metrics(geometry.chebyshev(0.3).point[None], 0.3)
    assert m["chebyshev_gap"][0] == pytest.approx(0, abs=1e-10)
    assert m["ideal_distance"][0] == pytest.approx(np.hypot(m["gap_sft"][0], m["gap_dpo"][0]))
