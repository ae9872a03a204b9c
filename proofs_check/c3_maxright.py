"""C3 — MAXRIGHT converges to the weighted-Chebyshev optimum (the paper's MAXRIGHT theorem).

Claim. Stepping on the objective with the larger weighted gap, argmax{λ gap_dpo, (1−λ) gap_sft},
drives the Chebyshev gap F(θ_T) − F*, F = max{λ gap_dpo, (1−λ) gap_sft}, to zero; the
memory-efficient variant that refreshes both gaps only every K steps approaches the exact one.

Run. The real rules, exact gradients, no projection, α_t = α₀/√(t+1), α₀ = 1/max(L_sft, L_dpo),
every iterate kept (one deterministic run).

Bound ``C3 bound`` (λ = ½). The chosen gradient ∇f_k = 2·(½∇f_k) is twice a subgradient of F,
so MAXRIGHT is the subgradient method on F with steps η_t = 2α_t, and its squared moves
m_s = ‖θ_{s+1} − θ_s‖² = η_s²‖g_s‖² are known exactly. The last-iterate bound of
:mod:`proofs_check.bounds` (convex F, no bounded domain needed) gives, for every step n,

    F(θ_n) − F* ≤ (1/(2η_n)) [‖θ₀ − θ_cheb‖²/(n+1) + Σ_{s=0}^{n} m_s / max(1, n − s)],

θ_cheb the Chebyshev optimum (``Geometry.chebyshev``): the actual distance and the actual
subgradient norms along the path. For λ ≠ ½ the effective step α_t/λ or α_t/(1−λ) changes
with the choice, the steps are not monotone and the lemma does not apply: convergence only.
Why the ratio is not 1: the bound is the worst case over convex F; F here is the maximum of two
smooth functions, nearly a kink near θ_cheb, where the iterates zigzag and the 1/(n − s)
weights sum to a harmonic number (≈ ln n) that the zigzag does not pay.

Convergence ``C3 convergence``. The deterministic iterates zigzag across the balance curve, so
we measure the tail envelope E(T) = max_{T/2 < t ≤ T} gap_t and require E(T_max) ≤ E(T_max/10)/2
and a fitted slope of E over the last decade whose 95 % interval lies below −1/4 (exact rule).
Stale variants have no rate theorem: the envelope of their gap must decrease
(E(T_max) ≤ E(T_max/10), slope interval below 0), and the envelope of ‖θ_K,t − θ_exact,t‖ must
shrink by a quarter over the decade with a slope interval below −0.1 — ``C3 staleness``: a
distance that merely drifts down (a stale rule converging somewhere else) fails; on our
instances the distance shrinks by 0.16–0.55 per decade, with slopes −0.23 to −0.93 (a
difference of order α_t would give 0.32 and −0.5). K = 1 must coincide exactly with the exact
rule — ``C3 stale = exact``; the gap ratio to the exact rule is what staleness costs.

Example::

    >>> from proofs_check.c3_maxright import check_c3
    >>> from toyopt.problems import get_problem
    >>> recs = check_c3(get_problem("toy2d"), "toy2d", t_max=2000, stale=(10,))
    >>> all(r.holds for r in recs)
    True
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

import numpy as np

from proofs_check.bounds import convex_bound_all
from proofs_check.c1_sequential import step_size
from proofs_check.record import Record, make_record
from proofs_check.runs import loglog_slope, run_snapshots
from toyopt.backends import NumpyBackend
from toyopt.pareto import Geometry
from toyopt.problems.base import Problem
from toyopt.rules import MaxRight, Rule, StaleMaxRight
from toyopt.schedules import Schedule

STALE = (1, 10, 100)
SLOPE_MAX = -0.25
STALE_SLOPE, STALE_FACTOR = -0.1, 0.75  # the stale-to-exact distance must shrink


def maxright_run(
    problem: Problem,
    lam: float,
    t_max: int,
    refresh_every: int | None = None,
    *,
    optima: Mapping[str, float] | None = None,
    schedule: Callable[[int], float] | None = None,
    lam_used: float | None = None,
) -> dict:
    """Chebyshev gaps (T+1,), iterates (T+1, d) and the λ = ½ bound of MAXRIGHT (exact when
    ``refresh_every`` is None). ``optima``, ``schedule`` and ``lam_used`` (the rule's λ, while
    the gap is measured at ``lam``) build broken variants."""
    geometry = Geometry(problem)
    optima = geometry.f_star if optima is None else optima
    rule_lam = lam if lam_used is None else lam_used
    rule: Rule = (
        MaxRight(rule_lam, optima) if refresh_every is None
        else StaleMaxRight(rule_lam, optima, refresh_every)
    )  # fmt: skip
    schedule = schedule or Schedule("invsqrt", step_size(problem))
    steps = np.arange(t_max + 1)  # every iterate: the envelope and the bound need them all
    theta, _ = run_snapshots(NumpyBackend(problem, [0]), rule, steps[1:], schedule)
    theta = np.concatenate([problem.start[None, :].astype(float), theta[:, 0]])
    gaps = geometry.metrics(theta, lam)["chebyshev_gap"]
    moves = np.sum(np.diff(theta, axis=0) ** 2, axis=1)  # m_s for s = 0 … T−1
    dist_sq = float(np.sum((problem.start - geometry.chebyshev(lam).point) ** 2))
    eta = 2 * np.array([schedule(t) for t in range(t_max + 1)])
    bound = convex_bound_all(dist_sq, eta, moves)
    return {"T": steps, "gaps": gaps, "theta": theta, "bound": bound}


def check_c3(
    problem: Problem,
    name: str,
    lams: Sequence[float] = (0.25, 0.5, 0.75),
    t_max: int = 10_000,
    stale: Sequence[int] = STALE,
    *,
    optima: Mapping[str, float] | None = None,
    stale_optima: Mapping[str, float] | None = None,
    schedule: Callable[[int], float] | None = None,
    lam_used: Callable[[float], float] | None = None,
) -> list[Record]:
    """Records per λ; stale rules at λ = ½. Broken variants: ``optima`` (every rule),
    ``stale_optima`` (stale rules only), ``schedule``, ``lam_used`` (λ ↦ the rule's λ)."""
    records = []
    for lam in lams:
        used = None if lam_used is None else lam_used(lam)
        exact = maxright_run(problem, lam, t_max, optima=optima, schedule=schedule, lam_used=used)
        if lam == 0.5:
            records.append(_bound(exact, f"{name} λ=0.5 exact"))
        records.append(_convergence(exact, f"{name} λ={lam:g} exact"))
        for k in stale if lam == 0.5 else ():
            run = maxright_run(
                problem, lam, t_max, k, optima=stale_optima or optima, schedule=schedule
            )
            records.append(_convergence(run, f"{name} λ={lam:g} stale K={k}", stale=k > 1))
            records.append(_staleness(run, exact, f"{name} λ={lam:g} stale K={k}", k))
    return records


def envelope(values: np.ndarray, steps: np.ndarray) -> np.ndarray:
    """E(T) = max over T/2 < t ≤ T of values[t] (values indexed by step, 0 … T_max)."""
    return np.array([values[int(t) // 2 + 1 : int(t) + 1].max() for t in steps])


def _decay(
    values: np.ndarray, t_max: int, slope_max: float = SLOPE_MAX, factor: float = 0.5
) -> tuple[bool, float, tuple[float, float], dict]:
    """Tail-envelope decay test (module docstring) on values at every step 0 … t_max."""
    grid = np.unique(np.round(np.logspace(np.log10(t_max / 10), np.log10(t_max), 20)).astype(int))
    env = envelope(values, grid)
    rate, ci = loglog_slope(grid, np.maximum(env, 1e-300))
    ok = bool(ci[1] < slope_max and env[-1] <= factor * env[0])
    return ok, rate, ci, {"T": grid.tolist(), "envelope": env.tolist()}


def _bound(run: dict, instance: str) -> Record:
    """Chebyshev gap ≤ the λ = ½ subgradient bound at every step (the last has no m_n)."""
    gaps, bound = run["gaps"][1:-1], run["bound"][1:]
    worst = int(np.argmax(gaps / bound))
    at = worst + 1
    return make_record(
        "C3 bound", instance, f"Chebyshev gap vs subgradient last-iterate bound, worst of "
        f"T<={run['T'][-2]:g}",
        gaps[worst], "<=", bound[worst],
        note=f"at T={at}; bound/gap at T={run['T'][-2]:g}: {bound[-1] / max(gaps[-1], 1e-300):.3g} "
        "(convexity alone; near the kink the zigzag does not pay the harmonic factor)",
    )  # fmt: skip


def _convergence(run: dict, instance: str, stale: bool = False) -> Record:
    steps, gaps = run["T"], run["gaps"]
    slope_max, factor = (0.0, 1.0) if stale else (SLOPE_MAX, 0.5)
    ok, rate, ci, details = _decay(gaps, int(steps[-1]), slope_max, factor)
    env = details["envelope"]
    return make_record(
        "C3 convergence", instance, f"Chebyshev gap tail envelope at T={steps[-1]:g} vs "
        f"{factor:g}x it at T/10; slope CI < {slope_max:g}",
        env[-1], "<=", factor * env[0], extra_ok=ok, rate=rate, rate_ci=ci, details=details,
    )  # fmt: skip


def _staleness(run: dict, exact: dict, instance: str, k: int) -> Record:
    """How far the stale iterate is from the exact one; it must shrink (K = 1: exactly zero)."""
    steps = run["T"]
    dist = np.linalg.norm(run["theta"] - exact["theta"], axis=1)
    ratio = run["gaps"][-1] / max(exact["gaps"][-1], 1e-300)
    note = f"gap ratio stale/exact at T={steps[-1]:g}: {ratio:.3g}; func evals 2/{k} per step"
    if k == 1:
        return make_record(
            "C3 stale = exact", instance, "‖θ_stale − θ_exact‖, max over T (K=1 is the exact "
            "rule)", dist.max(), "==", 0.0, note=note,
        )  # fmt: skip
    ok, rate, ci, details = _decay(dist, int(steps[-1]), STALE_SLOPE, STALE_FACTOR)
    env = details["envelope"]
    return make_record(
        "C3 staleness", instance, f"‖θ_stale − θ_exact‖ tail envelope at T={steps[-1]:g} vs "
        f"{STALE_FACTOR:g}x it at T/10; slope CI < {STALE_SLOPE:g}",
        env[-1], "<=", STALE_FACTOR * env[0], extra_ok=ok, rate=rate, rate_ci=ci, note=note,
        details=details,
    )  # fmt: skip
