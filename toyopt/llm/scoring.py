"""Gradient-free passes over whole data sets: reference log-probs and held-out evaluation.

eval_sft is the token-mean cross-entropy over *all* response tokens of the set (the SFT loss with
the whole set as one batch); eval_dpo is the mean DPO loss over all pairs.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import torch

from toyopt.llm.backend import PairLoss, my_part, pair_rows, to_device
from toyopt.llm.encode import collate
from toyopt.llm.losses import sequence_logps, token_nll
from toyopt.torch_backend import SingleProcess

Rows = list[tuple[list[int], list[int]]]


def chunks(rows, size: int) -> Iterator:
    for i in range(0, len(rows), size):
        yield rows[i : i + size]


def device_of(model) -> torch.device:
    return next(model.parameters()).device


@torch.no_grad()
def pair_logps(
    logp_fn: Callable[[dict], torch.Tensor], rows: Rows, pad_id: int, batch_size: int, device
) -> torch.Tensor:
    """(pairs, 2) summed response log-probs of interleaved chosen/rejected rows (on the CPU)."""
    parts = [logp_fn(to_device(collate(c, pad_id), device)).cpu()
             for c in chunks(rows, 2 * batch_size)]  # fmt: skip
    return torch.cat(parts).view(-1, 2)


def reference_fn(model, use_adapters_off: bool) -> Callable[[dict], torch.Tensor]:
    """log π_ref(y|x) of a batch: ``model`` itself, or with LoRA, ``model`` with adapters disabled."""

    def logps(batch: dict) -> torch.Tensor:
        with torch.no_grad():
            if use_adapters_off:
                with model.disable_adapter():
                    return sequence_logps(model, batch)
            return sequence_logps(model, batch)

    return logps


@torch.no_grad()
def evaluate(model, sft_rows: Rows, pref_rows: Rows, ref: torch.Tensor, beta: float, pad_id: int,
             size: int, engine=None) -> dict[str, float]:  # fmt: skip
    """Held-out objectives ``eval_sft`` and ``eval_dpo`` (see the module docstring)."""
    sets = {"sft": (sft_rows, None, None), "dpo": (pref_rows, ref, PairLoss("sigmoid", beta))}
    return evaluate_objectives(model, sets, pad_id, size, engine)


@torch.no_grad()
def evaluate_objectives(model, sets: dict, pad_id: int, size: int, engine=None) -> dict[str, float]:
    """``eval_NAME`` of each objective NAME in ``sets`` {NAME: (rows, ref, loss)}: an SFT set
    (loss None) the token mean over all its response tokens, a pair set the mean of its
    :class:`toyopt.llm.backend.PairLoss` over all pairs (ref: (pairs, 2) or None).

    Each chunk of ``size`` rows (or pairs) is split over the engine's processes; every process
    runs one forward per chunk (as FSDP and DDP require; an empty part reruns the chunk's first
    row and discards it), and the sums are reduced, so the numbers are the single-process ones."""
    engine = engine or SingleProcess()
    rank, world, device = engine.process_index, engine.num_processes, device_of(model)
    was_training = model.training
    model.eval()
    sums = torch.zeros(2 * len(sets), dtype=torch.float64)  # per set: loss sum, tokens or pairs
    for i, (rows, ref, loss) in enumerate(sets.values()):
        if loss is None:
            for c in chunks(rows, size):
                part = my_part(c, rank, world)
                nll, mask = token_nll(model, to_device(collate(part or c[:1], pad_id), device))
                if part:
                    sums[2 * i] += float(nll.sum())
                    sums[2 * i + 1] += int(mask.sum())
            continue
        for c in chunks(list(range(len(rows) // 2)), size):
            part = my_part(c, rank, world)
            batch = to_device(collate(pair_rows(rows, part or c[:1]), pad_id), device)
            policy = sequence_logps(model, batch).view(-1, 2)
            if part:
                pair_ref = None if ref is None else ref[torch.as_tensor(part)].to(device)
                sums[2 * i] += float(loss(policy, pair_ref, batch).sum())
                sums[2 * i + 1] += len(part)
    model.train(was_training)
    totals = engine.reduce_sum(sums).tolist()
    return {f"eval_{k}": totals[2 * i] / max(totals[2 * i + 1], 1) for i, k in enumerate(sets)}
