"""The trainer on several processes through Hugging Face Accelerate (DDP, FSDP2, DeepSpeed ZeRO).

Launch: ``accelerate launch [--config_file CFG.yaml] -m toyopt.llm train ...`` (see
``toyopt/llm/accelerate_configs/``). What stays the same as one process:

- **The rule's choice.** Every process holds the same rule state and calls ``rule.choose`` with
  the same inputs: ALRIGHT's coin is ``uniform(seed, step, STREAM_CHOICE)`` (counter-based, no
  communication), the sequential rules read the step, and MAXRIGHT's values are all-reduced
  (summed shard contributions, so every process sees the *global*-batch values) before it chooses.
- **The global batch.** ``batch_size`` counts the rows of one optimizer step over all processes.
  Step t's global batch is the single-process batch ``batch_indices(seed, t, …)``; process r of
  W takes the r-th contiguous W-th of it and splits that into ``grad_accum`` micro-batches of
  ``batch_size / (W · grad_accum)`` rows (which must be a whole number).
- **The loss.** Each micro-batch contributes its share of the global-batch loss: SFT (a token
  mean) Σ_tokens nll / N with N the response-token count of the whole global batch (every process
  knows the global rows, so N needs no communication); DPO (a pair mean) Σ_pairs ℓ / B. The shares
  sum to the single-process loss, so the update is the single-process update up to float
  rounding: we back-propagate W · grad_accum · share because DDP/FSDP/DeepSpeed average gradients
  over the W processes and Accelerate divides by ``grad_accum``.

Every process runs the same number of forward passes (values, micro-batches, evaluation chunks),
as engines that gather parameters (FSDP) or broadcast buffers (DDP) in forward require.
"""

from __future__ import annotations

import os

import numpy as np
import torch
import torch.nn.functional as F

from toyopt.llm.backend import LMBackend, batch_indices, pair_rows
from toyopt.llm.encode import collate
from toyopt.llm.losses import sequence_logps, token_nll
from toyopt.llm.scoring import chunks
from toyopt.rng import STREAM_BATCH
from toyopt.rules import OBJECTIVES, Weights
from toyopt.torch_backend import row_weights

Rows = list[tuple[list[int], list[int]]]
ENGINE_FLAGS = ("ACCELERATE_USE_DEEPSPEED", "ACCELERATE_USE_FSDP")


def wanted(cfg) -> bool:
    """Whether ``cfg`` needs the Accelerate path: several processes, an engine, gradient
    accumulation or mixed precision. Otherwise the single-process trainer runs, unchanged."""
    env = os.environ
    mixed = cfg.precision == "bf16" or (
        cfg.precision == "auto" and env.get("ACCELERATE_MIXED_PRECISION", "no") not in ("no", "")
    )
    engine = any(env.get(k, "").lower() == "true" for k in ENGINE_FLAGS)
    return int(env.get("WORLD_SIZE", "1")) > 1 or cfg.grad_accum > 1 or mixed or engine


def make_accelerator(cfg):
    """An ``Accelerator`` with the run's gradient accumulation and precision (auto: whatever the
    accelerate config or ``--mixed_precision`` says; fp32: none; bf16: autocast to bfloat16)."""
    from accelerate import Accelerator

    precision = {"auto": None, "fp32": "no", "bf16": "bf16"}[cfg.precision]
    world = int(os.environ.get("WORLD_SIZE", "1"))
    # `accelerate launch --multi_gpu` on a machine without accelerators starts torchrun processes
    # that accelerate would leave unconnected unless told to use the CPU (gloo)
    cpu = world > 1 and torch.accelerator.current_accelerator() is None
    acc = Accelerator(
        gradient_accumulation_steps=cfg.grad_accum, mixed_precision=precision, cpu=cpu
    )
    if acc.num_processes != world:
        raise ValueError(f"launched {world} processes but accelerate connected {acc.num_processes}")
    return acc


def on(acc, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The batch on the process's device (the engine has put the model there)."""
    return {k: v.to(acc.device) for k, v in batch.items()}


def target_tokens(rows: Rows) -> int:
    """Response tokens the SFT loss averages over (label positions 1… of each collated row)."""
    return sum(len(r) - (len(p) == 0) for p, r in rows)


def my_part(items: list, rank: int, world: int) -> list:
    """The ``rank``-th of ``world`` contiguous, nearly equal parts of ``items``."""
    bounds = np.linspace(0, len(items), world + 1).round().astype(int)
    return items[bounds[rank] : bounds[rank + 1]]


class ShardedBackend(LMBackend):
    """:class:`LMBackend` on one process of W: this rank's micro-batches of each global batch.

    ``values()`` and ``step()`` return global-batch losses (all-reduced shares, identical on every
    process). ``values()`` runs both objectives without gradients (one forward more than the
    single-process backend, which keeps one graph, but no graph held across engine calls)."""

    def __init__(self, accelerator, model, optimizer, sft_rows, pref_rows, **kw):
        super().__init__(model, optimizer, sft_rows, pref_rows, **kw)
        self.acc = accelerator
        self.world, self.rank = accelerator.num_processes, accelerator.process_index
        self.accum = accelerator.gradient_accumulation_steps
        parts = self.world * self.accum
        if self.batch_size % parts:
            raise ValueError(
                f"batch_size {self.batch_size} must be a multiple of processes x grad_accum"
                f" = {self.world} x {self.accum}"
            )

    def micro(self, idx: np.ndarray) -> list[np.ndarray]:
        """This rank's slice of the global batch ``idx``, cut into ``grad_accum`` micro-batches."""
        return np.split(my_part(idx, self.rank, self.world), self.accum)

    def shares(self, name: str, step: int) -> list:
        """Per micro-batch, a closure computing its share of the global-batch loss ``name``."""
        if name == "sft":
            idx = batch_indices(self.seed, step, len(self.sft_rows), self.batch_size,
                                STREAM_BATCH["sft"])  # fmt: skip
            total = max(target_tokens([self.sft_rows[i] for i in idx]), 1)

            def sft(part):
                rows = [self.sft_rows[i] for i in part]
                nll, _ = token_nll(self.model, on(self.acc, collate(rows, self.pad_id)))
                return nll.sum() / total

            return [lambda p=part: sft(p) for part in self.micro(idx)]
        pairs = batch_indices(self.seed, step, len(self.pref_rows) // 2, self.batch_size,
                              STREAM_BATCH["dpo"])  # fmt: skip
        return [lambda p=part: self.dpo_share(p) for part in self.micro(pairs)]

    def dpo_share(self, pairs: np.ndarray) -> torch.Tensor:
        batch = on(self.acc, collate(pair_rows(self.pref_rows, pairs), self.pad_id))
        if self.ref_logps is not None:
            ref = self.ref_logps[torch.as_tensor(pairs)].to(self.acc.device)
        else:
            with torch.no_grad():
                ref = self.ref_fn(batch).view(-1, 2)
        policy = sequence_logps(self.model, batch).view(-1, 2)
        margins = self.beta * ((policy[:, 0] - ref[:, 0]) - (policy[:, 1] - ref[:, 1]))
        return -F.logsigmoid(margins).sum() / self.batch_size

    def global_sum(self, local: dict[str, float]) -> dict[str, np.ndarray]:
        """Sum each objective's shares over the processes (one all-reduce)."""
        names = sorted(local)
        local = torch.tensor([local[k] for k in names], dtype=torch.float64, device=self.acc.device)
        return {k: np.array([v]) for k, v in zip(names, self.acc.reduce(local).tolist())}

    def values(self) -> dict[str, np.ndarray]:
        """Both objectives on the next step's global batch, without gradients."""
        with torch.no_grad():
            local = {k: sum(float(f()) for f in self.shares(k, self.next_step)) for k in OBJECTIVES}
        return self.global_sum(local)

    def step(self, weights: Weights, lr: float, step: int) -> dict[str, np.ndarray]:
        """One optimizer step along Σ_k w_k ∇f_k(global batch), accumulated over micro-batches."""
        w = row_weights(weights)
        on = [k for k in OBJECTIVES if w[k] > 0]
        for group in self.optimizer.param_groups:
            group["lr"] = lr
        shares = {k: self.shares(k, step) for k in on}
        local = dict.fromkeys(on, 0.0)
        scale = self.world * self.accum  # undoes the engines' averaging (module docstring)
        for m in range(self.accum):
            with self.acc.accumulate(self.model):
                parts = {k: shares[k][m]() for k in on}
                self.acc.backward(scale * sum(w[k] * parts[k] for k in on))
            for k in on:
                local[k] += float(parts[k].detach())
        if self.max_grad_norm is not None and self.acc.sync_gradients:
            self.acc.clip_grad_norm_(self.model.parameters(), self.max_grad_norm)
        self.optimizer.step()
        self.optimizer.zero_grad(set_to_none=True)
        self.last = "dpo" if w["dpo"] > w["sft"] else "sft"
        self.next_step = step + 1
        return self.global_sum(local)


@torch.no_grad()
def evaluate_sharded(acc, model, sft_rows: Rows, pref_rows: Rows, ref: torch.Tensor, beta: float,
                     pad_id: int, size: int) -> dict[str, float]:  # fmt: skip
    """:func:`toyopt.llm.scoring.evaluate` with each chunk of ``size`` rows split over the
    processes (every process runs one forward per chunk, an empty part reruns the chunk's first
    row and discards it); sums are all-reduced, so the numbers are the single-process ones."""
    rank, world = acc.process_index, acc.num_processes
    was_training = model.training
    model.eval()
    sums = torch.zeros(4, dtype=torch.float64)  # nll, tokens, dpo loss sum, pairs
    for c in chunks(sft_rows, size):
        part = my_part(c, rank, world)
        nll, mask = token_nll(model, on(acc, collate(part or c[:1], pad_id)))
        if part:
            sums[0] += float(nll.sum())
            sums[1] += int(mask.sum())
    pairs = list(range(len(pref_rows) // 2))
    for c in chunks(pairs, size):
        part = my_part(c, rank, world)
        logps = sequence_logps(model, on(acc, collate(pair_rows(pref_rows, part or c[:1]), pad_id)))
        if part:
            r = ref[torch.as_tensor(part)].to(logps.device)
            policy = logps.view(-1, 2)
            margins = beta * ((policy[:, 0] - r[:, 0]) - (policy[:, 1] - r[:, 1]))
            sums[2] += float(-F.logsigmoid(margins).sum())
            sums[3] += len(part)
    model.train(was_training)
    nll, tokens, dpo, n = acc.reduce(sums.to(acc.device)).tolist()
    return {"eval_sft": nll / max(tokens, 1), "eval_dpo": dpo / max(n, 1)}
