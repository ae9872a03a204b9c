"""Reader of language-model run directories (the trainer ``python -m toyopt.llm``) and the
tables the LLM figures are drawn from. No plotting here.

A run directory holds ``config.json`` (the resolved config; this reader needs "rule", "lam",
"steps", "seed", and "switch" for sequential rules) and ``metrics.jsonl``, one JSON object per
line: training rows have "step", "objective" ("sft" | "dpo" | "mix"), "loss_sft" and/or
"loss_dpo", "wall_time" (and, from this project's trainer, "step_seconds": training time of the
step alone); evaluation rows have "step", "eval_sft", "eval_dpo" and optionally a peak-memory
field ("peak_memory_bytes", "peak_rss_bytes" or "peak_cuda_allocated_bytes").

Optima for the gaps: ``optima.json`` {"sft": f*, "dpo": f*}, given explicitly or found in the
directory of run directories; its "eval_sft"/"eval_dpo" entries (held-out values of the
single-objective runs, written by ``python -m toyopt.llm optima``) are preferred when present,
since the figures plot held-out losses. Without optima the figures show raw losses and say so.

Pairing: runs are grouped by their config "lam". A sequential rule ignores λ, so the sequential
run paired with λ must be launched with ``--lam λ`` (as the paper pairs λ with a split).
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from figures.data import ObjectiveSpaceData, RunRecord
from toyopt.rules import OBJECTIVES, RULE_NAMES

MEMORY_FIELDS = ("peak_memory_bytes", "peak_cuda_allocated_bytes", "peak_rss_bytes")


class RunFormatError(ValueError):
    """A run directory or optima file that does not follow the documented format."""


@dataclass
class LLMRun:
    path: Path
    rule: str
    lam: float
    steps: int
    seed: int
    switch: int | None
    evals: np.ndarray  # (n, 3): step, eval_sft, eval_dpo, sorted by step
    train_seconds: float  # Σ step_seconds when logged, else the last training row's wall_time
    grad_evals: dict[str, int]  # training rows that computed each objective's loss
    train_steps: int
    peak_memory: float | None  # bytes, the largest value logged

    @property
    def split(self) -> tuple[int, int] | None:
        """(T_first, T_second) of a sequential run, in sixths of the budget when exact (as the
        paper's splits), else in steps; None for joint rules."""
        if not self.rule.startswith("sequential") or self.switch is None:
            return None
        sixths = 6 * self.switch / self.steps
        if sixths == round(sixths):
            return round(sixths), 6 - round(sixths)
        return self.switch, self.steps - self.switch


def _number(value, where: str, field: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise RunFormatError(f"{where}: field {field!r} must be a finite number, got {value!r}")
    return float(value)


def read_config(path: Path) -> dict:
    try:
        cfg = json.loads(path.read_text())
    except FileNotFoundError:
        raise RunFormatError(f"{path}: missing (every run directory needs config.json)") from None
    except json.JSONDecodeError as e:
        raise RunFormatError(f"{path}:{e.lineno}: not valid JSON ({e.msg})") from None
    if not isinstance(cfg, dict):
        raise RunFormatError(f"{path}: expected a JSON object")
    for field in ("rule", "lam", "steps", "seed"):
        if field not in cfg:
            raise RunFormatError(f"{path}: missing field {field!r}")
    if cfg["rule"] not in RULE_NAMES:
        raise RunFormatError(
            f"{path}: field 'rule' is {cfg['rule']!r}, not one of {', '.join(RULE_NAMES)}"
        )
    lam = _number(cfg["lam"], str(path), "lam")
    if not 0 <= lam <= 1:
        raise RunFormatError(f"{path}: field 'lam' must lie in [0, 1], got {lam}")
    for field in ("steps", "seed"):
        if isinstance(cfg[field], bool) or not isinstance(cfg[field], int):
            raise RunFormatError(f"{path}: field {field!r} must be an integer, got {cfg[field]!r}")
    if cfg["steps"] <= 0:
        raise RunFormatError(f"{path}: field 'steps' must be positive, got {cfg['steps']}")
    return cfg


def read_metrics(path: Path) -> tuple[list[dict], list[dict]]:
    """(training rows, evaluation rows), each validated; errors name the file and line."""
    if not path.exists():
        raise RunFormatError(f"{path}: missing (every run directory needs metrics.jsonl)")
    train, evals = [], []
    with open(path, encoding="utf-8") as f:
        for n, line in enumerate(f, start=1):
            if not line.strip():
                continue
            where = f"{path}:{n}"
            try:
                row = json.loads(line)
            except json.JSONDecodeError as e:
                raise RunFormatError(f"{where}: not valid JSON ({e.msg})") from None
            if not isinstance(row, dict):
                raise RunFormatError(f"{where}: expected a JSON object")
            step = row.get("step")
            if isinstance(step, bool) or not isinstance(step, int) or step < 0:
                raise RunFormatError(
                    f"{where}: field 'step' must be a non-negative integer, got {step!r}"
                )
            if "eval_sft" in row or "eval_dpo" in row:
                for k in OBJECTIVES:
                    _number(row.get(f"eval_{k}"), where, f"eval_{k}")
                evals.append(row)
            elif "objective" in row:
                if row["objective"] not in ("sft", "dpo", "mix"):
                    raise RunFormatError(
                        f"{where}: field 'objective' must be sft, dpo or mix, got {row['objective']!r}"
                    )
                losses = [k for k in OBJECTIVES if f"loss_{k}" in row]
                if not losses:
                    raise RunFormatError(f"{where}: a training row needs loss_sft and/or loss_dpo")
                for k in losses:
                    _number(row[f"loss_{k}"], where, f"loss_{k}")
                _number(row.get("wall_time"), where, "wall_time")
                train.append(row)
            else:
                raise RunFormatError(
                    f"{where}: neither a training row (objective, loss_*) nor an evaluation row (eval_sft, eval_dpo)"
                )
    if not evals:
        raise RunFormatError(f"{path}: no evaluation rows (eval_sft, eval_dpo): nothing to plot")
    return train, evals


def read_run(run_dir: Path) -> LLMRun:
    run_dir = Path(run_dir)
    cfg = read_config(run_dir / "config.json")
    train, evals = read_metrics(run_dir / "metrics.jsonl")
    table = np.array(sorted((r["step"], r["eval_sft"], r["eval_dpo"]) for r in evals), dtype=float)
    if all("step_seconds" in r for r in train) and train:
        seconds = float(sum(r["step_seconds"] for r in train))
    else:
        seconds = float(train[-1]["wall_time"]) if train else float("nan")
    memory = [float(r[k]) for r in evals + train for k in MEMORY_FIELDS if k in r]
    return LLMRun(
        run_dir,
        cfg["rule"],
        float(cfg["lam"]),
        cfg["steps"],
        cfg["seed"],
        cfg.get("switch")
        if cfg.get("switch") is not None
        else (cfg["steps"] // 2 if cfg["rule"].startswith("sequential") else None),
        table,
        seconds,
        {k: sum(f"loss_{k}" in r for r in train) for k in OBJECTIVES},
        len(train),
        max(memory) if memory else None,
    )


def read_runs(root: Path) -> list[LLMRun]:
    """Every run directory (a folder with config.json) directly under ``root``, by name."""
    root = Path(root)
    if not root.is_dir():
        raise RunFormatError(f"{root}: not a directory of run directories")
    dirs = sorted(d for d in root.iterdir() if (d / "config.json").exists())
    if not dirs:
        raise RunFormatError(f"{root}: no run directories (folders with config.json) inside")
    return [read_run(d) for d in dirs]


def read_optima(path: Path) -> dict[str, float]:
    """f*_sft and f*_dpo for held-out gaps: "eval_k" when present, else "k"."""
    path = Path(path)
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        raise RunFormatError(f"{path}: no such optima file") from None
    except json.JSONDecodeError as e:
        raise RunFormatError(f"{path}:{e.lineno}: not valid JSON ({e.msg})") from None
    if not isinstance(data, dict):
        raise RunFormatError(f"{path}: expected a JSON object {{'sft': f, 'dpo': f}}")
    out = {}
    for k in OBJECTIVES:
        key = f"eval_{k}" if f"eval_{k}" in data else k
        if key not in data:
            raise RunFormatError(f"{path}: missing field {k!r}")
        out[k] = _number(data[key], str(path), key)
    return out


def find_optima(
    root: Path, explicit: Path | None = None
) -> tuple[dict[str, float] | None, Path | None]:
    """The explicit optima file, else ``root``/optima.json, else (None, None)."""
    if explicit is not None:
        return read_optima(explicit), Path(explicit)
    found = Path(root) / "optima.json"
    return (read_optima(found), found) if found.exists() else (None, None)


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
    ref_grads = per_step_grads(base) if base else float("nan")
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
