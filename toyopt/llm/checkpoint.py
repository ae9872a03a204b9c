"""Checkpoints written atomically, and the metrics log that resumes without duplicates.

A checkpoint is a directory ``checkpoints/step-NNNNNN`` holding the trainable parameters, the
optimizer state and ``state.json`` (step, rule state, metrics-log length, elapsed time). It is
written under a temporary name and renamed into place, so a crash mid-write never replaces a good
checkpoint; the newest complete directory is the one to resume from. On resume the metrics log is
cut back to its length at that checkpoint, so no row is written twice.
"""

from __future__ import annotations

import json
import os
import shutil
import time
from pathlib import Path

import torch

PREFIX = "step-"


def trainable_state(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    """The parameters the optimizer updates (all weights, or only the LoRA adapters)."""
    return {n: p.detach().clone() for n, p in model.named_parameters() if p.requires_grad}


def save_checkpoint(
    run: Path, step: int, model: torch.nn.Module, optimizer, state: dict, keep: int = 2
) -> Path:
    """Write checkpoint ``step`` atomically and keep only the newest ``keep`` ones."""
    root = run / "checkpoints"
    root.mkdir(parents=True, exist_ok=True)
    final = root / f"{PREFIX}{step:06d}"
    tmp = root / f".tmp-{PREFIX}{step:06d}-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    torch.save(trainable_state(model), tmp / "trainable.pt")
    _pause_for_tests()
    torch.save(optimizer.state_dict(), tmp / "optimizer.pt")
    (tmp / "state.json").write_text(json.dumps({**state, "step": step}))
    for name in ("trainable.pt", "optimizer.pt", "state.json"):  # on disk before the rename
        with open(tmp / name, "rb") as f:
            os.fsync(f.fileno())
    if final.exists():  # re-saving the same step (a resumed run): replace it whole
        shutil.rmtree(final)
    os.replace(tmp, final)
    for old in checkpoints(run)[:-keep]:
        shutil.rmtree(old, ignore_errors=True)
    for torn in root.glob(f".tmp-{PREFIX}*-*"):  # left by killed processes (other pids)
        shutil.rmtree(torn, ignore_errors=True)
    return final


def _pause_for_tests() -> None:
    """``TOYOPT_CHECKPOINT_PAUSE=S`` sleeps S seconds mid-write (one file written, two not), so
    the crash tests can kill a process while a checkpoint is half written."""
    pause = os.environ.get("TOYOPT_CHECKPOINT_PAUSE")
    if pause:
        time.sleep(float(pause))


def checkpoints(run: Path) -> list[Path]:
    """Complete checkpoints, oldest first (temporary directories are ignored)."""
    root = run / "checkpoints"
    if not root.is_dir():
        return []
    return sorted(p for p in root.iterdir() if p.name.startswith(PREFIX) and p.is_dir())


def load_checkpoint(path: Path, model: torch.nn.Module, optimizer) -> dict:
    """Restore parameters and optimizer from ``path``; returns its state.json."""
    params = torch.load(path / "trainable.pt", weights_only=True)
    missing = model.load_state_dict(params, strict=False)
    if missing.unexpected_keys:
        raise ValueError(f"{path}: parameters {missing.unexpected_keys[:3]} do not fit this model")
    optimizer.load_state_dict(torch.load(path / "optimizer.pt", weights_only=True))
    return json.loads((path / "state.json").read_text())


class MetricsLog:
    """``metrics.jsonl``: one JSON object per line, flushed as written."""

    def __init__(self, path: Path, keep_bytes: int | None = None):
        self.path = path
        if keep_bytes is None:
            path.write_text("")
        else:  # resume: drop rows written after the checkpoint (and any half-written line)
            size = path.stat().st_size
            if size < keep_bytes:  # truncate would pad with zero bytes: rows are gone, say so
                raise ValueError(
                    f"{path}: {size} bytes, but the checkpoint counted {keep_bytes}: rows were"
                    " lost; resume from a copy or start again with --overwrite"
                )
            with open(path, "r+b") as f:
                f.truncate(keep_bytes)
        self._file = open(path, "a", encoding="utf-8")

    def write(self, row: dict) -> None:
        self._file.write(json.dumps(row) + "\n")
        self._file.flush()

    def sync(self) -> None:
        """Force the rows written so far to disk (a kill loses nothing flushed; a power cut
        could lose what the OS had not written yet)."""
        os.fsync(self._file.fileno())

    def size(self) -> int:
        return self._file.tell()

    def close(self) -> None:
        self._file.close()
