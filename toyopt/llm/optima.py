"""Estimates of the single-objective optima f*_sft and f*_dpo that MAXRIGHT needs.

Runs the trainer twice with the same config, once on SFT only (``sequential-sft-dpo`` with the
switch at the end of the budget) and once on DPO only, into ``OUT/optima-sft`` and
``OUT/optima-dpo``. f*_k is estimated as the mean training loss of objective k over the last 10 %
of its run's steps — the quantity (a batch loss) that MAXRIGHT compares with f*_k — and
``eval_k`` is the run's final held-out value (for optimality gaps on the eval sets).
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np

from toyopt.llm.checkpoint import write_json
from toyopt.llm.config import TrainConfig
from toyopt.llm.rundir import claim
from toyopt.llm.train import run_or_reuse

SINGLE = {"sft": "sequential-sft-dpo", "dpo": "sequential-dpo-sft"}


def estimate(cfg: TrainConfig, out: Path, log=print) -> dict:
    """Run both single-objective trainings and write ``out/optima.json``; returns its content."""
    owned = claim(str(out), "optima", resume=cfg.resume, overwrite=cfg.overwrite, inputs=cfg)
    result: dict = {}
    for k, rule in SINGLE.items():
        single = dataclasses.replace(
            cfg, rule=rule, switch=cfg.steps, output_dir=str(out / f"optima-{k}"), optima=""
        )
        run_dir = run_or_reuse(single, log=log)
        rows = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
        losses = [r[f"loss_{k}"] for r in rows if f"loss_{k}" in r]
        tail = losses[-max(1, len(losses) // 10) :]
        result[k] = float(np.mean(tail))
        result[f"eval_{k}"] = [r for r in rows if "eval_sft" in r][-1][f"eval_{k}"]
    result["estimated_from"] = {
        "steps": cfg.steps,
        "model": cfg.model,
        "runs": [f"optima-{k}" for k in SINGLE],
    }
    write_json(out / "optima.json", result)
    owned.release()
    return result
