"""The K = 3 trade-off on the tiny model: three data sources, two SFT styles that conflict on the
first response token (``copy``: the bare copy; ``ok``: "OK. " then the copy, from
``make-data --sft-preamble OK.``) and one preference set (``prefs``, sigmoid DPO: "Sure! ..."
preferred to the bare copy), trained with sequential, ALRIGHT, MAXRIGHT and Mix at the weight
vectors of the toy figure (figures/k3_tradeoff.py), plus each source alone (the optima MAXRIGHT
needs, and the corners of the trade-off).

Resumable run by run (killed, the same command continues; finished runs are kept). Writes
``RESULTS/finals.csv`` (each run's final held-out losses) and ``RESULTS/optima.json``, from which
``python -m figures --only k3 --k3-results RESULTS`` draws the figure without retraining::

    python -m benchmarks.k3_tiny --out runs/k3-tiny --results docs/k3-tiny
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
from toyopt.llm.synthetic import make_data
from toyopt.llm.train import run_or_reuse

NAMES = ("copy", "ok", "prefs")
FIELDS = ("rule", *(f"w_{k}" for k in NAMES), *(f"eval_{k}" for k in NAMES), "seed", "steps")


def base_config(out: Path, steps: int, seed: int) -> TrainConfig:
    """Every run's config: the trainer's defaults on the tiny model, three sources."""
    plain = make_data(out / "data" / "plain", root=out)
    ok = make_data(out / "data" / "ok", seed=1, root=out, sft_preamble="OK.")
    sources = {"copy": {"kind": "sft", "data": str(plain["sft_train"])},
               "ok": {"kind": "sft", "data": str(ok["sft_train"])},
               "prefs": {"kind": "sigmoid", "data": str(plain["pref_train"])}}  # fmt: skip
    return TrainConfig(objectives=sources, weights=dict.fromkeys(NAMES, 1 / 3), rule="mix",
                       steps=steps, seed=seed, eval_every=steps, save_every=steps, threads=1,
                       progress=False, resume=True)  # fmt: skip


def label(weights: tuple[float, ...]) -> str:
    return "-".join(f"{w:.2f}" for w in weights)


def row(rule: str, weights: dict[str, float], final: dict, args) -> dict:
    """A line of finals.csv: the run's rule, weights and final held-out losses."""
    return {"rule": rule, **{f"w_{k}": weights[k] for k in NAMES},
            **{f"eval_{k}": final[f"eval_{k}"] for k in NAMES}, "seed": args.seed,
            "steps": args.steps}  # fmt: skip


def report(results: Path) -> str:
    """A Markdown table per run: f_λ = Σ λ_k f_k and the Chebyshev gap max_k λ_k (f_k − f*_k) of
    the held-out losses (f*_k: the held-out loss of source k trained alone), each rule's ratio to
    Mix's f_λ and to the smallest Chebyshev gap at the same weights."""
    with open(results / "finals.csv", newline="") as f:
        rows = [r for r in csv.DictReader(f) if r["rule"] != "alone"]
    star = json.loads((results / "optima.json").read_text())
    out = [
        "| weights λ ("
        + ", ".join(NAMES)
        + ") | rule | "
        + " | ".join(NAMES)
        + " | f_λ | f_λ ÷ Mix | Chebyshev gap | ÷ smallest |",
        "|---" * (len(NAMES) + 6) + "|",
    ]
    for w in dict.fromkeys(tuple(float(r[f"w_{k}"]) for k in NAMES) for r in rows):
        group = [r for r in rows if tuple(float(r[f"w_{k}"]) for k in NAMES) == w]
        f_lam = {r["rule"]: sum(x * float(r[f"eval_{k}"]) for x, k in zip(w, NAMES)) for r in group}
        cheb = {r["rule"]: max(x * (float(r[f"eval_{k}"]) - star[f"eval_{k}"])
                               for x, k in zip(w, NAMES)) for r in group}  # fmt: skip
        for r in group:
            rule = r["rule"]
            out.append(f"| ({', '.join(f'{x:.2g}' for x in w)}) | {rule} | "
                       + " | ".join(f"{float(r[f'eval_{k}']):.3f}" for k in NAMES)
                       + f" | {f_lam[rule]:.3f} | {f_lam[rule] / f_lam['mix']:.2f} |"
                       f" {cheb[rule]:.3f} | {cheb[rule] / min(cheb.values()):.2f} |")  # fmt: skip
    return "\n".join(out) + "\n"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.k3_tiny", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)  # fmt: skip
    p.add_argument("--out", type=Path, default=Path("runs/k3-tiny"), help="run directories")
    p.add_argument("--results", type=Path, default=None, help="where finals.csv goes (default OUT)")
    p.add_argument("--steps", type=int, default=400, help="optimizer steps of every run")
    p.add_argument("--seed", type=int, default=0, help="training seed of every run")
    p.add_argument(
        "--report",
        type=Path,
        default=None,
        help="print the table of RESULTS (finals.csv, optima.json) instead of training",
    )
    args = p.parse_args(argv)
    if args.report:
        print(report(args.report), end="")
        return 0
    results = args.results or args.out
    base = base_config(args.out, args.steps, args.seed)
    optima = estimate(base, args.out / "optima", log=print)
    optima_file = args.out / "optima" / "optima.json"
    rows = []
    for k in NAMES:  # each source alone: the corners of the trade-off
        final = json.loads((args.out / "optima" / f"optima-{k}" / "summary.json").read_text())
        rows.append(row("alone", {j: float(j == k) for j in NAMES}, final["final"], args))
    for w in WEIGHTS:
        weights = dict(zip(NAMES, w))
        for rule in RULES:
            cfg = dataclasses.replace(base, rule=rule, weights=weights, optima=str(optima_file),
                                      output_dir=str(args.out / f"{rule}-{label(w)}"))  # fmt: skip
            done = run_or_reuse(cfg, log=print)
            rows.append(
                row(rule, weights, json.loads((done / "summary.json").read_text())["final"], args)
            )
            print(
                f"{rule:<10} {label(w)}: "
                + ", ".join(f"{k} {rows[-1][f'eval_{k}']:.3f}" for k in NAMES)
            )
    results.mkdir(parents=True, exist_ok=True)
    text = io.StringIO()
    writer = csv.DictWriter(text, FIELDS, lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    files.write_text(results / "finals.csv", text.getvalue(), root=results)
    files.write_text(results / "optima.json", optima_file.read_text(), root=results)
    print(f"{results / 'finals.csv'}: {len(rows)} runs; optima {optima}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
