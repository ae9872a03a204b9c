"""The run directory as a transaction, with real trainer processes: every fault ends in an exact
continuation or one clear line, and no good data is lost.

- A flipped byte in any file of the newest checkpoint: reported (naming the file), that
  checkpoint set aside as ``rejected-…``, the previous one resumed, the same final result.
- No checkpoint verifies: one line, exit 2, nothing deleted.
- Changed data or config on ``--resume``: refused in one line saying what changed.
- A damaged reference log-probs file or metrics log: named before training, left as it was.
- A second ``train``, ``--resume`` or ``--overwrite`` while a run trains: refused at once.
- Ctrl-C / SIGTERM: one line, exit 130 / 143, no traceback; ``--resume`` continues exactly.
- A full disk (a small tmpfs): one line naming the path; the run resumes elsewhere exactly.
- ``--overwrite`` deletes only what a run created; a foreign directory is refused untouched.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import torch
from trainer_runs import STEPS, env, finish, params, rows_of, step_rows, summary, train_args

from toyopt.llm.checkpoint import checkpoints, manifest_of

LAST, PREVIOUS = f"step-{STEPS:06d}", f"step-{STEPS - 3:06d}"  # checkpoints every 3 steps


def flip_byte(path: Path, at: float = 0.5) -> None:
    data = bytearray(path.read_bytes())
    data[int(len(data) * at)] ^= 0x01
    path.write_bytes(bytes(data))


def snapshot(folder: Path) -> dict[str, bytes]:
    """Every file's bytes but the lock's (which records the pid of its latest holder)."""
    files = (p for p in folder.rglob("*") if p.is_file() and p.name != ".toyopt.lock")
    return {str(p.relative_to(folder)): p.read_bytes() for p in files}


def errors(proc) -> list[str]:
    return [s for s in proc.stderr.splitlines() if s.startswith("error")]


def same_as(run: Path, ref: Path) -> None:
    assert rows_of(run) == rows_of(ref)
    pa, pb = params(ref), params(run)
    assert all(torch.equal(pa[k], pb[k]) for k in pa)
    assert summary(run) == summary(ref)


@pytest.mark.parametrize("name", ["trainable.pt", "optimizer.pt", "state.json", "manifest.json"])
def test_a_flipped_byte_in_a_checkpoint_falls_back_to_the_previous_one(
    data, reference, tmp_path, name
):
    run = tmp_path / "run"
    shutil.copytree(reference[0], run)
    flip_byte(run / "checkpoints" / LAST / name)
    proc = finish([*train_args(data, run), "--resume"])
    assert proc.returncode == 0 and "Traceback" not in proc.stderr, proc.stderr
    warning = [s for s in proc.stderr.splitlines() if s.startswith("warning")]
    assert len(warning) == 1 and str(run / "checkpoints" / LAST) in warning[0], proc.stderr
    assert f"resuming from {run / 'checkpoints' / PREVIOUS}" in proc.stdout
    assert (run / "checkpoints" / f"rejected-{LAST}").is_dir()  # kept for inspection
    same_as(run, reference[0])


def test_no_verifying_checkpoint_stops_in_one_line_and_deletes_nothing(data, reference, tmp_path):
    run = tmp_path / "run"
    shutil.copytree(reference[0], run)
    for path in checkpoints(run):
        flip_byte(path / "trainable.pt")
    metrics = (run / "metrics.jsonl").read_bytes()
    proc = finish([*train_args(data, run), "--resume"])
    assert proc.returncode == 2 and "Traceback" not in proc.stderr, proc.stderr
    assert len(errors(proc)) == 1 and "nothing to resume from" in errors(proc)[0]
    assert str(run / "checkpoints" / LAST / "trainable.pt") in errors(proc)[0]
    kept = sorted(p.name for p in (run / "checkpoints").iterdir())
    assert kept == [f"rejected-{PREVIOUS}", f"rejected-{LAST}"]
    assert (run / "metrics.jsonl").read_bytes() == metrics


def test_every_flipped_byte_of_a_manifest_is_detected(tmp_path):
    """Not only the hashes: a changed data-file name or config value in the manifest counts too."""
    from toyopt.llm.checkpoint import CorruptFile, sealed, sha256_file, write_json

    ckpt = tmp_path / "checkpoints" / "step-000003"
    ckpt.mkdir(parents=True)
    (ckpt / "state.json").write_text('{"step": 3}')
    fingerprint = {"config": {"lr": 0.001}, "data": {"sft": {"source": "a.jsonl", "rows": 8}}}
    files = {"state.json": sha256_file(ckpt / "state.json")}
    write_json(ckpt / "manifest.json", sealed({"step": 3, "files": files, **fingerprint}))
    good = (ckpt / "manifest.json").read_bytes()
    assert manifest_of(ckpt)["config"] == {"lr": 0.001}
    for at in range(len(good)):
        (ckpt / "manifest.json").write_bytes(good[:at] + bytes([good[at] ^ 1]) + good[at + 1 :])
        with pytest.raises(CorruptFile, match="manifest.json"):
            manifest_of(ckpt)


def test_checkpoints_are_ordered_by_step_number_not_by_name(tmp_path):
    for step in (999_999, 1_000_000, 2):
        (tmp_path / "checkpoints" / f"step-{step:06d}").mkdir(parents=True)
    (tmp_path / "checkpoints" / "step-x").mkdir()
    assert [p.name for p in checkpoints(tmp_path)] == ["step-000002", "step-999999", "step-1000000"]


def test_resuming_with_changed_data_is_refused_naming_what_changed(data, tmp_path):
    mine = tmp_path / "data"
    shutil.copytree(data, mine)
    run = tmp_path / "run"
    args = [*train_args(mine, run), "--steps", "6"]
    assert finish(args).returncode == 0
    rows = (mine / "s.jsonl").read_text().splitlines(keepends=True)
    (mine / "s.jsonl").write_text("".join(rows[:-1]))  # one SFT row fewer
    before = snapshot(run)
    proc = finish([*args, "--resume"])
    assert proc.returncode == 2 and len(errors(proc)) == 1, proc.stderr
    assert "changed data (sft_train: 38 rows, now 37)" in errors(proc)[0], errors(proc)
    assert snapshot(run) == before


def test_resuming_with_a_changed_config_is_refused_naming_the_field(data, reference, tmp_path):
    run = tmp_path / "run"
    shutil.copytree(reference[0], run)
    before = snapshot(run)
    proc = finish([*train_args(data, run), "--resume", "--lr", "0.01"])
    assert proc.returncode == 2 and len(errors(proc)) == 1, proc.stderr
    assert "--resume with a different config (lr)" in errors(proc)[0], errors(proc)
    assert snapshot(run) == before


@pytest.mark.parametrize("name", ["ref_logps.pt", "metrics.jsonl"])
def test_a_damaged_reference_or_metrics_log_is_named_before_training(
    data, reference, tmp_path, name
):
    run = tmp_path / "run"
    shutil.copytree(reference[0], run)
    flip_byte(run / name, at=0.3)
    before = snapshot(run)
    proc = finish([*train_args(data, run), "--resume"])
    assert proc.returncode == 2 and "Traceback" not in proc.stderr, proc.stderr
    assert len(errors(proc)) == 1 and str(run / name) in errors(proc)[0], proc.stderr
    assert snapshot(run) == before


def start(args: list[str], **extra: str) -> subprocess.Popen:
    return subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=env(**extra))  # fmt: skip


def wait_for(ready, proc: subprocess.Popen, seconds: float = 240) -> None:
    deadline = time.monotonic() + seconds
    while not ready():
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() < deadline
        time.sleep(0.01)


def test_a_second_writer_is_refused_at_once_and_the_first_run_is_intact(data, reference, tmp_path):
    run, hold = tmp_path / "run", tmp_path / "hold"
    hold.write_text("")  # the first run waits in its first checkpoint while this file exists
    first = start(train_args(data, run), TOYOPT_CHECKPOINT_HOLD=str(hold))
    wait_for(lambda: list((run / "checkpoints").glob(".tmp-step-*")), first)
    attempts = [[], ["--resume"], ["--overwrite"]]
    with ThreadPoolExecutor(3) as pool:
        seconds = time.monotonic()
        procs = list(pool.map(lambda extra: finish([*train_args(data, run), *extra]), attempts))
        seconds = time.monotonic() - seconds
    assert first.poll() is None  # the refusals came while the first run was still training
    for proc in procs:
        assert proc.returncode == 2 and len(errors(proc)) == 1, proc.stderr
        assert f"{run} is in use by another toyopt process (pid {first.pid})" in errors(proc)[0]
    hold.unlink()
    first.communicate(timeout=300)
    assert first.returncode == 0
    same_as(run, reference[0])  # no interleaved, duplicated or deleted rows
    print(f"three refusals in {seconds:.1f} s")


@pytest.mark.parametrize(
    "signum, status, where",
    [(signal.SIGINT, 130, "between steps"), (signal.SIGTERM, 143, "in a checkpoint write")],
)
def test_ctrl_c_and_sigterm_stop_in_one_line_and_resume_exactly(
    data, reference, tmp_path, signum, status, where
):
    run, hold = tmp_path / "run", tmp_path / "hold"
    if where == "between steps":
        proc = start(train_args(data, run))
        wait_for(lambda: step_rows(run) >= 8, proc)
        expect = (
            r"interrupted at step \d+; continue with --resume \(from the checkpoint at step \d+\)"
        )
    else:  # held in the first checkpoint (step 3), half written
        hold.write_text("")
        proc = start(train_args(data, run), TOYOPT_CHECKPOINT_HOLD=str(hold))
        wait_for(lambda: list((run / "checkpoints").glob(".tmp-step-*")), proc)
        expect = r"interrupted at step 3; continue with --resume \(from the start\)"
    proc.send_signal(signum)
    _, err = proc.communicate(timeout=120)
    lines = [s for s in err.splitlines() if s.strip()]
    assert proc.returncode == status and "Traceback" not in err, err
    assert re.fullmatch(expect, lines[-1]), err
    done = finish([*train_args(data, run), "--resume"])
    assert done.returncode == 0, done.stderr
    same_as(run, reference[0])


@pytest.fixture
def small_disk(tmp_path, reference):
    """A tmpfs with room for the run's inputs and about two checkpoints, not three."""
    size = sum(f.stat().st_size for f in (reference[0] / "checkpoints" / LAST).iterdir())
    mount = tmp_path / "disk"
    mount.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={int(2.6 * size) // 1024}k",
                           "tmpfs", str(mount)], capture_output=True, text=True)  # fmt: skip
    if done.returncode != 0:
        pytest.skip(f"cannot mount a small tmpfs here ({done.stderr.strip()})")
    yield mount
    subprocess.run(["umount", str(mount)], check=True)


def test_a_full_disk_stops_in_one_line_naming_the_path_and_loses_nothing(
    data, reference, tmp_path, small_disk
):
    run = small_disk / "run"
    proc = finish(train_args(data, run))
    assert proc.returncode == 2 and "Traceback" not in proc.stderr, proc.stderr
    assert len(errors(proc)) == 1 and str(small_disk) in errors(proc)[0], proc.stderr
    assert "No space left" in errors(proc)[0] or "could not write" in errors(proc)[0]
    good = checkpoints(run)
    assert good and all(manifest_of(p) for p in good)  # what was written verifies
    moved = tmp_path / "moved"
    shutil.copytree(run, moved)  # room again: continue on another disk
    done = finish([*train_args(data, moved), "--resume"])
    assert done.returncode == 0, done.stderr
    same_as(moved, reference[0])


def test_overwrite_deletes_only_what_a_run_created(data, tmp_path):
    run = tmp_path / "run"
    args = [*train_args(data, run), "--steps", "3"]
    assert finish(args).returncode == 0
    (run / "notes.txt").write_text("mine")
    (run / "data").mkdir()
    (run / "data" / "mine.jsonl").write_text("{}\n")
    (run / "checkpoints" / "step-000003" / "trainable.pt").write_bytes(b"")  # the run's own
    proc = finish([*args, "--overwrite"])
    assert proc.returncode == 0, proc.stderr
    assert (run / "notes.txt").read_text() == "mine"
    assert (run / "data" / "mine.jsonl").read_text() == "{}\n"
    assert manifest_of(run / "checkpoints" / "step-000003")  # rewritten, whole


@pytest.mark.parametrize("extra", [[], ["--overwrite"], ["--resume"]])
def test_a_directory_the_trainer_did_not_create_is_refused_untouched(data, tmp_path, extra):
    folder = tmp_path / "model"
    folder.mkdir()
    (folder / "config.json").write_text('{"model_type": "llama"}')
    (folder / "model.safetensors").write_bytes(os.urandom(64))
    before = sorted(os.listdir(folder)), snapshot(folder)
    proc = finish([*train_args(data, folder), *extra])
    assert proc.returncode == 2 and len(errors(proc)) == 1, proc.stderr
    assert f"{folder} is not empty and is not a toyopt run directory" in errors(proc)[0]
    assert (sorted(os.listdir(folder)), snapshot(folder)) == before
