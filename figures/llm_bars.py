"""Figure 5b: the bar layout of the toy figure drawn from language-model runs: per λ, held-out
DPO and SFT gaps and ideal distance (raw held-out losses when no optima are known, said on the
axis), and the increase in training time, peak memory and gradient evaluations per step over
the paired sequential run."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

from figures import style, toy_bars

RULES = ("sequential-dpo-sft", "sequential-sft-dpo", "alright", "maxright", "mix")
COSTS = (
    ("wall_increase_pct", "training time vs sequential (%)"),
    ("memory_increase_pct", "peak memory vs sequential (%)"),
)


def metrics(rows: Sequence[Mapping[str, object]]) -> list[tuple[str, str]]:
    if rows and "gap_dpo" in rows[0]:
        quality = [
            ("gap_dpo", "held-out DPO gap"),
            ("gap_sft", "held-out SFT gap"),
            ("ideal_distance", "ideal distance"),
        ]
    else:
        quality = [
            ("eval_dpo", "held-out DPO loss\n(raw: no optima.json)"),
            ("eval_sft", "held-out SFT loss\n(raw: no optima.json)"),
        ]
    return quality + list(COSTS)


def plot(rows: Sequence[Mapping[str, object]]):
    note = (
        "Increases are relative to the sequential run\nlaunched with the same --lam; training "
        "time\nexcludes evaluations (sum of step_seconds).\nPeak memory on CPU is the process's "
        "peak RSS:\nruns trained in one process (a sweep) share it."
    )
    return toy_bars.plot(rows, metrics(rows), RULES, title="language model", note=note)


def render(rows: Sequence[Mapping[str, object]], out_dir: Path) -> list[Path]:
    return style.save(plot(rows), out_dir, "llm_bars", {"": rows})
