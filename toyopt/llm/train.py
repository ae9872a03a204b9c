"""The trainer: :func:`toyopt.loop.train` with a rule from :func:`toyopt.rules.make_rule` and the
language-model backend, driven by an engine (:mod:`toyopt.llm.engine`: one process, or several
through Accelerate). There is no method-specific code here: the rule alone decides.

Run directory (``output_dir``, owned as :mod:`toyopt.llm.rundir` says): ``toyopt-run.json``,
``config.json``/``config.yaml`` (resolved config), ``metrics.jsonl``, ``ref_logps.pt``,
``checkpoints/step-NNNNNN`` (:mod:`toyopt.llm.checkpoint`), ``final/`` (the trained model or
adapters), ``summary.json``, and ``optima.json`` when MAXRIGHT was given optima. Only the main
process writes it. metrics rows:

- per optimizer step t (0-based): ``step`` = t, ``objective`` ("sft", "dpo" or "mix"; with K
  sources the source's name or "mix"), the losses it computed (``loss_sft`` and/or ``loss_dpo``,
  ``loss_NAME`` per source, at the parameters after t steps, on step t's batches), ``lr``,
  ``wall_time`` (seconds since training started), ``step_seconds``, and ``value_sft``/``value_dpo``
  (``value_NAME``) when the rule asked for every value (MAXRIGHT);
- per evaluation after s steps (s = 0, eval_every, …, steps): ``step`` = s, ``eval_sft``,
  ``eval_dpo`` (``eval_NAME``) on the held-out sets, ``wall_time``, ``processes``, and
  ``peak_rss_bytes`` (the main process's peak resident memory, from getrusage) or
  ``peak_cuda_allocated_bytes`` on a GPU.

With ``report_to``, every row also goes to the experiment trackers (:mod:`toyopt.llm.tracking`;
TensorBoard's event files in ``tensorboard/``).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from toyopt.files import refuse_links
from toyopt.llm import checkpoint as ckpt
from toyopt.llm import objectives
from toyopt.llm.accelerate_engine import AccelerateEngine
from toyopt.llm.backend import LMBackend, Objective, PairLoss
from toyopt.llm.checkpoint import CorruptFile, MetricsLog, NullLog, write_json
from toyopt.llm.config import TrainConfig
from toyopt.llm.engine import LocalEngine, peak_memory, wanted
from toyopt.llm.fingerprint import changes as input_changes
from toyopt.llm.fingerprint import inputs as model_inputs
from toyopt.llm.objectives import batch_stream
from toyopt.llm.prepare import held_out_splits, prepare
from toyopt.llm.rundir import (
    abandon,
    changed_fields,
    data_changes,
    resume_view,
    start_run_dir,
    write_config,
)
from toyopt.llm.scoring import evaluate_objectives
from toyopt.llm.setup import (
    build_model,
    build_optimizer,
    build_rule,
    build_schedule,
    reference,
)
from toyopt.llm.tracking import Trackers
from toyopt.llm.tracking import start as start_trackers
from toyopt.loop import train
from toyopt.rules import state_from_json, state_to_json


class Diverged(RuntimeError):
    """A non-finite training loss or parameter (the last good checkpoint is kept)."""


class Interrupted(Exception):
    """Ctrl-C or SIGTERM during training (the message says where to continue from)."""

    def __init__(self, signum: int, message: str):
        super().__init__(message)
        self.signum = signum


def step_row(t: int, weights, losses, values) -> dict:
    """The metrics row of optimizer step t; raises Diverged on a non-finite loss."""
    row: dict = {"step": t, "objective": objective_label(weights)}
    for k, v in losses.items():
        row[f"loss_{k}"] = float(np.asarray(v)[0])
        if not math.isfinite(row[f"loss_{k}"]):
            raise Diverged(f"step {t}: the {k} loss is {row[f'loss_{k}']}; stopped")
    for k, v in (values or {}).items():
        row[f"value_{k}"] = float(np.asarray(v)[0])
    return row


def objective_label(weights) -> str:
    """The objective's name for a step on one objective, "mix" for a step on several."""
    on = [k for k in weights if float(np.asarray(weights[k])[0]) > 0]
    return on[0] if len(on) == 1 else "mix"


class Run:
    """One training run on one engine: its pieces, its metrics log and its checkpoints."""

    def __init__(self, cfg: TrainConfig, log=print, engine=None, rule=None):
        """``rule``: a rule object to train with instead of ``cfg.rule`` (from the Python API,
        e.g. a rule of your own, or the broken variants of proofs_check)."""
        cfg.validate()
        self.engine = engine = engine or make_engine(cfg)
        main = engine.is_main
        self.cfg = cfg if main else dataclasses.replace(cfg, progress=False)
        self.log = log if main else (lambda s: None)
        self.rule = rule or build_rule(cfg)
        self.owned = None
        existed = Path(cfg.output_dir).exists()
        self.dir = Path(engine.from_main(lambda: str(self._claim())))
        try:
            self._build(cfg, engine)
        except ValueError:  # refused (a data row, a model, an option) before the run started
            if self.owned is not None:
                abandon(self.owned, keep_dir=existed)
            self.close()
            raise
        except BaseException:
            self.close()
            raise

    def _build(self, cfg: TrainConfig, engine) -> None:
        """Everything but the run directory: model, data, reference, optimizer, resume point."""
        main = engine.is_main
        self.model, self.tok = build_model(cfg)
        self.model = engine.place(self.model)
        self.data = self._prepare()
        for note in self.data.notes:
            self.log(note)
        self.ref = engine.main_then_all(
            lambda: reference(cfg, self.model, self.tok, self.data, self.dir, engine.device)
        )
        engine.check_alright_step(cfg)
        self.optimizer = build_optimizer(cfg, self.model, self._prepare_with_model)
        self.losses = {s.name: PairLoss(s.kind, **objectives.loss_settings(cfg, s))
                       for s in objectives.sources(cfg) if s.preference}  # fmt: skip
        train_ref = self.ref.train or {}
        sources = {name: Objective(kind, self.data.train[name], batch_stream(name),
                                   train_ref.get(name), self.losses.get(name))
                   for name, kind in self.data.kinds.items()}  # fmt: skip
        self.backend = LMBackend(
            self.model, self.optimizer, seed=cfg.seed, batch_size=cfg.batch_size, beta=cfg.beta,
            pad_id=self.tok.pad_token_id, ref_fn=self.ref.fn,
            max_grad_norm=cfg.max_grad_norm or None, engine=engine, objectives=sources,
        )  # fmt: skip
        if self.data.val:  # MAXRIGHT compares validation values (validation_rows)
            self.backend.compare = lambda: self.scores("val")
        self.schedule = build_schedule(cfg, self.rule)
        self.state, self.start, self.choices = self.rule.init(np.array([cfg.seed])), 0, []
        self.fingerprint = engine.from_main(self._fingerprint)
        found = engine.from_main(self._resume_point) if cfg.resume else None
        elapsed, kept = 0.0, None
        if found is not None:
            elapsed, kept = self._restore(Path(found))
        elif main:
            if cfg.resume and (self.dir / "metrics.jsonl").is_file():  # never a silent restart
                print(f"{self.dir}: killed before its first checkpoint; --resume starts it again"
                      " from step 0", file=sys.stderr)  # fmt: skip
            write_config(cfg, self.dir)
        self.metrics = MetricsLog(self.dir / "metrics.jsonl", kept) if main else NullLog()
        self.trackers = start_trackers(cfg, self.dir, self.start) if main else Trackers()
        self.clock = time.perf_counter() - elapsed  # wall_time continues across resumes
        self.last_end = time.perf_counter()

    def _claim(self) -> Path:
        self.owned = start_run_dir(self.cfg)
        return self.owned.path

    def _prepare_with_model(self, optimizer):
        """The engine prepares the model and its optimizer together (FSDP needs both)."""
        self.model, optimizer = self.engine.prepare(self.model, optimizer)
        return optimizer

    def _prepare(self):
        if self.engine.is_main:
            return prepare(self.cfg, self.tok, self.dir)
        with tempfile.TemporaryDirectory() as tmp:  # the same rows, no writes to the run dir
            return prepare(self.cfg, self.tok, Path(tmp))

    def _fingerprint(self) -> dict:
        """What a checkpoint's manifest records of the run's inputs (checked on resume)."""
        return {"config": resume_view(self.cfg), "data": self.data.fingerprint,
                "ref_logps": ckpt.sha256_file(self.dir / "ref_logps.pt"),
                "inputs": model_inputs(self.cfg)}  # fmt: skip

    def _resume_point(self) -> str | None:
        """The newest checkpoint that verifies and whose inputs are this run's (main process)."""
        found = ckpt.latest_verified(self.dir, lambda s: print(s, file=sys.stderr))
        if found is None:
            return None
        path, manifest = found
        diff = changed_fields(manifest["config"], self.fingerprint["config"])
        if diff:
            raise ValueError(f"{path}: --resume with a different config ({', '.join(diff)})")
        moved = data_changes(manifest["data"], self.fingerprint["data"])
        if moved:
            raise ValueError(f"{path}: --resume with changed data ({'; '.join(moved)})")
        models = input_changes(manifest.get("inputs", {}), self.fingerprint["inputs"])
        if models:
            raise ValueError(
                f"{models[0]}: restore it, or start again with --overwrite ({path.name} was"
                " trained on the earlier files)"
            )
        if manifest["ref_logps"] != self.fingerprint["ref_logps"]:
            raise CorruptFile(
                f"{self.dir / 'ref_logps.pt'}: its sha256 differs from checkpoint {path.name}'s;"
                " delete it to score the reference again"
            )
        ckpt.verify_metrics(self.dir / "metrics.jsonl", manifest["metrics"])
        self.log(f"resuming from {path} (step {manifest['step']})")
        return str(path)

    def _restore(self, path: Path) -> tuple[float, dict | None]:
        """Load checkpoint ``path`` on every process; (elapsed seconds, metrics-log record)."""
        self.engine.load_state(self.model, self.optimizer, path)
        saved = json.loads((path / "state.json").read_text())
        self.state, self.start = state_from_json(saved["rule_state"]), saved["step"]
        self.backend.last, self.choices = saved["last"], saved["choices"]
        self.backend.next_step = self.start  # values() reads the batches of this step
        return saved["wall_time"], saved["metrics"]

    def scores(self, split: str) -> dict[str, float]:
        """{NAME: value}: every objective on the whole held-out (eval) or validation (val)
        split."""
        rows, ref = getattr(self.data, split), getattr(self.ref, split) or {}
        sets = {k: (rows[k], ref.get(k), self.losses.get(k)) for k in self.data.kinds}
        scores = evaluate_objectives(self.model, sets, self.tok.pad_token_id,
                                     self.cfg.eval_batch_size, self.engine)  # fmt: skip
        return {k.removeprefix("eval_"): v for k, v in scores.items()}

    def evaluation(self, s: int) -> None:
        scores = {f"{split}_{k}": v for split in held_out_splits(self.cfg)
                  for k, v in self.scores(split).items()}  # fmt: skip
        row = {"step": s, **scores, "wall_time": time.perf_counter() - self.clock}
        self.record({**row, **peak_memory(), "processes": self.engine.num_processes})

    def record(self, row: dict) -> None:
        """A metrics row: into metrics.jsonl and to the trackers (main process only)."""
        self.metrics.write(row)
        self.trackers.log(row)

    def on_step(self, t: int, weights, losses, values) -> None:
        now = time.perf_counter()
        row = step_row(t, weights, losses, values)
        self.choices.append(row["objective"])
        self.done = t + 1
        row.update(
            lr=self.schedule(t), wall_time=now - self.clock, step_seconds=now - self.last_end
        )
        self.record(row)
        self.bar.update(1)
        self.bar.set_postfix({k: f"{v:.3f}" for k, v in row.items() if k.startswith("loss_")})
        if (t + 1) % self.cfg.eval_every == 0 or t + 1 == self.cfg.steps:
            self.evaluation(t + 1)
        self.last_end = time.perf_counter()  # step_seconds excludes evaluation

    def checkpoint(self, step: int) -> None:
        """Save step ``step`` after checking that every process made the same choices and that
        the parameters are finite (all processes stop together otherwise)."""
        e = self.engine
        if not e.same_everywhere(hashlib.sha256(",".join(self.choices).encode()).hexdigest()):
            raise RuntimeError(f"processes disagree on the rule's choices by step {step}")
        # a finite loss at step t-1 does not make the update of step t-1 finite (lr = 1e30
        # overflows the parameters first): never save such parameters over the last good one
        bad = not all(torch.isfinite(p).all() for p in e.local_parameters(self.model))
        if e.any_process(bad):
            raise Diverged(
                f"step {step - 1}: the parameters are no longer finite after the"
                f" {self.backend.last} update (or an earlier one since the last checkpoint); stopped"
            )
        self.metrics.sync()  # the rows the checkpoint counts are on disk before it is
        state = {"rule_state": state_to_json(self.state), "last": self.backend.last,
                 "wall_time": time.perf_counter() - self.clock, "choices": self.choices,
                 "metrics": self.metrics.kept()}  # fmt: skip
        fingerprint = {**(self.fingerprint or {}), "metrics": self.metrics.kept()}
        ckpt.save_checkpoint(e, self.dir, step, self.model, self.optimizer, state, fingerprint)
        self.last_end = time.perf_counter()  # step_seconds excludes checkpointing

    def train(self) -> Path:
        """Steps start … steps−1 in segments between checkpoints (the rule state is saved at each)."""
        from tqdm.auto import tqdm

        cfg, every = self.cfg, self.cfg.save_every or self.cfg.steps
        self.done = self.start
        if self.start == 0:
            self.evaluation(0)
        stops = [*range(self.start - self.start % every + every, cfg.steps, every), cfg.steps]
        self.bar = tqdm(
            total=cfg.steps, initial=self.start, desc=self.rule.name, disable=not cfg.progress
        )
        try:
            for stop in (s for s in stops if s > self.start):  # a finished run saves nothing
                self.state, _ = train(self.backend, self.rule, self.state, stop, self.schedule,
                                      start=self.start, on_step=self.on_step)  # fmt: skip
                self.checkpoint(stop)
                self.start = stop
        except KeyboardInterrupt as err:  # Ctrl-C, or SIGTERM (see toyopt.llm.__main__)
            saved = f"the checkpoint at step {self.start}" if self.start else "the start"
            raise Interrupted(
                getattr(err, "signum", 2),
                f"interrupted at step {self.done}; continue with --resume (from {saved})",
            ) from None
        finally:
            self.bar.close()
            self.metrics.close()
            self.trackers.close()
            if sys.exc_info()[0] is not None:
                self.close()
        self.finish()
        return self.dir

    def close(self) -> None:
        """Release the run directory (a later process, or this one, may then resume it)."""
        if hasattr(self, "trackers"):
            self.trackers.close()
        if self.owned is not None:
            self.owned.release()

    def finish(self) -> None:
        """Save the trained model (or adapters) and the summary, each renamed into place."""
        final = self.engine.final_model(self.model)  # a collective under FSDP / ZeRO-3
        if self.engine.is_main:
            tmp, done = self.dir / ".tmp-final", self.dir / "final"
            for p in (tmp, done):  # claimed without links; checked again before deleting
                refuse_links(p, self.dir)
            shutil.rmtree(tmp, ignore_errors=True)
            final.save_pretrained(tmp)
            self.tok.save_pretrained(tmp)
            shutil.rmtree(done, ignore_errors=True)
            os.replace(tmp, done)
            write_json(self.dir / "summary.json", summary(self.dir, self.cfg, self.engine.info()))
        self.engine.wait()
        self.engine.end()
        self.close()


def summary(run_dir: Path, cfg: TrainConfig, engine_info: dict) -> dict:
    """The run's cost: seconds per step (training only, evaluations excluded), gradient and
    function evaluations per step, the final held-out values and the peak memory."""
    rows = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    steps = [r for r in rows if "objective" in r]
    names = objectives.names(cfg)
    weighed = {"weights": cfg.weights} if objectives.is_k(cfg) else {"lam": cfg.lam}
    out = {"rule": cfg.rule, **weighed, "steps": cfg.steps}
    out["train_seconds_per_step"] = float(np.mean([r["step_seconds"] for r in steps]))
    for k in names:
        out[f"grad_{k}_per_step"] = float(np.mean([f"loss_{k}" in r for r in steps]))
        out[f"func_{k}_per_step"] = float(np.mean([f"value_{k}" in r for r in steps]))
    evals = [r for r in rows if f"eval_{names[0]}" in r]
    out.update(final=evals[-1], **peak_memory(), **engine_info)
    return out


def make_engine(cfg: TrainConfig):
    """The Accelerate engine where ``cfg`` needs it (:func:`toyopt.llm.engine.wanted`), else the
    local one."""
    return AccelerateEngine(cfg) if wanted(cfg) else LocalEngine()


def finished_run(cfg: TrainConfig) -> Path | None:
    """``cfg.output_dir`` if it holds a finished run of this very config (its summary, final model
    and last checkpoint written, and its saved config equal to ``cfg`` in every field a resume
    compares), else None (a resume then rebuilds whatever is missing). Lets a
    sweep or study continue after a kill without redoing, or even reloading, a finished run."""
    path = Path(cfg.output_dir)
    last = path / "checkpoints" / f"step-{cfg.steps:06d}"  # what a resume would start from
    if not all(p.exists() for p in (path / "summary.json", path / "final", last)):
        return None
    try:
        saved = json.loads((path / "config.json").read_text())
    except (OSError, ValueError, UnicodeDecodeError):
        return None
    return None if changed_fields(saved, resume_view(cfg)) else path


def run(cfg: TrainConfig, log=print, rule=None) -> Path:
    """Train as ``cfg`` says (with ``rule`` instead of ``cfg.rule`` if given); returns the run
    directory. Under ``accelerate launch`` (several processes, an engine), with grad_accum > 1
    or with bf16 the Accelerate engine runs."""
    return Run(cfg, log, rule=rule).train()


def run_or_reuse(cfg: TrainConfig, log=print) -> Path:
    """:func:`run`, except that with ``cfg.resume`` a run that already finished with this config
    (:func:`finished_run`) is returned as it is, without loading or verifying it again: what a
    sweep or a study uses, so that a continued one never redoes a finished run. (``train
    --resume`` itself always verifies the run directory.)"""
    done = finished_run(cfg) if cfg.resume else None
    if done is not None:
        log(f"{done}: finished earlier with this config; kept as it is")
        return done
    return run(cfg, log)
