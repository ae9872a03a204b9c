"""Shared look of every figure: sizes for a two-column paper, one colour per method, fading
trajectories, and the one function that saves a figure together with the data it was drawn from."""

from __future__ import annotations

import csv
import functools
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import ParamSpec, TypeVar

import matplotlib

matplotlib.use("Agg")  # figures are written to files; never open a window

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from matplotlib.collections import LineCollection  # noqa: E402
from matplotlib.colors import to_rgb  # noqa: E402

from toyopt.files import write_with

# A two-column paper's text width is about 6.75 in; one column about 3.3 in.
FULL_WIDTH = 6.75
COLUMN_WIDTH = 3.3

RC = {
    "font.size": 8,
    "axes.titlesize": 8.5,
    "axes.labelsize": 8,
    "legend.fontsize": 7,
    "xtick.labelsize": 7,
    "ytick.labelsize": 7,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "savefig.dpi": 200,
    "savefig.bbox": "tight",
    "pdf.fonttype": 42,  # embed TrueType so the PDF text stays editable and searchable
}

# Colour-blind-safe (Okabe-Ito) colours, fixed per method across every figure.
COLORS = {
    "sequential-dpo-sft": "#555555",
    "sequential-sft-dpo": "#A0522D",
    "sequential": "#555555",
    "alright": "#0072B2",
    "maxright": "#009E73",
    "mix": "#E69F00",
}
LABELS = {
    "sequential-dpo-sft": "Sequential (DPO→SFT)",
    "sequential-sft-dpo": "Sequential (SFT→DPO)",
    "sequential": "Sequential",
    "alright": "ALRIGHT",
    "maxright": "MAXRIGHT",
    "mix": "Mix",
}
P = ParamSpec("P")
R = TypeVar("R")

OBJECTIVE_COLORS = {"sft": "#CC79A7", "dpo": "#56B4E9"}


def method_of(rule: str) -> str:
    """The method family of a rule name (sequential orders share a family)."""
    return "sequential" if rule.startswith("sequential") else rule


def color(rule: str) -> str:
    return COLORS.get(rule, COLORS.get(method_of(rule), "black"))


def label(rule: str) -> str:
    return LABELS.get(rule, rule)


def styled(plot: Callable[P, R]) -> Callable[P, R]:
    """Run a plotting function under the project style (fonts are read when text is drawn, so
    the whole function runs inside the style context, not just the figure creation)."""

    @functools.wraps(plot)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        with plt.rc_context(RC):
            return plot(*args, **kwargs)

    return wrapper


def new_figure(width: float, height: float, **kwargs) -> tuple[plt.Figure, np.ndarray]:
    """A figure of the given size in inches; ``axes`` is always a 2-D array."""
    fig, axes = plt.subplots(figsize=(width, height), squeeze=False, **kwargs)
    return fig, axes


def fading_line(
    ax: plt.Axes, x: np.ndarray, y: np.ndarray, rgb: str, lw: float = 1.4, zorder: float = 2
) -> None:
    """A path whose colour goes from a pale tint (start) to the full colour (end), as in the
    paper's toy illustration, so the direction of travel is visible without arrows."""
    x, y = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    if len(x) < 2:
        return
    points = np.stack([x, y], axis=1)
    segments = np.stack([points[:-1], points[1:]], axis=1)
    base = np.array(to_rgb(rgb))
    share = np.linspace(0.25, 1.0, len(segments))[:, None]  # 0 = white, 1 = full colour
    colors = 1.0 - share * (1.0 - base)
    lines = LineCollection(segments, colors=colors, linewidths=lw, capstyle="round", zorder=zorder)
    ax.add_collection(lines)


def write_csv(path: Path, rows: Iterable[Mapping[str, object]]) -> Path:
    """Rows of dicts to CSV; the header is the union of keys in first-seen order."""
    rows = list(rows)
    header: list[str] = []
    for row in rows:
        header += [k for k in row if k not in header]

    def fill(tmp: Path) -> None:
        with open(tmp, "w", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=header)
            writer.writeheader()
            writer.writerows(rows)

    return write_with(Path(path), fill)  # atomic, never through a link


def read_csv(path: Path) -> list[dict[str, str]]:
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def save(
    fig: plt.Figure,
    out_dir: Path,
    name: str,
    tables: Mapping[str, Sequence[Mapping[str, object]]],
) -> list[Path]:
    """Write ``name``.png, ``name``.pdf and one CSV per table: ``name``.csv for the table keyed
    "" and ``name``_KEY.csv for the others. Returns the paths written."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = []
    with plt.rc_context(RC):
        for ext in ("png", "pdf"):
            path = out_dir / f"{name}.{ext}"
            write_with(path, lambda tmp, ext=ext: fig.savefig(tmp, format=ext))
            paths.append(path)
    plt.close(fig)
    for key, rows in tables.items():
        paths.append(write_csv(out_dir / (f"{name}_{key}.csv" if key else f"{name}.csv"), rows))
    return paths
