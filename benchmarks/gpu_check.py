"""GPU check: what each rule costs our trainer on a 341M-parameter Llama in bf16 (needs CUDA).

``python -m benchmarks.gpu_check`` (at most 8 minutes; installs nothing) builds, in a temporary
directory, a Llama-style causal LM from a config with random weights (hidden 1024, 24 layers,
16 heads, MLP 2816, vocabulary 32 000, tied embeddings: 341 M parameters; nothing downloaded)
with the tiny model's locally trained tokenizer saved beside it, and synthetic SFT and preference
JSONL whose rows all truncate to exactly ``--seq-len`` tokens, so no batch holds padding. Every
rule of :mod:`benchmarks.rules_cost` (sequential, ALRIGHT, MAXRIGHT exact and K = 10 with optima
'zero', Mix; λ = ½) then trains it through our trainer (:class:`toyopt.llm.train.Run`: its data
order, losses, MAXRIGHT's values(), clipping, AdamW; ``precision="bf16"``, so the Accelerate
engine's autocast) in a fresh process per rule: warm-up steps, then ``--steps`` timed steps;
evaluation and checkpoints are off. A rule that runs out of memory or time is reported as such.

Measured per rule: ms / step (robust mean of the wall time between step ends; everything the
trainer does in a step is inside), training tokens / s (non-padding tokens of the policy's
forwards that are back-propagated, counted by :class:`benchmarks.vs_trl.Counter`'s hook), MFU,
peak ``torch.cuda.max_memory_allocated`` (reset after the warm-up) and the increases of time and
memory over sequential in %, as in the paper's right-hand panels.

**FLOPs and MFU.** Per token of a sequence of T tokens, training costs 6N + 12·l·d·T FLOPs and a
forward-only pass 2N + 4·l·d·T (Chowdhery et al. 2022, PaLM, app. B): N counts the weights that
multiply every token (per layer q, k, v, o, gate, up and down; plus the output projection V·d,
but not the input embedding, a lookup), l the layers, d the hidden size; the attention term is
counted without the causal mask's saving, as PaLM does. A MAXRIGHT refresh's no-grad passes, and
a kept forward that the step does not reuse, cost the forward-only rate. (The Accelerate engine,
which every bf16 run uses, keeps no graph across calls: there a refresh evaluates both objectives
without grad, one forward more than on the local engine; the forward-only column shows it.)
MFU = model FLOPs per second ÷ the device's peak dense bf16 FLOPs (``PEAKS``, or
``--peak-tflops``); it counts no recomputation and no optimizer, so it is what the step achieves
on the model's own arithmetic.

**Sizing for MFU ≥ 40 % on SFT steps.** An SFT step of B = 16 rows × T = 1024 tokens is
16 384 × 2.35 GFLOP = 38.5 TFLOP: 39 ms at the H100/H200 peak of 989 TFLOPS, so 40 % allows
97 ms. What else a step spends must stay well below that:

- *Python per-step overhead*: the rule, batch indices, ``collate`` of 16 rows, three host-to-device
  copies, a ``float()`` sync per loss (and one per forward for the token counter): about 1–3 ms,
  most of it while the GPU still runs the previous optimizer step. The ~10 ms of Python that
  launches a forward's ~600 kernels stays ahead of the GPU at 16 384 tokens per kernel (it would
  not at a few hundred tokens).
- *fp32 master weights with bf16 autocast*: each forward casts 341 M weights to bf16
  (~2 GB of traffic, under 1 ms at 3–5 TB/s); gradients and AdamW stay in fp32.
- *The optimizer step*: torch's foreach AdamW and the clipping norm read and write about
  16 bytes per parameter several times, ~10 GB: 3–5 ms.
- *Memory-bound kernels*: eager Hugging Face Llama runs RMSNorm in fp32, RoPE, SiLU·mul and the
  residual adds as separate kernels, and the loss up-casts 16 384 × 32 000 logits to fp32. These
  scale with d while the matrix products scale with d², so at d = 1024 they are the main reason
  an eager step may stay below 40 %; the matrix products themselves (M = 16 384 rows) run near
  the tensor cores' rate.

So tokens per step are chosen large (16 × 1024; a DPO step is 16 pairs, 32 sequences) to make
the fixed costs a few %, with rows of one length (no padding) and T = 1024 (the attention term is
13 % of the FLOPs; longer rows would shift work towards it). Memory: weights, gradients, AdamW
state and autocast's bf16 weight copies take ~6 GB; activations about 1.4 MB per token (fp32
residual stream and norms, bf16 matmul inputs, SDPA's q, k, v, out) plus ~0.45 MB of fp32 logits
per token (computed at response positions only, so at most that), so ~31 GB for an SFT step and
~62 GB for a DPO step; Mix back-propagates one objective at a time, so it holds one graph at a
time too: all fit an H200 (141 GB) and should fit an 80 GB card (``--batch-size 8`` halves the
activations).

**Time budget.** Setup (building and saving the model) counts against ``--budget`` (420 s); each
rule gets an equal share of what is left, stops stepping at the end of its share (reporting the
steps it took) and is killed 30 s after it, so the whole check ends within ``--budget`` + 30 s.
On an H200 a rule needs ~20 s of setup and ~10 s of steps, about 3 minutes in all.
"""

from __future__ import annotations

import argparse
import os
import platform
import re
import shlex
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from benchmarks.common import robust_mean, run_worker, table
from benchmarks.gpu_run import build_model_dir, write_data
from benchmarks.rules_cost import DEFAULT_RULES, RULES, same_steps_cost, type_means

SIZES = {  # the model of the check, and the tiny one of --cpu-smoke
    "gpu": dict(hidden=1024, layers=24, heads=16, kv_heads=16, intermediate=2816, vocab=32000),
    "smoke": dict(hidden=64, layers=2, heads=4, kv_heads=4, intermediate=128, vocab=512),
}
# peak dense bf16 tensor-core TFLOPS from the vendors' data sheets (half the "with sparsity"
# figure), matched against torch.cuda.get_device_name(); first match wins
PEAKS = [
    (r"\bGH200\b", 989, "GH200"),
    (r"\bH200 NVL\b", 835, "H200 NVL"),
    (r"\bH200\b", 989, "H200 SXM"),
    (r"\bH100 PCIe\b", 756, "H100 PCIe"),
    (r"\bH100 NVL\b", 835, "H100 NVL"),
    (r"\bH100\b", 989, "H100 SXM"),
    (r"\bB200\b", 2250, "B200"),
    (r"\bA100\b", 312, "A100"),
    (r"\bL40S\b", 362, "L40S"),
    (r"\bL40\b", 181, "L40"),
    (r"\bL4\b", 121, "L4"),
    (r"\bA10\b", 125, "A10"),
    (r"\bMI300X\b", 1307, "MI300X"),
]
BUDGET_GRACE_S = 30  # a rule's process is killed this long after its share of the budget
GIB = 2**30


def peak_tflops(device_name: str) -> tuple[float, str] | None:
    """(peak dense bf16 TFLOPS, the row matched) for a device name, None if unknown (or a MIG
    slice, which has a fraction of the chip)."""
    if "MIG" in device_name:
        return None
    for pattern, tflops, label in PEAKS:
        if re.search(pattern, device_name):
            return float(tflops), label
    return None


def matmul_params(s: dict) -> int:
    """N: the weights that multiply every token (see the module docstring)."""
    d, kv = s["hidden"], s["kv_heads"] * s["hidden"] // s["heads"]
    per_layer = 2 * d * d + 2 * d * kv + 3 * d * s["intermediate"]  # q, o; k, v; gate, up, down
    return s["layers"] * per_layer + s["vocab"] * d


def flops_per_token(s: dict, seq: int, train: bool = True) -> int:
    """6N + 12·l·d·T per trained token, 2N + 4·l·d·T per token of a forward-only pass."""
    n, attention = matmul_params(s), s["layers"] * s["hidden"] * seq
    return 6 * n + 12 * attention if train else 2 * n + 4 * attention


def run_rules(labels: list[str], setup: dict, deadline: float, one_process: bool) -> dict:
    """Every rule in a fresh process (all in one with ``one_process``), each given an equal share
    of the time left before ``deadline`` and killed BUDGET_GRACE_S seconds after it."""
    groups = [labels] if one_process else [[k] for k in labels]
    results: dict = {}
    for i, group in enumerate(groups):
        t0 = time.time()
        share = (deadline - t0) / (len(groups) - i)
        if share < 5:
            results.update({k: {"status": "not started (time budget)"} for k in group})
            continue
        try:
            kw = {"labels": group, "setup": setup, "stop_at": t0 + share}
            results.update(run_worker("gpu_run", kw, timeout=share + BUDGET_GRACE_S))
        except subprocess.TimeoutExpired:
            results.update(
                {k: {"status": f"killed after {share + BUDGET_GRACE_S:.0f} s"} for k in group}
            )
        except RuntimeError as err:  # the worker failed: its last line says why
            why = [x for x in str(err).splitlines() if x.strip()][-1][:200]
            results.update({k: {"status": f"failed: {why}"} for k in group})
        done = [f"{k} {results[k]['status']} ({len(results[k].get('seconds', []))} steps)"
                for k in group]  # fmt: skip
        print(f"gpu_check: {', '.join(done)}; {time.time() - t0:.0f} s", file=sys.stderr)
    return results


def stats(res: dict, s: dict, seq: int, peak: float | None, kind: str | None = None) -> dict:
    """ms / step, tokens / step, tokens / s, forward-only tokens / step and MFU of one rule's
    timed steps (those of objective ``kind`` only, if given); time is the robust mean."""
    keep = [kind in (None, o) for o in res["objective"]]
    sec = robust_mean(np.array(res["seconds"])[keep])
    trained = np.array(res["trained"])[keep].mean()
    fwd = np.array(res["forward_only"])[keep].mean()
    flops = trained * flops_per_token(s, seq) + fwd * flops_per_token(s, seq, train=False)
    return {"ms": 1e3 * sec, "tokens": trained, "tps": trained / sec, "fwd": fwd,
            "mfu": flops / sec / (peak * 1e12) if peak else None}  # fmt: skip


def pct(ratio: float | None) -> str:
    """A ratio as an increase in % ("–" when there is nothing to compare with)."""
    if ratio is None:
        return "–"
    return f"{round(100 * (ratio - 1), 1) + 0.0:+.1f} %"  # + 0.0: no "-0.0 %"


def mfu_text(x: float | None) -> str:
    return "n/a" if x is None else f"{100 * x:.1f} %"


def same_steps_ratio(res: dict, seq: dict) -> float | None:
    """Time ÷ the same steps priced at sequential's SFT and DPO step times (as rules_cost does)."""
    try:
        cost = same_steps_cost(res, type_means(seq))
    except KeyError:  # sequential took no step of a type this rule took
        return None
    return robust_mean(res["seconds"]) * len(res["seconds"]) / cost


def rule_rows(results: dict, s: dict, seq: int, peak: float | None) -> list[list]:
    """One row per rule, with its increases over sequential; a rule without timed steps shows
    why (out of memory, time budget, a failure)."""
    done = {k: r for k, r in results.items() if r.get("seconds")}
    base = done.get("sequential")
    b = stats(base, s, seq, peak) if base else None
    mem = next((m for r in done.values() for m in r if m.startswith("peak_")), "")
    rows = []
    for label, res in results.items():
        if label not in done:  # a status may quote an error: keep the table's cells intact
            rows.append([label, res["status"].replace("|", "/"), *["–"] * 9])
            continue
        st, obj = stats(res, s, seq, peak), res["objective"]
        loss = " / ".join(
            f"{res['loss'][k]:.2f}" if k in res["loss"] else "–" for k in ("sft", "dpo")
        )
        rows.append([label if res["status"] == "ok" else f"{label} ({res['status']})",
                     f"{obj.count('sft')}/{obj.count('dpo')}/{obj.count('mix')}",
                     f"{st['ms']:.1f}", f"{st['tps']:,.0f}", f"{st['fwd']:,.0f}",
                     mfu_text(st["mfu"]), f"{res[mem] / GIB:.2f}",
                     pct(st["ms"] / b["ms"] if b else None),
                     pct(same_steps_ratio(res, base) if base else None),
                     pct(res[mem] / base[mem] if base else None), loss])  # fmt: skip
    return rows


def type_stats(results: dict, s: dict, seq: int, peak: float | None) -> list[tuple]:
    """(kind, rule, stats) of SFT and DPO steps in the sequential run and of Mix's steps."""
    out = []
    for kind, label in (("sft", "sequential"), ("dpo", "sequential"), ("mix", "mix")):
        res = results.get(label, {})
        if kind in res.get("objective", []):
            out.append((kind, label, stats(res, s, seq, peak, kind)))
    return out


def machine(cuda: bool) -> str:
    import accelerate
    import torch
    import transformers

    if cuda:
        props = torch.cuda.get_device_properties(0)
        dev = f"{props.name} ({props.total_memory / GIB:.0f} GiB, CUDA {torch.version.cuda})"
    else:
        dev = "no GPU (CPU smoke run: it checks the pipeline, its numbers mean nothing)"
    return (f"{dev}; host {platform.machine()} with {os.cpu_count()} cores; Python "
            f"{platform.python_version()}, torch {torch.__version__}, transformers "
            f"{transformers.__version__}, accelerate {accelerate.__version__}")  # fmt: skip


def describe(a, s: dict, peak: tuple[float, str] | None, cmd: str, attention: str) -> str:
    """The paragraph above the tables: command, machine, model, FLOPs, peak and protocol."""
    seq, n, cuda = a.seq_len, matmul_params(s), not a.cpu_smoke
    if peak:
        peak_text = f"peak {peak[0]:g} TFLOPS dense bf16 ({peak[1]})"
    else:
        peak_text = "peak unknown, so MFU n/a" + (" (pass --peak-tflops)" if cuda else "")
    memory = "torch.cuda.max_memory_allocated" if cuda else "peak RSS of one shared process"
    return (
        f"### GPU check: per-rule cost, {s['layers']}-layer Llama ({n / 1e6:.3g}M matmul "
        f"parameters), bf16, batch {a.batch_size} × {seq} tokens\n\n"
        f"Command: `{cmd}`. Machine: {machine(cuda)}. MFU: {peak_text}; FLOPs per token "
        f"6N + 12·l·d·T = {flops_per_token(s, seq) / 1e9:.3g} G trained, 2N + 4·l·d·T = "
        f"{flops_per_token(s, seq, False) / 1e9:.3g} G forward-only (N = {n:,}, l = "
        f"{s['layers']}, d = {s['hidden']}, T = {seq}). Model: hidden {s['hidden']}, "
        f"{s['heads']} heads, MLP {s['intermediate']}, vocabulary {s['vocab']}, random weights, "
        f"attention {attention}. λ = 0.5, MAXRIGHT optima 'zero', AdamW lr 1e-4, clipping 1; "
        f"{a.warmup} warm-up round(s) of an SFT and a DPO step, then {a.steps} timed steps per "
        f"rule in a fresh process (robust mean); an SFT step trains {a.batch_size} rows, a DPO "
        f"step {a.batch_size} pairs ({2 * a.batch_size} rows). Memory: {memory}, after the "
        f"warm-up. Increases are over sequential; 'same steps' prices each step of the rule at "
        f"sequential's time for a step of its type.\n\n"
    )


def report(results: dict, a, s: dict, peak: tuple[float, str] | None, cmd: str) -> str:
    tflops, seq = (peak[0] if peak else None), a.seq_len
    attention = next((r["attention"] for r in results.values() if "attention" in r), "?")
    header = ["rule", "sft/dpo/mix steps", "ms / step", "tokens / s", "fwd-only tokens / step",
              "MFU", "peak GiB", "time vs sequential", "time vs same steps", "memory vs sequential",
              "last loss sft / dpo"]  # fmt: skip
    types = type_stats(results, s, seq, tflops)
    per_type = [[k, label, f"{st['ms']:.1f}", f"{st['tokens']:,.0f}", f"{st['tps']:,.0f}",
                 mfu_text(st["mfu"])] for k, label, st in types]  # fmt: skip
    text = (
        describe(a, s, peak, cmd, attention)
        + table(header, rule_rows(results, s, seq, tflops))
        + "\n\nPer step type:\n\n"
        + table(["step", "from", "ms / step", "tokens / step", "tokens / s", "MFU"], per_type)
        + "\n"
    )
    sft = next((st["mfu"] for k, _, st in types if k == "sft"), None)
    if sft is not None:
        verdict = "met" if sft >= 0.4 else "not met"
        text += f"\nGoal, MFU ≥ 40 % on SFT steps: {verdict} ({mfu_text(sft)}).\n"
    return text


def refuse_without_cuda() -> None:
    """One line on stderr and exit status 1 unless there is a CUDA GPU with bf16."""
    import warnings

    import torch

    with warnings.catch_warnings():  # a broken driver warns; the line below says enough
        warnings.simplefilter("ignore")
        if not torch.cuda.is_available():
            sys.exit(f"gpu_check: needs a CUDA GPU (torch {torch.__version__} sees none)")
        if not torch.cuda.is_bf16_supported(including_emulation=False):
            name = torch.cuda.get_device_name(0)
            sys.exit(f"gpu_check: needs a GPU with bf16 (compute capability 8.0+), not {name}")


def parse(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m benchmarks.gpu_check", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)  # fmt: skip
    p.add_argument("--steps", type=int, help="timed optimizer steps per rule (default 40)")
    p.add_argument("--warmup", type=int, help="untimed rounds of an SFT and a DPO step (default 2)")
    p.add_argument("--batch-size", type=int, help="SFT rows / preference pairs per step (16)")
    p.add_argument("--seq-len", type=int, help="tokens in every row (default 1024)")
    p.add_argument("--budget", type=float, default=420.0,
                   help="seconds for the whole check (default 420); a rule stops stepping at the"
                        " end of its share, rules not reached are not started")  # fmt: skip
    p.add_argument(
        "--peak-tflops",
        type=float,
        help="the device's peak dense bf16 TFLOPS (default: from the table PEAKS)",
    )
    p.add_argument(
        "--rules",
        nargs="+",
        choices=list(RULES),
        default=DEFAULT_RULES,
        help="rules to run (sequential, the baseline, always runs)",
    )
    p.add_argument("--out", default="gpu_check.md", help="markdown file for the tables")
    p.add_argument("--cpu-smoke", action="store_true", help=argparse.SUPPRESS)  # for the tests
    a = p.parse_args(argv)
    small = {"steps": 4, "warmup": 1, "batch_size": 2, "seq_len": 32}
    full = {"steps": 40, "warmup": 2, "batch_size": 16, "seq_len": 1024}
    for k, v in (small if a.cpu_smoke else full).items():
        if getattr(a, k) is None:
            setattr(a, k, v)
        if getattr(a, k) < (8 if k == "seq_len" else 1):
            p.error(f"--{k.replace('_', '-')} must be at least {8 if k == 'seq_len' else 1}")
    if a.budget <= 0 or (a.peak_tflops is not None and a.peak_tflops <= 0):
        p.error("--budget and --peak-tflops must be positive")
    if not Path(a.out).resolve().parent.is_dir():  # found out now, not after minutes of work
        p.error(f"--out {a.out}: its directory does not exist")
    return a


def main(argv=None) -> str:
    start = time.time()
    argv = sys.argv[1:] if argv is None else list(argv)
    a = parse(argv)
    if not a.cpu_smoke:
        refuse_without_cuda()
    import torch

    s = SIZES["smoke" if a.cpu_smoke else "gpu"]
    if a.peak_tflops:
        peak = (a.peak_tflops, "--peak-tflops")
    else:
        peak = None if a.cpu_smoke else peak_tflops(torch.cuda.get_device_name(0))
    labels = ["sequential"] + [r for r in a.rules if r != "sequential"]
    with tempfile.TemporaryDirectory(prefix="gpu_check-") as tmp:
        print(f"gpu_check: building the model and the data in {tmp}", file=sys.stderr)
        setup = {"model_dir": str(build_model_dir(Path(tmp) / "model", s, a.seq_len)),
                 "data": write_data(Path(tmp) / "data", 4 * a.batch_size, a.seq_len),
                 "steps": a.steps, "warmup": a.warmup, "batch_size": a.batch_size,
                 "seq_len": a.seq_len, "precision": "bf16",
                 "threads": 1 if a.cpu_smoke else 0}  # fmt: skip
        results = run_rules(labels, setup, start + a.budget, one_process=a.cpu_smoke)
    text = report(results, a, s, peak, shlex.join(["python", "-m", "benchmarks.gpu_check", *argv]))
    print(text)
    Path(a.out).write_text(text, encoding="utf-8")
    return text


if __name__ == "__main__":
    main()
