"""Pareto geometry of a two-objective toy problem: optima, the front, and per-iterate metrics.

- Single-objective optima f*_sft, f*_dpo. Each objective depends on θ only through its span S_k
  (``Problem.span``), so its minimisers, when the infimum is attained, form the affine set
  {θ : P_S θ = P_S θ*_k}; :meth:`Geometry.project` is the Euclidean projection onto it, which is
  also the limit of gradient descent started from θ (gradients live in S_k) — the plateau
  prediction for sequential training (claim C1).
- Attainment is decided exactly by a linear programme: the infimum of these convex objectives
  is *not* attained iff there is a direction of recession that is not a direction of constancy,
  i.e. some v with A v ≥ 0 and A v ≠ 0 (``Problem.recession_rows``). Then there is no optimum to
  report and we raise :class:`NotAttainedError` instead of returning a number that means nothing.
- θ*_λ minimises f_mix,λ = λ f_dpo + (1 − λ) f_sft; f*_mix,λ is its value.
- The weighted-Chebyshev optimum min_θ max{λ gap_dpo(θ), (1 − λ) gap_sft(θ)} (what MAXRIGHT
  converges to, claim C3) lies on the front where the two weighted gaps are equal: we find the
  mixing weight μ with λ gap_dpo(θ*_μ) = (1 − λ) gap_sft(θ*_μ) by bisection (Brent).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property, lru_cache

import numpy as np
from scipy.optimize import brentq, linprog

from toyopt.problems.base import Problem, orthonormal_basis
from toyopt.rules import OBJECTIVES, weighted_gaps

METRICS = ("f_sft", "f_dpo", "gap_sft", "gap_dpo", "ideal_distance", "mix_gap", "chebyshev_gap")


class NotAttainedError(ValueError):
    """The infimum of an objective is not attained (e.g. perfectly separable preferences)."""


@dataclass(frozen=True)
class Optimum:
    value: float
    point: np.ndarray


def is_attained(problem: Problem, objective: str) -> bool:
    """Exact test: no v with A v ≥ 0, Σ A v = 1 (a recession direction that is not constancy)."""
    a = problem.recession_rows(objective)
    if len(a) == 0:
        return True
    res = linprog(
        np.zeros(problem.dim),
        A_ub=-a,
        b_ub=np.zeros(len(a)),
        A_eq=a.sum(axis=0, keepdims=True),
        b_eq=[1.0],
        bounds=[(None, None)] * problem.dim,
        method="highs",
    )
    return res.status == 2  # infeasible: no such direction


def minimise(
    problem: Problem, weights: dict[str, float], start: np.ndarray, tol: float = 1e-13
) -> np.ndarray:
    """Minimise Σ_k weights[k] f_k over start + span (damped Newton with backtracking).

    Staying in start + span makes the result the minimiser nearest to ``start`` when the
    minimisers form an affine set. Assumes the infimum is attained (check first).
    """
    names = OBJECTIVES if set(weights) <= set(OBJECTIVES) else tuple(weights)
    active = [k for k in names if weights.get(k, 0.0) > 0]
    q = orthonormal_basis(np.concatenate([problem.span(k).T for k in active]), problem.dim)
    theta = np.asarray(start, dtype=float).copy()
    if q.shape[1] == 0:
        return theta

    def f(t: np.ndarray) -> float:
        return float(sum(weights[k] * problem.value(k, t)[0] for k in active))

    for _ in range(200):
        g = q.T @ sum(weights[k] * problem.grad(k, theta)[0] for k in active)
        if np.linalg.norm(g) < tol:
            break
        h = q.T @ sum(weights[k] * problem.hessian(k, theta) for k in active) @ q
        direction = q @ np.linalg.lstsq(h, -g, rcond=None)[0]
        step, f0, slope = 1.0, f(theta), float(g @ (q.T @ direction))
        while f(theta + step * direction) > f0 + 1e-4 * step * slope and step > 1e-12:
            step /= 2
        if step <= 1e-12:  # no further decrease representable in floating point
            break
        theta = theta + step * direction
    return theta


def single_objective_optima(problem: Problem, names) -> dict[str, Optimum]:
    """θ*_k nearest to the problem's start, and f*_k, for each objective named; a
    NotAttainedError where an infimum is not attained."""
    out = {}
    for k in names:
        if not is_attained(problem, k):
            raise NotAttainedError(
                f"the infimum of f_{k} is not attained on this problem (some direction "
                f"decreases it forever), so f*_{k} and the gaps are undefined"
            )
        point = minimise(problem, {k: 1.0}, problem.start)
        out[k] = Optimum(float(problem.value(k, point)[0]), point)
    return out


class Geometry:
    """Optima, front and metrics of one problem (λ-free; λ is an argument where it matters)."""

    def __init__(self, problem: Problem):
        self.problem = problem

    @cached_property
    def optima(self) -> dict[str, Optimum]:
        """θ*_k nearest to the problem's start, and f*_k, for k = sft, dpo."""
        return single_objective_optima(self.problem, OBJECTIVES)

    @property
    def f_star(self) -> dict[str, float]:
        return {k: o.value for k, o in self.optima.items()}

    def project(self, objective: str, theta: np.ndarray) -> np.ndarray:
        """Euclidean projection of θ (rows) onto the minimiser set of f_objective."""
        q = self.problem.span(objective)
        star = self.optima[objective].point
        return theta - (theta - star) @ q @ q.T

    @lru_cache(maxsize=256)  # noqa: B019 -- one Geometry per problem, few λ values
    def mix(self, lam: float) -> Optimum:
        """θ*_λ and f*_mix,λ = min λ f_dpo + (1 − λ) f_sft."""
        _ = self.optima  # raises if a single-objective infimum is not attained
        w = {"dpo": lam, "sft": 1.0 - lam}
        point = minimise(self.problem, w, self.problem.start)
        return Optimum(float(self.f_mix(point, lam)[0]), point)

    def f_mix(self, theta: np.ndarray, lam: float) -> np.ndarray:
        return lam * self.problem.value("dpo", theta) + (1 - lam) * self.problem.value("sft", theta)

    def gaps(self, theta: np.ndarray) -> dict[str, np.ndarray]:
        return {k: self.problem.value(k, theta) - self.f_star[k] for k in OBJECTIVES}

    def weighted_gaps(self, theta: np.ndarray, lam: float) -> dict[str, np.ndarray]:
        """λ gap_dpo and (1 − λ) gap_sft per row: the comparison MAXRIGHT makes."""
        values = {k: self.problem.value(k, theta) for k in OBJECTIVES}
        return weighted_gaps(lam, self.f_star, values)

    def _balance(self, mu: float, lam: float) -> float:
        w = self.weighted_gaps(self.mix(mu).point, lam)
        return float(w["dpo"][0] - w["sft"][0])

    @lru_cache(maxsize=256)  # noqa: B019
    def chebyshev(self, lam: float) -> Optimum:
        """min_θ max{λ gap_dpo, (1 − λ) gap_sft} and a minimiser on the Pareto front."""
        if lam in (0.0, 1.0):
            point = self.optima["sft" if lam == 0 else "dpo"].point
            return Optimum(0.0, point)
        lo, hi = 1e-9, 1 - 1e-9
        if self._balance(lo, lam) <= 0:
            mu = lo
        elif self._balance(hi, lam) >= 0:
            mu = hi
        else:
            mu = brentq(self._balance, lo, hi, args=(lam,), xtol=1e-13, rtol=1e-13)
        point = self.mix(mu).point
        w = self.weighted_gaps(point, lam)
        return Optimum(float(max(w["dpo"][0], w["sft"][0])), point)

    def front(self, lams: np.ndarray) -> np.ndarray:
        """(f_sft, f_dpo) at θ*_μ for each μ in ``lams``: shape (n, 2)."""
        pts = np.stack([self.mix(float(mu)).point for mu in lams])
        return np.stack([self.problem.value("sft", pts), self.problem.value("dpo", pts)], axis=1)

    def metrics(self, theta: np.ndarray, lam: float) -> dict[str, np.ndarray]:
        """Per-row metrics of iterates θ (S, d); see :data:`METRICS`."""
        f = {k: self.problem.value(k, theta) for k in OBJECTIVES}
        gap = {k: f[k] - self.f_star[k] for k in OBJECTIVES}
        weighted = weighted_gaps(lam, self.f_star, f)
        return {
            "f_sft": f["sft"],
            "f_dpo": f["dpo"],
            "gap_sft": gap["sft"],
            "gap_dpo": gap["dpo"],
            "ideal_distance": np.hypot(gap["sft"], gap["dpo"]),
            "mix_gap": lam * f["dpo"] + (1 - lam) * f["sft"] - self.mix(lam).value,
            "chebyshev_gap": np.maximum(weighted["dpo"], weighted["sft"])
            - self.chebyshev(lam).value,
        }


class NamedGeometry:
    """Optima of a problem with K ≥ 2 named objectives (``problem.objectives``) for weights λ
    on the simplex: f*_k (attainment decided exactly, as in :class:`Geometry`), the weighted
    optimum argmin Σ λ_k f_k (attained when every f_k is: a recession direction of the sum is
    one of every f_k) and the Chebyshev optimum min_θ max_k λ_k (f_k(θ) − f*_k)."""

    def __init__(self, problem: Problem):
        self.problem = problem

    @cached_property
    def optima(self) -> dict[str, Optimum]:
        return single_objective_optima(self.problem, self.problem.objectives)

    @property
    def f_star(self) -> dict[str, float]:
        return {k: o.value for k, o in self.optima.items()}

    def weighted(self, weights: dict[str, float]) -> Optimum:
        _ = self.optima  # raises if a single-objective infimum is not attained
        point = minimise(self.problem, dict(weights), self.problem.start)
        value = sum(w * self.problem.value(k, point)[0] for k, w in weights.items())
        return Optimum(float(value), point)

    def chebyshev(self, weights: dict[str, float]) -> Optimum:
        """min t subject to λ_k (f_k(θ) − f*_k) ≤ t (SLSQP from the weighted optimum, exact
        gradients); the value is max_k λ_k (f_k − f*_k) at the point found."""
        from scipy.optimize import minimize

        f_star, p, dim = self.f_star, self.problem, self.problem.dim
        names = [k for k, w in weights.items() if w > 0]
        x0 = self.weighted(weights).point

        def gap(k: str, theta: np.ndarray) -> float:
            return weights[k] * (p.value(k, theta)[0] - f_star[k])

        def con(k: str) -> dict:
            return {"type": "ineq", "fun": lambda x: x[-1] - gap(k, x[:-1]),
                    "jac": lambda x: np.concatenate([-weights[k] * p.grad(k, x[:-1])[0], [1.0]])}  # fmt: skip

        t0 = max(gap(k, x0) for k in names)
        res = minimize(
            lambda x: x[-1], np.concatenate([x0, [t0]]),
            jac=lambda x: np.concatenate([np.zeros(dim), [1.0]]),
            constraints=[con(k) for k in names], method="SLSQP",
            options={"ftol": 1e-15, "maxiter": 1000},
        )  # fmt: skip
        point = res.x[:-1] if max(gap(k, res.x[:-1]) for k in names) <= t0 else x0
        return Optimum(float(max(gap(k, point) for k in names)), point)
