"""Real trainer processes for the reliability tests: the command line of a small ALRIGHT run,
its environment, and readers of what it leaves in its run directory. The fixtures ``data`` and
``reference`` (two uninterrupted runs) are in conftest.py, shared by the test modules."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import torch

from toyopt.llm.synthetic import make_rows

ROOT = Path(__file__).resolve().parents[1]
TIMING = ("wall_time", "step_seconds", "peak_rss_bytes", "peak_cuda_allocated_bytes")
STEPS = 24


def train_args(data: Path, out: Path, *extra: str) -> list[str]:
    return [sys.executable, "-m", "toyopt.llm", "train", "--sft-data", str(data / "s.jsonl"),
            "--pref-data", str(data / "p.jsonl"), "--rule", "alright", "--lam", "0.5",
            "--steps", str(STEPS), "--save-every", "3", "--eval-every", "4", "--batch-size", "2",
            "--max-length", "24", "--eval-batch-size", "16", "--seed", "3", "--no-progress",
            "--output-dir", str(out), *extra]  # fmt: skip


def env(**extra: str) -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(ROOT), **extra}


def write_data(d: Path) -> Path:
    """The runs' SFT and preference files (40 synthetic rows each) in ``d``."""
    for name, split in (("s", "sft_train"), ("p", "pref_train")):
        rows = make_rows(split, n=40)
        (d / f"{name}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    return d


def finish(args: list[str], **extra: str) -> subprocess.CompletedProcess:
    proc = subprocess.run(args, capture_output=True, text=True, env=env(**extra), timeout=300)
    return proc


def rows_of(run: Path) -> list[dict]:
    lines = (run / "metrics.jsonl").read_text().splitlines()
    return [{k: v for k, v in json.loads(s).items() if k not in TIMING} for s in lines]


def step_rows(run: Path) -> int:
    """Complete per-step rows in the metrics log so far (a torn last line not counted)."""
    path = run / "metrics.jsonl"
    if not path.is_file():
        return 0
    return sum(1 for s in path.read_text().split("\n")[:-1] if '"objective"' in s)


def kill_when(args: list[str], ready, **extra: str) -> str:
    """Start the trainer, SIGKILL it as soon as ``ready()`` holds; what the kill hit."""
    proc = subprocess.Popen(
        args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env(**extra)
    )
    deadline = time.monotonic() + 240
    while proc.poll() is None and not ready() and time.monotonic() < deadline:
        time.sleep(0.002)
    if proc.poll() is not None:
        return "finished before the kill"
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    return "killed"


def params(run: Path) -> dict[str, torch.Tensor]:
    return torch.load(run / "checkpoints" / f"step-{STEPS:06d}" / "trainable.pt", weights_only=True)


def summary(run: Path) -> dict:
    s = json.loads((run / "summary.json").read_text())
    return {k: v for k, v in s.items() if k not in ("train_seconds_per_step", "final", *TIMING)}
