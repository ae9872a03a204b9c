"""Why ALRIGHT lands away from Mix's trade-off on the tiny model: one experiment per hypothesis.

``python -m benchmarks.alright_gap`` trains ALRIGHT and Mix on the tiny model (synthetic data)
for each configuration and seed, and writes a
Markdown report: held-out (eval_sft, eval_dpo, f_mix,λ) after the budget (from summary.json),
mean ± sd over seeds; P("Sure") at the first answer position and the NLL of the rest of the answer
on the held-out SFT rows (is the loss the trade-off's first token, or the copy?); the ratio of the
f_mix values and whether ALRIGHT is within the goal, f_mix(ALRIGHT) ≤ 1.15·f_mix(Mix) + 0.05. Then
the toy problems through the torch backend, and ALRIGHT against a hand-written loop.

Two protocols. The diagnosis rows start from the trainer's settings before this study (``OLD``:
the tiny model from random weights, constant lr 1e-3, ALRIGHT's plain step, 1600 steps) and
change one thing each. The remedy rows (keys ``now…``) start from today's defaults (the tiny model
pretrained on copy text, lr 1e-3 decayed linearly, ALRIGHT's ``mix-clip`` step, 400 steps) and
take one of the two remedies back at a time, or change the schedule or the budget.

Runs are cached under ``--out`` by their configuration, so an interrupted report resumes. Each run
uses one torch thread; ``--jobs`` runs that many at once (run the whole under ``nice``).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field, replace
from multiprocessing import get_context
from pathlib import Path

import numpy as np

from benchmarks import alright_probes as probes
from benchmarks.common import load_average, table
from toyopt.provenance import line, provenance


@dataclass(frozen=True)
class Experiment:
    key: str
    hypothesis: str
    setting: str
    both: dict = field(default_factory=dict)  # config fields for both rules
    alright: dict = field(default_factory=dict)  # ... for ALRIGHT only
    steps: tuple[float, float] = (1.0, 1.0)  # (ALRIGHT, Mix) budgets in units of --steps
    sweep: bool = False  # run at every --lams value (else λ = 0.5 only)
    parity: bool = False  # ALRIGHT's budget divided by 1 − λ: as many SFT steps as Mix
    special: str = ""  # "mild" or "shared": another data set
    protocol: tuple = ()  # config fields both rules start from (OLD or today's defaults)


SGD_M = {"optimizer": "sgd", "momentum": 0.9, "lr": 0.05}
SGD = {"optimizer": "sgd", "momentum": 0.0, "lr": 0.1, "max_grad_norm": 0.0, "schedule": "linear"}
# the trainer's settings when the gap was found; the diagnosis rows change one thing each
OLD = (("model", "tiny-random"), ("schedule", "constant"), ("alright_step", "plain"))
NOW = (0.25, 0.25)  # today's default budget, 400 steps, in units of --steps (1600)
REMEDY = [
    Experiment(
        "now",
        "(the remedies)",
        "defaults: tiny pretrained on copy text, linear decay, ALRIGHT mix-clip, 400 steps",
        steps=NOW,
        sweep=True,
    ),
    Experiment(
        "now-plain",
        "clipping per objective",
        "defaults, but ALRIGHT's plain step",
        alright={"alright_step": "plain"},
        steps=NOW,
        sweep=True,
    ),
    Experiment(
        "now-random",
        "from scratch vs pretrained",
        "defaults, but tiny from random weights",
        {"model": "tiny-random"},
        steps=NOW,
        sweep=True,
    ),
    Experiment(
        "now-random-plain",
        "clipping and pretraining",
        "defaults, but random weights and ALRIGHT's plain step",
        {"model": "tiny-random"},
        alright={"alright_step": "plain"},
        steps=NOW,
        sweep=True,
    ),
    Experiment(
        "now-constant",
        "constant step + coin noise",
        "defaults, but constant lr",
        {"schedule": "constant"},
        steps=NOW,
        sweep=True,
    ),
    Experiment(
        "now-200", "the budget", "defaults, but 200 steps", steps=(0.125, 0.125), sweep=True
    ),
]
EXPERIMENTS = [
    Experiment("defaults", "(the gap)", "AdamW (0.9, 0.95), constant 1e-3, clip 1.0", sweep=True),
    Experiment("no-clip", "clipping per objective", "defaults, no clipping", {"max_grad_norm": 0.0},
               sweep=True),
    Experiment("mix-clip", "clipping per objective", "ALRIGHT clipped by Mix's factor (mix-clip)",
               alright={"alright_step": "mix-clip"}, sweep=True),
    Experiment("mix-adam", "Adam's shared moments", "ALRIGHT with mix-clip and Mix's second moment"
               " estimated per objective (mix-adam)", alright={"alright_step": "mix-adam"},
               sweep=True),
    Experiment("memory", "clipping and moments see one objective", "ALRIGHT with gradient memory",
               alright={"alright_step": "memory"}, sweep=True),
    Experiment("split-state", "Adam's shared moments", "ALRIGHT with one AdamW state per objective",
               alright={"alright_step": "split-state"}),
    Experiment("linear", "constant step + coin noise", "linear decay to 0", {"schedule": "linear"}),
    Experiment("mix-clip-linear", "constant step + coin noise", "mix-clip, linear decay to 0",
               {"schedule": "linear"}, alright={"alright_step": "mix-clip"}, sweep=True),
    Experiment("low-lr", "constant step + coin noise", "constant 3e-4", {"lr": 3e-4}),
    Experiment("sgd-m", "the adaptive optimizer", "SGD momentum 0.9, lr 0.05, clip 1.0", SGD_M),
    Experiment("sgd", "the adaptive optimizer", "plain SGD lr 0.1, linear, no clip", SGD),
    Experiment("equal-grads", "equal steps vs equal gradients", "ALRIGHT gets 2x the steps",
               steps=(2.0, 1.0)),
    Experiment("equal-grads-memory", "equal steps vs equal gradients",
               "ALRIGHT with memory gets 2x the steps", alright={"alright_step": "memory"},
               steps=(2.0, 1.0)),
    Experiment("sft-parity", "equal steps vs equal gradients", "ALRIGHT mix-clip with steps/(1-λ),"
               " as many SFT steps as Mix", alright={"alright_step": "mix-clip"}, parity=True,
               sweep=True),
    Experiment("pretrained", "from scratch vs pretrained", "tiny pretrained on copy text"
               " (the package's tiny)", {"model": "tiny"}),
    Experiment("shared-prompts", "telling SFT prompts from DPO prompts", "pairs on the SFT prompts;"
               " ALRIGHT mix-clip", alright={"alright_step": "mix-clip"}, sweep=True,
               special="shared"),
    Experiment("mild", "the task's extreme conflict", "rejected = the list reversed, not the SFT"
               " answer", special="mild"),
]  # fmt: skip
EXPERIMENTS = [replace(e, protocol=OLD) for e in EXPERIMENTS] + REMEDY


def run_one(spec: dict) -> dict:
    """Train one run (or reuse a finished one with the same config); its held-out numbers."""
    from transformers.utils import logging

    from toyopt.llm.config import TrainConfig
    from toyopt.llm.train import run

    logging.disable_progress_bar()  # one bar (the report's) is enough
    cfg = TrainConfig(**spec["config"])
    out = Path(cfg.output_dir)
    done = out / "summary.json"
    same = (out / "config.json").is_file() and json.loads(
        (out / "config.json").read_text()
    ) == cfg.to_dict()
    if not (done.is_file() and same):
        run(cfg, log=lambda s: None)
    final = json.loads(done.read_text())["final"]
    lam = cfg.lam
    result = {"eval_sft": final["eval_sft"], "eval_dpo": final["eval_dpo"]}
    result["f_mix"] = lam * final["eval_dpo"] + (1 - lam) * final["eval_sft"]
    return {**spec, **result, **probes.first_token_split(out / "final")}


def specs(exp: Experiment, lams, seeds, steps: int, root: Path, extra: dict) -> list[dict]:
    """One spec per (rule, λ, seed); the run directory is named by a hash of the config."""
    out = []
    for lam in lams if exp.sweep else [0.5]:
        parity = 1 / (1 - lam) if exp.parity and lam < 1 else 1.0
        for rule, factor in (("alright", exp.steps[0] * parity), ("mix", exp.steps[1])):
            for seed in seeds:
                config = {"rule": rule, "lam": lam, "seed": seed, "steps": int(factor * steps),
                          "eval_every": max(int(factor * steps) // 8, 1), "save_every": 0,
                          "progress": False, "threads": 1, "overwrite": True,
                          **dict(exp.protocol), **exp.both, **extra}  # fmt: skip
                if rule == "alright":
                    config.update(exp.alright)
                digest = hashlib.sha1(json.dumps(config, sort_keys=True).encode()).hexdigest()[:10]
                config["output_dir"] = str(root / "runs" / f"{rule}-{digest}")
                out.append({"exp": exp.key, "rule": rule, "lam": lam, "seed": seed,
                            "config": config})  # fmt: skip
    return out


def pm(values: list[float]) -> str:
    v = np.asarray(values)
    return f"{v.mean():.3f}" if len(v) == 1 else f"{v.mean():.3f} ± {v.std(ddof=1):.3f}"


def lm_table(results: list[dict]) -> str:
    rows = []
    keys = [e.key for e in EXPERIMENTS]
    groups = sorted({(r["exp"], r["lam"]) for r in results}, key=lambda g: (keys.index(g[0]), g[1]))
    for key, lam in groups:
        exp = EXPERIMENTS[keys.index(key)]
        by = {rule: [r for r in results if (r["exp"], r["lam"], r["rule"]) == (key, lam, rule)]
              for rule in ("alright", "mix")}  # fmt: skip
        f = {rule: float(np.mean([r["f_mix"] for r in rs])) for rule, rs in by.items()}
        cells = []
        for rule in ("alright", "mix"):
            rs = by[rule]
            cells += [pm([r["eval_sft"] for r in rs]), pm([r["eval_dpo"] for r in rs]),
                      pm([r["f_mix"] for r in rs]), pm([r["p_sure"] for r in rs]),
                      pm([r["copy_nll"] for r in rs])]  # fmt: skip
        ok = "yes" if f["alright"] <= 1.15 * f["mix"] + 0.05 else "no"
        steps = "/".join(str(by[r][0]["config"]["steps"]) for r in ("alright", "mix"))
        rows.append([exp.hypothesis, exp.setting, lam, steps, *cells,
                     f"{f['alright'] / f['mix']:.2f}", ok])  # fmt: skip
    header = ["hypothesis", "configuration", "λ", "steps AL/Mix"]
    header += [f"{who} {m}" for who in ("ALRIGHT", "Mix")
               for m in ("eval_sft", "eval_dpo", "f_mix", "P(Sure)", "copy NLL")]  # fmt: skip
    return table(header + ["f_mix AL/Mix", "within goal"], rows)


def main(argv=None) -> str:
    p = argparse.ArgumentParser(prog="python -m benchmarks.alright_gap", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)  # fmt: skip
    p.add_argument("--quick", action="store_true",
                   help="200 steps, 1 seed, short toy runs (a few minutes; a smoke test)")  # fmt: skip
    p.add_argument("--steps", type=int, default=1600, help="the budget (default 1600)")
    p.add_argument("--seeds", type=int, default=3, help="seeds per configuration (default 3)")
    p.add_argument("--lams", default="0.25,0.5,0.75",
                   help="λ values of the rows run at several λ (the others: 0.5)")  # fmt: skip
    p.add_argument("--only", nargs="+", choices=[e.key for e in EXPERIMENTS] + ["toy", "loop"],
                   help="run these sections only (default: all)")  # fmt: skip
    p.add_argument("--jobs", type=int, default=1, help="runs at once (default 1)")
    p.add_argument("--toy-steps", type=int, default=3000, help="steps of each toy run")
    p.add_argument("--out", default="runs/alright-gap", help="cache and report directory")
    a = p.parse_args(argv)
    if a.quick:
        a.steps, a.seeds, a.toy_steps = 200, 1, 400
    if a.steps < 8 or a.seeds < 1 or a.jobs < 1:
        p.error("--steps must be >= 8, --seeds and --jobs >= 1")
    lams = [float(x) for x in a.lams.split(",")]
    root, t0 = Path(a.out), time.perf_counter()
    wanted = a.only or [e.key for e in EXPERIMENTS] + ["toy", "loop"]
    report = [f"# ALRIGHT against Mix on the tiny model\n\n`python -m benchmarks.alright_gap "
              f"{' '.join(argv if argv is not None else sys.argv[1:])}`; load average at start"
              f" {load_average()}.\n"]  # fmt: skip
    from tqdm.auto import tqdm

    todo = []
    for exp in (e for e in EXPERIMENTS if e.key in wanted):
        extra = {}
        if exp.special == "mild":
            extra.update(probes.mild_data(root / "mild-data"))
        elif exp.special == "shared":
            extra.update(probes.shared_prompt_data(root / "shared-data"))
        todo += specs(exp, lams, range(a.seeds), a.steps, root, extra)
    results = []
    if todo:
        unique = list({s["config"]["output_dir"]: s for s in todo}.values())  # rows share runs
        done = {}
        with (
            tqdm(total=len(unique), desc="tiny-model runs") as bar,
            ProcessPoolExecutor(a.jobs, mp_context=get_context("spawn")) as pool,
        ):
            for r in pool.map(run_one, unique):
                done[r["config"]["output_dir"]] = r
                bar.update(1)
        results = [{**done[s["config"]["output_dir"]], **s} for s in todo]
        report += ["## Tiny model: held-out values after the budget (mean ± sd over "
                   f"{a.seeds} seeds)\n", lm_table(results), ""]  # fmt: skip
        (root / "results.json").write_text(json.dumps(results, indent=1))
    if "toy" in wanted:
        with tqdm(total=8 * len(probes.VARIANTS), desc="toy runs") as bar:
            text = probes.toy_table(a.toy_steps, 2 if a.quick else 4, bar)
        report += ["## Toy problems, torch backend, AdamW (0.9, 0.95), constant 0.01, exact "
                   f"gradients: f_mix gap of the mean last-quarter iterate ({a.toy_steps} steps)\n",
                   text, ""]  # fmt: skip
    if "loop" in wanted:
        gap = probes.hand_loop_gap(root / "hand-loop", 100 if a.quick else 400)
        report += ["## ALRIGHT against a hand-written loop (the paper's rule: plain step, constant lr; λ = 0.5, seed 0)\n",
                   f"max |θ_trainer − θ_hand| = {gap['max_param_diff']:.3g}; share of DPO steps"
                   f" over 10 000 coins = {gap['dpo_share']:.4f}\n"]  # fmt: skip
    report.append(f"Total {time.perf_counter() - t0:.0f} s; load average at the end "
                  f"{load_average()}.\n")  # fmt: skip
    report.append(f"Provenance: {line(provenance())}.\n")
    text = "\n".join(report)
    root.mkdir(parents=True, exist_ok=True)
    (root / "alright_gap.md").write_text(text)
    print(text)
    return text


if __name__ == "__main__":
    main()
