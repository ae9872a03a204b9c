"""C2 — ALRIGHT converges: E f_mix,λ(θ_T) − f*_mix,λ → 0 (the paper's ALRIGHT theorem).

Claim. ALRIGHT steps on ∇f_dpo with probability λ and on ∇f_sft otherwise, so its step g_t is
an unbiased stochastic gradient of F = f_mix,λ; with decaying steps the expected gap vanishes,
at the rate O(log T/√T) the paper states (its constants were not available to us).

Run. The real rule, no projection: ``seeds`` runs of ``AlRight(λ)`` from θ₀ with
α_t = α₀/√(t+1), α₀ = 1/max(L_sft, L_dpo) (exact gradients, or minibatches of B rows).

Bound ``C2 bound`` (derivation in :mod:`proofs_check.bounds`). F is convex, so with
a_t = E‖θ_{t+1} − θ_t‖² = α_t² E‖g_t‖² measured along the run (per seed), for every budget n

    E F(θ_n) − F* ≤ (1/(2α_n)) [‖θ₀ − θ*_λ‖²/(n+1) + Σ_{s=0}^{n} a_s / max(1, n − s)]   (convex)

(Orabona 2020's last-iterate lemma with the one-step inequality, sums evaluated exactly; D is
the actual distance to θ*_λ, not a ball's diameter). Where F is μ-strongly convex on the span of
the iterates (quadratics: μ = the smallest eigenvalue of H_λ there), also
E F(θ_n) − F* ≤ (L/2) e_n with e_{s+1} = max(1 − 2α_sμ, 0) e_s + a_s, e_0 = ‖θ₀ − θ*_λ‖².
Both bounds are linear in the a_s, so each seed gets its own bound b_i, and E[gap − b] ≤ 0
is tested with the paired differences: the record fails when their mean exceeds 3 standard
errors at some budget (one sided, z = 3 for the 40 budgets together). Shown: the mean gap vs the
mean bound + 3 SE of the difference. Which bound applies is chosen per budget by its mean.

Why the ratio is not 1: the convex bound is the worst case over convex F and carries a factor
≈ 2(1 + ln n) over a locally quadratic F's gap (the weights 1/(n − s) sum to the harmonic
number); the strongly convex one converts distance into gap with L/μ to spare. The instance
``equal curvatures (1-D)`` (:func:`proofs_check.worst_cases.equal_curvature_quadratic`) meets
the strongly convex bound with equality in expectation.

Rate ``C2 rate``. The fitted log-log slope of the mean gap over the last decade of budgets
(bootstrap 95 % interval over seeds) must lie below the slope of log T/√T over that decade
(≈ −0.40 for T = 10⁴): a gap that stalls (a biased coin) or decays too slowly (steps that
decay too slowly) fails it. The bound itself holds for any non-increasing steps.

Example::

    >>> from proofs_check.c2_alright import check_c2
    >>> from toyopt.problems import get_problem
    >>> [r.holds for r in check_c2(get_problem("toy2d"), "toy2d", t_max=1000, seeds=32)]
    [True, True]
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from proofs_check.bounds import convex_weights, strong_weights
from proofs_check.c1_sequential import step_size
from proofs_check.c4_mix import mix_constants
from proofs_check.record import Record, make_record
from proofs_check.runs import MoveSums, loglog_slope, run_snapshots
from toyopt.backends import NumpyBackend
from toyopt.pareto import Geometry
from toyopt.problems.base import Problem
from toyopt.rules import AlRight, Rule
from toyopt.schedules import Schedule
from toyopt.simulate import log_spaced

Z = 3.0  # one-sided standard errors of the paired test
WHY = {
    "convex": "convexity alone: the 1/(n−s) weights cost ≈2(1+ln T) over a locally quadratic gap",
    "strongly convex": "a distance bound times L/2: up to L/μ above the gap",
}


def theory_slope(t_max: int) -> float:
    """Log-log slope of log T/√T between T/10 and T: the rate the claim allows."""
    lo, hi = t_max / 10, t_max
    return -0.5 + (np.log(np.log(hi)) - np.log(np.log(lo))) / np.log(10)


def alright_gaps(
    problem: Problem,
    lam: float,
    t_max: int,
    seeds: int,
    *,
    batch: int | None = None,
    rule: Rule | None = None,
    schedule: Callable[[int], float] | None = None,
) -> dict:
    """Run ALRIGHT for ``seeds`` seeds; f_mix gaps (R, S) at log-spaced budgets and each seed's
    bound (R, S). ``rule``/``schedule`` replace the real ones (broken variants)."""
    geometry = Geometry(problem)
    star = geometry.mix(lam)
    schedule = schedule or Schedule("invsqrt", step_size(problem))
    budgets = log_spaced(t_max, 40)[1:]
    alphas = np.array([schedule(t) for t in range(t_max + 1)])
    big_l, mu = mix_constants(problem, lam)
    convex0, convex = convex_weights(budgets, alphas)
    strong0, strong = strong_weights(budgets, alphas, mu) if mu else (None, None)
    dist_sq = float(np.sum((problem.start - star.point) ** 2))
    moves = MoveSums(np.concatenate([convex] + ([strong] if mu else [])), seeds)
    backend = NumpyBackend(problem, np.arange(seeds), batch=batch)
    theta, _ = run_snapshots(
        backend, rule or AlRight(lam), [*budgets, t_max + 1], schedule, moves=moves
    )
    gaps = np.stack([geometry.metrics(th, lam)["mix_gap"] for th in theta[:-1]])
    r = len(budgets)
    bound = convex0[:, None] * dist_sq + moves.sums[:r]
    kind = np.full(r, "convex")
    if mu:
        strong_gap = big_l / 2 * (strong0[:, None] * dist_sq + moves.sums[r:])
        use = strong_gap.mean(axis=1) < bound.mean(axis=1)
        bound = np.where(use[:, None], strong_gap, bound)
        kind = np.where(use, "strongly convex", kind)
    return {"T": budgets, "gaps": gaps, "bounds": bound, "bound": bound.mean(axis=1),
            "kind": kind, "D": np.sqrt(dist_sq), "alpha0": alphas[0], "mu": mu}  # fmt: skip


def check_c2(
    problem: Problem,
    name: str,
    lam: float = 0.5,
    t_max: int = 10_000,
    seeds: int = 100,
    *,
    batch: int | None = None,
    rule: Rule | None = None,
    schedule: Callable[[int], float] | None = None,
    note: str = "",
    z: float = Z,
) -> list[Record]:
    """``C2 bound`` (paired: gap ≤ bound at every budget, ``z`` standard errors allowed) and
    ``C2 rate`` (fitted decay)."""
    run = alright_gaps(problem, lam, t_max, seeds, batch=batch, rule=rule, schedule=schedule)
    steps, gaps, bounds = run["T"], run["gaps"], run["bounds"]
    diff = gaps - bounds
    mean_gap, mean_bound = gaps.mean(axis=1), bounds.mean(axis=1)
    allowed = mean_bound + z * diff.std(axis=1, ddof=1) / np.sqrt(seeds)  # mean gap may reach
    excess = mean_gap - allowed
    ratio = mean_bound / np.maximum(mean_gap, 1e-300)
    worst = int(np.argmax(excess)) if np.any(excess > 0) else int(np.argmin(ratio))
    setting = f"B={batch}" if batch else "exact grads"
    instance = f"{name} λ={lam:g} {setting}"
    bound_rec = make_record(
        "C2 bound", instance,
        f"E f_mix gap ({seeds} seeds) vs last-iterate bound (+{z:g} SE of gap − bound), worst "
        f"of {len(steps)} T<={t_max:g}",
        mean_gap[worst], "<=", allowed[worst], extra_ok=bool(np.all(excess <= 0)),
        note=f"{run['kind'][worst]} bound at T={steps[worst]} (bound/gap {ratio[worst]:.3g}); "
        f"D={run['D']:.3g}, alpha0={run['alpha0']:.3g}; bound/gap at T={t_max:g}: "
        f"{ratio[-1]:.3g} ({WHY[run['kind'][-1]]})" + (f"; {note}" if note else ""),
        details={"T": steps.tolist(), "mean": mean_gap.tolist(), "bound": mean_bound.tolist(),
                 "allowed": allowed.tolist()},
    )  # fmt: skip
    late = steps >= t_max / 10
    rate, ci = loglog_slope(steps[late], gaps[late])
    allowed = theory_slope(t_max)
    rate_rec = make_record(
        "C2 rate", instance, f"log-log slope of E f_mix gap over T={t_max / 10:g}..{t_max:g} "
        f"(95% CI upper end) vs log T/√T's",
        ci[1], "<=", allowed, rate=rate, rate_ci=ci,
    )  # fmt: skip
    return [bound_rec, rate_rec]
