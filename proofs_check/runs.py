"""Running rules for the checks: snapshots at chosen budgets, a ball-projected backend, and the
statistics (confidence intervals, fitted log-log rates) the records report.

Every run goes through :func:`toyopt.loop.train` with the real rule objects: the checks test the
code that users run, not a copy of it.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from scipy.stats import t as t_dist

from toyopt.backends import NumpyBackend
from toyopt.loop import Counters, train
from toyopt.problems.base import Problem
from toyopt.rules import Rule

Z95 = 1.959963984540054  # two-sided 95 % normal quantile


class BallBackend(NumpyBackend):
    """NumpyBackend followed by the Euclidean projection onto the ball B(center, radius).

    The last-iterate bound of Shamir & Zhang (2013) is for projected stochastic subgradient
    steps on a convex set of diameter D; projecting onto a ball that contains the optimum gives
    D = 2·radius without changing the optimum (the rule logic itself is untouched).
    """

    def __init__(self, problem: Problem, seeds, center, radius: float, batch: int | None = None):
        super().__init__(problem, seeds, batch=batch)
        self.center = np.asarray(center, dtype=float)
        self.radius = float(radius)

    def step(self, weights, lr, step):
        losses = super().step(weights, lr, step)
        offset = self.theta - self.center
        norm = np.linalg.norm(offset, axis=1, keepdims=True)
        scale = np.minimum(1.0, self.radius / np.maximum(norm, 1e-300))
        self.theta = self.center + offset * scale
        return losses


def run_snapshots(
    backend: NumpyBackend,
    rule: Rule,
    record: np.ndarray,
    schedule: Callable[[int], float],
    *,
    seeds: np.ndarray | None = None,
    start_step: int = 0,
    stationary: bool = False,
    chunk: int = 256,
) -> tuple[np.ndarray, Counters]:
    """Iterates (R, S, d) after each number of steps in ``record`` (counted from ``start_step``).

    ``stationary=True`` (only for a deterministic rule whose choice no longer changes, exact
    gradients and a constant step size) allows an exact shortcut: the step is then a fixed map
    θ ↦ θ', so once the iterates return bit for bit to the current one after p ≤ 16 steps (a
    floating-point fixed point, p = 1, or a rounding cycle), every later iterate is known
    exactly and the remaining snapshots are copies. Nothing is extrapolated.
    """
    record = np.asarray(sorted(int(r) for r in record))
    seeds = backend.seeds if seeds is None else seeds
    state = rule.init(seeds)
    counters = Counters()
    snaps: dict[int, np.ndarray] = {0: backend.theta.copy()}
    done, total = 0, int(record[-1])
    while done < total:
        stop = min(total, done + chunk)
        wanted = set(record[(record > done) & (record <= stop)].tolist())

        def keep(t, weights, losses, values, wanted=wanted):
            if t + 1 - start_step in wanted:
                snaps[t + 1 - start_step] = backend.theta.copy()

        state, counters = train(
            backend, rule, state, start_step + stop, schedule,
            start=start_step + done, counters=counters, on_step=keep,
        )  # fmt: skip
        done = stop
        if stationary and done < total:
            cycle = _cycle(backend, rule, state, schedule, start_step + done)
            if cycle is not None:
                for r in record[record > done]:
                    snaps[int(r)] = cycle[(int(r) - done) % len(cycle)]
                break
    return np.stack([snaps[int(r)] for r in record]), counters


def _cycle(backend, rule, state, schedule, step, max_period: int = 16) -> list[np.ndarray] | None:
    """If the iterates from here repeat with a period p ≤ ``max_period`` (bit for bit, every
    row), the p iterates of one period, starting with the current one; else None. Probed on a
    throw-away copy of the backend; rounding can make gradient descent settle into a 2-cycle."""
    probe = object.__new__(type(backend))
    probe.__dict__.update(backend.__dict__)
    probe.theta = backend.theta.copy()
    period = [backend.theta.copy()]
    for k in range(max_period):
        values = probe.values() if rule.wants_values(state, step + k) else None
        weights, _ = rule.choose(state, step + k, values)
        probe.step(weights, schedule(step + k), step + k)
        if np.array_equal(probe.theta, backend.theta):
            return period
        period.append(probe.theta.copy())
    return None


def mean_ci(samples: np.ndarray, axis: int = -1) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Mean and its normal-approximation 95 % interval over ``axis`` (the seeds)."""
    samples = np.asarray(samples, dtype=float)
    n = samples.shape[axis]
    mean = samples.mean(axis=axis)
    half = Z95 * samples.std(axis=axis, ddof=1) / np.sqrt(n) if n > 1 else 0.0 * mean
    return mean, mean - half, mean + half


def loglog_slope(
    steps: np.ndarray, samples: np.ndarray, rng_seed: int = 0, boots: int = 400
) -> tuple[float, tuple[float, float]]:
    """Least-squares slope of log(mean over seeds) against log T, with a 95 % interval.

    samples: (R, S), one column per seed. With several seeds the interval is a percentile
    bootstrap over seeds; with one (deterministic) run it is the regression's own t-interval,
    which measures how far the points are from a straight line.
    """
    x = np.log(np.asarray(steps, dtype=float))
    samples = np.asarray(samples, dtype=float).reshape(len(x), -1)

    def slope(cols: np.ndarray) -> float:
        y = np.log(np.maximum(samples[:, cols].mean(axis=1), 1e-300))
        return float(np.polyfit(x, y, 1)[0])

    s = samples.shape[1]
    point = slope(np.arange(s))
    if s == 1:
        y = np.log(np.maximum(samples[:, 0], 1e-300))
        resid = y - np.polyval(np.polyfit(x, y, 1), x)
        se = np.sqrt(resid @ resid / max(len(x) - 2, 1) / np.sum((x - x.mean()) ** 2))
        half = float(t_dist.ppf(0.975, max(len(x) - 2, 1)) * se)
        return point, (point - half, point + half)
    rng = np.random.default_rng(rng_seed)
    draws = [slope(rng.integers(0, s, size=s)) for _ in range(boots)]
    lo, hi = np.percentile(draws, [2.5, 97.5])
    return point, (float(lo), float(hi))
