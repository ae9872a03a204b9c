"""The sweep command's layout (what the figures read) and the divergence stop."""

import json

import numpy as np
import pytest

from toyopt.llm.__main__ import main
from toyopt.llm.train import Diverged, step_row


def test_sweep_writes_optima_runs_and_table(tmp_path, capsys):
    out = tmp_path / "sweep"
    args = ["sweep", "--steps", "6", "--rules", "alright,maxright", "--lams", "0.25,0.75",
            "--output-dir", str(out), "--batch-size", "2", "--max-length", "32", "--eval-every", "3",
            "--max-rows", "40", "--threads", "1", "--no-progress"]  # fmt: skip
    assert main(args) == 0
    optima = json.loads((out / "optima.json").read_text())
    assert {"sft", "dpo", "eval_sft", "eval_dpo"} <= set(optima)
    result = json.loads((out / "sweep.json").read_text())
    table = result["rows"]
    record = result["provenance"]
    assert {"commit", "torch", "transformers", "peft", "device", "date"} <= set(record)
    assert "thread(s)" in record["device"]
    assert [(r["rule"], r["lam"]) for r in table] == [
        ("alright", 0.25), ("maxright", 0.25), ("alright", 0.75), ("maxright", 0.75)
    ]  # fmt: skip
    # only the rule runs sit directly under the sweep directory (the figures read that level)
    runs = sorted(d.name for d in out.iterdir() if (d / "config.json").exists())
    assert runs == sorted(f"{r['rule']}-lam{r['lam']:g}" for r in table)
    for r in table:
        run = out / f"{r['rule']}-lam{r['lam']:g}"
        config = json.loads((run / "config.json").read_text())
        assert (config["rule"], config["lam"], config["steps"], config["seed"]) == (
            r["rule"],
            r["lam"],
            6,
            0,
        )
        rows = [json.loads(s) for s in (run / "metrics.jsonl").read_text().splitlines()]
        assert [x["step"] for x in rows if "objective" in x] == list(range(6))
        assert [x["step"] for x in rows if "eval_sft" in x] == [0, 3, 6]
        assert r["ideal_distance"] == pytest.approx(np.hypot(r["gap_sft"], r["gap_dpo"]))
    assert (
        json.loads((out / "maxright-lam0.25" / "optima.json").read_text())["sft"] == optima["sft"]
    )
    printed = capsys.readouterr().out
    assert "ideal_distance" in printed
    assert printed.rstrip().splitlines()[-1].startswith("provenance: commit ")


def test_sequential_runs_are_paired_with_lam_as_in_the_paper():
    from toyopt.llm.sweep import paired_switch

    assert paired_switch("sequential-dpo-sft", 0.25, 400) == 100  # T_dpo:T_sft = 1:3
    assert paired_switch("sequential-sft-dpo", 0.25, 400) == 300  # SFT first, DPO gets 100
    assert paired_switch("alright", 0.25, 400) is None


def test_a_non_finite_loss_stops_naming_step_and_objective():
    weights = {"sft": np.array([0.0]), "dpo": np.array([1.0])}
    with pytest.raises(Diverged, match="step 7: the dpo loss is nan"):
        step_row(7, weights, {"dpo": np.array([np.nan])}, None)
