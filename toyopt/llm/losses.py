"""The two objectives, in the field's conventions (TRL's defaults).

- SFT: f_sft = mean token cross-entropy over the *response* tokens of the batch (prompt and
  padding masked): Σ_tokens −log π_θ(y_t | x, y_<t) / #response tokens.
- DPO: f_dpo = mean over pairs of −log σ(β [(log π_θ(y_w|x) − log π_ref(y_w|x))
  − (log π_θ(y_l|x) − log π_ref(y_l|x))]), with log π(y|x) the *sum* of the response tokens'
  log-probabilities and β = 0.1 by default (Rafailov et al., 2023; the paper's f_dpo).
"""

from __future__ import annotations

import functools
import sys

import torch
import torch.nn.functional as F

from toyopt.llm.encode import IGNORE


def token_nll(model, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-token negative log-likelihood (N, L−1) of the next token, 0 where masked, and the mask.

    Logits are computed only at the positions whose next token is a label (the response), where
    the model can (:func:`keeps_logits`): a prompt position never enters a loss, and the output
    layer (d × V; V = 49 152 for SmolLM2) with the softmax over V is the costliest per-token part
    of a small model, so prompt-heavy rows save most of it, in time and in memory."""
    labels = batch["labels"][:, 1:]
    mask = labels != IGNORE
    inputs = {"input_ids": batch["input_ids"], "attention_mask": batch["attention_mask"]}
    if keeps_logits(model):  # position j predicts token j + 1; the last one predicts nothing
        logits = model(**inputs, logits_to_keep=F.pad(mask, (0, 1))).logits.float()
    else:
        logits = model(**inputs).logits[:, :-1][mask].float()
    flat = F.cross_entropy(logits, labels[mask], reduction="none")
    return flat.new_zeros(labels.shape).masked_scatter(mask, flat), mask


def keeps_logits(model) -> bool:
    """Whether ``model`` (under its DDP and peft wrappers) is a Hugging Face causal LM whose
    ``logits_to_keep`` takes a boolean (N, L) mask of the positions to project: those whose
    module slices with ``transformers.modeling_utils.slice_logits_to_keep`` (transformers 5)."""
    model = getattr(model, "module", model)  # DDP
    if hasattr(model, "get_base_model"):  # peft
        model = model.get_base_model()
    return _slices(type(model))


@functools.cache
def _slices(cls: type) -> bool:
    try:
        from transformers.modeling_utils import slice_logits_to_keep
    except ImportError:
        return False
    return sys.modules[cls.__module__].__dict__.get("slice_logits_to_keep") is slice_logits_to_keep


def sequence_logps(model, batch: dict[str, torch.Tensor]) -> torch.Tensor:
    """Summed response log-probability log π(y|x) of each row (N,)."""
    nll, _ = token_nll(model, batch)
    return -nll.sum(dim=1)


def sft_loss(model, batch: dict[str, torch.Tensor]) -> torch.Tensor:
    """Token-mean cross-entropy over the batch's response tokens."""
    nll, mask = token_nll(model, batch)
    return nll.sum() / mask.sum().clamp(min=1)


def dpo_losses(policy: torch.Tensor, ref: torch.Tensor, beta: float) -> torch.Tensor:
    """Per-pair sigmoid DPO losses (pairs,) from (pairs, 2) summed log-probs, column 0 chosen
    and 1 rejected: −log σ(β [(log π(y_w) − log π_ref(y_w)) − (log π(y_l) − log π_ref(y_l))])."""
    margins = beta * ((policy[:, 0] - ref[:, 0]) - (policy[:, 1] - ref[:, 1]))
    return -F.logsigmoid(margins)


def dpo_loss(policy: torch.Tensor, ref: torch.Tensor, beta: float) -> torch.Tensor:
    """The DPO loss of a batch: the mean of :func:`dpo_losses`."""
    return dpo_losses(policy, ref, beta).mean()


def response_lengths(batch: dict[str, torch.Tensor]) -> torch.Tensor:  # placeholder
    return (batch["labels"][:, 1:] != IGNORE).sum(dim=1)


def preference_losses(kind, policy, ref, lengths, *, beta, label_smoothing=0.0, simpo_gamma=0.5):
    raise NotImplementedError(kind)  # placeholder
