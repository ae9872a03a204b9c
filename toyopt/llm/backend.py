"""The language-model backend of :func:`toyopt.loop.train`: the shares of each step's batches.

The SFT and preference batches of step t are a pure function of (seed, t) (a counter-based
permutation per epoch, streams ``STREAM_BATCH``), whatever the rule chose before. So every rule
sees the same data at the same step, ``values()`` evaluates both objectives on the very batches
the following ``step()`` trains on, and a resumed run draws the same batches.

``batch_size`` counts the rows of one optimizer step over all processes (the *global* batch).
Process r of W takes the r-th contiguous W-th of step t's global batch and splits it into the
engine's ``grad_accum`` micro-batches of ``batch_size / (W · grad_accum)`` rows (a whole number).
Each micro-batch contributes its *share* of the global-batch loss: SFT (a token mean)
Σ_tokens nll / N with N the response-token count of the whole global batch (every process knows
the global rows, so N needs no communication); DPO (a pair mean) Σ_pairs ℓ / B. The shares of all
processes sum to the single-process loss (see :class:`toyopt.torch_backend.TorchBackend` for the
step). With one process and no accumulation there is one share: the batch loss itself.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch

from toyopt.llm.encode import collate
from toyopt.llm.losses import dpo_losses, sequence_logps, token_nll
from toyopt.rng import STREAM_BATCH, uniform
from toyopt.torch_backend import LossFn, TorchBackend

Rows = list[tuple[list[int], list[int]]]


def batch_indices(seed: int, step: int, n: int, size: int, stream: int) -> np.ndarray:
    """Rows of step ``step``: positions step·size … of the infinite sequence of epochs, epoch e
    being the permutation argsort(uniform(seed, e, stream, 0…n−1))."""
    pos = np.arange(step * size, (step + 1) * size)
    epochs, offsets = pos // n, pos % n
    out = np.empty(size, dtype=np.int64)
    for e in np.unique(epochs):
        perm = np.argsort(uniform(seed, int(e), stream, np.arange(n)), kind="stable")
        out[epochs == e] = perm[offsets[epochs == e]]
    return out


def pair_rows(rows: Rows, pairs) -> Rows:
    """Chosen and rejected rows (2i, 2i+1) of the given preference pairs, interleaved."""
    return [rows[2 * int(i) + j] for i in pairs for j in (0, 1)]


def my_part(items, rank: int, world: int):
    """The ``rank``-th of ``world`` contiguous, nearly equal parts of ``items``."""
    bounds = np.linspace(0, len(items), world + 1).round().astype(int)
    return items[bounds[rank] : bounds[rank + 1]]


def target_tokens(rows: Rows) -> int:
    """Response tokens the SFT loss averages over (label positions 1… of each collated row)."""
    return sum(len(r) - (len(p) == 0) for p, r in rows)


def to_device(batch: dict[str, torch.Tensor], device) -> dict[str, torch.Tensor]:
    return {k: v.to(device) for k, v in batch.items()}


class LMBackend(TorchBackend):
    """SFT and DPO shares of ``model`` on the step's batches; ``ref_logps`` (pairs, 2) are the
    precomputed reference log-probs, or ``ref_fn(batch) -> (2·pairs,)`` computes them per batch.
    ``engine`` (default: one process) says which part of each global batch is this process's."""

    def __init__(
        self,
        model: torch.nn.Module,
        optimizer: torch.optim.Optimizer,
        sft_rows: Rows,
        pref_rows: Rows,
        *,
        seed: int,
        batch_size: int,
        beta: float,
        pad_id: int,
        ref_logps: torch.Tensor | None = None,
        ref_fn: Callable[[dict], torch.Tensor] | None = None,
        max_grad_norm: float | None = None,
        engine=None,
    ):
        if (ref_logps is None) == (ref_fn is None):
            raise ValueError("give exactly one of ref_logps and ref_fn")
        super().__init__({}, optimizer, max_grad_norm, engine)
        self.model, self.sft_rows, self.pref_rows = model, sft_rows, pref_rows
        self.seed, self.batch_size, self.beta, self.pad_id = seed, batch_size, beta, pad_id
        self.ref_logps, self.ref_fn = ref_logps, ref_fn
        self.device = next(model.parameters()).device
        parts = self.engine.num_processes * self.engine.grad_accum
        if batch_size % parts:
            raise ValueError(
                f"batch_size {batch_size} must be a multiple of processes x grad_accum"
                f" = {self.engine.num_processes} x {self.engine.grad_accum}"
            )

    def micro(self, idx: np.ndarray) -> list[np.ndarray]:
        """This process's slice of the global batch ``idx``, cut into its micro-batches."""
        e = self.engine
        return np.split(my_part(idx, e.process_index, e.num_processes), e.grad_accum)

    def shares(self, name: str, step: int) -> list[LossFn]:
        if name == "sft":
            n, stream = len(self.sft_rows), STREAM_BATCH["sft"]
            idx = batch_indices(self.seed, step, n, self.batch_size, stream)
            total = max(target_tokens([self.sft_rows[i] for i in idx]), 1)
            return [lambda p=part: self.sft_share(p, total) for part in self.micro(idx)]
        n, stream = len(self.pref_rows) // 2, STREAM_BATCH["dpo"]
        pairs = batch_indices(self.seed, step, n, self.batch_size, stream)
        return [lambda p=part: self.dpo_share(p) for part in self.micro(pairs)]

    def sft_share(self, rows: np.ndarray, total: int) -> torch.Tensor:
        batch = collate([self.sft_rows[i] for i in rows], self.pad_id)
        nll, _ = token_nll(self.model, to_device(batch, self.device))
        return nll.sum() / total

    def dpo_share(self, pairs: np.ndarray) -> torch.Tensor:
        batch = to_device(collate(pair_rows(self.pref_rows, pairs), self.pad_id), self.device)
        if self.ref_logps is not None:
            ref = self.ref_logps[torch.as_tensor(pairs)].to(self.device)
        else:
            with torch.no_grad():
                ref = self.ref_fn(batch).view(-1, 2)
        policy = sequence_logps(self.model, batch).view(-1, 2)
        return dpo_losses(policy, ref, self.beta).sum() / self.batch_size
