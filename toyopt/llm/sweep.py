"""Every rule (and λ) on the same model, data and budget: the comparison the paper draws.

Layout of ``output_dir``: ``optima.json`` and ``optima/`` (the single-objective runs, unless
``--optima`` is given; kept one level down so that a reader of the run directories directly
under ``output_dir`` does not take them for sequential runs), one run directory ``{rule}-lam{λ}/``
per pair (sequential runs at λ give DPO round(λ·steps) steps, see :func:`paired_switch`),
and ``sweep.json``, the table printed at the end (``rows``) with its provenance record
(``provenance``: commit, package versions, machine, threads, date; :mod:`toyopt.provenance`):
final held-out values, their gaps to the single-objective runs' final held-out values, the
ideal distance sqrt(gap_sft² + gap_dpo²) (the paper's headline metric), and seconds per step.
"""

from __future__ import annotations

import dataclasses
import json
import math
from pathlib import Path

from toyopt.llm.checkpoint import write_json
from toyopt.llm.config import TrainConfig
from toyopt.llm.optima import estimate
from toyopt.llm.rundir import check_overwrite, claim
from toyopt.llm.train import run_or_reuse
from toyopt.provenance import line, provenance
from toyopt.rules import RULE_NAMES


def parse_lams(text: str) -> list[float]:
    """``--lams``: a comma list of distinct λ values in [0, 1] (checked before any training)."""
    items = [x.strip() for x in text.split(",")]
    if not text.strip() or not all(items):
        raise ValueError(f"--lams {text!r}: give a comma list of values in [0, 1], e.g. 0.25,0.5")
    try:
        lams = [float(x) for x in items]
    except ValueError as err:
        raise ValueError(f"--lams {text!r}: {err}") from None
    for lam in lams:
        if not 0.0 <= lam <= 1.0:  # also refuses nan
            raise ValueError(f"--lams {text!r}: {lam} is outside [0, 1]")
    if len(set(lams)) < len(lams):
        raise ValueError(f"--lams {text!r}: a value is repeated")
    return lams


def parse_rules(text: str) -> list[str]:
    """``--rules``: a comma list of distinct rule names."""
    rules = [x.strip() for x in text.split(",")]
    if not text.strip() or not all(rules):
        raise ValueError(f"--rules {text!r}: give a comma list of {', '.join(RULE_NAMES)}")
    for r in rules:
        if r not in RULE_NAMES:
            raise ValueError(f"unknown rule {r!r}; choose from {', '.join(RULE_NAMES)}")
    if len(set(rules)) < len(rules):
        raise ValueError(f"--rules {text!r}: a rule is repeated")
    return rules


def paired_switch(rule: str, lam: float, steps: int) -> int | None:
    """The paper pairs λ with a sequential split: the DPO stage gets round(λ·steps) steps."""
    if rule == "sequential-dpo-sft":
        return round(lam * steps)
    if rule == "sequential-sft-dpo":
        return steps - round(lam * steps)
    return None


def overwrite_targets(cfg: TrainConfig, lams, rules) -> list[tuple[Path, str]]:
    """(directory, kind) of everything a sweep into ``cfg.output_dir`` writes."""
    out = Path(cfg.output_dir)
    found = [(out, "sweep")]
    if not cfg.optima:
        found += [(out / "optima", "optima")]
        found += [(out / "optima" / f"optima-{k}", "run") for k in ("sft", "dpo")]
    found += [(out / f"{r}-lam{lam:g}", "run") for lam in lams for r in rules]
    return found


def sweep(
    cfg: TrainConfig, lams: list[float], rules: list[str], paired: bool = True, log=print
) -> dict:
    """Train each (rule, λ); returns ``sweep.json``'s content: the table ``rows`` and the
    ``provenance`` record of the machine and code that produced them.

    With ``paired`` the sequential run at λ spends round(λ·steps) steps on DPO (the paper's
    pairing of λ with a split, e.g. λ = 0.25 ↔ T_dpo:T_sft = 1:3), else ``cfg.switch``."""
    if cfg.overwrite:  # every directory it would overwrite, checked before deleting any
        check_overwrite(cfg, overwrite_targets(cfg, lams, rules))
    owned = claim(cfg.output_dir, "sweep", resume=cfg.resume, overwrite=cfg.overwrite, inputs=cfg)
    out = owned.path
    optima_path = cfg.optima
    optima = None
    if not optima_path:  # the single-objective runs also give the gaps in the table
        optima = estimate(
            dataclasses.replace(cfg, output_dir=str(out / "optima")), out / "optima", log=log
        )
        optima_path = str(out / "optima.json")
        write_json(out / "optima.json", optima)
    elif optima_path and optima_path != "zero":
        optima = json.loads(Path(optima_path).read_text())
    table = []
    for lam in lams:
        for rule in rules:
            run_cfg = dataclasses.replace(
                cfg,
                rule=rule,
                lam=lam,
                switch=paired_switch(rule, lam, cfg.steps) if paired else cfg.switch,
                optima=optima_path,
                output_dir=str(out / f"{rule}-lam{lam:g}"),
            )
            summary = json.loads((run_or_reuse(run_cfg, log=log) / "summary.json").read_text())
            table.append(row(rule, lam, summary, optima))
    result = {"rows": table, "provenance": provenance()}  # torch's threads, as the runs set
    write_json(out / "sweep.json", result)
    owned.release()
    return result


def row(rule: str, lam: float, summary: dict, optima: dict | None) -> dict:
    final = summary["final"]
    out = {"rule": rule, "lam": lam, "eval_sft": final["eval_sft"], "eval_dpo": final["eval_dpo"]}
    if optima and "eval_sft" in optima:
        gaps = [final[f"eval_{k}"] - optima[f"eval_{k}"] for k in ("sft", "dpo")]
        out.update(gap_sft=gaps[0], gap_dpo=gaps[1], ideal_distance=math.hypot(*gaps))
    out["seconds_per_step"] = summary["train_seconds_per_step"]
    return out


def format_table(result: dict) -> str:
    """The printed table, with the provenance line under it."""
    table = result["rows"]
    cols = [
        c
        for c in (
            "rule",
            "lam",
            "eval_sft",
            "eval_dpo",
            "gap_sft",
            "gap_dpo",
            "ideal_distance",
            "seconds_per_step",
        )
        if c in table[0]
    ]
    lines = [" | ".join(cols)]
    for r in table:
        lines.append(
            " | ".join(f"{r[c]:.4g}" if isinstance(r[c], float) else str(r[c]) for c in cols)
        )
    return "\n".join(lines) + f"\n\nprovenance: {line(result['provenance'])}"
