"""A run's objectives: their names, kinds, data and weights.

- **Two objectives** (the default, the paper's setting): ``sft`` (kind ``sft``, data
  ``sft_data``/``sft_eval``) and ``dpo`` (kind ``loss_type``, by default DPO's ``sigmoid``; data
  ``pref_data``/``pref_eval``), weighted 1 − λ and λ.
- **K ≥ 2 data sources** (``objectives``, from the YAML config or ``--objective NAME=KIND:FILE``
  on the command line): each named objective has its kind (``sft``, or a preference loss of
  :data:`toyopt.llm.losses.PREFERENCE_LOSSES`), its training file and, optionally, its held-out
  file; ``weights`` puts them on the simplex, f_λ = Σ_k λ_k f_k. The rules are those of
  :func:`toyopt.rules.make_weighted_rule`: ``alright``, ``maxright``, ``mix`` and ``sequential``
  (stages in the order the objectives are given, of equal lengths, or as ``stage_steps`` says).

Each objective draws its batches from its own counter-based stream (:func:`batch_stream`), so
the sources never share random numbers and the two-objective runs draw what they always drew.
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass

from toyopt.rng import STREAM_BATCH
from toyopt.rules import check_weights, parse_pairs, two_weights

SFT = "sft"
# the preference losses, by TRL's loss_type names (toyopt.llm.losses.preference_losses)
PREFERENCE_LOSSES: dict[str, str] = {
    "sigmoid": "DPO: -log sigmoid(beta * margin), margin of the summed log-ratios",
    "ipo": "IPO: (margin of the per-token mean log-ratios - 1 / (2 beta))^2",
    "hinge": "SLiC hinge: max(0, 1 - beta * margin), margin of the summed log-ratios",
    "robust": "robust DPO: sigmoid DPO unbiased when a label is flipped with prob. label_smoothing",
    "simpo": "SimPO, no reference: -log sigmoid(beta * margin of mean log-probs - simpo_gamma)",
}
REFERENCE_FREE: frozenset[str] = frozenset({"simpo"})
LENGTH_NORMALISED: frozenset[str] = frozenset({"ipo", "simpo"})
SMOOTHED: frozenset[str] = frozenset({"robust", "simpo"})  # the losses using label_smoothing
K_RULES = ("sequential", "alright", "maxright", "mix")
LOSS_KEYS = ("beta", "label_smoothing", "simpo_gamma")  # a source's own loss settings (YAML)
SPEC_KEYS = ("kind", "data", "eval", *LOSS_KEYS)


@dataclass(frozen=True)
class Source:
    """One objective of a run. ``split`` prefixes its data splits (``{split}_train``,
    ``{split}_eval``): ``sft`` and ``pref`` for the two objectives (the names their files and
    fingerprints always had), the objective's name otherwise."""

    name: str
    kind: str
    data: str
    eval: str
    split: str
    settings: tuple[tuple[str, float], ...] = ()  # its own beta, label_smoothing, simpo_gamma

    @property
    def preference(self) -> bool:
        """Whether its rows are preference pairs (any kind but ``sft``)."""
        return self.kind != SFT

    @property
    def rows(self) -> str:
        """The data format its file holds: ``sft`` or ``pref`` (:func:`toyopt.llm.data.load_data`)."""
        return "pref" if self.preference else "sft"


def is_k(cfg) -> bool:
    """Whether ``cfg`` names its own data sources (``objectives``) instead of sft and dpo."""
    return bool(cfg.objectives)


def sources(cfg) -> list[Source]:
    """The run's objectives, in the order the rules see them."""
    if not is_k(cfg):
        return [Source("sft", SFT, cfg.sft_data, cfg.sft_eval, "sft"),
                Source("dpo", cfg.loss_type, cfg.pref_data, cfg.pref_eval, "pref")]  # fmt: skip
    return [Source(name, spec["kind"], spec["data"], spec.get("eval", ""), name,
                   tuple((k, spec[k]) for k in LOSS_KEYS if k in spec))
            for name, spec in cfg.objectives.items()]  # fmt: skip


def loss_settings(cfg, source: Source) -> dict[str, float]:
    """The preference loss settings of ``source``: the config's, or its own where it gives them."""
    return {k: float(dict(source.settings).get(k, getattr(cfg, k))) for k in LOSS_KEYS}


def check_losses(cfg) -> None:
    """Each preference objective's settings, in one line naming it: β > 0, label_smoothing in
    [0, 1/2) and read by its loss (TRL 1.16 reads it in robust and simpo only, and ignores it
    elsewhere: a value that would be ignored is refused), finite numbers."""
    for src in sources(cfg):
        if not src.preference:
            continue
        where = f"objective {src.name}: " if is_k(cfg) else ""
        for k, v in src.settings:
            if isinstance(v, bool) or not isinstance(v, (int, float)):
                raise ValueError(f"{where}{k} must be a number, got {v!r}")
        got = loss_settings(cfg, src)
        if not all(math.isfinite(v) for v in got.values()):
            raise ValueError(f"{where}the loss settings must be finite, got {got}")
        if not got["beta"] > 0:
            raise ValueError(f"{where}beta must be positive, got {got['beta']}")
        eps = got["label_smoothing"]
        if not 0 <= eps < 0.5:  # robust divides by 1 - 2 * label_smoothing
            raise ValueError(f"{where}label_smoothing must lie in [0, 0.5), got {eps}")
        if eps and src.kind not in SMOOTHED:
            raise ValueError(
                f"{where}label_smoothing is read by {' and '.join(sorted(SMOOTHED))} only, not"
                f" by {src.kind}"
            )


def names(cfg) -> tuple[str, ...]:
    """The run's objective names, in order."""
    return tuple(cfg.objectives) if is_k(cfg) else ("sft", "dpo")


def weights(cfg) -> dict[str, float]:
    """λ by objective name: {sft: 1 − λ, dpo: λ}, or the config's ``weights``."""
    return dict(cfg.weights) if is_k(cfg) else two_weights(cfg.lam)


def batch_stream(name: str) -> int:
    """The counter-based stream objective ``name`` draws its batches from: sft's and dpo's as
    always (1 and 2), any other name a 48-bit hash of it (far from the small reserved streams)."""
    if name in STREAM_BATCH:
        return STREAM_BATCH[name]
    digest = hashlib.sha256(name.encode("utf-8")).digest()
    return 2**16 + int.from_bytes(digest[:6], "big")


def parse_objective(text: str) -> tuple[str, dict[str, str]]:
    """``NAME=KIND:FILE`` (``--objective``) as (name, {"kind": KIND, "data": FILE})."""
    name, eq, rest = text.partition("=")
    kind, colon, data = rest.partition(":")
    if not (eq and colon and name.strip() and kind.strip() and data.strip()):
        raise ValueError(
            f"--objective {text!r}: expected NAME=KIND:FILE, e.g. chat=sft:data/chat.jsonl or"
            " prefs=ipo:data/pairs.jsonl"
        )
    return name.strip(), {"kind": kind.strip(), "data": data.strip()}


# names the trainer's own bookkeeping uses: a "mix" step, AdamW's first moment "m" and step
# count "all" (toyopt.llm.optim), the rule state's "seeds", metrics and tracker keys
RESERVED = frozenset({"mix", "m", "all", "seeds", "step", "f_mix", "ideal_distance", "wall_time",
                      "processes", "lr"})  # fmt: skip


def check(cfg) -> None:
    """One-line errors for a K-source config that no run can use."""
    kinds = tuple(PREFERENCE_LOSSES)
    specs = cfg.objectives
    if not isinstance(specs, dict) or len(specs) < 2:
        raise ValueError(f"objectives: give at least two data sources, got {specs!r}")
    for name, spec in specs.items():
        if not isinstance(name, str) or not name.isidentifier():
            raise ValueError(
                f"objectives: a name must be a word (letters, digits, _), got {name!r}"
            )
        if name in RESERVED or name.startswith(("gap_", "peak_")):
            raise ValueError(f"objective {name}: the name is taken by the trainer; choose another")
        if not isinstance(spec, dict) or set(spec) - set(SPEC_KEYS) or "data" not in spec:
            raise ValueError(
                f"objective {name}: expected {{kind: sft or a preference loss, data: FILE, and"
                f" optionally eval: FILE, {', '.join(LOSS_KEYS)}}}, got {spec!r}"
            )
        kind = spec.get("kind")
        if kind not in (SFT, *kinds):
            raise ValueError(
                f"objective {name}: unknown kind {kind!r}; choose sft or one of {', '.join(kinds)}"
            )
        for key in ("data", "eval"):
            value = spec.get(key, "")
            if not isinstance(value, str) or (key == "data" and not value):
                raise ValueError(f"objective {name}: {key} must name a JSONL file, got {value!r}")
        unused = [k for k in LOSS_KEYS if k in spec and kind == SFT]
        if unused:
            raise ValueError(f"objective {name}: {', '.join(unused)} is for preference losses,"
                             " not sft")  # fmt: skip
    for field in ("sft_data", "sft_eval", "pref_data", "pref_eval"):
        if getattr(cfg, field):
            flag = "--" + field.replace("_", "-")
            raise ValueError(f"{flag} is for the two objectives sft and dpo: with --objective,"
                             " each source names its own files")  # fmt: skip
    if cfg.loss_type != "sigmoid":
        raise ValueError("--loss-type is the loss of dpo: with --objective, each source names its"
                         " kind (NAME=KIND:FILE)")  # fmt: skip
    if not cfg.weights:
        raise ValueError(
            f"--objective needs --weights, one per objective (e.g."
            f" {','.join(f'{k}={1 / len(specs):.2g}' for k in specs)})"
        )
    if set(cfg.weights) != set(specs):
        raise ValueError(f"--weights names {list(cfg.weights)}, the objectives are {list(specs)}")
    check_weights(cfg.weights)
    if cfg.rule not in K_RULES:
        raise ValueError(
            f"rule {cfg.rule!r} with --objective: choose one of {', '.join(K_RULES)} (sequential"
            " trains the objectives in turn: in the order given, in equal stages, or as"
            " --stage-steps says)"
        )


def parse_stages(text: str) -> dict[str, int]:
    """``prefs=100,copy=150,ok=150`` (``--stage-steps``): steps per stage, in training order."""
    return parse_pairs(text, int, "--stage-steps", "NAME=STEPS,NAME=STEPS,... in training order")


def check_stages(cfg) -> None:
    """``stage_steps``: for rule sequential only, every objective once, steps >= 0 summing to
    the budget."""
    if not cfg.stage_steps:
        return
    if cfg.rule != "sequential":
        raise ValueError(f"--stage-steps is for rule sequential, not {cfg.rule}")
    if sorted(cfg.stage_steps) != sorted(cfg.objectives):
        raise ValueError(
            f"--stage-steps names {list(cfg.stage_steps)}, the objectives are"
            f" {list(cfg.objectives)}: give each one stage"
        )
    negative = [k for k, n in cfg.stage_steps.items() if n < 0]
    if negative:
        raise ValueError(f"--stage-steps: the stage of {negative[0]} has a negative length")
    if sum(cfg.stage_steps.values()) != cfg.steps:
        raise ValueError(
            f"--stage-steps must be steps >= 0 summing to --steps {cfg.steps}, got"
            f" {sum(cfg.stage_steps.values())}"
        )
