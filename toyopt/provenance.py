"""Where a generated result came from: commit, package versions, machine, threads and date.

Every generated table (claims, sweeps, benchmarks, study CSV files) records this record, so a
reader can tell a stale table from a fresh one (benchopt's result files carry the same on every
row). Nothing here imports torch unless it is already imported or asked for.
"""

from __future__ import annotations

import datetime
import importlib.metadata
import os
import platform
import subprocess
from pathlib import Path

PACKAGES = ("torch", "transformers", "peft", "numpy")
ROOT = Path(__file__).resolve().parent.parent


def commit(root: Path = ROOT) -> str:
    """The checkout's commit (with ``+dirty`` when tracked files differ from it), or "unknown"
    outside a git checkout (an installed wheel)."""
    try:
        head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=root, capture_output=True,
                              text=True, timeout=10, check=True).stdout.strip()  # fmt: skip
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=root,
                               capture_output=True, text=True, timeout=10).stdout.strip()  # fmt: skip
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return head[:12] + ("+dirty" if dirty else "")


def versions(packages: tuple[str, ...] = PACKAGES) -> dict[str, str]:
    """Installed versions of the packages a result depends on ("-" where not installed)."""
    out = {}
    for name in packages:
        try:
            out[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            out[name] = "-"
    return out


def cpu_name() -> str:
    """The CPU's model name (from /proc/cpuinfo on Linux), else the platform's processor."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def device(threads: int | None = None) -> str:
    """ "CPU NAME, N cores, T threads" or the GPU's name when torch sees one."""
    import sys

    torch = sys.modules.get("torch")
    if torch is not None and torch.cuda.is_available():
        return f"GPU {torch.cuda.get_device_name(0)} (x{torch.cuda.device_count()})"
    used = threads if threads is not None else (torch.get_num_threads() if torch else None)
    shown = f", {used} thread(s)" if used else ""
    return f"{cpu_name()} ({platform.machine()}), {os.cpu_count()} cores{shown}"


def provenance(threads: int | None = None) -> dict[str, str]:
    """The record: commit, versions, device and UTC date."""
    return {
        "commit": commit(),
        **versions(),
        "device": device(threads),
        "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
    }


def line(record: dict[str, str]) -> str:
    """One Markdown-friendly line of a provenance record (shown under each generated table)."""
    pkgs = ", ".join(f"{k} {record[k]}" for k in PACKAGES if k in record)
    return f"commit {record['commit']}; {pkgs}; {record['device']}; {record['date']}"
