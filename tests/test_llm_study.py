"""The study command: resumable run by run, CSV results, and a report regenerated from them."""

from __future__ import annotations

import csv
import json

import pytest

from figures import llm_study
from figures.__main__ import main as figures_main
from toyopt.llm.__main__ import main
from toyopt.llm.study import converged, derive, ideal_point, parse_seeds
from toyopt.llm.study_report import forgetting, maxright_target, write_block

TINY = ["--model", "tiny", "--steps", "4",
        "--eval-every", "2", "--max-rows", "24", "--batch-size", "2", "--max-length", "32",
        "--lams", "0.25", "--seeds", "0,1", "--rules", "sequential-sft-dpo,alright,mix"]  # fmt: skip


def study(tmp_path, capsys, *extra):
    code = main(["study", *TINY, "--output-dir", str(tmp_path / "study"), *extra])
    out = capsys.readouterr()
    assert code == 0, out.err
    return out


def test_a_study_writes_csv_results_and_never_redoes_a_finished_run(tmp_path, capsys):
    out = study(tmp_path, capsys)
    results = tmp_path / "study" / "results"
    runs = list(csv.DictReader((results / "runs.csv").open()))
    # 2 seeds x (3 rules + the 2 single-objective runs)
    assert sorted((r["seed"], r["rule"]) for r in runs) == sorted(
        (s, rule) for s in "01" for rule in
        ("sequential-sft-dpo", "alright", "mix", "optimum-sft", "optimum-dpo")
    )  # fmt: skip
    curves = list(csv.DictReader((results / "curves.csv").open()))
    assert {int(c["step"]) for c in curves} == {0, 2, 4}
    prov = json.loads((results / "provenance.json").read_text())
    assert {"commit", "torch", "transformers", "peft", "device", "date"} <= set(prov)
    assert prov["config"]["steps"] == 4 and prov["config"]["model"] == "tiny"
    # another model than SmolLM2 starts from the trainer's defaults, not the study's
    assert (prov["config"]["lora"], prov["config"]["precision"], prov["config"]["lr"]) == (
        False,
        "auto",
        1e-3,
    )
    assert "| 0.25 | alright | 2 |" in out.out
    logs = sorted((tmp_path / "study").rglob("metrics.jsonl"))
    before = {p: (p.stat().st_mtime_ns, p.read_text()) for p in logs}
    # killed after a run's last checkpoint but before its summary: resumed, not retrained
    victim = tmp_path / "study" / "seed-1" / "alright-lam0.25"
    (victim / "summary.json").unlink()
    again = study(tmp_path, capsys)
    assert again.out.count("finished earlier with this config") == 9
    after = {p: (p.stat().st_mtime_ns, p.read_text()) for p in logs}
    victim_log = victim / "metrics.jsonl"
    assert after.pop(victim_log)[1] == before.pop(victim_log)[1]  # resumed: the same rows
    assert after == before  # the others not even opened
    assert (victim / "summary.json").is_file()
    # the same results (peak memory is the resuming process's)
    rerun = list(csv.DictReader((results / "runs.csv").open()))
    assert [{**r, "peak_rss_mib": 0} for r in rerun] == [{**r, "peak_rss_mib": 0} for r in runs]


def test_collect_only_reports_the_finished_runs_of_a_partial_study(tmp_path, capsys):
    args = ["--output-dir", str(tmp_path / "study"), "--results", str(tmp_path / "res")]
    assert main(["study", *TINY, *args, "--collect-only"]) == 2  # nothing finished yet
    assert "no finished run" in capsys.readouterr().err
    assert not (tmp_path / "study").exists()  # and nothing trained
    study(tmp_path, capsys, "--seeds", "0", "--results", str(tmp_path / "res"))
    rows = list(csv.DictReader((tmp_path / "res" / "runs.csv").open()))
    assert main(["study", *TINY, *args, "--collect-only"]) == 0
    assert list(csv.DictReader((tmp_path / "res" / "runs.csv").open())) == rows
    assert {r["seed"] for r in rows} == {"0"}


def test_a_later_checkout_trains_only_what_the_committed_results_lack(tmp_path, capsys):
    """The run directories are gone (a fresh checkout), the results files are committed."""
    import shutil

    res = ["--results", str(tmp_path / "res"), "--seeds", "0"]
    study(tmp_path, capsys, *res, "--rules", "alright,maxright")
    before = list(csv.DictReader((tmp_path / "res" / "runs.csv").open()))
    assert (tmp_path / "res" / "optima-seed-0.json").is_file()
    shutil.rmtree(tmp_path / "study")
    study(tmp_path, capsys, *res, "--rules", "alright,maxright,mix")
    trained = sorted(p.name for p in (tmp_path / "study" / "seed-0").iterdir() if p.is_dir())
    assert trained == ["mix-lam0.25"]  # no optima runs, no run redone
    after = list(csv.DictReader((tmp_path / "res" / "runs.csv").open()))
    assert [r for r in after if r["rule"] != "mix"] == before
    assert [r["rule"] for r in after if r["rule"] == "mix"] == ["mix"]
    curves = list(csv.DictReader((tmp_path / "res" / "curves.csv").open()))
    assert {c["rule"] for c in curves} == {r["rule"] for r in after}
    code = main(["study", *TINY, "--output-dir", str(tmp_path / "other"), *res, "--lr", "0.01"])
    assert code == 2 and "another study config (lr)" in capsys.readouterr().err


def test_a_study_with_another_config_is_refused_naming_the_field(tmp_path, capsys):
    study(tmp_path, capsys)
    code = main(["study", *TINY, "--output-dir", str(tmp_path / "study"), "--lr", "0.01"])
    assert code == 2
    assert "another study config (lr)" in capsys.readouterr().err
    # with results elsewhere, the run directories refuse the change themselves
    code = main(["study", *TINY, "--output-dir", str(tmp_path / "study"), "--lr", "0.01",
                 "--results", str(tmp_path / "elsewhere")])  # fmt: skip
    assert code == 2
    assert "--resume with a different config (lr)" in capsys.readouterr().err


def test_the_report_regenerates_from_the_csv_files_into_a_marked_block(tmp_path, capsys,
                                                                       monkeypatch):  # fmt: skip
    out = study(tmp_path, capsys)
    page = tmp_path / "page.md"
    page.write_text("# Results\n<!-- study:smollm2 -->\nold\n<!-- /study:smollm2 -->\nafter\n")
    results = tmp_path / "study" / "results"
    assert main(["study-report", str(results), "--write", str(page)]) == 0
    text = page.read_text()
    assert "old" not in text and text.endswith("<!-- /study:smollm2 -->\nafter\n")
    assert "| 0.25 | mix | 2 |" in text
    report = out.out[out.out.index("Study") :]
    assert report.split("Provenance")[0] in text
    assert main(["study-report", str(results), "--table-only"]) == 0
    short = capsys.readouterr().out
    assert "| 0.25 | mix | 2 |" in short and "Provenance: commit" in short
    assert "ALRIGHT ≈ Mix" not in short
    with pytest.raises(ValueError, match="no <!-- study:other -->"):
        write_block(page, "other", "x")
    figs = tmp_path / "figs"
    args = ["--only", "study", "--study", str(results), "--out", str(figs), "--no-progress"]
    drawn = {}
    draw = llm_study.objective_space
    monkeypatch.setattr(llm_study, "objective_space",
                        lambda rows, curves, star: drawn.setdefault("star", star) and draw(rows, curves, star))  # fmt: skip
    # the figure's ideal point is the report's: over every run, the single-objective ones
    # included (an optimum run made the best SFT value here, so a star over the rule runs differs)
    with open(results / "runs.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    next(r for r in rows if r["rule"] == "optimum-sft")["eval_sft"] = "1e-09"
    with open(results / "runs.csv", "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    assert figures_main(args) == 0
    assert drawn["star"]["sft"] == 1e-09
    assert {p.name for p in figs.glob("*.png")} == {"study_objective_space.png",
                                                    "study_convergence.png"}  # fmt: skip


def test_seeds_are_a_comma_list_of_distinct_non_negative_integers():
    assert parse_seeds("0, 3") == [0, 3]
    for bad in ("0,0", "-1", "a", ""):
        with pytest.raises(ValueError, match="--seeds"):
            parse_seeds(bad)


def test_convergence_is_a_small_last_quarter_decrease():
    flat = [(0, 2.0), (50, 0.5), (75, 0.41), (100, 0.40)]
    falling = [(0, 2.0), (50, 1.5), (75, 1.0), (100, 0.5)]
    assert converged(flat, 100) == (True, pytest.approx(0.01), pytest.approx(1.6))
    assert converged(falling, 100)[0] is False
    # a rise in the last quarter is not an improvement still to come
    assert converged([(0, 1.0), (75, 0.2), (100, 0.6)], 100)[0] is True
    # a sequential run is judged on its second stage: from the switch (50) on
    stage = [(0, 0.5), (25, 3.0), (50, 3.0), (75, 0.31), (100, 0.3)]
    assert converged(stage, 100, start=50) == (True, pytest.approx(0.01), pytest.approx(2.7))
    # a 25-step stage with evaluations every 25 steps holds none inside: not judged
    assert converged(stage, 100, start=75)[0] is None


def _runs():
    rows = [
        {"seed": 0, "lam": "", "rule": "optimum-sft", "steps": 4, "switch": "",
         "eval_sft": 0.1, "eval_dpo": 2.0},
        {"seed": 0, "lam": "", "rule": "optimum-dpo", "steps": 4, "switch": "",
         "eval_sft": 3.0, "eval_dpo": 0.2},
        {"seed": 0, "lam": 0.5, "rule": "sequential-sft-dpo", "steps": 4, "switch": 2,
         "eval_sft": 1.0, "eval_dpo": 0.3},
        {"seed": 0, "lam": 0.5, "rule": "maxright", "steps": 4, "switch": "",
         "eval_sft": 0.3, "eval_dpo": 0.4},
        {"seed": 0, "lam": 0.5, "rule": "mix", "steps": 4, "switch": "",
         "eval_sft": 0.2, "eval_dpo": 0.6},
    ]  # fmt: skip
    curves = [{"seed": r["seed"], "lam": r["lam"], "rule": r["rule"], "step": s,
               "eval_sft": r["eval_sft"] + (4 - s), "eval_dpo": r["eval_dpo"] + (4 - s)}
              for r in rows for s in (0, 2, 4)]  # fmt: skip
    return rows, curves


def test_measures_against_the_ideal_point_of_all_runs():
    rows, curves = _runs()
    star = ideal_point(rows)
    assert (star["sft"]["value"], star["dpo"]["value"]) == (0.1, 0.2)
    derived = {r["rule"]: r for r in derive(rows, curves)}
    m = derived["maxright"]
    assert m["gap_sft"] == pytest.approx(0.2) and m["gap_dpo"] == pytest.approx(0.2)
    assert m["chebyshev_gap"] == pytest.approx(0.1)
    assert m["f_mix"] == pytest.approx(0.35)
    assert m["ideal_distance"] == pytest.approx(0.2 * 2**0.5)
    assert maxright_target(list(derived.values())) == [
        "λ=0.5: MAXRIGHT 0.100, smallest maxright 0.100 ✓"
    ]


def test_forgetting_is_the_share_of_the_first_stage_gain_undone():
    rows, curves = _runs()
    for c in curves:  # SFT first: 3.0 at 0, 1.0 at the switch, 2.5 at the end: 0.75 undone
        if c["rule"] == "sequential-sft-dpo":
            c["eval_sft"] = {0: 3.0, 2: 1.0, 4: 2.5}[c["step"]]
    assert forgetting(derive(rows, curves), curves) == ["sequential-sft-dpo λ=0.5: 0.75 ✓"]


def test_the_study_writes_under_runs_study_smollm2_by_default(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert main(["study", "--collect-only"]) == 2  # nothing trained, nothing to collect
    assert "runs/study-smollm2: no finished run to collect" in capsys.readouterr().err
