"""Inputs that would make an objective vacuous or ambiguous, and failures that would otherwise come
only at the end of the work, through the real command lines: each ends in one line on stderr
naming the file, line or option (exit status 2, or 130/143 for a stop), with nothing written.

The kinds (docs/reliability.md, "Inputs" and "Failures"): a key given twice in a JSON or YAML
file; a data row holding two formats; preference pairs identical after truncation; optima that
are booleans or negative; options that only the end of training would reject (smollm2 without
LoRA, a negative --save-every); a directory where a file is expected and a model directory that
cannot load; output places that cannot be written (checked before the work); memory and
interrupts. Toy, proofs_check and figures cases run as subprocesses (a thread pool); the LLM
trainer's cases call its ``main`` in this process, a few also as subprocesses."""

from __future__ import annotations

import contextlib
import io
import json
import os
import signal
import subprocess
import sys
import time
import traceback
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import pytest
from test_reliability_input import GOOD, PREF, SFT, TRAIN, jsonl

ROOT = Path(__file__).resolve().parents[1]
QUAD = {"kind": "quadratic", "sft": {"hessian": [[1, 0], [0, 1]], "center": [1, 0]},
        "dpo": {"hessian": [[2, 0], [0, 1]], "center": [0, 1]}}  # fmt: skip


@dataclass(frozen=True)
class Case:
    """One refused input: the command (a module, or "llm" for ``toyopt.llm``'s main in this
    process), its arguments, the files of its directory, the pieces of the error line ({d}: the
    case's directory) and the exit status. ``made`` names what the command may leave behind."""

    name: str
    module: str
    args: tuple[str, ...]
    expect: tuple[str, ...]
    files: tuple[tuple[str, str | bytes], ...] = ()
    status: int = 2
    made: tuple[str, ...] = ()


def case(name, module, args, expect, files=(), status=2, made=()) -> Case:
    return Case(name, module, tuple(args), tuple(expect), tuple(files), status, tuple(made))


def llm(name, args, expect, files=(), made=()) -> Case:
    base = ["train", "--sft-data", "{d}/sft.jsonl", "--pref-data", "{d}/pref.jsonl", *TRAIN]
    return case(name, "llm", [*base, *args], expect, (*GOOD, *files), made=made)


def long_pair(prompt: str, a: str, b: str) -> dict:
    """A pair whose responses differ only after 40 shared words (past a short --max-length)."""
    shared = "Sure! " + "red cat " * 20
    return {"prompt": prompt, "chosen": shared + a, "rejected": shared + b}


def tensors_file() -> bytes:
    """A small safetensors file's bytes."""
    import torch
    from safetensors.torch import save

    return save({"w": torch.zeros(4, 4)})


PJ = "{d}/p.json"
RUN = ["run", PJ, "--rule", "mix", "--steps", "3"]
MAXRIGHT = ["run", "quad2d", "--rule", "maxright", "--steps", "3", "--optima"]
DUP_HESSIAN = ('{"kind": "quadratic",\n "sft": {"hessian": [[1, 0], [0, 1]],\n'
               '         "center": [1, 0], "hessian": [[3, 0], [0, 3]]},\n'
               ' "dpo": {"hessian": [[2, 0], [0, 1]], "center": [0, 1]}}\n')  # fmt: skip
DUP_KIND = (
    '{"kind": "quadratic",\n'
    + json.dumps({k: v for k, v in QUAD.items() if k != "kind"})[1:-1]
    + ',\n "kind": "loglinear"}'
)
MD = "# Claims\n\nno block here\n"
TOY = [
    case("problem key twice in a nested object", "toyopt", RUN,
         [PJ, "line 3", "'hessian' given twice", "first on line 2"], [("p.json", DUP_HESSIAN)]),
    case("problem key twice at the top", "toyopt", RUN, [PJ, "line 3", "'kind' given twice", "first on line 1"],
         [("p.json", DUP_KIND)]),
    case("problem file is a directory", "toyopt", ["run", "{d}/sub", "--rule", "mix", "--steps", "3"],
         ["{d}/sub is a directory"], [("sub/x", "")]),
    case("optima file with a boolean", "toyopt", [*MAXRIGHT, "{d}/o.json"],
         ["--optima", "{d}/o.json", "'dpo' must be a number", "false"],
         [("o.json", '{"sft": 0.2, "dpo": false}')]),
    case("negative optimum as text", "toyopt", [*MAXRIGHT, "sft=-1,dpo=0.3"],
         ["--optima", "'sft' is -1", ">= 0"]),
    case("optima file with a key twice", "toyopt", [*MAXRIGHT, "{d}/o.json"],
         ["{d}/o.json", "line 2", "'sft' given twice"], [("o.json", '{"sft": 0.2,\n"sft": 0.1, "dpo": 0}')]),
    case("seeds beyond memory", "toyopt", ["run", "toy2d", "--rule", "mix", "--steps", "1000",
         "--seeds", "3000000000"], ["--seeds 3000000000", "GiB", "fewer seeds"]),
    case("trajectory out is a directory", "toyopt", ["run", "toy2d", "--rule", "mix", "--steps", "3",
         "--out", "{d}"], ["--out {d} is a directory"]),
    case("proofs_check write to a missing file", "proofs_check",
         ["--markdown", "--write", "{d}/claims.md"], ["--write {d}/claims.md", "no such file"]),
    case("proofs_check write to a directory", "proofs_check",
         ["--quick", "--markdown", "--write", "{d}/docs"], ["--write {d}/docs is a directory"],
         [("docs/x.md", MD)]),
    case("proofs_check write without the block", "proofs_check",
         ["--sensitivity", "--write", "{d}/s.md"], ["{d}/s.md", "<!-- proofs_check:sensitivity -->"],
         [("s.md", MD)]),
    case("figures out under a file", "figures", ["--quick", "--no-progress", "--only", "rates",
         "--out", "{d}/f.txt/figs"], ["--out {d}/f.txt/figs", "cannot be created"], [("f.txt", "x")]),
    case("figures out is a file", "figures", ["--quick", "--no-progress", "--out", "{d}/f.txt"],
         ["--out {d}/f.txt is a file"], [("f.txt", "x")]),
    case("pretrain-tiny out is a directory", "toyopt.llm", ["pretrain-tiny", "--out", "{d}"],
         ["--out {d} is a directory"]),
]  # fmt: skip

S, P = "{d}/sft.jsonl", "{d}/pref.jsonl"
MODEL = [("m/config.json", "{}"), ("m/tokenizer.json", "{}")]
LLM = [
    llm("pairs identical after truncation", ["--max-length", "16"],
        [f"{P}:3:", "identical after truncation to --max-length 16 tokens", "raise --max-length"],
        [("pref.jsonl", jsonl([*PREF[:2], long_pair("a", "one", "two"), *PREF[2:]]))]),
    llm("every held-out pair identical after truncation",
        ["--max-length", "20", "--skip-bad-rows", "--pref-eval", "{d}/ev.jsonl"],
        ["{d}/ev.jsonl:1:", "every pair of pref_eval", "--max-length 20"],
        [("ev.jsonl", jsonl([long_pair(f"q{i}", "yes", "no") for i in range(3)]))]),
    llm("SFT row with two formats", [], [f"{S}:2:", "two formats", "instruction/output", "prompt/completion"],
        [("sft.jsonl", jsonl([SFT[0], {**SFT[1], "instruction": "x", "output": "y"}, *SFT[2:]]))]),
    llm("preference row with messages too", [], [f"{P}:1:", "two formats", "messages"],
        [("pref.jsonl", jsonl([{**PREF[0], "messages": [{"role": "user", "content": "a"}]}, *PREF]))]),
    llm("data row with a key twice", [], [f"{P}:2:", "'rejected' given twice"],
        [("pref.jsonl", jsonl([PREF[0], '{"prompt": "a", "chosen": "b", "rejected": "c", "rejected": "d"}',
                               *PREF]))]),
    llm("YAML key twice", ["--config", "{d}/c.yaml"], ["{d}/c.yaml: line 3", "'lr' given twice", "line 1"],
        [("c.yaml", "lr: 0.001\nbeta: 0.1\nlr: 0.01\n")]),
    llm("YAML key twice, spelled two ways", ["--config", "{d}/c.yaml"],
        ["{d}/c.yaml", "'save-every' and 'save_every'", "same field"],
        [("c.yaml", "save-every: 5\nsteps: 2\nsave_every: 6\n")]),
    llm("optima with a boolean", ["--rule", "maxright", "--optima", "{d}/o.json"],
        ["{d}/o.json", "'sft' must be a number", "true"], [("o.json", '{"sft": true, "dpo": 0.3}')]),
    llm("negative optimum", ["--rule", "maxright", "--optima", "{d}/o.json"],
        ["{d}/o.json", "'dpo' is -0.25", ">= 0"], [("o.json", '{"sft": 0.5, "dpo": -0.25}')]),
    llm("smollm2 without LoRA", ["--model", "smollm2"], ["--model smollm2 needs --lora"]),
    llm("smollm2 without LoRA from a config", ["--config", "{d}/c.yaml"], ["--model smollm2 needs --lora"],
        [("c.yaml", "model: smollm2\nlora: false\n")]),
    llm("negative save-every", ["--save-every", "-2"], ["--save-every", ">= 0", "-2"]),
    llm("negative save-every from a config", ["--config", "{d}/c.yaml"], ["--save-every", ">= 0"],
        [("c.yaml", "save_every: -10\n")]),
    llm("eval data is a directory", ["--pref-eval", "{d}/evals"], ["--pref-eval {d}/evals is a directory"],
        [("evals/a.jsonl", jsonl(PREF))]),
    llm("config is a directory", ["--config", "{d}/conf"], ["--config {d}/conf is a directory"],
        [("conf/c.yaml", "lr: 0.1\n")]),
    llm("optima is a directory", ["--rule", "maxright", "--optima", "{d}"], ["--optima {d} is a directory"]),
    llm("empty model directory", ["--model", "{d}/m"], ["--model {d}/m is an empty directory"], [("m/", "")]),
    llm("model directory without tokenizer", ["--model", "{d}/m"], ["{d}/m has no tokenizer files"],
        [("m/config.json", "{}"), ("m/model.safetensors", b"x")]),
    llm("model directory without config", ["--ref-model", "{d}/m"], ["--ref-model {d}/m has no config.json"],
        [("m/tokenizer.json", "{}")]),
    llm("truncated safetensors", ["--model", "{d}/m"], ["{d}/m/model.safetensors", "truncated"],
        [*MODEL, ("m/model.safetensors", b"")]),  # bytes filled in by the fixture
]  # fmt: skip
SUBPROCESS_LLM = ("smollm2 without LoRA", "YAML key twice", "truncated safetensors")
CASES = TOY + LLM


@dataclass
class Outcome:
    status: int | str
    stderr: str
    before: dict
    after: dict
    seconds: float


def tree(d: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(d)): p.read_bytes() if p.is_file() else b"<dir>" for p in d.rglob("*")
    }


def prepare(c: Case, root: Path, suffix: str) -> tuple[Path, list[str]]:
    d = root / (c.name.replace(" ", "-") + suffix)
    d.mkdir(parents=True)
    for name, content in c.files:
        if c.name == "truncated safetensors" and name == "m/model.safetensors":
            content = tensors_file()[:-10]
        path = d / name
        path.parent.mkdir(parents=True, exist_ok=True)
        if name.endswith("/"):  # an empty directory
            path.mkdir()
            continue
        path.write_bytes(content if isinstance(content, bytes) else content.encode())
    return d, [a.replace("{d}", str(d)) for a in c.args]


def run(c: Case, root: Path, subprocess_: bool) -> Outcome:
    d, args = prepare(c, root, "-sub" if subprocess_ else "")
    before, start = tree(d), time.perf_counter()
    if subprocess_:
        module = "toyopt.llm" if c.module == "llm" else c.module
        env = {**os.environ, "PYTHONPATH": str(ROOT), "HF_HUB_OFFLINE": "1"}
        proc = subprocess.run([sys.executable, "-m", module, *args], capture_output=True,
                              text=True, env=env, timeout=300)  # fmt: skip
        status, stderr = proc.returncode, proc.stderr
    else:
        from toyopt.llm.__main__ import main

        err = io.StringIO()
        with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
            try:
                status = main(args)
            except SystemExit as e:
                status = e.code
            except Exception:  # what a user would see as a traceback
                traceback.print_exc()
                status = "Traceback"
        stderr = err.getvalue()
    return Outcome(status, stderr, before, tree(d), time.perf_counter() - start)


RUNS = [(c, c.module != "llm" or c.name in SUBPROCESS_LLM) for c in CASES] + [
    (c, False) for c in LLM if c.name in SUBPROCESS_LLM
]


@pytest.fixture(scope="module")
def results(tmp_path_factory) -> dict:
    root = tmp_path_factory.mktemp("refusals")
    subs = [(c, s) for c, s in RUNS if s]
    with ThreadPoolExecutor(max_workers=2) as pool:
        futures = {(c.name, True): pool.submit(run, c, root, True) for c, _ in subs}
        out = {(c.name, False): run(c, root, False) for c, s in RUNS if not s}
        out.update({k: f.result() for k, f in futures.items()})
    return {k: (v, root) for k, v in out.items()}


def test_case_names_are_unique():
    assert len({c.name for c in CASES}) == len(CASES)


@pytest.mark.parametrize("c, sub", RUNS, ids=[f"{c.module}{'-sub' * s}: {c.name}" for c, s in RUNS])
def test_refused_in_one_line_with_nothing_written(c, sub, results):
    out, root = results[(c.name, sub)]
    d = root / (c.name.replace(" ", "-") + ("-sub" if sub else ""))
    lines = [s for s in out.stderr.splitlines() if s.strip()]
    assert out.status == c.status, out.stderr
    assert "Traceback" not in out.stderr, out.stderr
    assert len(lines) == 1, out.stderr
    for piece in c.expect:
        assert piece.replace("{d}", str(d)) in lines[0], lines[0]
    changed = {
        k for k in out.before.keys() | out.after.keys() if out.before.get(k) != out.after.get(k)
    }
    assert {k for k in changed if k.split("/")[0] not in c.made} == set(), changed
    if c.module == "proofs_check" or c.name.startswith("pretrain"):
        assert out.seconds < 30, "refused only after the work"


def test_identical_pairs_are_skipped_and_counted_with_skip_bad_rows(tmp_path, capsys):
    from toyopt.llm.__main__ import main

    (tmp_path / "sft.jsonl").write_text(jsonl(SFT))
    pairs = [*PREF[:5], long_pair("a", "one", "two"), *PREF[5:], long_pair("b", "x", "y")]
    (tmp_path / "pref.jsonl").write_text(jsonl(pairs))
    (tmp_path / "ev.jsonl").write_text(jsonl(PREF[:8]))
    args = [a.replace("{d}", str(tmp_path)) for a in TRAIN]
    status = main(["train", *args, "--sft-data", f"{tmp_path}/sft.jsonl", "--pref-data",
                   f"{tmp_path}/pref.jsonl", "--max-length", "16", "--skip-bad-rows",
                   "--pref-eval", f"{tmp_path}/ev.jsonl"])  # fmt: skip
    out = capsys.readouterr().out
    assert status == 0
    assert "pref_train: skipped 2 pairs with chosen and rejected identical after truncation" in out
    assert f"(first: {tmp_path}/pref.jsonl:6)" in out


def test_a_single_run_directory_is_drawn(tmp_path, capsys):
    """``figures --llm-runs RUN`` with RUN one run directory (not a directory of runs)."""
    from figures.__main__ import main as figures
    from toyopt.llm.__main__ import main

    (tmp_path / "sft.jsonl").write_text(jsonl(SFT))
    (tmp_path / "pref.jsonl").write_text(jsonl(PREF))
    args = [a.replace("{d}", str(tmp_path)) for a in TRAIN]
    data = ["--sft-data", f"{tmp_path}/sft.jsonl", "--pref-data", f"{tmp_path}/pref.jsonl"]
    assert main(["train", *args, *data]) == 0
    out = tmp_path / "figs"
    assert figures(["--only", "llm", "--llm-runs", str(tmp_path / "run"), "--out", str(out),
                    "--no-progress"]) == 0  # fmt: skip
    assert (out / "llm_bars.png").is_file() and (out / "llm_objective_space.png").is_file()


@pytest.mark.parametrize("signum, status", [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_a_stopped_toy_run_is_one_line(signum, status):
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen(
        [sys.executable, "-m", "toyopt", "run", "loglinear5d", "--rule", "alright", "--steps",
         "100000000", "--seeds", "50"], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        text=True, env=env,
    )  # fmt: skip
    # past the imports and into the run however loaded the machine is: 2 s of the process's own
    # CPU time (its imports take about 1.3 s), not of the wall clock
    ticks = os.sysconf("SC_CLK_TCK")
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and proc.poll() is None:
        fields = Path(f"/proc/{proc.pid}/stat").read_text().rsplit(")", 1)[1].split()
        if (int(fields[11]) + int(fields[12])) / ticks >= 2.0:  # utime + stime
            break
        time.sleep(0.1)
    proc.send_signal(signum)
    out, err = proc.communicate(timeout=60)
    assert (proc.returncode, err) == (status, "toyopt: interrupted\n"), err


def test_out_of_memory_is_one_line_naming_what_to_reduce(monkeypatch, capsys):
    import toyopt.cli

    def no_memory(*args, **kwargs):
        raise MemoryError

    monkeypatch.setattr(toyopt.cli, "simulate", no_memory)
    assert toyopt.cli.main(["run", "toy2d", "--rule", "mix", "--steps", "3"]) == 2
    assert capsys.readouterr().err == "toyopt: error: out of memory; reduce --seeds or --steps\n"
