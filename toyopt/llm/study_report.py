"""The study's report, from its committed CSV files alone (:mod:`toyopt.llm.study`): the table
of every rule at every λ (mean ± standard deviation over training seeds) and one verdict per
paper claim, each computed, with the numbers it rests on.

Claims, as the language-model checks of ``proofs_check`` (L1–L3) state them for the tiny model:

- **forgetting**: a sequential run's second stage undoes at least half of what its first stage
  gained on the first objective (held-out): (h₁(T) − h₁(switch)) / (h₁(0) − h₁(switch)) ≥ ½;
- **ALRIGHT ≈ Mix**: f_mix,λ(ALRIGHT) ≤ 1.15·f_mix,λ(Mix) + 0.05, per seed;
- **joint closer to the ideal point**: each joint rule's mean ideal distance is below the smaller
  of the two sequential orders' mean ideal distances;
- **MAXRIGHT's target**: MAXRIGHT's mean Chebyshev gap is the smallest of the five rules, or
  within 10 % of the smallest.
"""

from __future__ import annotations

import re
import statistics
from pathlib import Path

from toyopt.llm.study import derive, ideal_point, read_csv
from toyopt.rules import RULE_NAMES

MARK = "study:{}"
JOINT = ("alright", "maxright", "mix")
SEQUENTIAL = ("sequential-sft-dpo", "sequential-dpo-sft")
COLUMNS = ("eval_sft", "eval_dpo", "ideal_distance", "f_mix", "chebyshev_gap")


def load(results: Path) -> tuple[list[dict], list[dict], dict]:
    """(derived runs, curves, provenance) of a results directory."""
    import json

    runs, curves = read_csv(results / "runs.csv"), read_csv(results / "curves.csv")
    prov_path = results / "provenance.json"
    prov = json.loads(prov_path.read_text()) if prov_path.is_file() else {}
    return derive(runs, curves), curves, prov


def _cell(values: list[float]) -> str:
    if len(values) == 1:
        return f"{values[0]:.3f}"
    return f"{statistics.mean(values):.3f} ± {statistics.stdev(values):.3f}"


def _group(rows: list[dict], lam, rule: str) -> list[dict]:
    return [r for r in rows if r["lam"] == lam and r["rule"] == rule]


def lams_of(rows: list[dict]) -> list[float]:
    return sorted({r["lam"] for r in rows if r["lam"] != ""})


def table(rows: list[dict]) -> str:
    """The Markdown table: a row per (λ, rule), mean ± sd over seeds, and how many converged."""
    head = ["λ", "rule", "seeds", "SFT (held-out)", "DPO (held-out)", "ideal distance",
            "f_mix,λ", "Chebyshev gap", "stopped improving"]  # fmt: skip
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for lam in lams_of(rows):
        for rule in RULE_NAMES:
            group = _group(rows, lam, rule)
            if not group:
                continue
            cells = [_cell([r[c] for r in group]) for c in COLUMNS]
            judged = [r["converged"] for r in group if r["converged"] is not None]
            done = f"{sum(judged)}/{len(judged)}" if judged else "–"
            lines.append(f"| {lam:g} | {rule} | {len(group)} | " + " | ".join(cells)
                         + f" | {done} |")  # fmt: skip
    return "\n".join(lines)


def forgetting(rows: list[dict], curves: list[dict]) -> list[str]:
    """Per sequential order and λ: the share of the first stage's held-out gain undone."""
    out = []
    for rule in SEQUENTIAL:
        first = "sft" if rule == "sequential-sft-dpo" else "dpo"
        for lam in lams_of(rows):
            shares = []
            for r in _group(rows, lam, rule):
                curve = {c["step"]: c[f"eval_{first}"] for c in curves
                         if (c["seed"], c["lam"], c["rule"]) == (r["seed"], lam, rule)}  # fmt: skip
                if r["switch"] not in curve:
                    continue  # no evaluation at the switch
                gain = curve[0] - curve[r["switch"]]
                shares.append((curve[r["steps"]] - curve[r["switch"]]) / gain if gain else 0.0)
            if shares:
                ok = all(s >= 0.5 for s in shares)
                out.append(f"{rule} λ={lam:g}: {' '.join(f'{s:.2f}' for s in shares)}"
                           f" {'✓' if ok else '✗'}")  # fmt: skip
    return out


def alright_vs_mix(rows: list[dict]) -> list[str]:
    out = []
    for lam in lams_of(rows):
        pairs = []
        for a in _group(rows, lam, "alright"):
            m = [r for r in _group(rows, lam, "mix") if r["seed"] == a["seed"]]
            if m:
                pairs.append((a["f_mix"], m[0]["f_mix"]))
        if pairs:
            ok = all(a <= 1.15 * m + 0.05 for a, m in pairs)
            shown = " ".join(f"{a:.3f}/{m:.3f}" for a, m in pairs)
            out.append(f"λ={lam:g}: ALRIGHT/Mix f_mix {shown} {'✓' if ok else '✗'}")
    return out


def _mean(rows: list[dict], lam, rule: str, col: str) -> float | None:
    group = _group(rows, lam, rule)
    return statistics.mean(r[col] for r in group) if group else None


def joint_closer(rows: list[dict]) -> list[str]:
    out = []
    for lam in lams_of(rows):
        seq = [
            d for d in (_mean(rows, lam, r, "ideal_distance") for r in SEQUENTIAL) if d is not None
        ]
        joint = {r: _mean(rows, lam, r, "ideal_distance") for r in JOINT}
        if not seq or None in joint.values():
            continue
        ok = max(joint.values()) < min(seq)
        shown = ", ".join(f"{r} {d:.3f}" for r, d in joint.items())
        out.append(f"λ={lam:g}: {shown}; best sequential {min(seq):.3f} {'✓' if ok else '✗'}")
    return out


def maxright_target(rows: list[dict]) -> list[str]:
    out = []
    for lam in lams_of(rows):
        gaps = {r: _mean(rows, lam, r, "chebyshev_gap") for r in RULE_NAMES}
        gaps = {r: g for r, g in gaps.items() if g is not None}
        if "maxright" not in gaps:
            continue
        best = min(gaps, key=gaps.get)
        ok = gaps["maxright"] <= 1.1 * gaps[best] + 1e-12
        out.append(f"λ={lam:g}: MAXRIGHT {gaps['maxright']:.3f}, smallest {best}"
                   f" {gaps[best]:.3f} {'✓' if ok else '✗'}")  # fmt: skip
    return out


def report(results: Path, table_only: bool = False) -> str:
    """The Markdown block: provenance, ideal point, table, claim verdicts (``table_only``: the
    provenance line and the table, for a page with little room, such as the README)."""
    rows, curves, prov = load(results)
    if table_only:
        from toyopt.provenance import line

        shown = table([r for r in rows if r["lam"] != ""])
        return shown + (f"\n\nProvenance: {line(prov)}." if prov else "") + "\n"
    star = ideal_point(rows)
    cfg = prov.get("config", {})
    lines = [f"Study `{results}`: model {cfg.get('model', '?')}"
             + (f" + LoRA r = {cfg.get('lora_r')}" if cfg.get("lora") else "")
             + f", {cfg.get('steps', '?')} steps of batch {cfg.get('batch_size', '?')},"
             f" lr {cfg.get('lr', '?')} ({cfg.get('schedule', '?')}), {cfg.get('precision', '?')};"
             f" seeds {sorted({r['seed'] for r in rows})}.", ""]  # fmt: skip
    if prov:
        from toyopt.provenance import line

        lines += [f"Provenance: {line(prov)}.", ""]
    lines.append("Ideal point (smallest final held-out value of each objective over all runs): "
                 + "; ".join(f"f*_{k} = {v['value']:.4f} ({v['rule']}, seed {v['seed']})"
                             for k, v in star.items()) + ".")  # fmt: skip
    lines += ["", table([r for r in rows if r["lam"] != ""]), ""]
    claims = (
        ("Forgetting (share of the first stage's gain undone, per seed; ✓ if all ≥ 0.5)",
         forgetting(rows, curves)),
        ("ALRIGHT ≈ Mix (f_mix per seed; ✓ if ALRIGHT ≤ 1.15·Mix + 0.05)", alright_vs_mix(rows)),
        ("Joint rules closer to the ideal point than either sequential order (means)",
         joint_closer(rows)),
        ("MAXRIGHT's Chebyshev gap smallest or within 10 % (means)", maxright_target(rows)),
    )  # fmt: skip
    for title, items in claims:
        lines += [f"- **{title}**: " + ("; ".join(items) if items else "no runs yet") + "."]
    return "\n".join(lines) + "\n"


def write_block(path: Path, name: str, text: str) -> None:
    """Replace the text between ``<!-- study:name -->`` and ``<!-- /study:name -->`` in ``path``."""
    start, end = f"<!-- {MARK.format(name)} -->", f"<!-- /{MARK.format(name)} -->"
    doc = path.read_text(encoding="utf-8") if path.is_file() else ""
    if start not in doc or end not in doc:
        raise ValueError(f"{path}: no {start} … {end} block to write the report into")
    pattern = re.escape(start) + ".*?" + re.escape(end)
    doc = re.sub(pattern, lambda _: f"{start}\n{text}{end}", doc, count=1, flags=re.S)
    from toyopt.files import write_text

    write_text(path, doc)  # atomic, never through a link
