"""The torch backend of the loop: one optimizer step along Σ_k w_k ∇f_k, for any parameters.

It runs one row (one seed) at a time: the weights the rule returns are arrays of length 1. An
objective is a list of *shares*: closures whose values sum to the objective (one per micro-batch
of this process; the shares of all processes together make the global batch). A toy problem has
one share per objective, its loss closure; the language-model backend
(:class:`toyopt.llm.backend.LMBackend`) overrides :meth:`TorchBackend.shares` to read each step's
batches. Processes are the business of an *engine* (:mod:`toyopt.llm.engine`); the default,
:class:`SingleProcess`, is the identity on one process. The toy code never imports this module.

When a rule asks for both values (MAXRIGHT) on one process and one micro-batch, the objective
stepped on last is evaluated *with* its graph and kept: the rule usually chooses it again, and
the step then reuses that forward pass (one extra forward per refresh instead of two).

A step on both objectives (Mix) back-propagates them one at a time where the engine allows it
(``backward_each_objective``): the first objective's graph is freed before the second one's
forward runs, so the step's activation memory is the larger of the two graphs, not their sum
(the gradients add up in ``.grad`` as they would in one backward of Σ_k w_k f_k). Under DDP the
first backward runs in ``no_sync``, so the gradients are still reduced once per step.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Mapping

import numpy as np
import torch

from toyopt.rules import OBJECTIVES, Weights

LossFn = Callable[[], torch.Tensor]


def row_weights(weights: Weights, names=OBJECTIVES) -> dict[str, float]:
    """The single row's weights of the objectives ``names``, as floats (this backend drives one
    run)."""
    out = {}
    for k in names:
        w = np.asarray(weights[k]).reshape(-1)
        if w.shape != (1,):
            raise ValueError(f"the torch backend runs one seed at a time, got {w.shape[0]} rows")
        out[k] = float(w[0])
    return out


class SingleProcess:
    """What a step needs from an engine, on one process: no reduction, no accumulation."""

    process_index, num_processes, grad_accum = 0, 1, 1
    keeps_graph = True  # a refresh may keep a forward graph for the following step
    backward_each_objective = True  # a step on both objectives may run two backward passes
    sync_gradients = True

    def accumulate(self, model):
        return contextlib.nullcontext()

    def no_sync(self, model):
        """A backward pass whose gradients are not reduced yet (more of the step follows)."""
        return contextlib.nullcontext()

    def backward(self, loss: torch.Tensor) -> None:
        loss.backward()

    def clip_grad_norm_(self, parameters, max_norm: float) -> None:
        torch.nn.utils.clip_grad_norm_(list(parameters), max_norm)

    def reduce_sum(self, values: torch.Tensor) -> torch.Tensor:
        return values


class TorchBackend:
    """Steps ``optimizer`` along Σ_k w_k ∇f_k, computing only the objectives with w_k > 0.

    ``max_grad_norm`` (optional) clips the total gradient norm before the update. With W
    processes and A micro-batches each, every share is back-propagated times W·A, because
    the engines average gradients over processes and micro-batches; the update is then the one
    of the summed objective (the single-process update, up to float rounding).

    An optimizer with an ``on_gradients(weights, max_grad_norm)`` method is handed the gradient
    after the backward pass, with the step's weights, and clips it itself (the ALRIGHT variants
    of :mod:`toyopt.llm.optim` need to know which objective the gradient came from).
    """

    model: torch.nn.Module | None = None
    objectives: tuple[str, ...] = OBJECTIVES  # their order breaks ties (see ``step``)

    def __init__(
        self,
        loss_fns: Mapping[str, LossFn],
        optimizer: torch.optim.Optimizer,
        max_grad_norm: float | None = None,
        engine=None,
    ):
        self.loss_fns = dict(loss_fns)
        self.optimizer = optimizer
        self.max_grad_norm = max_grad_norm
        self.engine = engine or SingleProcess()
        if self.loss_fns and set(self.loss_fns) != set(OBJECTIVES):  # K named objectives
            self.objectives = tuple(self.loss_fns)
        self.next_step = 0  # the step whose batches values() and step() use
        self.last = self.objectives[0]  # objective stepped on last: values() keeps its graph
        self._kept: tuple[int, str, torch.Tensor] | None = None
        # one backward per objective (peak memory: the larger graph), or one of the weighted sum
        # (both graphs held at once); the engine says whether the first is safe
        self.separate_backward = getattr(self.engine, "backward_each_objective", False)

    def shares(self, name: str, step: int) -> list[LossFn]:
        """Closures for this process's shares of objective ``name`` at ``step``."""
        return [self.loss_fns[name]]

    def compute(self, name: str, step: int) -> torch.Tensor:
        """This process's part of objective ``name`` at ``step`` (the whole of it on one)."""
        return sum(share() for share in self.shares(name, step))

    def parameters(self) -> list[torch.Tensor]:
        if self.model is not None:  # engines clip the model's parameters (FSDP needs them so)
            return list(self.model.parameters())
        return [p for g in self.optimizer.param_groups for p in g["params"]]

    def global_sum(self, local: Mapping[str, float]) -> dict[str, np.ndarray]:
        """Each objective's shares summed over the processes (one reduction)."""
        names = sorted(local)
        summed = self.engine.reduce_sum(
            torch.tensor([local[k] for k in names], dtype=torch.float64)
        )
        return {k: np.array([float(v)]) for k, v in zip(names, summed.tolist())}

    def keeps_graph(self) -> bool:
        e = self.engine
        return e.keeps_graph and e.num_processes * e.grad_accum == 1

    def values(self) -> dict[str, np.ndarray]:
        """Every objective at the current parameters (on the batches of the next step)."""
        step, others = self.next_step, [k for k in self.objectives if k != self.last]
        local = {}
        if self.keeps_graph():
            kept = self.shares(self.last, step)[0]()
            self._kept = (step, self.last, kept)
            local[self.last] = float(kept.detach())
        with torch.no_grad():
            for k in self.objectives if not self.keeps_graph() else others:
                local[k] = float(sum(share() for share in self.shares(k, step)))
        return self.global_sum(local)

    def step(self, weights: Weights, lr: float, step: int) -> dict[str, np.ndarray]:
        """One optimizer step along Σ_k w_k ∇f_k, accumulated over this process's shares."""
        w = row_weights(weights, self.objectives)
        on = [k for k in self.objectives if w[k] > 0]
        for group in self.optimizer.param_groups:
            group["lr"] = lr
        shares = {k: self.shares(k, step) for k in on}
        kept, self._kept = self._kept, None
        if kept is not None and kept[0] == step and kept[1] in shares:
            shares[kept[1]][0] = lambda: kept[2]  # the forward pass values() already ran
        local = dict.fromkeys(on, 0.0)
        scale = self.engine.num_processes * self.engine.grad_accum
        groups = [[k] for k in on] if self.separate_backward else [on]
        for m in range(self.engine.grad_accum):
            with self.engine.accumulate(self.model):
                for i, group in enumerate(groups):
                    last = i == len(groups) - 1  # the backward that reduces the gradients
                    with contextlib.nullcontext() if last else self.engine.no_sync(self.model):
                        parts = {k: shares[k][m]() for k in group}
                        total = sum(w[k] * parts[k] for k in group)
                        self.engine.backward(total if scale == 1 else scale * total)
                    for k in group:
                        local[k] += float(parts[k].detach())
        if hasattr(self.optimizer, "on_gradients"):  # it transforms and clips .grad itself
            self.optimizer.on_gradients(w, self.max_grad_norm)
        elif self.max_grad_norm is not None and self.engine.sync_gradients:
            self.engine.clip_grad_norm_(self.parameters(), self.max_grad_norm)
        self.optimizer.step()
        self.optimizer.zero_grad(set_to_none=True)
        self.last = max(self.objectives, key=w.get)  # the first of equal weights (sft for Mix)
        self.next_step = step + 1
        return self.global_sum(local)
