"""Checkpoints that verify, and the metrics log that resumes without duplicates.

One protocol for every engine. A checkpoint ``checkpoints/step-NNNNNN`` holds what the engine
saves (:meth:`save_state`: the trainable parameters and the optimizer state, or Accelerate's
state), ``state.json`` (step, rule state, elapsed time, …) and ``manifest.json``: the sha256 of
every other file, the step, the fingerprint of what the run depends on (the resolved config,
the data files' sha256 and row counts, the reference log-probs file, the model files the
result depends on (:mod:`toyopt.llm.fingerprint`), and the length and sha256 of the metrics log
the checkpoint counts) and the sha256 of its own content. It is written under ``.tmp-step-NNNNNN`` by every
process, synced once all have written, and renamed into place by the main process after all have written, so a crash
mid-write never replaces a good checkpoint. Checkpoints are ordered by their step number.

On resume the newest checkpoint that verifies is used; one that does not is reported in a line
naming the file, renamed ``rejected-step-NNNNNN`` (kept, never deleted) and the previous one tried.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from pathlib import Path

from toyopt import files as fs

PREFIX = "step-"
MANIFEST = "manifest.json"


class CorruptFile(ValueError):
    """A file of the run directory that is not what was written (the message names it)."""


def step_of(path: Path) -> int | None:
    """The step of a checkpoint directory's name ``step-NNNNNN``, else None."""
    digits = path.name[len(PREFIX) :]
    return int(digits) if path.name.startswith(PREFIX) and digits.isdigit() else None


def checkpoints(run: Path) -> list[Path]:
    """Complete checkpoints, by step number (temporary and rejected directories are ignored)."""
    root = run / "checkpoints"
    if not root.is_dir():
        return []
    found = [p for p in root.iterdir() if p.is_dir() and step_of(p) is not None]
    return sorted(found, key=step_of)


def sha256_file(path: Path, limit: int | None = None) -> str:
    """sha256 of a file (of its first ``limit`` bytes), read in 1 MiB blocks."""
    digest, left = hashlib.sha256(), limit
    with open(path, "rb") as f:
        while left is None or left > 0:
            block = f.read(1 << 20 if left is None else min(1 << 20, left))
            if not block:
                break
            digest.update(block)
            left = None if left is None else left - len(block)
    return digest.hexdigest()


def fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_json(path: Path, data) -> None:
    """Write JSON through a temporary file and a rename, synced: never half a file, never
    through a link (:mod:`toyopt.files`)."""
    fs.write_json(path, data)


def save_checkpoint(engine, run: Path, step: int, model, optimizer, state: dict,
                    fingerprint: dict, keep: int = 2) -> Path:  # fmt: skip
    """Write checkpoint ``step`` (every process its part), then keep the newest ``keep``."""
    root = run / "checkpoints"
    tmp, final = root / f".tmp-{PREFIX}{step:06d}", root / f"{PREFIX}{step:06d}"
    if engine.is_main:
        root.mkdir(parents=True, exist_ok=True)
        for torn in root.glob(".tmp-*"):  # one writer holds the run: these are killed writes
            shutil.rmtree(torn, ignore_errors=True)
        tmp.mkdir()
    engine.wait()
    engine.save_state(model, optimizer, tmp)
    if engine.is_main:
        fs.write_text(tmp / "state.json", json.dumps({**state, "step": step}))
    # every process has written before any lists the folder: a file another process is still
    # writing (a temporary file renamed into place) could vanish between listing and syncing
    engine.wait()
    for f in (f for f in tmp.rglob("*") if f.is_file()):  # each process syncs what it sees
        fsync(f)
    engine.wait()  # every process's files are on disk before the manifest and the rename
    if engine.is_main:
        files = sorted(f for f in tmp.rglob("*") if f.is_file())
        hashes = {str(f.relative_to(tmp)): sha256_file(f) for f in files}
        write_json(tmp / MANIFEST, sealed({"step": step, "files": hashes, **fingerprint}))
        if final.exists():  # the same step written again after a fall-back: replace it whole
            shutil.rmtree(final)
        os.replace(tmp, final)
        fsync(root)
        for old in checkpoints(run)[:-keep]:
            shutil.rmtree(old, ignore_errors=True)
    engine.wait()
    return final


def content_sha256(data: dict) -> str:
    """sha256 of a JSON object's canonical text (sorted keys), the seal's own field left out."""
    body = {k: v for k, v in data.items() if k != "sha256"}
    return hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()


def sealed(data: dict) -> dict:
    """``data`` with the sha256 of its own content, so that a changed byte anywhere in the
    manifest (a data file's name, the config it records) is detected, not only in the hashes."""
    return {**data, "sha256": content_sha256(data)}


def manifest_of(path: Path) -> dict:
    """The manifest of checkpoint ``path`` after checking every file it lists (CorruptFile if
    one is missing or differs, naming it)."""
    manifest = path / MANIFEST
    try:
        data = json.loads(manifest.read_text())
        files, step, seal = dict(data["files"]), data["step"], data["sha256"]
    except FileNotFoundError:
        raise CorruptFile(f"{manifest}: missing") from None
    except (ValueError, KeyError, TypeError, UnicodeDecodeError):
        raise CorruptFile(f"{manifest}: unreadable") from None
    if seal != content_sha256(data):
        raise CorruptFile(f"{manifest}: its content differs from its own sha256")
    if step != step_of(path):
        raise CorruptFile(f"{manifest}: records step {step}, not the directory's {step_of(path)}")
    for name, digest in files.items():
        f = path / name
        if not f.is_file():
            raise CorruptFile(f"{f}: missing")
        if sha256_file(f) != digest:
            raise CorruptFile(f"{f}: its sha256 differs from the checkpoint's manifest")
    return data


def latest_verified(run: Path, log=print) -> tuple[Path, dict] | None:
    """The newest checkpoint whose files verify, with its manifest; each one that does not is
    reported, renamed ``rejected-…`` and skipped. None if there are none; a ValueError if there
    were checkpoints but none verifies (never resume from a damaged state)."""
    found, first_problem = checkpoints(run), None
    for path in reversed(found):
        try:
            return path, manifest_of(path)
        except CorruptFile as err:
            first_problem = first_problem or str(err)
            aside = path.with_name(f"rejected-{path.name}")
            shutil.rmtree(aside, ignore_errors=True)  # an earlier rejection of the same step
            os.replace(path, aside)
            log(f"warning: {err}; kept it as {aside.name} and trying the previous checkpoint")
    if found:
        raise ValueError(
            f"{first_problem}; no checkpoint of {run} verifies: nothing to resume from"
            " (start again with --overwrite)"
        )
    return None


def verify_metrics(path: Path, kept: dict) -> None:
    """The metrics log still starts with the rows a checkpoint counted (``kept``: their length
    in bytes and sha256), else a CorruptFile naming it; nothing is changed."""
    size = path.stat().st_size if path.is_file() else 0
    if size < kept["bytes"]:  # truncate would pad with zero bytes: rows are gone, say so
        raise CorruptFile(
            f"{path}: {size} bytes, but the checkpoint counted {kept['bytes']}: rows were lost;"
            " resume from a copy or start again with --overwrite"
        )
    if sha256_file(path, kept["bytes"]) != kept["sha256"]:
        raise CorruptFile(
            f"{path}: its first {kept['bytes']} bytes differ from what the checkpoint recorded"
            " (rows were changed); resume from a copy or start again with --overwrite"
        )


class MetricsLog:
    """``metrics.jsonl``: one JSON object per line, flushed as written; a running sha256 of the
    file lets a checkpoint record which rows it counts."""

    def __init__(self, path: Path, kept: dict | None = None):
        """``kept``: the checkpoint's {"bytes", "sha256"} of the log (resume), else a new log."""
        self.path, self.digest = path, hashlib.sha256()
        if kept is None:
            fs.open_append(path, truncate=True).close()
        else:  # resume: drop rows written after the checkpoint (and any half-written line)
            fs.refuse_links(path)
            verify_metrics(path, kept)
            os.truncate(path, kept["bytes"])
            with open(path, "rb") as f:
                self.digest.update(f.read())
        self._file = fs.open_append(path)

    def write(self, row: dict) -> None:
        line = json.dumps(row) + "\n"
        self._file.write(line)
        self._file.flush()
        self.digest.update(line.encode("utf-8"))

    def sync(self) -> None:
        """Force the rows written so far to disk (a kill loses nothing flushed; a power cut
        could lose what the OS had not written yet)."""
        os.fsync(self._file.fileno())

    def kept(self) -> dict:
        """What a checkpoint records of the log: its length and sha256 so far."""
        return {"bytes": self._file.tell(), "sha256": self.digest.hexdigest()}

    def close(self) -> None:
        self._file.close()


class NullLog:
    """The metrics log of a process that does not write one."""

    def write(self, row: dict) -> None:
        pass

    def sync(self) -> None:
        pass

    def kept(self) -> dict:
        return {}

    def close(self) -> None:
        pass
