"""Per-rule cost: time per optimizer step and peak memory of every rule, against sequential.

Every rule trains the tiny model on the synthetic data (λ = ½, batch 8) through the real trainer
(:class:`toyopt.llm.train.Run`: data order, losses, MAXRIGHT's values(), clipping, AdamW).

- **Time**: all rules live in one process and take their steps *interleaved*: step t of every
  rule (in an order rotated with t) before step t + 1 of any, so load from other processes hits
  every rule alike, step by step. This is repeated in a few fresh processes (the spread).
- **Forward passes** are counted by a forward pre-hook on each model in training mode.
- **Memory**: ``ru_maxrss`` is a per-process peak, so it is measured in one fresh process per
  (rule, repeat), rules interleaved per round: the peak over the run, and its growth during
  training (peak after training − peak after setup and the step-0 evaluation).

The ratio column compares a rule with "the same steps in the sequential run": its SFT, DPO and
Mix steps priced at the sequential run's robust-mean SFT and DPO step times from the same process
(a Mix step at their sum, the target). That removes the luck of ALRIGHT's coin (how many of its
steps were DPO steps, which cost more than SFT steps because a pair is two sequences).
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
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


def config(label: str, steps: int, batch_size: int, out: str):
    from toyopt.llm.config import TrainConfig

    rule, k = RULES[label]
    return TrainConfig(model="tiny", rule=rule, lam=0.5, steps=steps, output_dir=out,
                       refresh_every=k, optima="zero" if rule == "maxright" else "",
                       batch_size=batch_size, eval_every=steps, save_every=0, progress=False)  # fmt: skip


def timing_worker(labels: list[str], steps: int, warmup: int, batch_size: int) -> dict:
    """Every rule's steps interleaved in this process: seconds, objective and forwards per step."""
    from toyopt.llm.train import Run
    from toyopt.loop import train

    out = {k: {"seconds": [], "objective": [], "forwards": 0} for k in labels}
    with tempfile.TemporaryDirectory() as tmp:
        runs = {k: Run(config(k, steps + warmup, batch_size, f"{tmp}/{i}"), log=lambda *a: None)
                for i, k in enumerate(labels)}  # fmt: skip
        states = {k: r.state for k, r in runs.items()}
        for k, r in runs.items():

            def hook(m, a, k=k):
                out[k]["forwards"] += m.training and t >= warmup

            r.model.register_forward_pre_hook(hook)
        for t in range(steps + warmup):
            for k in labels[t % len(labels) :] + labels[: t % len(labels)]:
                seen = []
                t0 = time.perf_counter()
                states[k], _ = train(runs[k].backend, runs[k].rule, states[k], t + 1,
                                     runs[k].schedule, start=t,
                                     on_step=lambda s, w, lo, v, seen=seen: seen.append(sorted(lo)))  # fmt: skip
                if t >= warmup:
                    out[k]["seconds"].append(time.perf_counter() - t0)
                    out[k]["objective"].append(seen[0][0] if len(seen[0]) == 1 else "mix")
    for v in out.values():
        v["forwards_per_step"] = v.pop("forwards") / steps
    return out


def memory_worker(label: str, steps: int, batch_size: int) -> dict:
    """One run in this fresh process: peak RSS after setup and after training."""
    from toyopt.llm.train import Run

    with tempfile.TemporaryDirectory() as tmp:
        Run(config(label, steps, batch_size, tmp), log=lambda *a: None).train()
        rows = [json.loads(x) for x in (Path(tmp) / "metrics.jsonl").read_text().splitlines()]
    evals = [r for r in rows if "eval_sft" in r]
    return {"peak_rss": evals[-1]["peak_rss_bytes"], "setup_rss": evals[0]["peak_rss_bytes"]}


def worker(kind: str, **kw) -> dict:
    return timing_worker(**kw) if kind == "time" else memory_worker(**kw)


def type_means(res: dict) -> dict[str, float]:
    """Robust mean step time of each step type (sft / dpo / mix) in one run."""
    sec, obj = np.array(res["seconds"]), np.array(res["objective"])
    return {k: robust_mean(sec[obj == k]) for k in ("sft", "dpo", "mix") if (obj == k).any()}


def same_steps_cost(res: dict, seq: dict[str, float]) -> float:
    """Seconds the run's steps would take at the sequential run's per-type step times."""
    price = {"sft": seq["sft"], "dpo": seq["dpo"], "mix": seq["sft"] + seq["dpo"]}
    return float(sum(price[o] for o in res["objective"]))


def measure(a, labels: list[str]) -> tuple[list[dict], dict[str, list[dict]]]:
    """(timing results per process, memory results per rule)."""
    timing = [run_worker("rules_cost", {"kind": "time", "labels": labels, "steps": a.steps,
              "warmup": a.warmup, "batch_size": a.batch_size}) for _ in range(a.repeats)]  # fmt: skip
    memory: dict[str, list[dict]] = {k: [] for k in labels}
    for r in range(a.mem_repeats):
        for k in labels[r % len(labels) :] + labels[: r % len(labels)]:
            memory[k].append(run_worker("rules_cost", {"kind": "memory", "label": k,
                             "steps": a.mem_steps, "batch_size": a.batch_size}))  # fmt: skip
    return timing, memory


def report(timing: list[dict], memory: dict[str, list[dict]], a) -> str:
    rows = []
    seq_peak = np.median([m["peak_rss"] for m in memory["sequential"]]) / 2**20
    for label in memory:
        runs = [proc[label] for proc in timing]
        ratio = [robust_mean(r["seconds"]) * len(r["seconds"])
                 / same_steps_cost(r, type_means(proc["sequential"]))
                 for r, proc in zip(runs, timing)]  # fmt: skip
        ms = [1e3 * robust_mean(r["seconds"]) for r in runs]
        peak = [m["peak_rss"] / 2**20 for m in memory[label]]
        grow = [(m["peak_rss"] - m["setup_rss"]) / 2**20 for m in memory[label]]
        obj = runs[0]["objective"]
        share = f"{obj.count('sft')}/{obj.count('dpo')}/{obj.count('mix')}"
        fwd = np.median([r["forwards_per_step"] for r in runs])
        rows.append([label, med_spread(ms), share, med_spread(ratio), f"{fwd:.2f}",
                     med_spread(peak), f"{np.median(peak) / seq_peak:.3f}", med_spread(grow)])  # fmt: skip
    per_type = {k: med_spread([1e3 * type_means(p["sequential"])[k] for p in timing])
                for k in ("sft", "dpo")}  # fmt: skip
    header = ["rule", "ms / step", "sft/dpo/mix steps (process 1)",
              "time ÷ same steps sequential", "forwards / step", "peak RSS MiB",
              "peak ÷ sequential", "RSS growth in training MiB"]  # fmt: skip
    cmd = (f"python -m benchmarks.rules_cost --steps {a.steps} --repeats {a.repeats} "
           f"--mem-steps {a.mem_steps} --mem-repeats {a.mem_repeats}")  # fmt: skip
    return (
        f"### Per-rule cost (tiny model, batch {a.batch_size}, λ = 0.5, {a.steps} timed steps)\n\n"
        f"Command: `{cmd}`. Time: median [min–max] over {a.repeats} fresh processes, each "
        f"interleaving all rules step by step; sequential's SFT step {per_type['sft']} ms, DPO "
        f"step {per_type['dpo']} ms. Memory: {a.mem_repeats} fresh processes per rule of "
        f"{a.mem_steps} steps (ru_maxrss). MAXRIGHT runs with optima 'zero'. Load average "
        f"(1/5/15 min) at the end: {load_average()}.\n\n" + table(header, rows) + "\n"
    )


def main(argv=None) -> str:
    p = argparse.ArgumentParser(prog="python -m benchmarks.rules_cost", description=__doc__)
    p.add_argument("--steps", type=int, default=300, help="timed optimizer steps per rule")
    p.add_argument("--warmup", type=int, default=10, help="untimed first steps")
    p.add_argument("--repeats", type=int, default=3, help="timing processes")
    p.add_argument("--mem-steps", type=int, default=40, help="steps of a memory run")
    p.add_argument("--mem-repeats", type=int, default=2, help="memory processes per rule")
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--rules", nargs="+", choices=list(RULES), default=list(RULES),
                   help="rules to compare (sequential is always measured: it is the baseline)")  # fmt: skip
    a = p.parse_args(argv)
    labels = ["sequential"] + [r for r in a.rules if r != "sequential"]
    text = report(*measure(a, labels), a)
    print(text)
    return text


if __name__ == "__main__":
    main()
