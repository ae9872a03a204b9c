"""A torch backend for the loop: any parameters with SFT and DPO loss closures.

It runs one row (one seed) at a time: the weights the rule returns are arrays of length 1. The toy
code never imports this module; the language-model trainer builds on it (it overrides
:meth:`TorchBackend.loss` to feed each step its batches, and :meth:`TorchBackend.backward` can be
replaced by a distributed engine's backward).
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
    """Steps ``optimizer`` along Σ_k w_k ∇f_k, calling only the closures with w_k > 0.

    ``max_grad_norm`` (optional) clips the total gradient norm before the update. An optimizer
    with an ``on_gradients(weights, max_grad_norm)`` method is handed the gradient after the
    backward pass, with the step's weights, and clips it itself (the ALRIGHT variants of
    :mod:`toyopt.llm.optim` need to know which objective the gradient came from); any other
    optimizer is used as it is.
    """

    def __init__(
        self,
        loss_fns: Mapping[str, LossFn],
        optimizer: torch.optim.Optimizer,
        max_grad_norm: float | None = None,
    ):
        self.loss_fns = dict(loss_fns)
        self.optimizer = optimizer
        self.max_grad_norm = max_grad_norm

    def loss(self, name: str, step: int | None, grad: bool) -> torch.Tensor:
        """The value of objective ``name`` for ``step`` (None: the step about to be taken)."""
        with torch.set_grad_enabled(grad):
            return self.loss_fns[name]()

    def backward(self, total: torch.Tensor) -> None:
        total.backward()

    def values(self) -> dict[str, np.ndarray]:
        return {k: np.array([float(self.loss(k, None, grad=False))]) for k in OBJECTIVES}

    def step(self, weights: Weights, lr: float, step: int) -> dict[str, np.ndarray]:
        w = row_weights(weights)
        for group in self.optimizer.param_groups:
            group["lr"] = lr
        self.optimizer.zero_grad(set_to_none=True)
        losses = {k: self.loss(k, step, grad=True) for k in OBJECTIVES if w[k] > 0}
        self.backward(sum(w[k] * loss for k, loss in losses.items()))
        if hasattr(self.optimizer, "on_gradients"):  # it transforms and clips .grad itself
            self.optimizer.on_gradients(w, self.max_grad_norm)
        elif self.max_grad_norm is not None:
            params = [p for g in self.optimizer.param_groups for p in g["params"]]
            torch.nn.utils.clip_grad_norm_(params, self.max_grad_norm)
        self.optimizer.step()
        return {k: np.array([float(loss.detach())]) for k, loss in losses.items()}
