"""Per-rule cost: time per optimizer step and peak memory of every rule, against sequential.

Every rule trains the tiny model on the synthetic data for the same number of steps, through the
real trainer (:class:`toyopt.llm.train.Run`: data order, losses, clipping, AdamW, metrics). One
fresh process per (rule, repeat), rules interleaved in a rotated order within each round, so load
from other processes hits all rules alike. Step times are the trainer's own ``step_seconds``
(evaluation and checkpoints excluded); forward passes are counted with a forward pre-hook on the
model in training mode. Peak memory is ``ru_maxrss`` of that fresh process: the peak over the run,
and the growth during training (peak after training − peak after setup and the step-0 eval).

The ratio column compares a rule with "the same steps in the sequential run": its SFT, DPO and
Mix steps priced at the sequential run's robust-mean SFT and DPO step times (a Mix step at their
sum). That removes the luck of ALRIGHT's coin (how many of its steps were DPO steps, which cost
about twice an SFT step because a pair is two sequences).
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

import numpy as np

from benchmarks.common import load_average, med_spread, robust_mean, run_worker, table

RULES = {  # label: (rule, refresh_every)
    "sequential": ("sequential-sft-dpo", 1),
    "alright": ("alright", 1),
    "maxright exact": ("maxright", 1),
    "maxright K=10": ("maxright", 10),
    "mix": ("mix", 1),
}


def worker(rule: str, refresh_every: int, steps: int, warmup: int, batch_size: int) -> dict:
    """Train one run in this process; per-step times, objectives, forward passes, peak RSS."""
    from toyopt.llm.config import TrainConfig
    from toyopt.llm.train import Run

    with tempfile.TemporaryDirectory() as tmp:
        cfg = TrainConfig(model="tiny", rule=rule, lam=0.5, steps=steps, output_dir=tmp,
                          refresh_every=refresh_every, optima="zero" if rule == "maxright" else "",
                          batch_size=batch_size, eval_every=steps, save_every=0, progress=False)  # fmt: skip
        run = Run(cfg, log=lambda *a: None)
        forwards = []
        run.model.register_forward_pre_hook(lambda m, a: forwards.append(1) if m.training else None)
        run.train()
        rows = [json.loads(x) for x in (Path(tmp) / "metrics.jsonl").read_text().splitlines()]
    steps_rows = [r for r in rows if "objective" in r][warmup:]
    evals = [r for r in rows if "eval_sft" in r]
    return {
        "seconds": [r["step_seconds"] for r in steps_rows],
        "objective": [r["objective"] for r in steps_rows],
        "refresh": ["value_sft" in r for r in steps_rows],
        "forwards_per_step": len(forwards) / steps,
        "peak_rss": evals[-1]["peak_rss_bytes"],
        "setup_rss": evals[0]["peak_rss_bytes"],
    }


def type_means(res: dict) -> dict[str, float]:
    """Robust mean step time of each step type (sft / dpo / mix) in one run."""
    sec, obj = np.array(res["seconds"]), np.array(res["objective"])
    return {k: robust_mean(sec[obj == k]) for k in ("sft", "dpo", "mix") if (obj == k).any()}


def same_steps_cost(res: dict, seq: dict[str, float]) -> float:
    """Seconds the run's steps would take at the sequential run's per-type step times."""
    price = {"sft": seq["sft"], "dpo": seq["dpo"], "mix": seq["sft"] + seq["dpo"]}
    return float(sum(price[o] for o in res["objective"]))


def measure(
    steps: int, warmup: int, repeats: int, batch_size: int, labels: list[str]
) -> dict[str, list[dict]]:
    results: dict[str, list[dict]] = {k: [] for k in labels}
    for r in range(repeats):
        for label in labels[r % len(labels) :] + labels[: r % len(labels)]:
            rule, k = RULES[label]
            results[label].append(run_worker("rules_cost", {"rule": rule, "refresh_every": k,
                "steps": steps + warmup, "warmup": warmup, "batch_size": batch_size}))  # fmt: skip
    return results


def report(results: dict[str, list[dict]], steps: int, repeats: int, batch_size: int) -> str:
    seq_runs = results["sequential"]
    rows = []
    for label, runs in results.items():
        ratio, raw, peak, grow = [], [], [], []
        for i, res in enumerate(runs):
            seq = type_means(seq_runs[i])  # the sequential run of the same round
            total = robust_mean(res["seconds"]) * len(res["seconds"])
            ratio.append(total / same_steps_cost(res, seq))
            raw.append(1e3 * robust_mean(res["seconds"]))
            peak.append(res["peak_rss"] / 2**20)
            grow.append((res["peak_rss"] - res["setup_rss"]) / 2**20)
        seq_peak = np.median([r["peak_rss"] for r in seq_runs]) / 2**20
        mix = runs[0]["objective"]
        share = f"{mix.count('sft')}/{mix.count('dpo')}/{mix.count('mix')}"
        fwd = np.median([r["forwards_per_step"] for r in runs])
        rows.append([label, med_spread(raw), share, med_spread(ratio), f"{fwd:.2f}",
                     med_spread(peak), f"{np.median(peak) / seq_peak:.3f}", med_spread(grow)])  # fmt: skip
    header = ["rule", "ms / step", "sft/dpo/mix steps (run 1)", "time ÷ same steps sequential",
              "forwards / step", "peak RSS MiB", "peak ÷ sequential", "RSS growth in training MiB"]  # fmt: skip
    cmd = f"python -m benchmarks.rules_cost --steps {steps} --repeats {repeats}"
    return (
        f"### Per-rule cost (tiny model, batch {batch_size}, λ = 0.5, {steps} timed steps)\n\n"
        f"Command: `{cmd}`. Median [min–max] over {repeats} interleaved fresh-process runs; "
        f"load average (1/5/15 min) at the end: {load_average()}.\n\n" + table(header, rows) + "\n"
    )


def main(argv=None) -> str:
    p = argparse.ArgumentParser(prog="python -m benchmarks.rules_cost", description=__doc__)
    p.add_argument("--steps", type=int, default=300, help="timed optimizer steps per run")
    p.add_argument("--warmup", type=int, default=10, help="untimed first steps")
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument(
        "--rules",
        nargs="+",
        choices=list(RULES),
        default=list(RULES),
        help="rules to compare (sequential is always measured: it is the baseline)",
    )
    a = p.parse_args(argv)
    labels = ["sequential"] + [r for r in a.rules if r != "sequential"]
    res = measure(a.steps, a.warmup, a.repeats, a.batch_size, labels)
    text = report(res, a.steps, a.repeats, a.batch_size)
    print(text)
    return text


if __name__ == "__main__":
    main()
