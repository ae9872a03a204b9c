"""What the optimizer does with ALRIGHT's one gradient per step (``alright_step``).

ALRIGHT's promise, E[step] = ∇f_mix,λ (the paper's Algorithm 2), holds for a step that is linear
in the gradient: plain SGD. The trainer's step is not: the gradient is clipped to a total norm and
then preconditioned by AdamW's moments, both nonlinear. When the two objectives' gradients differ
in size (on the tiny model ‖∇f_sft‖ ≈ 6 and ‖∇f_dpo‖ ≈ 0.7, since DPO's gradient carries the
factor β = 0.1), clipping each sampled gradient and normalising it by moments that follow the
latest gradients give the smaller objective about as much movement as the larger one, so ALRIGHT
settles where λ_eff·(small) balances (1 − λ_eff)·(large) with λ_eff well above λ: it leans towards
that objective (benchmarks/alright_gap.py measures it). The choices:

- ``plain``: the paper's rule, the optimizer steps on the sampled objective's gradient g_k.
- ``memory``: a per-objective gradient memory (SAG, Le Roux et al. 2012): ĝ_k ← g_k for the
  sampled objective k, and the optimizer steps on λ·ĝ_dpo + (1 − λ)·ĝ_sft, an estimate of
  ∇f_mix,λ whose other term is a few steps old (ĝ_k = 0 until objective k was first sampled). The
  clipping and the moments then see a gradient like Mix's. Still one gradient per step; memory:
  two copies of the trainable parameters, kept in the optimizer state (checkpointed).
- ``split-state``: one optimizer (its own moments) per objective; a step uses the sampled
  objective's. A diagnostic: each objective's steps are then normalised by its own scale.

Both wrappers need to know which objective a step used: :meth:`TorchBackend.step` calls
``optimizer.on_gradients(weights)`` after the backward pass and before clipping, so they run in
the single-process trainer; elsewhere their ``step`` raises instead of silently training plain.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from toyopt.rules import OBJECTIVES

if TYPE_CHECKING:  # torch stays out of the config's imports
    import torch

ALRIGHT_STEPS: dict[str, str] = {
    "plain": "the paper's ALRIGHT: the optimizer steps on the sampled objective's gradient",
    "memory": "the optimizer steps on lam*g_dpo + (1-lam)*g_sft, each g the latest gradient of"
    " that objective (SAG memory; one gradient per step, +2 copies of the trainable weights)",
    "split-state": "one optimizer state (AdamW moments) per objective; a step uses the sampled"
    " objective's (a diagnostic)",
}


class _Wrapper:
    """An optimizer in front of ``base``: the backend sets the learning rate on ``param_groups``
    and calls ``on_gradients`` before ``step``."""

    def __init__(self, base: torch.optim.Optimizer):
        self.base = base
        self.param_groups = base.param_groups
        self._told: str | None = None  # the objective of the gradients now in .grad

    def on_gradients(self, weights: dict[str, float]) -> None:
        on = [k for k in OBJECTIVES if weights[k] > 0]
        self._told = on[0] if len(on) == 1 else "mix"
        self.transform(weights)

    def transform(self, weights: dict[str, float]) -> None:
        pass

    def zero_grad(self, set_to_none: bool = True) -> None:
        self.base.zero_grad(set_to_none=set_to_none)

    def _take(self) -> str:
        if self._told is None:
            raise RuntimeError(
                f"{type(self).__name__} was not told which objective this step used: the"
                " alright_step option needs the single-process trainer (TorchBackend.step)"
            )
        told, self._told = self._told, None
        return told

    def params(self) -> list[torch.nn.Parameter]:
        return [p for g in self.param_groups for p in g["params"]]


class GradientMemory(_Wrapper):
    """ALRIGHT with a per-objective gradient memory (module docstring, ``memory``)."""

    def __init__(self, base: torch.optim.Optimizer, lam: float):
        super().__init__(base)
        self.mix = {"sft": 1.0 - lam, "dpo": lam}
        self.memory: dict[str, list[torch.Tensor]] = {}

    def transform(self, weights: dict[str, float]) -> None:
        on = [k for k in OBJECTIVES if weights[k] > 0]
        if len(on) != 1:  # a step on both objectives needs no memory
            return
        params = self.params()
        self.memory[on[0]] = [
            p.detach().new_zeros(p.shape) if p.grad is None else p.grad.detach() / weights[on[0]]
            for p in params
        ]
        for i, p in enumerate(params):
            p.grad = sum(self.mix[k] * mem[i] for k, mem in self.memory.items())

    def step(self) -> None:
        self._take()
        self.base.step()

    def state_dict(self) -> dict:
        return {"base": self.base.state_dict(), "memory": self.memory}

    def load_state_dict(self, state: dict) -> None:
        self.base.load_state_dict(state["base"])
        self.memory = {k: list(v) for k, v in state["memory"].items()}


class SplitState(_Wrapper):
    """One optimizer per objective over the same parameters (module docstring, ``split-state``)."""

    def __init__(self, make: Callable[[], torch.optim.Optimizer]):
        self.by_objective = {k: make() for k in OBJECTIVES}
        super().__init__(self.by_objective["sft"])

    def step(self) -> None:
        told = self._take()
        if told == "mix":
            raise RuntimeError("split-state optimizers step on one objective at a time")
        chosen = self.by_objective[told]
        for mine, theirs in zip(chosen.param_groups, self.param_groups):
            mine["lr"] = theirs["lr"]  # the backend set the step's lr on self.param_groups
        chosen.step()

    def state_dict(self) -> dict:
        return {k: opt.state_dict() for k, opt in self.by_objective.items()}

    def load_state_dict(self, state: dict) -> None:
        for k, opt in self.by_objective.items():
            opt.load_state_dict(state[k])
