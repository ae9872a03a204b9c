"""Crashes, divergence and determinism of the LLM trainer, with real processes.

- A run killed with SIGKILL at seeded random points (and once while a checkpoint is half
  written) and resumed with ``--resume`` each time ends with exactly the parameters, metrics rows
  and summary of an uninterrupted run (wall-clock fields aside), no row duplicated or lost.
- A half-written checkpoint (``.tmp-*``) never replaces a good one and is never resumed from.
- lr = 1e15 makes the loss (or the parameters) non-finite within two steps: exit status 3, one
  line naming the step and the objective, the last checkpoint with finite parameters kept.
- Two runs of the same config and seed write identical metrics files (wall-clock fields aside).
"""

from __future__ import annotations

import json
import os
import re
import shutil

import numpy as np
import pytest
import torch
from trainer_runs import STEPS, finish, kill_when, params, rows_of, step_rows, summary, train_args

# CI kills 3 times (+1 mid-checkpoint); TOYOPT_CRASH_KILLS=N (and _SEED) for a longer campaign
KILL_SEED = int(os.environ.get("TOYOPT_CRASH_SEED", "8"))
KILLS = int(os.environ.get("TOYOPT_CRASH_KILLS", "3"))


def test_same_config_and_seed_give_identical_metrics(reference):
    a, b = reference
    assert rows_of(a) == rows_of(b)
    assert len(rows_of(a)) == STEPS + STEPS // 4 + 1  # a row per step, evals at 0, 4, …, 24
    pa, pb = params(a), params(b)
    assert all(torch.equal(pa[k], pb[k]) for k in pa)


def test_killed_and_resumed_runs_end_exactly_like_an_uninterrupted_run(data, reference, tmp_path):
    ref = reference[0]
    run = tmp_path / "crashed"
    points = sorted(np.random.default_rng(KILL_SEED).integers(1, STEPS, size=KILLS).tolist())
    outcomes = []
    first = train_args(data, run)
    for i, n in enumerate(points):
        args = first if i == 0 else [*first, "--resume"]
        outcomes.append(kill_when(args, lambda n=n: step_rows(run) >= n))
        print(f"kill {i}: after {step_rows(run)} step rows (aimed at {n}), checkpoints",
              sorted(p.name for p in (run / "checkpoints").glob("*")))  # fmt: skip
    # one kill while a checkpoint is half written: trainable.pt saved, optimizer.pt not yet
    good = sorted(p.name for p in (run / "checkpoints").glob("step-*"))
    torn = lambda: set((run / "checkpoints").glob(".tmp-step-*"))  # noqa: E731
    before = torn()  # an earlier kill may have hit a checkpoint write already
    outcomes.append(
        kill_when([*first, "--resume"], lambda: torn() - before, TOYOPT_CHECKPOINT_PAUSE="30")
    )
    print("mid-checkpoint kill:", sorted(p.name for p in (run / "checkpoints").glob("*")))
    assert outcomes == ["killed"] * (KILLS + 1)  # each kill point hit a running trainer
    halves = list(torn() - before)
    assert halves and not (halves[0] / "optimizer.pt").exists()
    complete = sorted(p.name for p in (run / "checkpoints").glob("step-*"))
    assert complete and set(complete) >= set(good[-1:])  # the good one survived the torn write
    proc = finish([*first, "--resume"])
    assert proc.returncode == 0, proc.stderr
    assert rows_of(run) == rows_of(ref)  # no row lost or duplicated, the same numbers
    assert not list((run / "checkpoints").glob(".tmp-*"))  # torn writes cleaned up
    pa, pb = params(ref), params(run)
    assert all(torch.equal(pa[k], pb[k]) for k in pa)
    assert summary(run) == summary(ref)


@pytest.mark.parametrize(
    "lr, save_every, first_bad",
    [("1e15", "1", "loss"), ("1e30", "2", "parameters")],  # found by trying: both stop at step 1
)
def test_a_non_finite_loss_stops_with_the_step_and_objective_and_keeps_the_checkpoint(
    data, tmp_path, lr, save_every, first_bad
):
    """lr = 1e30 overflows the parameters in an update whose loss was finite; before the fix the
    step-2 checkpoint saved them (non-finite) over the good one."""
    run = tmp_path / "diverged"
    proc = finish(train_args(data, run, "--lr", lr, "--save-every", save_every))
    lines = [s for s in proc.stderr.splitlines() if s.startswith("error")]
    assert proc.returncode == 3 and "Traceback" not in proc.stderr, proc.stderr
    assert len(lines) == 1, proc.stderr
    loss = re.fullmatch(
        r"error: step (\d+): the (sft|dpo) loss is (nan|inf|-inf); stopped.*", lines[0]
    )
    update = re.fullmatch(
        r"error: step (\d+): the parameters are no longer finite after the (sft|dpo) update.*",
        lines[0],
    )
    assert loss if first_bad == "loss" else update, lines[0]
    step = int((loss or update).group(1))
    logged = step if loss else step + 1  # a non-finite loss is not logged
    rows = rows_of(run)
    assert [r["step"] for r in rows if "objective" in r] == list(range(logged))
    kept = sorted((run / "checkpoints").glob("step-*"))
    assert len(kept) == (1 if first_bad == "loss" else 0)  # after step 0; none is good at lr 1e30
    named = f"the last good checkpoint is {kept[-1]}" if kept else "no checkpoint was saved"
    assert lines[0].endswith(named), lines[0]
    for path in kept:
        state = json.loads((path / "state.json").read_text())
        assert path.name == f"step-{state['step']:06d}" and state["step"] <= step
        saved = torch.load(path / "trainable.pt", weights_only=True)
        assert all(torch.isfinite(v).all() for v in saved.values())  # only good ones kept


@pytest.mark.parametrize("damage", ["metrics cut short", "torn config"])
def test_a_damaged_run_directory_is_named_not_resumed(data, reference, tmp_path, capsys, damage):
    """What a kill cannot do but a disk or a person can: a resume refuses in one line instead of
    padding the metrics log with zero bytes or failing inside the JSON reader."""
    from toyopt.llm.__main__ import main

    run = tmp_path / "damaged"
    shutil.copytree(reference[0], run)
    if damage == "metrics cut short":
        target = run / "metrics.jsonl"
        target.write_text("".join(target.read_text().splitlines(keepends=True)[:5]))
    else:
        target = run / "config.json"
        target.write_text(target.read_text()[:40])
    status = main([*train_args(data, run)[3:], "--resume"])
    err = capsys.readouterr().err.strip()
    assert status == 2 and "\n" not in err and str(target) in err, err


def test_no_process_syncs_a_checkpoint_folder_while_another_still_writes_it(tmp_path, monkeypatch):
    """Every process lists and syncs ``.tmp-step-*`` only after a barrier that follows all the
    writes: a main process's temporary file (written, then renamed to state.json) must not be
    listed by another process and vanish before its fsync (seen as "No such file" on process 1)."""
    from toyopt.llm import checkpoint

    class Engine:  # one process's view: the barriers it passes, the files it writes
        is_main, waits, wrote_at = True, 0, []

        def wait(self):
            self.waits += 1

        def save_state(self, model, optimizer, folder):
            (folder / "weights.bin").write_bytes(b"weights")
            self.wrote_at.append(self.waits)

    engine, synced_at = Engine(), []
    real_fsync = checkpoint.fsync

    def fsync(path):
        if ".tmp-" in str(path):
            synced_at.append(engine.waits)
        real_fsync(path)

    monkeypatch.setattr(checkpoint, "fsync", fsync)
    final = checkpoint.save_checkpoint(engine, tmp_path, 3, None, None, {"rule_state": {}}, {})
    assert sorted(p.name for p in final.iterdir()) == ["manifest.json", "state.json", "weights.bin"]
    assert len(synced_at) == 2 and min(synced_at) > max(engine.wrote_at)
