"""What :mod:`benchmarks.gpu_check` runs: the model directory and data it builds, and one rule's
warm-up and timed steps through the trainer, in a worker process (``benchmarks.worker``).

The trainer is driven as :mod:`benchmarks.rules_cost` drives it (its configs; ``toyopt.loop.train``
on the Run's backend, rule and schedule, with our own ``on_step``), the GPU synchronised only where
a step's end must be exact. Tokens are counted by :class:`benchmarks.vs_trl.Counter`'s hook.
"""

from __future__ import annotations

import dataclasses
import json
import tempfile
import time
from pathlib import Path

import numpy as np

from benchmarks.rules_cost import config
from benchmarks.vs_trl import Counter


class OutOfTime(Exception):
    """A rule reached the end of its share of the time budget."""


def llama(s: dict, tok, seq_len: int):
    """A Llama of sizes ``s`` (tied embeddings) with random weights from ``TINY_INIT_SEED``."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    from toyopt.llm.models import TINY_INIT_SEED

    cfg = LlamaConfig(vocab_size=s["vocab"], hidden_size=s["hidden"],
                      num_hidden_layers=s["layers"], num_attention_heads=s["heads"],
                      num_key_value_heads=s["kv_heads"], intermediate_size=s["intermediate"],
                      max_position_embeddings=max(2048, seq_len), tie_word_embeddings=True,
                      pad_token_id=tok.pad_token_id, eos_token_id=tok.eos_token_id,
                      bos_token_id=tok.eos_token_id)  # fmt: skip
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(TINY_INIT_SEED)
        return LlamaForCausalLM(cfg)


def build_model_dir(out: Path, s: dict, seq_len: int) -> Path:
    """``llama(s)`` and the tiny model's tokenizer (trained locally), saved as a model directory."""
    from toyopt.llm.models import tiny_tokenizer

    tok = tiny_tokenizer()
    llama(s, tok, seq_len).save_pretrained(out)
    tok.save_pretrained(out)
    return out


def write_data(out: Path, rows: int, seq_len: int) -> dict[str, str]:
    """SFT and preference JSONL (and two-row eval files) of synthetic words. Each response has
    ``seq_len`` words, at least one token each, so truncation to ``seq_len`` tokens leaves every
    row exactly ``seq_len`` long (the prompt keeps at most half, see toyopt.llm.encode)."""
    from toyopt.llm.synthetic import PREAMBLE, WORDS
    from toyopt.rng import hash64

    def words(stream: int, row: int, n: int) -> str:
        h = hash64(0, row, stream, np.arange(n, dtype=np.uint64)) % np.uint64(len(WORDS))
        return " ".join(WORDS[int(i)] for i in h)

    def make(stream: int, kind: str, n: int) -> list[dict]:
        out = []
        for i in range(n):
            prompt, text = "Repeat: " + words(stream, i, 16), words(stream + 10, i, seq_len)
            if kind == "sft":
                out.append({"prompt": prompt, "completion": text})
            else:
                out.append({"prompt": prompt, "chosen": f"{PREAMBLE} {text}", "rejected": text})
        return out

    out.mkdir(parents=True, exist_ok=True)
    files = {"sft_data": (1, "sft", rows), "pref_data": (2, "pref", rows),
             "sft_eval": (3, "sft", 2), "pref_eval": (4, "pref", 2)}  # fmt: skip
    paths = {}
    for name, (stream, kind, n) in files.items():
        paths[name] = str(out / f"{name}.jsonl")
        Path(paths[name]).write_text("".join(json.dumps(r) + "\n" for r in make(stream, kind, n)))
    return paths


def run_config(label: str, setup: dict, out: str):
    """The trainer's config of one rule (rules_cost's, on this model and data)."""
    cfg = config(label, setup["steps"], setup["batch_size"], out)
    return dataclasses.replace(cfg, model=setup["model_dir"], max_length=setup["seq_len"],
                               precision=setup["precision"], lr=1e-4, eval_batch_size=4,
                               threads=setup["threads"], **setup["data"])  # fmt: skip


def warm_up(backend, rounds: int, lr: float) -> None:
    """Pay the first-call costs (lazy kernel loading, cuBLAS workspaces, allocator growth, AdamW's
    state) before timing: ``rounds`` × (an SFT step, then a DPO step) on step 0's batches, never
    both graphs at once; then the backend starts afresh as a new run's does (the rule's state is
    not touched, so the timed steps are the rule's steps 0, 1, …)."""
    from toyopt.rules import OBJECTIVES

    for _ in range(rounds):
        for k in OBJECTIVES:
            backend.step({j: np.array([float(j == k)]) for j in OBJECTIVES}, lr, 0)
    backend.next_step, backend.last = 0, "sft"


def check_lengths(data, seq_len: int) -> None:
    """Every training row is ``seq_len`` tokens long, so no batch holds padding."""
    lengths = sorted({len(p) + len(r) for p, r in data.sft_train + data.pref_train})
    if lengths != [seq_len]:
        raise ValueError(f"training rows of {lengths[:5]} tokens, not all {seq_len}: padding")


class Steps:
    """``on_step`` of the timed loop. Per step: wall seconds since the previous step's end, the
    objective, the tokens of back-propagated forwards (the last one per objective stepped on: a
    MAXRIGHT refresh's kept forward is reused, or wasted when the rule switches) and of
    forward-only ones, from the Counter's passes; the last loss of each objective. Raises
    OutOfTime once ``stop_at`` (time.time()) has passed."""

    def __init__(self, counter, stop_at: float):
        self.counter, self.stop_at, self.end = counter, stop_at, time.perf_counter()
        self.rec: dict = {"seconds": [], "objective": [], "trained": [], "forward_only": [],
                          "loss": {}}  # fmt: skip

    def __call__(self, t, weights, losses, values) -> None:
        from toyopt.llm.train import objective_label

        now, rec = time.perf_counter(), self.rec
        passes, self.counter.passes[:] = list(self.counter.passes), []
        trained = sum([n for grad, n in passes if grad][-len(losses) :])
        rec["seconds"].append(now - self.end)
        rec["objective"].append(objective_label(weights))
        rec["trained"].append(trained)
        rec["forward_only"].append(sum(n for _, n in passes) - trained)
        rec["loss"].update({k: float(v[0]) for k, v in losses.items()})
        self.end = now
        if time.time() > self.stop_at:
            raise OutOfTime

    def finish(self) -> None:
        """The last step ends when the GPU has finished it (its optimizer kernels run async)."""
        if self.rec["seconds"]:
            self.rec["seconds"][-1] += time.perf_counter() - self.end


def measure_rule(label: str, setup: dict, stop_at: float) -> dict:
    """Set up one rule's run, warm up, take the timed steps; the record of :class:`Steps`."""
    import torch

    from toyopt.llm.engine import peak_memory
    from toyopt.llm.train import Run
    from toyopt.loop import train

    cuda = torch.cuda.is_available()
    with tempfile.TemporaryDirectory() as tmp:
        run = Run(run_config(label, setup, tmp), log=lambda *a: None)
        try:
            check_lengths(run.data, setup["seq_len"])
            warm_up(run.backend, setup["warmup"], run.cfg.lr)
            counter = Counter(run.model)  # from here on (not the reference pass, nor warm-up)
            if cuda:
                torch.cuda.synchronize()
                torch.cuda.reset_peak_memory_stats()
            steps, status = Steps(counter, stop_at), "ok"
            try:
                train(run.backend, run.rule, run.state, run.cfg.steps, run.schedule, on_step=steps)
            except OutOfTime:
                status = "stopped at the time budget"
            if cuda:
                torch.cuda.synchronize()
            steps.finish()
            attention = run.engine.unwrap(run.model).config._attn_implementation
            return {**steps.rec, **peak_memory(), "status": status, "attention": attention}
        finally:
            run.metrics.close()
            run.owned.release()


def worker(labels: list[str], setup: dict, stop_at: float) -> dict:
    """Each rule in ``labels``, in this process, with an equal share of the time left before
    ``stop_at``; a rule out of GPU memory is reported as such."""
    import gc

    import torch

    out = {}
    for i, label in enumerate(labels):
        share = (stop_at - time.time()) / (len(labels) - i)
        try:
            out[label] = measure_rule(label, setup, time.time() + share)
        except torch.OutOfMemoryError:  # the row says so; the other rules still run
            out[label] = {"status": "out of GPU memory"}
            if torch.cuda.is_available():
                used = torch.cuda.max_memory_allocated() / 2**30
                total = torch.cuda.get_device_properties(0).total_memory / 2**30
                out[label]["status"] += f" ({used:.1f} of {total:.0f} GiB at the failure)"
                gc.collect()  # the failed run's tensors, before the next rule (if any) starts
                torch.cuda.empty_cache()
    return out
