"""``validation_rows``: a fixed validation split carved from each objective's training rows, on
which MAXRIGHT compares its weighted gaps (against f* measured there) instead of on the step's
training batches (docs/tiny-targets.md, "Comparing on a validation split")."""

import json
from functools import partial

import numpy as np
import pytest
import torch
from test_llm_trainer import assert_resume_equals_full_run, rows_of
from test_llm_trainer import config as trainer_config  # (tests/ is on sys.path)

from toyopt.llm.models import load_model
from toyopt.llm.optima import estimate
from toyopt.llm.prepare import prepare
from toyopt.llm.setup import build_rule, read_optima
from toyopt.llm.train import run
from toyopt.rules import larger_gap, weighted_gaps

torch.set_num_threads(1)
config = partial(trainer_config, max_rows=60)  # the trainer tests' config, on fewer rows


def test_the_split_is_fixed_disjoint_and_leaves_the_other_splits_alone(tmp_path):
    _, tok = load_model("tiny")
    plain = prepare(config(tmp_path), tok, tmp_path / "a")
    split = prepare(config(tmp_path, validation_rows=8), tok, tmp_path / "b")
    again = prepare(config(tmp_path, validation_rows=8, seed=5), tok, tmp_path / "c")
    assert plain.val == {} and set(split.val) == {"sft", "dpo"}
    assert split.val == again.val and split.train == again.train  # not a function of the seed
    assert split.eval == plain.eval
    for name, per_row in (("sft", 1), ("dpo", 2)):  # a pair is two rows
        assert len(split.val[name]) == 8 * per_row
        assert len(split.train[name]) == len(plain.train[name]) - 8 * per_row
        pieces = [split.val[name][i : i + per_row] for i in range(0, 8 * per_row, per_row)]
        rest = [split.train[name][i : i + per_row]
                for i in range(0, len(split.train[name]), per_row)]  # fmt: skip
        # the two splits partition the training rows, in their original order
        assert sorted(map(repr, pieces + rest)) == sorted(
            repr(plain.train[name][i : i + per_row])
            for i in range(0, len(plain.train[name]), per_row)
        )
    assert split.fingerprint["sft_val"] == {"source": "held out of sft_train", "sha256": None,
                                            "rows": 8}  # fmt: skip
    assert "sft_val" not in plain.fingerprint  # runs without the split resume as before


def test_optima_record_validation_values_that_maxright_reads(tmp_path):
    cfg = config(tmp_path, validation_rows=8, steps=4, eval_every=4)
    optima = estimate(cfg, tmp_path / "optima", log=lambda s: None)
    for k in ("sft", "dpo"):
        last = [r for r in rows_of(tmp_path / "optima" / f"optima-{k}") if "val_sft" in r][-1]
        assert optima[f"val_{k}"] == last[f"val_{k}"]
    path = str(tmp_path / "optima" / "optima.json")
    assert read_optima(path, split="val") == {"sft": optima["val_sft"], "dpo": optima["val_dpo"]}
    assert read_optima(path) == {"sft": optima["sft"], "dpo": optima["dpo"]}


def test_maxright_compares_the_validation_values_with_their_optima(tmp_path):
    optima = tmp_path / "optima.json"
    star = {"sft": 0.0, "dpo": 0.0, "val_sft": 4.5, "val_dpo": 0.1}
    optima.write_text(json.dumps(star))
    out = run(config(tmp_path, rule="maxright", lam=0.5, steps=12, optima=str(optima),
                     validation_rows=8, lr=3e-3), log=lambda s: None)  # fmt: skip
    rows = rows_of(out)
    steps = [r for r in rows if "objective" in r]
    evals = {r["step"]: r for r in rows if "val_sft" in r}
    assert sorted(evals) == [0, 4, 8, 12]
    for t in (0, 4, 8):  # the values a step compares are the model's before that step
        assert steps[t]["value_sft"] == pytest.approx(evals[t]["val_sft"], rel=1e-6)
        assert steps[t]["value_dpo"] == pytest.approx(evals[t]["val_dpo"], rel=1e-6)
    used = {"sft": 4.5, "dpo": 0.1}
    assert json.loads((out / "optima.json").read_text()) == used
    for r in steps:
        values = {k: np.array([r[f"value_{k}"]]) for k in ("sft", "dpo")}
        w = larger_gap(0.5, weighted_gaps(0.5, used, values))
        assert r["objective"] == ("dpo" if w["dpo"][0] > 0 else "sft")
    assert {"sft", "dpo"} <= {r["objective"] for r in steps}


def test_stale_maxright_compares_the_validation_values_every_k_steps(tmp_path):
    """``--refresh-every 4``: the split is scored at steps 0, 4, 8 only, and between refreshes
    MAXRIGHT keeps the objective it chose (no training loss enters a validation gap)."""
    optima = tmp_path / "optima.json"
    optima.write_text(json.dumps({"sft": 0.0, "dpo": 0.0, "val_sft": 4.5, "val_dpo": 0.1}))
    out = run(config(tmp_path, rule="maxright", lam=0.5, steps=12, optima=str(optima),
                     validation_rows=8, refresh_every=4, lr=3e-3), log=lambda s: None)  # fmt: skip
    rows = rows_of(out)
    steps = [r for r in rows if "objective" in r]
    evals = {r["step"]: r for r in rows if "val_sft" in r}
    assert [t for t, r in enumerate(steps) if "value_sft" in r] == [0, 4, 8]
    for t in (0, 4, 8):
        assert steps[t]["value_dpo"] == pytest.approx(evals[t]["val_dpo"], rel=1e-6)
        assert {r["objective"] for r in steps[t : t + 4]} == {steps[t]["objective"]}
    assert {"sft", "dpo"} <= {r["objective"] for r in steps}


def test_stale_maxright_on_the_split_holds_the_gaps_of_its_refresh_and_resumes_exactly(tmp_path):
    """Between refreshes both gaps stay those of the last refresh's validation values (the steps'
    training losses never enter), in the checkpoint too; killed there, it resumes exactly."""
    optima = tmp_path / "optima.json"
    optima.write_text(json.dumps({"sft": 0.0, "dpo": 0.0, "val_sft": 4.5, "val_dpo": 0.1}))
    cfg = config(tmp_path, "full", rule="maxright", lam=0.5, steps=12, optima=str(optima),
                 validation_rows=8, refresh_every=4, save_every=6, lr=3e-3)  # fmt: skip
    assert build_rule(cfg).hold
    full = run(cfg, log=lambda s: None)
    steps = [r for r in rows_of(full) if "objective" in r]
    saved = json.loads((full / "checkpoints" / "step-000006" / "state.json").read_text())
    held = saved["rule_state"]  # after steps 4 and 5, the refresh at step 4
    assert held["gap_sft"] == [0.5 * (steps[4]["value_sft"] - 4.5)]
    assert held["gap_dpo"] == [0.5 * (steps[4]["value_dpo"] - 0.1)]
    assert_resume_equals_full_run(cfg, full, tmp_path)


def test_other_rules_only_lose_the_rows(tmp_path):
    """Mix ignores f* and never compares: with the split it trains as before, on fewer rows."""
    out = run(config(tmp_path, rule="mix", validation_rows=8), log=lambda s: None)
    rows = rows_of(out)
    assert all("value_sft" not in r for r in rows)
    assert [r["step"] for r in rows if "val_dpo" in r] == [0, 4, 8]
