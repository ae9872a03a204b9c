"""``--report-to``: a tiny run's metrics rows come back from TensorBoard's own reader and from
Trackio's local database (a real ``python -m toyopt.llm train`` process, offline); no tracker
library is imported when none is asked for; a resume may change the trackers."""

from __future__ import annotations

import dataclasses
import json
import math
import shutil
import sqlite3
import subprocess
import sys

import pytest
from trainer_runs import env

from toyopt.llm.config import TrainConfig
from toyopt.llm.tracking import parse, scalars
from toyopt.llm.train import run

TIMING = ("wall_time", "step_seconds", "peak_rss_bytes")


def config(tmp_path, name="run", **kw) -> TrainConfig:
    base = dict(output_dir=str(tmp_path / name), steps=6, batch_size=2, max_length=24,
                eval_every=3, save_every=3, progress=False, threads=1, eval_batch_size=64,
                max_rows=40, rule="alright", lam=0.25, optima="zero")  # fmt: skip
    return TrainConfig(**{**base, **kw})


def rows_of(run_dir) -> list[dict]:
    return [json.loads(s) for s in (run_dir / "metrics.jsonl").read_text().splitlines()]


def read_tensorboard(run_dir) -> dict[str, list[tuple[int, float]]]:
    """Every scalar series of the run's event files, as TensorBoard's reader returns them."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(str(run_dir / "tensorboard"))
    acc.Reload()
    return {tag: [(e.step, e.value) for e in acc.Scalars(tag)] for tag in acc.Tags()["scalars"]}


def expected(rows, lam=0.25, ideal=(0.0, 0.0)) -> dict[str, list[tuple[int, float]]]:
    """The series the rows should give (the names of toyopt.llm.tracking's docstring)."""
    out: dict[str, list] = {}
    for r in rows:
        for k, v in scalars(r, lam, {"sft": ideal[0], "dpo": ideal[1]}).items():
            out.setdefault(k, []).append((r["step"], v))
    return out


def assert_same_series(got, want) -> None:
    assert set(got) == set(want)
    for tag, series in want.items():
        assert [s for s, _ in got[tag]] == [s for s, _ in series], tag
        assert [v for _, v in got[tag]] == pytest.approx([v for _, v in series], rel=1e-6), tag


def test_tensorboard_returns_every_metrics_row(tmp_path):
    done = run(config(tmp_path, report_to="tensorboard"), log=lambda s: None)
    rows = rows_of(done)
    got = read_tensorboard(done)
    assert_same_series(got, expected(rows))
    for tag in ("train/loss_sft", "train/on_sft", "train/on_dpo", "train/lr",
                "train/step_seconds", "eval/sft", "eval/f_mix", "eval/ideal_distance"):  # fmt: skip
        assert tag in got
    last = [r for r in rows if "eval_sft" in r][-1]
    f_mix = 0.25 * last["eval_dpo"] + 0.75 * last["eval_sft"]
    assert got["eval/f_mix"][-1] == (6, pytest.approx(f_mix, rel=1e-6))
    assert got["eval/ideal_distance"][-1][1] == pytest.approx(
        math.hypot(last["eval_sft"], last["eval_dpo"]), rel=1e-6
    )
    chose = [r["objective"] for r in rows if "objective" in r]
    assert [v for _, v in got["train/on_dpo"]] == [float(c == "dpo") for c in chose]


def test_a_resume_may_change_the_trackers_and_purges_what_it_redoes(tmp_path):
    full = run(config(tmp_path, "full"), log=lambda s: None)
    assert not (full / "tensorboard").exists()  # none: nothing written
    crashed = tmp_path / "crashed"
    shutil.copytree(full, crashed)
    shutil.rmtree(crashed / "checkpoints" / "step-000006")
    shutil.rmtree(crashed / "final")
    cfg = dataclasses.replace(config(tmp_path, "crashed"), resume=True, report_to="tensorboard")
    resumed = run(cfg, log=lambda s: None)
    drop = lambda rows: [{k: v for k, v in r.items() if k not in TIMING} for r in rows]  # noqa: E731
    assert drop(rows_of(resumed)) == drop(rows_of(full))
    got = read_tensorboard(resumed)  # the resumed part only: steps 3, 4, 5 and evaluation 6
    assert [s for s, _ in got["train/lr"]] == [3, 4, 5]
    assert [s for s, _ in got["eval/sft"]] == [6]


def test_trackio_logs_offline_into_a_local_directory(tmp_path):
    out, store = tmp_path / "run", tmp_path / "trackio"
    args = [sys.executable, "-m", "toyopt.llm", "train", "--report-to", "trackio", "--steps", "4",
            "--eval-every", "2", "--save-every", "0", "--batch-size", "2", "--max-length", "24",
            "--max-rows", "40", "--threads", "1", "--no-progress", "--lam", "0.25",
            "--optima", "zero", "--output-dir", str(out)]  # fmt: skip
    local = env(TRACKIO_DIR=str(store), TRACKIO_PROJECT="p", HF_HUB_OFFLINE="1")
    for remote in ("TRACKIO_SPACE_ID", "TRACKIO_SERVER_URL"):  # what would send it anywhere
        local.pop(remote, None)
    proc = subprocess.run(args, capture_output=True, text=True, timeout=300, env=local)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.splitlines()[-1] == f"run directory: {out}"
    assert "Trackio" not in proc.stdout and "Trackio" in proc.stderr  # its messages: stderr
    db = sqlite3.connect(store / "p.db")
    logged = db.execute("select run_name, step, metrics from metrics order by id").fetchall()
    assert {name for name, _, _ in logged} == {str(out)}
    got: dict[str, list] = {}
    for _, step, metrics in logged:
        for k, v in json.loads(metrics).items():
            if k.startswith(("train/", "eval/")):
                got.setdefault(k, []).append((step, v))
    assert_same_series(got, expected(rows_of(out)))
    (config_text,) = db.execute("select config from configs").fetchone()
    recorded = json.loads(config_text)
    assert recorded["rule"] == "alright" and recorded["report_to"] == "trackio"
    assert {"commit", "torch", "device", "date"} <= set(recorded["provenance"])


def test_no_tracker_library_is_imported_unless_asked(tmp_path):
    code = (
        "import sys; from toyopt.llm.__main__ import main;"
        f" rc = main(['train', '--steps', '2', '--eval-every', '2', '--batch-size', '2',"
        f" '--max-length', '24', '--max-rows', '40', '--threads', '1', '--no-progress',"
        f" '--output-dir', {str(tmp_path / 'run')!r}]);"
        " print(sorted(m for m in ('tensorboard', 'trackio') if m in sys.modules)); sys.exit(rc)"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=300, env=env())  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip().splitlines()[-1] == "[]"


@pytest.mark.parametrize(
    "spec, names",
    [("none", []), ("tensorboard", ["tensorboard"]), ("tensorboard, trackio", ["tensorboard", "trackio"])],
)  # fmt: skip
def test_report_to_takes_none_a_tracker_or_a_list(spec, names):
    assert parse(spec) == names


def test_a_yaml_list_of_trackers_is_read(tmp_path):
    from toyopt.llm.config import _coerce

    assert _coerce("report_to", ["tensorboard", "trackio"]) == "tensorboard,trackio"
