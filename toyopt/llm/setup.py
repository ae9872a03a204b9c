"""Building a run's pieces from its config: model, reference log-probs, optimizer, rule."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path

import torch

from toyopt.files import write_with
from toyopt.llm import objectives
from toyopt.llm.checkpoint import CorruptFile
from toyopt.llm.models import add_lora, load_model
from toyopt.llm.optim import GradientMemory, MixAdam, MixClip, SplitState
from toyopt.llm.prepare import splits
from toyopt.llm.scoring import pair_logps, reference_fn
from toyopt.rules import Rule, make_rule, make_weighted_rule
from toyopt.schedules import Restarted, Schedule
from toyopt.userinput import loads_json


def build_model(cfg):
    """(model, tokenizer), with LoRA adapters when asked; the model is in training mode."""
    if cfg.threads or cfg.model in ("tiny", "tiny-random"):
        # tiny's matrices are too small to split: on 2 shared cores 1 thread ran 6x faster than 2
        torch.set_num_threads(cfg.threads or 1)
    model, tok = load_model(cfg.model)
    if cfg.lora:
        model = add_lora(model, cfg.lora_r, cfg.lora_alpha, cfg.lora_targets)
    model.train()
    return model, tok


@dataclass
class Reference:
    """Precomputed (pairs, 2) reference log-probs of each preference objective, by name, or a
    per-batch function (train only)."""

    train: dict[str, torch.Tensor] | None
    eval: dict[str, torch.Tensor]
    fn: object | None = None
    val: dict[str, torch.Tensor] | None = None  # the validation pairs' (validation_rows)


def ref_key(split: str, name: str) -> str:
    """The key of a preference objective's split in ``ref_logps.pt``: ``train``/``eval`` for
    dpo, the file's keys since the two-objective trainer, ``NAME/train`` for other names."""
    return split if name == "dpo" else f"{name}/{split}"


def reference(cfg, model, tok, data, run: Path, device) -> Reference:
    """π_ref's log-probs: the starting model (with LoRA: adapters off) or ``cfg.ref_model``.

    Precomputed once per data set and stored in ``ref_logps.pt`` (so a resumed run, whose model
    has moved, uses the same reference); with ``precompute_ref`` off the training pairs are
    scored per batch instead, by a frozen model (the adapters-off base model under LoRA) on
    ``device``. Every preference objective is scored, also a reference-free one (whose loss then
    ignores them: one pass, and its evaluation rows report the same margins)."""
    path = run / "ref_logps.pt"
    prefs = [k for k, kind in data.kinds.items() if kind != "sft"]
    names = splits(cfg)
    keys = [ref_key(split, k) for k in prefs for split in names]
    if cfg.ref_model:
        ref_model, ref_tok = load_model(cfg.ref_model)
        if len(ref_tok) != len(tok):
            raise ValueError(
                f"ref_model {cfg.ref_model!r} has another vocabulary than {cfg.model!r}"
            )
        fn = reference_fn(ref_model.eval().to(device), use_adapters_off=False)
    elif cfg.lora:
        fn = reference_fn(model, use_adapters_off=True)
    elif not path.is_file():
        fn = reference_fn(model, use_adapters_off=False)  # the model before any step
    else:
        fn = None
    if path.is_file():
        saved = read_reference(path, keys)
    else:
        pad, size = tok.pad_token_id, cfg.eval_batch_size
        saved = {ref_key(split, k): pair_logps(fn, getattr(data, split)[k], pad, size, device)
                 for k in prefs for split in names}  # fmt: skip
        write_with(path, lambda tmp: torch.save(saved, tmp), root=run)  # never through a link
    by = {split: {k: saved[ref_key(split, k)] for k in prefs} for split in names}
    if cfg.precompute_ref:
        return Reference(by["train"], by["eval"], val=by.get("val"))
    if not (cfg.ref_model or cfg.lora):  # keep a frozen copy of the starting model
        frozen = load_model(cfg.model)[0].eval().to(device)
        fn = reference_fn(frozen, use_adapters_off=False)
    return Reference(None, by["eval"], fn, by.get("val"))


def read_reference(path: Path, keys=("train", "eval")) -> dict[str, torch.Tensor]:
    """``ref_logps.pt`` as written (holding ``keys``), or a one-line error naming it."""
    try:
        saved = torch.load(path, weights_only=True)
        if not all(isinstance(saved.get(k), torch.Tensor) for k in keys):
            raise ValueError(f"not a dict of {' and '.join(keys)} tensors")
    except Exception as err:  # torch raises several kinds for a damaged zip
        raise CorruptFile(
            f"{path}: unreadable ({str(err).splitlines()[0][:80]}); delete it to score the"
            " reference again"
        ) from None
    return saved


def read_optima(spec: str, names=("sft", "dpo"), split: str = "") -> dict[str, float] | None:
    """``'zero'`` → f* = 0 for every objective; else a JSON file with a number per objective
    name, e.g. 'sft' and 'dpo' (and optionally 'eval_NAME'): finite real numbers >= 0, since every
    objective is a loss that is never negative (a negative log-likelihood, a -log sigmoid, a
    square, a hinge). ``split='val'`` reads the validation values 'val_NAME' instead (what
    MAXRIGHT compares with ``validation_rows``)."""
    if not spec:
        return None
    if spec == "zero":
        return dict.fromkeys(names, 0.0)
    path = Path(spec)
    if path.is_dir():
        raise ValueError(f"--optima {path} is a directory, not an optima JSON file")
    if not path.is_file():
        raise ValueError(f"{path}: no such optima file")
    try:
        data = loads_json(path.read_text(), str(path))
    except json.JSONDecodeError as err:
        raise ValueError(f"{path}: invalid JSON ({err.msg} at line {err.lineno})") from None
    if not isinstance(data, dict):
        shape = ", ".join(f"'{k}': f*" for k in names)
        raise ValueError(f"{path}: expected a JSON object {{{shape}}}")
    fields = [f"{split}_{k}" if split else k for k in names]
    for k in (*fields, *(f"eval_{k}" for k in names)):
        if k not in data:
            if k.startswith("eval_"):  # optional: the held-out values
                continue
            if split:
                raise ValueError(
                    f"{path}: field '{k}' is missing (f* of each of {', '.join(names)} on the"
                    " validation split): estimate the optima with the same --validation-rows"
                )
            raise ValueError(f"{path}: field '{k}' is missing (f* of each of {', '.join(names)})")
        value = data[k]
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ValueError(f"{path}: field '{k}' must be a number, got {json.dumps(value)}")
        if not math.isfinite(value):  # json reads NaN and Infinity
            raise ValueError(f"{path}: field '{k}' must be a finite number, got {value}")
        if value < 0:
            raise ValueError(
                f"{path}: field '{k}' is {value}, but f* is the minimum of a loss that is never"
                " negative: give a value >= 0 (python -m toyopt.llm optima estimates it)"
            )
    return {k: float(data[f]) for k, f in zip(names, fields)}


def rule_optima(cfg) -> dict[str, float] | None:
    """The f* the run's MAXRIGHT compares with: ``cfg.optima``'s training-loss estimates, or with
    ``validation_rows`` its validation values (other rules ignore f*)."""
    split = "val" if cfg.validation_rows and cfg.rule == "maxright" else ""
    return read_optima(cfg.optima, objectives.names(cfg), split)


def build_rule(cfg) -> Rule:
    """``cfg.rule`` for sft and dpo at λ = ``cfg.lam``, or for the named objectives of a run
    with K sources at ``cfg.weights`` (:func:`toyopt.rules.make_weighted_rule`)."""
    optima = rule_optima(cfg)
    hold = cfg.validation_rows > 0  # validation values: no training loss between refreshes
    if not objectives.is_k(cfg):
        return make_rule(cfg.rule, cfg.lam, cfg.steps, cfg.switch, optima, cfg.refresh_every, hold)
    names = objectives.names(cfg)
    return make_weighted_rule(
        cfg.rule, {k: cfg.weights[k] for k in names}, cfg.steps, order=tuple(cfg.stage_order()),
        lengths=cfg.stages(),
        optima=optima, refresh_every=cfg.refresh_every, hold=hold,
    )  # fmt: skip


def base_optimizer(cfg, params: list) -> torch.optim.Optimizer:
    """``cfg.optimizer`` over ``params`` (see toyopt.llm.config.OPTIMIZERS)."""
    if cfg.optimizer == "sgd":
        return torch.optim.SGD(
            params, lr=cfg.lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay
        )
    betas = (cfg.adam_beta1, cfg.adam_beta2)
    return torch.optim.AdamW(params, lr=cfg.lr, betas=betas, weight_decay=cfg.weight_decay)


def build_optimizer(cfg, model, prepare=None):
    """The optimizer every rule gets: ``cfg.optimizer``, prepared by ``prepare`` (an engine's, if
    given), and for ALRIGHT wrapped as ``cfg.alright_step`` says (toyopt.llm.optim; ``plain``,
    the paper's rule, is not wrapped)."""
    params = [p for p in model.parameters() if p.requires_grad]
    base = base_optimizer(cfg, params)
    base = prepare(base) if prepare else base
    if cfg.rule != "alright" or cfg.alright_step == "plain":
        return base
    mix = objectives.weights(cfg)
    if cfg.alright_step == "memory":
        return GradientMemory(base, mix)
    if cfg.alright_step == "mix-clip":
        return MixClip(base, mix)
    if cfg.alright_step == "mix-adam":
        return MixAdam(base, mix)
    return SplitState(lambda: base_optimizer(cfg, params), tuple(mix))  # a diagnostic


def build_schedule(cfg, rule: Rule | None = None) -> Schedule | Restarted:
    """α_t of ``rule``: ``cfg.schedule`` over the whole budget; a sequential rule whose switch
    lies inside the budget gets it over each stage's own steps (warmup and decay start again at
    the switch), as two trainings run one after the other do. Over the whole budget a decay would
    give the second stage only the tail of the step sizes (a quarter of the linear decay's area):
    a handicapped baseline. A constant lr is the same either way."""

    def over(steps: int) -> Schedule:
        if cfg.warmup_steps >= steps:
            raise ValueError(
                f"--warmup-steps {cfg.warmup_steps} does not fit a stage of {steps} steps"
                f" ({cfg.rule} restarts its schedule at the switch, step {switch})"
            )
        return Schedule(cfg.schedule, cfg.lr, steps, cfg.warmup_steps, cfg.min_lr_ratio)

    lengths = getattr(rule, "lengths", None)  # K objectives in sequence: a restart per stage
    if lengths is not None:
        *firsts, last = [n for n in lengths if n > 0]  # an empty stage takes no step
        switch = "each stage"
        schedule = over(last)
        for n in reversed(firsts):
            schedule = Restarted(over(n), schedule, n)
        return schedule
    switch = getattr(rule, "switch", None)
    if switch is None or not 0 < switch < cfg.steps:
        return Schedule(cfg.schedule, cfg.lr, cfg.steps, cfg.warmup_steps, cfg.min_lr_ratio)
    return Restarted(over(switch), over(cfg.steps - switch), switch)
