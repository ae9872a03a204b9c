"""Convergence data for the rate figure: the f_mix gap of every method against the budget,
with the explicit bound (or the sequential plateau) that the checks compare it with.

``rate_data(problem, lam, quick)`` returns ``{method: {"T", "gap", "ci_low", "ci_high", "bound",
...}}`` for method in :data:`METHODS`. T is the total number of optimizer steps (sequential: T/2
per stage). ``gap`` is the f_mix,λ gap (MAXRIGHT: the Chebyshev gap, what its theory is about),
averaged over seeds with a 95 % interval for ALRIGHT, a single deterministic run otherwise
(interval = the value). ``bound`` lists the explicit upper bound at each T or is None:

- ALRIGHT: the last-iterate bound with the run's own squared steps (C2), mean over seeds;
- MAXRIGHT: the λ = ½ subgradient bound (C3), None for other λ;
- Mix: the tight gradient-descent bound min(L‖θ₀ − θ*‖²/(4T + 2), (1 − μ/L)^{2T} gap₀) (C4);
- sequential: None; instead ``plateau`` (closed-form limit, C1) and ``lower_bound`` (the
  certified c_T at each T, C1).

Example::

    >>> from proofs_check.rates import rate_data
    >>> data = rate_data("toy2d", 0.5, quick=True)
    >>> sorted(data["mix"])
    ['T', 'bound', 'ci_high', 'ci_low', 'gap']
"""

from __future__ import annotations

import numpy as np

from proofs_check.c1_sequential import lower_bound, plateau, run_sequential
from proofs_check.c2_alright import alright_gaps
from proofs_check.c3_maxright import maxright_run
from proofs_check.c4_mix import mix_run
from proofs_check.runs import mean_ci
from toyopt.pareto import Geometry
from toyopt.problems import get_problem
from toyopt.simulate import log_spaced

METHODS = ("sequential-sft-dpo", "sequential-dpo-sft", "alright", "maxright", "mix")


def _series(steps, gap, lo=None, hi=None, bound=None) -> dict:
    gap = np.asarray(gap, dtype=float)
    return {
        "T": [int(t) for t in steps],
        "gap": gap.tolist(),
        "ci_low": (gap if lo is None else np.asarray(lo)).tolist(),
        "ci_high": (gap if hi is None else np.asarray(hi)).tolist(),
        "bound": None if bound is None else np.asarray(bound, dtype=float).tolist(),
    }


def rate_data(problem: str = "toy2d", lam: float = 0.5, quick: bool = False) -> dict:
    """Gap-versus-budget series for every method on a built-in problem (or a JSON file)."""
    prob = get_problem(problem)
    geometry = Geometry(prob)
    t_max, seeds = (1_000, 32) if quick else (10_000, 100)
    out: dict[str, dict] = {}
    stages = np.unique(log_spaced(t_max, 30) // 2)
    stages = stages[stages >= 1]
    totals = 2 * stages
    for first in ("sft", "dpo"):
        stage1, final = run_sequential(prob, first, stages)
        series = _series(totals, geometry.metrics(final, lam)["mix_gap"])
        series["plateau"] = plateau(geometry, first, lam)
        series["lower_bound"] = [
            lower_bound(geometry, first, lam, t1, int(t)) for t1, t in zip(stage1, stages)
        ]
        out[f"sequential-{first}-{'dpo' if first == 'sft' else 'sft'}"] = series
    run = alright_gaps(prob, lam, t_max, seeds)
    mean, lo, hi = mean_ci(run["gaps"], axis=1)
    out["alright"] = _series(run["T"], mean, lo, hi, run["bound"])
    run = maxright_run(prob, lam, t_max + 1)  # the bound at step n needs the move from θ_n
    idx = log_spaced(t_max, 30)[1:]
    out["maxright"] = _series(
        idx, run["gaps"][idx], bound=run["bound"][idx] if lam == 0.5 else None
    )
    run = mix_run(prob, lam, t_max)
    out["mix"] = _series(run["T"], run["gaps"], bound=run["bound"])
    return out
