"""The update rules: which objective each optimizer step moves on.

The paper's methods differ *only* in this rule, so it is written once, here, and drives every
backend (the numpy toy problems and the torch language-model trainer alike). A rule never sees
parameters, tensors or optimizers: it sees its own small state, the step counter and, when it
asks for them, objective values. It returns the weights of this step's gradient,
``{"sft": w_sft, "dpo": w_dpo}``, each an array with one entry per run in the batch (one seed
per row). A zero weight means that objective is not computed at all for that row.

Interface (optax-style pure functions; the state is a dict of numpy arrays, JSON-serialisable
with :func:`state_to_json`, so a run can be checkpointed and resumed):

- ``init(seeds) -> state``
- ``wants_values(state, step) -> bool``: does ``choose`` need f_sft and f_dpo at the current
  iterate? (Each request costs one function evaluation per objective and per row.)
- ``choose(state, step, values) -> (weights, state)``
- ``observe(state, weights, losses) -> state``: ``losses`` are the values of the objectives the
  step differentiated, at the pre-step iterate (a gradient computation yields them for free).

Open-loop rules (sequential, ALRIGHT, Mix: the choice depends on the seed and the step only)
also offer ``choose_block(state, start, stop) -> weights`` with arrays of shape (stop − start, S):
the choices of a block of steps at once (ALRIGHT: one vectorised hash call for the whole block).
``choose`` is row 0 of a one-step block, so both give the same choices by construction.

λ (``lam``) is always the weight of DPO: f_mix,λ = λ f_dpo + (1 − λ) f_sft.

K ≥ 2 named objectives: :func:`make_weighted_rule` takes a weight vector on the simplex given
by name, e.g. ``{"sft": 0.3, "dpo": 0.5, "extra": 0.2}``, and returns the same four rules for
f_λ = Σ_k λ_k f_k (:class:`KSequential`, :class:`KAlRight`, :class:`KMaxRight`,
:class:`KStaleMaxRight`, :class:`KMix`). With exactly the names ``sft`` and ``dpo`` it returns
the two-objective rules above with λ = λ_dpo, so two-objective runs are unchanged bit for bit.
Every rule names its objectives in ``objectives``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np

from toyopt.rng import STREAM_CHOICE, uniform

OBJECTIVES: tuple[str, str] = ("sft", "dpo")
Weights = dict[str, np.ndarray]
State = dict[str, np.ndarray]
Values = Mapping[str, np.ndarray]

RULE_NAMES: dict[str, str] = {
    "sequential-sft-dpo": "SFT for the first `switch` steps, then DPO (the usual recipe).",
    "sequential-dpo-sft": "DPO for the first `switch` steps, then SFT (the order the paper analyses).",
    "alright": "each step on DPO with probability lam, else on SFT (ALRIGHT, paper's Algorithm 2).",
    "maxright": "each step on the objective with the larger weighted gap (MAXRIGHT, Algorithm 3);"
    " refresh_every=K>1 keeps stale gaps and evaluates both objectives every K steps.",
    "mix": "each step on lam*grad f_dpo + (1-lam)*grad f_sft: both gradients every step (baseline).",
}
SEQUENTIAL = "sequential"  # the K-objective sequential rule's name: stages in a given order


class Rule(Protocol):
    name: str

    def init(self, seeds: np.ndarray) -> State: ...

    def wants_values(self, state: State, step: int) -> bool: ...

    def choose(self, state: State, step: int, values: Values | None) -> tuple[Weights, State]: ...

    def observe(self, state: State, weights: Weights, losses: Values) -> State: ...


def check_lam(lam: float) -> float:
    lam = float(lam)
    if not 0.0 <= lam <= 1.0:
        raise ValueError(f"lam (the DPO weight) must lie in [0, 1], got {lam}")
    return lam


def two_weights(lam: float) -> dict[str, float]:
    """The two objectives' weights at λ: {sft: 1 − λ, dpo: λ}."""
    return {"sft": 1.0 - lam, "dpo": lam}


def one_hot(take_dpo: np.ndarray) -> Weights:
    """Unit weight on DPO where ``take_dpo`` is true, on SFT elsewhere."""
    dpo = np.asarray(take_dpo, dtype=bool).astype(float)
    return {"sft": 1.0 - dpo, "dpo": dpo}


class _Stateless:
    """Rules whose only state is the batch of seeds."""

    objectives: tuple[str, ...] = OBJECTIVES

    def init(self, seeds: np.ndarray) -> State:
        return {"seeds": np.asarray(seeds, dtype=np.int64).reshape(-1)}

    def wants_values(self, state: State, step: int) -> bool:
        return False

    def observe(self, state: State, weights: Weights, losses: Values) -> State:
        return state


class _OpenLoop(_Stateless):
    """Rules whose choice at a step depends only on (seed, step): ``choose_block`` defines them."""

    def choose_block(self, state: State, start: int, stop: int) -> Weights:
        raise NotImplementedError

    def choose(self, state: State, step: int, values: Values | None) -> tuple[Weights, State]:
        return {k: v[0] for k, v in self.choose_block(state, step, step + 1).items()}, state


@dataclass(frozen=True)
class Sequential(_OpenLoop):
    """Train on ``first`` for steps 0 … switch−1, then on the other objective.

    The paper's sequential lower bound: the second stage forgets the first, and the f_mix gap of
    the output stays bounded away from zero however large the budget (claim C1).
    """

    first: str
    switch: int

    def __post_init__(self) -> None:
        if self.first not in OBJECTIVES:
            raise ValueError(f"first must be 'sft' or 'dpo', got {self.first!r}")
        if self.switch < 0:
            raise ValueError(f"switch must be >= 0, got {self.switch}")

    @property
    def name(self) -> str:
        second = "dpo" if self.first == "sft" else "sft"
        return f"sequential-{self.first}-{second}"

    def choose_block(self, state: State, start: int, stop: int) -> Weights:
        in_first = np.arange(start, stop)[:, None] < self.switch
        in_first = np.broadcast_to(in_first, (stop - start, len(state["seeds"])))
        return one_hot(in_first == (self.first == "dpo"))


@dataclass(frozen=True)
class AlRight(_OpenLoop):
    """ALRIGHT: step on DPO with probability λ, else on SFT, with the unweighted gradient.

    E[step direction] = λ ∇f_dpo + (1 − λ) ∇f_sft = ∇f_mix,λ, so ALRIGHT is a stochastic
    gradient method on f_mix,λ at the cost of one gradient per step (claims C2, C5). The coin is
    ``uniform(seed, step) < λ`` from the counter-based generator: every process and every resumed
    run draws the same choice without communication.
    """

    lam: float
    name: str = field(default="alright", init=False)

    def __post_init__(self) -> None:
        check_lam(self.lam)

    def choose_block(self, state: State, start: int, stop: int) -> Weights:
        steps = np.arange(start, stop, dtype=np.uint64)[:, None]
        return one_hot(uniform(state["seeds"], steps, STREAM_CHOICE) < self.lam)


@dataclass(frozen=True)
class Mix(_OpenLoop):
    """Mix (baseline): the full gradient of f_mix,λ, i.e. both gradients every step (C4, C5)."""

    lam: float
    name: str = field(default="mix", init=False)

    def __post_init__(self) -> None:
        check_lam(self.lam)

    def choose_block(self, state: State, start: int, stop: int) -> Weights:
        shape = (stop - start, len(state["seeds"]))
        return {"sft": np.full(shape, 1.0 - self.lam), "dpo": np.full(shape, self.lam)}


def weighted_gaps(lam: float, optima: Mapping[str, float], values: Values) -> dict[str, np.ndarray]:
    """The gaps MAXRIGHT compares: λ (f_dpo − f*_dpo) and (1 − λ)(f_sft − f*_sft)."""
    return {
        "dpo": lam * (np.asarray(values["dpo"]) - optima["dpo"]),
        "sft": (1.0 - lam) * (np.asarray(values["sft"]) - optima["sft"]),
    }


def larger_gap(lam: float, gaps: Mapping[str, np.ndarray]) -> Weights:
    """One-hot weights on the larger weighted gap; a tie goes to the objective of larger weight
    (DPO when λ ≥ ½), so that λ = 1 is pure DPO and λ = 0 pure SFT even at an optimum."""
    if lam >= 0.5:  # ties to DPO: larger, or equal
        return one_hot(np.greater_equal(gaps["dpo"], gaps["sft"]))
    return one_hot(np.greater(gaps["dpo"], gaps["sft"]))


def _check_optima(optima: Mapping[str, float]) -> dict[str, float]:
    missing = [k for k in OBJECTIVES if k not in optima]
    if missing:
        raise ValueError(f"optima needs values for {missing}, got keys {sorted(optima)}")
    return {k: float(optima[k]) for k in OBJECTIVES}


@dataclass(frozen=True)
class MaxRight(_Stateless):
    """MAXRIGHT, exact reference version: evaluate both objectives every step and step (with the
    unweighted gradient) on the one with the larger weighted gap, argmax{λ gap_dpo, (1−λ) gap_sft}.

    This is a subgradient method on the weighted Chebyshev scalarisation
    max{λ (f_dpo − f*_dpo), (1 − λ)(f_sft − f*_sft)} (claim C3). Cost: one gradient and two
    function values per step (C5). ``optima`` are supplied constants f*_sft, f*_dpo (0 when
    unknown turns the rule into "larger weighted loss").
    """

    lam: float
    optima: Mapping[str, float]
    name: str = field(default="maxright", init=False)

    def __post_init__(self) -> None:
        check_lam(self.lam)
        object.__setattr__(self, "optima", _check_optima(self.optima))

    def wants_values(self, state: State, step: int) -> bool:
        return True

    def choose(self, state: State, step: int, values: Values | None) -> tuple[Weights, State]:
        if values is None:
            raise ValueError("MAXRIGHT needs both objective values at every step")
        return larger_gap(self.lam, weighted_gaps(self.lam, self.optima, values)), state


@dataclass(frozen=True)
class StaleMaxRight:
    """MAXRIGHT, memory-efficient version: refresh both weighted gaps exactly every
    ``refresh_every`` = K steps; between refreshes only the gap of the objective just stepped on
    is updated, with the loss that step computed anyway. Cost: 2/K function values per step.

    With K = 1 it makes exactly the choices of :class:`MaxRight` (tested), in the way
    schedule-free's memory-efficient optimizer is tested against its reference version.
    ``hold`` keeps both gaps as refreshed until the next refresh: for values that are not the
    step's losses (a validation split), where a training loss would mix two kinds of gap.
    """

    lam: float
    optima: Mapping[str, float]
    refresh_every: int
    hold: bool = False
    name: str = field(default="maxright", init=False)
    objectives = OBJECTIVES

    def __post_init__(self) -> None:
        check_lam(self.lam)
        object.__setattr__(self, "optima", _check_optima(self.optima))
        if self.refresh_every < 1:
            raise ValueError(f"refresh_every must be >= 1, got {self.refresh_every}")

    def init(self, seeds: np.ndarray) -> State:
        seeds = np.asarray(seeds, dtype=np.int64).reshape(-1)
        return {"seeds": seeds, "gap_sft": np.zeros(seeds.shape), "gap_dpo": np.zeros(seeds.shape)}

    def wants_values(self, state: State, step: int) -> bool:
        return step % self.refresh_every == 0

    def choose(self, state: State, step: int, values: Values | None) -> tuple[Weights, State]:
        if values is not None:
            gaps = weighted_gaps(self.lam, self.optima, values)
            state = {**state, "gap_sft": gaps["sft"] + 0.0, "gap_dpo": gaps["dpo"] + 0.0}
        elif self.wants_values(state, step):
            raise ValueError(f"stale MAXRIGHT needs both objective values at step {step}")
        gaps = {"sft": state["gap_sft"], "dpo": state["gap_dpo"]}
        return larger_gap(self.lam, gaps), state

    def observe(self, state: State, weights: Weights, losses: Values) -> State:
        if self.hold:
            return state
        fresh = weighted_gaps(self.lam, self.optima, {k: losses.get(k, np.nan) for k in OBJECTIVES})
        new = dict(state)
        for k in OBJECTIVES:
            stepped = np.asarray(weights[k]) > 0
            new[f"gap_{k}"] = np.where(stepped, fresh[k], state[f"gap_{k}"])
        return new


# --- K ≥ 2 named objectives ------------------------------------------------------------------

SIMPLEX_TOL = 1e-9  # |Σ λ_k − 1| allowed in a weight vector


def check_weights(weights: Mapping[str, float]) -> dict[str, float]:
    """A weight vector on the simplex, by objective name (order kept), or a one-line error."""
    if not isinstance(weights, Mapping) or len(weights) < 2:
        raise ValueError(f"weights need at least two named objectives, got {weights!r}")
    out = {}
    for k, w in weights.items():
        if not isinstance(k, str) or not k or k != k.strip() or k == "seeds":
            raise ValueError(f"objective names must be non-empty words, got {k!r}")
        w = float(w)
        if not 0.0 <= w <= 1.0:
            raise ValueError(f"the weight of {k!r} must lie in [0, 1], got {w}")
        out[k] = w
    total = sum(out.values())
    if abs(total - 1.0) > SIMPLEX_TOL:
        raise ValueError(f"the weights must sum to 1 (a point of the simplex), got {total:.12g}")
    return out


def parse_pairs(text: str, cast, option: str, expected: str) -> dict:
    """``a=x,b=y`` (a command line's named values) as {name: cast(value)}, names in order; a
    one-line error naming ``option`` for a malformed text or a name given twice."""
    try:
        items = [item.split("=", 1) for item in text.split(",")]
        pairs = {k.strip(): cast(v) for k, v in items}
    except ValueError:
        raise ValueError(f"{option}: expected {expected}, got {text!r}") from None
    if len(pairs) < len(items):
        raise ValueError(f"{option} {text!r}: an objective is named twice")
    return pairs


def weights_from_text(text: str) -> dict[str, float]:
    """``sft=0.3,dpo=0.5,extra=0.2`` (the command lines' ``--weights``) as checked weights."""
    pairs = parse_pairs(text, float, "--weights", "NAME=W,NAME=W,... (weights summing to 1)")
    try:
        return check_weights(pairs)
    except ValueError as e:
        raise ValueError(f"--weights {text!r}: {e}") from None


def one_hot_k(names: tuple[str, ...], index: np.ndarray) -> Weights:
    """Unit weight on objective ``names[index]`` in each entry of ``index``."""
    return {k: (index == i).astype(float) for i, k in enumerate(names)}


@dataclass(frozen=True)
class _Weighted:
    """The weights of a K-objective rule, checked to lie on the simplex; they name (and order)
    its objectives."""

    weights: Mapping[str, float]

    def __post_init__(self) -> None:
        object.__setattr__(self, "weights", check_weights(self.weights))

    @property
    def objectives(self) -> tuple[str, ...]:
        return tuple(self.weights)


@dataclass(frozen=True)
class KSequential(_OpenLoop):
    """Train on ``order[0]`` for ``lengths[0]`` steps, then on ``order[1]`` for ``lengths[1]``
    steps, and so on; steps past the last stage stay on its objective. Each stage forgets the
    ones before it (claim C1 for K objectives)."""

    order: tuple[str, ...]
    lengths: tuple[int, ...]
    name: str = field(default=SEQUENTIAL, init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "order", tuple(self.order))
        object.__setattr__(self, "lengths", tuple(int(n) for n in self.lengths))
        if len(self.order) < 2 or len(set(self.order)) != len(self.order):
            raise ValueError(f"order must name two or more distinct objectives, got {self.order}")
        if len(self.lengths) != len(self.order) or min(self.lengths) < 0:
            raise ValueError(
                f"lengths must give one stage length >= 0 per objective, got {self.lengths}"
            )

    @property
    def objectives(self) -> tuple[str, ...]:
        return self.order

    def choose_block(self, state: State, start: int, stop: int) -> Weights:
        ends = np.cumsum(self.lengths[:-1])
        stage = np.searchsorted(ends, np.arange(start, stop), side="right")[:, None]
        stage = np.broadcast_to(stage, (stop - start, len(state["seeds"])))
        return one_hot_k(self.order, stage)


@dataclass(frozen=True)
class KAlRight(_Weighted, _OpenLoop):
    """ALRIGHT for K objectives: step on objective k with probability λ_k (unweighted gradient).

    E[step direction] = Σ_k λ_k ∇f_k = ∇f_λ. The draw is the two-objective rule's
    ``u = uniform(seed, step)``: objective k is chosen when u lies in its interval
    [λ_1 + … + λ_{k−1}, λ_1 + … + λ_k) in the order the weights are given, so that the weights
    ``{"dpo": λ, "sft": 1 − λ}`` choose exactly as :class:`AlRight` (λ) does.
    """

    name: str = field(default="alright", init=False)

    def choose_block(self, state: State, start: int, stop: int) -> Weights:
        w = np.array(list(self.weights.values()))
        ends = np.cumsum(w)
        ends[int(np.flatnonzero(w > 0)[-1]) :] = np.inf  # no rounding gap at the top
        steps = np.arange(start, stop, dtype=np.uint64)[:, None]
        u = uniform(state["seeds"], steps, STREAM_CHOICE)
        return one_hot_k(self.objectives, np.searchsorted(ends, u, side="right"))


@dataclass(frozen=True)
class KMix(_Weighted, _OpenLoop):
    """Mix for K objectives: the full gradient Σ_k λ_k ∇f_k every step (every gradient)."""

    name: str = field(default="mix", init=False)

    def choose_block(self, state: State, start: int, stop: int) -> Weights:
        shape = (stop - start, len(state["seeds"]))
        return {k: np.full(shape, w) for k, w in self.weights.items()}


def _check_k_optima(names: tuple[str, ...], optima: Mapping[str, float]) -> dict[str, float]:
    missing = [k for k in names if k not in optima]
    if missing:
        raise ValueError(f"optima needs values for {missing}, got keys {sorted(optima)}")
    return {k: float(optima[k]) for k in names}


def largest_gap(weights: Mapping[str, float], gaps: Mapping[str, np.ndarray]) -> Weights:
    """One-hot weights on the largest weighted gap; a tie goes to the objective of larger
    weight, and between equal weights to the one named first (for two objectives: the rule of
    :func:`larger_gap`)."""
    names = tuple(weights)
    rank = sorted(range(len(names)), key=lambda i: -weights[names[i]])  # stable
    best = np.argmax(np.stack([np.asarray(gaps[names[i]], dtype=float) for i in rank]), axis=0)
    return one_hot_k(names, np.asarray(rank)[best])


@dataclass(frozen=True)
class KMaxRight(_Weighted, _Stateless):
    """MAXRIGHT for K objectives, exact: evaluate every objective each step and step on
    argmax_k λ_k (f_k − f*_k): the subgradient method on the Chebyshev scalarisation
    max_k λ_k (f_k − f*_k) (claim C3 for K objectives)."""

    optima: Mapping[str, float]
    name: str = field(default="maxright", init=False)

    def __post_init__(self) -> None:
        super().__post_init__()
        object.__setattr__(self, "optima", _check_k_optima(self.objectives, self.optima))

    def wants_values(self, state: State, step: int) -> bool:
        return True

    def gaps(self, values: Values) -> dict[str, np.ndarray]:
        return {k: w * (np.asarray(values[k]) - self.optima[k]) for k, w in self.weights.items()}

    def choose(self, state: State, step: int, values: Values | None) -> tuple[Weights, State]:
        if values is None:
            raise ValueError("MAXRIGHT needs every objective value at every step")
        return largest_gap(self.weights, self.gaps(values)), state


@dataclass(frozen=True)
class KStaleMaxRight(KMaxRight):
    """MAXRIGHT for K objectives, memory-efficient: every weighted gap is refreshed every
    ``refresh_every`` steps, in between only the gap of the objective just stepped on (with the
    loss that step computed; ``hold``: not at all, as :class:`StaleMaxRight`). With
    ``refresh_every`` = 1 it chooses as :class:`KMaxRight`."""

    refresh_every: int = 1
    hold: bool = False

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.refresh_every < 1:
            raise ValueError(f"refresh_every must be >= 1, got {self.refresh_every}")

    def init(self, seeds: np.ndarray) -> State:
        seeds = np.asarray(seeds, dtype=np.int64).reshape(-1)
        return {"seeds": seeds, **{f"gap_{k}": np.zeros(seeds.shape) for k in self.objectives}}

    def wants_values(self, state: State, step: int) -> bool:
        return step % self.refresh_every == 0

    def choose(self, state: State, step: int, values: Values | None) -> tuple[Weights, State]:
        if values is not None:
            state = {**state, **{f"gap_{k}": g + 0.0 for k, g in self.gaps(values).items()}}
        elif self.wants_values(state, step):
            raise ValueError(f"stale MAXRIGHT needs every objective value at step {step}")
        gaps = {k: state[f"gap_{k}"] for k in self.objectives}
        return largest_gap(self.weights, gaps), state

    def observe(self, state: State, weights: Weights, losses: Values) -> State:
        if self.hold:
            return state
        fresh = self.gaps({k: losses.get(k, np.nan) for k in self.objectives})
        new = dict(state)
        for k in self.objectives:
            stepped = np.asarray(weights[k]) > 0
            new[f"gap_{k}"] = np.where(stepped, fresh[k], state[f"gap_{k}"])
        return new


def make_weighted_rule(
    name: str,
    weights: Mapping[str, float],
    steps: int,
    *,
    order: tuple[str, ...] | None = None,
    lengths: tuple[int, ...] | None = None,
    optima: Mapping[str, float] | None = None,
    refresh_every: int = 1,
    hold: bool = False,
) -> Rule:
    """Build a rule for the named objectives of ``weights`` (on the simplex).

    ``name`` is ``alright``, ``maxright``, ``mix``, or ``sequential`` (stages in ``order``,
    default the order of ``weights``, of ``lengths`` steps, default equal parts of ``steps``);
    the two-objective names ``sequential-sft-dpo`` and ``sequential-dpo-sft`` also work for the
    names sft and dpo. With exactly the names ``sft`` and ``dpo`` the rule is the one
    :func:`make_rule` builds with λ = the weight of dpo (bit-for-bit the same runs).
    """
    weights = check_weights(weights)
    if steps <= 0:
        raise ValueError(f"steps must be a positive number of optimizer steps, got {steps}")
    names = tuple(weights)
    if set(names) == set(OBJECTIVES):
        lam = weights["dpo"]
        if name == SEQUENTIAL:
            first = (order or names)[0]
            second = "dpo" if first == "sft" else "sft"
            switch = None if lengths is None else int(lengths[0])
            return make_rule(f"sequential-{first}-{second}", lam, steps, switch)
        return make_rule(name, lam, steps, optima=optima, refresh_every=refresh_every, hold=hold)
    if name == SEQUENTIAL:
        order = names if order is None else tuple(order)
        if set(order) != set(names) or len(order) != len(names):
            raise ValueError(f"order must list each of {list(names)} once, got {list(order)}")
        if lengths is None:
            lengths = tuple(steps // len(order) for _ in order[:-1])
            lengths = (*lengths, steps - sum(lengths))
        return KSequential(order, tuple(lengths))
    if name == "alright":
        return KAlRight(weights)
    if name == "mix":
        return KMix(weights)
    if name == "maxright":
        if optima is None:
            raise ValueError(f"maxright needs the single-objective optima of {list(names)}")
        if refresh_every == 1:
            return KMaxRight(weights, optima)
        return KStaleMaxRight(weights, optima, refresh_every, hold)
    raise ValueError(f"unknown rule {name!r}; choose one of {SEQUENTIAL}, alright, maxright, mix")


def default_switch(steps: int) -> int:
    """The step at which a sequential rule's second stage starts by default: equal halves."""
    return steps // 2


def make_rule(
    name: str,
    lam: float,
    steps: int,
    switch: int | None = None,
    optima: Mapping[str, float] | None = None,
    refresh_every: int = 1,
    hold: bool = False,
) -> Rule:
    """Build a rule from its CLI name (see :data:`RULE_NAMES`).

    ``steps`` is the total budget in optimizer steps; sequential rules switch at ``switch``
    (default: equal halves). MAXRIGHT needs ``optima``; ``refresh_every`` = 1 gives the exact rule,
    ``hold`` keeps a stale rule's gaps between refreshes (:class:`StaleMaxRight`).
    """
    check_lam(lam)
    if steps <= 0:
        raise ValueError(f"steps must be a positive number of optimizer steps, got {steps}")
    if name.startswith("sequential-") and name in RULE_NAMES:
        if switch is None:
            switch = default_switch(steps)
        if not 0 <= switch <= steps:
            raise ValueError(f"switch must lie in [0, steps={steps}], got {switch}")
        return Sequential(first=name.split("-")[1], switch=switch)
    if name == "alright":
        return AlRight(lam)
    if name == "mix":
        return Mix(lam)
    if name == "maxright":
        if optima is None:
            raise ValueError("maxright needs the single-objective optima f*_sft and f*_dpo")
        if refresh_every == 1:
            return MaxRight(lam, optima)
        return StaleMaxRight(lam, optima, refresh_every, hold)
    raise ValueError(f"unknown rule {name!r}; choose one of {', '.join(RULE_NAMES)}")


def state_to_json(state: State) -> dict[str, list]:
    """A JSON-ready copy of a rule state (for checkpoints)."""
    return {k: np.asarray(v).tolist() for k, v in state.items()}


def state_from_json(data: Mapping[str, list]) -> State:
    return {k: np.asarray(v, dtype=np.int64 if k == "seeds" else float) for k, v in data.items()}
