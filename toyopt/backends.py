"""The numpy backend: a batch of S toy iterates θ (S, d), one per seed, stepped together.

Plain (stochastic) gradient steps θ ← θ − α_t Σ_k w_k g_k. Rows whose weight on an objective is
zero do not compute that objective at all, so the cost a method pays is what it computes.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass

import numpy as np

from toyopt.problems.base import Problem
from toyopt.rules import Weights


class NumpyBackend:
    """Exact gradients by default; with ``batch`` = B, minibatch gradients from B data rows drawn
    (with replacement, by data weight) with the counter-based generator keyed by (seed, step).

    Each step makes a new ``theta`` array (a problem's deferred loss may keep the old one).
    """

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
        return {k: self.problem.value(k, self.theta) for k in self.problem.objectives}

    def _grad_and_loss(self, k: str, rows: np.ndarray | None, step: int):
        theta = self.theta if rows is None else self.theta.take(rows, axis=0)
        if self.batch is None:
            return self.problem.grad_and_loss(k, theta)
        seeds = self.seeds if rows is None else self.seeds.take(rows)
        grad, loss = self.problem.sample_grad(k, theta, seeds, step, self.batch)
        return grad, lambda: loss

    def step(self, weights: Weights, lr: float, step: int) -> Losses:
        """One update; every gradient is taken at the pre-step iterate, then all are applied.

        Only the rows with a positive weight on an objective compute it.
        """
        parts, losses = [], Losses(len(self.theta))
        names = self.problem.objectives
        if not weights.keys() <= set(names):
            unknown = sorted(set(weights) - set(names))
            raise ValueError(f"the problem has no objective {unknown}; it has {list(names)}")
        for k in names:
            if k not in weights:
                continue
            w = np.asarray(weights[k], dtype=float)
            active = w > 0
            rows = active.nonzero()[0]
            if len(rows) == 0:
                continue
            rows = None if len(rows) == len(w) else rows  # None: every row
            grad, losses.pending[k] = self._grad_and_loss(k, rows, step)
            losses.rows[k] = rows
            parts.append(_Part(rows, grad, w, active))
        if all(p.rows is not None for p in parts) and _disjoint(parts):
            self._apply_disjoint(parts, lr)
            return losses
        theta = self.theta
        for p in parts:  # every row (Mix, sequential), or rows in both objectives
            p.grad *= (lr * (p.weights if p.rows is None else p.weights.take(p.rows)))[:, None]
            if p.rows is None:
                theta = theta - p.grad
            else:
                theta = theta.copy() if theta is self.theta else theta
                theta[p.rows] -= p.grad
        self.theta = theta
        return losses

    def _apply_disjoint(self, parts: list[_Part], lr: float) -> None:
        """θ −= lr·w·g where each row computed at most one objective (a one-hot rule's step).

        The gradients are scattered into one (S, d) buffer through a one-element-per-row view:
        numpy's 2-D fancy assignment is several times slower than a 1-D one.
        """
        direction = np.empty_like(self.theta)
        if sum(len(p.rows) for p in parts) < len(self.theta):
            direction.fill(0.0)
        rows_view = _row_view(direction)
        scale = parts[0].weights.copy()
        for p in parts:
            rows_view[p.rows] = _row_view(p.grad)
            if p is not parts[0]:
                scale += p.weights
        scale *= lr
        direction *= scale[:, None]
        self.theta = self.theta - direction


@dataclass
class _Part:
    rows: np.ndarray | None  # the rows that computed this objective (None: all)
    grad: np.ndarray  # their gradients
    weights: np.ndarray  # the step's weights of this objective, every row
    active: np.ndarray  # weights > 0


def _disjoint(parts: list[_Part]) -> bool:
    if len(parts) < 2:
        return True
    if len(parts) == 2:
        return not np.count_nonzero(parts[0].active & parts[1].active)
    return bool(np.all(sum(p.active.astype(int) for p in parts) <= 1))


def _row_view(a: np.ndarray) -> np.ndarray:
    """A C-contiguous (S, d) float array seen as S opaque elements of d floats each."""
    a = np.ascontiguousarray(a, dtype=float)
    return a.view(np.dtype((np.void, a.itemsize * a.shape[1]))).reshape(len(a))


class Losses(Mapping):
    """The values of the objectives a step differentiated, at the pre-step iterate (NaN on the
    rows that did not compute one), finished when first read: most rules never read them, and
    on the toy problems finishing a value costs about as much as the rest of its gradient."""

    def __init__(self, size: int):
        self.size = size
        self.pending: dict[str, Callable[[], np.ndarray]] = {}
        self.rows: dict[str, np.ndarray | None] = {}
        self._done: dict[str, np.ndarray] = {}

    def __getitem__(self, k: str) -> np.ndarray:
        if k not in self._done:
            values, rows = self.pending[k](), self.rows[k]
            if rows is not None:
                values, full = np.full(self.size, np.nan), values
                values[rows] = full
            self._done[k] = values
        return self._done[k]

    def __iter__(self) -> Iterator[str]:
        return iter(self.pending)

    def __len__(self) -> int:
        return len(self.pending)
