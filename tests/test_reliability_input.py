"""Bad input through the real command lines: every user mistake gets one clear line on stderr
(naming the file, line and field where there is one), a non-zero exit status and no traceback.

Toy cases run ``python -m toyopt ...`` in subprocesses, started together by a thread pool. The
LLM trainer's cases call its ``main`` in this process (a subprocess would re-import torch and
transformers for each, ~5 s of CPU apiece); an escaping exception there is what would have been
a traceback. A few LLM cases also run as ``python -m toyopt.llm train`` subprocesses, so the
real entry point's exit status and stderr are checked too."""

from __future__ import annotations

import contextlib
import io
import json
import os
import subprocess
import sys
import traceback
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import pytest

from toyopt.llm.synthetic import make_rows
from toyopt.problems import get_problem

ROOT = Path(__file__).resolve().parents[1]


@dataclass(frozen=True)
class Case:
    """One bad input: files to write ({name: text or bytes}), the arguments, and the pieces
    the error line must contain ({d} is replaced by the case's directory)."""

    name: str
    cli: str  # "toy" or "llm"
    args: tuple[str, ...]
    expect: tuple[str, ...]
    files: tuple[tuple[str, str | bytes], ...] = ()
    status: int = 2
    command: str = "train"  # of python -m toyopt.llm

    @property
    def key(self) -> str:
        return f"{self.cli}-{self.name.replace(' ', '-')}"


def jsonl(rows) -> str:
    return "".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in rows)


SFT = make_rows("sft_train", n=40)  # 40 rows: the 10 % hold-out gets a few
PREF = make_rows("pref_train", n=40)
GOOD = (("sft.jsonl", jsonl(SFT)), ("pref.jsonl", jsonl(PREF)))
TOY = get_problem("toy2d").to_json()


def toy_file(**change) -> str:
    data = {**TOY, **change}
    for k, v in change.items():
        if v is None:
            del data[k]
    return json.dumps(data)


def toy(name, args, expect, files=(), status=2) -> Case:
    return Case(name, "toy", tuple(args), tuple(expect), tuple(files), status)


def llm(name, args, expect, files=(), status=2, data=True, command="train") -> Case:
    given = dict(files)
    base = [] if not data else ["--sft-data", "{d}/sft.jsonl", "--pref-data", "{d}/pref.jsonl"]
    files = tuple({**dict(GOOD), **given}.items()) if data else tuple(given.items())
    return Case(name, "llm", tuple(base + list(args)), tuple(expect), files, status, command)


def sweep(name, lams, expect) -> Case:
    return llm(name, [*TRAIN, "--lams", lams], expect, command="sweep")


RUN = ("run", "toy2d", "--rule", "alright", "--steps", "5")
PF = "{d}/p.json"  # the toy problem file of a case
TOY_CASES = [
    toy("malformed json", ["run", PF, "--rule", "mix", "--steps", "3"], [PF, "line 2", "invalid JSON"],
        [("p.json", '{"kind": "loglinear",\n "beta": }')]),
    toy("empty file", ["run", PF, "--rule", "mix", "--steps", "3"], [PF, "invalid JSON"], [("p.json", "")]),
    toy("missing field", ["run", PF, "--rule", "mix", "--steps", "3"], [PF, "'theta_ref'", "missing"],
        [("p.json", toy_file(theta_ref=None))]),
    toy("misspelled field", ["run", PF, "--rule", "mix", "--steps", "3"], [PF, "'beta'", "misspelled"],
        [("p.json", toy_file(beta=None, bta=1.0))]),
    toy("wrong type", ["run", PF, "--rule", "mix", "--steps", "3"], [PF, "'beta'", "expected a number"],
        [("p.json", toy_file(beta="one"))]),
    toy("non-finite number", ["run", PF, "--rule", "mix", "--steps", "3"], [PF, "'beta'", "finite"],
        [("p.json", toy_file(beta=float("nan")))]),
    toy("infinite feature", ["run", PF, "--rule", "mix", "--steps", "3"], [PF, "features[0]", "non-finite"],
        [("p.json", toy_file(features=[[[float("inf"), 0.0], [0.0, 1.0]]] + TOY["features"][1:]))]),
    toy("non-UTF-8 bytes", ["run", PF, "--rule", "mix", "--steps", "3"], [PF, "not UTF-8"],
        [("p.json", b'{"kind": "\xff\xfe"}')]),
    toy("index out of range", ["run", PF, "--rule", "mix", "--steps", "3"], [PF, "sft[0].prompt", "out of range"],
        [("p.json", toy_file(sft=[{"prompt": 7, "response": 0}]))]),
    toy("chosen equals rejected", ["run", PF, "--rule", "mix", "--steps", "3"],
        [PF, "preferences[0].rejected", "same"],
        [("p.json", toy_file(preferences=[{"prompt": 0, "chosen": 1, "rejected": 1}]))]),
    toy("missing problem file", ["run", "{d}/nope.json", "--rule", "mix", "--steps", "3"], ["nope.json"]),
    toy("lam above 1", [*RUN, "--lam", "1.5"], ["lam", "[0, 1]", "1.5"]),
    toy("lam below 0", [*RUN, "--lam", "-0.1"], ["lam", "[0, 1]"]),
    toy("lam nan", [*RUN, "--lam", "nan"], ["lam", "[0, 1]"]),
    toy("unknown rule", ["run", "toy2d", "--rule", "alrite", "--steps", "3"], ["alrite"]),
    toy("zero steps", ["run", "toy2d", "--rule", "mix", "--steps", "0"], ["steps", "positive"]),
    toy("negative steps", ["run", "toy2d", "--rule", "mix", "--steps", "-4"], ["steps", "positive"]),
    toy("steps not a number", ["run", "toy2d", "--rule", "mix", "--steps", "many"], ["--steps", "many"]),
    toy("zero lr", [*RUN, "--lr", "0"], ["lr"]),
    toy("infinite lr", [*RUN, "--lr", "inf"], ["lr"]),
    toy("zero batch", [*RUN, "--batch", "0"], ["batch"]),
    toy("switch past the budget", ["run", "toy2d", "--rule", "sequential-sft-dpo", "--steps", "5",
                                   "--switch", "9"], ["switch"]),
    toy("zero refresh", ["run", "toy2d", "--rule", "maxright", "--steps", "5", "--refresh-every", "0"],
        ["refresh"]),
    toy("no seeds", [*RUN, "--seeds", "0"], ["--seeds"]),
    toy("optima text", ["run", "toy2d", "--rule", "maxright", "--steps", "5", "--optima", "sft=1"],
        ["--optima", "sft=F,dpo=F"]),
    toy("optima file missing key", ["run", "toy2d", "--rule", "maxright", "--steps", "5", "--optima",
                                    "{d}/o.json"], ["o.json", "dpo"], [("o.json", '{"sft": 1.0}')]),
    toy("optima file malformed", ["run", "toy2d", "--rule", "maxright", "--steps", "5", "--optima",
                                  "{d}/o.json"], ["o.json", "JSON"], [("o.json", '{"sft": 1.0,')]),
    toy("optima not finite", ["run", "toy2d", "--rule", "maxright", "--steps", "5", "--optima",
                              "sft=nan,dpo=0"], ["optima", "finite"]),
    toy("out into a missing folder", [*RUN, "--out", "{d}/no/such/dir/t.json"], ["no/such/dir"]),
    toy("unknown built-in", ["run", "toy3d", "--rule", "mix", "--steps", "3"], ["toy3d"]),
    toy("values overflow", ["run", PF, "--rule", "mix", "--steps", "3"],
        [PF, "field 'sft'", "value of f_sft", "not finite"],
        [("p.json", json.dumps({"kind": "quadratic", "sft": {"hessian": [[1e200, 0], [0, 1]], "center": [1e200, 0]},
                                "dpo": {"hessian": [[1, 0], [0, 1]], "center": [0, 1]}}))]),
    toy("Hessian overflows", ["run", PF, "--rule", "mix", "--steps", "3"],
        [PF, "field 'features'", "Hessian", "not finite"],
        [("p.json", toy_file(features=[[[1e300, 0.0], [0.0, 1.0], [0.0, 0.0]]] + TOY["features"][1:]))]),
    toy("run overflows", ["run", PF, "--rule", "mix", "--steps", "20", "--lr", "1e200", "--schedule", "constant"],
        [PF, "after 20 steps", "overflowed", "--lr"],
        [("p.json", json.dumps({"kind": "quadratic", "sft": {"hessian": [[1, 0], [0, 1]], "center": [1, 0]},
                                "dpo": {"hessian": [[1, 0], [0, 1]], "center": [0, 1]}}))]),
]  # fmt: skip

TRAIN = ["--steps", "2", "--batch-size", "2", "--max-length", "24", "--eval-every", "2",
         "--eval-batch-size", "16", "--no-progress", "--output-dir", "{d}/run"]  # fmt: skip
S, P = "{d}/sft.jsonl", "{d}/pref.jsonl"
GOOD_SFT, GOOD_PREF = json.dumps(SFT[0]), json.dumps(PREF[0])
LLM_CASES = [
    llm("malformed JSONL", TRAIN, [f"{S}:3:", "invalid JSON"],
        [("sft.jsonl", jsonl([*SFT[:2], '{"prompt": "a", "completion": ', *SFT[2:]]))]),
    llm("empty data file", TRAIN, [P, "no usable pref rows"], [("pref.jsonl", "")]),
    llm("blank-only data file", TRAIN, [S, "no usable sft rows"], [("sft.jsonl", "\n\n  \n")]),
    llm("missing field", TRAIN, [f"{S}:2:", "missing field 'completion'"],
        [("sft.jsonl", jsonl([SFT[0], {"prompt": "a"}, *SFT[1:]]))]),
    llm("misspelled field", TRAIN, [f"{P}:1:", "missing field 'rejected'"],
        [("pref.jsonl", jsonl([{"prompt": "a", "chosen": "b", "rejectd": "c"}, *PREF]))]),
    llm("wrong type", TRAIN, [f"{P}:2:", "field 'chosen' must be a string"],
        [("pref.jsonl", jsonl([PREF[0], {"prompt": "a", "chosen": 3, "rejected": "c"}, *PREF]))]),
    llm("non-finite number", TRAIN, [f"{S}:1:", "field 'completion' must be a string"],
        [("sft.jsonl", '{"prompt": "a", "completion": NaN}\n' + jsonl(SFT))]),
    llm("row not an object", TRAIN, [f"{S}:2:", "JSON object"], [("sft.jsonl", jsonl([SFT[0], "[1, 2]"]))]),
    llm("non-UTF-8 bytes", TRAIN, [f"{S}:3:", "not UTF-8"],
        [("sft.jsonl", jsonl(SFT[:2]).encode() + b'{"prompt": "\xff", "completion": "b"}\n')]),
    llm("chosen equals rejected", TRAIN, [f"{P}:4:", "'chosen' and 'rejected' are identical"],
        [("pref.jsonl", jsonl([*PREF[:3], {"prompt": "a", "chosen": "b", "rejected": "b"}]))]),
    llm("bad eval row", [*TRAIN, "--pref-eval", "{d}/ev.jsonl"], ["{d}/ev.jsonl:2:", "missing field 'prompt'"],
        [("ev.jsonl", jsonl([PREF[0], {"chosen": "x", "rejected": "y"}]))]),
    llm("missing data file", [*TRAIN, "--sft-data", "{d}/nope.jsonl"], ["nope.jsonl", "no such data file"]),
    llm("every row skipped", [*TRAIN, "--skip-bad-rows"], [S, "no usable sft rows"],
        [("sft.jsonl", jsonl(['{"prompt": 1}', "[]"]))]),
    llm("lam above 1", [*TRAIN, "--lam", "1.5"], ["lam", "[0, 1]"]),
    llm("lam nan", [*TRAIN, "--lam", "nan"], ["lam", "[0, 1]"]),
    llm("unknown rule", [*TRAIN, "--rule", "maxrite"], ["maxrite"]),
    llm("unknown tracker", [*TRAIN, "--report-to", "wandb"],
        ["--report-to: unknown tracker 'wandb'; choose none, tensorboard, trackio"]),
    llm("tracker list with none", [*TRAIN, "--report-to", "none,tensorboard"], ["'none' cannot"]),
    llm("empty tracker list", [*TRAIN, "--report-to", ","], ["--report-to", "give none"]),
    llm("zero steps", [*TRAIN, "--steps", "0"], ["steps", "positive"]),
    llm("negative steps", [*TRAIN, "--steps", "-2"], ["steps", "positive"]),
    llm("steps not a number", [*TRAIN, "--steps", "two"], ["--steps", "two"]),
    llm("infinite lr", [*TRAIN, "--lr", "inf"], ["lr", "finite"]),
    llm("nan beta", [*TRAIN, "--beta", "nan"], ["beta"]),
    llm("zero batch", [*TRAIN, "--batch-size", "0"], ["batch_size"]),
    llm("eval fraction 1", [*TRAIN, "--eval-fraction", "1"], ["eval_fraction"]),
    llm("max length 1", [*TRAIN, "--max-length", "1"], ["max_length"]),
    llm("negative seed", [*TRAIN, "--seed", "-1"], ["seed"]),
    llm("switch past the budget", [*TRAIN, "--rule", "sequential-sft-dpo", "--switch", "7"], ["switch"]),
    llm("warmup as long as a sequential stage", [*TRAIN, "--rule", "sequential-sft-dpo", "--steps",
        "4", "--warmup-steps", "2"], ["warmup_steps", "each stage", "2 and 2 steps"]),
    llm("model path missing", [*TRAIN, "--model", "{d}/no-model"], ["no-model", "no such directory"]),
    llm("reference model missing", [*TRAIN, "--ref-model", "{d}/no-ref"], ["no-ref"]),
    llm("maxright without optima", [*TRAIN, "--rule", "maxright"], ["--optima"]),
    llm("negative validation rows", [*TRAIN, "--validation-rows", "-1"], ["validation_rows", ">= 0"]),
    llm("optima without validation values", [*TRAIN, "--rule", "maxright", "--optima", "{d}/o.json",
        "--validation-rows", "2"], ["o.json", "'val_sft'", "--validation-rows"],
        [("o.json", '{"sft": 1, "dpo": 0}')]),
    llm("more validation rows than training rows", [*TRAIN, "--validation-rows", "5000"],
        ["--validation-rows 5000", "training rows"]),
    llm("optima file missing", [*TRAIN, "--rule", "maxright", "--optima", "{d}/o.json"], ["o.json", "no such"]),
    llm("optima not finite", [*TRAIN, "--rule", "maxright", "--optima", "{d}/o.json"],
        ["o.json", "'sft'", "finite"], [("o.json", '{"sft": NaN, "dpo": 0}')]),
    llm("bad YAML", [*TRAIN, "--config", "{d}/c.yaml"], ["c.yaml", "invalid YAML"],
        [("c.yaml", "steps: [1, 2\nlam: 0.5\n")]),
    llm("YAML misspelled field", [*TRAIN, "--config", "{d}/c.yaml"], ["c.yaml", "stpes"],
        [("c.yaml", "stpes: 4\n")]),
    llm("YAML wrong type", [*TRAIN, "--config", "{d}/c.yaml"], ["config field lam", "'half'"],
        [("c.yaml", "lam: half\n")]),
    llm("YAML not a mapping", [*TRAIN, "--config", "{d}/c.yaml"], ["c.yaml", "mapping"],
        [("c.yaml", "- steps\n- 4\n")]),
    llm("YAML missing", [*TRAIN, "--config", "{d}/none.yaml"], ["none.yaml", "no such config file"]),
    llm("output dir is a file", [*TRAIN, "--output-dir", "{d}/sft.jsonl"], ["sft.jsonl"]),
    llm("lone surrogate in a row", TRAIN, [f"{S}:2:", "invalid Unicode"],
        [("sft.jsonl", jsonl([SFT[0], '{"prompt": "a\\ud800", "completion": "b"}', *SFT[1:]]))]),
    llm("absurdly nested row", TRAIN, [f"{P}:2:", "nested too deeply"],
        [("pref.jsonl", jsonl([PREF[0], "[" * 100_000 + "]" * 100_000, *PREF[1:]]))]),
    llm("negative gradient clip", [*TRAIN, "--max-grad-norm", "-1"], ["max_grad_norm", ">= 0"]),
    llm("negative threads", [*TRAIN, "--threads", "-2"], ["threads", ">= 0"]),
    llm("seed beyond 64 bits", [*TRAIN, "--seed", str(2**64)], ["seed", "2**63"]),
    llm("beta2 of 1", [*TRAIN, "--adam-beta2", "1"], ["adam_beta2", "[0, 1)"]),
    llm("YAML key not a string", [*TRAIN, "--config", "{d}/c.yaml"], ["c.yaml", "field names", "1"],
        [("c.yaml", "1: 2\n")]),
    llm("YAML not text", [*TRAIN, "--config", "{d}/c.yaml"], ["c.yaml", "not UTF-8"],
        [("c.yaml", b"\x89PNG\r\n\x1a\n\x00\xff")]),
    llm("empty output dir", [*TRAIN, "--output-dir", ""], ["output directory is empty"]),
    llm("output dir holds other files", [*TRAIN, "--output-dir", "{d}"],
        ["{d} is not empty", "not a toyopt run directory", "nothing in it was changed"]),
    llm("output dir already holds a run", TRAIN, ["{d}/run already holds a run", "--resume"],
        [("run/toyopt-run.json", '{"kind": "run"}')]),
    llm("output dir of another kind", TRAIN, ["{d}/run holds a toyopt sweep directory"],
        [("run/toyopt-run.json", '{"kind": "sweep"}')]),
    llm("damaged run marker", TRAIN, ["{d}/run/toyopt-run.json", "unreadable"],
        [("run/toyopt-run.json", '{"kind": ')]),
    sweep("sweep lams empty", "", ["--lams", "comma list"]),
    sweep("sweep lams repeated", "0.5,0.25,0.5", ["--lams", "repeated"]),
    sweep("sweep lam above 1", "0.5,1.5", ["--lams", "1.5", "outside [0, 1]"]),
    sweep("sweep lam not a number", "0.5,half", ["--lams", "half"]),
    sweep("sweep lams with a hole", "0.25,,0.5", ["--lams", "comma list"]),
]  # fmt: skip
CASES = TOY_CASES + LLM_CASES


SUBPROCESS_LLM = ("malformed JSONL", "steps not a number", "model path missing", "bad YAML",
                  "sweep lam above 1")  # fmt: skip


@dataclass
class Outcome:
    returncode: int
    stderr: str


def setup_case(case: Case, root: Path, suffix: str = "") -> tuple[Path, list[str]]:
    d = root / (case.key + suffix)
    d.mkdir(parents=True)
    for name, content in case.files:
        path = d / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(content if isinstance(content, bytes) else content.encode())
    return d, [a.replace("{d}", str(d)) for a in case.args]


def run_subprocess(case: Case, root: Path, suffix: str = "") -> Outcome:
    d, args = setup_case(case, root, suffix)
    module = ["-m", "toyopt"] if case.cli == "toy" else ["-m", "toyopt.llm", case.command]
    env = {**os.environ, "PYTHONPATH": str(ROOT), "HF_HUB_OFFLINE": "1"}
    proc = subprocess.run(
        [sys.executable, *module, *args], capture_output=True, text=True, env=env, timeout=300
    )
    return Outcome(proc.returncode, proc.stderr)


def run_in_process(case: Case, root: Path) -> Outcome:
    from toyopt.llm.__main__ import main

    d, args = setup_case(case, root)
    err = io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        try:
            status = main([case.command, *args])
        except SystemExit as e:  # argparse's exit
            status = e.code
        except Exception:  # what a user would see as a traceback
            traceback.print_exc()
            status = "Traceback"
    return Outcome(status, err.getvalue())


@pytest.fixture(scope="module")
def results(tmp_path_factory) -> dict[str, Outcome]:
    """Every case run once: subprocesses four at a time, in-process cases meanwhile."""
    root = tmp_path_factory.mktemp("bad-input")
    by_subprocess = TOY_CASES + [c for c in LLM_CASES if c.name in SUBPROCESS_LLM]
    with ThreadPoolExecutor(max_workers=3) as pool:
        futures = {
            c.key + "/sub": pool.submit(run_subprocess, c, root, "-sub") for c in by_subprocess
        }
        out = {c.key: run_in_process(c, root) for c in LLM_CASES}
        out.update({k: f.result() for k, f in futures.items()})
    return out


def test_case_names_are_unique():
    assert len({c.key for c in CASES}) == len(CASES)


RUNS = [(c, "") for c in LLM_CASES] + [
    (c, "/sub") for c in TOY_CASES + LLM_CASES if c.cli == "toy" or c.name in SUBPROCESS_LLM
]


@pytest.mark.parametrize(
    "case, how", RUNS, ids=[f"{c.cli}{'-subprocess' * bool(h)}: {c.name}" for c, h in RUNS]
)
def test_bad_input_gets_one_clear_line_and_a_nonzero_status(case, how, results, tmp_path_factory):
    proc = results[case.key + how]
    d = tmp_path_factory.getbasetemp() / "bad-input0" / (case.key + ("-sub" if how else ""))
    lines = [s for s in proc.stderr.splitlines() if s.strip()]
    assert proc.returncode == case.status, proc.stderr
    assert "Traceback" not in proc.stderr, proc.stderr
    assert len(lines) == 1, proc.stderr
    for piece in case.expect:
        assert piece.replace("{d}", str(d)) in lines[0], lines[0]


def test_a_prompt_longer_than_max_length_is_cut_and_counted_not_an_error(tmp_path, capsys):
    """The documented truncation policy (toyopt.llm.encode): the prompt is cut from the left and
    the run reports how many rows were cut; the response keeps its tokens."""
    from toyopt.llm.__main__ import main

    long = {"prompt": "Repeat: " + "red cat " * 200, "completion": "red cat"}
    (tmp_path / "sft.jsonl").write_text(jsonl([long, *SFT]))
    (tmp_path / "pref.jsonl").write_text(jsonl(PREF))
    args = [a.replace("{d}", str(tmp_path)) for a in [*TRAIN, "--sft-data", S, "--pref-data", P]]
    assert main(["train", *args, "--steps", "1", "--eval-every", "1"]) == 0
    out = capsys.readouterr().out
    assert "sft_train: truncated 1 of" in out or "sft_eval: truncated 1 of" in out, out


def test_bad_sweep_lams_are_refused_before_any_training(results, tmp_path_factory):
    for case in (c for c in LLM_CASES if c.command == "sweep"):
        d = tmp_path_factory.getbasetemp() / "bad-input0" / case.key
        assert not (d / "run").exists(), case.name
