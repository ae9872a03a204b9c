"""The K = 3 trade-off on the tiny model: three data sources, two SFT styles that conflict on the
first response token (``copy``: the bare copy; ``ok``: "OK. " then the copy, from
``make-data --sft-preamble OK.``) and one preference set (``prefs``, sigmoid DPO: "Sure! ..."
preferred to the bare copy), trained with sequential, ALRIGHT, MAXRIGHT and Mix at the weight
vectors of the toy figure (figures/k3_tradeoff.py), plus each source alone (the optima MAXRIGHT
needs, and the corners of the trade-off).

Resumable run by run (killed, the same command continues; finished runs are kept). Writes
``RESULTS/finals.csv`` (each run's final held-out losses, the sources alone included), from which
``python -m figures --only k3 --k3-results RESULTS`` draws the figure and ``--report RESULTS``
prints the table, without retraining::

    python -m benchmarks.k3_tiny --out runs/k3-tiny --results docs/k3-tiny
    python -m benchmarks.k3_tiny --report docs/k3-tiny
"""

from __future__ import annotations

import argparse
import csv
import dataclasses
import io
import json
from pathlib import Path

from figures.k3_tradeoff import RULES, WEIGHTS
from toyopt import files
from toyopt.llm.config import TrainConfig
from toyopt.llm.optima import estimate
from toyopt.llm.study import parse_seeds
from toyopt.llm.synthetic import make_data
from toyopt.llm.train import run_or_reuse

NAMES = ("copy", "ok", "prefs")
FIELDS = ("rule", *(f"w_{k}" for k in NAMES), *(f"eval_{k}" for k in NAMES), "seed", "steps")


def base_config(data: Path, steps: int, seed: int) -> TrainConfig:
    """Every run's config: the trainer's defaults on the tiny model, three sources."""
    plain = make_data(data / "plain", root=data.parent)
    ok = make_data(data / "ok", seed=1, root=data.parent, sft_preamble="OK.")
    sources = {"copy": {"kind": "sft", "data": str(plain["sft_train"])},
               "ok": {"kind": "sft", "data": str(ok["sft_train"])},
               "prefs": {"kind": "sigmoid", "data": str(plain["pref_train"])}}  # fmt: skip
    return TrainConfig(objectives=sources, weights=dict.fromkeys(NAMES, 1 / 3), rule="mix",
                       steps=steps, seed=seed, eval_every=steps, save_every=steps, threads=1,
                       progress=False, resume=True)  # fmt: skip


def label(weights: tuple[float, ...]) -> str:
    return "-".join(f"{w:.2f}" for w in weights)


def row(rule: str, weights: dict[str, float], final: dict, seed: int, steps: int) -> dict:
    """A line of finals.csv: the run's rule, weights and final held-out losses."""
    return {"rule": rule, **{f"w_{k}": weights[k] for k in NAMES},
            **{f"eval_{k}": final[f"eval_{k}"] for k in NAMES}, "seed": seed,
            "steps": steps}  # fmt: skip


def train_seed(out: Path, data: Path, steps: int, seed: int) -> list[dict]:
    """Each source alone, then every rule at every weight vector, with one training seed."""
    base = base_config(data, steps, seed)
    estimate(base, out / "optima", log=print)
    rows = []
    for k in NAMES:  # each source alone: the corners of the trade-off
        final = json.loads((out / "optima" / f"optima-{k}" / "summary.json").read_text())
        rows.append(row("alone", {j: float(j == k) for j in NAMES}, final["final"], seed, steps))
    for w in WEIGHTS:
        weights = dict(zip(NAMES, w))
        for rule in RULES:
            cfg = dataclasses.replace(base, rule=rule, weights=weights,
                                      optima=str(out / "optima" / "optima.json"),
                                      output_dir=str(out / f"{rule}-{label(w)}"))  # fmt: skip
            final = json.loads((run_or_reuse(cfg, log=print) / "summary.json").read_text())
            rows.append(row(rule, weights, final["final"], seed, steps))
            evals = ", ".join(f"{k} {rows[-1][f'eval_{k}']:.3f}" for k in NAMES)
            print(f"seed {seed} {rule:<10} {label(w)}: {evals}")
    return rows


def report(results: Path) -> str:
    """A Markdown table per weight vector and rule, over the seeds: the mean held-out losses,
    f_λ = Σ_k λ_k f_k ÷ Mix's, and the Chebyshev gap max_k λ_k (f_k − f*_k) ÷ the smallest of the
    rules' (f*_k: the held-out loss of source k trained alone with the same seed), each as the
    range over seeds."""
    with open(results / "finals.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    seeds = sorted({r["seed"] for r in rows})
    star = {s: {k: float(r[f"eval_{k}"]) for r in rows if r["seed"] == s and r["rule"] == "alone"
                for k in NAMES if float(r[f"w_{k}"]) == 1.0} for s in seeds}  # fmt: skip
    runs = [r for r in rows if r["rule"] != "alone"]
    head = f"| weights λ ({', '.join(NAMES)}) | rule | " + " | ".join(NAMES)
    out = [head + " | f_λ ÷ Mix | Chebyshev gap ÷ smallest |", "|---" * (len(NAMES) + 4) + "|"]
    for w in dict.fromkeys(tuple(float(r[f"w_{k}"]) for k in NAMES) for r in runs):
        f_lam, cheb, losses = {}, {}, {}
        for s in seeds:
            group = [r for r in runs if r["seed"] == s and weights_of(r) == w]
            f = {r["rule"]: sum(x * float(r[f"eval_{k}"]) for x, k in zip(w, NAMES)) for r in group}
            c = {r["rule"]: max(x * (float(r[f"eval_{k}"]) - star[s][k]) for x, k in zip(w, NAMES))
                 for r in group}  # fmt: skip
            for r in group:
                f_lam.setdefault(r["rule"], []).append(f[r["rule"]] / f["mix"])
                cheb.setdefault(r["rule"], []).append(c[r["rule"]] / min(c.values()))
                losses.setdefault(r["rule"], []).append([float(r[f"eval_{k}"]) for k in NAMES])
        for rule in RULES:
            mean = [sum(v) / len(v) for v in zip(*losses[rule])]
            out.append(f"| ({', '.join(f'{x:.2g}' for x in w)}) | {rule} | "
                       + " | ".join(f"{m:.3f}" for m in mean)
                       + f" | {spread(f_lam[rule])} | {spread(cheb[rule])} |")  # fmt: skip
    return "\n".join(out) + f"\n\n{len(seeds)} seeds ({', '.join(seeds)}); ranges over seeds.\n"


def weights_of(r: dict) -> tuple[float, ...]:
    return tuple(float(r[f"w_{k}"]) for k in NAMES)


def spread(values: list[float]) -> str:
    lo, hi = min(values), max(values)
    return f"{lo:.2f}" if round(lo, 2) == round(hi, 2) else f"{lo:.2f}–{hi:.2f}"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.k3_tiny", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)  # fmt: skip
    p.add_argument("--out", type=Path, default=Path("runs/k3-tiny"), help="run directories")
    p.add_argument("--results", type=Path, default=None, help="where finals.csv goes (default OUT)")
    p.add_argument("--steps", type=int, default=400, help="optimizer steps of every run")
    p.add_argument("--seeds", default="0,1,2", help="training seeds, a comma list")
    p.add_argument(
        "--report",
        type=Path,
        default=None,
        help="print the table of RESULTS (finals.csv) instead of training",
    )
    args = p.parse_args(argv)
    if args.report:
        print(report(args.report), end="")
        return 0
    results = args.results or args.out
    rows = []
    for seed in parse_seeds(args.seeds):
        rows += train_seed(args.out / f"seed-{seed}", args.out / "data", args.steps, seed)
    results.mkdir(parents=True, exist_ok=True)
    text = io.StringIO()
    writer = csv.DictWriter(text, FIELDS, lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    files.write_text(results / "finals.csv", text.getvalue(), root=results)
    print(f"{results / 'finals.csv'}: {len(rows)} runs")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
