"""Step-cost levers on a real model: what each one buys in tokens per second and what it does to
the losses, measured through the trainer itself.

Each variant is one ``toyopt.llm.train.run`` of ALRIGHT at λ = ½ (so SFT and DPO steps both
occur) from the same start, on the same batches (same seed), in a fresh process: ``steps``
steps, held-out evaluation at step 0 and at the end. Reported per variant, median [min–max]
over ``repeats`` interleaved rounds:

- ms per SFT step and per DPO step (``step_seconds`` of the metrics rows; evaluation excluded),
  and training tokens per second: the mean non-padding tokens of a step's batch (SFT: its rows;
  DPO: chosen and rejected rows) over the mean step time;
- seconds per evaluation of the held-out sets ((wall time at the last evaluation − training
  time) / evaluations);
- the held-out losses against the first variant's (fp32, 1 thread): at step 0 (the numerical error of the
  forward pass alone) and at the end (what the lever does to training).

Levers: ``--precision bf16`` (autocast; torch runs bf16 matrix products with the CPU's
AVX512-BF16 instructions where it has them), ``--threads`` (torch's intra-op threads), and
``--eval-batch-size`` (rows per evaluation forward).
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np

from benchmarks.common import load_average, med_spread, run_worker, table

BASE = {"rule": "alright", "lam": 0.5, "lr": 5e-4, "batch_size": 4, "max_length": 64,
        "max_rows": 128, "save_every": 0, "progress": False}  # fmt: skip
VARIANTS = {  # name: config changes; the first is the reference of the loss differences
    "fp32, 1 thread": {"precision": "fp32", "threads": 1},
    "bf16, 1 thread": {"precision": "bf16", "threads": 1},
    "fp32, 2 threads": {"precision": "fp32", "threads": 2},
    "bf16, 2 threads": {"precision": "bf16", "threads": 2},
    "bf16, 2 threads, eval batch 64": {"precision": "bf16", "threads": 2, "eval_batch_size": 64},
}
MODELS = {"smollm2": {"model": "smollm2", "lora": True}, "tiny": {"model": "tiny"}}


def worker(model: str, variant: str, steps: int) -> dict:
    """One run of the variant in this (fresh) process; its timings and held-out losses."""
    from toyopt.llm.config import TrainConfig
    from toyopt.llm.train import Run

    with tempfile.TemporaryDirectory() as tmp:
        cfg = TrainConfig(**BASE, **MODELS[model], **VARIANTS[variant], steps=steps,
                          eval_every=steps, output_dir=str(Path(tmp) / "run"))  # fmt: skip
        run = Run(cfg, log=lambda s: None)
        tokens = {"sft": _tokens(run.data.sft_train) * cfg.batch_size,
                  "dpo": _tokens(run.data.pref_train) * 2 * cfg.batch_size}  # fmt: skip
        run.train()
        rows = [json.loads(s) for s in (run.dir / "metrics.jsonl").read_text().splitlines()]
    steps_rows = [r for r in rows if "objective" in r][1:]  # the first step warms up
    evals = [r for r in rows if "eval_sft" in r]
    out = {"eval_seconds": (evals[-1]["wall_time"] - sum(r["step_seconds"] for r in rows
                                                         if "objective" in r)) / len(evals)}  # fmt: skip
    for k in ("sft", "dpo"):
        secs = [r["step_seconds"] for r in steps_rows if r["objective"] == k]
        out[f"{k}_ms"] = 1000 * float(np.median(secs))
        out[f"{k}_tokens_per_s"] = tokens[k] / float(np.median(secs))
    out.update(start=evals[0], end=evals[-1])
    return out


def _tokens(rows) -> float:
    return float(np.mean([len(p) + len(r) for p, r in rows]))


def main(argv=None) -> str:
    p = argparse.ArgumentParser(prog="python -m benchmarks.levers", description=__doc__)
    p.add_argument("--model", choices=list(MODELS), default="smollm2")
    p.add_argument("--steps", type=int, default=12, help="training steps per run")
    p.add_argument("--repeats", type=int, default=2, help="interleaved rounds of every variant")
    p.add_argument("--variants", nargs="+", choices=list(VARIANTS), default=list(VARIANTS),
                   help="measure only these (the first is the reference of the differences)")  # fmt: skip
    a = p.parse_args(argv)
    t0 = time.perf_counter()
    results: dict[str, list[dict]] = {v: [] for v in a.variants}
    for i in range(a.repeats):
        names = list(a.variants)
        for v in names[i % len(names) :] + names[: i % len(names)]:  # rotate the order
            results[v].append(run_worker("levers", {"model": a.model, "variant": v,
                                                    "steps": a.steps}, timeout=1800))  # fmt: skip
    return render(results, a, time.perf_counter() - t0)


def render(results: dict[str, list[dict]], a, seconds: float) -> str:
    ref = results[next(iter(results))]
    base_tps = [r["sft_tokens_per_s"] + r["dpo_tokens_per_s"] for r in ref]
    rows = []
    for v, rs in results.items():
        tps = [r["sft_tokens_per_s"] + r["dpo_tokens_per_s"] for r in rs]
        diff = {f"{when}_{k}": max(abs(r[when][f"eval_{k}"] - b[when][f"eval_{k}"])
                                   for r, b in zip(rs, ref))
                for when in ("start", "end") for k in ("sft", "dpo")}  # fmt: skip
        rows.append([v, med_spread([r["sft_ms"] for r in rs]), med_spread([r["dpo_ms"] for r in rs]),
                     med_spread([r["sft_tokens_per_s"] for r in rs]),
                     med_spread([r["dpo_tokens_per_s"] for r in rs]),
                     f"{np.median(tps) / np.median(base_tps):.2f}",
                     med_spread([r["eval_seconds"] for r in rs]),
                     f"{diff['start_sft']:.1e} / {diff['start_dpo']:.1e}",
                     f"{diff['end_sft']:.1e} / {diff['end_dpo']:.1e}"])  # fmt: skip
    end = ref[0]["end"]
    head = ["variant", "ms / SFT step", "ms / DPO step", "SFT tokens/s", "DPO tokens/s",
            f"tokens/s ÷ {next(iter(results))}", "s / evaluation",
            "|Δ held-out SFT / DPO| at step 0", f"|Δ| after {a.steps} steps"]  # fmt: skip
    cmd = f"python -m benchmarks.levers --model {a.model} --steps {a.steps} --repeats {a.repeats}"
    return (
        f"### Step-cost levers ({a.model}{', LoRA r = 16 (all linear)' if a.model == 'smollm2' else ''},"
        f" batch 4, max length 64, ALRIGHT λ = 0.5, {a.steps} steps)\n\n"
        f"Command: `{cmd}` ({seconds / 60:.0f} min). Each variant is a trainer run in a fresh"
        " process, median [min–max] over the interleaved rounds; step times exclude the first"
        " (warm-up) step and evaluations. Loss differences: the largest over rounds of"
        f" |held-out loss − the {next(iter(results))} run's| on the same batches (reference held-out"
        f" values after {a.steps} steps: SFT {end['eval_sft']:.4f}, DPO {end['eval_dpo']:.4f})."
        f" Load average at the end: {load_average()}.\n\n" + table(head, rows) + "\n"
    )


if __name__ == "__main__":
    print(main())
