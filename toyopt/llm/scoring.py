"""Gradient-free passes over whole data sets: reference log-probs and held-out evaluation.

eval_sft is the token-mean cross-entropy over *all* response tokens of the set (the SFT loss with
the whole set as one batch); eval_dpo is the mean DPO loss over all pairs.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import torch

from toyopt.llm.encode import collate
from toyopt.llm.losses import dpo_loss, sequence_logps, token_nll

Rows = list[tuple[list[int], list[int]]]


def chunks(rows: Rows, size: int) -> Iterator[Rows]:
    for i in range(0, len(rows), size):
        yield rows[i : i + size]


@torch.no_grad()
def pair_logps(
    logp_fn: Callable[[dict], torch.Tensor], rows: Rows, pad_id: int, batch_size: int
) -> torch.Tensor:
    """(pairs, 2) summed response log-probs of interleaved chosen/rejected rows."""
    parts = [logp_fn(collate(c, pad_id)) for c in chunks(rows, 2 * batch_size)]
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
def evaluate(
    model, sft_rows: Rows, pref_rows: Rows, ref: torch.Tensor, beta: float, pad_id: int, size: int
) -> dict[str, float]:
    """Held-out objectives ``eval_sft`` and ``eval_dpo`` (see the module docstring)."""
    was_training = model.training
    model.eval()
    nll_sum, tokens = 0.0, 0
    for c in chunks(sft_rows, size):
        nll, mask = token_nll(model, collate(c, pad_id))
        nll_sum, tokens = nll_sum + float(nll.sum()), tokens + int(mask.sum())
    policy = pair_logps(lambda b: sequence_logps(model, b), pref_rows, pad_id, size)
    model.train(was_training)
    return {"eval_sft": nll_sum / max(tokens, 1), "eval_dpo": float(dpo_loss(policy, ref, beta))}
