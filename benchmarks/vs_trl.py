"""Our SFT-only and DPO-only training steps against TRL's SFTTrainer and DPOTrainer.

Same tiny model (same initial weights), same tokenizer, the same synthetic rows rendered to the
same prompt text, batch size, maximum length, precision (float32), optimizer (AdamW, β₂ = 0.95,
constant lr, clipping at 1), one torch thread, on CPU. Fresh process per measurement, variants
interleaved in rotated order within each round.

Throughput = training tokens per second: non-padding tokens the policy sees in its training
forward passes (counted by a forward pre-hook from ``attention_mask``) divided by step time.
Step time is measured the same way for both: the interval between consecutive step ends (so data
loading, collation, the reference pass, clipping and the optimizer are all inside), robust mean
after a warm-up. Peak memory is ``ru_maxrss`` of the process (the model, optimizer, data and the
libraries' imports included) and its growth during training.

TRL needs ``pip install trl`` (a benchmark-only dependency); without it the TRL rows are skipped
and the table says so.
"""

from __future__ import annotations

import argparse
import tempfile
import time

import numpy as np

from benchmarks.common import (
    load_average,
    med_spread,
    robust_mean,
    run_worker,
    table,
)
from toyopt.llm.engine import peak_rss_bytes

VARIANTS = ["ours sft", "trl sft", "ours dpo (precomputed ref)", "ours dpo (ref per batch)",
            "trl dpo (ref per batch, default)", "trl dpo (precompute_ref_log_probs)"]  # fmt: skip


class Counter:
    """Tokens of the policy's training forwards (grad enabled, training mode); ``passes`` lists
    (grad enabled, tokens) for every forward in training mode, those without grad included."""

    def __init__(self, model):
        import torch

        self.tokens = 0
        self.passes: list[tuple[bool, int]] = []

        def hook(module, args, kwargs):
            if module.training:
                mask = kwargs.get("attention_mask")
                ids = kwargs.get("input_ids", args[0] if args else None)
                n = int(mask.sum()) if mask is not None else int(ids.numel())
                grad = torch.is_grad_enabled()
                self.passes.append((grad, n))
                self.tokens += n if grad else 0

        model.register_forward_pre_hook(hook, with_kwargs=True)


def result(ends: list[float], tokens: list[int], warmup: int, rss0: int) -> dict:
    sec = np.diff(ends)[warmup:]
    tok = np.diff(tokens)[warmup:]
    return {"seconds": sec.tolist(), "tokens": tok.tolist(), "peak_rss": peak_rss_bytes(),
            "setup_rss": rss0}  # fmt: skip


def ours(kind: str, precompute: bool, steps: int, warmup: int, batch: int, length: int) -> dict:
    from toyopt.llm.config import TrainConfig
    from toyopt.llm.train import Run

    rule = "sequential-sft-dpo" if kind == "sft" else "sequential-dpo-sft"
    with tempfile.TemporaryDirectory() as tmp:
        cfg = TrainConfig(model="tiny", rule=rule, switch=steps + 1, steps=steps + 1, lr=1e-3,
                          batch_size=batch, max_length=length, precompute_ref=precompute,
                          output_dir=tmp, eval_every=10**6, save_every=0, progress=False)  # fmt: skip
        run = Run(cfg, log=lambda *a: None)
        count, ends, tokens = Counter(run.model), [], []
        rss0 = peak_rss_bytes()
        run.evaluation = lambda s: None  # measure training steps only

        def on_step(t, weights, losses, values):
            ends.append(time.perf_counter())
            tokens.append(count.tokens)

        run.on_step = on_step
        run.bar = None
        from toyopt.loop import train

        train(run.backend, run.rule, run.state, steps + 1, run.schedule, on_step=on_step)
    return result(ends, tokens, warmup, rss0)


def trl_data(kind: str, tok):
    from datasets import Dataset

    from toyopt.llm.encode import prompt_text
    from toyopt.llm.synthetic import make_rows

    rows = make_rows("sft_train" if kind == "sft" else "pref_train")
    for r in rows:
        r["prompt"] = prompt_text(tok, r["prompt"])
    return Dataset.from_list(rows)


def trl(kind: str, precompute: bool, steps: int, warmup: int, batch: int, length: int) -> dict:
    import torch
    from transformers import TrainerCallback

    from toyopt.llm.models import load_model

    torch.set_num_threads(1)  # as our trainer does for tiny
    model, tok = load_model("tiny")
    count, ends, tokens = Counter(model), [], []

    class Clock(TrainerCallback):
        def on_step_end(self, args, state, control, **kw):
            ends.append(time.perf_counter())
            tokens.append(count.tokens)

    common = dict(per_device_train_batch_size=batch, max_steps=steps + 1, learning_rate=1e-3,
                  lr_scheduler_type="constant", adam_beta2=0.95, max_grad_norm=1.0,
                  weight_decay=0.0, logging_steps=10**6, save_strategy="no", report_to=[],
                  use_cpu=True, bf16=False, fp16=False, disable_tqdm=True,
                  dataloader_num_workers=0, max_length=length, seed=0)  # fmt: skip
    with tempfile.TemporaryDirectory() as tmp:
        if kind == "sft":
            from trl import SFTConfig, SFTTrainer

            args = SFTConfig(output_dir=tmp, packing=False, **common)
            trainer = SFTTrainer(model=model, args=args, train_dataset=trl_data(kind, tok),
                                 processing_class=tok, callbacks=[Clock()])  # fmt: skip
        else:
            from trl import DPOConfig, DPOTrainer

            args = DPOConfig(
                output_dir=tmp, beta=0.1, precompute_ref_log_probs=precompute, **common
            )
            # TRL would copy the policy as its reference; tiny has no hub name, so we hand it the
            # same copy (identical weights, as load_model('tiny') is deterministic)
            ref = load_model("tiny")[0]
            trainer = DPOTrainer(model=model, ref_model=ref, args=args, processing_class=tok,
                                 train_dataset=trl_data(kind, tok), callbacks=[Clock()])  # fmt: skip
        rss0 = peak_rss_bytes()
        trainer.train()
    return result(ends, tokens, warmup, rss0)


def worker(variant: str, steps: int, warmup: int, batch: int, length: int) -> dict:
    kind = "sft" if "sft" in variant else "dpo"
    precompute = "precompute" in variant
    fn = ours if variant.startswith("ours") else trl
    return fn(kind, precompute, steps, warmup, batch, length)


def have_trl() -> str | None:
    """None when trl imports, else the import error."""
    try:
        import trl  # noqa: F401
    except Exception as err:  # any import failure is reported in the table
        return f"{type(err).__name__}: {err}"
    return None


def main(argv=None) -> str:
    p = argparse.ArgumentParser(prog="python -m benchmarks.vs_trl", description=__doc__)
    p.add_argument("--steps", type=int, default=150, help="timed steps per run")
    p.add_argument("--warmup", type=int, default=10)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--max-length", type=int, default=128)
    p.add_argument("--variants", nargs="+", choices=VARIANTS, default=VARIANTS)
    a = p.parse_args(argv)
    missing = have_trl()
    variants = [v for v in a.variants if not (missing and v.startswith("trl"))]
    res: dict[str, list[dict]] = {v: [] for v in variants}
    for r in range(a.repeats):
        for v in variants[r % len(variants) :] + variants[: r % len(variants)]:
            res[v].append(run_worker("vs_trl", {"variant": v, "steps": a.steps,
                "warmup": a.warmup, "batch": a.batch_size, "length": a.max_length}))  # fmt: skip
    text = report(res, a, missing)
    print(text)
    return text


def report(res: dict[str, list[dict]], a, missing: str | None) -> str:
    def tps(x):
        return float(np.mean(x["tokens"]) / robust_mean(x["seconds"]))

    rows = []
    for v, runs in res.items():
        kind = "sft" if "sft" in v else "dpo"
        base = res.get(f"trl {kind}" if kind == "sft" else "trl dpo (ref per batch, default)")
        t = [tps(x) for x in runs]
        peak = [x["peak_rss"] / 2**20 for x in runs]
        ratio = [tps(x) / tps(b) for x, b in zip(runs, base)] if base else []
        mratio = [x["peak_rss"] / b["peak_rss"] for x, b in zip(runs, base)] if base else []
        grow = [(x["peak_rss"] - x["setup_rss"]) / 2**20 for x in runs]
        rows.append([v, med_spread([1e3 * robust_mean(x["seconds"]) for x in runs]),
                     f"{np.mean(runs[0]['tokens']):.0f}", med_spread(t),
                     med_spread(ratio) if ratio else "–", med_spread(peak),
                     med_spread(mratio) if mratio else "–", med_spread(grow)])  # fmt: skip
    header = ["variant", "ms / step", "tokens / step", "tokens / s", "tokens/s ÷ TRL",
              "peak RSS MiB", "peak ÷ TRL", "RSS growth in training MiB"]  # fmt: skip
    cmd = f"python -m benchmarks.vs_trl --steps {a.steps} --repeats {a.repeats}"
    note = f"\n\nTRL rows skipped: {missing}" if missing else ""
    try:
        import transformers
        import trl

        versions = f"trl {trl.__version__}, transformers {transformers.__version__}"
    except Exception:
        versions = "trl not installed"
    return (
        f"### Against TRL (tiny model, batch {a.batch_size}, max length {a.max_length}, "
        f"float32, CPU, 1 thread; {versions})\n\n"
        f"Command: `{cmd}`. Median [min–max] over {a.repeats} interleaved fresh-process runs "
        f"of {a.steps} timed steps; ratios against TRL's default of the same objective (per "
        f"round); load average at the end: {load_average()}.{note}\n\n" + table(header, rows) + "\n"
    )


if __name__ == "__main__":
    main()
