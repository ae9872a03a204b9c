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
from dataclasses import dataclass

import numpy as np
import torch

from toyopt.llm.encode import collate
from toyopt.llm.losses import (
    preference_losses,
    response_lengths,
    sequence_logps,
    token_nll,
)
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


@dataclass(frozen=True)
class PairLoss:
    """A preference loss with its settings (``kind`` in TRL's names, ``beta``, TRL's
    ``label_smoothing`` and ``simpo_gamma``): per-pair losses of a collated batch of interleaved
    pairs."""

    kind: str = "sigmoid"
    beta: float = 0.1
    label_smoothing: float = 0.0
    simpo_gamma: float = 0.5

    def __call__(self, policy, ref, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        """(pairs,) losses; ``policy``, ``ref``: (pairs, 2) summed response log-probs (sigmoid:
        :func:`toyopt.llm.losses.dpo_losses`, the paper's f_dpo)."""
        lengths = response_lengths(batch).view(-1, 2).to(policy.dtype)
        return preference_losses(self.kind, policy, ref, lengths, beta=self.beta,
                                 label_smoothing=self.label_smoothing,
                                 simpo_gamma=self.simpo_gamma)  # fmt: skip


@dataclass
class Objective:
    """What the backend needs of one objective: its kind (``sft`` or a preference loss of
    :mod:`toyopt.llm.losses`), its training rows (interleaved chosen/rejected for pairs), its
    batch stream, for pairs the precomputed reference log-probs (pairs, 2), if any, and the
    loss with its settings (default: the kind at the backend's β)."""

    kind: str
    rows: Rows
    stream: int
    ref_logps: torch.Tensor | None = None
    loss: PairLoss | None = None


class LMBackend(TorchBackend):
    """The shares of each objective of ``model`` on the step's batches: SFT and DPO (``sft_rows``,
    ``pref_rows``), or the named ``objectives`` (:class:`Objective`) of a run with K sources.
    Reference log-probs: each preference objective's ``ref_logps`` (pairs, 2) (for sft and dpo:
    ``ref_logps``), or ``ref_fn(batch) -> (2·pairs,)`` computes them per batch. ``engine``
    (default: one process) says which part of each global batch is this process's."""

    def __init__(
        self,
        model: torch.nn.Module,
        optimizer: torch.optim.Optimizer,
        sft_rows: Rows | None = None,
        pref_rows: Rows | None = None,
        *,
        seed: int,
        batch_size: int,
        beta: float,
        pad_id: int,
        ref_logps: torch.Tensor | None = None,
        ref_fn: Callable[[dict], torch.Tensor] | None = None,
        max_grad_norm: float | None = None,
        engine=None,
        objectives: dict[str, Objective] | None = None,
    ):
        if objectives is None:
            objectives = {"sft": Objective("sft", sft_rows, STREAM_BATCH["sft"]),
                          "dpo": Objective("sigmoid", pref_rows, STREAM_BATCH["dpo"], ref_logps)}  # fmt: skip
        pairs = [o for o in objectives.values() if o.kind != "sft"]
        if any((o.ref_logps is None) == (ref_fn is None) for o in pairs):
            raise ValueError("give exactly one of ref_logps and ref_fn")
        super().__init__({}, optimizer, max_grad_norm, engine)
        self.model, self.by_name = model, objectives
        self.objectives = tuple(objectives)
        self.last = self.objectives[0]
        self.seed, self.batch_size, self.pad_id = seed, batch_size, pad_id
        for o in pairs:
            o.loss = o.loss or PairLoss(o.kind, beta)
        self.ref_fn = ref_fn
        self.device = next(model.parameters()).device
        parts = self.engine.num_processes * self.engine.grad_accum
        if batch_size % parts:
            raise ValueError(
                f"batch_size {batch_size} must be a multiple of processes x grad_accum"
                f" = {self.engine.num_processes} x {self.engine.grad_accum}"
            )

    # with validation rows: {name: value} on the whole validation split, what values() returns
    compare: Callable[[], dict[str, float]] | None = None

    def values(self) -> dict[str, np.ndarray]:
        """Every objective on the next step's batches, or (``compare`` set) on the validation
        split: what MAXRIGHT compares."""
        if self.compare is None:
            return super().values()
        return {k: np.array([v]) for k, v in self.compare().items()}

    # the two objectives' data under their usual names
    sft_rows = property(lambda self: self.by_name["sft"].rows)
    pref_rows = property(lambda self: self.by_name["dpo"].rows)
    ref_logps = property(lambda self: self.by_name["dpo"].ref_logps)

    def micro(self, idx: np.ndarray) -> list[np.ndarray]:
        """This process's slice of the global batch ``idx``, cut into its micro-batches."""
        e = self.engine
        return np.split(my_part(idx, e.process_index, e.num_processes), e.grad_accum)

    def shares(self, name: str, step: int) -> list[LossFn]:
        obj = self.by_name[name]
        if obj.kind == "sft":
            idx = batch_indices(self.seed, step, len(obj.rows), self.batch_size, obj.stream)
            total = max(target_tokens([obj.rows[i] for i in idx]), 1)
            return [lambda p=part: self.sft_share(obj, p, total) for part in self.micro(idx)]
        pairs = batch_indices(self.seed, step, len(obj.rows) // 2, self.batch_size, obj.stream)
        return [lambda p=part: self.pair_share(obj, p) for part in self.micro(pairs)]

    def sft_share(self, obj: Objective, rows: np.ndarray, total: int) -> torch.Tensor:
        batch = collate([obj.rows[i] for i in rows], self.pad_id)
        nll, _ = token_nll(self.model, to_device(batch, self.device))
        return nll.sum() / total

    def pair_share(self, obj: Objective, pairs: np.ndarray) -> torch.Tensor:
        batch = to_device(collate(pair_rows(obj.rows, pairs), self.pad_id), self.device)
        if obj.ref_logps is not None:
            ref = obj.ref_logps[torch.as_tensor(pairs)].to(self.device)
        else:
            with torch.no_grad():
                ref = self.ref_fn(batch).view(-1, 2)
        policy = sequence_logps(self.model, batch).view(-1, 2)
        return obj.loss(policy, ref, batch).sum() / self.batch_size
