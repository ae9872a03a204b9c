"""The real-model study: every rule × λ × training seed, resumable run by run, and its results
as small CSV files from which the report (table and claims) and the figures regenerate without
retraining.

Layout of ``output_dir``: ``seed-S/`` is a sweep (:mod:`toyopt.llm.sweep`) with training seed S
(the rule's coin and the data order): its single-objective runs ``optima/`` and one run per
(rule, λ). Killed at any moment, the same command continues: a finished run (summary written,
same config) is never redone (:func:`toyopt.llm.train.finished_run`), a started one resumes from
its last checkpoint.

Results (``--results``, committed): ``runs.csv`` (a row per run: final held-out values and what
the report derives from them), ``curves.csv`` (every held-out evaluation of every run, the
single-objective ones included), ``provenance.json`` (commit, versions, device, threads, date,
and the study's config). Derived quantities (:func:`derive`):

- f*_k, the ideal point: the smallest final held-out value of objective k over the study's
  single-objective runs and every other run (so every gap is ≥ 0; which run attained it is kept);
- gap_k = eval_k − f*_k; ideal distance sqrt(gap_sft² + gap_dpo²) (the paper's headline);
  f_mix,λ = λ·eval_dpo + (1−λ)·eval_sft; Chebyshev gap max(λ·gap_dpo, (1−λ)·gap_sft);
- convergence: the held-out *target* h of a run (f_mix,λ for ALRIGHT and Mix, the Chebyshev gap
  for MAXRIGHT, the second stage's objective for sequential, the objective itself for a
  single-objective run) has *stopped improving* when its decrease over the last quarter of the
  steps that train it is at most 10 % of its total decrease there plus 0.01:
  h(¾T) − h(T) ≤ 0.1·|h(0) − h(T)| + 0.01 (for a sequential run, 0 is its switch and the quarter
  that of its second stage; a stage too short to hold an evaluation inside it is not judged).
"""

from __future__ import annotations

import csv
import dataclasses
import json
import math
from pathlib import Path

from toyopt.llm.config import TrainConfig
from toyopt.rules import OBJECTIVES, weighted_gaps

# The study's defaults (any of them can be overridden on the command line or in --config): the
# settings measured in BENCHMARKS.md (section levers_smollm2) to be the cheapest per step on a
# CPU with bf16 instructions, and a budget after which the held-out targets stop improving.
STUDY_DEFAULTS = {
    "model": "smollm2", "lora": True, "lr": 5e-4, "steps": 100, "batch_size": 4,
    "max_length": 64, "max_rows": 128, "eval_every": 25, "eval_batch_size": 16,
    "precision": "bf16", "threads": 2, "progress": False,
}  # fmt: skip
STUDY_LAMS = (0.25, 0.5, 0.75)
STUDY_SEEDS = (0, 1)
RUN_FIELDS = ("seed", "lam", "rule", "steps", "switch", "eval_sft", "eval_dpo",
              "seconds_per_step", "peak_rss_mib")  # fmt: skip
CURVE_FIELDS = ("seed", "lam", "rule", "step", "eval_sft", "eval_dpo")
CONVERGED_SHARE, CONVERGED_SLACK = 0.1, 0.01


def parse_seeds(text: str) -> list[int]:
    """``--seeds``: a comma list of distinct non-negative integers."""
    items = [x.strip() for x in text.split(",")]
    try:
        seeds = [int(x) for x in items]
    except ValueError:
        raise ValueError(f"--seeds {text!r}: give a comma list of integers, e.g. 0,1") from None
    if any(s < 0 for s in seeds) or len(set(seeds)) < len(seeds):
        raise ValueError(f"--seeds {text!r}: seeds must be distinct and >= 0")
    return seeds


def run_study(cfg: TrainConfig, seeds, lams, rules, results: Path | None, log=print,
              train: bool = True) -> Path:  # fmt: skip
    """Train what is missing (seed by seed, so a partial study is whole seeds first; nothing with
    ``train`` False), then write the CSV files of the finished runs into ``results`` (if given);
    returns the output directory. Runs already in ``results`` from an earlier invocation (same
    config; their run directories gone, as on a fresh checkout) are not trained again: their rows
    are kept, and MAXRIGHT uses the seed's optima saved beside them (``optima-seed-S.json``)."""
    from toyopt.llm.sweep import sweep

    out = Path(cfg.output_dir)
    if cfg.overwrite and train:  # every run it would overwrite, checked before deleting any
        from toyopt.llm.rundir import check_overwrite
        from toyopt.llm.sweep import overwrite_targets

        check_overwrite(cfg, [t for seed in seeds for t in overwrite_targets(
            dataclasses.replace(cfg, output_dir=str(out / f"seed-{seed}")), lams, rules)])  # fmt: skip
    done = committed(results, cfg) if results is not None else set()
    for seed in seeds if train else ():
        seed_dir = out / f"seed-{seed}"
        seed_cfg = dataclasses.replace(cfg, seed=seed, output_dir=str(seed_dir), resume=True)
        saved = results / f"optima-seed-{seed}.json" if results is not None else None
        if saved is not None and saved.is_file() and not (seed_dir / "optima.json").is_file():
            seed_cfg = dataclasses.replace(seed_cfg, optima=str(saved))
        for lam in lams:
            # a run of this invocation (its directory here) continues as usual
            todo = [r for r in rules if (seed, lam, r) not in done
                    or (seed_dir / f"{r}-lam{lam:g}").exists()]  # fmt: skip
            if todo:
                sweep(seed_cfg, [lam], todo, log=log)
    if results is not None:
        collect(out, results, cfg)
        log(
            f"wrote {results / 'runs.csv'}, {results / 'curves.csv'}, {results / 'provenance.json'}"
        )
    return out


def committed(results: Path, cfg: TrainConfig) -> set[tuple]:
    """(seed, λ, rule) of the runs already in ``results`` for this config (empty if none); a
    ValueError if ``results`` holds another study's."""
    prov_path, runs_path = results / "provenance.json", results / "runs.csv"
    if not prov_path.is_file() or not runs_path.is_file():
        return set()
    from toyopt.llm.rundir import changed_fields, resume_view

    # two studies are the same study when their runs could resume each other
    diff = changed_fields(json.loads(prov_path.read_text()).get("config", {}), resume_view(cfg))
    if diff:
        raise ValueError(
            f"{results} holds the results of another study config ({', '.join(diff)}):"
            " choose another --results"
        )
    return {(r["seed"], r["lam"], r["rule"]) for r in read_csv(runs_path) if r["lam"] != ""}


def _evals(run_dir: Path) -> list[dict]:
    rows = [json.loads(s) for s in (run_dir / "metrics.jsonl").read_text().splitlines() if s]
    return [r for r in rows if "eval_sft" in r]


def _run_dirs(out: Path):
    """(run directory, label) of every finished run: label None for a rule's run, ``optimum-sft``
    / ``optimum-dpo`` for the single-objective ones."""
    for seed_dir in sorted(out.glob("seed-*")):
        for run in sorted(seed_dir.glob("*-lam*")) + sorted((seed_dir / "optima").glob("optima-*")):
            if (run / "summary.json").is_file():
                label = run.name.replace("optima-", "optimum-") if "optima-" in run.name else None
                yield run, label


def collect(out: Path, results: Path, cfg: TrainConfig) -> None:
    """Write ``runs.csv``, ``curves.csv`` and ``provenance.json`` from the finished runs."""
    from toyopt.files import write_text
    from toyopt.provenance import provenance

    runs, curves = [], []
    for run, label in _run_dirs(out):
        config = json.loads((run / "config.json").read_text())
        summary = json.loads((run / "summary.json").read_text())
        rule = label or config["rule"]
        lam = "" if label else config["lam"]
        final = summary["final"]
        runs.append({"seed": config["seed"], "lam": lam, "rule": rule, "steps": config["steps"],
                     "switch": config["switch"] if config["rule"].startswith("sequential") and not label else "",
                     "eval_sft": final["eval_sft"], "eval_dpo": final["eval_dpo"],
                     "seconds_per_step": summary["train_seconds_per_step"],
                     "peak_rss_mib": summary.get("peak_rss_bytes", 0) / 2**20})  # fmt: skip
        for e in _evals(run):
            curves.append({"seed": config["seed"], "lam": lam, "rule": rule, "step": e["step"],
                           "eval_sft": e["eval_sft"], "eval_dpo": e["eval_dpo"]})  # fmt: skip
    here = {(r["seed"], r["lam"], r["rule"]) for r in runs}
    if committed(results, cfg):  # an earlier invocation's rows whose run directories are gone
        old = [
            r
            for r in read_csv(results / "runs.csv")
            if (r["seed"], r["lam"], r["rule"]) not in here
        ]
        kept = {(r["seed"], r["lam"], r["rule"]) for r in old}
        runs = old + runs
        curves = [c for c in read_csv(results / "curves.csv")
                  if (c["seed"], c["lam"], c["rule"]) in kept] + curves  # fmt: skip
    if not runs:
        raise ValueError(f"{out}: no finished run to collect")
    results.mkdir(parents=True, exist_ok=True)
    from toyopt.llm.rundir import resume_view

    # the checkout as it was before this collection rewrote its own (tracked) files
    record = {**provenance(cfg.threads or None), "config": resume_view(cfg)}
    write_csv(results / "runs.csv", RUN_FIELDS, sorted(runs, key=_order))
    write_csv(results / "curves.csv", CURVE_FIELDS, sorted(curves, key=_order))
    for optima in out.glob("seed-*/optima.json"):  # MAXRIGHT's f* for a later invocation
        seed = optima.parent.name.split("-", 1)[1]
        write_text(results / f"optima-seed-{seed}.json", optima.read_text())
    write_text(results / "provenance.json", json.dumps(record, indent=2) + "\n")


def _order(row: dict) -> tuple:
    return (row["seed"], row["lam"] == "", row["lam"] or 0.0, row["rule"], row.get("step", 0))


def write_csv(path: Path, fields, rows: list[dict]) -> None:
    from toyopt.files import write_with

    def fill(tmp: Path) -> None:
        with tmp.open("w", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=list(fields), lineterminator="\n")
            writer.writeheader()
            for r in rows:
                writer.writerow(
                    {k: (f"{v:.6g}" if isinstance(v, float) else v) for k, v in r.items()}
                )

    write_with(path, fill)  # atomic, never through a link


def read_csv(path: Path) -> list[dict]:
    """Rows with numbers as numbers (empty cells stay empty strings)."""
    if not path.is_file():
        raise ValueError(f"{path}: no such results file (run the study command first)")
    with path.open(newline="") as f:
        rows = list(csv.DictReader(f))
    for r in rows:
        for k, v in r.items():
            if k != "rule" and v != "":
                r[k] = float(v) if any(c in v for c in ".eE") or k.startswith("eval") else int(v)
    return rows


def ideal_point(runs: list[dict]) -> dict[str, dict]:
    """f*_k = the smallest final held-out value of objective k over every run (see the module
    docstring), with the run that attained it."""
    point = {}
    for k in OBJECTIVES:
        best = min(runs, key=lambda r: r[f"eval_{k}"])
        point[k] = {"value": best[f"eval_{k}"], "rule": best["rule"], "seed": best["seed"],
                    "lam": best["lam"]}  # fmt: skip
    return point


def measures(lam: float, sft: float, dpo: float, star: dict[str, float]) -> dict[str, float]:
    """Gaps, ideal distance, f_mix,λ and the weighted Chebyshev gap of one point."""
    g_sft, g_dpo = sft - star["sft"], dpo - star["dpo"]
    weighted = weighted_gaps(lam, star, {"sft": sft, "dpo": dpo})  # what MAXRIGHT compares
    return {"gap_sft": g_sft, "gap_dpo": g_dpo, "ideal_distance": math.hypot(g_sft, g_dpo),
            "f_mix": lam * dpo + (1 - lam) * sft,
            "chebyshev_gap": float(max(weighted.values()))}  # fmt: skip


def target(rule: str, lam: float, sft: float, dpo: float, star: dict[str, float]) -> float:
    """The held-out quantity a run minimises (module docstring), at one evaluation."""
    if rule.startswith("optimum-"):
        return sft if rule.endswith("sft") else dpo
    if rule.startswith("sequential"):
        return dpo if rule.endswith("-dpo") else sft
    m = measures(lam, sft, dpo, star)
    return m["chebyshev_gap"] if rule == "maxright" else m["f_mix"]


def converged(
    curve: list[tuple[int, float]], steps: int, start: int = 0
) -> tuple[bool | None, float, float]:
    """(stopped improving, decrease over the last quarter, total decrease) of a target curve
    [(step, h)] whose training of h began at ``start`` (a sequential run's switch, else 0), by the
    criterion of the module docstring applied to steps start … steps. The quarter starts at the
    last evaluation at or before start + ¾(steps − start); None (cannot tell) when no evaluation
    lies strictly inside the stage before that point, e.g. a 25-step stage evaluated every 25."""
    at = dict(curve)
    inside = [s for s, _ in curve if start < s <= start + 0.75 * (steps - start)]
    first = at[start] if start in at else curve[0][1]
    end = curve[-1][1]
    if not inside:
        return None, math.nan, first - end
    last, total = at[inside[-1]] - end, first - end
    return last <= CONVERGED_SHARE * abs(total) + CONVERGED_SLACK, last, total


def derive(runs: list[dict], curves: list[dict]) -> list[dict]:
    """Each run's row with its measures and its convergence (see the module docstring)."""
    star = {k: v["value"] for k, v in ideal_point(runs).items()}
    out = []
    for r in runs:
        key = (r["seed"], r["lam"], r["rule"])
        curve = [(c["step"], target(r["rule"], r["lam"] or 0.0, c["eval_sft"], c["eval_dpo"],
                                    star))
                 for c in curves if (c["seed"], c["lam"], c["rule"]) == key]  # fmt: skip
        start = r["switch"] if r["rule"].startswith("sequential") else 0
        ok, last, total = converged(sorted(curve), r["steps"], start or 0)
        m = measures(r["lam"] or 0.0, r["eval_sft"], r["eval_dpo"], star)
        out.append({**r, **m, "converged": ok, "last_quarter_gain": last, "total_gain": total})
    return out
