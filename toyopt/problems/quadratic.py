"""Quadratics f_k(θ) = ½ (θ − c_k)ᵀ H_k (θ − c_k), H_k ⪰ 0: everything in closed form.

f*_k = 0 at θ = c_k (attained); with a singular H_k the minimisers form the affine set
c_k + null(H_k). f_mix,λ is a quadratic with Hessian H_λ = λ H_dpo + (1 − λ) H_sft.

The objectives are ``sft`` and ``dpo``, or any K ≥ 2 named ones. For weights λ on the simplex
the weighted optimum argmin Σ λ_k f_k is (Σ λ_k H_k)⁺ Σ λ_k H_k c_k (:meth:`weighted_optimum`);
the Chebyshev optimum argmin max_k λ_k f_k (f*_k = 0) is the solution of a small convex
programme (:meth:`chebyshev_optimum`).
"""

from __future__ import annotations

import numpy as np

from toyopt.problems.base import Problem, as_rows, orthonormal_basis


class QuadraticProblem(Problem):
    kind = "quadratic"

    def __init__(
        self,
        hessians: dict[str, np.ndarray],
        centers: dict[str, np.ndarray],
        start: np.ndarray | None = None,
    ):
        self.hessians = {k: np.asarray(v, dtype=float) for k, v in hessians.items()}
        self.centers = {k: np.asarray(v, dtype=float) for k, v in centers.items()}
        if set(self.hessians) != set(self.centers) or len(self.hessians) < 2:
            raise ValueError("a quadratic needs a Hessian and a center for each of 2+ objectives")
        if set(self.hessians) != {"sft", "dpo"}:
            self.objectives = tuple(self.hessians)
        self.dim = int(self.centers[self.objectives[0]].shape[0])
        self.start = np.zeros(self.dim) if start is None else np.asarray(start, dtype=float)

    def value(self, objective: str, theta: np.ndarray) -> np.ndarray:
        r = as_rows(theta) - self.centers[objective]
        return 0.5 * np.einsum("si,ij,sj->s", r, self.hessians[objective], r)

    def grad(self, objective: str, theta: np.ndarray) -> np.ndarray:
        return (as_rows(theta) - self.centers[objective]) @ self.hessians[objective]

    def grad_and_loss(self, objective: str, theta: np.ndarray):
        r = as_rows(theta) - self.centers[objective]
        g = r @ self.hessians[objective]
        value = 0.5 * np.einsum("si,si->s", r, g)  # now: the caller may overwrite g
        return g, lambda: value

    def hessian(self, objective: str, theta: np.ndarray) -> np.ndarray:
        return self.hessians[objective].copy()

    def span(self, objective: str) -> np.ndarray:
        return orthonormal_basis(self.hessians[objective], self.dim)

    def recession_rows(self, objective: str) -> np.ndarray:
        return np.zeros((0, self.dim))  # a PSD quadratic always attains its minimum

    def grad_bound(self, objective: str) -> float:
        return float("inf") if np.any(self.hessians[objective]) else 0.0

    def smoothness(self, objective: str) -> float:
        return float(np.linalg.eigvalsh(self.hessians[objective])[-1])

    def weighted_optimum(self, weights: dict[str, float]) -> tuple[np.ndarray, float]:
        """(θ*_λ, f*_λ) of f_λ = Σ λ_k f_k: θ*_λ = H_λ⁺ Σ λ_k H_k c_k, H_λ = Σ λ_k H_k (the
        minimiser of least norm offset when H_λ is singular; f_λ is bounded below, f*_λ ≥ 0)."""
        h = sum(w * self.hessians[k] for k, w in weights.items())
        b = sum(w * self.hessians[k] @ self.centers[k] for k, w in weights.items())
        point = np.linalg.lstsq(h, b, rcond=None)[0]
        return point, float(sum(w * self.value(k, point)[0] for k, w in weights.items()))

    def chebyshev_optimum(self, weights: dict[str, float]) -> tuple[np.ndarray, float]:
        """(θ_cheb, F*) with F(θ) = max_k λ_k (f_k(θ) − f*_k), f*_k = 0: minimise t subject to
        λ_k f_k(θ) ≤ t (SLSQP from the weighted optimum, constraints with exact gradients)."""
        from scipy.optimize import minimize

        names = [k for k, w in weights.items() if w > 0]
        x0 = self.weighted_optimum(weights)[0]
        t0 = max(weights[k] * self.value(k, x0)[0] for k in names)

        def con(k):
            w = weights[k]
            return {
                "type": "ineq",
                "fun": lambda x: x[-1] - w * self.value(k, x[:-1])[0],
                "jac": lambda x: np.concatenate([-w * self.grad(k, x[:-1])[0], [1.0]]),
            }

        res = minimize(
            lambda x: x[-1], np.concatenate([x0, [t0]]),
            jac=lambda x: np.concatenate([np.zeros(self.dim), [1.0]]),
            constraints=[con(k) for k in names], method="SLSQP",
            options={"ftol": 1e-15, "maxiter": 1000},
        )  # fmt: skip
        point = res.x[:-1]
        return point, float(max(weights[k] * self.value(k, point)[0] for k in names))

    def to_json(self) -> dict:
        parts = {
            k: {"hessian": self.hessians[k].tolist(), "center": self.centers[k].tolist()}
            for k in self.objectives
        }
        if self.objectives == ("sft", "dpo"):
            return {"kind": self.kind, "start": self.start.tolist(), **parts}
        return {"kind": self.kind, "start": self.start.tolist(), "objectives": parts}
