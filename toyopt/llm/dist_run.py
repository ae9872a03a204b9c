"""A training run on Accelerate: :class:`toyopt.llm.train.Run` with the model and optimizer
prepared by the engine (DDP, FSDP2, DeepSpeed), sharded batches and evaluation
(:mod:`toyopt.llm.distributed`), and these changes to the run directory's handling:

- only the main process writes the run directory (config, reference log-probs, metrics,
  summary, final model); the other processes read the data into a temporary directory;
- a checkpoint ``checkpoints/step-NNNNNN`` is ``accelerator.save_state`` (every process writes its
  shard) plus ``trainable.pt`` (the gathered trainable parameters, as one process writes) and
  ``state.json``, written under ``.tmp-step-NNNNNN`` and renamed by the main process once every
  process has finished, so a crash mid-write still never replaces a good checkpoint;
- at each checkpoint the processes compare a hash of the rule's choices so far (one all-gather):
  they choose without communicating, and a disagreement stops the run instead of going unnoticed.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from toyopt.llm.checkpoint import PREFIX, MetricsLog, checkpoints, load_checkpoint
from toyopt.llm.distributed import ShardedBackend, evaluate_sharded, make_accelerator
from toyopt.llm.prepare import prepare
from toyopt.llm.setup import build_model, build_optimizer, build_rule, build_schedule, reference
from toyopt.llm.train import Diverged, Run, finish, peak_memory, start_run_dir
from toyopt.rules import state_from_json, state_to_json


class NullLog:
    """The metrics log of a process that does not write one."""

    def write(self, row: dict) -> None:
        pass

    def size(self) -> int:
        return 0

    def sync(self) -> None:
        pass

    def close(self) -> None:
        pass


def main_then_all(acc, fn):
    """Run ``fn`` on the main process, then (if it succeeded) on the others; a ValueError on the
    main process is raised on every process instead of leaving the others at a barrier."""
    from accelerate.utils import broadcast_object_list

    result, error = None, [None]
    if acc.is_main_process:
        try:
            result = fn()
        except ValueError as err:
            error = [f"{type(err).__name__}: {err}"]
    error = broadcast_object_list(error) if acc.num_processes > 1 else error
    if error[0] is not None:
        raise ValueError(error[0].split(": ", 1)[1])
    return result if acc.is_main_process else fn()


class FinalModel:
    """What :func:`toyopt.llm.train.finish` saves: the unwrapped model with the gathered weights."""

    def __init__(self, acc, model):
        self.model, self.state = acc.unwrap_model(model), acc.get_state_dict(model)

    def save_pretrained(self, path: Path) -> None:
        self.model.save_pretrained(path, state_dict=self.state)


class DistributedRun(Run):
    """One run on W processes; on one process it equals :class:`Run` up to float rounding."""

    def __init__(self, cfg, log=print):  # mirrors Run.__init__; see the module docstring
        cfg.validate()
        self.acc = acc = make_accelerator(cfg)
        main = acc.is_main_process
        self.cfg = cfg if main else dataclasses.replace(cfg, progress=False)
        self.log = log if main else (lambda s: None)
        self.rule = build_rule(cfg)
        self.dir = main_then_all(acc, lambda: start_run_dir(cfg) if main else Path(cfg.output_dir))
        self.model, self.tok = build_model(cfg)
        if main:
            self.data = prepare(cfg, self.tok, self.dir)
        else:  # identical rows (synthetic data is a pure function of its seed), no shared writes
            with tempfile.TemporaryDirectory() as tmp:
                self.data = prepare(cfg, self.tok, Path(tmp))
        for note in self.data.notes:
            self.log(note)
        self.ref = main_then_all(
            acc, lambda: reference(cfg, self.model, self.tok, self.data, self.dir)
        )
        if self.ref.fn is not None and not cfg.lora and acc.device.type != "cpu":
            raise ValueError("with accelerate on GPU keep --precompute-ref (or use --lora)")
        optimizer = build_optimizer(cfg, self.model)
        ds = getattr(acc.state, "deepspeed_plugin", None)
        if ds is not None:  # DeepSpeed wants the micro-batch size, which it cannot read here
            micro = cfg.batch_size // (acc.num_processes * cfg.grad_accum)
            ds.deepspeed_config["train_micro_batch_size_per_gpu"] = max(micro, 1)
        self.model, self.optimizer = acc.prepare(self.model, optimizer)
        if acc.gradient_accumulation_steps != cfg.grad_accum:  # an accelerate/DeepSpeed config
            raise ValueError(
                f"the accelerate config sets gradient accumulation to {acc.gradient_accumulation_steps};"
                f" leave it unset (or auto) and pass --grad-accum (now {cfg.grad_accum})"
            )
        self.backend = ShardedBackend(
            acc, self.model, self.optimizer, self.data.sft_train, self.data.pref_train,
            seed=cfg.seed, batch_size=cfg.batch_size, beta=cfg.beta, pad_id=self.tok.pad_token_id,
            ref_logps=self.ref.train, ref_fn=self.ref.fn, max_grad_norm=cfg.max_grad_norm or None,
        )  # fmt: skip
        self.schedule = build_schedule(cfg)
        self.state, self.start, elapsed, kept = self.rule.init(np.array([cfg.seed])), 0, 0.0, None
        self.choices: list[str] = []
        found = checkpoints(self.dir) if cfg.resume else []
        if found:
            saved = self.load(found[-1])
            self.state, self.start = state_from_json(saved["rule_state"]), saved["step"]
            elapsed, kept, self.backend.last = (
                saved["wall_time"],
                saved["metrics_bytes"],
                saved["last"],
            )
            self.backend.next_step, self.choices = self.start, saved.get("choices", [])
            self.log(f"resuming from {found[-1]} (step {self.start})")
        self.metrics = MetricsLog(self.dir / "metrics.jsonl", kept) if main else NullLog()
        self.clock = time.perf_counter() - elapsed
        self.last_end = time.perf_counter()

    def load(self, path: Path) -> dict:
        """Restore a checkpoint of this trainer (accelerate state) or of a single-process run."""
        if (path / "optimizer.pt").is_file():
            load_checkpoint(path, self.acc.unwrap_model(self.model), self.optimizer)
        else:
            self.acc.load_state(str(path))
        return json.loads((path / "state.json").read_text())

    def evaluation(self, s: int) -> None:
        d, c = self.data, self.cfg
        scores = evaluate_sharded(self.acc, self.model, d.sft_eval, d.pref_eval, self.ref.eval,
                                  c.beta, self.tok.pad_token_id, c.eval_batch_size)  # fmt: skip
        row = {"step": s, **scores, "wall_time": time.perf_counter() - self.clock}
        self.metrics.write({**row, **peak_memory(), "processes": self.acc.num_processes})

    def on_step(self, t: int, weights, losses, values) -> None:
        on = [k for k in ("sft", "dpo") if float(np.asarray(weights[k])[0]) > 0]
        self.choices.append(on[0] if len(on) == 1 else "mix")
        super().on_step(t, weights, losses, values)

    def check_choices(self) -> None:
        """All processes made the same choices so far (compared by hash, one all-gather)."""
        from accelerate.utils import gather_object

        digest = hashlib.sha256(",".join(self.choices).encode()).hexdigest()
        if len(set(gather_object([digest]))) != 1:
            raise RuntimeError(
                f"processes disagree on the rule's choices by step {len(self.choices)}"
            )

    def check_finite(self, step: int) -> None:
        """As :meth:`Run.checkpoint`: never save non-finite parameters; every process checks its
        shard and all stop together."""
        local = [getattr(p, "_local_tensor", p) for p in self.model.parameters() if p.requires_grad]
        bad = float(not all(torch.isfinite(t).all() for t in local))
        if float(self.acc.reduce(torch.tensor([bad], device=self.acc.device))[0]) > 0:
            raise Diverged(
                f"step {step - 1}: the parameters are no longer finite after the"
                f" {self.backend.last} update (or an earlier one since the last checkpoint); stopped"
            )

    def checkpoint(self, step: int) -> None:
        self.check_choices()
        self.check_finite(step)
        self.metrics.sync()  # the rows the checkpoint counts are on disk before it is
        acc, root = self.acc, self.dir / "checkpoints"
        tmp, final = root / f".tmp-{PREFIX}{step:06d}", root / f"{PREFIX}{step:06d}"
        if acc.is_main_process:
            shutil.rmtree(tmp, ignore_errors=True)
            tmp.mkdir(parents=True)
        acc.wait_for_everyone()
        acc.save_state(str(tmp))
        full = acc.get_state_dict(self.model)  # gathered (FSDP/ZeRO-3) on every process
        if acc.is_main_process:
            names = [
                n for n, p in acc.unwrap_model(self.model).named_parameters() if p.requires_grad
            ]
            torch.save(
                {n: full[n].detach().cpu().clone() for n in names if n in full},
                tmp / "trainable.pt",
            )
            extra = {"rule_state": state_to_json(self.state), "metrics_bytes": self.metrics.size(),
                     "wall_time": time.perf_counter() - self.clock, "last": self.backend.last,
                     "choices": self.choices, "step": step}  # fmt: skip
            (tmp / "state.json").write_text(json.dumps(extra))
        for f in (f for f in tmp.rglob("*") if f.is_file()):  # each process syncs what it sees
            with open(f, "rb") as handle:
                os.fsync(handle.fileno())
        acc.wait_for_everyone()  # every shard is on disk before the rename
        if acc.is_main_process:
            if final.exists():
                shutil.rmtree(final)
            os.replace(tmp, final)
            for old in checkpoints(self.dir)[:-2]:
                shutil.rmtree(old, ignore_errors=True)
        acc.wait_for_everyone()
        self.last_end = time.perf_counter()

    def finish(self) -> None:
        final = FinalModel(self.acc, self.model)  # a collective under FSDP / ZeRO-3
        if self.acc.is_main_process:
            finish(self.dir, final, self.tok, self.cfg)
            summary = json.loads((self.dir / "summary.json").read_text())
            summary.update(processes=self.acc.num_processes, grad_accum=self.cfg.grad_accum,
                           mixed_precision=str(self.acc.mixed_precision))  # fmt: skip
            (self.dir / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
        self.acc.wait_for_everyone()
        self.acc.end_training()
