"""Figure 4: optimality gap against the budget T on log-log axes, per method, from
``proofs_check.rates.rate_data``: the measured mean gap with its 95 % interval over seeds, the
explicit bound of each convergence claim as a dashed line of the same colour (claims C2–C4), and
for sequential training (claim C1) its predicted plateau as a dotted horizontal line: the gap of
sequential training stays there however large T grows.

``rate_data`` returns, per method ("sequential-sft-dpo", "sequential-dpo-sft", "alright",
"maxright", "mix"), a dict with arrays "T", "gap", "ci_low", "ci_high", "bound" (array or None),
and for sequential methods "plateau" (the predicted limit of the gap) and optionally
"lower_bound" (a certified lower bound c_T on the gap at each T, drawn dashed); optional "metric"
names the gap measured. As documented by ``rate_data``, the gap is the f_mix,λ gap, and for
MAXRIGHT the weighted Chebyshev gap its theory is about.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import numpy as np
from matplotlib.lines import Line2D
from matplotlib.ticker import FormatStrFormatter

from figures import style

SEQUENTIAL = ("sequential-sft-dpo", "sequential-dpo-sft")
JOINT = ("alright", "maxright", "mix")
DEFAULT_METRIC = (
    r"$f_{\rm mix,\lambda}$ gap at budget T",
    "$f_{\\rm mix,\\lambda}$ gap at budget T\n(MAXRIGHT: Chebyshev gap)",
)
REQUIRED = ("T", "gap", "ci_low", "ci_high", "bound")


def check(data: Mapping[str, Mapping]) -> None:
    """Clear errors for a rate table that does not follow the documented format."""
    if not any(m in data for m in (*SEQUENTIAL, *JOINT)):
        raise ValueError(f"rate data has none of the methods {SEQUENTIAL + JOINT}: {sorted(data)}")
    for method, d in data.items():
        missing = [k for k in REQUIRED if k not in d]
        if missing:
            raise ValueError(f"rate data for {method!r} lacks {missing}")
        n = len(d["T"])
        for k in ("gap", "ci_low", "ci_high") + (("bound",) if d["bound"] is not None else ()):
            if len(d[k]) != n:
                raise ValueError(
                    f"rate data for {method!r}: {k!r} has {len(d[k])} values, T has {n}"
                )
        if method in SEQUENTIAL and "plateau" not in d:
            raise ValueError(f"rate data for {method!r} lacks the predicted 'plateau'")


def _positive(values) -> np.ndarray:
    """Log axes cannot show gaps ≤ 0 (reached to rounding): mask them rather than clip."""
    arr = np.asarray(values, dtype=float)
    return np.where(arr > 0, arr, np.nan)


@style.styled
def plot(data: Mapping[str, Mapping], title: str = "toy2d, λ = 0.5 (data: proofs_check.rates)"):
    check(data)
    groups = [g for g in (SEQUENTIAL, JOINT) if any(m in data for m in g)]
    fig, axes = style.new_figure(style.FULL_WIDTH, 3.3, ncols=len(groups), sharex=True)
    for ax, group in zip(axes[0], groups):
        handles = []
        for method in (m for m in group if m in data):
            handles += _draw_method(ax, method, data[method])
        ax.set(xscale="log", yscale="log", xlabel="budget T (optimizer steps)")
        metric = {data[m].get("metric") for m in group if m in data} - {None}
        default = DEFAULT_METRIC[0] if group is SEQUENTIAL else DEFAULT_METRIC[1]
        ax.set_ylabel(" / ".join(sorted(metric)) if metric else default)
        ax.set_title(
            "Sequential: gap stays at its plateau"
            if group is SEQUENTIAL
            else "Joint methods: gap → 0 under the bound"
        )
        if group is SEQUENTIAL:
            handles += [
                Line2D([], [], color="gray", ls=":", lw=1.2, label="predicted plateau"),
                Line2D([], [], color="gray", ls="--", lw=1, label="certified lower bound"),
            ]
            ax.yaxis.set_major_formatter(FormatStrFormatter("%.2g"))
        else:
            handles += [Line2D([], [], color="gray", ls="--", lw=1, label="explicit upper bound")]
        ax.legend(
            handles=handles, loc="upper center", bbox_to_anchor=(0.5, -0.22), ncol=2, frameon=False
        )
    fig.suptitle(title, fontsize=8.5)
    fig.tight_layout()
    return fig


def _draw_method(ax, method: str, d: Mapping) -> list[Line2D]:
    c = style.color(method)
    t = np.asarray(d["T"], dtype=float)
    ax.fill_between(t, _positive(d["ci_low"]), _positive(d["ci_high"]), color=c, alpha=0.2, lw=0)
    ax.plot(t, _positive(d["gap"]), "o-", color=c, ms=2.5, lw=1.2)
    if d["bound"] is not None:
        ax.plot(t, _positive(d["bound"]), "--", color=c, lw=1)
    if d.get("plateau") is not None:
        ax.axhline(float(d["plateau"]), color=c, ls=":", lw=1.2)
    if d.get("lower_bound") is not None:
        ax.plot(t, _positive(d["lower_bound"]), "--", color=c, lw=1)
    gap = np.asarray(d["gap"], dtype=float)
    if np.any((gap > 0) & (gap < 1e-12)):  # a converged deterministic run hits float64 rounding
        ax.annotate("float64 rounding", (t[-1], gap[-1]), xytext=(0, 5), textcoords="offset points",
                    ha="right", fontsize=6, color=c)  # fmt: skip
    slope = d.get("slope")
    text = style.label(method) + (f" (slope {float(slope):.2f})" if slope is not None else "")
    return [Line2D([], [], color=c, marker="o", ms=3, label=text)]


def tables(data: Mapping[str, Mapping]) -> dict[str, list[dict]]:
    rows = []
    for method, d in data.items():
        for i, t in enumerate(d["T"]):
            row = {"method": method, "T": float(t), "gap": float(d["gap"][i]),
                   "ci_low": float(d["ci_low"][i]), "ci_high": float(d["ci_high"][i]),
                   "bound": None if d["bound"] is None else float(d["bound"][i]),
                   "plateau": d.get("plateau"),
                   "lower_bound": float(d["lower_bound"][i]) if d.get("lower_bound") is not None else None}  # fmt: skip
            rows.append(row)
    return {"": rows}


def render(
    data: Mapping[str, Mapping],
    out_dir: Path,
    title: str = "toy2d, λ = 0.5 (data: proofs_check.rates)",
) -> list[Path]:
    return style.save(plot(data, title), out_dir, "rates", tables(data))
