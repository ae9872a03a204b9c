"""What every toy problem offers: values, gradients and Hessians of f_sft and f_dpo (batched
over rows θ of shape (S, d)), the subspace each objective depends on, and constants (gradient
and smoothness bounds) that the convergence checks need."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable

import numpy as np


def as_rows(theta: np.ndarray) -> np.ndarray:
    """θ as a 2-D batch (S, d)."""
    theta = np.asarray(theta, dtype=float)
    return theta[None, :] if theta.ndim == 1 else theta


def orthonormal_basis(vectors: np.ndarray, dim: int, rtol: float = 1e-10) -> np.ndarray:
    """An orthonormal basis (d, k) of the span of the rows of ``vectors``."""
    vectors = np.asarray(vectors, dtype=float).reshape(-1, dim)
    if vectors.size == 0:
        return np.zeros((dim, 0))
    _, s, vt = np.linalg.svd(vectors, full_matrices=False)
    rank = int(np.sum(s > rtol * max(s[0], 1e-300)))
    return vt[:rank].T


class Problem(ABC):
    """Named objectives (``sft`` and ``dpo`` unless a problem names others) on the same
    parameters θ ∈ R^d."""

    objectives: tuple[str, ...] = ("sft", "dpo")
    kind: str
    dim: int
    start: np.ndarray  # the initial iterate θ₀ of every run

    @abstractmethod
    def value(self, objective: str, theta: np.ndarray) -> np.ndarray:
        """f_objective at each row of θ: shape (S,)."""

    @abstractmethod
    def grad(self, objective: str, theta: np.ndarray) -> np.ndarray:
        """∇f_objective at each row of θ: shape (S, d)."""

    def grad_and_loss(
        self, objective: str, theta: np.ndarray
    ) -> tuple[np.ndarray, Callable[[], np.ndarray]]:
        """∇f at each row of θ, and a function that returns f there: what a gradient step
        computes (the value is a by-product of the gradient). Problems override this to finish
        the value only when it is read; the caller may overwrite the gradient and step θ in
        place, so the function must not depend on either."""
        value = self.value(objective, theta)
        return self.grad(objective, theta), lambda: value

    @abstractmethod
    def hessian(self, objective: str, theta: np.ndarray) -> np.ndarray:
        """∇²f_objective at one point θ (d,): shape (d, d)."""

    @abstractmethod
    def span(self, objective: str) -> np.ndarray:
        """Orthonormal basis (d, k) of the subspace S_k with f(θ) = f(P_S θ + rest): every
        gradient lies in S_k, so gradient steps never move θ outside θ₀ + S_k."""

    @abstractmethod
    def recession_rows(self, objective: str) -> np.ndarray:
        """Rows A with: the infimum is *not* attained iff some v has A v ≥ 0, A v ≠ 0."""

    @abstractmethod
    def grad_bound(self, objective: str) -> float:
        """G with ‖∇f(θ)‖ ≤ G for every θ (inf where unbounded)."""

    @abstractmethod
    def smoothness(self, objective: str) -> float:
        """L with ∇²f(θ) ⪯ L·I for every θ."""

    def sample_grad(
        self, objective: str, theta: np.ndarray, seeds: np.ndarray, step: int, batch: int
    ) -> tuple[np.ndarray, np.ndarray]:
        """Unbiased minibatch gradient and minibatch loss per row (counter-based sampling)."""
        raise ValueError(f"a {self.kind} problem has no data to sample minibatches from")

    @abstractmethod
    def to_json(self) -> dict: ...
