"""The two objectives, in the field's conventions (TRL's defaults).

- SFT: f_sft = mean token cross-entropy over the *response* tokens of the batch (prompt and
  padding masked): Σ_tokens −log π_θ(y_t | x, y_<t) / #response tokens.
- DPO: f_dpo = mean over pairs of −log σ(β [(log π_θ(y_w|x) − log π_ref(y_w|x))
  − (log π_θ(y_l|x) − log π_ref(y_l|x))]), with log π(y|x) the *sum* of the response tokens'
  log-probabilities and β = 0.1 by default (Rafailov et al., 2023; the paper's f_dpo).
- The field's other preference losses, in TRL 1.16's names and formulas:
  :func:`preference_losses` (the sigmoid one is f_dpo).
"""

from __future__ import annotations

import functools
import sys

import torch
import torch.nn.functional as F

from toyopt.llm.encode import IGNORE
from toyopt.llm.objectives import (  # the tables, torch-free for the config
    PREFERENCE_LOSSES,
    REFERENCE_FREE,
    SMOOTHED,
)


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


def preference_losses(
    kind: str,
    policy: torch.Tensor,
    ref: torch.Tensor | None,
    lengths: torch.Tensor,
    *,
    beta: float,
    label_smoothing: float = 0.0,
    simpo_gamma: float = 0.5,
) -> torch.Tensor:
    """Per-pair losses (pairs,) of the preference loss ``kind``, TRL 1.16's formulas.

    policy, ref: (pairs, 2) *summed* response log-probs, column 0 chosen (w), 1 rejected (l);
    ref is not read by the reference-free losses (:data:`REFERENCE_FREE`) and may be None there.
    lengths: (pairs, 2) response token counts n_w, n_l (:func:`response_lengths`); the
    length-normalised losses (:data:`LENGTH_NORMALISED`) divide the sums by them (at least 1).
    With r_y = log π(y|x) − log π_ref(y|x), Δ = r_w − r_l and Δ̄ = r_w / n_w − r_l / n_l:

    - sigmoid (DPO): −log σ(β Δ), exactly :func:`dpo_losses`.
    - ipo: (Δ̄ − 1/(2β))², on per-token means (TRL: the IPO authors' normalised form).
    - hinge (SLiC): max(0, 1 − β Δ).
    - robust (rDPO): [−(1−ε) log σ(β Δ) + ε log σ(−β Δ)] / (1 − 2ε), ε = label_smoothing
      (the probability that a label is flipped), 0 ≤ ε < 1/2; sigmoid at ε = 0.
    - simpo (reference-free): with m = (log π(y_w|x) / n_w − log π(y_l|x) / n_l) − γ/β,
      −(1−ε) log σ(β m) − ε log σ(−β m), γ = simpo_gamma; at ε = 0 that is
      −log σ(β (mean log π(y_w|x) − mean log π(y_l|x)) − γ), the SimPO paper's loss.

    label_smoothing is used by robust and simpo only; a non-zero value for the others is refused
    (TRL 1.16's DPOTrainer reads it in robust, exo_pair and aot only and ignores it elsewhere).
    Source: sigmoid, ipo, hinge, robust: ``trl/trainer/dpo_trainer.py``,
    ``DPOTrainer._compute_loss`` (f_divergence_type "reverse_kl", ld_alpha None, no WPO weights);
    simpo: ``trl/experimental/cpo/cpo_trainer.py``, ``CPOTrainer.cpo_loss`` (loss_type "simpo",
    alpha 0) on ``get_batch_logps(average_log_prob=True)``, with cpo_alpha = 0 (no NLL term).
    """
    if kind not in PREFERENCE_LOSSES:
        raise ValueError(
            f"unknown preference loss {kind!r}: choose one of {', '.join(PREFERENCE_LOSSES)}"
        )
    _check(kind, policy, ref, lengths, beta, label_smoothing)
    if kind == "sigmoid":
        return dpo_losses(policy, ref, beta)
    if kind == "simpo":
        n = lengths.clamp(min=1)
        logits = (policy[:, 0] / n[:, 0] - policy[:, 1] / n[:, 1]) - simpo_gamma / beta
        return _smoothed(beta * logits, label_smoothing)
    chosen, rejected = policy[:, 0] - ref[:, 0], policy[:, 1] - ref[:, 1]
    if kind == "ipo":
        n = lengths.clamp(min=1)
        return (chosen / n[:, 0] - rejected / n[:, 1] - 1 / (2 * beta)) ** 2
    delta = chosen - rejected
    if kind == "hinge":
        return torch.relu(1 - beta * delta)
    eps = label_smoothing  # robust
    clean = -(1 - eps) * F.logsigmoid(beta * delta)
    flipped = -eps * F.logsigmoid(-beta * delta)
    return (clean - flipped) / (1 - 2 * eps)


def _smoothed(logits: torch.Tensor, eps: float) -> torch.Tensor:
    """Conservative (label-smoothed) sigmoid loss −(1−ε) log σ(x) − ε log σ(−x) (CPOTrainer)."""
    return -F.logsigmoid(logits) * (1 - eps) - F.logsigmoid(-logits) * eps


def _check(kind, policy, ref, lengths, beta: float, eps: float) -> None:
    if policy.dim() != 2 or policy.shape[1] != 2 or lengths.shape != policy.shape:
        raise ValueError(
            f"policy and lengths must both be (pairs, 2), got {tuple(policy.shape)} "
            f"and {tuple(lengths.shape)}"
        )
    if ref is None and kind not in REFERENCE_FREE:
        raise ValueError(f"preference loss {kind!r} needs the reference log-probs, got ref=None")
    if ref is not None and kind not in REFERENCE_FREE and ref.shape != policy.shape:
        raise ValueError(f"ref must be (pairs, 2) like policy, got {tuple(ref.shape)}")
    if not beta > 0:
        raise ValueError(f"beta must be positive, got {beta}")
    if kind in SMOOTHED and not 0 <= eps < 0.5:
        raise ValueError(f"label_smoothing must lie in [0, 0.5) for {kind!r}, got {eps}")
    if kind not in SMOOTHED and eps != 0:
        raise ValueError(
            f"label_smoothing is used by {' and '.join(sorted(SMOOTHED))} only (TRL 1.16), "
            f"not by {kind!r}: got {eps}"
        )


def response_lengths(batch: dict[str, torch.Tensor]) -> torch.Tensor:
    """Response token count of each row (N,) of a collated batch: the labels that are not
    IGNORE after the first position, i.e. the tokens :func:`sequence_logps` sums (the first
    position predicts nothing; it is prompt in every row with a non-empty prompt). For pairs,
    ``response_lengths(batch).view(-1, 2)`` is the ``lengths`` of :func:`preference_losses`."""
    return (batch["labels"][:, 1:] != IGNORE).sum(dim=1)
