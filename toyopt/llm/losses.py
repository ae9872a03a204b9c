"""The two objectives, in the field's conventions (TRL's defaults).

- SFT: f_sft = mean token cross-entropy over the *response* tokens of the batch (prompt and
  padding masked): Σ_tokens −log π_θ(y_t | x, y_<t) / #response tokens.
- DPO: f_dpo = mean over pairs of −log σ(β [(log π_θ(y_w|x) − log π_ref(y_w|x))
  − (log π_θ(y_l|x) − log π_ref(y_l|x))]), with log π(y|x) the *sum* of the response tokens'
  log-probabilities and β = 0.1 by default (Rafailov et al., 2023; the paper's f_dpo).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from toyopt.llm.encode import IGNORE


def token_nll(model, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-token negative log-likelihood (N, L−1) of the next token, 0 where masked, and the mask."""
    out = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"])
    logits = out.logits[:, :-1].float()
    labels = batch["labels"][:, 1:]
    flat = F.cross_entropy(
        logits.reshape(-1, logits.shape[-1]),
        labels.reshape(-1),
        ignore_index=IGNORE,
        reduction="none",
    )
    return flat.view(labels.shape), labels != IGNORE


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
