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

from toyopt.rules import OBJECTIVES, RULE_NAMES
from toyopt.userinput import DuplicateKey, loads_json

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
    def finished(self) -> bool:
        """Evaluated at the end of its budget (a killed or running run is not)."""
        return bool(self.evals[-1, 0] >= self.steps)

    @property
    def split(self) -> tuple[int, int] | None:
        """(T_dpo, T_sft) of a sequential run, whichever stage came first (the figures label
        splits as T_dpo:T_sft), in sixths of the budget when exact, as the paper's splits, else
        as the reduced ratio of steps; None for joint rules."""
        if not self.rule.startswith("sequential") or self.switch is None:
            return None
        t_first, t_second = self.switch, self.steps - self.switch
        t_dpo, t_sft = (
            (t_first, t_second) if self.rule == "sequential-dpo-sft" else (t_second, t_first)
        )
        if (6 * t_dpo) % self.steps == 0:
            return 6 * t_dpo // self.steps, 6 * t_sft // self.steps
        common = math.gcd(t_dpo, t_sft) or 1
        return t_dpo // common, t_sft // common


def _number(value, where: str, field: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise RunFormatError(f"{where}: field {field!r} must be a finite number, got {value!r}")
    return float(value)


def read_json_object(path: Path, missing: str, expected: str = "a JSON object") -> dict:
    """A JSON file holding one object, or a one-line RunFormatError naming the file."""
    try:
        data = loads_json(path.read_text(), str(path))
    except DuplicateKey as e:
        raise RunFormatError(str(e)) from None
    except FileNotFoundError:
        raise RunFormatError(f"{path}: {missing}") from None
    except json.JSONDecodeError as e:
        raise RunFormatError(f"{path}:{e.lineno}: not valid JSON ({e.msg})") from None
    if not isinstance(data, dict):
        raise RunFormatError(f"{path}: expected {expected}")
    return data


def read_config(path: Path) -> dict:
    cfg = read_json_object(path, "missing (every run directory needs config.json)")
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
    if cfg.get("objectives"):
        raise RunFormatError(
            f"{run_dir}: a run with data sources {', '.join(cfg['objectives'])}, not sft and dpo:"
            " these figures draw two objectives (three sources: python -m figures --k3-results)"
        )
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
    """Every run directory (a folder with config.json) directly under ``root``, by name; or
    ``root`` itself when it is one run directory (config.json and metrics.jsonl)."""
    root = Path(root)
    if not root.is_dir():
        raise RunFormatError(f"{root}: not a directory of run directories")
    if (root / "config.json").is_file() and (root / "metrics.jsonl").is_file():
        return [read_run(root)]  # a single run directory: draw that run
    dirs = sorted(d for d in root.iterdir() if (d / "config.json").exists())
    if not dirs:
        raise RunFormatError(f"{root}: no run directories (folders with config.json) inside")
    return [read_run(d) for d in dirs]


def read_optima(path: Path) -> dict[str, float]:
    """f*_sft and f*_dpo for held-out gaps: "eval_k" when present, else "k"."""
    path = Path(path)
    data = read_json_object(path, "no such optima file", "a JSON object {'sft': f, 'dpo': f}")
    out = {}
    for k in OBJECTIVES:
        key = f"eval_{k}" if f"eval_{k}" in data else k
        if key not in data:
            raise RunFormatError(f"{path}: missing field {k!r}")
        out[k] = _number(data[key], str(path), key)
        if out[k] < 0:  # the minimum of a loss that is never negative
            raise RunFormatError(f"{path}: field {key!r} is {out[k]}, but an optimum is >= 0")
    return out


def find_optima(
    root: Path, explicit: Path | None = None
) -> tuple[dict[str, float] | None, Path | None]:
    """The explicit optima file, else ``root``/optima.json, else (None, None)."""
    if explicit is not None:
        return read_optima(explicit), Path(explicit)
    found = Path(root) / "optima.json"
    return (read_optima(found), found) if found.exists() else (None, None)
