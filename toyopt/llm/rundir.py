"""Output directories the trainer owns: a marker it wrote, one writer at a time, and an
``--overwrite`` that deletes only what a run creates.

- The trainer writes only into a new or empty directory, or into one holding its marker
  ``toyopt-run.json`` (written when it claims the directory). A directory holding anything else
  (a model, a user's data) is refused in one line and nothing in it is touched.
- While a process works in a directory it holds an exclusive lock (``flock`` on ``.toyopt.lock``,
  released when the process ends, however it ends): a second ``train``, ``--resume`` or
  ``--overwrite`` on the same directory stops at once, naming it.
- ``--overwrite`` deletes only the entries a directory of that kind creates (``ENTRIES``); any
  other file someone put there stays.

A training run's directory also holds the resolved config, written only by a run that starts
from step 0; ``--resume`` compares it (and a checkpoint's fingerprint of config and data) with
the new config, and refuses a change in one line that names it.
"""

from __future__ import annotations

import fcntl
import json
import os
import shutil
from pathlib import Path

from toyopt.llm.checkpoint import CorruptFile, write_json
from toyopt.llm.config import TrainConfig, save
from toyopt.llm.setup import read_optima

MARKER = "toyopt-run.json"
LOCK = ".toyopt.lock"
# what each kind of directory creates (a sweep's and an optima estimate's run directories are
# runs of their own, with their own markers)
ENTRIES = {
    "run": ("config.json", "config.yaml", "metrics.jsonl", "ref_logps.pt", "checkpoints",
            "final", "summary.json", "optima.json", ".tmp-final", "tensorboard", "data/sft_train.jsonl",
            "data/sft_eval.jsonl", "data/pref_train.jsonl", "data/pref_eval.jsonl"),
    "optima": ("optima.json",),
    "sweep": ("optima.json", "sweep.json"),
}  # fmt: skip


class OwnedDir:
    """A claimed directory; the lock is held until :meth:`release` (or the process ends)."""

    def __init__(self, path: Path, fd: int):
        self.path, self._fd = path, fd

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None


def _marker_kind(path: Path) -> str | None:
    """The kind recorded in the directory's marker, None without one."""
    marker = path / MARKER
    if not marker.is_file():
        return None
    try:
        return str(json.loads(marker.read_text())["kind"])
    except (ValueError, KeyError, TypeError, UnicodeDecodeError):
        raise ValueError(f"{marker}: unreadable; cannot tell what this directory holds") from None


def _check_owner(path: Path, kind: str) -> bool:
    """True if ``path`` holds a directory of ``kind`` this trainer made, False if it is new or
    empty; a ValueError (nothing touched) if it holds anything else."""
    if not path.exists():
        return False
    if not path.is_dir():
        raise ValueError(f"{path}: exists and is not a directory")
    found = _marker_kind(path)
    if found is not None and found != kind:
        raise ValueError(f"{path} holds a toyopt {found} directory, not a {kind}: choose another")
    if found is None:
        others = sorted(p.name for p in path.iterdir() if p.name != LOCK)
        if others:
            shown = ", ".join(others[:3]) + (", …" if len(others) > 3 else "")
            raise ValueError(
                f"{path} is not empty and is not a toyopt {kind} directory (it holds {shown}):"
                " choose a new or empty directory; nothing in it was changed"
            )
    return found is not None


def _lock(path: Path) -> int:
    fd = os.open(path / LOCK, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        holder = os.read(fd, 32).decode(errors="replace").strip() or "?"
        os.close(fd)
        raise ValueError(
            f"{path} is in use by another toyopt process (pid {holder}): wait for it to end, or"
            " choose another directory"
        ) from None
    os.ftruncate(fd, 0)
    os.write(fd, f"{os.getpid()}\n".encode())
    return fd


def remove_entries(path: Path, kind: str) -> None:
    """Delete what a directory of ``kind`` creates, and the folders that this leaves empty."""
    for name in ENTRIES[kind]:
        p = path / name
        shutil.rmtree(p) if p.is_dir() else p.unlink(missing_ok=True)
        if p.parent != path and p.parent.is_dir() and not any(p.parent.iterdir()):
            p.parent.rmdir()


def claim(output_dir: str, kind: str, resume: bool = False, overwrite: bool = False) -> OwnedDir:
    """Claim ``output_dir`` for a directory of ``kind`` (see the module docstring).

    A directory that already holds one needs ``resume`` (continue) or ``overwrite`` (delete the
    entries of ``kind`` first)."""
    if not str(output_dir).strip():
        raise ValueError("the output directory is empty: name a new or empty directory")
    path = Path(output_dir)
    _check_owner(path, kind)  # refuse before creating anything
    path.mkdir(parents=True, exist_ok=True)
    fd = _lock(path)
    try:
        ours = _check_owner(path, kind)  # again, now that no one else can change it
        if ours and overwrite:
            remove_entries(path, kind)
        elif ours and not resume:
            raise ValueError(
                f"{path} already holds a {kind}: pass --resume or --overwrite, or choose another"
                " directory"
            )
        marker = path / f".{MARKER}.tmp"
        marker.write_text(json.dumps({"kind": kind, "written_by": "toyopt"}) + "\n")
        os.replace(marker, path / MARKER)
    except BaseException:
        os.close(fd)
        raise
    return OwnedDir(path, fd)


# how a run is carried out or watched, not what it computes: free to change on --resume
IGNORED_ON_RESUME = ("resume", "overwrite", "progress", "threads", "output_dir", "report_to")


def resume_view(cfg: TrainConfig) -> dict:
    """The config fields a resumed run must keep (how to run it may change, not what it is)."""
    return {k: v for k, v in cfg.to_dict().items() if k not in IGNORED_ON_RESUME}


def changed_fields(old: dict, new: dict) -> list[str]:
    default = TrainConfig().to_dict()  # a field added since the run started has its default
    return [k for k in new if k in default and old.get(k, default[k]) != new[k]]


def data_changes(old: dict, new: dict) -> list[str]:
    """What differs between two data fingerprints (rows used, then file contents)."""
    out = []
    for name, now in new.items():
        was = old.get(name, {})
        if was.get("rows") != now["rows"]:
            out.append(f"{name}: {was.get('rows')} rows, now {now['rows']}")
        elif was.get("sha256") != now["sha256"]:
            out.append(f"{name}: the file's content changed ({now['source']})")
    return out


def start_run_dir(cfg: TrainConfig):
    """Claim the run directory (and on resume check the config it was started with)."""
    owned = claim(cfg.output_dir, "run", resume=cfg.resume, overwrite=cfg.overwrite)
    run = owned.path
    saved = run / "config.json"
    if saved.is_file() and cfg.resume:
        try:
            old = json.loads(saved.read_text())
        except (ValueError, UnicodeDecodeError):
            owned.release()
            raise CorruptFile(f"{saved}: unreadable; cannot check --resume") from None
        diff = changed_fields(old, resume_view(cfg))
        if diff:
            owned.release()
            raise ValueError(f"{saved}: --resume with a different config ({', '.join(diff)})")
    return owned


def write_config(cfg: TrainConfig, run: Path) -> None:
    """The resolved config (and MAXRIGHT's optima) of a run that starts from step 0."""
    save(cfg, run)
    optima = read_optima(cfg.optima) if cfg.rule == "maxright" else None
    if optima is not None:
        write_json(run / "optima.json", optima)
