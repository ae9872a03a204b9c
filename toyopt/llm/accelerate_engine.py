"""The Accelerate engine: a run on W processes through Hugging Face Accelerate (DDP, FSDP2,
DeepSpeed ZeRO), or on one process with gradient accumulation or bf16 autocast. It offers what
:class:`toyopt.llm.engine.LocalEngine` offers (see :mod:`toyopt.llm.engine`), each collective one
call of Accelerate's.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

import torch

from toyopt.llm.engine import ENGINE_FLAGS, _save, load_local_state

T = TypeVar("T")


class _FinalModel:
    """The unwrapped model with the gathered weights (a collective under FSDP / ZeRO-3)."""

    def __init__(self, acc, model):
        self.model, self.state = acc.unwrap_model(model), acc.get_state_dict(model)

    def save_pretrained(self, path: Path) -> None:
        self.model.save_pretrained(path, state_dict=self.state)


class AccelerateEngine:
    """W processes through Hugging Face Accelerate; every collective named in the module
    docstring is one call of Accelerate's. Every process runs the same number of forward passes,
    as engines that gather parameters (FSDP) or broadcast buffers (DDP) in forward require."""

    def __init__(self, cfg):
        from accelerate import Accelerator

        precision = {"auto": None, "fp32": "no", "bf16": "bf16"}[cfg.precision]
        world = int(os.environ.get("WORLD_SIZE", "1"))
        # `accelerate launch --multi_gpu` on a machine without accelerators starts torchrun
        # processes that accelerate would leave unconnected unless told to use the CPU (gloo)
        cpu = world > 1 and torch.accelerator.current_accelerator() is None
        self.acc = Accelerator(
            gradient_accumulation_steps=cfg.grad_accum, mixed_precision=precision, cpu=cpu
        )
        if self.acc.num_processes != world:
            raise ValueError(
                f"launched {world} processes but accelerate connected {self.acc.num_processes}"
            )
        for flag, kind in zip(ENGINE_FLAGS, ("DEEPSPEED", "FSDP")):
            asked = os.environ.get(flag, "").lower() == "true"
            if asked and self.acc.distributed_type.value != kind:  # never train another way
                raise ValueError(
                    f"the accelerate config asks for {kind}, but accelerate runs it only on GPUs"
                    f" (here it would run {self.acc.distributed_type.value}); on CPUs use"
                    " toyopt/llm/accelerate_configs/ddp.yaml"
                )
        self.cfg = cfg
        self.process_index, self.num_processes = self.acc.process_index, self.acc.num_processes
        self.grad_accum, self.is_main = cfg.grad_accum, self.acc.is_main_process
        self.device = self.acc.device
        # on several processes no graph is held across engine calls (DDP's reducer pairs each
        # forward with its backward); one process (bf16 on one GPU) keeps MAXRIGHT's refresh graph
        self.keeps_graph = self.num_processes == 1
        # Mix's objectives back-propagated one at a time (the first in no_sync) on one process or
        # under DDP; DeepSpeed steps its engine in every synced backward, and FSDP's reduce-scatter
        # has no no_sync here, so there both graphs are held and back-propagated as one sum
        kind = self.acc.distributed_type.value
        self.backward_each_objective = kind in ("NO", "MULTI_CPU", "MULTI_GPU")

    def prepare(self, model, optimizer):
        acc, cfg = self.acc, self.cfg
        ds = getattr(acc.state, "deepspeed_plugin", None)
        if ds is not None:  # DeepSpeed wants the micro-batch size, which it cannot read here
            micro = cfg.batch_size // (acc.num_processes * cfg.grad_accum)
            ds.deepspeed_config["train_micro_batch_size_per_gpu"] = max(micro, 1)
        model, optimizer = acc.prepare(model, optimizer)
        if acc.gradient_accumulation_steps != cfg.grad_accum:  # an accelerate/DeepSpeed config
            raise ValueError(
                f"the accelerate config sets gradient accumulation to"
                f" {acc.gradient_accumulation_steps}; leave it unset (or auto) and pass"
                f" --grad-accum (now {cfg.grad_accum})"
            )
        return model, optimizer

    def place(self, model):
        """Move the model to this process's device: :class:`toyopt.llm.train.Run` scores the
        reference with it before ``prepare`` (which then shards or wraps it where it is)."""
        return model.to(self.device)

    def accumulate(self, model):
        return self.acc.accumulate(model)

    def backward(self, loss: torch.Tensor) -> None:
        self.acc.backward(loss)

    def no_sync(self, model):
        return self.acc.no_sync(model)

    @property
    def sync_gradients(self) -> bool:
        return self.acc.sync_gradients

    def clip_grad_norm_(self, parameters, max_norm: float) -> None:
        self.acc.clip_grad_norm_(parameters, max_norm)

    def reduce_sum(self, values: torch.Tensor) -> torch.Tensor:
        return self.acc.reduce(values.to(self.device), reduction="sum").cpu()

    def any_process(self, flag: bool) -> bool:
        return float(self.reduce_sum(torch.tensor([float(flag)]))[0]) > 0

    def check_alright_step(self, cfg) -> None:
        """The ALRIGHT variants read gradient norms after the backward pass: right under DDP
        (every process holds the averaged gradient), wrong where gradients are sharded (FSDP)
        or held by the engine (DeepSpeed); ``split-state`` keeps a second, unprepared optimizer."""
        if cfg.rule != "alright" or cfg.alright_step == "plain":
            return
        kind = self.acc.distributed_type.value
        if kind in ("FSDP", "DEEPSPEED") or cfg.alright_step == "split-state":
            raise ValueError(
                f"--alright-step {cfg.alright_step} does not run with accelerate ({kind});"
                " use --alright-step plain there"
            )

    def same_everywhere(self, text: str) -> bool:
        from accelerate.utils import gather_object

        return len(set(gather_object([text]))) == 1

    def wait(self) -> None:
        self.acc.wait_for_everyone()

    def _on_main(self, fn: Callable[[], T], share: bool) -> T | None:
        """``fn()`` on the main process; its ValueError is raised on every process (instead of
        leaving the others at the next collective), and with ``share`` its result is sent."""
        from accelerate.utils import broadcast_object_list

        result, error = None, None
        if self.is_main:
            try:
                result = fn()
            except ValueError as err:
                error = str(err)
        if self.num_processes > 1:
            sent, error = broadcast_object_list([result if share else None, error])
            result = result if self.is_main else sent
        if error is not None:
            raise ValueError(error)
        return result

    def from_main(self, fn: Callable[[], T]) -> T:
        return self._on_main(fn, share=True)

    def main_then_all(self, fn: Callable[[], T]) -> T:
        result = self._on_main(fn, share=False)
        return result if self.is_main else fn()

    def unwrap(self, model):
        return self.acc.unwrap_model(model)

    def local_parameters(self, model) -> list[torch.Tensor]:
        """This process's shards (FSDP2's DTensors hold theirs in ``_local_tensor``)."""
        return [getattr(p, "_local_tensor", p) for p in model.parameters() if p.requires_grad]

    def save_state(self, model, optimizer, folder: Path) -> None:
        """``accelerator.save_state`` (every process writes its shard) and ``trainable.pt``
        (the gathered trainable parameters, as the local engine writes them)."""
        acc = self.acc
        acc.save_state(str(folder))
        full = acc.get_state_dict(model)  # gathered (FSDP/ZeRO-3) on every process
        if self.is_main:
            names = [n for n, p in self.unwrap(model).named_parameters() if p.requires_grad]
            kept = {n: full[n].detach().cpu().clone() for n in names if n in full}
            _save(kept, folder / "trainable.pt")

    def load_state(self, model, optimizer, folder: Path) -> None:
        """A checkpoint of this engine, or of the local engine (a run started in one process)."""
        if (folder / "optimizer.pt").is_file():
            load_local_state(self.unwrap(model), optimizer, folder)
        else:
            self.acc.load_state(str(folder))

    def final_model(self, model):
        return _FinalModel(self.acc, model)

    def info(self) -> dict:
        return {"engine": f"accelerate ({self.acc.distributed_type.value})",
                "processes": self.num_processes, "grad_accum": self.grad_accum,
                "mixed_precision": str(self.acc.mixed_precision)}  # fmt: skip

    def end(self) -> None:
        self.acc.end_training()
