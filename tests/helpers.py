"""Small shared test utilities for the core tests."""

from __future__ import annotations

import numpy as np

from toyopt.problems.base import Problem

OTHER = {"sft": "dpo", "dpo": "sft"}


class SwappedProblem(Problem):
    """The same two objectives with their names exchanged (for metamorphic tests)."""

    def __init__(self, base: Problem):
        self.base, self.kind, self.dim, self.start = base, base.kind, base.dim, base.start

    def value(self, objective, theta):
        return self.base.value(OTHER[objective], theta)

    def grad(self, objective, theta):
        return self.base.grad(OTHER[objective], theta)

    def hessian(self, objective, theta):
        return self.base.hessian(OTHER[objective], theta)

    def span(self, objective):
        return self.base.span(OTHER[objective])

    def recession_rows(self, objective):
        return self.base.recession_rows(OTHER[objective])

    def grad_bound(self, objective):
        return self.base.grad_bound(OTHER[objective])

    def smoothness(self, objective):
        return self.base.smoothness(OTHER[objective])

    def to_json(self):
        raise NotImplementedError


def finite_difference_grad(f, theta: np.ndarray, eps: float = 1e-6) -> np.ndarray:
    """Central differences of a batched scalar function f(θ (S, d)) -> (S,)."""
    return np.stack(
        [(f(theta + eps * e) - f(theta - eps * e)) / (2 * eps) for e in np.eye(theta.shape[1])],
        axis=1,
    )
