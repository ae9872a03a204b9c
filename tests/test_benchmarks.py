"""The benchmark scripts run end to end in a tiny mode, so they cannot rot (no timing asserted:
the numbers depend on the machine; the structure and the counted quantities do not)."""

import re

import pytest

from benchmarks import rules_cost, scaling, toy, vs_trl


def rows(text: str) -> list[list[str]]:
    """Body rows of the Markdown tables in ``text``."""
    out = []
    for line in text.splitlines():
        if line.startswith("| ") and not re.match(r"\| (rule|variant|job|model) \|", line):
            out.append([c.strip() for c in line.strip("|").split("|")])
    return out


def test_rules_cost_counts_forward_passes():
    args = ["--steps", "10", "--warmup", "0", "--repeats", "1", "--mem-steps", "2"]
    args += ["--mem-repeats", "1", "--batch-size", "2", "--rules", "maxright K=10"]
    text = rules_cost.main(args)
    got = {r[0]: r for r in rows(text)}
    assert set(got) == {"sequential", "maxright K=10"}
    assert got["sequential"][4] == "1.00"  # one forward per step
    # a refresh every 10 steps adds one no-grad forward; the chosen objective's pass is reused
    assert got["maxright K=10"][4] == "1.10"


def test_vs_trl_runs_ours_and_trl():
    pytest.importorskip("trl", reason="trl is a benchmark-only dependency (pip install trl)")
    text = vs_trl.main(["--steps", "2", "--warmup", "0", "--repeats", "1", "--batch-size", "2",
                        "--max-length", "32", "--variants", "ours sft", "trl sft"])  # fmt: skip
    got = {r[0]: r for r in rows(text)}
    assert set(got) == {"ours sft", "trl sft"}
    assert float(got["ours sft"][2]) > 0 and float(got["trl sft"][2]) > 0  # tokens per step


def test_toy_and_scaling_tables():
    text = toy.main(["--jobs", "none", "--steps", "20", "--seeds", "5", "--repeats", "1"])
    assert {r[0] for r in rows(text)} >= {"alright", "mix", "sequential-sft-dpo"}
    text = scaling.main(["--quick", "--repeats", "1", "--models", "tiny"])
    assert [(r[1], r[2]) for r in rows(text)] == [("2", "16"), ("4", "16"), ("2", "32")]


def test_alright_gap_report_and_the_hand_written_loop(tmp_path):
    """The trainer's ALRIGHT equals ALRIGHT written out by hand (same coins, batches, losses,
    clipping and AdamW), parameter for parameter; the report's table has one row per λ."""
    from benchmarks import alright_gap, alright_probes

    gap = alright_probes.hand_loop_gap(tmp_path / "loop", steps=6)
    assert gap["max_param_diff"] == 0.0 and abs(gap["dpo_share"] - 0.5) < 0.02
    args = ["--steps", "8", "--seeds", "1", "--lams", "0.25,0.75", "--only", "defaults"]
    text = alright_gap.main([*args, "--out", str(tmp_path / "report")])
    body = [r for r in rows(text) if r[0] == "(the gap)"]
    assert [r[2] for r in body] == ["0.25", "0.75"] and all(r[-1] in ("yes", "no") for r in body)
