"""``--resume`` never starts a run again silently, and never continues on inputs that changed.

- A run that finished or completed a checkpoint but has none left (``checkpoints/`` deleted,
  its checkpoints renamed or moved away) is refused in one line naming the run, unless
  ``--overwrite``; nothing of it is rewritten. A new directory, or a run killed before its
  first checkpoint, starts from step 0 as before.
- Every checkpoint's manifest fingerprints the files the result depends on (the base model's
  weights, config and tokenizer; ``--ref-model``'s): a change is refused in one line naming
  the option and the file.

The cases call ``toyopt.llm.__main__.main`` in this process with the tiny model.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from test_reliability_writes import cli, one_line, snapshot, train

from toyopt.llm.synthetic import make_rows


@pytest.fixture(scope="module")
def small(tmp_path_factory) -> tuple[Path, Path]:
    """(data folder, a finished 4-step run on it, checkpoints at steps 2 and 4)."""
    d = tmp_path_factory.mktemp("resume-data")
    for name, split in (("s", "sft_train"), ("p", "pref_train")):
        rows = make_rows(split, n=24)
        (d / f"{name}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    run = tmp_path_factory.mktemp("resume-run") / "run"
    from toyopt.llm.__main__ import main

    assert main([str(a) for a in train(d, run)]) == 0
    return d, run


@pytest.fixture
def copy(small, tmp_path) -> tuple[Path, Path]:
    data, done = small
    run = tmp_path / "run"
    shutil.copytree(done, run)
    return data, run


def aside(run: Path, how: str) -> None:
    ckpts = run / "checkpoints"
    if how == "checkpoints deleted":
        shutil.rmtree(ckpts)
    elif how == "checkpoints renamed":  # e.g. kept under names a resume does not read
        for p in list(ckpts.iterdir()):
            p.rename(ckpts / f"saved-{p.name}")
    else:  # killed after its first checkpoint, which was then removed
        shutil.rmtree(ckpts / "step-000004")
        shutil.rmtree(run / "final")
        (run / "summary.json").unlink()
        shutil.rmtree(ckpts / "step-000002")
        rows = (run / "metrics.jsonl").read_text().splitlines(keepends=True)
        (run / "metrics.jsonl").write_text("".join(r for r in rows if json.loads(r)["step"] < 4))


@pytest.mark.parametrize(
    "how", ["checkpoints deleted", "checkpoints renamed", "killed, checkpoint removed"]
)
def test_resume_without_a_checkpoint_is_refused_not_restarted(capsys, copy, how):
    data, run = copy
    aside(run, how)
    before = snapshot(run)
    status, err = cli(capsys, *train(data, run, "--resume"))
    one_line(status, err, run, "no checkpoint to resume from", "--overwrite")
    assert snapshot(run) == before  # metrics, final/ and summary as they were


def test_overwrite_starts_such_a_run_again(capsys, copy):
    data, run = copy
    aside(run, "checkpoints deleted")
    status, err = cli(capsys, *train(data, run, "--resume", "--overwrite"))
    assert status == 0, err
    assert (run / "checkpoints" / "step-000004").is_dir() and (run / "summary.json").is_file()


def test_resume_starts_a_new_directory_or_a_run_killed_before_its_first_checkpoint(
    capsys, small, tmp_path
):
    data, done = small
    fresh = tmp_path / "fresh"
    assert cli(capsys, *train(data, fresh, "--resume"))[0] == 0  # what the study relies on
    early = tmp_path / "early"  # killed after step 0, before the checkpoint at step 2
    shutil.copytree(done, early)
    shutil.rmtree(early / "checkpoints")
    shutil.rmtree(early / "final")
    (early / "summary.json").unlink()
    rows = (early / "metrics.jsonl").read_text().splitlines(keepends=True)
    (early / "metrics.jsonl").write_text("".join(rows[:2]))  # eval at 0, step 0
    assert cli(capsys, *train(data, early, "--resume"))[0] == 0
    steps = [[json.loads(s)["step"] for s in (r / "metrics.jsonl").read_text().splitlines()]
             for r in (early, done)]  # fmt: skip
    assert steps[0] == steps[1]  # started again from step 0, every row once


@pytest.fixture(scope="module")
def base_model(tmp_path_factory) -> Path:
    """The tiny model saved as a model directory (weights, config, tokenizer)."""
    from toyopt.llm.models import load_model

    folder = tmp_path_factory.mktemp("base") / "tiny-dir"
    model, tok = load_model("tiny")
    model.save_pretrained(folder)
    tok.save_pretrained(folder)
    return folder


def changed_weights(folder: Path) -> None:
    """The same model file with one weight moved (a base model updated in place)."""
    from safetensors.torch import load_file, save_file

    path = folder / "model.safetensors"
    weights = load_file(path)
    name = sorted(weights)[0]
    weights[name] = weights[name] + 0.01
    save_file(weights, path, metadata={"format": "pt"})


@pytest.mark.parametrize("changed", ["model.safetensors", "tokenizer_config.json"])
def test_a_lora_run_whose_base_model_changed_is_refused(
    capsys, small, base_model, tmp_path, changed
):
    data, _ = small
    base = tmp_path / "base"
    shutil.copytree(base_model, base)
    run = tmp_path / "run"
    extra = ("--model", base, "--lora", "--lora-r", "2")
    assert cli(capsys, *train(data, run, *extra))[0] == 0
    if changed == "model.safetensors":
        changed_weights(base)
    else:
        cfg = json.loads((base / changed).read_text())
        (base / changed).write_text(json.dumps({**cfg, "model_max_length": 77}))
    before = snapshot(run)
    status, err = cli(capsys, *train(data, run, *extra, "--resume"))
    one_line(status, err, f"--model {base}: {changed} changed since the run started")
    assert snapshot(run) == before


def test_a_reference_model_that_changed_under_no_precompute_ref_is_refused(
    capsys, small, base_model, tmp_path
):
    data, _ = small
    ref = tmp_path / "ref"
    shutil.copytree(base_model, ref)
    run = tmp_path / "run"
    extra = ("--ref-model", ref, "--no-precompute-ref")
    assert cli(capsys, *train(data, run, *extra))[0] == 0
    changed_weights(ref)
    before = snapshot(run)
    status, err = cli(capsys, *train(data, run, *extra, "--resume"))
    one_line(status, err, f"--ref-model {ref}: model.safetensors changed since the run started")
    assert snapshot(run) == before


def test_an_unchanged_model_directory_resumes(capsys, small, base_model, tmp_path):
    data, _ = small
    run = tmp_path / "run"
    extra = ("--model", base_model, "--lora", "--lora-r", "2")
    assert cli(capsys, *train(data, run, *extra))[0] == 0
    shutil.rmtree(run / "checkpoints" / "step-000004")
    status, err = cli(capsys, *train(data, run, *extra, "--resume"))
    assert status == 0, err
    manifest = json.loads((run / "checkpoints" / "step-000004" / "manifest.json").read_text())
    assert "model.safetensors" in manifest["inputs"]["model"]["files"]
