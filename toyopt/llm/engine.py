"""Engines: the only place that knows about processes.

The trainer (:class:`toyopt.llm.train.Run`) is written once; an engine gives it

- the process layout (``process_index``, ``num_processes``, ``grad_accum``, ``is_main``, ``device``)
  and the collectives it needs (``reduce_sum``, ``any_process``, ``same_everywhere``, ``wait``,
  ``from_main``, ``main_then_all``), all of which are the identity on one process;
- ``prepare`` (model and optimizer), ``accumulate``/``backward``/``clip_grad_norm_`` for a step;
- what a checkpoint holds (``save_state``/``load_state``; the protocol around them, temporary
  directory, manifest and rename, is :mod:`toyopt.llm.checkpoint`'s, the same for every engine);
- the final state dict and the run's measured peak memory.

:class:`LocalEngine` (here) runs one process on the GPU if there is one, else the CPU.
:class:`toyopt.llm.accelerate_engine.AccelerateEngine` runs under ``accelerate launch`` (DDP,
FSDP2, DeepSpeed), with gradient accumulation or bf16 autocast; :func:`wanted` says which a config
needs. See :mod:`toyopt.llm.backend` for how a global batch is split.
"""

from __future__ import annotations

import os
import resource
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

import torch

from toyopt.torch_backend import SingleProcess

T = TypeVar("T")
ENGINE_FLAGS = ("ACCELERATE_USE_DEEPSPEED", "ACCELERATE_USE_FSDP")


def peak_rss_bytes() -> int:
    """This process's peak resident memory so far (getrusage)."""
    scale = 1 if sys.platform == "darwin" else 1024  # ru_maxrss is in KiB on Linux
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * scale


def peak_memory() -> dict[str, int]:
    """The peak memory a run reached, named for what it measures."""
    if torch.cuda.is_available():
        return {"peak_cuda_allocated_bytes": int(torch.cuda.max_memory_allocated())}
    return {"peak_rss_bytes": peak_rss_bytes()}


def trainable_state(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    """The parameters the optimizer updates (all weights, or only the LoRA adapters)."""
    return {n: p.detach().cpu().clone() for n, p in model.named_parameters() if p.requires_grad}


def wanted(cfg) -> bool:
    """Whether ``cfg`` needs Accelerate: several processes, an engine, gradient accumulation or
    mixed precision. Otherwise the local engine runs."""
    env = os.environ
    mixed = cfg.precision == "bf16" or (
        cfg.precision == "auto" and env.get("ACCELERATE_MIXED_PRECISION", "no") not in ("no", "")
    )
    engine = any(env.get(k, "").lower() == "true" for k in ENGINE_FLAGS)
    return int(env.get("WORLD_SIZE", "1")) > 1 or cfg.grad_accum > 1 or mixed or engine


def _save(obj, path: Path) -> None:
    """torch.save that reports a failed write (a full disk) as an OSError naming the file."""
    try:
        torch.save(obj, path)
    except RuntimeError as err:  # torch's zip writer turns ENOSPC into a RuntimeError
        raise OSError(28, f"could not write ({str(err).splitlines()[0]})", str(path)) from None


def pause_for_tests() -> None:
    """Test hooks that hold a checkpoint write half done (one file written, the others not), so
    a test can kill the process there or act meanwhile: ``TOYOPT_CHECKPOINT_PAUSE=S`` sleeps S
    seconds, ``TOYOPT_CHECKPOINT_HOLD=FILE`` waits while FILE exists."""
    import time

    pause, hold = (
        os.environ.get("TOYOPT_CHECKPOINT_PAUSE"),
        os.environ.get("TOYOPT_CHECKPOINT_HOLD"),
    )
    if pause:
        time.sleep(float(pause))
    while hold and os.path.exists(hold):
        time.sleep(0.02)


class LocalEngine(SingleProcess):
    """One process; the model on the GPU if there is one. Collectives are the identity."""

    is_main = True

    def __init__(self, device: str | None = None):
        self.device = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))

    def prepare(self, model, optimizer):
        return model, optimizer

    def place(self, model):
        """Move the model to the engine's device before anything runs on it."""
        return model.to(self.device)

    def any_process(self, flag: bool) -> bool:
        return flag

    def same_everywhere(self, text: str) -> bool:
        return True

    def check_alright_step(self, cfg) -> None:
        """Every ALRIGHT variant of toyopt.llm.optim runs on one process."""

    def wait(self) -> None:
        pass

    def from_main(self, fn: Callable[[], T]) -> T:
        """``fn()`` on the main process, its result on every process."""
        return fn()

    def main_then_all(self, fn: Callable[[], T]) -> T:
        """``fn()`` on the main process first, then (if it succeeded) on the others."""
        return fn()

    def unwrap(self, model):
        return model

    def local_parameters(self, model) -> list[torch.Tensor]:
        return [p for p in model.parameters() if p.requires_grad]

    def save_state(self, model, optimizer, folder: Path) -> None:
        """``trainable.pt`` and ``optimizer.pt`` (what resuming needs besides state.json)."""
        _save(trainable_state(model), folder / "trainable.pt")
        pause_for_tests()
        _save(optimizer.state_dict(), folder / "optimizer.pt")

    def load_state(self, model, optimizer, folder: Path) -> None:
        if not (folder / "optimizer.pt").is_file():
            raise ValueError(
                f"{folder} was written by the Accelerate engine: resume it with accelerate launch"
            )
        load_local_state(model, optimizer, folder)

    def final_model(self, model):
        return model

    def info(self) -> dict:
        """What the summary records about the engine (evaluation rows record the processes)."""
        return {"engine": "local", "processes": 1, "grad_accum": 1, "mixed_precision": "no"}

    def end(self) -> None:
        pass


def load_local_state(model, optimizer, folder: Path) -> None:
    """Restore ``trainable.pt`` and ``optimizer.pt`` (a checkpoint of the local engine)."""
    params = torch.load(folder / "trainable.pt", weights_only=True)
    missing = model.load_state_dict(params, strict=False)
    if missing.unexpected_keys:
        raise ValueError(
            f"{folder}: parameters {missing.unexpected_keys[:3]} do not fit this model"
        )
    optimizer.load_state_dict(torch.load(folder / "optimizer.pt", weights_only=True))
