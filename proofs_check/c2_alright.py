"""C2 — ALRIGHT converges: E f_mix,λ(θ_T) − f*_mix,λ → 0 (the paper's ALRIGHT theorem).

Claim. ALRIGHT steps on ∇f_dpo with probability λ and on ∇f_sft otherwise, so its step is an
unbiased stochastic gradient of f_mix,λ; with decaying steps the expected gap vanishes. The
paper states an O(log T / √T) rate; its constants were not available to us, so we check the
standard explicit last-iterate bound that yields that rate.

Bound (Shamir & Zhang, ICML 2013, Theorem 2). Projected stochastic subgradient steps
θ_{t+1} = Π_W(θ_t − α_t ĝ_t), α_t = α₀/√t, on a convex f over a convex set W of diameter D with
E‖ĝ_t‖² ≤ G², give for every T

    E f(θ_T) − min_W f ≤ (D²/α₀ + α₀ G²) (2 + log T) / √T.

Constants. W = ball(θ₀, R), R = ‖θ₀ − θ*_λ‖ + 1, so θ*_λ ∈ W, min_W f_mix = f*_mix and D = 2R
(the projection is :class:`proofs_check.runs.BallBackend`; the rule is the real ``AlRight``).
ĝ is ∇f_sft or ∇f_dpo (or a minibatch mean of per-example gradients of either), so
G = max(G_sft, G_dpo) with G_k = ``Problem.grad_bound`` (log-linear: prompt diameter, β max‖Δφ‖);
for quadratics on W, G_k = ‖H_k‖ (‖θ₀ − c_k‖ + R). α₀ = D/G minimises the constant (2DG).
α_t = α₀/√(t+1) for the 0-based step t is the ``invsqrt`` schedule.

Decay. We fit the log-log slope of the mean gap over the last decade of budgets (95 % bootstrap
interval over seeds) and require its upper end below −1/4: the theory's envelope has local slope
−1/2 + 1/(2 + log T) ≈ −0.4 here, so a gap that stalls (wrong λ, non-decaying step) fails.

Example::

    >>> from proofs_check.c2_alright import check_c2
    >>> from toyopt.problems import get_problem
    >>> rec = check_c2(get_problem("toy2d"), "toy2d", t_max=1000, seeds=32)
    >>> rec.holds
    True
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from proofs_check.record import Record, make_record
from proofs_check.runs import BallBackend, loglog_slope, mean_ci, run_snapshots
from toyopt.pareto import Geometry
from toyopt.problems.base import Problem
from toyopt.rules import AlRight, Rule
from toyopt.schedules import Schedule
from toyopt.simulate import log_spaced

SLOPE_MAX = -0.25


def ball_constants(problem: Problem, center: np.ndarray, radius: float) -> float:
    """G = max_k sup_{θ ∈ ball} ‖∇f_k(θ)‖ (per-example gradients obey the same bound)."""
    out = []
    for k in ("sft", "dpo"):
        g = problem.grad_bound(k)
        if not np.isfinite(g) and hasattr(problem, "hessians"):
            h = problem.hessians[k]
            g = np.linalg.norm(h, 2) * (np.linalg.norm(center - problem.centers[k]) + radius)
        out.append(float(g))
    return max(out)


def last_iterate_bound(d: float, g: float, alpha0: float, steps: np.ndarray) -> np.ndarray:
    steps = np.asarray(steps, dtype=float)
    return (d**2 / alpha0 + alpha0 * g**2) * (2 + np.log(steps)) / np.sqrt(steps)


def alright_gaps(
    problem: Problem,
    lam: float,
    t_max: int,
    seeds: int,
    *,
    batch: int | None = None,
    target: np.ndarray | None = None,
    rule: Rule | None = None,
    schedule: Callable[[int], float] | None = None,
) -> dict:
    """Run (projected) ALRIGHT for ``seeds`` seeds; f_mix gaps (R, S) at log-spaced budgets,
    and the constants of the bound. ``rule``/``schedule`` replace the real ones (broken variants)."""
    geometry = Geometry(problem)
    target = geometry.mix(lam).point if target is None else target
    center = problem.start
    radius = float(np.linalg.norm(center - target)) + 1.0
    d, g = 2 * radius, ball_constants(problem, center, radius)
    alpha0 = d / g
    steps = log_spaced(t_max, 40)[1:]
    backend = BallBackend(problem, np.arange(seeds), center, radius, batch=batch)
    theta, _ = run_snapshots(
        backend, rule or AlRight(lam), steps, schedule or Schedule("invsqrt", alpha0)
    )
    gaps = np.stack([geometry.metrics(th, lam)["mix_gap"] for th in theta])
    return {"T": steps, "gaps": gaps, "D": d, "G": g, "alpha0": alpha0,
            "bound": last_iterate_bound(d, g, alpha0, steps)}  # fmt: skip


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
) -> Record:
    """E f_mix gap (upper 95 % confidence limit) below the bound at every budget, and decay."""
    run = alright_gaps(problem, lam, t_max, seeds, batch=batch, rule=rule, schedule=schedule)
    steps, gaps, bound = run["T"], run["gaps"], run["bound"]
    mean, lo, hi = mean_ci(gaps, axis=1)
    worst = int(np.argmax(hi / bound))
    late = steps >= t_max / 10
    rate, ci = loglog_slope(steps[late], gaps[late])
    setting = f"B={batch}" if batch else "exact grads"
    return make_record(
        "C2", f"{name} λ={lam:g} {setting}",
        f"E f_mix gap (95% upper, {seeds} seeds), worst of {len(steps)} T<={t_max:g}; "
        f"slope CI < {SLOPE_MAX}",
        hi[worst], "<=", bound[worst], extra_ok=bool(ci[1] < SLOPE_MAX), rate=rate, rate_ci=ci,
        note=f"D={run['D']:.3g}, G={run['G']:.3g}, alpha0={run['alpha0']:.3g}",
        details={"T": steps.tolist(), "mean": mean.tolist(), "ci_low": lo.tolist(),
                 "ci_high": hi.tolist(), "bound": bound.tolist()},
    )  # fmt: skip
