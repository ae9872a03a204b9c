"""The real-model study's figures, drawn from its committed CSV files alone
(:mod:`toyopt.llm.study`; no run directories needed):

- ``study_objective_space``: one panel per λ, held-out SFT loss against held-out DPO loss on log
  axes (the runs span two decades of SFT loss; linear axes crowd the joint rules into a corner),
  every run's trajectory (thin, from step 0), its final point (a marker per seed), the ideal point
  (star, dashed lines);
- ``study_convergence``: one panel per λ, each run's held-out *target* (f_mix,λ for ALRIGHT and
  Mix, the Chebyshev gap for MAXRIGHT, the second stage's objective for sequential) against the
  step, log scale, with the last quarter of the budget shaded: the convergence criterion
  (:mod:`toyopt.llm.study`) compares the two ends of that window; a run that fails it ends in ×.
"""

from __future__ import annotations

from functools import partial
from pathlib import Path

from matplotlib.lines import Line2D
from matplotlib.ticker import FormatStrFormatter, FuncFormatter

from figures.style import FULL_WIDTH, color, label, new_figure, save, styled
from toyopt.llm.study import ideal_point, target
from toyopt.llm.study_report import lams_of, load
from toyopt.rules import RULE_NAMES

MARKERS = "os^Dv"


def _curve(curves: list[dict], run: dict) -> list[dict]:
    key = (run["seed"], run["lam"], run["rule"])
    return sorted((c for c in curves if (c["seed"], c["lam"], c["rule"]) == key),
                  key=lambda c: c["step"])  # fmt: skip


@styled
def objective_space(rows: list[dict], curves: list[dict], star: dict[str, float]):
    lams = lams_of(rows)
    fig, axes = new_figure(FULL_WIDTH, 2.5, ncols=len(lams))
    seeds = sorted({r["seed"] for r in rows})
    for ax, lam in zip(axes[0], lams):
        for r in (r for r in rows if r["lam"] == lam):
            c = _curve(curves, r)
            xs, ys = [p["eval_sft"] for p in c], [p["eval_dpo"] for p in c]
            ax.plot(xs, ys, color=color(r["rule"]), lw=0.6, alpha=0.45)
            first = r["seed"] == seeds[0]
            ax.plot(xs[-1], ys[-1], MARKERS[seeds.index(r["seed"]) % 5], color=color(r["rule"]),
                    ms=4, label=label(r["rule"]) if first else None)  # fmt: skip
        ax.plot(star["sft"], star["dpo"], "*", color="black", ms=8, label="ideal point")
        ax.axvline(star["sft"], color="black", ls="--", lw=0.5)
        ax.axhline(star["dpo"], color="black", ls="--", lw=0.5)
        ax.set(xscale="log", yscale="log", title=f"λ = {lam:g}", xlabel="held-out SFT loss")
        plain_log_ticks(ax)
    axes[0][0].set_ylabel("held-out DPO loss")
    handles, names = axes[0][0].get_legend_handles_labels()
    order = sorted(range(len(names)), key=lambda i: _rank(names[i]))
    _legend(fig, [handles[i] for i in order], [names[i] for i in order])
    return fig


def plain_log_ticks(ax) -> None:
    """Log axes labelled 0.5, 1, 2 rather than 5×10⁻¹; the minor ticks are labelled only on an
    axis spanning less than about a decade and a half (more would print labels over each other)."""
    for axis in (ax.xaxis, ax.yaxis):
        axis.set_major_formatter(FormatStrFormatter("%g"))
        axis.set_minor_formatter(FuncFormatter(partial(_minor_label, axis)))
    ax.tick_params(which="minor", labelsize=6)


def _minor_label(axis, value: float, pos) -> str:
    low, high = sorted(axis.get_view_interval())
    return f"{value:g}" if low > 0 and high / low < 30 else ""


def _legend(fig, handles, names) -> None:
    fig.legend(handles, names, loc="upper center", ncol=4, bbox_to_anchor=(0.5, 0.0),
               frameon=False)  # fmt: skip


def _rank(name: str) -> int:
    names = [label(r) for r in RULE_NAMES]
    return names.index(name) if name in names else len(names)


@styled
def convergence(rows: list[dict], curves: list[dict], star: dict[str, float]):
    lams = lams_of(rows)
    fig, axes = new_figure(FULL_WIDTH, 2.3, ncols=len(lams))
    for ax, lam in zip(axes[0], lams):
        steps = max(r["steps"] for r in rows if r["lam"] == lam)
        ax.axvspan(0.75 * steps, steps, color="0.92", lw=0)
        for r in sorted((r for r in rows if r["lam"] == lam), key=lambda r: r["rule"]):
            c = _curve(curves, r)
            h = [max(target(r["rule"], lam, p["eval_sft"], p["eval_dpo"], star),
                     1e-4) for p in c]  # fmt: skip
            s = [p["step"] for p in c]
            ax.plot(s, h, color=color(r["rule"]), lw=0.8, alpha=0.8)
            mark = {True: "o", False: "x", None: "s"}[r["converged"]]
            ax.plot(
                s[-1],
                h[-1],
                mark,
                color=color(r["rule"]),
                ms=3.5,
                mfc="none" if mark == "s" else None,
            )
        ax.set(yscale="log", title=f"λ = {lam:g}", xlabel="step")
    axes[0][0].set_ylabel("held-out target")
    rules = [r for r in RULE_NAMES if any(x["rule"] == r for x in rows)]
    handles = [Line2D([], [], color=color(r)) for r in rules] + [
        Line2D([], [], ls="", marker="o", color="black", ms=3.5),
        Line2D([], [], ls="", marker="x", color="black", ms=3.5),
        Line2D([], [], ls="", marker="s", color="black", mfc="none", ms=3.5),
    ]
    names = [label(r) for r in rules] + ["stopped improving", "still improving (criterion)",
                                         "stage too short to judge"]  # fmt: skip
    _legend(fig, handles, names)
    return fig


def render(results: Path, out_dir: Path) -> list[Path]:
    """Both figures (PNG, PDF) and the rows they were drawn from (CSV)."""
    rows, curves, _ = load(results)
    # the ideal point over every run, the single-objective ones included (as the report's)
    star = {k: v["value"] for k, v in ideal_point(rows).items()}
    rows = [r for r in rows if r["lam"] != ""]
    table = [{k: r[k] for k in ("seed", "lam", "rule", "eval_sft", "eval_dpo", "ideal_distance",
                                "f_mix", "chebyshev_gap", "converged")} for r in rows]  # fmt: skip
    paths = save(objective_space(rows, curves, star), out_dir, "study_objective_space", {"": table})
    paths += save(convergence(rows, curves, star), out_dir, "study_convergence", {})
    return paths
