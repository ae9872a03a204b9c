"""A problem restricted to an affine set {base + Q z}: minimising over the set with the core's
Newton solver (:func:`toyopt.pareto.minimise`) without re-implementing it."""

from __future__ import annotations

import numpy as np

from toyopt.problems.base import Problem, as_rows, orthonormal_basis


class AffineRestriction(Problem):
    """f_k(base + Q z) as a problem in z ∈ R^m (Q: (d, m) orthonormal columns)."""

    def __init__(self, problem: Problem, base: np.ndarray, basis: np.ndarray):
        self.problem, self.kind = problem, problem.kind
        self.base = np.asarray(base, dtype=float)
        self.basis = np.asarray(basis, dtype=float)
        self.dim = self.basis.shape[1]
        self.start = np.zeros(self.dim)

    def lift(self, z: np.ndarray) -> np.ndarray:
        return self.base + as_rows(z) @ self.basis.T

    def value(self, objective, theta):
        return self.problem.value(objective, self.lift(theta))

    def grad(self, objective, theta):
        return self.problem.grad(objective, self.lift(theta)) @ self.basis

    def hessian(self, objective, theta):
        h = self.problem.hessian(objective, self.lift(theta)[0])
        return self.basis.T @ h @ self.basis

    def span(self, objective):
        # f_k(base + Qz) depends on z only through S_kᵀ Q z.
        return orthonormal_basis((self.basis.T @ self.problem.span(objective)).T, self.dim)

    def recession_rows(self, objective):
        return self.problem.recession_rows(objective) @ self.basis

    def grad_bound(self, objective):
        return self.problem.grad_bound(objective)

    def smoothness(self, objective):
        return self.problem.smoothness(objective)

    def to_json(self):
        raise TypeError("a restricted problem is a computational device, not a data set")
