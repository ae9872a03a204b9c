"""Figure 1, the paper's toy illustration: both objectives' contours on the 2-D log-linear
instance, the SFT optimum, the DPO minimiser set (a line: f_dpo depends on θ only through
θ₂ − θ₁), the λ = 0.5 mixed optimum θ*_0.5 ("Average Opt. Point"), the Pareto set {θ*_μ} and the
paths of sequential (both orders), ALRIGHT, MAXRIGHT and Mix, fading from pale (start) to full
colour (end)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from matplotlib.lines import Line2D

from figures import style
from figures.data import ContourData

# Contours at these gaps above each optimum: dense near the optimum, where the paths end.
GAP_LEVELS = (0.02, 0.06, 0.15, 0.3, 0.6, 1.2, 2.4)


@style.styled
def plot(data: ContourData):
    fig, axes = style.new_figure(style.FULL_WIDTH * 0.72, 3.3)
    ax = axes[0, 0]
    for k, ls in (("sft", "-"), ("dpo", "--")):
        levels = np.min(data.f[k]) + np.array(GAP_LEVELS)
        ax.contour(
            data.x,
            data.y,
            data.f[k],
            levels=levels,
            colors=style.OBJECTIVE_COLORS[k],
            linestyles=ls,
            linewidths=0.7,
            alpha=0.9,
        )
    ax.plot(*data.dpo_line.T, color=style.OBJECTIVE_COLORS["dpo"], lw=3, alpha=0.45, zorder=1)
    ax.plot(*data.pareto_set.T, color="black", lw=3, alpha=0.25, solid_capstyle="round", zorder=1)
    for rule, path in data.paths.items():
        # ALRIGHT's alternating full steps zigzag: draw it thin and underneath the others.
        thin = rule == "alright"
        style.fading_line(
            ax,
            path[:, 0],
            path[:, 1],
            style.color(rule),
            lw=0.8 if thin else 1.4,
            zorder=2 if thin else 3,
        )
        ax.plot(*path[-1], "o", ms=4.5, color=style.color(rule), mec="white", mew=0.6, zorder=4)
    ax.plot(*data.start, "o", ms=5, color="black", zorder=5)
    ax.plot(
        *data.optimum_sft,
        "*",
        ms=11,
        color=style.OBJECTIVE_COLORS["sft"],
        mec="black",
        mew=0.5,
        zorder=5,
    )
    ax.plot(*data.mix_optimum, "D", ms=6, color="white", mec="black", mew=1.0, zorder=5)
    ax.set(
        xlim=(data.x[0], data.x[-1]),
        ylim=(data.y[0], data.y[-1]),
        aspect="equal",
        xlabel=r"$\theta_1$",
        ylabel=r"$\theta_2$",
    )
    ax.set_title(
        f"Parameter space; joint methods at λ = {data.lam:g}, sequential T_1 = T_2\n{data.setting}",
        fontsize=7.5,
    )
    ax.legend(
        handles=_legend_handles(data),
        loc="upper left",
        bbox_to_anchor=(1.03, 1.0),
        frameon=False,
        borderaxespad=0,
    )
    return fig


def _legend_handles(data: ContourData) -> list[Line2D]:
    sft, dpo = style.OBJECTIVE_COLORS["sft"], style.OBJECTIVE_COLORS["dpo"]
    handles = [
        Line2D([], [], color=sft, lw=0.8, label=r"$f_{\rm sft}$ contours"),
        Line2D([], [], color=dpo, lw=0.8, ls="--", label=r"$f_{\rm dpo}$ contours"),
        Line2D(
            [], [], marker="*", ms=10, color=sft, mec="black", mew=0.5, ls="", label="SFT optimum"
        ),
        Line2D([], [], color=dpo, lw=3, alpha=0.45, label="DPO minimisers (a line)"),
        Line2D(
            [],
            [],
            marker="D",
            ms=6,
            color="white",
            mec="black",
            ls="",
            label=f"mixed optimum $\\theta^*_{{{data.lam:g}}}$",
        ),
        Line2D([], [], color="black", lw=3, alpha=0.25, label=r"Pareto set $\theta^*_\mu$"),
        Line2D([], [], marker="o", ms=5, color="black", ls="", label=r"start $\theta_0$"),
    ]
    for rule in data.paths:
        handles.append(
            Line2D(
                [], [], color=style.color(rule), lw=1.6, marker="o", ms=4, label=style.label(rule)
            )
        )
    return handles


def tables(data: ContourData) -> dict[str, list[dict]]:
    """The plotted numbers: paths ("" table) and landmarks."""
    paths = [
        {"rule": rule, "lam": data.lam, "step": int(s), "theta1": p[0], "theta2": p[1]}
        for rule, path in data.paths.items()
        for s, p in zip(data.steps, path)
    ]
    marks = [
        {"kind": "start", "theta1": data.start[0], "theta2": data.start[1]},
        {"kind": "sft_optimum", "theta1": data.optimum_sft[0], "theta2": data.optimum_sft[1]},
        {
            "kind": f"mix_optimum_lam{data.lam:g}",
            "theta1": data.mix_optimum[0],
            "theta2": data.mix_optimum[1],
        },
    ]
    marks += [{"kind": "dpo_line", "theta1": p[0], "theta2": p[1]} for p in data.dpo_line]
    marks += [{"kind": "pareto_set", "theta1": p[0], "theta2": p[1]} for p in data.pareto_set]
    return {"": paths, "landmarks": marks}


def render(data: ContourData, out_dir: Path) -> list[Path]:
    return style.save(plot(data), out_dir, "toy_contours", tables(data))
