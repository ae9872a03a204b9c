"""Run a rule on a toy problem for a batch of seeds and keep a log-spaced trajectory."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from toyopt.backends import NumpyBackend
from toyopt.loop import Counters, train
from toyopt.problems.base import Problem
from toyopt.rules import Rule
from toyopt.schedules import Schedule


@dataclass
class Trajectory:
    steps: np.ndarray  # (R,) numbers of updates done at each snapshot, from 0 to the budget
    theta: np.ndarray  # (R, S, d) iterates at those steps, one row per seed
    counters: Counters
    seeds: np.ndarray

    @property
    def final(self) -> np.ndarray:
        """The last iterates, (S, d)."""
        return self.theta[-1]


def log_spaced(steps: int, points: int = 60) -> np.ndarray:
    """Integers 0 … steps, roughly evenly spaced on a log axis (for trajectories and rate plots)."""
    grid = np.unique(np.round(np.logspace(0, np.log10(max(steps, 1)), points)).astype(int))
    return np.unique(np.concatenate([[0], grid[grid <= steps], [steps]]))


def simulate(
    problem: Problem,
    rule: Rule,
    steps: int,
    schedule: Schedule,
    seeds: int | np.ndarray = 1,
    *,
    batch: int | None = None,
    record: np.ndarray | None = None,
    start: np.ndarray | None = None,
    progress: bool = False,
) -> Trajectory:
    """``steps`` optimizer steps of ``rule`` from the problem's start, one run per seed.

    ``seeds`` is an array of seeds, or a count S (seeds 0 … S−1). ``record`` lists the step counts
    at which to keep the iterates (default: log-spaced).
    """
    seeds = np.arange(seeds) if np.isscalar(seeds) else np.asarray(seeds)
    record = log_spaced(steps) if record is None else np.asarray(record)
    backend = NumpyBackend(problem, seeds, batch=batch, start=start)
    wanted = set(int(r) for r in record)
    snapshots = [backend.theta.copy()] if 0 in wanted else []

    def keep(t, weights, losses, values) -> None:
        if t + 1 in wanted:
            snapshots.append(backend.theta.copy())

    counters = None
    if tuple(problem.objectives) != ("sft", "dpo"):  # every objective counted, zeros included
        names = problem.objectives
        counters = Counters(dict.fromkeys(names, 0), dict.fromkeys(names, 0))
    _, counters = train(
        backend, rule, rule.init(seeds), steps, schedule, counters=counters, on_step=keep,
        progress=progress,
    )  # fmt: skip
    return Trajectory(np.array(sorted(wanted)), np.stack(snapshots), counters, seeds)
