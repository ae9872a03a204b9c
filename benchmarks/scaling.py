"""Scaling: time per optimizer step against sequence length and batch size.

One SFT training step as the trainer takes it (``sft_loss`` forward, backward, clipping at 1,
AdamW) on batches of random tokens of exactly L tokens per row (half prompt, half response), for
the tiny model (all weights) and SmolLM2-135M (LoRA r = 16 on all linear layers), on 1 torch
thread (and SmolLM2 once more on 2 threads). Every (model, B, L) point is timed ``repeats`` times,
the points interleaved in rotated order within each round after one warm-up step. The
"µs / token" column answers "is cost linear in tokens": constant means linear; it falls where a
fixed per-step cost dominates and rises where attention's L² term or cache misses start to bite.
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from benchmarks.common import load_average, med_spread, run_worker, table

GRIDS = {  # model: [(batch, length)]
    "tiny": [(8, L) for L in (32, 64, 128, 256, 512)] + [(B, 128) for B in (1, 2, 4, 16, 32)],
    # SmolLM2 costs ~50 ms per token on 2 shared cores: a small grid keeps the run in minutes
    "smollm2": [(1, L) for L in (16, 32, 64, 128)] + [(B, 32) for B in (2, 4)],
    "smollm2@2": [(1, 32), (4, 32)],  # the same model on 2 threads: shared cores punish it
}
QUICK = {"tiny": [(2, 16), (4, 16), (2, 32)], "smollm2": [], "smollm2@2": []}


def one_step(model, opt, batch) -> None:
    import torch

    from toyopt.llm.losses import sft_loss

    opt.zero_grad(set_to_none=True)
    sft_loss(model, batch).backward()
    torch.nn.utils.clip_grad_norm_([p for p in model.parameters() if p.requires_grad], 1.0)
    opt.step()


def worker(model_name: str, points: list, repeats: int) -> dict:
    """Seconds per step of each (batch, length) point, measured in this process.

    ``name@N`` runs on N torch threads, else 1 (the trainer's choice for tiny, ``--threads 1``
    for SmolLM2: on 2 cores shared with other work, 2 threads ran a SmolLM2 step 2-10x slower)."""
    import torch

    from toyopt.llm.encode import collate
    from toyopt.llm.models import add_lora, load_model

    model_name, _, threads = model_name.partition("@")
    torch.set_num_threads(int(threads or 1))
    model, tok = load_model(model_name)
    if model_name != "tiny":
        model = add_lora(model, 16, 16.0, "all-linear")
    model.train()
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=1e-5, betas=(0.9, 0.95))
    gen = torch.Generator().manual_seed(0)

    def batch(b, length):
        ids = torch.randint(2, len(tok), (b, length), generator=gen).tolist()
        return collate([(r[: length // 2], r[length // 2 :]) for r in ids], tok.pad_token_id)

    batches = {tuple(p): batch(*p) for p in points}
    one_step(model, opt, batches[tuple(points[0])])  # warm-up (first-call costs)
    out: dict[str, list[float]] = {f"{b}x{n}": [] for b, n in points}
    for r in range(repeats):
        for b, n in points[r % len(points) :] + points[: r % len(points)]:
            t0 = time.perf_counter()
            one_step(model, opt, batches[(b, n)])
            out[f"{b}x{n}"].append(time.perf_counter() - t0)
    return {"seconds": out, "threads": torch.get_num_threads()}


def main(argv=None) -> str:
    p = argparse.ArgumentParser(prog="python -m benchmarks.scaling", description=__doc__)
    p.add_argument("--repeats", type=int, default=5, help="timed steps per point (tiny)")
    p.add_argument("--big-repeats", type=int, default=2, help="timed steps per point (smollm2)")
    p.add_argument("--models", default="tiny,smollm2,smollm2@2")
    p.add_argument("--quick", action="store_true", help="a few tiny points (tests)")
    a = p.parse_args(argv)
    rows = []
    for name in a.models.split(","):
        points = (QUICK if a.quick else GRIDS)[name]
        if not points:
            continue
        reps = a.repeats if name == "tiny" else a.big_repeats
        res = run_worker("scaling", {"model_name": name, "points": points, "repeats": reps})
        first = None
        for b, n in points:
            sec = np.array(res["seconds"][f"{b}x{n}"])
            per_tok = 1e6 * np.median(sec) / (b * n)
            first = first or per_tok
            rows.append([f"{name.partition('@')[0]} ({res['threads']} thr)", b, n, b * n, med_spread(1e3 * sec),
                         f"{per_tok:.1f}", f"{per_tok / first:.2f}"])  # fmt: skip
    cmd = f"python -m benchmarks.scaling --repeats {a.repeats} --big-repeats {a.big_repeats}"
    text = (
        "### Scaling: one SFT step against batch size B and sequence length L\n\n"
        f"Command: `{cmd}`. Median [min–max] over the interleaved repeats; load average "
        f"at the end: {load_average()}.\n\n"
        + table(
            ["model", "B", "L", "tokens", "ms / step", "µs / token", "µs/token ÷ first row"], rows
        )  # fmt: skip
        + "\n"
    )
    print(text)
    return text


if __name__ == "__main__":
    main()
