"""Output directories the trainer owns: a marker it wrote, one writer at a time, and an
``--overwrite`` that deletes only what a run creates.

- The trainer writes only into a new or empty directory, or into one holding its marker
  ``toyopt-run.json`` (written when it claims the directory). A directory holding anything else
  (a model, a user's data) is refused in one line and nothing in it is touched.
- While a process works in a directory it holds an exclusive lock (``flock`` on ``.toyopt.lock``,
  released when the process ends, however it ends): a second ``train``, ``--resume`` or
  ``--overwrite`` on the same directory stops at once, naming it.
- ``--overwrite`` deletes only the entries a directory of that kind creates (``ENTRIES``); any
  other file someone put there stays. What it will delete is resolved first
  (:func:`overwrite_plan`), and it deletes nothing if an entry is a symbolic link (or lies under
  one), cannot be deleted, or holds an input of the same command (:func:`refuse_inputs_inside`).
- A link in place of one of those entries, the marker or the lock is refused when the directory
  is claimed: nothing is ever written through it (:mod:`toyopt.files`).

A training run's directory also holds the resolved config, written only by a run that starts
from step 0; ``--resume`` compares it (and a checkpoint's fingerprint of config, data and model
files) with the new config, and refuses a change in one line that names it. ``--resume``
starts from step 0 only where nothing finished is lost (:func:`lost_progress`): a run that
finished or completed a checkpoint but has none left is refused unless ``--overwrite``.
"""

from __future__ import annotations

import fcntl
import json
import os
import shutil
from pathlib import Path

from toyopt import files as fs
from toyopt.llm import objectives
from toyopt.llm.checkpoint import CorruptFile, write_json
from toyopt.llm.config import TrainConfig, save
from toyopt.llm.setup import rule_optima

MARKER = "toyopt-run.json"
LOCK = ".toyopt.lock"
TRASH = ".toyopt-trash"  # what --overwrite deletes, moved aside first
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
    fd = fs.open_nofollow(path / LOCK, os.O_RDWR | os.O_CREAT)
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


def check_links(path: Path, kind: str) -> None:
    """A one-line refusal if the marker, the lock or an entry of ``kind`` (or a folder on its
    way) is a symbolic link: nothing is written or deleted through one."""
    ckpts = path / "checkpoints"
    inner = (
        sorted(ckpts.iterdir())
        if kind == "run" and ckpts.is_dir() and not ckpts.is_symlink()
        else []
    )
    for name in (MARKER, LOCK, TRASH, *ENTRIES[kind], *(p.relative_to(path) for p in inner)):
        found = fs.link_in(path / name, path)
        if found is not None:
            raise fs.LinkRefused(
                f"{found} is a symbolic link: toyopt writes and deletes nothing through a link in"
                f" {path}; remove the link (its target is left as it is)"
            )


def _deletable(p: Path) -> None:
    """A one-line refusal if ``p`` (a file, or a folder and all it holds) cannot be deleted."""
    parent = p.parent
    if not os.access(parent, os.W_OK | os.X_OK):
        raise ValueError(
            f"{p}: cannot be deleted ({parent} is read-only): make it writable, or choose another"
            " directory; nothing was deleted"
        )
    if p.is_dir():
        for root, _dirs, _ in os.walk(p):
            if not os.access(root, os.W_OK | os.X_OK):
                raise ValueError(
                    f"{root}: read-only, so --overwrite could not delete it: make it writable"
                    " (chmod -R u+w), or choose another directory; nothing was deleted"
                )


def overwrite_plan(path: Path, kind: str) -> list[Path]:
    """What ``--overwrite`` deletes in ``path`` (the existing entries of ``kind``), resolved and
    checked before anything is deleted: a link among them (or on their way), or one that cannot
    be deleted, is a one-line refusal naming it."""
    path = Path(path)
    if not path.is_dir():
        return []
    check_links(path, kind)
    plan = [path / name for name in ENTRIES[kind] if (path / name).exists()]
    for p in plan:
        _deletable(p)
    return plan


# the options of a command that name files or directories it reads
INPUTS = {"sft_data": "--sft-data", "sft_eval": "--sft-eval", "pref_data": "--pref-data",
          "pref_eval": "--pref-eval", "optima": "--optima", "model": "--model",
          "ref_model": "--ref-model", "config": "--config"}  # fmt: skip


def inside(p: Path, doomed: list[Path]) -> Path | None:
    """The entry of ``doomed`` that is ``p`` or holds it (paths resolved), else None."""
    real = Path(os.path.realpath(p))
    for d in doomed:
        r = Path(os.path.realpath(d))
        if real == r or r in real.parents:
            return d
    return None


def refuse_inputs_inside(cfg, doomed: list[Path], where: Path) -> None:
    """A one-line refusal if an input of ``cfg`` (data, eval files, optima, model directories)
    lies inside something ``--overwrite`` would delete; nothing deleted."""
    named = [] if not getattr(cfg, "objectives", None) else [
        (path, f"objective {src.name}") for src in objectives.sources(cfg)
        for path in (src.data, src.eval)]  # fmt: skip
    for value, option in [*((getattr(cfg, f, "") or "", o) for f, o in INPUTS.items()), *named]:
        if not value or value == "zero" or not Path(value).exists():
            continue
        if inside(Path(value), doomed) is not None:
            raise ValueError(
                f"{option} {value} lies inside the run directory {where} that --overwrite would"
                " delete: copy it elsewhere first (nothing was deleted)"
            )


def check_overwrite(cfg, targets: list[tuple[Path, str]]) -> None:
    """Before a sweep or study with ``--overwrite`` deletes anything: the plan of every
    directory it would overwrite (``targets``: (path, kind)) is resolved and checked, and no
    input of ``cfg`` may lie inside any of them (a one-line refusal, nothing deleted)."""
    for path, kind in targets:
        path = Path(path)
        if not path.is_dir() or _marker_kind(path) != kind:
            continue  # new, or refused untouched when it is claimed
        refuse_inputs_inside(cfg, overwrite_plan(path, kind), path)


def remove_entries(path: Path, kind: str, plan: list[Path] | None = None) -> None:
    """Delete what a directory of ``kind`` creates (``plan``, resolved by
    :func:`overwrite_plan`), and the folders that this leaves empty. All or nothing: every entry
    is first renamed into ``.toyopt-trash`` (a rename that fails puts the others back and
    deletes nothing), then the trash is deleted."""
    plan = overwrite_plan(path, kind) if plan is None else plan
    trash = path / TRASH
    shutil.rmtree(trash, ignore_errors=True)  # an overwrite killed while deleting
    trash.mkdir()
    moved: list[tuple[Path, Path]] = []
    try:
        for i, p in enumerate(plan):
            os.rename(p, trash / str(i))
            moved.append((trash / str(i), p))
    except OSError as err:
        for aside, back in reversed(moved):
            os.rename(aside, back)
        trash.rmdir()
        raise ValueError(
            f"{p}: --overwrite cannot move it aside ({err.strerror}): make it writable, or choose"
            " another directory; nothing was deleted"
        ) from None
    for _, p in moved:
        if p.parent != path and p.parent.is_dir() and not any(p.parent.iterdir()):
            p.parent.rmdir()
    shutil.rmtree(trash, ignore_errors=True)  # what it cannot delete now goes the next time


def abandon(owned: OwnedDir, keep_dir: bool) -> None:
    """Undo the claim of a run that was refused before it started (no ``config.json`` yet: a
    data row, a model, an option found wrong while loading): delete what it created (the
    entries of a run, its marker and lock) and the directory if it made it, so that
    the same command, once the input is fixed, needs no ``--overwrite``. A run that started is
    never touched (``--resume`` continues it)."""
    path = owned.path
    if (path / "config.json").exists() or (path / "metrics.jsonl").exists():
        owned.release()
        return
    remove_entries(path, "run")
    (path / MARKER).unlink(missing_ok=True)
    owned.release()
    (path / LOCK).unlink(missing_ok=True)
    if not keep_dir and not any(path.iterdir()):
        path.rmdir()


def claim(output_dir: str, kind: str, resume: bool = False, overwrite: bool = False,
          inputs=None) -> OwnedDir:  # fmt: skip
    """Claim ``output_dir`` for a directory of ``kind`` (see the module docstring).

    A directory that already holds one needs ``resume`` (continue) or ``overwrite`` (delete the
    entries of ``kind`` first, after :func:`overwrite_plan` and, for the config ``inputs`` of the
    command, :func:`refuse_inputs_inside`)."""
    if not str(output_dir).strip():
        raise ValueError("the output directory is empty: name a new or empty directory")
    path = Path(output_dir)
    if path.is_symlink():
        raise fs.LinkRefused(
            f"{path} is a symbolic link: name the directory itself as the output directory"
        )
    ours = _check_owner(path, kind)  # refuse before creating anything
    if ours:
        check_links(path, kind)
    path.mkdir(parents=True, exist_ok=True)
    fd = _lock(path)
    try:
        ours = _check_owner(path, kind)  # again, now that no one else can change it
        if ours:
            check_links(path, kind)
        if ours and overwrite:
            plan = overwrite_plan(path, kind)
            if inputs is not None:
                refuse_inputs_inside(inputs, plan, path)
            remove_entries(path, kind, plan)
        elif ours and not resume:
            raise ValueError(
                f"{path} already holds a {kind}: pass --resume or --overwrite, or choose another"
                " directory"
            )
        fs.write_text(path / MARKER, json.dumps({"kind": kind, "written_by": "toyopt"}) + "\n")
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
    return [k for k in new if k in default and not _same(old.get(k, default[k]), new[k])]


def _same(a, b) -> bool:
    """Equal, and for mappings in the same order: the order of the objectives (ALRIGHT's draw,
    the sequential stages) is part of what a run is."""
    if isinstance(a, dict) and isinstance(b, dict):
        return list(a) == list(b) and a == b
    return a == b


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


def last_step(metrics: Path) -> int | None:
    """The largest ``step`` of the metrics log's rows (None without a readable row)."""
    steps = []
    try:
        lines = metrics.read_text(errors="replace").splitlines()
    except OSError:
        return None
    for line in lines:
        try:
            steps.append(int(json.loads(line)["step"]))
        except (ValueError, KeyError, TypeError):
            continue
    return max(steps) if steps else None


def lost_progress(run: Path, cfg: TrainConfig) -> str | None:
    """Why ``--resume`` must not start ``run`` again from step 0, or None where it may: a run
    with no checkpoint that has finished, or whose metrics log shows that a checkpoint was
    completed (a step row past the first checkpoint; rows come after it is renamed into place).
    A run killed before its first checkpoint starts again (nothing finished is lost)."""
    from toyopt.llm.checkpoint import checkpoints

    if checkpoints(run):
        return None  # the checkpoints are verified (and the metrics log with them) later
    metrics = run / "metrics.jsonl"
    first = min(cfg.save_every or cfg.steps, cfg.steps)
    step_rows = []
    if metrics.is_file():
        for line in metrics.read_text(errors="replace").splitlines():
            try:
                row = json.loads(line)
            except ValueError:
                continue
            if isinstance(row, dict) and "objective" in row:
                step_rows.append(row.get("step", -1))
    finished = [n for n in ("summary.json", "final") if (run / n).exists()]
    if not finished and not any(isinstance(t, int) and t >= first for t in step_rows):
        return None
    upto = last_step(metrics)
    what = f"metrics up to step {upto}" if upto is not None else f"{finished[0]} written"
    return (
        f"{run}: started ({what}) but no checkpoint to resume from in {run / 'checkpoints'}:"
        " rerun with --overwrite to start again"
    )


def models_unchanged(run: Path, cfg: TrainConfig) -> None:
    """Before any model is loaded: a one-line refusal if the files of ``--model`` or
    ``--ref-model`` differ from those the newest checkpoint recorded (its manifest sealed; the
    checkpoint's files are verified later, when it is resumed, and the check is made again)."""
    from toyopt.llm.checkpoint import MANIFEST, checkpoints, content_sha256
    from toyopt.llm.fingerprint import changes, inputs

    found = checkpoints(run)
    if not found:
        return
    try:
        manifest = json.loads((found[-1] / MANIFEST).read_text())
        recorded = manifest["inputs"] if manifest["sha256"] == content_sha256(manifest) else None
    except (OSError, ValueError, KeyError, TypeError):
        recorded = None  # named when the checkpoint is verified
    diff = changes(recorded, inputs(cfg)) if isinstance(recorded, dict) else []
    if diff:
        raise ValueError(
            f"{diff[0]}: restore it, or start again with --overwrite ({found[-1].name} was"
            " trained on the earlier files)"
        )


def start_run_dir(cfg: TrainConfig):
    """Claim the run directory (and on resume check the config it was started with)."""
    owned = claim(cfg.output_dir, "run", resume=cfg.resume, overwrite=cfg.overwrite, inputs=cfg)
    run = owned.path
    lost = None if cfg.overwrite or not cfg.resume else lost_progress(run, cfg)
    if lost:
        owned.release()
        raise ValueError(lost)
    if cfg.resume and not cfg.overwrite:
        try:
            models_unchanged(run, cfg)
        except BaseException:
            owned.release()
            raise
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
    optima = rule_optima(cfg) if cfg.rule == "maxright" else None
    if optima is not None:
        write_json(run / "optima.json", optima)
