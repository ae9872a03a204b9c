"""C1 — sequential training is sub-optimal for every λ ∈ (0, 1) (the paper's sequential lower bound).

Claim. With T steps on the first objective and then T on the second, there are instances where
f_mix,λ(θ_seq) − f*_mix,λ ≥ c > 0 for every T: the gap does not vanish.

Assumptions. Exact gradients, constant step α = 1 / max(L_sft, L_dpo) (L from
``Problem.smoothness``), both single-objective optima attained.

Prediction (closed form, no run). Gradients of f_k live in its span S_k, so gradient descent on
f_k from θ converges to the Euclidean projection of θ onto its minimiser set
(:meth:`toyopt.pareto.Geometry.project`): θ₁ = project(first, θ₀), θ∞ = project(second, θ₁),
plateau(λ) = f_mix,λ(θ∞) − f*_mix,λ.

Lower bound for each T (a certificate, not the measurement). Let θ₁,T be the stage-1 output.
Stage 2 never leaves the affine set A_T = θ₁,T + S_second, and gradient descent with α ≤ 1/L
gives f_second(θ) − f*_second ≤ ε_T = ‖θ₁,T − project(second, θ₁,T)‖² / (2αT) (Beck, *First-Order
Methods in Optimization*, 2017, Thm 10.21, with L̄ = 1/α ≥ L). Hence the output lies in
K_T = {θ ∈ A_T : f_second(θ) − f*_second ≤ ε_T}, and by weak Lagrangian duality, for every μ ≥ 0,

    gap ≥ c_T(μ) = min_{θ ∈ A_T} [f_mix,λ(θ) + μ (f_second(θ) − f*_second − ε_T)] − f*_mix,λ,

an unconstrained convex minimisation solved by the core's Newton method (gradient norm < 1e-13;
we subtract a safety margin of 1e-9). c_T = max over a grid of μ; c = min_T c_T > 0 is the
positive constant checked at every T.

Example::

    >>> from proofs_check.c1_sequential import check_c1
    >>> from toyopt.problems import get_problem
    >>> recs = check_c1(get_problem("toy2d"), "toy2d", budgets=(100, 1000), sweep=())
    >>> all(r.holds for r in recs)
    True
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from proofs_check.record import Record, make_record
from proofs_check.restricted import AffineRestriction
from proofs_check.runs import run_snapshots
from toyopt.backends import NumpyBackend
from toyopt.pareto import Geometry, minimise
from toyopt.problems.base import Problem
from toyopt.rules import Rule, Sequential
from toyopt.schedules import Schedule

OTHER = {"sft": "dpo", "dpo": "sft"}
MAIN_LAMS = (0.25, 0.5, 0.75)
SWEEP_LAMS = tuple(np.round(np.linspace(0.05, 0.95, 19), 2))
BUDGETS = (100, 1000, 10_000, 100_000)
# Larger budgets cost nothing (the runs reach a floating-point fixed point) and show the bound
# for T beyond the measured range: on weak-conflict instances c_T only becomes positive there.
TAIL = (1_000_000, 10_000_000)
NEWTON_TOL = 1e-10  # the dual value is then exact to ~‖g‖²/curvature, far below SAFETY
SAFETY = 1e-9


def step_size(problem: Problem) -> float:
    return 1.0 / max(problem.smoothness("sft"), problem.smoothness("dpo"))


def run_sequential(
    problem: Problem, first: str, budgets: Sequence[int], stage2: Rule | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Stage-1 outputs θ₁,T and final iterates θ_seq,T for T in ``budgets`` (each (R, d)).

    One rule object, ``Sequential(first, switch=max T)``, drives both stages. With a constant
    step, the stage-1 output after T steps is the T-th iterate of one long first stage, and the
    second stage of every T runs as one row of a batch started from those outputs (tested equal
    to separate runs of the rule with switch = T). ``stage2`` replaces the rule of the second
    stage (a broken variant: a "sequential" run that secretly keeps training on both).
    """
    budgets = np.asarray(budgets)
    t_max = int(budgets.max())
    rule = Sequential(first, switch=t_max)
    schedule = Schedule("constant", step_size(problem))
    stage1, _ = run_snapshots(NumpyBackend(problem, [0]), rule, budgets, schedule, stationary=True)
    stage1 = stage1[:, 0, :]
    backend = NumpyBackend(problem, np.arange(len(budgets)))
    backend.theta = stage1.copy()
    second, _ = run_snapshots(
        backend, stage2 or rule, budgets, schedule, start_step=t_max, stationary=True
    )
    final = second[np.arange(len(budgets)), np.arange(len(budgets))]
    return stage1, final


def plateau(geometry: Geometry, first: str, lam: float) -> float:
    """Closed-form limit of the f_mix gap: f_mix(θ∞) − f*_mix with θ∞ = P_second(P_first(θ₀))."""
    theta1 = geometry.project(first, geometry.problem.start[None, :])
    theta_inf = geometry.project(OTHER[first], theta1)
    return float(geometry.f_mix(theta_inf, lam)[0] - geometry.mix(lam).value)


def lower_bound(geometry: Geometry, first: str, lam: float, theta1: np.ndarray, T: int) -> float:
    """c_T: the weak-duality lower bound on the f_mix gap after T + T steps (module docstring).

    Every μ ≥ 0 gives a valid bound; the dual is concave in μ with derivative
    f_second(θ_μ) − f*_second − ε_T, so we bisect on log μ and keep the best value seen.
    """
    problem, second = geometry.problem, OTHER[first]
    nearest = geometry.project(second, theta1[None, :])[0]
    eps = float(np.sum((theta1 - nearest) ** 2)) / (2 * step_size(problem) * T)
    restricted = AffineRestriction(problem, theta1, problem.span(second))
    f2_star, f_mix_star = geometry.f_star[second], geometry.mix(lam).value

    def dual(mu: float) -> tuple[float, float]:
        w = {"dpo": lam, "sft": 1.0 - lam}
        w[second] += mu
        theta = restricted.lift(minimise(restricted, w, restricted.start, tol=NEWTON_TOL))
        slack = problem.value(second, theta)[0] - f2_star - eps
        return float(geometry.f_mix(theta, lam)[0] + mu * slack - f_mix_star), float(slack)

    best, slope = dual(0.0)
    lo, hi = -6.0, 6.0  # log10 μ
    while slope > 0 and hi - lo > 0.25:
        mid = (lo + hi) / 2
        value, slope_mid = dual(10.0**mid)
        best = max(best, value)
        lo, hi = (mid, hi) if slope_mid > 0 else (lo, mid)
    return best - SAFETY


def check_c1(
    problem: Problem,
    name: str,
    lams: Sequence[float] = MAIN_LAMS,
    budgets: Sequence[int] = BUDGETS,
    sweep: Sequence[float] = SWEEP_LAMS,
    *,
    plateau_shift: float = 0.0,
    stage2: Rule | None = None,
) -> list[Record]:
    """C1 records for both orders: one lower-bound record per λ and one plateau record per
    order (main λ and ``sweep``). Broken variants: ``plateau_shift`` perturbs the prediction,
    ``stage2`` replaces the second stage's rule."""
    geometry = Geometry(problem)
    records = []
    for first in ("sft", "dpo"):
        order = f"sequential-{first}-{OTHER[first]}"
        stage1, final = run_sequential(problem, first, budgets, stage2)
        for lam in lams:
            gaps = geometry.metrics(final, lam)["mix_gap"]
            bounds = np.array(
                [lower_bound(geometry, first, lam, t1, T) for t1, T in zip(stage1, budgets)]
            )
            t0 = _first_certified(bounds)
            c = float(bounds[t0:].min()) if t0 < len(bounds) else 0.0
            t_from = budgets[t0] if t0 < len(bounds) else budgets[-1]
            records.append(make_record(
                "C1 certificate", f"{name} {order} λ={lam:g}",
                f"min f_mix gap over T={_span([t_from, budgets[-1]])} (c_T <= gap at all T)",
                gaps[t0:].min() if t0 < len(bounds) else gaps[-1], ">=", c,
                extra_ok=bool(c > 0 and np.all(gaps >= bounds)),
                details={"T": list(map(int, budgets)), "gap": gaps.tolist(), "c_T": bounds.tolist()},
            ))  # fmt: skip
        all_lams = sorted(set(lams) | set(sweep))
        pred = np.array([plateau(geometry, first, lam) + plateau_shift for lam in all_lams])
        last = np.array([geometry.metrics(final[-1:], lam)["mix_gap"][0] for lam in all_lams])
        tol = 1e-6 + 1e-4 * float(np.max(np.abs(pred)))
        worst = int(np.argmax(np.abs(last - pred)))
        records.append(make_record(
            "C1 plateau", f"{name} {order}", f"gap at T={budgets[-1]:g} vs closed-form plateau, "
            f"{len(all_lams)} λ (worst λ={all_lams[worst]:g})",
            last[worst], "~", pred[worst], tol, extra_ok=bool(np.all(pred > 0)),
            note="plateau > 0 for every λ" if np.all(pred > 0) else "some plateau <= 0",
            details={"lam": list(all_lams), "plateau": pred.tolist(), "gap": last.tolist()},
        ))  # fmt: skip
    return records


def _first_certified(bounds: np.ndarray) -> int:
    """Index of the first budget from which every certificate c_T is positive (len if none)."""
    positive = bounds > 0
    for i in range(len(bounds)):
        if positive[i:].all():
            return i
    return len(bounds)


def _span(budgets: Sequence[int]) -> str:
    return f"{min(budgets):.0e}..{max(budgets):.0e}".replace("e+0", "e")
