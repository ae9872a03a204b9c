"""The trainer with K data sources (toyopt.llm.objectives): the tiny model trained on two SFT sets
and one preference set with each rule, from the command line and from YAML; the rules choose as
the K-objective rules of toyopt.rules; two sources named sft and dpo are the two-objective run
bit for bit; a run resumes exactly; bad configs are refused in one line."""

import dataclasses
import json

import numpy as np
import pytest
import torch
from test_llm_trainer import (  # noqa: E402  (tests/ is on sys.path)
    assert_resume_equals_full_run,
    config,
    rows_of,
)

from toyopt.llm.__main__ import main
from toyopt.llm.config import TrainConfig
from toyopt.llm.objectives import batch_stream
from toyopt.llm.synthetic import make_data
from toyopt.llm.train import run
from toyopt.rules import KAlRight

torch.set_num_threads(1)
WEIGHTS = {"copy": 0.3, "ok": 0.2, "prefs": 0.5}


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    """Two SFT styles that conflict on the first response token (the bare copy and "OK. ..."),
    and the preference set whose chosen answers open with "Sure!"."""
    root = tmp_path_factory.mktemp("k3data")
    plain = make_data(root / "plain")
    ok = make_data(root / "ok", seed=1, sft_preamble="OK.")
    return {"copy": ("sft", plain["sft_train"]), "ok": ("sft", ok["sft_train"]),
            "prefs": ("sigmoid", plain["pref_train"])}  # fmt: skip


def sources(data, **kinds) -> dict:
    return {
        name: {"kind": kinds.get(name, kind), "data": str(path)}
        for name, (kind, path) in data.items()
    }


def k_config(tmp_path, data, name="run", **kw) -> TrainConfig:
    kw.setdefault("objectives", sources(data))
    return config(tmp_path, name, weights=dict(WEIGHTS), max_rows=64, **kw)


def steps_of(out) -> list[dict]:
    return [r for r in rows_of(out) if "objective" in r]


@pytest.mark.parametrize("rule", ["sequential", "alright", "maxright", "mix"])
def test_train_runs_three_sources_with_each_rule_from_the_command_line(
    tmp_path, data, rule, capsys
):
    steps, seed = 9, 5
    out = tmp_path / rule
    args = ["train", "--rule", rule, "--steps", str(steps), "--seed", str(seed), "--batch-size",
            "4", "--max-length", "32", "--eval-every", "9", "--max-rows", "64", "--no-progress",
            "--threads", "1", "--output-dir", str(out), "--optima", "zero",
            "--weights", ",".join(f"{k}={w}" for k, w in WEIGHTS.items())]  # fmt: skip
    for name, (kind, path) in data.items():
        args += ["--objective", f"{name}={kind}:{path}"]
    assert main(args) == 0
    rows = steps_of(out)
    picked = [r["objective"] for r in rows]
    evals = [r for r in rows_of(out) if "eval_copy" in r]
    assert [e["step"] for e in evals] == [0, steps]
    assert all(set(e) >= {"eval_copy", "eval_ok", "eval_prefs"} for e in evals)
    assert all(np.isfinite(e[f"eval_{k}"]) for e in evals for k in WEIGHTS)
    if rule == "sequential":  # equal stages in the order the objectives were given
        assert picked == ["copy"] * 3 + ["ok"] * 3 + ["prefs"] * 3
    elif rule == "alright":
        rule_obj = KAlRight(WEIGHTS)
        block = rule_obj.choose_block(rule_obj.init(np.array([seed])), 0, steps)
        assert picked == [next(k for k in WEIGHTS if block[k][t, 0] > 0) for t in range(steps)]
    elif rule == "mix":  # every gradient every step
        assert picked == ["mix"] * steps
        assert all({"loss_copy", "loss_ok", "loss_prefs"} <= set(r) for r in rows)
    else:  # the largest weighted gap λ_k (f_k − 0) of the step's values
        for r in rows:
            gaps = {k: w * r[f"value_{k}"] for k, w in WEIGHTS.items()}
            assert r["objective"] == max(gaps, key=gaps.get)
            assert r[f"loss_{r['objective']}"] == r[f"value_{r['objective']}"]  # forward reused
    for r in rows:  # a one-objective step computes that objective's loss only
        if r["objective"] != "mix":
            assert [k for k in WEIGHTS if f"loss_{k}" in r] == [r["objective"]]
    summary = json.loads((out / "summary.json").read_text())
    assert summary["weights"] == WEIGHTS
    assert sum(summary[f"grad_{k}_per_step"] for k in WEIGHTS) == pytest.approx(
        3.0 if rule == "mix" else 1.0
    )


def test_every_preference_loss_trains_as_a_source_from_yaml(tmp_path, data):
    """The YAML form (objectives with kinds and an eval file, weights as a mapping); each kind's
    held-out value is its loss (the reference-free simpo too)."""
    plain = data["prefs"][1]
    kinds = ("ipo", "hinge", "robust", "simpo")
    spec = {
        "objectives": {
            "copy": {"kind": "sft", "data": str(data["copy"][1]),
                     "eval": str(plain.parent / "sft_eval.jsonl")},
            **{k: {"kind": k, "data": str(plain), "eval": str(plain.parent / "pref_eval.jsonl")}
               for k in kinds},  # fmt: skip
        },
        "beta": 0.1,
        "weights": {"copy": 0.2, **dict.fromkeys(kinds, 0.2)},
        "rule": "mix", "steps": 2, "batch_size": 2, "max_length": 32, "eval_every": 2,
        "max_rows": 16, "progress": False, "threads": 1,
        "output_dir": str(tmp_path / "yaml"),
    }  # fmt: skip
    import yaml

    spec["objectives"]["robust"]["label_smoothing"] = 0.1  # its own settings
    spec["objectives"]["simpo"].update(beta=2.0, simpo_gamma=0.5)
    (tmp_path / "k.yaml").write_text(yaml.safe_dump(spec))
    assert main(["train", "--config", str(tmp_path / "k.yaml")]) == 0
    first, last = [r for r in rows_of(tmp_path / "yaml") if "eval_copy" in r]
    assert first["eval_ipo"] == pytest.approx((1 / (2 * 0.1)) ** 2)  # policy = reference
    assert first["eval_hinge"] == pytest.approx(1.0)  # max(0, 1 − β·0)
    assert first["eval_robust"] == pytest.approx(np.log(2))  # ε log 2 + (1 − ε) log 2, / (1 − 2ε)
    assert first["eval_simpo"] > 0 and all(np.isfinite(v) for v in last.values())
    saved = json.loads((tmp_path / "yaml" / "config.json").read_text())
    assert saved["objectives"]["ipo"]["eval"].endswith("pref_eval.jsonl")


def test_two_sources_named_sft_and_dpo_are_the_two_objective_run_bit_for_bit(tmp_path, data):
    plain = data["copy"][1].parent
    two = dict(sft_data=str(plain / "sft_train.jsonl"), pref_data=str(plain / "pref_train.jsonl"))
    named = {"sft": {"kind": "sft", "data": two["sft_data"]},
             "dpo": {"kind": "sigmoid", "data": two["pref_data"]}}  # fmt: skip
    for rule in ("alright", "maxright"):
        base = config(
            tmp_path, f"two-{rule}", rule=rule, lam=0.7, optima="zero", max_rows=64, **two
        )
        k = config(tmp_path, f"k-{rule}", rule=rule, objectives=named, optima="zero", max_rows=64,
                   weights={"sft": 1 - 0.7, "dpo": 0.7})  # fmt: skip
        quiet = dict(log=lambda s: None)
        assert rows_of(run(base, **quiet)) == rows_of(run(k, **quiet))


def test_a_k_source_run_resumes_exactly(tmp_path, data):
    cfg = k_config(tmp_path, data, "full", rule="maxright", optima="zero", steps=8, save_every=4,
                   refresh_every=3)  # fmt: skip
    assert_resume_equals_full_run(cfg, run(cfg, log=lambda s: None), tmp_path)


def test_optima_trains_each_source_alone(tmp_path, data, capsys):
    cfg = k_config(tmp_path, data, "optima", rule="mix", steps=3, eval_every=3)
    from toyopt.llm.optima import estimate

    result = estimate(cfg, tmp_path / "optima", log=lambda s: None)
    assert set(result) >= {*WEIGHTS, *(f"eval_{k}" for k in WEIGHTS)}
    for k in WEIGHTS:  # each single run stepped on its own objective only
        rows = steps_of(tmp_path / "optima" / f"optima-{k}")
        assert {r["objective"] for r in rows} == {k}
    optima = tmp_path / "optima" / "optima.json"  # MAXRIGHT reads the file and compares
    out = run(k_config(tmp_path, data, "mr", rule="maxright", optima=str(optima), steps=4),
              log=lambda s: None)  # fmt: skip
    assert json.loads((out / "optima.json").read_text()) == {k: result[k] for k in WEIGHTS}
    for r in steps_of(out):
        gaps = {k: w * (r[f"value_{k}"] - result[k]) for k, w in WEIGHTS.items()}
        assert r["objective"] == max(gaps, key=gaps.get)


def test_maxright_compares_every_source_on_its_validation_split(tmp_path, data):
    cfg = k_config(tmp_path, data, "optima", rule="mix", steps=3, eval_every=3, validation_rows=6)
    from toyopt.llm.optima import estimate

    result = estimate(cfg, tmp_path / "optima", log=lambda s: None)
    assert set(result) >= {f"val_{k}" for k in WEIGHTS}
    out = run(dataclasses.replace(cfg, rule="maxright", optima=str(tmp_path / "optima" /
              "optima.json"), output_dir=str(tmp_path / "mr"), steps=4), log=lambda s: None)  # fmt: skip
    star = {k: result[f"val_{k}"] for k in WEIGHTS}
    assert json.loads((out / "optima.json").read_text()) == star
    first = rows_of(out)[0]  # the step-0 evaluation: the values step 0 compares
    for r in steps_of(out):
        gaps = {k: w * (r[f"value_{k}"] - star[k]) for k, w in WEIGHTS.items()}
        assert r["objective"] == max(gaps, key=gaps.get)
    assert all(steps_of(out)[0][f"value_{k}"] == pytest.approx(first[f"val_{k}"]) for k in WEIGHTS)


def test_each_source_draws_from_its_own_stream():
    assert batch_stream("sft") == 1 and batch_stream("dpo") == 2  # as the two objectives always
    streams = {batch_stream(n) for n in ("copy", "ok", "prefs", "sft", "dpo")}
    assert len(streams) == 5 and min(streams - {1, 2}) > 99  # above the reserved small streams


BAD = [
    (["--objective", "a=sft:x.jsonl"], "at least two data sources"),
    (["--objective", "a=sft", "--objective", "b=sft:y"], "expected NAME=KIND:FILE"),
    (["--objective", "a=sft:x", "--objective", "a=sft:y"], "'a' is named twice"),
    (["--objective", "a=sft:x", "--objective", "b=dpo:y", "--weights", "a=0.5,b=0.5"],
     "unknown kind 'dpo'"),
    (["--objective", "a=sft:x", "--objective", "b=ipo:y"], "--objective needs --weights"),
    (["--objective", "a=sft:x", "--objective", "b=ipo:y", "--weights", "a=0.5,c=0.5"],
     "the objectives are ['a', 'b']"),
    (["--objective", "a=sft:x", "--objective", "b=ipo:y", "--weights", "a=0.6,b=0.6"],
     "must sum to 1"),
    (["--objective", "a=sft:x", "--objective", "b=ipo:y", "--weights", "a=0.5,b=0.5",
      "--lam", "0.3"], "give --weights"),
    (["--objective", "a=sft:x", "--objective", "b=ipo:y", "--weights", "a=0.5,b=0.5",
      "--sft-data", "s.jsonl"], "--sft-data is for the two objectives"),
    (["--objective", "a=sft:x", "--objective", "b=ipo:y", "--weights", "a=0.5,b=0.5",
      "--rule", "sequential-sft-dpo"], "choose one of sequential, alright, maxright, mix"),
    (["--objective", "a=sft:x", "--objective", "b=ipo:y", "--weights", "a=0.5,b=0.5",
      "--label-smoothing", "0.1"], "not by ipo"),
    (["--weights", "a=0.5,b=0.5"], "--weights and --stage-steps go with --objective"),
    (["--objective", "mix=sft:x", "--objective", "b=ipo:y", "--weights", "mix=0.5,b=0.5"],
     "objective mix: the name is taken by the trainer"),
    (["--objective", "a=sft:x", "--objective", "b=ipo:y", "--weights", "a=0.5,b=0.5",
      "--loss-type", "ipo"], "--loss-type is the loss of dpo"),
    (["--objective", "a=sft:x", "--objective", "b=ipo:y", "--weights", "a=0.5,b=0.5",
      "--rule", "sequential", "--stage-steps", "a=-1,b=401"], "the stage of a has a negative"),
    (["--objective", "a=sft:x", "--objective", "b=ipo:y", "--weights", "a=0.5,b=0.5",
      "--stage-steps", "a=200,b=200"], "--stage-steps is for rule sequential"),
    (["--objective", "a=sft:x", "--objective", "b=ipo:y", "--weights", "a=0.5,b=0.5",
      "--rule", "sequential", "--stage-steps", "a=200,b=100"], "summing to --steps 400, got 300"),
    (["--objective", "a=sft:x", "--objective", "b=ipo:y", "--weights", "a=0.5,b=0.5",
      "--rule", "sequential", "--stage-steps", "a=400"], "give each one stage"),
    (["--objective", "a=sft:x", "--objective", "b=ipo:y", "--weights", "a=0.5,b=0.5",
      "--rule", "sequential", "--stage-steps", "a=1.5,b=2"], "expected NAME=STEPS"),
    (["--loss-type", "kto"], "unknown loss_type 'kto'"),
]  # fmt: skip


@pytest.mark.parametrize("extra, message", BAD)
def test_bad_k_source_configs_are_refused_in_one_line(tmp_path, capsys, extra, message):
    status = main(["train", "--output-dir", str(tmp_path / "r"), *extra])
    err = capsys.readouterr().err.strip()
    assert status == 2 and message in err and len(err.splitlines()) == 1, err
    assert not (tmp_path / "r").exists()


def test_sweep_refuses_k_sources(tmp_path, capsys):
    status = main(["sweep", "--objective", "a=sft:x", "--objective", "b=ipo:y", "--stage-steps",
                   "a=1,b=1", "--output-dir", str(tmp_path / "s")])  # fmt: skip
    assert status == 2 and "run train once per rule" in capsys.readouterr().err


def test_the_config_round_trips_through_its_saved_yaml(tmp_path, data):
    from toyopt.llm.config import from_sources

    cfg = k_config(tmp_path, data, rule="alright")
    saved = tmp_path / "saved.yaml"
    import yaml

    saved.write_text(yaml.safe_dump(cfg.to_dict()))
    again = from_sources(type("Args", (), {"config": str(saved)})())
    assert dataclasses.asdict(again) == dataclasses.asdict(cfg)


def docs_blocks(kind: str) -> list[str]:
    """The ``kind`` code blocks of docs/llm-training.md's section on several data sources."""
    from pathlib import Path

    text = (Path(__file__).resolve().parent.parent / "docs" / "llm-training.md").read_text()
    section = text.split("## Other preference losses and several data sources")[1].split("\n## ")[0]
    return [b.split("\n", 1)[1] for b in section.split("```")[1::2] if b.startswith(kind)]


def test_the_documented_three_source_example_runs(tmp_path, monkeypatch):
    """The docs' commands, as written, in a fresh directory (a short budget added to train)."""
    import shlex

    monkeypatch.chdir(tmp_path)
    (commands,) = docs_blocks("bash")
    for line in commands.replace("\\\n", " ").splitlines():
        args = shlex.split(line.split("#")[0])[3:]  # python -m toyopt.llm ...
        if args[0] == "train":
            args += ["--steps", "3", "--max-rows", "40", "--no-progress", "--max-length", "32"]
        assert main(args) == 0
    assert {"eval_copy", "eval_ok", "eval_prefs"} <= set(rows_of(tmp_path / "runs" / "three")[-1])
    (block,) = docs_blocks("yaml")
    import yaml

    spec = yaml.safe_load(block)
    spec["optima"] = "zero"  # the documented file is made by the optima command
    (tmp_path / "three.yaml").write_text(yaml.safe_dump(spec))
    from toyopt.llm.config import from_sources

    cfg = from_sources(type("Args", (), {"config": str(tmp_path / "three.yaml")})())
    assert cfg.objectives["prefs"]["beta"] == 2.0 and cfg.weights["prefs"] == 0.5


def test_two_processes_train_three_sources_as_one(tmp_path, data):
    """Under accelerate launch (2 CPU processes, each half of every global batch) a K-source run
    makes the same choices and, up to float rounding, the same losses and parameters."""
    from test_llm_distributed import ENGINE, LOSS_TOL, PARAM_TOL, cli, launch, trainable

    kw = dict(rule="alright", steps=6, batch_size=8, eval_every=3, save_every=6, precision="fp32")
    one = run(k_config(tmp_path, data, "one", **kw), log=lambda s: None)
    two_cfg = k_config(tmp_path, data, "two", **kw)
    args = cli(dataclasses.replace(two_cfg, objectives=None, weights=None))
    del args[args.index("--lam") : args.index("--lam") + 2]  # the weights say it all
    for name, spec in two_cfg.objectives.items():
        args += ["--objective", f"{name}={spec['kind']}:{spec['data']}"]
    launch([*args, "--weights", ",".join(f"{k}={w}" for k, w in WEIGHTS.items())])
    a, b = rows_of(one, drop=ENGINE), rows_of(tmp_path / "two", drop=ENGINE)
    assert [r.get("objective") for r in a] == [r.get("objective") for r in b]
    assert [sorted(r) for r in a] == [sorted(r) for r in b]
    diff = max(abs(x[k] - y[k]) for x, y in zip(a, b) for k in x
               if k.startswith(("loss", "eval")))  # fmt: skip
    assert diff < LOSS_TOL
    p1, p2 = trainable(one, 6), trainable(tmp_path / "two", 6)
    assert max(float((p1[k] - p2[k]).abs().max()) for k in p1) < PARAM_TOL


def test_sequential_takes_its_stages_in_the_order_and_lengths_given(tmp_path, data):
    cfg = k_config(tmp_path, data, rule="sequential", steps=9,
                   stage_steps={"ok": 4, "copy": 2, "prefs": 3})  # fmt: skip
    picked = [r["objective"] for r in steps_of(run(cfg, log=lambda s: None))]
    assert picked == ["ok"] * 4 + ["copy"] * 2 + ["prefs"] * 3


def test_a_resume_with_the_objectives_in_another_order_is_refused(tmp_path, data):
    """Their order is part of the run (ALRIGHT's draw, the sequential stages)."""
    cfg = k_config(tmp_path, data, rule="alright", steps=4, save_every=2)
    run(cfg, log=lambda s: None)
    swapped = dict(reversed(list(cfg.objectives.items())))
    again = dataclasses.replace(cfg, objectives=swapped, resume=True)
    with pytest.raises(ValueError, match="different config .*objectives"):
        run(again, log=lambda s: None)


def test_an_empty_last_stage_takes_no_step(tmp_path, data):
    stages = {"copy": 2, "ok": 2, "prefs": 0}
    cfg = k_config(tmp_path, data, rule="sequential", steps=4, stage_steps=stages)
    picked = [r["objective"] for r in steps_of(run(cfg, log=lambda s: None))]
    assert picked == ["copy"] * 2 + ["ok"] * 2


@pytest.mark.parametrize("spec, message", [
    ({"kind": "sft", "data": "x", "eval": 5}, "objective copy: eval must name a JSONL file"),
    ({"kind": "sft", "data": "x", "beta": 0.2}, "objective copy: beta is for preference losses"),
])  # fmt: skip
def test_bad_yaml_sources_are_refused_in_one_line(tmp_path, capsys, spec, message):
    import yaml

    text = {"objectives": {"copy": spec, "b": {"kind": "ipo", "data": "y"}},
            "weights": {"copy": 0.5, "b": 0.5}, "output_dir": str(tmp_path / "r")}  # fmt: skip
    (tmp_path / "c.yaml").write_text(yaml.safe_dump(text))
    assert main(["train", "--config", str(tmp_path / "c.yaml")]) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and len(err.splitlines()) == 1, err


def test_the_two_objective_figures_refuse_a_k_source_run_in_one_line(tmp_path, data):
    from figures.llm_runs import RunFormatError, read_runs

    out = run(k_config(tmp_path, data, rule="mix", steps=2), log=lambda s: None)
    with pytest.raises(RunFormatError, match="data sources copy, ok, prefs, not sft and dpo"):
        read_runs(out)
