"""Deliberately broken variants: a check that cannot fail is not a check.

Each variant composes the real rule objects with one wrong ingredient (a biased λ, a step that
does not decay, wrong optima, a perturbed prediction, minibatch rows drawn by the wrong law, a
rule that asks for values it does not need or computes gradients it does not use) and runs the
same check. It names the record kinds it must break (``targets``: at least one record of each
fails) and those it must leave alone (``holds``: every record of those kinds holds). Every kind
of :data:`proofs_check.record.KINDS` is the target of some variant (tested). Nothing here
re-implements a rule.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from proofs_check import llm
from proofs_check.c1_sequential import check_c1
from proofs_check.c2_alright import check_c2
from proofs_check.c3_maxright import check_c3
from proofs_check.c4_mix import check_c4
from proofs_check.c5_cost import check_c5
from proofs_check.c6_tradeoff import check_c6
from proofs_check.k_objectives import (
    WEIGHTS,
    check_alright_k,
    check_cost_k,
    check_maxright_k,
    check_mix_k,
    check_sequential_k,
    k3_quadratic,
)
from proofs_check.record import Record
from toyopt.pareto import Geometry
from toyopt.problems import get_problem
from toyopt.problems.loglinear import LogLinearProblem
from toyopt.rng import STREAM_BATCH, uniform
from toyopt.rules import (
    AlRight,
    KAlRight,
    KMix,
    KSequential,
    MaxRight,
    Mix,
    Rule,
    Sequential,
    State,
)
from toyopt.schedules import Schedule


@dataclass(frozen=True)
class Variant:
    name: str
    targets: tuple[str, ...]
    run: Callable[[], list[Record]]
    holds: tuple[str, ...] = ()


@dataclass(frozen=True)
class AsksForValues:
    """Wraps a rule and requests both objective values at every step (wasted evaluations)."""

    inner: Rule

    @property
    def name(self) -> str:
        return self.inner.name

    def init(self, seeds: np.ndarray) -> State:
        return self.inner.init(seeds)

    def wants_values(self, state: State, step: int) -> bool:
        return True

    def choose(self, state, step, values):
        inner_values = values if self.inner.wants_values(state, step) else None
        return self.inner.choose(state, step, inner_values)

    def observe(self, state, weights, losses):
        return self.inner.observe(state, weights, losses)


@dataclass(frozen=True)
class NeverZero(AsksForValues):
    """Wraps a rule and puts a weight of 1e-12 instead of 0 on the objective it does not step on:
    the backend then computes that gradient too (wasted gradients)."""

    def wants_values(self, state: State, step: int) -> bool:
        return self.inner.wants_values(state, step)

    def choose(self, state, step, values):
        weights, state = self.inner.choose(state, step, values)
        return {k: np.maximum(w, 1e-12) for k, w in weights.items()}, state


@dataclass(frozen=True)
class SwitchTo:
    """The rule ``first`` for steps < ``at``, then the rule ``then``: a sequential run whose
    second stage is not what it says (both rules stateless)."""

    first: Rule
    then: Rule
    at: int

    @property
    def name(self) -> str:
        return self.first.name

    def _now(self, step: int) -> Rule:
        return self.first if step < self.at else self.then

    def init(self, seeds: np.ndarray) -> State:
        return self.first.init(seeds)

    def wants_values(self, state: State, step: int) -> bool:
        return self._now(step).wants_values(state, step)

    def choose(self, state, step, values):
        return self._now(step).choose(state, step, values)

    def observe(self, state, weights, losses):
        return state


def mixing_second_stage(first: str) -> Callable:
    """The sequential rule that starts on ``first`` and steps on Mix's gradient after the switch."""
    return lambda lam, switch: SwitchTo(Sequential(first, switch), Mix(lam), switch)


class UniformRows(LogLinearProblem):
    """Minibatches that draw data rows uniformly instead of by their data weight."""

    def sample_rows(self, objective, seeds, step, batch):
        n = len(self.sft_weight if objective == "sft" else self.pref_weight)
        u = uniform(np.asarray(seeds)[:, None], step, STREAM_BATCH[objective], np.arange(batch))
        return np.minimum((u * n).astype(int), n - 1)


def uniform_rows(problem: LogLinearProblem) -> LogLinearProblem:
    broken = copy.copy(problem)
    broken.__class__ = UniformRows
    return broken


def _wrong_optima(problem, shift: float = 0.3) -> dict[str, float]:
    f_star = Geometry(problem).f_star
    return {"sft": f_star["sft"], "dpo": f_star["dpo"] + shift}


def variants() -> list[Variant]:
    """The broken runs, at the quick settings (seconds each)."""
    toy, quad = get_problem("toy2d"), get_problem("quad2d")
    t2, t6 = 2000, 2000
    return [
        Variant("C1 plateau prediction perturbed by +0.05", ("C1 plateau",), lambda: check_c1(
            toy, "toy2d", budgets=(100, 1000), sweep=(), plateau_shift=0.05),
            holds=("C1 certificate",)),
        Variant("C1 second stage secretly mixes both objectives", ("C1 certificate",),
                lambda: check_c1(toy, "toy2d", (0.5,), budgets=(100, 1000), sweep=(),
                                 stage2=Mix(0.5))),
        Variant("C2 ALRIGHT with a biased coin (λ+0.4)", ("C2 bound", "C2 rate"),
                lambda: check_c2(toy, "toy2d", 0.5, t2, 64, rule=AlRight(0.9))),
        Variant("C2 ALRIGHT with a step that does not decay", ("C2 rate",),
                lambda: check_c2(toy, "toy2d", 0.5, t2, 64, schedule=Schedule("constant", 2.0)),
                holds=("C2 bound",)),
        Variant("C2 minibatch rows drawn uniformly, not by data weight", ("C2 rate",),
                lambda: check_c2(uniform_rows(toy), "toy2d", 0.5, t2, 64, batch=1)),
        Variant("C3 MAXRIGHT with wrong optima (f*_dpo+0.3)", ("C3 bound", "C3 convergence"),
                lambda: check_c3(toy, "toy2d", (0.5,), t2, stale=(1,),
                                 optima=_wrong_optima(toy)),
                holds=("C3 stale = exact",)),
        Variant("C3 MAXRIGHT weighting with 1 − λ (λ = ¼ runs as ¾)", ("C3 convergence",),
                lambda: check_c3(toy, "toy2d", (0.25,), t2, stale=(), lam_used=lambda x: 1 - x)),
        Variant("C3 stale MAXRIGHT with wrong optima (f*_dpo+0.3)",
                ("C3 stale = exact", "C3 staleness"),
                lambda: check_c3(toy, "toy2d", (0.5,), t2, stale=(1, 10),
                                 stale_optima=_wrong_optima(toy)),
                holds=("C3 bound",)),
        Variant("C4 Mix run with λ+0.2", ("C4 bound",),
                lambda: check_c4(quad, "quad2d", (0.5,), 1000, lam_used=0.7)),
        Variant("C4 Mix with step 2.2/L", ("C4 bound",),
                lambda: check_c4(quad, "quad2d", (0.5,), 1000, lr_factor=2.2)),
        Variant("C5 rules that ask for values every step", ("C5 values",),
                lambda: check_c5(toy, "toy2d", wrap=AsksForValues), holds=("C5 gradients",)),
        Variant("C5 weight 1e-12 instead of 0 on the other objective", ("C5 gradients",),
                lambda: check_c5(toy, "toy2d", wrap=NeverZero), holds=("C5 values",)),
        Variant("C6 ALRIGHT with a biased coin (λ+0.05)", ("C6 same point",),
                lambda: check_c6(toy, "toy2d", (0.5,), t6, 200, alright_lam=0.55),
                holds=("C6 sequential lands",)),
        Variant("C6 sequential that never switches", ("C6 sequential lands",),
                lambda: check_c6(toy, "toy2d", (0.5,), t6, 200, never_switch=True),
                holds=("C6 same point",)),
        Variant("C6 MAXRIGHT with wrong optima (f*_dpo+0.3)",
                ("C6 smallest ideal distance", "C6 ideal distance tie"),
                lambda: check_c6(toy, "toy2d", (0.25, 0.5), t6, 200,
                                 maxright_optima=_wrong_optima(toy)),
                holds=("C6 same point", "C6 sequential lands")),
    ] + k3_variants() + llm_variants()  # fmt: skip


def k3_variants() -> list[Variant]:
    """The three-objective checks' broken runs (seconds)."""
    k3 = k3_quadratic()
    swapped = {"sft": 0.5, "dpo": 0.3, "extra": 0.2}  # sft's and dpo's weights exchanged
    wrong = {"sft": 0.0, "dpo": 0.0, "extra": 0.3}
    return [
        Variant("K3 ALRIGHT drawing with sft's and dpo's weights exchanged",
                ("K3 ALRIGHT bound", "K3 ALRIGHT rate"),
                lambda: check_alright_k(k3, 2000, 64, rule=KAlRight(swapped))),
        Variant("K3 Mix with sft's and dpo's weights exchanged", ("K3 Mix bound",),
                lambda: check_mix_k(k3, 1000, rule=KMix(swapped))),
        Variant("K3 MAXRIGHT ignoring the objective 'extra'",
                ("K3 MAXRIGHT bound", "K3 MAXRIGHT convergence"),
                lambda: check_maxright_k(k3, 2000, ignore="extra"), holds=("K3 stale = exact",)),
        Variant("K3 stale MAXRIGHT with a wrong optimum (f*_extra+0.3)", ("K3 stale = exact",),
                lambda: check_maxright_k(k3, 2000, stale_optima=wrong),
                holds=("K3 MAXRIGHT bound",)),
        Variant("K3 rules that ask for every value every step", ("K3 values",),
                lambda: check_cost_k(k3, wrap=AsksForValues), holds=("K3 gradients",)),
        Variant("K3 weight 1e-12 instead of 0 on the objectives not stepped on", ("K3 gradients",),
                lambda: check_cost_k(k3, wrap=NeverZero), holds=("K3 values",)),
        Variant("K3 sequential whose last stage steps on Mix's gradient", ("K3 sequential plateau",),
                lambda: check_sequential_k(k3, rule_for=lambda t: SwitchTo(
                    KSequential(tuple(WEIGHTS), (t, t, t)), KMix(WEIGHTS), 2 * t))),
    ]  # fmt: skip


# The broken MAXRIGHT gets f* = 0 (a replacement rule is built from λ and the switch alone); the
# tiny model's estimates are 0.0013 (SFT) and below 1e-5 (DPO), so the weights are what differs.
ZERO = {"sft": 0.0, "dpo": 0.0}


@dataclass(frozen=True, eq=False)
class MaxRightOtherWeights(MaxRight):
    """MAXRIGHT as given, hashed by identity (its optima are a dict) so that it can key a run."""

    __hash__ = object.__hash__


def llm_variants() -> list[Variant]:
    """The language-model claims' broken runs, at λ = ½ (a minute: tiny model runs)."""
    if not llm.available():
        return []
    mixing = {
        f"sequential-{a}-{b}": mixing_second_stage(a) for a, b in (("sft", "dpo"), ("dpo", "sft"))
    }
    alone = dict(validation_rows=None, maxright_steps=None)  # without L5's and L6's extra runs
    return [
        Variant("L1 sequential whose second stage also trains the first objective (Mix)",
                ("L1 forgetting",), lambda: llm.check_llm((0.5,), mixing, **alone),
                holds=("L2 near Mix",)),
        Variant("L2 ALRIGHT with a biased coin (λ+0.25)", ("L2 near Mix",),
                lambda: llm.check_llm((0.5,), {"alright": lambda lam, s: AlRight(lam + 0.25)},
                                      **alone),
                holds=("L1 forgetting", "L3 ideal distance order")),
        Variant("L3 ALRIGHT whose coin always lands on DPO", ("L3 ideal distance order",),
                lambda: llm.check_llm((0.5,), {"alright": lambda lam, s: AlRight(1.0)},
                                      **alone),
                holds=("L1 forgetting",)),
        Variant("L4 MAXRIGHT weighing the objectives with 1 − λ", ("L4 MAXRIGHT's target",),
                lambda: llm.check_llm((0.25,), {"maxright": lambda lam, s: MaxRightOtherWeights(1 - lam, ZERO)},
                                      **alone),
                holds=("L1 forgetting",)),
        Variant("L5 MAXRIGHT comparing the step's training batches (no validation split)",
                ("L5 MAXRIGHT's held-out target",),
                lambda: llm.check_llm((0.25,), validation_rows=0, maxright_steps=None),
                holds=("L4 MAXRIGHT's target",)),
        Variant("L6 MAXRIGHT at Mix's step count (half Mix's gradients)",
                ("L6 MAXRIGHT at Mix's gradient count",),
                lambda: llm.check_llm((0.75,), validation_rows=None, maxright_steps=llm.STEPS),
                holds=("L1 forgetting",)),
    ]  # fmt: skip
