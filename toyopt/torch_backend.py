"""A torch backend for the loop: any parameters with SFT and DPO loss closures.

It runs one row (one seed) at a time: the weights the rule returns are arrays of length 1. The toy
code never imports this module; the language-model trainer builds on it.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

import numpy as np
import torch

from toyopt.rules import OBJECTIVES, Weights

LossFn = Callable[[], torch.Tensor]


def row_weights(weights: Weights) -> dict[str, float]:
    """The single row's weights as floats (this backend drives one run)."""
    out = {}
    for k in OBJECTIVES:
        w = np.asarray(weights[k]).reshape(-1)
        if w.shape != (1,):
            raise ValueError(f"the torch backend runs one seed at a time, got {w.shape[0]} rows")
        out[k] = float(w[0])
    return out


class TorchBackend:
    """Steps ``optimizer`` along Σ_k w_k ∇f_k, calling only the closures with w_k > 0."""

    def __init__(self, loss_fns: Mapping[str, LossFn], optimizer: torch.optim.Optimizer):
        self.loss_fns = dict(loss_fns)
        self.optimizer = optimizer

    def values(self) -> dict[str, np.ndarray]:
        with torch.no_grad():
            return {k: np.array([float(self.loss_fns[k]())]) for k in OBJECTIVES}

    def step(self, weights: Weights, lr: float, step: int) -> dict[str, np.ndarray]:
        w = row_weights(weights)
        for group in self.optimizer.param_groups:
            group["lr"] = lr
        self.optimizer.zero_grad(set_to_none=True)
        losses = {k: self.loss_fns[k]() for k in OBJECTIVES if w[k] > 0}
        total = sum(w[k] * loss for k, loss in losses.items())
        total.backward()
        self.optimizer.step()
        return {k: np.array([float(loss.detach())]) for k, loss in losses.items()}
