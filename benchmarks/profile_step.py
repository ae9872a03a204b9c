"""Where a training step's time goes: one SFT and one DPO step of the trainer, under torch's
profiler, CPU time grouped by what each operation computes.

``python -m benchmarks.profile_step --model smollm2`` profiles SmolLM2-135M-Instruct with LoRA
(r = 16, all linear layers; the settings of ``benchmarks.rules_cost``: batch 8, λ = ½, one
thread), after one untimed step of each objective. Matrix products are told apart by the sizes of
their operands, which name the layer that runs them (for SmolLM2: hidden 576, MLP 1536, key/value
192, vocabulary 49 152, LoRA rank 16); everything else (element-wise products and sums, norms,
RoPE, copies) is one group, attention (SDPA) another, the optimizer's own ops a third.
"""

from __future__ import annotations

import argparse
import tempfile

# (group, operand size that identifies it), first match wins; checked on a matrix product's shapes
MM_GROUPS = [
    ("mm: output layer (vocabulary)", 49152),
    ("mm: LoRA adapters", 16),
    ("mm: MLP", 1536),
    ("mm: attention projections", 576),
]


def group_of(name: str, shapes: list) -> str:
    """The group of one profiled operation from its name and its inputs' shapes."""
    if name in ("aten::mm", "aten::addmm", "aten::bmm"):
        sizes = {d for s in shapes if s for d in s}
        return next((g for g, size in MM_GROUPS if size in sizes), "mm: other")
    if "scaled_dot_product" in name:
        return "attention (SDPA)"
    if "log_softmax" in name or "nll_loss" in name or "cross_entropy" in name:
        return "log-softmax / NLL"
    if "_foreach" in name or "adam" in name.lower():
        return "optimizer"
    return "other ops (element-wise, copies, norms, RoPE, embedding)"


def profile(objective: str, run) -> tuple[float, dict[str, float]]:
    """Total self CPU seconds of one step on ``objective`` and their split by group."""
    import numpy as np
    from torch.profiler import ProfilerActivity
    from torch.profiler import profile as torch_profile

    w = {"sft": np.array([float(objective == "sft")]), "dpo": np.array([float(objective == "dpo")])}
    run.backend.step(w, run.schedule(0), 0)  # warm-up: allocator, kernels chosen
    with torch_profile(activities=[ProfilerActivity.CPU], record_shapes=True) as prof:
        run.backend.step(w, run.schedule(1), 1)
    groups: dict[str, float] = {}
    for e in prof.key_averages(group_by_input_shape=True):
        if e.self_cpu_time_total > 0:
            g = group_of(e.key, e.input_shapes)
            groups[g] = groups.get(g, 0.0) + e.self_cpu_time_total / 1e6
    return sum(groups.values()), groups


def main(argv=None) -> str:
    from benchmarks.common import load_average, table
    from benchmarks.rules_cost import MODELS, make_run

    p = argparse.ArgumentParser(prog="python -m benchmarks.profile_step", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)  # fmt: skip
    p.add_argument("--model", choices=list(MODELS), default="smollm2")
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--threads", type=int, default=1)
    a = p.parse_args(argv)
    setup = {"model": a.model, "threads": a.threads, "batch_size": a.batch_size}
    with tempfile.TemporaryDirectory() as tmp:
        run = make_run("sequential", setup, 4, tmp)
        got = {o: profile(o, run) for o in ("sft", "dpo")}
    names = sorted(
        {g for _, groups in got.values() for g in groups}, key=lambda g: -got["sft"][1].get(g, 0)
    )
    rows = [[g] + [f"{100 * got[o][1].get(g, 0.0) / got[o][0]:.1f} %" for o in got] for g in names]
    rows.append(["**self CPU time of the step**"] + [f"{got[o][0]:.2f} s" for o in got])
    text = "\n".join([
        f"### Where a step's time goes ({a.model}, batch {a.batch_size}, {a.threads} thread)",
        "",
        f"`python -m benchmarks.profile_step --model {a.model}`: one profiled step of each"
        " objective after an untimed one (torch.profiler, self CPU time by group; see the"
        f" module's docstring). Load average (1/5/15 min) at the end: {load_average()}.",
        "",
        table(["what", "SFT step", "DPO step"], rows),
    ])  # fmt: skip
    print(text)
    return text


if __name__ == "__main__":
    main()
