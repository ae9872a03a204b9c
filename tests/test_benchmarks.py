"""The benchmark scripts run end to end in a tiny mode, so they cannot rot (no timing asserted:
the numbers depend on the machine; the structure and the counted quantities do not)."""

import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from benchmarks import gpu_check, gpu_run, rules_cost, scaling, toy, vs_trl

ROOT = Path(__file__).resolve().parents[1]


def rows(text: str) -> list[list[str]]:
    """Body rows of the Markdown tables in ``text``."""
    out = []
    for line in text.splitlines():
        if line.startswith("| ") and not re.match(r"\| (rule|variant|job|model|step) \|", line):
            out.append([c.strip() for c in line.strip("|").split("|")])
    return out


def test_rules_cost_counts_forward_passes():
    args = ["--steps", "10", "--warmup", "0", "--repeats", "1", "--mem-steps", "2"]
    args += ["--mem-repeats", "1", "--batch-size", "2", "--rules", "maxright K=10"]
    text = rules_cost.main(args)
    got = {r[0]: r for r in rows(text)}
    assert set(got) == {"sequential", "maxright K=10"}
    assert got["sequential"][5:7] == ["1.00", "1.00"]  # one forward and one backward per step
    # a refresh every 10 steps adds one no-grad forward; the chosen objective's pass is reused
    assert got["maxright K=10"][5:7] == ["1.10", "1.00"]


def test_rules_cost_counts_the_validation_passes_of_maxright():
    args = ["--steps", "10", "--warmup", "0", "--repeats", "1", "--mem-steps", "2"]
    args += ["--mem-repeats", "1", "--batch-size", "2", "--rules", "maxright validation 16",
             "maxright validation 64 K=10"]  # fmt: skip
    got = {r[0]: r for r in rows(rules_cost.main(args))}
    # the step's own forward and, per objective, the 16 rows (pairs) in one chunk of the split
    assert got["maxright validation 16"][5:7] == ["3.00", "1.00"]
    # every 10 steps, per objective, the 64 rows (pairs) in two chunks
    assert got["maxright validation 64 K=10"][5:7] == ["1.40", "1.00"]


def test_rules_cost_keeps_heavy_refresh_steps_and_drops_stalls():
    """A refresh of a validation split every 10 steps costs 5 ordinary steps: it is part of the
    rule's mean, while a stalled ordinary step is dropped (robust_mean alone drops both)."""
    seconds = [1.0] * 18 + [5.0, 5.0]
    compared = [False] * 18 + [True, True]
    res = {"seconds": seconds, "compared": compared}
    assert rules_cost.step_mean(res) == pytest.approx((18 + 10) / 20)
    stalled = {"seconds": [*seconds[:17], 30.0, 5.0, 5.0], "compared": compared}
    assert rules_cost.step_mean(stalled) == pytest.approx(1.4)  # the 30 s step counts as 1 s
    assert rules_cost.robust_mean(seconds) == 1.0  # what the mean over all steps would say


def test_rules_cost_workers_count_mix_backwards_and_measure_the_summed_design():
    setup = {"model": "tiny", "threads": 1, "batch_size": 2}  # in this process: seconds
    timed = rules_cost.timing_worker(["sequential", "mix"], 2, 0, setup)
    assert timed["mix"]["objective"] == ["mix", "mix"] and timed["mix"]["backwards_per_step"] == 2
    assert timed["sequential"]["backwards_per_step"] == timed["mix"]["forwards_per_step"] / 2 == 1
    mem = {k: rules_cost.memory_worker(k, 2, setup) for k in ("mix", rules_cost.SUMMED)}
    assert mem[rules_cost.SUMMED]["saved_peak"] > mem["mix"]["saved_peak"] > 0
    assert all(m["peak_rss"] > 0 and m["setup_rss"] > 0 for m in mem.values())


def test_a_mix_step_holds_the_larger_graph_not_both():
    """Bytes saved for backward (benchmarks.memory.SavedTensors) in one step on step 0's
    batches: Mix's one-objective-at-a-time backward holds max(SFT, DPO), the summed one SFT + DPO."""
    from test_llm_trainer import make_backend

    from benchmarks.memory import SavedTensors
    from toyopt.llm.models import load_model

    peaks = {}
    for name, w, separate in [("sft", (1.0, 0.0), True), ("dpo", (0.0, 1.0), True),
                              ("mix", (0.5, 0.5), True), ("summed", (0.5, 0.5), False)]:  # fmt: skip
        model, tok = load_model("tiny")
        backend = make_backend(model, tok, torch.optim.SGD(model.parameters(), lr=0.0))
        backend.separate_backward = separate
        with SavedTensors(model) as saved:
            backend.step({"sft": np.array([w[0]]), "dpo": np.array([w[1]])}, 0.0, 0)
        assert saved.live == 0  # every graph was freed by its backward pass
        peaks[name] = saved.peak
    assert peaks["mix"] == max(peaks["sft"], peaks["dpo"])
    assert peaks["summed"] == pytest.approx(peaks["sft"] + peaks["dpo"], rel=0.01)


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


def test_gpu_check_refuses_cleanly_without_cuda(tmp_path):
    out = tmp_path / "gpu.md"
    env = {**os.environ, "CUDA_VISIBLE_DEVICES": ""}  # no GPU, even on a machine that has one
    cmd = [sys.executable, "-m", "benchmarks.gpu_check", "--out", str(out)]
    done = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 1
    assert done.stderr.startswith("gpu_check: needs a CUDA GPU") and done.stderr.count("\n") == 1
    assert "Traceback" not in done.stderr and done.stdout == "" and not out.exists()


def test_gpu_check_cpu_smoke_trains_every_rule_and_writes_the_table(tmp_path):
    out = tmp_path / "gpu.md"
    text = gpu_check.main(["--cpu-smoke", "--out", str(out)])  # 2 rows x 32 tokens, 4 steps
    assert (
        out.read_text() == text and "Command: `python -m benchmarks.gpu_check --cpu-smoke" in text
    )
    table = [r for r in rows(text) if len(r) == 11]
    assert [r[0] for r in table] == rules_cost.DEFAULT_RULES  # one row per rule, none failed
    got = {r[0]: r for r in table}
    assert got["sequential"][1] == "2/2/0" and got["mix"][1] == "0/0/4"
    assert all(r[5] == "n/a" and float(r[2]) > 0 and float(r[6]) > 0 for r in table)
    # forward-only passes: only MAXRIGHT's refreshes, every step (exact) or at step 0 of 4 (K=10)
    fwd = {k: float(r[4]) for k, r in got.items()}
    assert fwd["sequential"] == fwd["alright"] == fwd["mix"] == 0
    assert fwd["maxright exact"] > 0 and fwd["maxright K=10"] == fwd["maxright exact"] / 4
    # trained tokens per step: no padding (2 rows x 32 tokens; a pair is 2 rows)
    per_type = {r[0]: r[3] for r in rows(text) if len(r) == 6}
    assert per_type == {"sft": "64", "dpo": "128", "mix": "192"}


def test_flops_per_token_of_the_gpu_model():
    s = gpu_check.SIZES["gpu"]
    # N = 24 x (2 x 1024^2 [q, o] + 2 x 1024^2 [k, v] + 3 x 1024 x 2816 [gate, up, down])
    #     + 32000 x 1024 [output projection] = 24 x 12,845,056 + 32,768,000
    assert gpu_check.matmul_params(s) == 341_049_344
    # 6N + 12 x 24 x 1024 x 1024 = 2,046,296,064 + 301,989,888
    assert gpu_check.flops_per_token(s, 1024) == 2_348_285_952
    # 2N + 4 x 24 x 1024 x 1024 = 682,098,688 + 100,663,296
    assert gpu_check.flops_per_token(s, 1024, train=False) == 782_761_984


def test_matmul_params_are_the_linear_weights_of_the_model_built():
    s = {**gpu_check.SIZES["smoke"], "kv_heads": 2}  # grouped-query attention: smaller k, v
    tok = type("Tok", (), {"pad_token_id": 0, "eos_token_id": 1})()
    model = gpu_run.llama(s, tok, 32)
    linear = sum(m.weight.numel() for m in model.modules() if isinstance(m, torch.nn.Linear))
    assert gpu_check.matmul_params(s) == linear  # the tied output projection counted once


@pytest.mark.parametrize(
    "name, peak",
    [("NVIDIA H100 80GB HBM3", 989), ("NVIDIA H100 PCIe", 756), ("NVIDIA H200", 989),
     ("NVIDIA A100-SXM4-80GB", 312), ("NVIDIA L40S", 362), ("NVIDIA A10G", None),
     ("NVIDIA H100 80GB HBM3 MIG 1g.10gb", None)],
)  # fmt: skip
def test_peak_flops_table(name, peak):
    got = gpu_check.peak_tflops(name)
    assert (got and got[0]) == peak


def test_mfu_out_of_memory_and_time_budget_rows(monkeypatch):
    s, seq = gpu_check.SIZES["smoke"], 32
    base = {"seconds": [0.1, 0.2], "objective": ["sft", "dpo"], "trained": [64, 128],
            "forward_only": [0, 0], "loss": {"sft": 1.0}, "peak_cuda_allocated_bytes": 2**30,
            "status": "ok"}  # fmt: skip

    def oom(*args):
        raise torch.OutOfMemoryError("CUDA out of memory")

    monkeypatch.setattr(gpu_run, "measure_rule", oom)
    results = {"sequential": base, **gpu_run.worker(["mix"], {}, time.time() + 60)}
    results |= gpu_check.run_rules(["alright"], {}, deadline=time.time() - 1, one_process=False)
    got = {r[0]: r for r in gpu_check.rule_rows(results, s, seq, peak=1e-3)}
    # 96 tokens per step x 737,280 FLOPs (6 x 114,688 + 12 x 2 x 64 x 32) / 0.15 s / 1e9 FLOP/s
    assert got["sequential"][5] == "47.2 %"
    assert got["mix"][1].startswith("out of GPU memory") and got["mix"][2:] == ["–"] * 9
    assert got["alright"][1] == "not started (time budget)"


def test_benchmarks_md_keeps_the_gpu_section_that_no_cpu_module_writes():
    from benchmarks import run_all

    sections = run_all.read_sections(ROOT / "BENCHMARKS.md")
    assert sections["gpu_check"].startswith("### GPU check")
    marks = [x.splitlines()[0] for x in run_all.assemble({"gpu_check": "g\n", **sections})]
    assert marks[-1] == "<!-- section: gpu_check -->" and len(marks) == len(set(marks))


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
    assert text.rstrip().splitlines()[-1].startswith("Provenance: commit ")


def test_profile_step_accounts_for_every_operation():
    from benchmarks import profile_step

    assert profile_step.group_of("aten::mm", [[8, 576], [576, 1536]]) == "mm: MLP"
    assert profile_step.group_of("aten::mm", [[8, 576], [576, 49152]]).endswith("(vocabulary)")
    text = profile_step.main(["--model", "tiny", "--batch-size", "2"])
    rows = {r.split(" | ")[0][2:]: r for r in text.splitlines() if r.startswith("| ")}
    known = {g for g, _ in profile_step.MM_GROUPS} | {"mm: other", "attention (SDPA)", "optimizer"}
    assert {"mm: other", "attention (SDPA)"} <= set(rows)  # the tiny model's products, SDPA
    assert all(
        g in known or g.startswith(("log-softmax", "other ops", "**", "what", "---")) for g in rows
    )


def test_the_paper_table_prices_time_by_step_type_from_the_measured_ratio():
    row = ["mix", "1.2e+04", "+97.4 %", "0/0/8", "1.07 [1.04–1.1]", "2.00", "2.00", "3.11e+03",
           "+12.8 %", "2.04e+03", "919", "+0.0 %", "+0.0 % (mix)"]  # fmt: skip
    (got,) = rules_cost.paper_rows([row], {"mix": 1.0704})
    assert got == ["mix", "+7.0 %", "+97.4 %", rules_cost.PAPER["mix"][0], "+0.0 % (mix)",
                   "+12.8 %", rules_cost.PAPER["mix"][1]]  # fmt: skip


def test_levers_measure_tokens_and_the_loss_difference_of_bf16():
    from benchmarks import levers

    args = ["--model", "tiny", "--steps", "3", "--repeats", "1"]
    text = levers.main(args + ["--variants", "fp32, 1 thread", "bf16, 1 thread"])
    got = {r[0]: r for r in rows(text)}
    assert set(got) == {"fp32, 1 thread", "bf16, 1 thread"}
    assert got["fp32, 1 thread"][5] == "1.00"  # the reference against itself
    assert got["fp32, 1 thread"][7:] == ["0.0e+00 / 0.0e+00"] * 2
    # bf16 autocast changes the held-out losses already at step 0, and they are reported
    assert got["bf16, 1 thread"][7] != "0.0e+00 / 0.0e+00"


def test_every_benchmarks_md_section_states_its_provenance():
    """A regenerated section carries the provenance line; an older one says it predates it."""
    from benchmarks import run_all

    sections = run_all.read_sections(ROOT / "BENCHMARKS.md")
    assert sections and all("\nProvenance: " in text for text in sections.values())
    stamped = run_all.stamped("### A table\n\n| a |\n|---|\n| 1 |\n", ["--threads", "1"])
    note = stamped.splitlines()[-1]
    assert note.startswith("Provenance: commit ") and "torch " in note and "1 thread(s)" in note


def test_maxright_target_scores_a_study_on_its_sets_and_fresh_rows(tmp_path):
    from benchmarks import maxright_target
    from toyopt.llm.__main__ import main as llm

    out = tmp_path / "study"
    args = ["study", "--model", "tiny", "--steps", "4", "--eval-every", "4", "--lams", "0.5",
            "--seeds", "1", "--rules", "maxright,mix", "--max-rows", "24", "--batch-size", "2",
            "--threads", "1", "--no-progress", "--output-dir", str(out)]  # fmt: skip
    assert llm(args) == 0
    text = maxright_target.main([str(out), "--fresh", "16"])
    assert "--fresh 16`" in text and re.search(r"16 fresh [01]/1\.", text)
    (row,) = [r for r in rows(text) if r[0] == "0.5"]
    assert len(row) == 2 + 3 * 3 + 2  # λ, seed; train, held-out, fresh; SFT share, switches
    for i in (4, 7, 10):  # each ratio is MAXRIGHT's gap over Mix's, the only other rule
        assert row[i - 1].startswith("mix ")
        ratio = float(row[i - 2]) / float(row[i - 1][4:])
        assert float(row[i]) == pytest.approx(ratio, rel=0.02, abs=0.01)


@pytest.mark.parametrize("mode", ["rotate:8", "batch:16"])
def test_maxright_denoise_modes_train(tmp_path, mode):
    """The diagnostic's value sources run through the trainer (batch:N once broke unnoticed).
    rotate:8 compares a 16-row validation split in two chunks: at step 0 both fresh (the split's
    value), later one chunk per step, so the compared values move but lag the split's."""
    out = tmp_path / "run"
    env = {**os.environ, "MAXRIGHT_DENOISE": mode}
    cmd = [sys.executable, "-m", "benchmarks.maxright_denoise", "train", "--model", "tiny",
           "--rule", "maxright", "--lam", "0.5", "--optima", "zero", "--steps", "4",
           "--eval-every", "2", "--max-rows", "60", "--threads", "1", "--no-progress",
           "--output-dir", str(out)]  # fmt: skip
    if mode.startswith("rotate"):
        cmd += ["--validation-rows", "16"]
    done = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    rows_ = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    steps = [r for r in rows_ if "objective" in r]
    assert len(steps) == 4 and all(np.isfinite(r["value_sft"]) for r in steps)
    if mode.startswith("rotate"):
        first = next(r for r in rows_ if r.get("step") == 0 and "val_sft" in r)
        assert steps[0]["value_sft"] == pytest.approx(first["val_sft"], rel=1e-6)
        assert steps[1]["value_sft"] != steps[0]["value_sft"]
        at2 = next(r for r in rows_ if r.get("step") == 2 and "val_sft" in r)
        assert steps[2]["value_sft"] != pytest.approx(at2["val_sft"], rel=1e-6)  # a stale chunk
