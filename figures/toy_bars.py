"""Figure 3, the paper's right panels on the toy instance: per λ (and the paired sequential split
T_dpo:T_sft), the final DPO gap, SFT gap and ideal distance sqrt(gap_sft² + gap_dpo²) (mean over
seeds, bars ± one standard deviation), and the cost increase relative to the paired sequential
run: measured wall time, and gradient evaluations counted by the training loop (claim C5:
ALRIGHT and MAXRIGHT +0 %, Mix +100 %)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
from matplotlib.patches import Patch

from figures import style

RULES = ("sequential-dpo-sft", "alright", "maxright", "mix")
METRICS = (
    ("gap_dpo", "DPO gap  $f_{\\rm dpo}-f^*_{\\rm dpo}$"),
    ("gap_sft", "SFT gap  $f_{\\rm sft}-f^*_{\\rm sft}$"),
    ("ideal_distance", "ideal distance"),
    ("wall_increase_pct", "wall time vs sequential (%)"),
    ("grad_increase_pct", "gradient evaluations\nvs sequential (%)"),
)

# Measured with cProfile on toy2d: a toy step takes tens of microseconds, so wall time measures
# per-step bookkeeping as much as gradients; ALRIGHT's counter-based coin (a 64-bit hash per step)
# costs about as much as a 2-D gradient. On a language model the gradients dominate.
WALL_NOTE = (
    "Toy steps take tens of µs: wall time here is\nmostly per-step overhead (ALRIGHT's hashed coin,\n"
    "MAXRIGHT's two evaluations), not gradients;\nthe gradient count is the cost that scales."
)


@style.styled
def plot(
    rows: Sequence[Mapping[str, object]],
    metrics: Sequence[tuple[str, str]] = METRICS,
    rules: Sequence[str] = RULES,
    title: str = "toy2d",
    note: str = "",
):
    """A 2 × 3 grid: one panel per metric, λ groups on the x axis, one bar per method; the
    legend takes the last cell so that it never covers a bar."""
    lams = sorted({float(r["lam"]) for r in rows})
    rules = [r for r in rules if any(row["rule"] == r for row in rows)]
    fig, axes = style.new_figure(style.FULL_WIDTH, 3.6, nrows=2, ncols=3)
    width = 0.8 / max(len(rules), 1)
    ticks = [_tick(rows, lam) for lam in lams]
    for ax, (key, ylabel) in zip(axes.flat, metrics):
        for i, rule in enumerate(rules):
            vals, errs = _column(rows, rule, lams, key)
            x = np.arange(len(lams)) + (i - (len(rules) - 1) / 2) * width
            ax.bar(
                x,
                vals,
                width,
                yerr=errs if np.any(errs > 0) else None,  # no caps where nothing varied
                color=style.color(rule),
                error_kw={"lw": 0.6},
                capsize=1.2,
            )
        ax.set_xticks(np.arange(len(lams)), ticks)
        ax.set_ylabel(ylabel)
        ax.axhline(0, color="black", lw=0.5)
    for ax in axes.flat[len(metrics) :]:
        ax.axis("off")
    legend_ax = axes.flat[-1]
    legend_ax.legend(
        handles=[Patch(color=style.color(r), label=style.label(r)) for r in rules],
        loc="center",
        frameon=False,
        title=f"{title}\nx axis: λ (paired T_dpo:T_sft)",
    )
    if note:
        legend_ax.text(
            0.5,
            -0.05,
            note,
            ha="center",
            va="top",
            fontsize=6,
            style="italic",
            wrap=True,
            transform=legend_ax.transAxes,
        )
    fig.tight_layout()
    return fig


def _tick(rows: Sequence[Mapping[str, object]], lam: float) -> str:
    """λ and the paired split; the DPO-first sequential run's split when both orders ran."""
    splits = {r["rule"]: r.get("split") for r in rows if float(r["lam"]) == lam and r.get("split")}
    split = splits.get("sequential-dpo-sft") or next(iter(splits.values()), None)
    return f"{lam:g}\n({split})" if split else f"{lam:g}"


def _column(rows, rule: str, lams: list[float], key: str) -> tuple[np.ndarray, np.ndarray]:
    """Values (nan where missing) and error bars (0 where no spread was measured)."""
    vals, errs = [], []
    for lam in lams:
        row = next((r for r in rows if r["rule"] == rule and float(r["lam"]) == lam), None)
        vals.append(np.nan if row is None or row.get(key) is None else float(row[key]))
        std = None if row is None else row.get(f"{key}_std")
        errs.append(0.0 if std is None or std == "" else float(std))
    return np.array(vals), np.array(errs)


def render(rows: Sequence[Mapping[str, object]], out_dir: Path) -> list[Path]:
    return style.save(plot(rows, note=WALL_NOTE), out_dir, "toy_bars", {"": rows})
