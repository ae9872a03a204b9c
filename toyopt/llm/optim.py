"""What the optimizer does with ALRIGHT's one gradient per step (``alright_step``).

ALRIGHT's promise, E[step] = ∇f_mix,λ (the paper's Algorithm 2), holds for a step that is linear
in the gradient with a coefficient that does not depend on the coin. Gradient clipping breaks it:
the trainer clips the gradient of the step, which for ALRIGHT is the sampled objective's alone,
so each objective is scaled by its own factor min(1, τ/‖∇f_k‖). On the tiny model ‖∇f_sft‖ is
about 6 and ‖∇f_dpo‖ about 0.7 (DPO's gradient carries β = 0.1): every SFT step is cut to 1/6,
DPO steps almost never, and ALRIGHT descends λ·∇f_dpo + (1 − λ)·∇f_sft/6, a different trade-off
that leans to DPO. Mix clips the sum, which rescales it without turning it.
``python -m benchmarks.alright_gap`` measures this (docs/llm-results.md, "ALRIGHT against Mix
on the tiny model"): ``mix-clip`` brings ALRIGHT within 1.1-1.25x of Mix's held-out f_mix at
λ = 0.25 and 0.5 there; at λ = 0.75 no variant here closes the gap.

- ``plain``: the paper's rule: the optimizer clips and steps on the sampled objective's gradient.
- ``mix-clip``: the sampled gradient g_k is clipped by one factor for both objectives, the one Mix
  would use for a mixed gradient of norm λ·n_dpo + (1 − λ)·n_sft, n_j the norm of objective j's
  latest gradient (the triangle bound on ‖λ g_dpo + (1 − λ) g_sft‖; two numbers of state). The
  factor then barely depends on the coin, so E[step] ∝ ∇f_mix,λ again; the step stays below
  τ/min(λ, 1 − λ) in norm.
- ``mix-adam``: ``mix-clip``, and AdamW's second moment kept per objective and combined as Mix's
  would be (:class:`MixAdam`; one more copy of the trainable parameters).
- ``memory``: a per-objective gradient memory (SAG, Le Roux et al. 2012): ĝ_k ← g_k for the
  sampled objective, and the optimizer clips and steps on λ·ĝ_dpo + (1 − λ)·ĝ_sft, an estimate of
  ∇f_mix,λ whose other term is a few steps old (ĝ_k = 0 until objective k was first sampled). The
  clipping and AdamW's moments then see a gradient like Mix's. Memory: two copies of the
  trainable parameters, kept in the optimizer state (checkpointed).
- ``split-state``: one optimizer (its own moments) per objective; a step uses the sampled
  objective's. A diagnostic for the hypothesis that sharing AdamW's moments is the problem.

Every variant computes one gradient per step. They need to know which objective a step used:
:meth:`toyopt.torch_backend.TorchBackend.step` calls ``optimizer.on_gradients(weights,
max_grad_norm)`` after the backward pass and leaves the clipping to it, so they run in the
single-process trainer; elsewhere their ``step`` raises instead of silently training plain.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING

from toyopt.rules import OBJECTIVES, two_weights

if TYPE_CHECKING:  # torch stays out of the config's imports
    import torch

ALRIGHT_STEPS: dict[str, str] = {
    "plain": "the paper's ALRIGHT: the sampled objective's gradient, clipped on its own",
    "mix-clip": "the sampled gradient clipped by a factor common to both objectives (the one"
    " Mix would use, from each objective's latest gradient norm)",
    "memory": "the optimizer steps on lam*g_dpo + (1-lam)*g_sft, each g the latest gradient of"
    " that objective (SAG memory; +2 copies of the trainable weights)",
    "mix-adam": "mix-clip, and AdamW's second moment kept per objective and combined as Mix's"
    " would be (adamw only; +1 copy of the trainable weights)",
    "split-state": "one optimizer state (AdamW moments) per objective (a diagnostic)",
}


def clip_(params: list, max_norm: float | None, norm: float | None = None) -> float:
    """Clip the gradients of ``params`` to total norm ``max_norm`` as if their norm were ``norm``
    (default: their actual norm; ``max_norm`` None: leave them); returns the actual norm. With the
    defaults this is ``torch.nn.utils.clip_grad_norm_``."""
    import torch

    grads = [p.grad for p in params if p.grad is not None]
    actual = torch.nn.utils.get_total_norm(grads)
    if max_norm is not None:
        scale_by = actual if norm is None else torch.tensor(norm)
        torch.nn.utils.clip_grads_with_norm_(params, max_norm, scale_by)
    return float(actual)


class _Wrapper:
    """An optimizer in front of ``base``: the backend sets the learning rate on ``param_groups``,
    hands over the gradient with ``on_gradients`` (this object clips it), then calls ``step``."""

    def __init__(self, base: torch.optim.Optimizer):
        self.base = base
        self._told: str | None = None  # the objective of the gradients now in .grad

    @property
    def param_groups(self) -> list[dict]:
        # the base's own list, always: load_state_dict replaces it (a copy taken here would
        # keep the learning rates the backend sets away from the optimizer after a resume)
        return self.base.param_groups

    def on_gradients(self, weights: dict[str, float], max_norm: float | None) -> None:
        on = [k for k in weights if weights[k] > 0]
        self._told = on[0] if len(on) == 1 else "mix"
        self.transform(weights, max_norm)

    def transform(self, weights: dict[str, float], max_norm: float | None) -> None:
        clip_(self.params(), max_norm)

    def zero_grad(self, set_to_none: bool = True) -> None:
        self.base.zero_grad(set_to_none=set_to_none)

    def step(self) -> None:
        self._take()
        self.base.step()

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


def mix_weights(lam: float | Mapping[str, float]) -> dict[str, float]:
    """Mix's weights by objective: {sft: 1 − λ, dpo: λ} for a number λ, else the mapping (the
    weights of K named objectives; the wrappers below carry over with Σ_k λ_k in the sums)."""
    if isinstance(lam, Mapping):
        return {k: float(w) for k, w in lam.items()}
    return two_weights(lam)


class MixClip(_Wrapper):
    """ALRIGHT clipped by a factor common to all objectives (module docstring, ``mix-clip``)."""

    def __init__(self, base: torch.optim.Optimizer, lam: float | Mapping[str, float]):
        super().__init__(base)
        self.mix = mix_weights(lam)
        self.norms: dict[str, float] = {}

    def transform(self, weights: dict[str, float], max_norm: float | None) -> None:
        on = [k for k in weights if weights[k] > 0]
        if len(on) != 1:  # a step on both objectives is clipped as it is
            clip_(self.params(), max_norm)
            return
        import torch

        params = self.params()
        self.norms[on[0]] = clip_(params, None) / weights[on[0]]
        bound = sum(self.mix[k] * n for k, n in self.norms.items())
        if max_norm is None or not math.isfinite(bound):  # a non-finite loss is the trainer's
            return
        # clip_grads_with_norm_'s own factor (float32, same rounding), but the gradient norm is
        # not computed a second time and an unclipped step skips the multiplication by 1: this
        # step then costs what plain clipping costs (BENCHMARKS.md, rules_cost)
        norm = torch.tensor(bound * weights[on[0]])
        if float(max_norm / (norm + 1e-6)) < 1.0:
            torch.nn.utils.clip_grads_with_norm_(params, max_norm, norm)

    def state_dict(self) -> dict:
        return {"base": self.base.state_dict(), "norms": dict(self.norms)}

    def load_state_dict(self, state: dict) -> None:
        self.base.load_state_dict(state["base"])
        self.norms = {k: float(v) for k, v in state["norms"].items()}


class MixAdam(MixClip):
    """AdamW whose second moment estimates Mix's from per-objective ones (``mix-adam``).

    Mix's AdamW divides by √v of the mixed gradient. Here the first moment m is AdamW's (an EMA of
    the sampled gradients, so E[m] ∝ ∇f_mix,λ); each objective k keeps its own second moment v_k,
    updated on its own steps (bias-corrected by their count n_k), and the step is
    −lr·m̂ / (√(Σ_k w_k² v̂_k) + ε), w = (1 − λ, λ): the estimate of Mix's v with the cross term
    left out. Where only one objective acts, the step is as large as Mix's every step, not only on
    that objective's steps; where both act, its zero is Mix's. Gradients are clipped as in
    ``mix-clip``. ``base`` (an AdamW) supplies the parameter groups and hyperparameters only.
    """

    def __init__(self, base: torch.optim.Optimizer, lam: float | Mapping[str, float]):
        super().__init__(base, lam)
        self.steps = {"all": 0, **dict.fromkeys(self.mix, 0)}
        self.moments: list[dict[str, torch.Tensor]] = []

    def step(self) -> None:
        import torch

        told = self._take()
        if told == "mix":
            raise RuntimeError("mix-adam steps on one objective at a time")
        self.steps["all"] += 1
        self.steps[told] += 1
        params = self.params()
        if not self.moments:
            self.moments = [{k: torch.zeros_like(p) for k in ("m", *self.mix)} for p in params]
        group = self.param_groups[0]
        (b1, b2), eps, lr, wd = group["betas"], group["eps"], group["lr"], group["weight_decay"]
        seen = [k for k in self.mix if self.steps[k] > 0]
        for p, mom in zip(params, self.moments):
            if p.grad is None:
                continue
            mom["m"].mul_(b1).add_(p.grad, alpha=1 - b1)
            mom[told].mul_(b2).addcmul_(p.grad, p.grad, value=1 - b2)
            v = sum(self.mix[k] ** 2 * mom[k] / (1 - b2 ** self.steps[k]) for k in seen)
            p.data.mul_(1 - lr * wd)
            p.data.addcdiv_(mom["m"], v.sqrt().add_(eps), value=-lr / (1 - b1 ** self.steps["all"]))

    def state_dict(self) -> dict:
        return {**super().state_dict(), "steps": dict(self.steps), "moments": self.moments}

    def load_state_dict(self, state: dict) -> None:
        super().load_state_dict(state)
        self.steps = {k: int(v) for k, v in state["steps"].items()}
        self.moments = [dict(m) for m in state["moments"]]


class GradientMemory(_Wrapper):
    """ALRIGHT with a per-objective gradient memory (module docstring, ``memory``)."""

    def __init__(self, base: torch.optim.Optimizer, lam: float | Mapping[str, float]):
        super().__init__(base)
        self.mix = mix_weights(lam)
        self.memory: dict[str, list[torch.Tensor]] = {}

    def transform(self, weights: dict[str, float], max_norm: float | None) -> None:
        on = [k for k in weights if weights[k] > 0]
        params = self.params()
        if len(on) == 1:  # a step on both objectives needs no memory
            self.memory[on[0]] = [
                p.detach().new_zeros(p.shape)
                if p.grad is None
                else p.grad.detach() / weights[on[0]]
                for p in params
            ]
            for i, p in enumerate(params):
                p.grad = sum(self.mix[k] * mem[i] for k, mem in self.memory.items())
        clip_(params, max_norm)

    def state_dict(self) -> dict:
        return {"base": self.base.state_dict(), "memory": self.memory}

    def load_state_dict(self, state: dict) -> None:
        self.base.load_state_dict(state["base"])
        self.memory = {k: list(v) for k, v in state["memory"].items()}


class SplitState(_Wrapper):
    """One optimizer per objective over the same parameters (module docstring, ``split-state``)."""

    def __init__(self, make: Callable[[], torch.optim.Optimizer], names=OBJECTIVES):
        self.by_objective = {k: make() for k in names}
        super().__init__(self.by_objective[names[0]])

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
