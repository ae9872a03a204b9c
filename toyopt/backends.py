"""The numpy backend: a batch of S toy iterates θ (S, d), one per seed, stepped together.

Plain (stochastic) gradient steps θ ← θ − α_t Σ_k w_k g_k. Rows whose weight on an objective is
zero do not compute that objective at all, so the cost a method pays is what it computes.
"""

from __future__ import annotations

import numpy as np

from toyopt.problems.base import Problem
from toyopt.rules import OBJECTIVES, Weights


class NumpyBackend:
    """Exact gradients by default; with ``batch`` = B, minibatch gradients from B data rows drawn
    (with replacement, by data weight) with the counter-based generator keyed by (seed, step)."""

    def __init__(
        self,
        problem: Problem,
        seeds: np.ndarray,
        batch: int | None = None,
        start: np.ndarray | None = None,
    ):
        if batch is not None and batch < 1:
            raise ValueError(f"the minibatch size must be >= 1, got {batch}")
        self.problem = problem
        self.seeds = np.asarray(seeds, dtype=np.int64).reshape(-1)
        self.batch = batch
        start = problem.start if start is None else np.asarray(start, dtype=float)
        self.theta = np.tile(start, (len(self.seeds), 1))

    def values(self) -> dict[str, np.ndarray]:
        return {k: self.problem.value(k, self.theta) for k in OBJECTIVES}

    def _grad_and_loss(self, k: str, rows: slice | np.ndarray, step: int):
        theta = self.theta[rows]
        if self.batch is None:
            return self.problem.grad(k, theta), self.problem.value(k, theta)
        return self.problem.sample_grad(k, theta, self.seeds[rows], step, self.batch)

    def step(self, weights: Weights, lr: float, step: int) -> dict[str, np.ndarray]:
        direction = np.zeros_like(self.theta)
        losses = {}
        for k in OBJECTIVES:
            w = np.asarray(weights[k], dtype=float)
            active = w > 0
            if not active.any():
                continue
            rows = slice(None) if active.all() else np.flatnonzero(active)
            grad, loss = self._grad_and_loss(k, rows, step)
            direction[rows] += w[rows, None] * grad
            losses[k] = np.full(len(w), np.nan)
            losses[k][rows] = loss
        self.theta = self.theta - lr * direction
        return losses
