"""What every check returns: one :class:`Record` per (claim, instance, setting), and a table.

A record says what was measured, what the theory predicts (a bound or a prediction), how the two
must relate (``<=``, ``>=``, or ``~`` within a stated tolerance) and whether the relation holds.
Rates fitted on a log-log scale carry their 95 % confidence interval. Every record has a
``kind`` from :data:`KINDS`; ``proofs_check.broken`` holds, for each kind, a broken variant that
must make a record of that kind fail.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field

CLAIMS: dict[str, str] = {
    "C1": "sequential is sub-optimal: the f_mix gap stays above a positive bound",
    "C2": "ALRIGHT: E f_mix gap below the explicit last-iterate bound, and -> 0",
    "C3": "MAXRIGHT (exact and stale): Chebyshev gap below the subgradient bound, and -> 0",
    "C4": "Mix: the tight gradient-descent rates for smooth / strongly convex f_mix",
    "C5": "cost: gradient and function evaluations per step, exactly",
    "C6": "trade-off facts per lam on named instances",
    "K3": "three named objectives: ALRIGHT and Mix reach the weighted optimum, MAXRIGHT the"
    " Chebyshev optimum, at C2-C4's rates",
    "L1": "tiny language model: each sequential order forgets its first stage",
    "L2": "tiny language model: ALRIGHT and MAXRIGHT reach Mix's trade-off",
    "L3": "tiny language model: joint rules end closer to the ideal point than sequential",
}

KINDS: dict[str, str] = {
    "C1 certificate": "the f_mix gap of sequential stays above a certified positive c_T",
    "C1 plateau": "the f_mix gap of sequential reaches its closed-form plateau",
    "C2 bound": "ALRIGHT's mean f_mix gap below the last-iterate bound at every budget",
    "C2 rate": "ALRIGHT's mean f_mix gap decays (fitted log-log slope)",
    "C3 bound": "exact MAXRIGHT's Chebyshev gap below the subgradient bound (lam = 1/2)",
    "C3 convergence": "MAXRIGHT's Chebyshev gap envelope decays (exact and stale rules)",
    "C3 stale = exact": "stale MAXRIGHT with K = 1 makes the exact rule's iterates",
    "C3 staleness": "stale MAXRIGHT approaches the exact rule's iterates",
    "C4 bound": "Mix's f_mix gap below the tight gradient-descent rates",
    "C5 gradients": "gradients per step and row, exactly",
    "C5 values": "function values per step and row, exactly",
    "C6 same point": "ALRIGHT's mean iterate and Mix's end at the same point",
    "C6 smallest ideal distance": "MAXRIGHT strictly closest to the ideal point",
    "C6 ideal distance tie": "MAXRIGHT ties with Mix in ideal distance (the lam = 1/2 tie)",
    "C6 sequential lands": "sequential ends at the last stage's optimum for every split",
    "K3 ALRIGHT bound": "ALRIGHT (3 objectives): mean F_lam gap below C2's last-iterate bound",
    "K3 ALRIGHT rate": "ALRIGHT (3 objectives): mean F_lam gap decays at log T/sqrt T or faster",
    "K3 Mix bound": "Mix (3 objectives): F_lam gap below the tight gradient-descent rates",
    "K3 MAXRIGHT bound": "MAXRIGHT (3 objectives, equal weights): below the subgradient bound",
    "K3 MAXRIGHT convergence": "MAXRIGHT (3 objectives, exact and stale): Chebyshev gap decays",
    "K3 stale = exact": "stale MAXRIGHT (3 objectives) with K = 1 makes the exact iterates",
    "K3 gradients": "gradients per step and row for 3 objectives, exactly",
    "K3 values": "function values per step and row for 3 objectives, exactly",
    "K3 sequential plateau": "sequential over 3 objectives: the F_lam gap reaches its closed-form"
    " plateau and stays above half of it",
    "L1 forgetting": "the second stage undoes at least half of stage 1's held-out gain",
    "L2 near Mix": "ALRIGHT's (MAXRIGHT's) held-out f_mix within the stated tolerance of Mix's",
    "L3 ideal distance order": "every joint rule ends closer to the ideal point than sequential",
    "L4 MAXRIGHT's target": "MAXRIGHT's training-set Chebyshev gap is the smallest, within 10 %",
    "L5 MAXRIGHT's held-out target": "MAXRIGHT comparing a validation split: its held-out"
    " Chebyshev gap is the smallest, within 10 %",
    "L6 MAXRIGHT at Mix's gradient count": "MAXRIGHT given Mix's number of gradients (twice the"
    " steps): its training-set Chebyshev gap is below Mix's",
}


@dataclass
class Record:
    """One checked statement.

    ``measured`` and ``bound`` are the numbers compared by ``relation``; ``tolerance`` is the
    slack allowed by ``~`` (absolute). ``rate`` is a fitted log-log slope with ``rate_ci``.
    """

    kind: str
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

    @property
    def claim(self) -> str:
        return self.kind.split()[0]

    @property
    def ratio(self) -> float:
        """bound / measured: how far below the bound (above it, for >=) the measurement is;
        nan when it means nothing (equalities, non-positive numbers)."""
        if self.relation == "==" or not (self.measured > 0 and self.bound > 0):
            return math.nan
        return self.bound / self.measured

    def to_json(self) -> dict:
        out = {"claim": self.claim, **asdict(self), "ratio": self.ratio}
        for key in ("measured", "bound", "tolerance", "rate", "ratio"):
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
    kind: str,
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
    if kind not in KINDS:
        raise ValueError(f"unknown record kind {kind!r}")
    ok = compare(float(measured), relation, float(bound), tolerance) and bool(extra_ok)
    return Record(
        kind, instance, quantity, float(measured), relation, float(bound), ok, tolerance, **kwargs
    )


def _fmt(x: float | None) -> str:
    if x is None:
        return ""
    if x == 0 or (1e-3 <= abs(x) < 1e4):
        return f"{x:.4g}"
    return f"{x:.3e}"


def format_table(records: list[Record], notes: bool = False) -> str:
    """A Markdown table, one row per record (``notes``: with each record's note)."""
    head = ["claim", "instance", "measured quantity", "measured", "rel.", "bound / prediction",
            "bound/measured", "rate [95% CI]", "holds"] + (["note"] if notes else [])  # fmt: skip
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in records:
        rel = r.relation if r.relation != "~" else f"≈ (±{_fmt(r.tolerance)})"
        rate = ""
        if r.rate is not None:
            lo, hi = r.rate_ci if r.rate_ci else (math.nan, math.nan)
            rate = f"{r.rate:.3f} [{lo:.3f}, {hi:.3f}]"
        ratio = "" if math.isnan(r.ratio) else f"{r.ratio:.3g}"
        cells = [r.claim, r.instance, r.quantity, _fmt(r.measured), rel, _fmt(r.bound), ratio,
                 rate, "yes" if r.holds else "**NO**"] + ([r.note] if notes else [])  # fmt: skip
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)
