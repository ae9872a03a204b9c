"""C4 — Mix converges to θ*_λ, the minimiser of f_mix,λ (the λ point of the Pareto front).

Claim. Mix steps on ∇f_mix,λ = λ∇f_dpo + (1−λ)∇f_sft with both gradients: gradient descent.

Assumptions and bounds. f_mix,λ is convex and L-smooth with
L = λ L_dpo + (1−λ) L_sft (``Problem.smoothness``; for quadratics the exact top eigenvalue of
H_λ = λH_dpo + (1−λ)H_sft). With the constant step α = 1/L (``Schedule("constant", 1/L)``):

- smooth convex (Beck 2017, Thm 10.21; Nesterov 2018, Cor. 2.1.2):
  f(θ_T) − f* ≤ L ‖θ₀ − θ*‖² / (2T), θ* = the minimiser nearest θ₀ (``Geometry.mix``);
- μ-strongly convex on the subspace the iterates live in (quadratics: μ = the smallest
  eigenvalue of H_λ on span(S_sft + S_dpo), exact): f(θ_T) − f* ≤ (1 − μ/L)^T (f(θ₀) − f*)
  (Polyak–Łojasiewicz; Karimi, Nutini & Schmidt 2016, Thm 1).

The record compares the gap with the bound at every budget (worst ratio shown).

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
from toyopt.backends import NumpyBackend
from toyopt.pareto import Geometry
from toyopt.problems.base import Problem, orthonormal_basis
from toyopt.rules import Mix, Rule
from toyopt.schedules import Schedule
from toyopt.simulate import log_spaced


def mix_constants(problem: Problem, lam: float) -> tuple[float, float | None]:
    """(L, μ): μ only for quadratics (exact eigenvalues on the iterates' subspace), else None."""
    if hasattr(problem, "hessians"):
        h = lam * problem.hessians["dpo"] + (1 - lam) * problem.hessians["sft"]
        q = orthonormal_basis(
            np.concatenate([problem.span(k).T for k in ("sft", "dpo")]), problem.dim
        )
        eig = np.linalg.eigvalsh(q.T @ h @ q)
        return float(eig[-1]), float(eig[0])
    return lam * problem.smoothness("dpo") + (1 - lam) * problem.smoothness("sft"), None


def mix_run(
    problem: Problem, lam: float, t_max: int, *, rule: Rule | None = None, lr_factor: float = 1.0
) -> dict:
    """Gaps of Mix at log-spaced budgets and the two bounds (``rule``/``lr_factor``: broken
    variants)."""
    geometry = Geometry(problem)
    big_l, mu = mix_constants(problem, lam)
    steps = log_spaced(t_max, 40)[1:]
    theta, _ = run_snapshots(
        NumpyBackend(problem, [0]), rule or Mix(lam), steps,
        Schedule("constant", lr_factor / big_l), stationary=True,
    )  # fmt: skip
    gaps = geometry.metrics(theta[:, 0], lam)["mix_gap"]
    star = geometry.mix(lam)
    dist2 = float(np.sum((problem.start - star.point) ** 2))
    smooth = big_l * dist2 / (2 * steps)
    strong = None
    if mu is not None and mu > 0:
        gap0 = float(geometry.f_mix(problem.start[None], lam)[0] - star.value)
        strong = (1 - mu / big_l) ** steps.astype(float) * gap0
    return {"T": steps, "gaps": gaps, "smooth": smooth, "strong": strong, "L": big_l, "mu": mu}


def check_c4(
    problem: Problem,
    name: str,
    lams: Sequence[float] = (0.25, 0.5, 0.75),
    t_max: int = 10_000,
    *,
    lam_used: float | None = None,
    lr_factor: float = 1.0,
) -> list[Record]:
    """One record per λ and bound (smooth; strongly convex when μ > 0). ``lam_used`` runs Mix
    with another λ than the one checked (broken variant)."""
    records = []
    for lam in lams:
        rule = Mix(lam if lam_used is None else lam_used)
        run = mix_run(problem, lam, t_max, rule=rule, lr_factor=lr_factor)
        kinds = [("smooth", "L‖θ0−θ*‖²/(2T)")]
        if run["strong"] is not None:
            kinds.append(("strong", "(1−μ/L)^T gap0"))
        for key, text in kinds:
            bound = run[key]
            ratio = run["gaps"] / np.maximum(bound, 1e-300)
            worst = int(np.argmax(np.where(np.isfinite(ratio), ratio, np.inf)))
            records.append(make_record(
                "C4", f"{name} λ={lam:g}", f"f_mix gap vs {text}, worst of T<={t_max:g}",
                run["gaps"][worst], "<=", bound[worst] + 1e-12,
                note=f"L={run['L']:.4g}" + (f", mu={run['mu']:.4g}" if run["mu"] else "")
                + "; +1e-12 for rounding of f*",
                details={"T": run["T"].tolist(), "gap": run["gaps"].tolist(), "bound": bound.tolist()},
            ))  # fmt: skip
    return records
