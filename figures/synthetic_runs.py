"""Write synthetic LLM run directories in the trainer's documented format, with known final
losses and costs: for tests of the reader and the LLM figures, and to demo them without
training. The numbers are made up (stated below), not measurements."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from figures.data import LAMS, SPLITS
from toyopt.files import write_text

OPTIMA = {"sft": 1.0, "dpo": 0.5}
START = (2.0, 0.7)
STEP_SECONDS = {"sft": 0.010, "dpo": 0.020}  # a DPO step scores two responses: twice the cost
MEMORY = {"sequential": 1.0e9, "alright": 1.0e9, "maxright": 1.02e9, "mix": 1.3e9}


def final_point(rule: str, lam: float) -> tuple[float, float]:
    """Made-up final held-out (eval_sft, eval_dpo): sequential DPO→SFT ends at the SFT optimum
    with the DPO gap it forgot; joint rules end on the front gap_sft·gap_dpo = 0.01, further
    along it as λ grows."""
    if rule.startswith("sequential"):
        return OPTIMA["sft"] + 0.01, OPTIMA["dpo"] + 0.15
    gap_dpo = 0.1 * (1 - lam) + 0.01
    return OPTIMA["sft"] + 0.01 / gap_dpo, OPTIMA["dpo"] + gap_dpo


def write_run(
    run_dir: Path, rule: str, lam: float, steps: int, seed: int, switch: int | None
) -> None:
    """One run directory: config.json and metrics.jsonl with an evaluation every steps/6."""
    run_dir.mkdir(parents=True, exist_ok=True)
    cfg = {"rule": rule, "lam": lam, "steps": steps, "seed": seed, "switch": switch}
    write_text(run_dir / "config.json", json.dumps(cfg) + "\n")
    end = np.array(final_point(rule, lam))
    family = "sequential" if rule.startswith("sequential") else rule
    rows = []
    for t in range(steps):
        if rule.startswith("sequential"):
            first, second = rule.split("-")[1:]
            objective = first if t < switch else second
        elif rule == "mix":
            objective = "mix"
        else:  # alternate by λ: a deterministic stand-in for the coin / the gap comparison
            objective = "dpo" if (t * lam) % 1 + lam >= 1 else "sft"
        on = ("sft", "dpo") if objective == "mix" else (objective,)
        row = {"step": t, "objective": objective, "wall_time": 0.01 * (t + 1)}
        row.update({f"loss_{k}": 1.0 for k in on})
        row["step_seconds"] = sum(STEP_SECONDS[k] for k in on)
        rows.append(row)
        if (t + 1) % (steps // 6) == 0 or t == 0:
            s = t + 1 if t else 0
            point = np.array(START) + (end - START) * (1 - np.exp(-4 * s / steps)) / (
                1 - np.exp(-4)
            )
            rows.append({"step": s, "eval_sft": point[0], "eval_dpo": point[1],
                         "wall_time": 0.01 * (t + 1), "peak_rss_bytes": MEMORY[family]})  # fmt: skip
    write_text(run_dir / "metrics.jsonl", "".join(json.dumps(r) + "\n" for r in rows))


def write_grid(root: Path, steps: int = 60, seeds: int = 1, optima: bool = True) -> Path:
    """The paper's grid: per λ the paired DPO-first sequential split and the three joint rules."""
    root = Path(root)
    for lam, split in zip(LAMS, SPLITS):
        switch = split[0] * steps // 6
        for seed in range(seeds):
            write_run(root / f"seq-{lam}-s{seed}", "sequential-dpo-sft", lam, steps, seed, switch)
            for rule in ("alright", "maxright", "mix"):
                write_run(root / f"{rule}-{lam}-s{seed}", rule, lam, steps, seed, None)
    if optima:
        write_text(root / "optima.json", json.dumps(OPTIMA) + "\n")
    return root
