"""Estimates of the single-objective optima f*_sft and f*_dpo (f*_k of each of K sources) that
MAXRIGHT needs.

Runs the trainer once per objective with the same config, on that objective only
(``sequential-sft-dpo`` with the switch at the end of the budget, ``sequential-dpo-sft``
likewise; for K sources Mix with all the weight on one source), into ``OUT/optima-sft`` and
``OUT/optima-dpo`` (``OUT/optima-NAME``). f*_k is estimated as the mean training loss of
objective k over the last 10 % of its run's steps — the quantity (a batch loss) that MAXRIGHT compares with f*_k — and
``eval_k`` is the run's final held-out value (for optimality gaps on the eval sets); with
``validation_rows``, ``val_k`` is its final validation value (the f* MAXRIGHT then compares with).
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np

from toyopt.llm import objectives
from toyopt.llm.checkpoint import write_json
from toyopt.llm.config import TrainConfig
from toyopt.llm.prepare import held_out_splits
from toyopt.llm.rundir import claim
from toyopt.llm.train import run_or_reuse

SINGLE = {"sft": "sequential-sft-dpo", "dpo": "sequential-dpo-sft"}


def single_objective(cfg: TrainConfig) -> dict[str, dict]:
    """{objective: the config changes that train it alone}: sft or dpo for the whole budget, or,
    for a run with K sources, Mix with all the weight on that objective (the others are then
    never computed)."""
    if not objectives.is_k(cfg):
        return {k: {"rule": rule, "switch": cfg.steps} for k, rule in SINGLE.items()}
    names = list(cfg.objectives)
    return {k: {"rule": "mix", "weights": {j: float(j == k) for j in names}, "stage_steps": None}
            for k in names}  # fmt: skip


def estimate(cfg: TrainConfig, out: Path, log=print) -> dict:
    """Run the single-objective trainings and write ``out/optima.json``; returns its content."""
    owned = claim(str(out), "optima", resume=cfg.resume, overwrite=cfg.overwrite, inputs=cfg)
    result: dict = {}
    for k, changes in single_objective(cfg).items():
        single = dataclasses.replace(cfg, **changes, output_dir=str(out / f"optima-{k}"), optima="")
        run_dir = run_or_reuse(single, log=log)
        rows = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
        losses = [r[f"loss_{k}"] for r in rows if f"loss_{k}" in r]
        tail = losses[-max(1, len(losses) // 10) :]
        result[k] = float(np.mean(tail))
        for split in held_out_splits(cfg):
            result[f"{split}_{k}"] = [r for r in rows if f"{split}_{k}" in r][-1][f"{split}_{k}"]
    result["estimated_from"] = {
        "steps": cfg.steps,
        "model": cfg.model,
        "runs": [f"optima-{k}" for k in single_objective(cfg)],
    }
    write_json(out / "optima.json", result)
    owned.release()
    return result
