"""The trainer: :func:`toyopt.loop.train` with a rule from :func:`toyopt.rules.make_rule` and the
language-model backend. There is no method-specific code here: the rule alone decides.

Run directory (``output_dir``): ``config.json``/``config.yaml`` (resolved config),
``metrics.jsonl``, ``ref_logps.pt``, ``checkpoints/step-NNNNNN``, ``final/`` (the trained model
or adapters), ``summary.json``, and ``optima.json`` when MAXRIGHT was given optima. metrics rows:

- per optimizer step t (0-based): ``step`` = t, ``objective`` ("sft", "dpo" or "mix"), the losses
  it computed (``loss_sft`` and/or ``loss_dpo``, at the parameters after t steps, on step t's
  batches), ``lr``, ``wall_time`` (seconds since training started), ``step_seconds``, and
  ``value_sft``/``value_dpo`` when the rule asked for both values (MAXRIGHT);
- per evaluation after s steps (s = 0, eval_every, …, steps): ``step`` = s, ``eval_sft``,
  ``eval_dpo`` on the held-out sets, ``wall_time``, and ``peak_rss_bytes`` (the process's peak
  resident memory, from getrusage) or ``peak_cuda_allocated_bytes`` on a GPU.
"""

from __future__ import annotations

import json
import math
import resource
import shutil
import sys
import time
from pathlib import Path

import numpy as np
import torch

from toyopt.llm.backend import LMBackend
from toyopt.llm.checkpoint import MetricsLog, checkpoints, load_checkpoint, save_checkpoint
from toyopt.llm.config import TrainConfig, save
from toyopt.llm.prepare import prepare
from toyopt.llm.scoring import evaluate
from toyopt.llm.setup import (
    build_model,
    build_optimizer,
    build_rule,
    build_schedule,
    read_optima,
    reference,
)
from toyopt.loop import train
from toyopt.rules import OBJECTIVES, state_from_json, state_to_json

IGNORED_ON_RESUME = ("resume", "overwrite", "progress", "threads", "output_dir")


class Diverged(RuntimeError):
    """A non-finite training loss (the last good checkpoint is kept)."""


def peak_rss_bytes() -> int:
    """This process's peak resident memory so far (getrusage)."""
    scale = 1 if sys.platform == "darwin" else 1024  # ru_maxrss is in KiB on Linux
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * scale


def peak_memory() -> dict[str, int]:
    """The peak memory a run reached, named for what it measures."""
    if torch.cuda.is_available():
        return {"peak_cuda_allocated_bytes": int(torch.cuda.max_memory_allocated())}
    return {"peak_rss_bytes": peak_rss_bytes()}


def step_row(t: int, weights, losses, values) -> dict:
    """The metrics row of optimizer step t; raises Diverged on a non-finite loss."""
    on = [k for k in OBJECTIVES if float(np.asarray(weights[k])[0]) > 0]
    row: dict = {"step": t, "objective": on[0] if len(on) == 1 else "mix"}
    for k, v in losses.items():
        row[f"loss_{k}"] = float(np.asarray(v)[0])
        if not math.isfinite(row[f"loss_{k}"]):
            raise Diverged(f"step {t}: the {k} loss is {row[f'loss_{k}']}; stopped")
    for k, v in (values or {}).items():
        row[f"value_{k}"] = float(np.asarray(v)[0])
    return row


def start_run_dir(cfg: TrainConfig) -> Path:
    """Create (or check, on resume) the run directory and write the resolved config."""
    run = Path(cfg.output_dir)
    saved = run / "config.json"
    if saved.is_file() and cfg.resume:
        try:
            old, new = json.loads(saved.read_text()), cfg.to_dict()
        except json.JSONDecodeError as err:
            raise ValueError(f"{saved}: unreadable ({err.msg}); cannot check --resume") from None
        default = TrainConfig().to_dict()  # a field added since the run started has its default
        diff = [k for k in new if k not in IGNORED_ON_RESUME and old.get(k, default[k]) != new[k]]
        if diff:
            raise ValueError(f"{saved}: --resume with a different config ({', '.join(diff)})")
    elif saved.is_file() and not cfg.overwrite:
        raise ValueError(
            f"{run} already holds a run: pass --resume or --overwrite, or another --output-dir"
        )
    elif saved.is_file():
        for name in ("checkpoints", "final", "ref_logps.pt", "metrics.jsonl", "summary.json"):
            p = run / name
            shutil.rmtree(p) if p.is_dir() else p.unlink(missing_ok=True)
    run.mkdir(parents=True, exist_ok=True)
    save(cfg, run)
    optima = read_optima(cfg.optima) if cfg.rule == "maxright" else None
    if optima is not None:
        (run / "optima.json").write_text(json.dumps(optima) + "\n")
    return run


class Run:
    """One training run: its pieces, its metrics log and its checkpoints."""

    def __init__(self, cfg: TrainConfig, log=print):
        cfg.validate()
        self.cfg, self.log = cfg, log
        self.rule = build_rule(cfg)
        self.dir = start_run_dir(cfg)
        self.model, self.tok = build_model(cfg)
        self.data = prepare(cfg, self.tok, self.dir)
        for note in self.data.notes:
            log(note)
        self.ref = reference(cfg, self.model, self.tok, self.data, self.dir)
        self.optimizer = build_optimizer(cfg, self.model)
        self.backend = LMBackend(
            self.model, self.optimizer, self.data.sft_train, self.data.pref_train, seed=cfg.seed,
            batch_size=cfg.batch_size, beta=cfg.beta, pad_id=self.tok.pad_token_id,
            ref_logps=self.ref.train, ref_fn=self.ref.fn, max_grad_norm=cfg.max_grad_norm or None,
        )  # fmt: skip
        self.schedule = build_schedule(cfg)
        self.state, self.start, elapsed, kept_bytes = (
            self.rule.init(np.array([cfg.seed])),
            0,
            0.0,
            None,
        )
        found = checkpoints(self.dir) if cfg.resume else []
        if found:
            saved = load_checkpoint(found[-1], self.model, self.optimizer)
            self.state, self.start = state_from_json(saved["rule_state"]), saved["step"]
            elapsed, kept_bytes, self.backend.last = (
                saved["wall_time"],
                saved["metrics_bytes"],
                saved["last"],
            )
            self.backend.next_step = self.start  # values() reads the batches of this step
            log(f"resuming from {found[-1]} (step {self.start})")
        self.metrics = MetricsLog(self.dir / "metrics.jsonl", kept_bytes)
        self.clock = time.perf_counter() - elapsed  # wall_time continues across resumes
        self.last_end = time.perf_counter()

    def evaluation(self, s: int) -> None:
        d, c = self.data, self.cfg
        scores = evaluate(
            self.model,
            d.sft_eval,
            d.pref_eval,
            self.ref.eval,
            c.beta,
            self.tok.pad_token_id,
            c.eval_batch_size,
        )
        self.metrics.write(
            {"step": s, **scores, "wall_time": time.perf_counter() - self.clock, **peak_memory()}
        )

    def on_step(self, t: int, weights, losses, values) -> None:
        now = time.perf_counter()
        row = step_row(t, weights, losses, values)
        row.update(
            lr=self.schedule(t), wall_time=now - self.clock, step_seconds=now - self.last_end
        )
        self.metrics.write(row)
        self.bar.update(1)
        self.bar.set_postfix({k: f"{v:.3f}" for k, v in row.items() if k.startswith("loss_")})
        if (t + 1) % self.cfg.eval_every == 0 or t + 1 == self.cfg.steps:
            self.evaluation(t + 1)
        self.last_end = time.perf_counter()  # step_seconds excludes evaluation

    def checkpoint(self, step: int) -> None:
        extra = {"rule_state": state_to_json(self.state), "metrics_bytes": self.metrics.size(),
                 "wall_time": time.perf_counter() - self.clock, "last": self.backend.last}  # fmt: skip
        # a finite loss at step t-1 does not make the update of step t-1 finite (lr = 1e30 overflows
        # the parameters first): never save such parameters over the last good checkpoint
        if not all(torch.isfinite(p).all() for p in self.model.parameters() if p.requires_grad):
            raise Diverged(
                f"step {step - 1}: the parameters are no longer finite after the"
                f" {self.backend.last} update (or an earlier one since the last checkpoint); stopped"
            )
        self.metrics.sync()  # the rows the checkpoint counts are on disk before it is
        save_checkpoint(self.dir, step, self.model, self.optimizer, extra)
        self.last_end = time.perf_counter()  # step_seconds excludes checkpointing

    def train(self) -> Path:
        """Steps start … steps−1 in segments between checkpoints (the rule state is saved at each)."""
        from tqdm.auto import tqdm

        cfg, every = self.cfg, self.cfg.save_every or self.cfg.steps
        if self.start == 0:
            self.evaluation(0)
        stops = [*range(self.start - self.start % every + every, cfg.steps, every), cfg.steps]
        self.bar = tqdm(
            total=cfg.steps, initial=self.start, desc=self.rule.name, disable=not cfg.progress
        )
        try:
            for stop in (s for s in stops if s > self.start):  # a finished run saves nothing
                self.state, _ = train(
                    self.backend,
                    self.rule,
                    self.state,
                    stop,
                    self.schedule,
                    start=self.start,
                    on_step=self.on_step,
                )
                self.start = stop
                self.checkpoint(stop)
        finally:
            self.bar.close()
            self.metrics.close()
        self.finish()
        return self.dir

    def finish(self) -> None:
        finish(self.dir, self.model, self.tok, self.cfg)


def run(cfg: TrainConfig, log=print) -> Path:
    """Train as ``cfg`` says; returns the run directory. Under ``accelerate launch`` (several
    processes, an engine), with grad_accum > 1 or with bf16 the Accelerate trainer runs."""
    from toyopt.llm.distributed import wanted

    if wanted(cfg):
        from toyopt.llm.dist_run import DistributedRun

        return DistributedRun(cfg, log).train()
    return Run(cfg, log).train()


def finish(run_dir: Path, model, tok, cfg: TrainConfig) -> None:
    """Save the trained model (or adapters) and a summary of the run's cost: seconds per step
    (training only, evaluations excluded) and gradient / function evaluations per step."""
    model.save_pretrained(run_dir / "final")
    tok.save_pretrained(run_dir / "final")
    rows = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    steps = [r for r in rows if "objective" in r]
    summary = {"rule": cfg.rule, "lam": cfg.lam, "steps": cfg.steps}
    summary["train_seconds_per_step"] = float(np.mean([r["step_seconds"] for r in steps]))
    for k in OBJECTIVES:
        summary[f"grad_{k}_per_step"] = float(np.mean([f"loss_{k}" in r for r in steps]))
        summary[f"func_{k}_per_step"] = float(np.mean([f"value_{k}" in r for r in steps]))
    summary.update(final=[r for r in rows if "eval_sft" in r][-1], **peak_memory())
    (run_dir / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
