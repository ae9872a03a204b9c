"""Tables the LLM figures are drawn from, computed from the runs :mod:`figures.llm_runs` read:
final held-out gaps per (λ, rule) over seeds, costs relative to the paired sequential run, and
the held-out paths in the (eval_sft, eval_dpo) plane. No plotting here."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from figures.data import ObjectiveSpaceData, RunRecord
from figures.llm_runs import LLMRun
from toyopt.rules import OBJECTIVES, RULE_NAMES


def sequential_baseline(runs: list[LLMRun], lam: float) -> list[LLMRun]:
    """The sequential runs paired with λ (DPO first preferred, as in the paper's Pythia figure)."""
    for rule in ("sequential-dpo-sft", "sequential-sft-dpo"):
        found = [r for r in runs if r.rule == rule and r.lam == lam]
        if found:
            return found
    return []


def _mean_std(values: list[float]) -> tuple[float, float]:
    arr = np.array(values, dtype=float)
    return float(arr.mean()), float(arr.std())


def llm_bar_table(runs: list[LLMRun], optima: dict[str, float] | None) -> list[dict]:
    """Per (λ, rule), over seeds: the final held-out gaps and ideal distance (raw held-out
    losses "eval_sft"/"eval_dpo" when no optima are known), and the increase in training time,
    peak memory and gradient evaluations per step relative to the paired sequential run (%)."""
    rows = []
    for lam in sorted({r.lam for r in runs}):
        base = sequential_baseline(runs, lam)
        for rule in RULE_NAMES:
            group = [r for r in runs if r.rule == rule and r.lam == lam]
            if not group:
                continue
            split = group[0].split
            row: dict = {"lam": lam, "split": f"{split[0]}:{split[1]}" if split else "",
                         "rule": rule, "seeds": len(group)}  # fmt: skip
            final = {k: [r.evals[-1, 1 + i] for r in group] for i, k in enumerate(OBJECTIVES)}
            if optima is None:
                for k in ("dpo", "sft"):
                    row[f"eval_{k}"], row[f"eval_{k}_std"] = _mean_std(final[k])
            else:
                gaps = {k: np.array(final[k]) - optima[k] for k in OBJECTIVES}
                for k in ("dpo", "sft"):
                    row[f"gap_{k}"], row[f"gap_{k}_std"] = _mean_std(gaps[k])
                dist = np.hypot(gaps["sft"], gaps["dpo"])
                row["ideal_distance"], row["ideal_distance_std"] = _mean_std(dist)
            row.update(_costs(group, base))
            rows.append(row)
    return rows


def _costs(group: list[LLMRun], base: list[LLMRun]) -> dict:
    """Mean costs of ``group`` and their increase over ``base`` in percent (nan without base)."""

    def per_step_grads(rs):
        return np.mean([sum(r.grad_evals.values()) / max(r.train_steps, 1) for r in rs])

    def mean(rs, attr):
        vals = [getattr(r, attr) for r in rs]
        return float(np.mean(vals)) if vals and None not in vals else float("nan")

    out = {"train_seconds": mean(group, "train_seconds"), "peak_memory_bytes": mean(group, "peak_memory"),
           "grads_per_step": float(per_step_grads(group))}  # fmt: skip
    pairs = (("wall_increase_pct", "train_seconds"), ("memory_increase_pct", "peak_memory_bytes"))
    for key, field in pairs:
        ref = mean(base, "train_seconds" if field == "train_seconds" else "peak_memory")
        out[key] = 100 * (out[field] / ref - 1) if base and ref > 0 else float("nan")
    ref_grads = float(per_step_grads(base)) if base else float("nan")
    out["grad_increase_pct"] = (
        100 * (out["grads_per_step"] / ref_grads - 1) if base else float("nan")
    )
    return out


def llm_objective_space_data(
    runs: list[LLMRun], optima: dict[str, float] | None, optima_path: Path | None = None
) -> ObjectiveSpaceData:
    """Held-out (eval_sft, eval_dpo) paths of the lowest seed of every (rule, λ); the ideal
    point when optima are known. No exact Pareto front exists for a language model."""
    records = []
    for rule in RULE_NAMES:
        for lam in sorted({r.lam for r in runs if r.rule == rule}):
            run = min((r for r in runs if r.rule == rule and r.lam == lam), key=lambda r: r.seed)
            path = run.evals
            records.append(
                RunRecord(
                    lam, run.split or (0, 0), rule, run.seed, {}, run.train_seconds, 0.0, 0.0, path
                )  # fmt: skip
            )
    first = min(runs, key=lambda r: (r.evals[0, 0], str(r.path)))
    raw = "" if optima else " (raw: no optima.json)"
    where = f"optima from {optima_path}" if optima_path else "no optima.json: ideal point unknown"
    return ObjectiveSpaceData(
        records,
        np.zeros((0, 3)),
        (optima["sft"], optima["dpo"]) if optima else None,
        (float(first.evals[0, 1]), float(first.evals[0, 2])),
        f"{len(runs)} runs; held-out losses; {where}",
        xlabel="held-out SFT loss" + raw,
        ylabel="held-out DPO loss" + raw,
    )
