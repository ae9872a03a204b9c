"""Figure 5a: the objective-space layout of the toy figure drawn from language-model runs:
held-out (eval_sft, eval_dpo) after every evaluation, a star at each final model, the ideal point
(f*_sft, f*_dpo) from ``optima.json`` when known. Panels Sequential/ALRIGHT/Mix and
Sequential/Mix/MAXRIGHT, as in the paper's Pythia figure."""

from __future__ import annotations

from pathlib import Path

from figures import toy_objective_space
from figures.data import ObjectiveSpaceData


def panels(data: ObjectiveSpaceData) -> tuple[tuple[str, ...], ...]:
    """The paper's two panels, each with every sequential order the runs used (the paper draws
    one; a sweep trains both, and either may be the one near the joint rules)."""
    rules = {r.rule for r in data.records}
    seq = tuple(r for r in ("sequential-dpo-sft", "sequential-sft-dpo") if r in rules)
    wanted = (seq + ("alright", "mix"), seq + ("mix", "maxright"))
    return tuple(p for p in (tuple(r for r in panel if r in rules) for panel in wanted) if p)


def plot(data: ObjectiveSpaceData):
    return toy_objective_space.plot(data, panels=panels(data), title="language model")


def render(data: ObjectiveSpaceData, out_dir: Path) -> list[Path]:
    from figures import style

    return style.save(plot(data), out_dir, "llm_objective_space", toy_objective_space.tables(data))
