"""C4 — Mix converges to θ*_λ, the minimiser of f_mix,λ (the λ point of the Pareto front).

Claim. Mix steps on ∇f_mix,λ = λ∇f_dpo + (1−λ)∇f_sft with both gradients: gradient descent.

Assumptions. f_mix,λ is convex and L-smooth with L = λ L_dpo + (1−λ) L_sft
(``Problem.smoothness``; for quadratics the exact top eigenvalue of H_λ = λH_dpo + (1−λ)H_sft on
the span the iterates move in). Constant step α = 1/L (``Schedule("constant", 1/L)``).

Bounds (both tight: each is attained by some function of its class, for every T).

- Smooth convex (Drori & Teboulle, Math. Program. 2014, Thm 3.1; tightness Thm 3.2):
  f(θ_T) − f* ≤ L ‖θ₀ − θ*‖² / (4T + 2), θ* = the minimiser nearest θ₀ (``Geometry.mix``;
  the iterates stay in θ₀ + span, where it is the only minimiser that matters). The worst case
  is the Huber function L·h_δ(|x|), δ = ‖θ₀ − θ*‖/(2T + 1) (:class:`Huber`).
- μ-strongly convex (de Klerk, Glineur & Taylor, Optim. Lett. 2017, Thm 1.2, step h = 1/L):
  f(θ_{t+1}) − f* ≤ max{(1 − hμ)², (1 − hL)²}(f(θ_t) − f*), so f(θ_T) − f* ≤ (1 − μ/L)^{2T}
  (f(θ₀) − f*). Attained by a quadratic started on the eigenvector of μ. We apply it where μ > 0
  is known exactly: quadratics, μ = the smallest eigenvalue of H_λ on the span of the iterates
  (log-linear objectives are not strongly convex on all of it: their curvature vanishes far out).

``tests/test_pep.py`` checks both rates against PEPit's numerical worst cases. The record
compares the gap with min(both bounds) at every budget T (at a rounding floor of 1e-12, the
precision of f*) and reports the worst ratio, over the budgets where the bound exceeds 1e-9.

Why the ratio is not 1 everywhere: the bounds are the worst case over their class, and our
instances are easier — a log-linear f_mix is nearly quadratic near θ*, where gradient descent
beats the Huber worst case; a quadratic whose θ₀ − θ* has little weight on the eigenvector of μ
converges faster than (1 − μ/L)^{2T}. The instances ``Drori–Teboulle worst case`` and
``quadratic on the μ eigenvector`` attain the bounds (ratio 1).

Example::

    >>> from proofs_check.c4_mix import check_c4
    >>> from toyopt.problems import get_problem
    >>> all(r.holds for r in check_c4(get_problem("quad2d"), "quad2d", t_max=1000))
    True
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from proofs_check.record import Record, make_record
from proofs_check.runs import run_snapshots
from proofs_check.worst_cases import Huber, mu_eigenvector_quadratic
from toyopt.backends import NumpyBackend
from toyopt.pareto import Geometry, Optimum
from toyopt.problems import QuadraticProblem
from toyopt.problems.base import Problem, orthonormal_basis
from toyopt.rules import Mix, Rule
from toyopt.schedules import Schedule
from toyopt.simulate import log_spaced

FLOOR = 1e-12  # rounding of f*: gaps below it are zero
MEANINGFUL = 1e-9  # ratios are reported where the bound is above this


def drori_teboulle(big_l: float, dist_sq: float, steps: np.ndarray) -> np.ndarray:
    """L ‖θ₀ − θ*‖² / (4T + 2): tight for gradient descent with step 1/L, L-smooth convex f."""
    return big_l * dist_sq / (4 * np.asarray(steps, dtype=float) + 2)


def strongly_convex(big_l: float, mu: float, gap0: float, steps: np.ndarray) -> np.ndarray:
    """(1 − μ/L)^{2T} (f(θ₀) − f*): tight for step 1/L on L-smooth μ-strongly convex f."""
    return (1 - mu / big_l) ** (2 * np.asarray(steps, dtype=float)) * gap0


def _span_hessian(problem: QuadraticProblem, lam: float) -> tuple[np.ndarray, np.ndarray]:
    """H_λ in an orthonormal basis q of the span the iterates move in, and q."""
    h = lam * problem.hessians["dpo"] + (1 - lam) * problem.hessians["sft"]
    q = orthonormal_basis(np.concatenate([problem.span(k).T for k in ("sft", "dpo")]), problem.dim)
    return q.T @ h @ q, q


def mix_constants(problem: Problem, lam: float) -> tuple[float, float | None]:
    """(L, μ): μ only for quadratics (exact eigenvalues on the iterates' subspace), else None."""
    if isinstance(problem, QuadraticProblem):
        eig = np.linalg.eigvalsh(_span_hessian(problem, lam)[0])
        return float(eig[-1]), float(eig[0])
    return lam * problem.smoothness("dpo") + (1 - lam) * problem.smoothness("sft"), None


def mix_run(
    problem: Problem,
    lam: float,
    t_max: int,
    *,
    rule: Rule | None = None,
    lr_factor: float = 1.0,
    optimum: Optimum | None = None,
) -> dict:
    """Gaps of Mix at log-spaced budgets and the bounds (``rule``/``lr_factor``: broken
    variants; ``optimum``: θ*_λ and f*_λ when known in closed form, else from ``Geometry``)."""
    star = Geometry(problem).mix(lam) if optimum is None else optimum
    big_l, mu = mix_constants(problem, lam)
    steps = log_spaced(t_max, 40)[1:]
    theta, _ = run_snapshots(
        NumpyBackend(problem, [0]), rule or Mix(lam), steps,
        Schedule("constant", lr_factor / big_l), stationary=True,
    )  # fmt: skip
    gaps = _f_mix(problem, theta[:, 0], lam) - star.value
    gap0 = float(_f_mix(problem, problem.start[None], lam)[0] - star.value)
    dt = drori_teboulle(big_l, float(np.sum((problem.start - star.point) ** 2)), steps)
    sc = None if not mu or mu <= 0 else strongly_convex(big_l, mu, gap0, steps)
    bound = dt if sc is None else np.minimum(dt, sc)
    return {"T": steps, "gaps": gaps, "smooth": dt, "strong": sc, "bound": bound,
            "L": big_l, "mu": mu}  # fmt: skip


def _f_mix(problem: Problem, theta: np.ndarray, lam: float) -> np.ndarray:
    return lam * problem.value("dpo", theta) + (1 - lam) * problem.value("sft", theta)


def check_c4(
    problem: Problem,
    name: str,
    lams: Sequence[float] = (0.25, 0.5, 0.75),
    t_max: int = 10_000,
    *,
    lam_used: float | None = None,
    lr_factor: float = 1.0,
    optimum: Optimum | None = None,
    note: str = "",
) -> list[Record]:
    """One record per λ: gap ≤ min(Drori–Teboulle, strongly convex) at every T. ``lam_used``
    runs Mix with another λ than the one checked, ``lr_factor`` scales its step (broken
    variants)."""
    records = []
    for lam in lams:
        rule = Mix(lam if lam_used is None else lam_used)
        run = mix_run(problem, lam, t_max, rule=rule, lr_factor=lr_factor, optimum=optimum)
        gaps, bound = run["gaps"], run["bound"]
        over = gaps - (bound + FLOOR)
        ratio = np.where(bound > MEANINGFUL, bound / np.maximum(gaps, 1e-300), np.inf)
        worst = int(np.argmax(over)) if np.any(over > 0) else int(np.argmin(ratio))
        active = "strongly convex" if run["strong"] is not None and (
            run["strong"][worst] < run["smooth"][worst]) else "Drori–Teboulle"  # fmt: skip
        why = note or (_why(problem, lam, run) if ratio[worst] > 2 else "")
        records.append(make_record(
            "C4 bound", f"{name} λ={lam:g}",
            f"f_mix gap vs min(L‖θ0−θ*‖²/(4T+2), (1−μ/L)^(2T) gap0), worst of T<={t_max:g}",
            gaps[worst], "<=", bound[worst] + FLOOR, extra_ok=bool(np.all(over <= 0)),
            note=f"L={run['L']:.4g}" + (f", mu={run['mu']:.4g}" if run["mu"] else "")
            + f"; {active} bound at T={run['T'][worst]}" + (f"; {why}" if why else ""),
            details={"T": run["T"].tolist(), "gap": gaps.tolist(), "bound": bound.tolist()},
        ))  # fmt: skip
    return records


def _why(problem: Problem, lam: float, run: dict) -> str:
    """Why this instance is easier than the worst case of the bound's class."""
    if run["mu"] is None:
        return ("easier than the Huber worst case: f_mix is nearly quadratic near θ*, where "
                "gradient descent converges faster")  # fmt: skip
    h, q = _span_hessian(problem, lam)
    eig, vec = np.linalg.eigh(h)
    y = vec.T @ q.T @ (problem.start - Geometry(problem).mix(lam).point)
    share = eig[0] * y[0] ** 2 / np.sum(eig * y**2)
    return (
        f"θ0 − θ* puts {share:.1%} of gap0 on the eigenvector of μ (the worst case puts "
        "all of it there)"
    )


def check_c4_worst_cases(t_attain: int = 100, t_max: int = 1000) -> list[Record]:
    """The two instances that attain the bounds (ratio 1 at T = ``t_attain``, resp. every T)."""
    huber = Huber(radius=1.0, smooth=1.0, steps=t_attain)
    quad = mu_eigenvector_quadratic(mu=0.1)
    return check_c4(
        huber, f"Drori–Teboulle worst case (Huber, T={t_attain})", (0.5,), t_max,
        optimum=Optimum(0.0, np.zeros(1)), note="attains the bound at that T",
    ) + check_c4(quad, "quadratic on the μ eigenvector", (0.5,), t_max,
                 note="attains the bound at every T")  # fmt: skip
