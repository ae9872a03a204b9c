"""Writes that stay inside what a command owns, through the real command lines.

- ``make-data --out DIR`` never replaces a file it did not write (all four targets are checked
  before any is written) and never writes through a link.
- A link in a run directory (the metrics log, the lock, ``checkpoints/``, ``final/``) is
  refused in one line naming it; nothing is written or deleted through it.
- ``--overwrite`` resolves what it will delete first and deletes nothing when an input of the
  same command (data, eval file, ``--optima``, ``--model``) lies inside it.

Each case: exit status 2, stderr exactly one line naming the path or option, the user's files
(outside the run directory) byte for byte as they were, and the finished run intact. The LLM
cases call ``toyopt.llm.__main__.main`` in this process with the tiny model; one runs the real
entry point as a subprocess.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from toyopt.llm.synthetic import make_rows

ROOT = Path(__file__).resolve().parents[1]


def snapshot(folder: Path, skip: Path | None = None) -> dict[str, bytes | str]:
    """Every file's bytes (a link: its target) under ``folder``, the lock's pid left out."""
    out: dict[str, bytes | str] = {}
    for p in sorted(folder.rglob("*")):
        if skip is not None and (p == skip or skip in p.parents) or p.name == ".toyopt.lock":
            continue
        if p.is_symlink():
            out[str(p.relative_to(folder))] = "-> " + os.readlink(p)
        elif p.is_file():
            out[str(p.relative_to(folder))] = p.read_bytes()
    return out


def cli(capsys, *args: str) -> tuple[int, list[str]]:
    """Run ``python -m toyopt.llm ARGS`` in this process: (status, stderr's non-empty lines)."""
    from toyopt.llm.__main__ import main

    capsys.readouterr()
    status = main([str(a) for a in args])
    err = [s for s in capsys.readouterr().err.splitlines() if s.strip()]
    return status, err


def train(data: Path, run: Path, *extra) -> list[str]:
    return ["train", "--sft-data", data / "s.jsonl", "--pref-data", data / "p.jsonl",
            "--steps", "4", "--save-every", "2", "--eval-every", "2", "--batch-size", "2",
            "--max-length", "24", "--no-progress", "--output-dir", run, *extra]  # fmt: skip


@pytest.fixture(scope="module")
def small(tmp_path_factory) -> tuple[Path, Path]:
    """(data folder, a finished 4-step run on it)."""
    d = tmp_path_factory.mktemp("writes-data")
    for name, split in (("s", "sft_train"), ("p", "pref_train")):
        rows = make_rows(split, n=24)
        (d / f"{name}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    run = tmp_path_factory.mktemp("writes-run") / "run"
    from toyopt.llm.__main__ import main

    assert main([str(a) for a in train(d, run)]) == 0
    return d, run


@pytest.fixture
def case(small, tmp_path):
    """(data, a copy of the finished run, the user's folder beside it)."""
    data, done = small
    run, user = tmp_path / "run", tmp_path / "user"
    shutil.copytree(done, run, symlinks=True)
    user.mkdir()
    (user / "notes.txt").write_text("my own notes\n")
    return data, run, user


def one_line(status: int, err: list[str], *names) -> None:
    assert status == 2 and len(err) == 1, err
    assert err[0].startswith("error: ") and "Traceback" not in err[0], err
    for name in names:
        assert str(name) in err[0], err


# make-data --out DIR


@pytest.mark.parametrize("mine", ["pref_eval.jsonl", "sft_eval.jsonl"])
def test_make_data_never_replaces_a_users_file(capsys, tmp_path, mine):
    out = tmp_path / "data"
    out.mkdir()
    (out / mine).write_text('{"prompt": "mine", "completion": "mine"}\n')
    before = snapshot(tmp_path)
    status, err = cli(capsys, "make-data", "--out", out)
    one_line(status, err, out / mine, "was not written by toyopt")
    assert snapshot(tmp_path) == before  # not one of the four written, the user's file kept


def test_make_data_writes_through_no_link_and_again_over_its_own_files(capsys, tmp_path):
    out, user = tmp_path / "data", tmp_path / "user.jsonl"
    assert cli(capsys, "make-data", "--out", out)[0] == 0
    assert cli(capsys, "make-data", "--out", out)[0] == 0  # the same bytes: nothing to refuse
    user.write_text("mine\n")
    (out / "sft_train.jsonl").unlink()
    (out / "sft_train.jsonl").symlink_to(user)
    before = snapshot(tmp_path)
    status, err = cli(capsys, "make-data", "--out", out)
    one_line(status, err, out / "sft_train.jsonl", "symbolic link")
    assert snapshot(tmp_path) == before and user.read_text() == "mine\n"


# links in a run directory


@pytest.mark.parametrize(
    "entry, extra",
    [("metrics.jsonl", "--overwrite"), (".toyopt.lock", "--resume"),
     ("metrics.jsonl", "--resume")],
)  # fmt: skip
def test_a_linked_log_or_lock_is_refused_and_nothing_written_through_it(capsys, case, entry, extra):
    data, run, user = case
    target = user / "notes.txt"
    (run / entry).unlink(missing_ok=True)
    (run / entry).symlink_to(target)
    before, outside = snapshot(run), snapshot(user)
    status, err = cli(capsys, *train(data, run, extra))
    one_line(status, err, run / entry, "symbolic link")
    assert snapshot(user) == outside and target.read_text() == "my own notes\n"
    assert snapshot(run) == before  # the finished run as it was


@pytest.mark.parametrize(
    "entry, extra",
    [("checkpoints", "--overwrite"), ("final", "--overwrite"),
     ("checkpoints/step-000004", "--resume")],
)  # fmt: skip
def test_a_run_whose_folder_is_a_link_deletes_and_reads_nothing_through_it(
    capsys, case, entry, extra
):
    data, run, user = case
    kept = user / Path(entry).name
    shutil.move(run / entry, kept)  # the user keeps the folder elsewhere, linked
    (run / entry).symlink_to(kept, target_is_directory=True)
    before, outside = snapshot(run), snapshot(user)
    status, err = cli(capsys, *train(data, run, extra))
    one_line(status, err, run / entry, "symbolic link")
    assert snapshot(run) == before and snapshot(user) == outside


@pytest.mark.skipif(os.geteuid() == 0, reason="root may delete in a read-only folder")
def test_overwrite_of_a_read_only_checkpoint_deletes_nothing(capsys, case):
    data, run, _ = case
    ckpt = run / "checkpoints" / "step-000004"
    ckpt.chmod(0o555)
    try:
        before = snapshot(run)
        status, err = cli(capsys, *train(data, run, "--overwrite"))
        one_line(status, err, ckpt, "read-only")
        assert snapshot(run) == before
    finally:
        ckpt.chmod(0o755)


def test_overwrite_that_cannot_move_an_entry_aside_deletes_nothing(capsys, case, monkeypatch):
    """Deletion is all or nothing: an entry that cannot be moved (here a rename refused as a
    read-only folder refuses it, even to root) puts back those already moved."""
    data, run, _ = case
    rename = os.rename

    def refusing(src, dst):
        if Path(src).name == "final":
            raise PermissionError(13, "Permission denied", str(src))
        return rename(src, dst)

    monkeypatch.setattr(os, "rename", refusing)
    before = snapshot(run)
    status, err = cli(capsys, *train(data, run, "--overwrite"))
    one_line(status, err, run / "final", "nothing was deleted")
    assert snapshot(run) == before and not (run / ".toyopt-trash").exists()


# --overwrite and the command's own inputs


def test_overwrite_refuses_when_a_data_file_lies_inside_the_run(capsys, case):
    data, run, _ = case
    (run / "data").mkdir(exist_ok=True)
    shutil.copy(data / "p.jsonl", run / "data" / "pref_train.jsonl")
    before = snapshot(run)
    args = train(data, run, "--overwrite")
    args[args.index("--pref-data") + 1] = run / "data" / "pref_train.jsonl"
    status, err = cli(capsys, *args)
    one_line(status, err, "--pref-data", run / "data" / "pref_train.jsonl", "copy it elsewhere")
    assert snapshot(run) == before


def test_overwrite_refuses_a_model_from_the_run_it_deletes(capsys, case):
    data, run, _ = case
    before = snapshot(run)
    status, err = cli(capsys, *train(data, run, "--overwrite", "--model", run / "final"))
    one_line(status, err, "--model", run / "final", "copy it elsewhere")
    assert snapshot(run) == before


def test_overwrite_refuses_a_config_file_it_would_delete(capsys, case):
    data, run, _ = case
    before = snapshot(run)
    status, err = cli(capsys, *train(data, run, "--overwrite", "--config", run / "config.yaml"))
    one_line(status, err, "--config", run / "config.yaml", "copy it elsewhere")
    assert snapshot(run) == before


def test_overwrite_of_a_sweep_refuses_its_own_optima_before_deleting_any_run(capsys, tmp_path):
    """The sweep checks every directory it would overwrite before it deletes anything."""
    sweep = tmp_path / "sweep"
    sweep.mkdir()
    (sweep / "toyopt-run.json").write_text('{"kind": "sweep", "written_by": "toyopt"}\n')
    (sweep / "optima.json").write_text('{"sft": 0.5, "dpo": 0.5}\n')
    (sweep / "sweep.json").write_text("{}\n")
    before = snapshot(tmp_path)
    status, err = cli(capsys, "sweep", "--optima", sweep / "optima.json", "--overwrite",
                      "--rules", "maxright", "--steps", "2", "--output-dir", sweep)  # fmt: skip
    one_line(status, err, "--optima", sweep / "optima.json", "copy it elsewhere")
    assert snapshot(tmp_path) == before


def test_the_entry_point_refuses_in_one_line_too(small, tmp_path):
    """The real ``python -m toyopt.llm``: its exit status and stderr."""
    data, done = small
    run, user = tmp_path / "run", tmp_path / "mine.jsonl"
    shutil.copytree(done, run)
    user.write_text("mine\n")
    (run / "summary.json").unlink()
    (run / "summary.json").symlink_to(user)
    args = [sys.executable, "-m", "toyopt.llm", *map(str, train(data, run, "--overwrite"))]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.run(args, capture_output=True, text=True, env=env, timeout=300)
    lines = [s for s in proc.stderr.splitlines() if s.strip()]
    assert proc.returncode == 2 and len(lines) == 1, proc.stderr
    assert str(run / "summary.json") in lines[0] and user.read_text() == "mine\n"
    assert (run / "final").is_dir() and (run / "checkpoints" / "step-000004").is_dir()
