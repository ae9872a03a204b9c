"""K3 — the rules for three named objectives on a quadratic with a known Pareto set.

Instance :func:`k3_quadratic`: f_k(θ) = ½ (θ − c_k)ᵀ H_k (θ − c_k) for k ∈ {sft, dpo, extra},
θ ∈ R³, every H_k positive definite, θ₀ = 0, weights λ = :data:`WEIGHTS` = (0.3, 0.5, 0.2).
f*_k = 0 at c_k. The weighted optimum θ*_λ = H_λ⁻¹ Σ λ_k H_k c_k (H_λ = Σ λ_k H_k) and the
Chebyshev optimum θ_cheb = argmin max_k λ_k f_k (SLSQP, all three constraints active) are
those of :class:`toyopt.problems.QuadraticProblem`. The two-objective statements carry over
with f_mix,λ replaced by F_λ = Σ_k λ_k f_k and the Chebyshev scalarisation by
max_k λ_k (f_k − f*_k); the constants are those of F_λ:

- ``K3 ALRIGHT bound`` / ``K3 ALRIGHT rate`` (C2 for K = 3): the categorical draw makes the step
  an unbiased stochastic gradient of F_λ, so C2's last-iterate bounds hold with L and μ the
  extreme eigenvalues of H_λ (L = 2.01, μ = 1.05 here), α_t = α₀/√(t+1), α₀ = 1/max_k L_k,
  D = ‖θ₀ − θ*_λ‖ and the run's own squared moves; the same paired test (3 standard errors)
  and the same rate test (95 % bootstrap upper end of the fitted slope over the last decade
  below that of log T/√T: −0.343 for T = 2000, −0.375 for T = 10⁴).
- ``K3 Mix bound`` (C4 for K = 3): gradient descent with step 1/L on F_λ;
  gap ≤ min(L‖θ₀ − θ*_λ‖²/(4T + 2), (1 − μ/L)^{2T} gap₀) at every budget.
- ``K3 MAXRIGHT bound`` (C3's bound for K = 3, at equal weights 1/3, where the chosen gradient
  ∇f_k = 3·(⅓∇f_k) is three times a subgradient of F = max_k ⅓ f_k: the subgradient method with
  η_t = 3α_t, and the convex last-iterate bound with the actual moves). For unequal weights
  the effective step α_t/λ_k changes with the choice and the lemma does not apply.
- ``K3 MAXRIGHT convergence`` (C3's envelope test): the Chebyshev gap's tail envelope at T is at
  most ½ of it at T/10 with a fitted slope whose 95 % interval lies below −¼ (exact rule, both
  weightings); the stale rule with refresh every 10 steps: the envelope must not grow and
  its slope interval lies below 0.
- ``K3 stale = exact``: stale MAXRIGHT refreshing every step makes the exact rule's iterates.
- ``K3 gradients`` / ``K3 values`` (C5 for K = 3): per step and row, exactly, sequential 1 / 0,
  ALRIGHT 1 / 0, MAXRIGHT 1 / 3 (= K), stale MAXRIGHT refreshing every R steps 1 / (3/R),
  Mix 3 / 0, counted by the loop and by a counting wrapper around the problem (C5's).
- ``K3 sequential plateau`` (C1 for K = 3): stages of T steps in the order sft, dpo, extra with
  step 1/max_k L_k. Every H_k is definite, so the last stage ends at c_extra and the F_λ gap
  tends to the closed-form plateau F_λ(c_extra) − F*_λ > 0 however large T: the measured gap at
  T = 10³ per stage must be within 10⁻⁶ of it, and at every T ∈ {10, 10², 10³} at least half of it.

Broken variants (:func:`proofs_check.broken.variants`): ALRIGHT drawing with permuted weights,
Mix with permuted weights, MAXRIGHT that ignores one objective (the argmax over the other two),
stale MAXRIGHT with a wrong optimum, rules that ask for values every step or put a weight of
1e-12 on the objectives they skip, a sequential run whose last stage steps on Mix's gradient.

Example::

    >>> from proofs_check.k_objectives import check_k3
    >>> all(r.holds for r in check_k3(t_max=2000, seeds=64))
    True
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from fractions import Fraction

import numpy as np

from proofs_check.bounds import convex_bound_all, convex_weights, strong_weights
from proofs_check.c2_alright import Z, theory_slope
from proofs_check.c3_maxright import _decay
from proofs_check.c4_mix import FLOOR, MEANINGFUL, drori_teboulle, strongly_convex
from proofs_check.c5_cost import STEPS, measure
from proofs_check.record import Record, make_record
from proofs_check.runs import MoveSums, loglog_slope, run_snapshots
from toyopt.backends import NumpyBackend
from toyopt.problems import QuadraticProblem, problem_from_dict
from toyopt.rules import KAlRight, KMaxRight, KMix, KSequential, KStaleMaxRight, Rule
from toyopt.schedules import Schedule
from toyopt.simulate import log_spaced

WEIGHTS = {"sft": 0.3, "dpo": 0.5, "extra": 0.2}
EQUAL = dict.fromkeys(WEIGHTS, 1 / 3)
K3_JSON = {
    "kind": "quadratic",
    "start": [0.0, 0.0, 0.0],
    "objectives": {
        "sft": {"hessian": [[2.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 0.5]],
                "center": [1.0, 0.0, 0.0]},
        "dpo": {"hessian": [[1.0, 0.0, 0.0], [0.0, 3.0, 0.0], [0.0, 0.0, 1.0]],
                "center": [0.0, 1.0, 0.5]},
        "extra": {"hessian": [[1.0, 0.5, 0.0], [0.5, 1.0, 0.0], [0.0, 0.0, 2.0]],
                  "center": [-1.0, -1.0, 1.0]},
    },
}  # fmt: skip
STALE_K = 10
PLATEAU_TOL = 1e-6


def k3_quadratic() -> QuadraticProblem:
    """The three-objective instance of the module docstring."""
    return problem_from_dict(K3_JSON, "k3 quadratic")


def _constants(problem: QuadraticProblem, weights: Mapping[str, float]) -> tuple[float, float]:
    """(L, μ) of F_λ: extreme eigenvalues of H_λ = Σ λ_k H_k."""
    eig = np.linalg.eigvalsh(sum(w * problem.hessians[k] for k, w in weights.items()))
    return float(eig[-1]), float(eig[0])


def _alpha0(problem: QuadraticProblem) -> float:
    return 1.0 / max(problem.smoothness(k) for k in problem.objectives)


def _weighted(problem, theta: np.ndarray, weights) -> np.ndarray:
    return sum(w * problem.value(k, theta) for k, w in weights.items())


def _chebyshev(problem, theta: np.ndarray, weights) -> np.ndarray:
    return np.max([w * problem.value(k, theta) for k, w in weights.items()], axis=0)


def check_alright_k(
    problem: QuadraticProblem, t_max: int, seeds: int, rule: Rule | None = None
) -> list[Record]:
    """ALRIGHT's mean F_λ gap vs C2's bounds at log-spaced budgets, and its fitted rate."""
    point, f_star = problem.weighted_optimum(WEIGHTS)
    schedule = Schedule("invsqrt", _alpha0(problem))
    budgets = log_spaced(t_max, 40)[1:]
    alphas = np.array([schedule(t) for t in range(t_max + 1)])
    big_l, mu = _constants(problem, WEIGHTS)
    convex0, convex = convex_weights(budgets, alphas)
    strong0, strong = strong_weights(budgets, alphas, mu)
    dist_sq = float(np.sum((problem.start - point) ** 2))
    moves = MoveSums(np.concatenate([convex, strong]), seeds)
    backend = NumpyBackend(problem, np.arange(seeds))
    theta, _ = run_snapshots(
        backend, rule or KAlRight(WEIGHTS), [*budgets, t_max + 1], schedule, moves=moves
    )
    gaps = np.stack([_weighted(problem, th, WEIGHTS) - f_star for th in theta[:-1]])
    r = len(budgets)
    bounds = np.minimum(
        convex0[:, None] * dist_sq + moves.sums[:r],
        big_l / 2 * (strong0[:, None] * dist_sq + moves.sums[r:]),
    )
    diff = gaps - bounds
    mean_gap, mean_bound = gaps.mean(axis=1), bounds.mean(axis=1)
    allowed = mean_bound + Z * diff.std(axis=1, ddof=1) / np.sqrt(seeds)
    excess = mean_gap - allowed
    worst = int(np.argmax(excess))
    instance = f"3-objective quadratic λ={_fmt(WEIGHTS)}"
    bound_rec = make_record(
        "K3 ALRIGHT bound", instance,
        f"E F_λ gap ({seeds} seeds) vs C2's last-iterate bound (+{Z:g} SE), worst of T<={t_max:g}",
        mean_gap[worst], "<=", allowed[worst], extra_ok=bool(np.all(excess <= 0)),
        note=f"L={big_l:.3g}, mu={mu:.3g}, D={np.sqrt(dist_sq):.3g}, alpha0={alphas[0]:.3g}; "
        f"at T={budgets[worst]}",
    )  # fmt: skip
    late = budgets >= t_max / 10
    rate, ci = loglog_slope(budgets[late], gaps[late])
    rate_rec = make_record(
        "K3 ALRIGHT rate", instance,
        f"log-log slope of E F_λ gap over T={t_max / 10:g}..{t_max:g} (95% CI upper end) vs "
        "log T/√T's", ci[1], "<=", theory_slope(t_max), rate=rate, rate_ci=ci,
        note=f"mean gap at T={t_max}: {mean_gap[-1]:.3g}",
    )  # fmt: skip
    return [bound_rec, rate_rec]


def check_mix_k(problem: QuadraticProblem, t_max: int, rule: Rule | None = None) -> list[Record]:
    """Mix's F_λ gap vs the tight gradient-descent rates at every log-spaced budget."""
    point, f_star = problem.weighted_optimum(WEIGHTS)
    big_l, mu = _constants(problem, WEIGHTS)
    steps = log_spaced(t_max, 40)[1:]
    theta, _ = run_snapshots(
        NumpyBackend(problem, [0]), rule or KMix(WEIGHTS), steps, Schedule("constant", 1 / big_l)
    )
    gaps = _weighted(problem, theta[:, 0], WEIGHTS) - f_star
    gap0 = float(_weighted(problem, problem.start[None], WEIGHTS)[0] - f_star)
    dist_sq = float(np.sum((problem.start - point) ** 2))
    bound = np.minimum(drori_teboulle(big_l, dist_sq, steps),
                       strongly_convex(big_l, mu, gap0, steps))  # fmt: skip
    over = gaps - (bound + FLOOR)
    ratio = np.where(bound > MEANINGFUL, bound / np.maximum(gaps, 1e-300), np.inf)
    worst = int(np.argmax(over)) if np.any(over > 0) else int(np.argmin(ratio))
    return [make_record(
        "K3 Mix bound", f"3-objective quadratic λ={_fmt(WEIGHTS)}",
        f"F_λ gap vs min(L‖θ0−θ*‖²/(4T+2), (1−μ/L)^(2T) gap0), worst of T<={t_max:g}",
        gaps[worst], "<=", bound[worst] + FLOOR, extra_ok=bool(np.all(over <= 0)),
        note=f"L={big_l:.4g}, mu={mu:.4g}; at T={steps[worst]}",
    )]  # fmt: skip


def maxright_k_run(problem, weights, t_max: int, rule: Rule) -> dict:
    """Chebyshev gaps and iterates at every step 0 … t_max of one deterministic run."""
    cheb, f_cheb = problem.chebyshev_optimum(weights)
    schedule = Schedule("invsqrt", _alpha0(problem))
    theta, _ = run_snapshots(NumpyBackend(problem, [0]), rule, np.arange(1, t_max + 1), schedule)
    theta = np.concatenate([problem.start[None, :].astype(float), theta[:, 0]])
    gaps = _chebyshev(problem, theta, weights) - f_cheb
    moves = np.sum(np.diff(theta, axis=0) ** 2, axis=1)
    eta = len(weights) * np.array([schedule(t) for t in range(t_max + 1)])
    bound = convex_bound_all(float(np.sum((problem.start - cheb) ** 2)), eta, moves)
    return {"gaps": np.maximum(gaps, 0.0), "theta": theta, "bound": bound}


def check_maxright_k(
    problem: QuadraticProblem,
    t_max: int,
    optima: Mapping[str, float] | None = None,
    ignore: str | None = None,
    stale_optima: Mapping[str, float] | None = None,
) -> list[Record]:
    """MAXRIGHT's Chebyshev gap: the equal-weights bound, the envelope decay at both
    weightings, the stale rule's decay and K = 1 equality. ``optima``/``ignore`` (an objective
    the rule leaves out of its argmax)/``stale_optima`` build broken variants."""
    optima = dict.fromkeys(WEIGHTS, 0.0) if optima is None else optima

    def rule_weights(weights):
        if ignore is None:
            return weights
        kept = {k: w for k, w in weights.items() if k != ignore}
        return {k: w / sum(kept.values()) for k, w in kept.items()}

    records = []
    for label, weights in (("equal weights", EQUAL), (f"λ={_fmt(WEIGHTS)}", WEIGHTS)):
        instance = f"3-objective quadratic {label} exact"
        run = maxright_k_run(problem, weights, t_max, KMaxRight(rule_weights(weights), optima))
        if weights is EQUAL:
            gaps, bound = run["gaps"][1:-1], run["bound"][1:]
            worst = int(np.argmax(gaps / bound))
            records.append(make_record(
                "K3 MAXRIGHT bound", instance,
                f"Chebyshev gap vs subgradient last-iterate bound (η=3α), worst of T<={t_max - 1}",
                gaps[worst], "<=", bound[worst], note=f"at T={worst + 1}",
            ))  # fmt: skip
        records.append(_convergence(run["gaps"], t_max, instance))
        if weights is WEIGHTS:
            for k in (1, STALE_K):
                stale = maxright_k_run(problem, weights, t_max, KStaleMaxRight(
                    rule_weights(weights), stale_optima or optima, k))  # fmt: skip
                where = f"3-objective quadratic {label} stale K={k}"
                if k == 1:
                    dist = np.linalg.norm(stale["theta"] - run["theta"], axis=1).max()
                    records.append(make_record(
                        "K3 stale = exact", where, "‖θ_stale − θ_exact‖, max over T", dist, "==",
                        0.0))  # fmt: skip
                else:
                    records.append(_convergence(stale["gaps"], t_max, where, stale=True))
    return records


def _convergence(gaps: np.ndarray, t_max: int, instance: str, stale: bool = False) -> Record:
    slope_max, factor = (0.0, 1.0) if stale else (-0.25, 0.5)
    ok, rate, ci, details = _decay(gaps, t_max, slope_max, factor)
    env = details["envelope"]
    return make_record(
        "K3 MAXRIGHT convergence", instance, f"Chebyshev gap tail envelope at T={t_max:g} vs "
        f"{factor:g}x it at T/10; slope CI < {slope_max:g}",
        env[-1], "<=", factor * env[0], extra_ok=ok, rate=rate, rate_ci=ci, details=details,
    )  # fmt: skip


def cost_rules() -> list[tuple[Rule, Fraction, Fraction]]:
    """(rule, gradients per step, function values per step) for K = 3 named objectives."""
    optima = dict.fromkeys(WEIGHTS, 0.0)
    third = STEPS // 3
    rules: list[tuple[Rule, Fraction, Fraction]] = [
        (KSequential(tuple(WEIGHTS), (third, third, STEPS - 2 * third)), Fraction(1), Fraction(0)),
        (KAlRight(WEIGHTS), Fraction(1), Fraction(0)),
        (KMaxRight(WEIGHTS, optima), Fraction(1), Fraction(3)),
        (KMix(WEIGHTS), Fraction(3), Fraction(0)),
    ]
    rules += [
        (KStaleMaxRight(WEIGHTS, optima, k), Fraction(1), Fraction(3, k)) for k in (1, 10, 100)
    ]
    return rules


def check_cost_k(
    problem: QuadraticProblem, wrap: Callable[[Rule], Rule] | None = None
) -> list[Record]:
    """C5's exact counts for K = 3 (``wrap`` alters each rule: broken variants)."""
    records = []
    for rule, grads, funcs in cost_rules():
        label = rule.name + (f" R={rule.refresh_every}" if hasattr(rule, "refresh_every") else "")
        lg, lf, pg, pf = measure(problem, wrap(rule) if wrap else rule)
        for kind, what, loop, prob, want in (
            ("K3 gradients", "gradients", lg, pg, grads),
            ("K3 values", "function values", lf, pf, funcs),
        ):
            records.append(make_record(
                kind, f"3-objective quadratic {label}", f"{what} per step per row (loop counters)",
                float(loop), "==", float(want), extra_ok=bool(loop == want and prob == want),
                note=f"problem-side count {prob}; expected {want}",
            ))  # fmt: skip
    return records


def check_sequential_k(
    problem: QuadraticProblem,
    stages: Sequence[int] = (10, 100, 1000),
    rule_for: Callable[[int], Rule] | None = None,
) -> list[Record]:
    """C1's plateau for K = 3: the F_λ gap of sequential (stages of T steps each) tends to
    F_λ(c_last) − F*_λ. ``rule_for(T)`` replaces the rule (broken variants)."""
    order = tuple(WEIGHTS)
    _, f_star = problem.weighted_optimum(WEIGHTS)
    last = problem.centers[order[-1]]
    plateau = float(_weighted(problem, last[None], WEIGHTS)[0] - f_star)
    schedule = Schedule("constant", _alpha0(problem))
    gaps = []
    for t in stages:
        rule = KSequential(order, (t, t, t)) if rule_for is None else rule_for(t)
        theta, _ = run_snapshots(NumpyBackend(problem, [0]), rule, [3 * t], schedule)
        gaps.append(float(_weighted(problem, theta[-1], WEIGHTS)[0] - f_star))
    instance = f"3-objective quadratic λ={_fmt(WEIGHTS)} order {'→'.join(order)}"
    return [make_record(
        "K3 sequential plateau", instance,
        f"F_λ gap after stages of T={stages[-1]} steps vs F_λ(c_{order[-1]}) − F*_λ",
        gaps[-1], "~", plateau, PLATEAU_TOL, extra_ok=bool(min(gaps) >= plateau / 2),
        note="gaps at T=" + ", ".join(f"{t}: {g:.4g}" for t, g in zip(stages, gaps)),
    )]  # fmt: skip


def _fmt(weights: Mapping[str, float]) -> str:
    return "(" + ", ".join(f"{k}={w:.3g}" for k, w in weights.items()) + ")"


def check_k3(t_max: int = 2000, seeds: int = 64) -> list[Record]:
    """Every K3 record on :func:`k3_quadratic`."""
    problem = k3_quadratic()
    return [
        *check_alright_k(problem, t_max, seeds),
        *check_mix_k(problem, min(t_max, 1000)),
        *check_maxright_k(problem, t_max),
        *check_cost_k(problem),
        *check_sequential_k(problem),
    ]
