"""Instances that attain the bounds of the checks: the worst case of each bound's class.

A bound that stays far above what our instances measure may still be the best possible for
its class; these instances show it is, by meeting it.

- :class:`Huber` — Drori & Teboulle (Math. Program. 2014, Thm 3.2): for gradient descent with
  step 1/L, f(x) = L·h_δ(|x|), h_δ(r) = r²/2 (r ≤ δ), δr − δ²/2 (r > δ), δ = R/(2N + 1),
  x₀ = R gives f(x_N) = L R²/(4N + 2) exactly: every step moves by δ on the linear part.
- :func:`mu_eigenvector_quadratic` — a quadratic with eigenvalues μ < L, started on the
  eigenvector of μ: gradient descent with step 1/L has f(x_T) − f* = (1 − μ/L)^{2T}(f(x₀) − f*).
- :func:`equal_curvature_quadratic` — ½h(θ − c_sft)² and ½h(θ − c_dpo)² in one dimension:
  ALRIGHT's distance recursion E‖θ_{t+1} − θ*‖² = (1 − 2α_t h)E‖θ_t − θ*‖² + α_t² E‖g_t‖² holds
  with equality (⟨∇F(θ), θ − θ*⟩ = h‖θ − θ*‖² exactly), and F − F* = (h/2)‖θ − θ*‖².

Both objectives of the first two are the same function, so f_mix,λ is that function for every λ.
"""

from __future__ import annotations

import numpy as np

from toyopt.problems import QuadraticProblem
from toyopt.problems.base import Problem, as_rows


class Huber(Problem):
    """f_sft = f_dpo = L·h_δ(|θ|) on R, δ = radius/(2·steps + 1), start θ₀ = radius."""

    kind = "huber"
    dim = 1

    def __init__(self, radius: float, smooth: float, steps: int):
        self.smooth, self.delta = float(smooth), float(radius) / (2 * steps + 1)
        self.start = np.array([float(radius)])

    def value(self, objective, theta):
        r = np.abs(as_rows(theta)[:, 0])
        inner = 0.5 * r**2
        outer = self.delta * r - 0.5 * self.delta**2
        return self.smooth * np.where(r <= self.delta, inner, outer)

    def grad(self, objective, theta):
        x = as_rows(theta)
        return self.smooth * np.clip(x, -self.delta, self.delta)

    def hessian(self, objective, theta):
        inside = abs(float(np.ravel(theta)[0])) < self.delta
        return np.array([[self.smooth if inside else 0.0]])

    def span(self, objective):
        return np.eye(1)

    def recession_rows(self, objective):
        return np.zeros((0, 1))

    def grad_bound(self, objective):
        return self.smooth * self.delta

    def smoothness(self, objective):
        return self.smooth

    def to_json(self):
        raise TypeError("a worst-case instance of a proof, not a data set")


def mu_eigenvector_quadratic(mu: float, big_l: float = 1.0) -> QuadraticProblem:
    """f_sft = f_dpo = ½(μ θ₁² + L θ₂²), started at θ₀ = (1, 0) on the eigenvector of μ."""
    h = np.diag([mu, big_l])
    return QuadraticProblem({"sft": h, "dpo": h}, {"sft": np.zeros(2), "dpo": np.zeros(2)},
                            start=np.array([1.0, 0.0]))  # fmt: skip


def equal_curvature_quadratic(curvature: float = 1.0, spread: float = 1.0) -> QuadraticProblem:
    """½h(θ + s)² and ½h(θ − s)² in one dimension, started at θ₀ = 3s."""
    h = np.array([[curvature]])
    centers = {"sft": np.array([-spread]), "dpo": np.array([spread])}
    return QuadraticProblem({"sft": h, "dpo": h}, centers, start=np.array([3.0 * spread]))
