"""Computation behind the toy figures (no plotting here): trajectories, final-point metrics and
measured costs of every method on the built-in 2-D log-linear instance "toy2d".

Setting (the same for every toy figure, and stated on them): all methods start from the
common point θ₀ = (0, −1), where both objectives are worse than at the reference policy θ_ref = 0
(f_sft 1.16, f_dpo 1.11 against the ideal point (0.898, 0.500)), as the paper's Pythia figure
starts every method from one base model. Steps are exact gradient steps with the constant step
size 0.1 (the paper's runs use a constant learning rate) for a budget of 3000 optimizer steps,
the same for every method: small enough that each sequential stage converges and ALRIGHT's
noise floor (proportional to the step) stays small. The sequential run paired with λ splits the
budget (T_dpo, T_sft) ∈ {(1,5), …, (5,1)} sixths, DPO first then SFT, as in the paper's Pythia
figure. ALRIGHT is the only random method here (its coin, keyed by (seed, step)); the bars
average over seeds, the paths show seed 0.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass, field

import numpy as np

from toyopt.pareto import Geometry
from toyopt.problems import get_problem
from toyopt.problems.base import Problem
from toyopt.rules import OBJECTIVES, default_switch, make_rule
from toyopt.schedules import Schedule
from toyopt.simulate import Trajectory, simulate

LAMS: tuple[float, ...] = (0.01, 0.25, 0.5, 0.75, 0.99)
SPLITS: tuple[tuple[int, int], ...] = ((1, 5), (2, 4), (3, 3), (4, 2), (5, 1))  # (T_dpo, T_sft)
JOINT = ("alright", "maxright", "mix")
SEQUENTIAL = "sequential-dpo-sft"


@dataclass(frozen=True)
class ToySetup:
    """Everything that decides the toy runs; quick mode is for tests and the notebook check."""

    problem: str = "toy2d"
    start: tuple[float, ...] = (0.0, -1.0)
    steps: int = 3000
    schedule: str = "constant"
    lr: float = 0.1
    seeds: int = 5
    points: int = 300  # iterates kept per trajectory (evenly spaced in steps)

    @classmethod
    def make(cls, quick: bool = False) -> ToySetup:
        # Quick: a fifth of the budget at twice the step size, two seeds: the same qualitative
        # picture in seconds (ALRIGHT's noise floor, proportional to the step, is twice as high).
        return cls(steps=600, lr=0.2, seeds=2, points=150) if quick else cls()

    def load(self) -> tuple[Problem, Geometry]:
        problem = get_problem(self.problem)
        return problem, Geometry(problem)

    def describe(self) -> str:
        return (
            f"{self.problem}, start θ₀={list(self.start)}, {self.steps} steps, "
            f"{self.schedule} step size {self.lr}"
        )


def switch_for(setup: ToySetup, split: tuple[int, int]) -> int:
    """Step at which the DPO-first sequential run moves to SFT: T_dpo sixths of the budget."""
    return split[0] * setup.steps // sum(split)


def record_grid(setup: ToySetup) -> np.ndarray:
    return np.unique(np.linspace(0, setup.steps, setup.points + 1).round().astype(int))


def run(
    setup: ToySetup,
    problem: Problem,
    geometry: Geometry,
    rule_name: str,
    lam: float,
    seeds: np.ndarray,
    switch: int | None = None,
) -> Trajectory:
    """One method on the toy problem from the common start, one row per seed."""
    rule = make_rule(rule_name, lam, setup.steps, switch=switch, optima=geometry.f_star)
    return simulate(
        problem,
        rule,
        setup.steps,
        Schedule(setup.schedule, setup.lr),
        seeds=np.asarray(seeds),
        record=record_grid(setup),
        start=np.asarray(setup.start, dtype=float),
    )


def pareto_weights(n: int = 200) -> np.ndarray:
    """Mixing weights μ ∈ [0, 1) for drawing the Pareto set/front, dense near μ = 1, where the
    set approaches the DPO-optimal point best for SFT (μ = 1 itself would return the DPO
    minimiser nearest the start, which is not Pareto-optimal)."""
    return np.unique(np.concatenate([np.linspace(0, 0.95, n), 1 - np.logspace(-1.5, -5, n // 4)]))


@dataclass
class RunRecord:
    """Final metrics, cost and (for the first seed) the objective-space path of one run."""

    lam: float
    split: tuple[int, int]
    rule: str
    seed: int
    final: dict[str, float]
    wall_time: float
    grads_per_step: float
    funcs_per_step: float
    path: np.ndarray | None = field(default=None, repr=False)  # (R, 3): step, f_sft, f_dpo


def grid_tasks(setup: ToySetup) -> list[tuple[float, tuple[int, int], str, int]]:
    return [
        (lam, split, rule, seed)
        for lam, split in zip(LAMS, SPLITS)
        for rule in (SEQUENTIAL, *JOINT)
        for seed in range(setup.seeds)
    ]


def toy_runs(setup: ToySetup, progress: bool = False) -> list[RunRecord]:
    """Every (λ, method, seed) of the objective-space and bar figures.

    Each seed is its own single-row run so that its wall time is the cost of one training run
    (a batch of rows would mix ALRIGHT's per-row choices into one step and blur the timing).
    """
    problem, geometry = setup.load()
    tasks = grid_tasks(setup)
    records = []
    for lam, split, rule, seed in _progress(tasks, progress, "toy runs"):
        switch = switch_for(setup, split) if rule == SEQUENTIAL else None
        t0 = time.perf_counter()
        traj = run(setup, problem, geometry, rule, lam, np.array([seed]), switch)
        wall = time.perf_counter() - t0
        per = traj.counters.per_step(rows=1, steps=setup.steps)
        final = {k: float(v[0]) for k, v in geometry.metrics(traj.final, lam).items()}
        path = None
        if seed == 0:
            theta = traj.theta[:, 0]
            f = [problem.value(k, theta) for k in OBJECTIVES]
            path = np.column_stack([traj.steps, *f])
        records.append(
            RunRecord(
                lam,
                split,
                rule,
                seed,
                final,
                wall,
                per["grad_sft"] + per["grad_dpo"],
                per["func_sft"] + per["func_dpo"],
                path,
            )
        )
    return records


@dataclass
class ObjectiveSpaceData:
    """Paths in the (f_sft, f_dpo) plane, the exact Pareto front and the ideal point."""

    records: list[RunRecord]  # the runs whose ``path`` is set are drawn
    front: np.ndarray  # (k, 3): μ, f_sft(θ*_μ), f_dpo(θ*_μ); k = 0 when unknown
    ideal: tuple[float, float] | None  # (f*_sft, f*_dpo), None when unknown
    start: tuple[float, float]  # (f_sft, f_dpo) at the common start
    setting: str
    xlabel: str = r"$f_{\rm sft}(\theta)$"
    ylabel: str = r"$f_{\rm dpo}(\theta)$"


def objective_space_data(setup: ToySetup, records: list[RunRecord]) -> ObjectiveSpaceData:
    problem, geometry = setup.load()
    mu = pareto_weights()
    start = np.asarray(setup.start, dtype=float)
    return ObjectiveSpaceData(
        [r for r in records if r.path is not None],
        np.column_stack([mu, geometry.front(mu)]),
        (geometry.f_star["sft"], geometry.f_star["dpo"]),
        (float(problem.value("sft", start)[0]), float(problem.value("dpo", start)[0])),
        setup.describe(),
    )


def bar_table(records: list[RunRecord]) -> list[dict[str, float | str]]:
    """Per (λ, method): mean and standard deviation over seeds of the final gaps and ideal
    distance; the fastest seed's wall time (the least disturbed measurement of the same work);
    evaluations per step from the loop's counters; and both costs relative to the paired
    sequential run, in percent: 100 (cost / cost_sequential − 1)."""
    rows = []
    for lam, split in zip(LAMS, SPLITS):
        group = {
            r: [x for x in records if x.lam == lam and x.rule == r] for r in (SEQUENTIAL, *JOINT)
        }
        if not group[SEQUENTIAL]:
            continue
        base_wall = min(x.wall_time for x in group[SEQUENTIAL])
        base_grads = group[SEQUENTIAL][0].grads_per_step
        for rule, runs in group.items():
            if not runs:
                continue
            row: dict[str, float | str] = {
                "lam": lam,
                "split": f"{split[0]}:{split[1]}",
                "rule": rule,
            }
            for key in ("gap_dpo", "gap_sft", "ideal_distance", "mix_gap", "chebyshev_gap"):
                vals = np.array([x.final[key] for x in runs])
                row[key] = float(vals.mean())
                row[f"{key}_std"] = float(vals.std())
            wall = min(x.wall_time for x in runs)
            grads = runs[0].grads_per_step
            row.update(
                seeds=len(runs),
                wall_time_s=wall,
                grads_per_step=grads,
                funcs_per_step=runs[0].funcs_per_step,
                wall_increase_pct=100 * (wall / base_wall - 1),
                grad_increase_pct=100 * (grads / base_grads - 1),
            )
            rows.append(row)
    return rows


@dataclass
class ContourData:
    """Everything the parameter-space picture shows, for one λ."""

    lam: float
    x: np.ndarray  # (n,) grid of θ₁
    y: np.ndarray  # (m,) grid of θ₂
    f: dict[str, np.ndarray]  # objective -> (m, n) values on the grid
    optimum_sft: np.ndarray  # θ*_sft (unique on toy2d)
    dpo_line: np.ndarray  # (2, 2): two points of the DPO minimiser line, clipped to the box
    mix_optimum: np.ndarray  # θ*_λ
    pareto_set: np.ndarray  # (k, 2): θ*_μ for μ ∈ [0, 1)
    start: np.ndarray
    steps: np.ndarray  # (R,) step counts of the kept iterates
    paths: dict[str, np.ndarray]  # rule -> (R, 2) iterates of seed 0
    setting: str = ""


def contour_data(
    setup: ToySetup,
    lam: float = 0.5,
    box: tuple[float, float, float, float] = (-1.6, 2.6, -1.4, 2.8),
    progress: bool = False,
) -> ContourData:
    """Contours, optima, Pareto set and the trajectories of every method at one λ. Sequential
    runs split the budget in equal halves (the paper's T_dpo = T_sft), in both orders."""
    problem, geometry = setup.load()
    if problem.dim != 2:
        raise ValueError(
            f"the contour figure needs a 2-D problem, {setup.problem} has d={problem.dim}"
        )
    x0, x1, y0, y1 = box
    x, y = np.linspace(x0, x1, 161), np.linspace(y0, y1, 161)
    grid = np.stack(np.meshgrid(x, y), axis=-1).reshape(-1, 2)
    f = {k: problem.value(k, grid).reshape(len(y), len(x)) for k in OBJECTIVES}
    star = geometry.optima["dpo"].point
    along = _null_direction(problem.span("dpo"))
    reach = 2 * np.hypot(x1 - x0, y1 - y0)
    dpo_line = np.stack([star - reach * along, star + reach * along])
    pareto = np.stack([geometry.mix(float(mu)).point for mu in pareto_weights()])
    rules = ("sequential-sft-dpo", SEQUENTIAL, *JOINT)
    paths = {}
    for rule in _progress(list(rules), progress, "contour runs"):
        switch = default_switch(setup.steps) if rule.startswith("sequential") else None
        paths[rule] = run(setup, problem, geometry, rule, lam, np.array([0]), switch).theta[:, 0]
    return ContourData(
        lam,
        x,
        y,
        f,
        geometry.optima["sft"].point,
        dpo_line,
        geometry.mix(lam).point,
        pareto,
        np.asarray(setup.start, dtype=float),
        record_grid(setup),
        paths,
        setup.describe(),
    )


def _null_direction(span: np.ndarray) -> np.ndarray:
    """A unit vector orthogonal to the span (the direction along which f_dpo is constant)."""
    _, _, vt = np.linalg.svd(span.T, full_matrices=True)
    return vt[-1]


def _progress(items: list, progress: bool, desc: str) -> Iterator:
    if not progress:
        return iter(items)
    from tqdm.auto import tqdm

    return iter(tqdm(items, desc=desc, leave=False))
