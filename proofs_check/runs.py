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
from toyopt.rules import Rule

Z95 = 1.959963984540054  # two-sided 95 % normal quantile


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
    moves: MoveSums | None = None,
) -> tuple[np.ndarray, Counters]:
    """Iterates (R, S, d) after each number of steps in ``record`` (counted from ``start_step``).

    ``moves``, when given, receives every step's squared length ‖θ_{t+1} − θ_t‖² per row: the
    α_t²‖g_t‖² from which the bounds of C2 and C3 take E‖g_t‖² along the path.

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
    wanted = set(record.tolist())
    previous = [backend.theta]

    def keep(t, weights, losses, values):
        done = t + 1 - start_step
        if done in wanted:
            snaps[done] = backend.theta.copy()
        if moves is not None:  # the backend makes a new θ array at every step
            step = backend.theta - previous[0]
            moves.add(done - 1, np.einsum("sd,sd->s", step, step))
            previous[0] = backend.theta

    done, total = 0, int(record[-1])
    while done < total:
        stop = min(total, done + chunk)
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
    if moves is not None:
        moves.flush()
    return np.stack([snaps[int(r)] for r in record]), counters


class MoveSums:
    """Σ_s weights[r, s]·‖θ_{s+1} − θ_s‖² per row, for every row r of ``weights`` (R, N):
    linear functionals of the squared step lengths, accumulated a block of steps at a time
    (the bounds of C2 and C3 are such functionals, so each seed gets its own bound)."""

    def __init__(self, weights: np.ndarray, rows: int, block: int = 256):
        self.weights = np.asarray(weights, dtype=float)
        self.sums = np.zeros((len(self.weights), rows))
        self.buffer = np.zeros((block, rows))
        self.first, self.filled = 0, 0

    def add(self, step: int, squares: np.ndarray) -> None:
        if self.filled == len(self.buffer) or step != self.first + self.filled:
            self.flush()
            self.first = step
        self.buffer[self.filled] = squares
        self.filled += 1

    def flush(self) -> None:
        stop = min(self.first + self.filled, self.weights.shape[1])
        if stop > self.first:
            block = self.weights[:, self.first : stop]
            self.sums += block @ self.buffer[: stop - self.first]
        self.first, self.filled = self.first + self.filled, 0


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
