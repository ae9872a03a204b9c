"""Shared pieces: fresh-process workers, robust statistics, the machine's load, tables."""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent


def run_worker(module: str, kwargs: dict, timeout: float = 900) -> dict:
    """Run ``benchmarks.<module>.worker(**kwargs)`` in a fresh Python process; its JSON result.

    A fresh process per measurement makes ``ru_maxrss`` (a per-process peak) that measurement's."""
    cmd = [sys.executable, "-m", "benchmarks.worker", module, json.dumps(kwargs)]
    env = {**os.environ, "TQDM_DISABLE": "1", "TOKENIZERS_PARALLELISM": "false"}
    out = subprocess.run(
        cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout, check=False
    )
    if out.returncode != 0:
        raise RuntimeError(f"worker {module} {kwargs} failed:\n{out.stderr[-3000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def robust_mean(x, limit: float = 3.0) -> float:
    """Mean of the values at most ``limit`` × their median: drops steps that another process
    stalled, keeps steps that are legitimately heavier (a MAXRIGHT refresh costs ~1.5×)."""
    x = np.asarray(x, dtype=float)
    return float(x[x <= limit * np.median(x)].mean())


def med_spread(x) -> str:
    """'median [min–max]' of repeated measurements (3 significant digits)."""
    x = np.asarray(x, dtype=float)
    return f"{np.median(x):.3g} [{x.min():.3g}–{x.max():.3g}]"


def load_average() -> str:
    one, five, fifteen = os.getloadavg()
    return f"{one:.2f} / {five:.2f} / {fifteen:.2f}"


def machine() -> str:
    return f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, CPU only"


def table(header: list[str], rows: list[list]) -> str:
    """A Markdown table."""
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(c) for c in r) + " |" for r in rows]
    return "\n".join(lines)
