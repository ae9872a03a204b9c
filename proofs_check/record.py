"""What every check returns: one :class:`Record` per (claim, instance, setting), and a table.

A record says what was measured, what the theory predicts (a bound or a prediction), how the two
must relate (``<=``, ``>=``, or ``~`` within a stated tolerance) and whether the relation holds.
Rates fitted on a log-log scale carry their 95 % confidence interval.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field

CLAIMS: dict[str, str] = {
    "C1": "sequential is sub-optimal: the f_mix gap stays above a positive bound",
    "C2": "ALRIGHT: E f_mix gap below the explicit last-iterate bound, and -> 0",
    "C3": "MAXRIGHT (exact and stale): Chebyshev gap -> 0",
    "C4": "Mix: gradient descent bound for smooth / strongly convex f_mix",
    "C5": "cost: gradient and function evaluations per step, exactly",
    "C6": "trade-off facts per lam on named instances",
}


@dataclass
class Record:
    """One checked statement.

    ``measured`` and ``bound`` are the numbers compared by ``relation``; ``tolerance`` is the
    slack allowed by ``~`` (absolute). ``rate`` is a fitted log-log slope with ``rate_ci``.
    """

    claim: str
    instance: str
    quantity: str
    measured: float
    relation: str
    bound: float
    holds: bool
    tolerance: float = 0.0
    rate: float | None = None
    rate_ci: tuple[float, float] | None = None
    note: str = ""
    details: dict = field(default_factory=dict)

    def to_json(self) -> dict:
        out = asdict(self)
        for key in ("measured", "bound", "tolerance", "rate"):
            out[key] = _finite(out[key])
        if self.rate_ci is not None:
            out["rate_ci"] = [_finite(v) for v in self.rate_ci]
        return out


def _finite(x: float | None) -> float | str | None:
    """JSON has no inf/nan: write them as strings."""
    if x is None or math.isfinite(x):
        return x
    return str(x)


def compare(measured: float, relation: str, bound: float, tolerance: float = 0.0) -> bool:
    """Does ``measured relation bound`` hold? (``~``: |measured − bound| <= tolerance.)"""
    if not (math.isfinite(measured) or math.isinf(bound)):
        return False
    if relation == "<=":
        return measured <= bound + tolerance
    if relation == ">=":
        return measured >= bound - tolerance
    if relation == "~":
        return abs(measured - bound) <= tolerance
    if relation == "==":
        return measured == bound
    raise ValueError(f"unknown relation {relation!r}; use <=, >=, ~ or ==")


def make_record(
    claim: str,
    instance: str,
    quantity: str,
    measured: float,
    relation: str,
    bound: float,
    tolerance: float = 0.0,
    *,
    extra_ok: bool = True,
    **kwargs,
) -> Record:
    """A record whose ``holds`` is computed here, never passed in (``extra_ok`` adds a further
    condition, e.g. a fitted rate whose interval must lie below zero)."""
    ok = compare(float(measured), relation, float(bound), tolerance) and bool(extra_ok)
    return Record(
        claim, instance, quantity, float(measured), relation, float(bound), ok, tolerance, **kwargs
    )


def _fmt(x: float | None) -> str:
    if x is None:
        return ""
    if x == 0 or (1e-3 <= abs(x) < 1e4):
        return f"{x:.4g}"
    return f"{x:.3e}"


def format_table(records: list[Record]) -> str:
    """A Markdown table, one row per record."""
    head = "| claim | instance | measured quantity | measured | rel. | bound / prediction | rate [95% CI] | holds |"
    lines = [head, "|---|---|---|---|---|---|---|---|"]
    for r in records:
        rel = r.relation if r.relation != "~" else f"≈ (±{_fmt(r.tolerance)})"
        rate = ""
        if r.rate is not None:
            lo, hi = r.rate_ci if r.rate_ci else (math.nan, math.nan)
            rate = f"{r.rate:.3f} [{lo:.3f}, {hi:.3f}]"
        lines.append(
            f"| {r.claim} | {r.instance} | {r.quantity} | {_fmt(r.measured)} | {rel} "
            f"| {_fmt(r.bound)} | {rate} | {'yes' if r.holds else '**NO**'} |"
        )
    return "\n".join(lines)
