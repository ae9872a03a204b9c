"""Figure 2, the paper's left panels on the toy instance: paths in the plane x = f_sft, y = f_dpo
from a common start, a star at each final point, the exact Pareto front {(f_sft, f_dpo)(θ*_μ)}
and the ideal point (f*_sft, f*_dpo) with dashed lines. Joint methods run at
λ ∈ {0.01, 0.25, 0.5, 0.75, 0.99}; the sequential run paired with each λ splits the same budget
(T_dpo, T_sft) = (1,5) … (5,1) sixths, DPO first. Left panel Sequential/ALRIGHT/Mix, right panel
Sequential/Mix/MAXRIGHT, as in the paper."""

from __future__ import annotations

from pathlib import Path

from matplotlib.lines import Line2D

from figures import style
from figures.data import ObjectiveSpaceData, RunRecord

PANELS = (("sequential-dpo-sft", "alright", "mix"), ("sequential-dpo-sft", "mix", "maxright"))


@style.styled
def plot(data: ObjectiveSpaceData, panels=PANELS, title: str = ""):
    fig, axes = style.new_figure(style.FULL_WIDTH, 3.0, ncols=len(panels), sharex=True, sharey=True)
    for ax, rules in zip(axes[0], panels):
        draw_panel(ax, data.records, rules)
        draw_landmarks(ax, data)
        ax.set_xlabel(data.xlabel)
        ax.set_title(" / ".join(dict.fromkeys(style.label(r).split(" (")[0] for r in rules)))
    axes[0, 0].set_ylabel(data.ylabel)
    handles = [
        Line2D([], [], color=style.color(r), lw=1.5, marker="*", ms=8, label=style.label(r))
        for r in dict.fromkeys(r for p in panels for r in p)
    ]
    if len(data.front):
        handles.append(Line2D([], [], color="black", lw=1.2, label="Pareto front"))
    if data.ideal is not None:
        handles.append(
            Line2D([], [], color="black", marker="x", ls="--", lw=0.8, label="ideal point")
        )
    handles.append(Line2D([], [], color="black", marker="o", ls="", ms=4, label="common start"))
    fig.legend(
        handles=handles, loc="upper center", bbox_to_anchor=(0.5, 0.0), ncol=4, frameon=False
    )
    text = "labels give λ (joint methods) or T_dpo:T_sft (sequential runs)"
    text = f"{title}: {text}" if title else text[0].upper() + text[1:]
    fig.suptitle(f"{text}\n{data.setting}", fontsize=7.5)
    fig.tight_layout()
    return fig


def draw_panel(ax, records: list[RunRecord], rules: tuple[str, ...]) -> None:
    """Fading paths and final stars; each star labelled with its λ or split."""
    for rule in rules:
        runs = [r for r in records if r.rule == rule]
        for rec in runs:
            f_sft, f_dpo = rec.path[:, 1], rec.path[:, 2]
            style.fading_line(ax, f_sft, f_dpo, style.color(rule), lw=1.0)
            ax.plot(
                f_sft[-1],
                f_dpo[-1],
                "*",
                ms=9,
                color=style.color(rule),
                mec="black",
                mew=0.4,
                zorder=5,
            )
        # Sequential labels above, the two joint methods above and below to the right:
        # several runs end near the same point (all λ = 0.01 runs near the SFT optimum).
        joint = [r for r in rules if not r.startswith("seq")]
        where = (3, 9) if rule.startswith("seq") else (5, 3) if rule == joint[0] else (5, -8)
        for (x, y), text in star_labels(runs):
            ax.annotate(
                text,
                (x, y),
                xytext=where,
                textcoords="offset points",
                fontsize=5.5,
                color=style.color(rule),
                zorder=6,
                ha="left",
            )


def star_labels(runs: list[RunRecord], tol: float = 0.02) -> list[tuple[tuple[float, float], str]]:
    """One label per cluster of final points closer than ``tol`` (in both coordinates): the
    sequential runs all end near the SFT optimum, and five overlapping labels would be unreadable."""
    out: list[tuple[tuple[float, float], list[str]]] = []
    for rec in runs:
        end = (float(rec.path[-1, 1]), float(rec.path[-1, 2]))
        text = f"{rec.split[0]}:{rec.split[1]}" if rec.rule.startswith("seq") else f"{rec.lam:g}"
        for point, texts in out:
            if abs(point[0] - end[0]) < tol and abs(point[1] - end[1]) < tol:
                texts.append(text)
                break
        else:
            out.append((end, [text]))
    return [(p, ", ".join(t) if len(t) <= 2 else f"{t[0]} … {t[-1]}") for p, t in out]


def draw_landmarks(ax, data: ObjectiveSpaceData) -> None:
    if len(data.front):
        ax.plot(data.front[:, 1], data.front[:, 2], color="black", lw=1.2, zorder=4)
    if data.ideal is not None:
        ax.axvline(data.ideal[0], color="black", ls="--", lw=0.8)
        ax.axhline(data.ideal[1], color="black", ls="--", lw=0.8)
        ax.plot(*data.ideal, "x", color="black", ms=6, zorder=5)
    ax.plot(*data.start, "o", color="black", ms=4, zorder=5)


def tables(data: ObjectiveSpaceData) -> dict[str, list[dict]]:
    paths = [
        {
            "rule": r.rule,
            "lam": r.lam,
            "split": f"{r.split[0]}:{r.split[1]}",
            "seed": r.seed,
            "step": int(p[0]),
            "f_sft": p[1],
            "f_dpo": p[2],
        }
        for r in data.records
        for p in r.path
    ]
    front = [{"mu": m, "f_sft": s, "f_dpo": d} for m, s, d in data.front]
    marks = [{"kind": "start", "f_sft": data.start[0], "f_dpo": data.start[1]}]
    if data.ideal is not None:
        marks.append({"kind": "ideal", "f_sft": data.ideal[0], "f_dpo": data.ideal[1]})
    out = {"": paths, "landmarks": marks}
    if front:
        out["front"] = front
    return out


def render(
    data: ObjectiveSpaceData, out_dir: Path, name: str = "toy_objective_space"
) -> list[Path]:
    return style.save(plot(data), out_dir, name, tables(data))
