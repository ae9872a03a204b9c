"""Two quadratics f_k(θ) = ½ (θ − c_k)ᵀ H_k (θ − c_k), H_k ⪰ 0: everything in closed form.

f*_k = 0 at θ = c_k (attained); with a singular H_k the minimisers form the affine set
c_k + null(H_k). f_mix,λ is a quadratic with Hessian H_λ = λ H_dpo + (1 − λ) H_sft.
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
        self.dim = int(self.centers["sft"].shape[0])
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

    def to_json(self) -> dict:
        return {
            "kind": self.kind,
            "start": self.start.tolist(),
            **{
                k: {"hessian": self.hessians[k].tolist(), "center": self.centers[k].tolist()}
                for k in ("sft", "dpo")
            },
        }
