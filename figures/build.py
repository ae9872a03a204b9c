"""Compute and draw each figure: the functions ``python -m figures`` and the notebook call.

Each returns what it drew from, so that a caller can state the numbers behind a figure; the
figure files (PNG, PDF and the CSV data) land in ``out``.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass, field
from pathlib import Path

from figures import data as toy
from figures import (
    k3_tradeoff,
    llm_bars,
    llm_objective_space,
    llm_runs,
    llm_tables,
    toy_bars,
    toy_contours,
    toy_objective_space,
)
from figures import rates as rates_figure

DEFAULT_OUT = Path(__file__).parent / "out"


@dataclass
class Built:
    """Files written by one step and the data they show."""

    name: str
    paths: list[Path] = field(default_factory=list)
    data: object = None
    note: str = ""


def contours(out: Path, quick: bool = False, progress: bool = False) -> Built:
    data = toy.contour_data(toy.ToySetup.make(quick), progress=progress)
    return Built("toy_contours", toy_contours.render(data, out), data)


def toy_grid(out: Path, quick: bool = False, progress: bool = False) -> list[Built]:
    """The runs shared by the objective-space and bar figures, and both figures."""
    setup = toy.ToySetup.make(quick)
    records = toy.toy_runs(setup, progress=progress)
    space = toy.objective_space_data(setup, records)
    rows = toy.bar_table(records)
    return [
        Built("toy_objective_space", toy_objective_space.render(space, out), space),
        Built("toy_bars", toy_bars.render(rows, out), rows),
    ]


def rates(out: Path, quick: bool = False, data: dict | None = None) -> Built:
    """The rate figure from ``proofs_check.rates.rate_data`` (or from ``data`` when given)."""
    if data is None:
        module = _proofs_check("rates")
        if module is None:
            return Built("rates", note="skipped: proofs_check.rates is not available")
        data = module.rate_data(problem="toy2d", lam=0.5, quick=quick)
    return Built("rates", rates_figure.render(data, out), data)


def k3(out: Path, quick: bool = False) -> Built:
    """The K = 3 trade-off on proofs_check's three-objective quadratic."""
    module = _proofs_check("k_objectives")
    if module is None:
        return Built("k3_tradeoff", note="skipped: proofs_check.k_objectives is not available")
    data = k3_tradeoff.toy_data(module.k3_quadratic(), k3_tradeoff.Setup.make(quick))
    return Built("k3_tradeoff", k3_tradeoff.render(data, out), data)


def k3_llm(out: Path, results: Path | None) -> Built:
    """The K = 3 trade-off of the tiny model from ``benchmarks/k3_tiny.py``'s finals.csv."""
    if results is None:
        return Built("k3_tradeoff_tiny", note="skipped: no --k3-results")
    data = k3_tradeoff.llm_data(results)
    return Built("k3_tradeoff_tiny", k3_tradeoff.render(data, out, "k3_tradeoff_tiny"), data)


def _proofs_check(name: str):
    """``proofs_check.NAME``, or None where the package is not installed."""
    try:
        return importlib.import_module(f"proofs_check.{name}")
    except ModuleNotFoundError as e:
        if e.name not in ("proofs_check", f"proofs_check.{name}"):
            raise
        return None


def llm(out: Path, runs_dir: Path | None, optima: Path | None = None) -> list[Built]:
    """Both LLM figures from a directory of run directories; skipped (with a note) without one."""
    if runs_dir is None:
        note = "skipped: no --llm-runs DIR (a directory of toyopt.llm run directories)"
        return [Built("llm_objective_space", note=note), Built("llm_bars", note=note)]
    runs = llm_runs.read_runs(runs_dir)
    unfinished = [f"{r.path.name} (step {int(r.evals[-1, 0])} of {r.steps})"
                  for r in runs if not r.finished]  # fmt: skip
    runs = [r for r in runs if r.finished]
    if not runs:
        raise llm_runs.RunFormatError(f"{runs_dir}: no finished runs ({', '.join(unfinished)})")
    found, path = llm_runs.find_optima(runs_dir, optima)
    space = llm_tables.llm_objective_space_data(runs, found, path)
    rows = llm_tables.llm_bar_table(runs, found)
    notes = [] if found else ["no optima.json: raw held-out losses plotted"]
    notes += [f"skipped unfinished runs: {', '.join(unfinished)}"] if unfinished else []
    note = "; ".join(notes)
    return [
        Built("llm_objective_space", llm_objective_space.render(space, out), space, note),
        Built("llm_bars", llm_bars.render(rows, out), rows, note),
    ]


def study(out: Path, results: Path | None) -> Built:
    """The real-model study's figures from its CSV files; skipped (with a note) without them."""
    if results is None:
        return Built("study", note="skipped: no --study DIR (a toyopt-llm study's results)")
    from figures import llm_study

    return Built("study", llm_study.render(results, out))
