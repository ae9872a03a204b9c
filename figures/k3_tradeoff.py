"""The trade-off between three objectives in objective space, drawn as the three pairwise
projections (f_a, f_b): the final points of ALRIGHT, Mix, MAXRIGHT and sequential at several
weight vectors λ on the simplex, each rule's target (the weighted optimum argmin Σ_k λ_k f_k for
ALRIGHT and Mix, the Chebyshev optimum argmin max_k λ_k (f_k − f*_k) for MAXRIGHT) and the exact
Pareto set: weighted optima over a grid on the simplex (grey), whose edges with one weight 0 are
the two-objective fronts (lines).

:func:`plot` takes plain data (:class:`TradeoffData`: names, final points, targets, Pareto
sample; the last two may be empty), so that final held-out losses of runs trained on three data
sources can be drawn the same way. :func:`toy_data` computes it on the three-objective quadratic
of ``proofs_check/k_objectives.py`` (the example of docs/toy-problems.md): θ₀ = 0, exact
gradients, step size 0.3 decayed linearly to 0, the same budget for every rule; sequential
trains on sft, dpo, extra in turn for equal thirds. ALRIGHT, the one random rule, runs 32 seeds:
single runs scatter (faint dots), their mean (marker) lies at the weighted optimum.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from itertools import combinations
from pathlib import Path

import numpy as np
from matplotlib.lines import Line2D

from figures import style
from figures.llm_study import plain_log_ticks
from toyopt.problems import QuadraticProblem
from toyopt.rules import make_weighted_rule
from toyopt.schedules import Schedule
from toyopt.simulate import simulate

WEIGHTS = ((1 / 3, 1 / 3, 1 / 3), (0.3, 0.5, 0.2), (0.6, 0.2, 0.2), (0.1, 0.2, 0.7))
RULES = ("sequential", "alright", "mix", "maxright")
MARKERS = ("o", "s", "^", "D", "v", "P")  # one per weight vector, in order of appearance
SIZES = {"mix": 7.5, "sequential": 6.5, "maxright": 6.0, "alright": 4.5}  # ALRIGHT inside Mix
TARGETS = {"weighted": ("black", "weighted optimum (ALRIGHT, Mix target)"),
           "chebyshev": (style.color("maxright"), "Chebyshev optimum (MAXRIGHT target)")}  # fmt: skip


@dataclass(frozen=True)
class Final:
    """One run's final objective values, in the order of :attr:`TradeoffData.names`."""

    rule: str
    weights: tuple[float, ...]
    point: tuple[float, ...]
    seed: int = 0


@dataclass(frozen=True)
class Target:
    """A rule's target at weights λ: ``kind`` is "weighted" or "chebyshev"."""

    kind: str
    weights: tuple[float, ...]
    point: tuple[float, ...]


@dataclass
class TradeoffData:
    names: tuple[str, ...]
    finals: list[Final]
    targets: list[Target]
    pareto: np.ndarray  # (n, K) objective values of the Pareto sample; n = 0 when unknown
    pareto_weights: np.ndarray  # (n, K) the weights each was computed at
    setting: str = ""
    axis: str = r"$f_{{\rm {}}}$"  # axis label, formatted with the objective's name
    corners: list[tuple[float, ...]] = field(default_factory=list)  # each objective trained alone
    log: bool = False  # log axes (losses spanning decades)


@dataclass(frozen=True)
class Setup:
    steps: int = 3000
    lr: float = 0.3
    seeds: int = 32  # ALRIGHT's; the other rules are deterministic
    grid: int = 30  # divisions of each weight for the Pareto sample

    @classmethod
    def make(cls, quick: bool = False) -> Setup:
        return cls(steps=600) if quick else cls()


def simplex_grid(n: int, k: int = 3) -> np.ndarray:
    """Every weight vector with entries in {0, 1/n, …, 1} summing to 1."""
    rows = [c for c in np.ndindex(*(n + 1,) * (k - 1)) if sum(c) <= n]
    return np.array([(*c, n - sum(c)) for c in rows], dtype=float) / n


def toy_data(problem: QuadraticProblem, setup: Setup) -> TradeoffData:
    names = tuple(problem.objectives)

    def values(theta: np.ndarray) -> np.ndarray:
        return np.stack([problem.value(k, theta) for k in names], axis=-1)

    grid = simplex_grid(setup.grid, len(names))
    pareto = values(np.stack([problem.weighted_optimum(dict(zip(names, w)))[0] for w in grid]))
    schedule = Schedule("linear", setup.lr, steps=setup.steps)
    finals, targets = [], []
    for w in WEIGHTS:
        weights = dict(zip(names, w))
        for kind, optimum in (("weighted", problem.weighted_optimum),
                              ("chebyshev", problem.chebyshev_optimum)):  # fmt: skip
            targets.append(Target(kind, w, tuple(values(optimum(weights)[0])[0])))
        for rule in RULES:
            made = make_weighted_rule(rule, weights, setup.steps, optima=dict.fromkeys(names, 0.0))
            seeds = np.arange(setup.seeds if rule == "alright" else 1)
            run = simulate(problem, made, setup.steps, schedule, seeds, record=[setup.steps])
            finals += [Final(rule, w, tuple(f), int(s)) for s, f in zip(seeds, values(run.final))]
    setting = (
        f"3-objective quadratic (proofs_check K3), θ₀ = 0, {setup.steps} steps, step "
        f"{setup.lr:g} decayed linearly to 0; ALRIGHT: {setup.seeds} seeds (dots), mean (marker)\n"
        f"sequential ({' → '.join(names)}, equal thirds) ends at {names[-1]}'s optimum for every λ"
    )
    return TradeoffData(names, finals, targets, pareto, grid, setting)


def llm_data(results: Path) -> TradeoffData:
    """The runs of ``benchmarks/k3_tiny.py`` from ``RESULTS/finals.csv``: final held-out losses
    of each rule at each weight vector, and each source trained alone (the corners). No exact
    Pareto set or targets exist for a language model: the figure shows where the rules land."""
    import csv

    path = Path(results) / "finals.csv"
    if not path.is_file():
        raise ValueError(f"--k3-results {results}: no finals.csv (python -m benchmarks.k3_tiny)")
    with open(path, newline="") as f:
        rows = list(csv.DictReader(f))
    names = tuple(k.removeprefix("eval_") for k in rows[0] if k.startswith("eval_"))
    finals, corners = [], []
    for r in rows:
        point = tuple(float(r[f"eval_{k}"]) for k in names)
        if r["rule"] == "alone":
            corners.append(point)
        else:
            weights = tuple(round(float(r[f"w_{k}"]), 6) for k in names)
            finals.append(Final(r["rule"], weights, point, int(r["seed"])))
    steps, seeds = rows[0]["steps"], len({r["seed"] for r in rows})
    setting = (
        f"tiny model, three sources ({', '.join(names)}), {steps} steps each, held-out losses,"
        f" {seeds} seed{'s' * (seeds > 1)} (dots; markers: their mean)\n"
        f"sequential: {' → '.join(names)} in equal thirds"
    )
    empty = np.empty((0, len(names)))
    return TradeoffData(names, finals, [], empty, empty, setting, corners=corners, log=True)


def _weight_text(w: tuple[float, ...]) -> str:
    return "(" + ", ".join(f"{x:.2g}" for x in w) + ")"


@style.styled
def plot(data: TradeoffData):
    pairs = list(combinations(range(len(data.names)), 2))
    fig, axes = style.new_figure(style.FULL_WIDTH, 2.5, ncols=len(pairs))
    marker = {w: MARKERS[i % len(MARKERS)] for i, w in
              enumerate(dict.fromkeys(f.weights for f in data.finals))}  # fmt: skip
    for ax, (a, b) in zip(axes[0], pairs):
        _pareto(ax, data, a, b)
        for t in data.targets:
            ax.plot(t.point[a], t.point[b], marker.get(t.weights, "o"), ms=12, mfc="none",
                    mec=TARGETS[t.kind][0], mew=1.1, zorder=3)  # fmt: skip
        for c in data.corners:
            ax.plot(c[a], c[b], "x", ms=7, mew=1.4, color="black", zorder=3)
        for rule in sorted({f.rule for f in data.finals}, key=lambda r: -SIZES.get(r, 6)):
            for w, m in marker.items():
                pts = np.array([f.point for f in data.finals if f.rule == rule and f.weights == w])
                if not len(pts):
                    continue
                if len(pts) > 1:  # several seeds: each a faint dot, their mean the marker
                    ax.plot(pts[:, a], pts[:, b], ".", ms=2, color=style.color(rule), alpha=0.35,
                            zorder=2)  # fmt: skip
                mean = pts.mean(axis=0)
                ax.plot(mean[a], mean[b], m, ms=SIZES.get(rule, 6), color=style.color(rule),
                        mec="black", mew=0.4, zorder=4)  # fmt: skip
        if data.log:
            ax.set_xscale("log")
            ax.set_yscale("log")
            plain_log_ticks(ax)
        ax.set_xlabel(data.axis.format(data.names[a]))
        ax.set_ylabel(data.axis.format(data.names[b]))
    rules = [r for r in RULES if any(f.rule == r for f in data.finals)]
    rules += sorted({f.rule for f in data.finals} - set(rules))
    handles = [Line2D([], [], ls="", marker="o", ms=6, color=style.color(r), mec="black",
                      mew=0.4, label=style.label(r)) for r in rules]  # fmt: skip
    handles += [Line2D([], [], ls="", marker="o", ms=9, mfc="none", mec=c, mew=1.1, label=text)
                for kind, (c, text) in TARGETS.items()
                if any(t.kind == kind for t in data.targets)]  # fmt: skip
    if data.corners:
        handles.append(Line2D([], [], ls="", marker="x", mew=1.4, color="black",
                              label="each objective alone"))  # fmt: skip
    if len(data.pareto):
        handles.append(Line2D([], [], ls="", marker=".", color="0.75", label="Pareto set"))
        handles.append(Line2D([], [], color="0.3", lw=1, label="front of the pair (3rd λ = 0)"))
    shapes = [Line2D([], [], ls="", marker=m, ms=6, mfc="white", mec="black", mew=0.8,
                     label=_weight_text(w)) for w, m in marker.items()]  # fmt: skip
    first = fig.legend(handles=handles, loc="upper center", bbox_to_anchor=(0.5, 0.02), ncol=4,
                       frameon=False)  # fmt: skip
    fig.add_artist(first)
    fig.legend(handles=shapes, loc="upper center", bbox_to_anchor=(0.5, -0.14), ncol=len(shapes),
               frameon=False, title=f"weights λ = ({', '.join(data.names)})", title_fontsize=7)  # fmt: skip
    fig.suptitle(data.setting, fontsize=7.5)
    fig.tight_layout()
    return fig


def _pareto(ax, data: TradeoffData, a: int, b: int) -> None:
    if not len(data.pareto):
        return
    ax.plot(data.pareto[:, a], data.pareto[:, b], ".", ms=1.2, color="0.75", zorder=1)
    (other,) = set(range(len(data.names))) - {a, b}
    edge = np.flatnonzero(data.pareto_weights[:, other] == 0)
    edge = edge[np.argsort(data.pareto_weights[edge, a])]
    ax.plot(data.pareto[edge, a], data.pareto[edge, b], color="0.3", lw=1, zorder=1.5)


def tables(data: TradeoffData) -> dict[str, list[dict]]:
    def cols(prefix: str, xs) -> dict:
        return {f"{prefix}_{k}": float(x) for k, x in zip(data.names, xs)}

    finals = [{"rule": f.rule, "seed": f.seed, **cols("w", f.weights), **cols("f", f.point)}
              for f in data.finals]  # fmt: skip
    targets = [{"kind": t.kind, **cols("w", t.weights), **cols("f", t.point)}
               for t in data.targets]  # fmt: skip
    pareto = [{**cols("w", w), **cols("f", f)} for w, f in zip(data.pareto_weights, data.pareto)]
    corners = [cols("f", c) for c in data.corners]
    return {"": finals, "targets": targets, "pareto": pareto, "corners": corners}


def render(data: TradeoffData, out_dir: Path, name: str = "k3_tradeoff") -> list[Path]:
    return style.save(plot(data), out_dir, name, tables(data))
