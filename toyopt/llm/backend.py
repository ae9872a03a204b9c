"""The language-model backend of :func:`toyopt.loop.train`.

It is a :class:`toyopt.torch_backend.TorchBackend` whose two closures read the batches of the
current step: the SFT and preference batches of step t are a pure function of (seed, t) (a
counter-based permutation per epoch, streams ``STREAM_BATCH``), whatever the rule chose before.
So every rule sees the same data at the same step, ``values()`` evaluates both objectives on the
very batches the following ``step()`` trains on, and a resumed run draws the same batches.

MAXRIGHT's refresh costs one extra forward pass, not two: ``values()`` computes the objective
stepped on last *with* its graph (the rule usually chooses it again) and the other one without
gradients; when the rule does choose the first, ``step()`` reuses that forward pass.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch

from toyopt.llm.encode import collate
from toyopt.llm.losses import dpo_loss, sequence_logps, sft_loss
from toyopt.rng import STREAM_BATCH, uniform
from toyopt.rules import OBJECTIVES, Weights
from toyopt.torch_backend import TorchBackend, row_weights

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


def pair_rows(rows: Rows, pairs: np.ndarray) -> Rows:
    """Chosen and rejected rows (2i, 2i+1) of the given preference pairs, interleaved."""
    return [rows[2 * int(i) + j] for i in pairs for j in (0, 1)]


class LMBackend(TorchBackend):
    """SFT and DPO losses of ``model`` on the step's batches; ``ref_logps`` (pairs, 2) are the
    precomputed reference log-probs, or ``ref_fn(batch) -> (2·pairs,)`` computes them per batch."""

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
    ):
        if (ref_logps is None) == (ref_fn is None):
            raise ValueError("give exactly one of ref_logps and ref_fn")
        super().__init__({}, optimizer, max_grad_norm)
        self.model, self.sft_rows, self.pref_rows = model, sft_rows, pref_rows
        self.seed, self.batch_size, self.beta, self.pad_id = seed, batch_size, beta, pad_id
        self.ref_logps, self.ref_fn = ref_logps, ref_fn
        self.next_step = 0  # the step whose batches values() and step() use
        self.last = "sft"  # objective stepped on last: values() keeps its graph
        self._kept: tuple[int, str, torch.Tensor] | None = None

    def sft_batch(self, step: int) -> dict[str, torch.Tensor]:
        idx = batch_indices(
            self.seed, step, len(self.sft_rows), self.batch_size, STREAM_BATCH["sft"]
        )
        return collate([self.sft_rows[i] for i in idx], self.pad_id)

    def dpo_parts(self, step: int) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
        n_pairs = len(self.pref_rows) // 2
        pairs = batch_indices(self.seed, step, n_pairs, self.batch_size, STREAM_BATCH["dpo"])
        batch = collate(pair_rows(self.pref_rows, pairs), self.pad_id)
        if self.ref_logps is not None:
            return batch, self.ref_logps[torch.as_tensor(pairs)]
        with torch.no_grad():
            return batch, self.ref_fn(batch).view(-1, 2)

    def compute(self, name: str, step: int) -> torch.Tensor:
        if name == "sft":
            return sft_loss(self.model, self.sft_batch(step))
        batch, ref = self.dpo_parts(step)
        return dpo_loss(sequence_logps(self.model, batch).view(-1, 2), ref, self.beta)

    def loss(self, name: str, step: int | None, grad: bool) -> torch.Tensor:
        step = self.next_step if step is None else step
        if grad and self._kept is not None and self._kept[:2] == (step, name):
            kept, self._kept = self._kept[2], None
            return kept
        with torch.set_grad_enabled(grad):
            return self.compute(name, step)

    def values(self) -> dict[str, np.ndarray]:
        """Both objectives on the batches of the next step; the last-stepped one keeps its graph."""
        kept = self.loss(self.last, None, grad=True)
        self._kept = (self.next_step, self.last, kept)
        other = "dpo" if self.last == "sft" else "sft"
        values = {self.last: float(kept.detach()), other: float(self.loss(other, None, False))}
        return {k: np.array([values[k]]) for k in OBJECTIVES}

    def step(self, weights: Weights, lr: float, step: int) -> dict[str, np.ndarray]:
        self.next_step = step
        losses = super().step(weights, lr, step)
        w = row_weights(weights)
        self.last = "dpo" if w["dpo"] > w["sft"] else "sft"
        self.next_step, self._kept = step + 1, None
        return losses
