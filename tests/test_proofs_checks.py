"""proofs_check: each check holds on small settings, its shortcuts are exact, and the command
line works (the full-size runs are ``python -m proofs_check``)."""

from __future__ import annotations

import json
import math
import subprocess
import sys

import numpy as np
import pytest

from proofs_check.bounds import convex_bound_all, convex_weights, strong_weights
from proofs_check.c1_sequential import check_c1, lower_bound, plateau, run_sequential, step_size
from proofs_check.c2_alright import check_c2
from proofs_check.c3_maxright import check_c3
from proofs_check.c4_mix import check_c4
from proofs_check.c5_cost import check_c5
from proofs_check.c6_tradeoff import StageSchedule, check_c6, final_iterate, sequential_final
from proofs_check.rates import METHODS, rate_data
from proofs_check.record import compare, format_table, make_record
from proofs_check.runs import MoveSums, run_snapshots
from toyopt.backends import NumpyBackend
from toyopt.pareto import Geometry
from toyopt.problems import get_problem, random_loglinear
from toyopt.rules import AlRight, Mix, Sequential
from toyopt.schedules import Schedule
from toyopt.simulate import simulate


@pytest.fixture(scope="module")
def toy():
    return get_problem("toy2d")


def test_relations_and_json_of_records():
    assert compare(1.0, "<=", 1.0) and not compare(1.1, "<=", 1.0)
    assert compare(1.0, ">=", 0.5) and not compare(0.4, ">=", 0.5)
    assert compare(1.05, "~", 1.0, 0.1) and not compare(1.2, "~", 1.0, 0.1)
    assert not compare(math.nan, "<=", 1.0)  # a NaN measurement never passes
    rec = make_record("C4 bound", "x", "q", math.inf, "<=", 1.0)
    assert not rec.holds and json.dumps(rec.to_json())  # inf is written as a string
    assert rec.to_json()["claim"] == "C4"
    assert not make_record("C2 bound", "x", "q", 0.1, "<=", 1.0, extra_ok=False).holds
    assert make_record("C2 bound", "x", "q", 0.1, "<=", 1.0).ratio == pytest.approx(10.0)
    assert "**NO**" in format_table([rec])
    with pytest.raises(ValueError, match="unknown record kind"):
        make_record("C9 nonsense", "x", "q", 0.1, "<=", 1.0)


@pytest.mark.parametrize("first", ["sft", "dpo"])
def test_batched_sequential_equals_separate_runs_of_the_rule(toy, first):
    """run_sequential's batching and fixed-point shortcut change nothing."""
    budgets = (30, 200, 5000)
    _, final = run_sequential(toy, first, budgets)
    for t, theta in zip(budgets, final):
        traj = simulate(
            toy, Sequential(first, t), 2 * t, Schedule("constant", step_size(toy)), record=[2 * t]
        )
        np.testing.assert_allclose(theta, traj.final[0], rtol=0, atol=1e-12)


def test_stationary_shortcut_is_exact(toy):
    record = np.array([10, 500, 3000, 8000])
    schedule = Schedule("constant", 1.0)
    fast, _ = run_snapshots(NumpyBackend(toy, [0]), Mix(0.5), record, schedule, stationary=True)
    slow, _ = run_snapshots(NumpyBackend(toy, [0]), Mix(0.5), record, schedule)
    assert np.array_equal(fast, slow)


def test_move_sums_are_the_weighted_squared_steps(toy):
    """run_snapshots' MoveSums equals Σ_s W[r, s]‖θ_{s+1} − θ_s‖² from a full trajectory."""
    weights = np.random.default_rng(0).uniform(size=(3, 700))
    moves = MoveSums(weights, 5, block=64)
    schedule = Schedule("invsqrt", 1.0)
    run_snapshots(NumpyBackend(toy, np.arange(5)), AlRight(0.5), [700], schedule, moves=moves)
    traj = simulate(toy, AlRight(0.5), 700, schedule, 5, record=np.arange(701)).theta
    squares = np.sum(np.diff(traj, axis=0) ** 2, axis=2)  # (700, 5)
    np.testing.assert_allclose(moves.sums, weights @ squares, rtol=1e-12)


def test_c6_stage_shortcut_equals_the_plain_sequential_run(toy):
    for first, switch, steps in (("sft", 0, 300), ("dpo", 333, 3000), ("sft", 3000, 3000)):
        plain = final_iterate(
            toy, Sequential(first, switch), steps, StageSchedule(toy, first, switch)
        )
        assert np.array_equal(sequential_final(toy, first, switch, steps), plain)


def test_bound_weights_match_the_written_sums():
    """The bounds of proofs_check.bounds equal their sums as the docstring writes them."""
    rng = np.random.default_rng(3)
    eta, moves, dist_sq, mu = 1 / np.sqrt(np.arange(1, 41)), rng.uniform(size=40), 2.0, 0.3
    budgets = np.array([0, 1, 7, 39])
    w0, w = convex_weights(budgets, eta)
    for n, got in zip(budgets, w0 * dist_sq + w @ moves):
        big_t, cum = n + 1, np.concatenate([[0.0], np.cumsum(moves)])  # 1-based: A(j) = cum[j]
        tail = sum((cum[big_t] - cum[big_t - k - 1]) / (k * (k + 1)) for k in range(1, big_t))
        want = (0.5 * dist_sq + 0.5 * cum[big_t]) / (big_t * eta[n]) + tail / (2 * eta[n])
        assert got == pytest.approx(want, rel=1e-12)
    np.testing.assert_allclose(
        convex_bound_all(dist_sq, eta, moves)[budgets], w0 * dist_sq + w @ moves, rtol=1e-12
    )
    w0, w = strong_weights(budgets, eta, mu)
    e = [dist_sq]
    for s in range(40):
        e.append(max(1 - 2 * eta[s] * mu, 0) * e[-1] + moves[s])
    np.testing.assert_allclose(w0 * dist_sq + w @ moves, np.array(e)[budgets], rtol=1e-12)


def test_c1_holds_on_toy2d_and_plateau_is_not_the_start(toy):
    records = check_c1(toy, "toy2d", budgets=(100, 1000, 100_000), sweep=(0.1, 0.9))
    assert all(r.holds for r in records), format_table(records)
    geometry = Geometry(toy)
    start_gap = geometry.metrics(toy.start[None], 0.5)["mix_gap"][0]
    assert abs(plateau(geometry, "sft", 0.5) - start_gap) > 1e-3


def test_c1_certificate_is_positive_only_when_stage_two_has_converged():
    """On a weak-conflict random instance the certificate needs a large T (documented)."""
    problem = random_loglinear(np.random.default_rng(1))
    geometry = Geometry(problem)
    stage1, final = run_sequential(problem, "dpo", (100, 10_000_000))
    gaps = geometry.metrics(final, 0.5)["mix_gap"]
    bounds = [lower_bound(geometry, "dpo", 0.5, t1, t) for t1, t in zip(stage1, (100, 10_000_000))]
    assert bounds[0] <= 0 < bounds[1] <= gaps[1]


def test_c2_c3_c4_c5_c6_hold_on_small_settings(toy):
    assert all(r.holds for r in check_c2(toy, "toy2d", 0.5, 2000, 64))
    assert all(r.holds for r in check_c2(toy, "toy2d", 0.5, 2000, 64, batch=1))
    assert all(r.holds for r in check_c3(toy, "toy2d", (0.5,), 2000, stale=(1, 10)))
    quad = get_problem("quad2d")
    assert all(r.holds for r in check_c4(quad, "quad2d", (0.25, 0.75), 1000))
    assert all(r.holds for r in check_c5(toy, "toy2d", 0.25))
    records = check_c6(toy, "toy2d", (0.5,), 4000, 32)
    assert all(r.holds for r in records), format_table(records)


def test_rate_data_shape_is_stable():
    data = rate_data("toy2d", 0.5, quick=True)
    assert tuple(data) == METHODS
    for method, series in data.items():
        n = len(series["T"])
        assert n > 5 and all(len(series[k]) == n for k in ("gap", "ci_low", "ci_high"))
        assert series["bound"] is None or len(series["bound"]) == n
        assert np.all(np.array(series["ci_low"]) <= np.array(series["ci_high"]))
        if method.startswith("sequential"):
            assert series["plateau"] > 0 and len(series["lower_bound"]) == n


def test_command_line_quick_json():
    out = subprocess.run(
        [sys.executable, "-m", "proofs_check", "--quick", "--json", "--only", "C5"],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    records = json.loads(out.stdout)
    assert records and all(r["claim"] == "C5" and r["holds"] for r in records)
    bad = subprocess.run(
        [sys.executable, "-m", "proofs_check", "--only", "C9"], capture_output=True, text=True
    )
    assert bad.returncode == 2 and "unknown claim" in bad.stderr


@pytest.mark.parametrize(
    "module",
    ["c1_sequential", "c2_alright", "c3_maxright", "c4_mix", "c5_cost", "c6_tradeoff", "rates"],
)
def test_docstring_examples_run(module):
    import doctest
    import importlib

    result = doctest.testmod(importlib.import_module(f"proofs_check.{module}"))
    assert result.attempted > 0 and result.failed == 0
