"""The trainer on Accelerate: micro-batch shares add up to the single-process batch and loss, and
``accelerate launch`` with two CPU processes (gloo) makes the single-process run's choices with
its losses, resumes exactly, and leaves the run directory as one process would."""

import dataclasses
import json
import os
import shutil
import socket
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from test_llm_trainer import config, make_backend, rows_of  # noqa: E402  (tests/ is on sys.path)

from toyopt.llm.backend import LMBackend, batch_indices, my_part
from toyopt.llm.engine import wanted
from toyopt.llm.models import load_model
from toyopt.llm.train import run
from toyopt.rng import STREAM_BATCH

ROOT = Path(__file__).resolve().parents[1]
CONFIGS = ROOT / "toyopt" / "llm" / "accelerate_configs"
# float32 sums taken in another order: the 2-process losses differ from the 1-process ones by a
# few ulps (ulp(6.0) = 4.8e-7); 1e-5 is 20 ulps, far below any change a wrong shard would make
LOSS_TOL = 1e-5
# Adam divides by sqrt(v): where a gradient is ~0 its rounding noise is rescaled to O(lr), so
# parameters may differ by up to lr per step; we allow a third of one step's size (lr = 3e-3)
PARAM_TOL = 1e-3
ENGINE = ("wall_time", "step_seconds", "peak_rss_bytes", "processes")  # differ by design


def fake_engine(rank: int, world: int, accum: int) -> SimpleNamespace:
    """Rank ``rank`` of ``world`` without processes: shares are summed by the test itself."""
    return SimpleNamespace(process_index=rank, num_processes=world, grad_accum=accum)


@pytest.mark.parametrize("world, accum", [(1, 1), (2, 2), (4, 1), (1, 4)])
def test_micro_batches_of_all_ranks_are_the_global_batch_in_order(world, accum):
    idx = batch_indices(3, 7, 50, 8, STREAM_BATCH["sft"])
    parts = [LMBackend.micro(SimpleNamespace(engine=fake_engine(r, world, accum)), idx)
             for r in range(world)]  # fmt: skip
    joined = np.concatenate([m for rank in parts for m in rank])
    assert np.array_equal(joined, idx)
    assert {len(m) for rank in parts for m in rank} == {8 // (world * accum)}
    assert sum(map(len, (my_part(list(range(5)), r, 3) for r in range(3)))) == 5


@pytest.mark.parametrize("name", ["sft", "dpo"])
def test_shares_over_ranks_and_micro_batches_sum_to_the_single_process_loss(name):
    model, tok = load_model("tiny")
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    single = make_backend(model, tok, opt, seed=4)
    single.batch_size = 4  # 2 ranks x 2 micro-batches of one row (uneven token counts)
    total = 0.0
    for rank in range(2):
        sharded = LMBackend(model, opt, single.sft_rows, single.pref_rows, seed=4, batch_size=4,
                            beta=0.1, pad_id=tok.pad_token_id, ref_logps=single.ref_logps,
                            engine=fake_engine(rank, 2, 2))  # fmt: skip
        with torch.no_grad():
            total += sum(float(f()) for f in sharded.shares(name, 5))
    with torch.no_grad():
        assert total == pytest.approx(float(single.compute(name, 5)), abs=1e-6)


def test_plain_single_process_runs_take_the_local_engine(tmp_path, monkeypatch):
    for key in ("WORLD_SIZE", "ACCELERATE_MIXED_PRECISION", "ACCELERATE_USE_DEEPSPEED"):
        monkeypatch.delenv(key, raising=False)
    assert not wanted(config(tmp_path))
    assert wanted(config(tmp_path, grad_accum=2)) and wanted(config(tmp_path, precision="bf16"))
    monkeypatch.setenv("WORLD_SIZE", "2")
    assert wanted(config(tmp_path))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def launch(args: list[str], config: str = "ddp.yaml", expect: int = 0):
    """``accelerate launch`` of the trainer on 2 CPU processes (gloo), from the repository root;
    the launcher's exit status is 1 when a process failed (``expect`` is the trainer's own)."""
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1"}
    for key in ("WORLD_SIZE", "RANK", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT"):
        env.pop(key, None)
    cmd = [sys.executable, "-m", "accelerate.commands.launch", "--config_file", str(CONFIGS / config),
           "--num_processes", "2", "--main_process_port", str(free_port()),
           "-m", "toyopt.llm", "train", *args]  # fmt: skip
    done = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=240)
    # every process's own error lines first: the launcher's traceback would push them out
    said = [
        s for s in (done.stdout + done.stderr).splitlines() if s.startswith(("error", "warning"))
    ]
    assert done.returncode == min(expect, 1), "\n".join(said) + done.stderr[-3000:]
    return done


def cli(cfg) -> list[str]:
    """The command-line options of a test config."""
    out = []
    for k, v in cfg.to_dict().items():
        flag = "--" + k.replace("_", "-")
        if isinstance(v, bool):
            out.append(flag if v else "--no-" + flag[2:])
        elif v is not None and v != "":
            out += [flag, str(v)]
    return out


def trainable(run_dir: Path, step: int) -> dict[str, torch.Tensor]:
    return torch.load(
        run_dir / "checkpoints" / f"step-{step:06d}" / "trainable.pt", weights_only=True
    )


def one_and_two(tmp_path, **kw) -> tuple[list[dict], list[dict]]:
    """The metrics rows (engine fields dropped) of the config ``kw`` trained on one process and
    on two (``accelerate launch``)."""
    one = run(config(tmp_path, "one", **kw), log=lambda s: None)
    two_cfg = config(tmp_path, "two", **kw)
    launch(cli(two_cfg))
    return rows_of(one, drop=ENGINE), rows_of(Path(two_cfg.output_dir), drop=ENGINE)


def largest_difference(a: list[dict], b: list[dict], prefixes: tuple[str, ...]) -> float:
    """The largest difference between two runs' rows in the fields whose names start with one of
    ``prefixes``."""
    return max(abs(x[k] - y[k]) for x, y in zip(a, b) for k in x if k.startswith(prefixes))


def test_two_processes_choose_and_train_as_one_and_resume_exactly(tmp_path):
    optima = tmp_path / "optima.json"
    optima.write_text(json.dumps({"sft": 5.0, "dpo": 0.0}))  # both objectives get chosen
    kw = dict(rule="maxright", optima=str(optima), lr=3e-3, steps=10, batch_size=8, save_every=5,
              eval_every=5, max_rows=64, precision="fp32")  # fmt: skip
    one = run(config(tmp_path, "one", **kw), log=lambda s: None)
    two_cfg = config(tmp_path, "two", grad_accum=2, **kw)  # 2 processes x 2 micro-batches of 2
    launch(cli(two_cfg))
    two = Path(two_cfg.output_dir)

    a, b = rows_of(one, drop=ENGINE), rows_of(two, drop=ENGINE)
    assert [r.get("objective") for r in a] == [r.get("objective") for r in b]
    assert {"sft", "dpo"} <= {r.get("objective") for r in a}
    assert [sorted(r) for r in a] == [sorted(r) for r in b]  # same rows, each written once
    assert largest_difference(a, b, ("loss", "value", "eval")) < LOSS_TOL
    p1, p2 = trainable(one, 10), trainable(two, 10)
    assert max(float((p1[k] - p2[k]).abs().max()) for k in p1) < PARAM_TOL
    saved = json.loads((two / "checkpoints" / "step-000010" / "state.json").read_text())
    assert saved["choices"] == [r["objective"] for r in a if "objective" in r]
    assert {"random_states_0.pkl", "random_states_1.pkl"} <= {
        p.name for p in (two / "checkpoints" / "step-000010").iterdir()
    }
    assert json.loads((two / "summary.json").read_text())["processes"] == 2

    crashed = tmp_path / "crashed"
    shutil.copytree(two, crashed)
    shutil.rmtree(crashed / "checkpoints" / "step-000010")
    launch(cli(dataclasses.replace(two_cfg, output_dir=str(crashed), resume=True)))
    assert rows_of(crashed) == rows_of(two)
    p3 = trainable(crashed, 10)
    assert all(torch.equal(p2[k], p3[k]) for k in p2)


def test_two_processes_compare_the_validation_split_as_one(tmp_path):
    """MAXRIGHT's values on the validation split (``validation_rows``; 7 rows: uneven parts)
    are summed over the processes as the evaluation's are: the same choices as one process."""
    optima = tmp_path / "optima.json"
    optima.write_text(json.dumps({"sft": 0.0, "dpo": 0.0, "val_sft": 5.0, "val_dpo": 0.0}))
    kw = dict(rule="maxright", optima=str(optima), validation_rows=7, lr=3e-3, steps=8,
              batch_size=8, eval_every=8, max_rows=64, precision="fp32")  # fmt: skip
    a, b = one_and_two(tmp_path, **kw)
    assert [r.get("objective") for r in a] == [r.get("objective") for r in b]
    assert {"sft", "dpo"} <= {r.get("objective") for r in a}
    assert any("val_sft" in r for r in a) and [sorted(r) for r in a] == [sorted(r) for r in b]
    assert largest_difference(a, b, ("loss", "value", "val_", "eval")) < LOSS_TOL


def test_two_processes_mix_with_lora_and_a_per_batch_reference_match_one(tmp_path):
    """Two forwards (SFT and DPO) before one backward under DDP, LoRA adapters only, and the
    reference scored per micro-batch by the adapters-off model."""
    kw = dict(rule="mix", lam=0.4, lora=True, lora_r=4, precompute_ref=False, lr=3e-3, steps=4,
              batch_size=8, eval_every=4, max_rows=64, precision="fp32")  # fmt: skip
    a, b = one_and_two(tmp_path, **kw)
    assert [sorted(r) for r in a] == [sorted(r) for r in b] and any("loss_dpo" in r for r in a)
    assert largest_difference(a, b, ("loss", "eval")) < LOSS_TOL


def test_two_processes_run_alright_mix_clip_as_one(tmp_path):
    """ALRIGHT's default step reads the gradient norm after the backward pass: under DDP every
    process holds the averaged gradient, so the clipping factor is the single process's."""
    kw = dict(rule="alright", alright_step="mix-clip", lr=3e-3, steps=6, batch_size=8,
              eval_every=6, max_rows=64, precision="fp32", max_grad_norm=0.5)  # fmt: skip
    a, b = one_and_two(tmp_path, **kw)
    assert [r.get("objective") for r in a] == [r.get("objective") for r in b]
    assert {"sft", "dpo"} <= {r.get("objective") for r in a}
    assert largest_difference(a, b, ("loss", "eval")) < LOSS_TOL


def test_fsdp2_on_cpu_processes_is_refused_not_run_as_another_engine(tmp_path):
    """Accelerate (1.15) turns FSDP on only over GPUs; without them it would silently train with
    plain data parallelism (MULTI_CPU). torch's own fully_shard does run on gloo, so a GPU-free
    FSDP2 test needs a newer accelerate: until then the trainer refuses in one line."""
    cfg = config(tmp_path, "fsdp", rule="mix", steps=2, batch_size=8, max_rows=64)
    done = launch(cli(cfg), "fsdp2.yaml", expect=2)
    lines = [s for s in done.stderr.splitlines() if s.startswith("error")]
    assert lines and all("asks for FSDP, but accelerate runs it only on GPUs" in s for s in lines)
    assert all(s.startswith(("error (process 0):", "error (process 1):")) for s in lines)
    assert not (Path(cfg.output_dir) / "metrics.jsonl").exists()


def test_the_accelerate_engine_places_the_model_before_the_reference_pass(tmp_path, monkeypatch):
    """Run scores the reference log-probs with the placed model before ``prepare``: the model must
    be on the engine's device by then (it stayed on the CPU while the batches went to the GPU)."""
    from toyopt.llm.accelerate_engine import AccelerateEngine

    for key in ("WORLD_SIZE", "ACCELERATE_USE_DEEPSPEED", "ACCELERATE_USE_FSDP"):
        monkeypatch.delenv(key, raising=False)
    engine = AccelerateEngine(config(tmp_path, precision="bf16"))
    engine.device = torch.device("meta")  # a device other than the CPU, without a GPU
    placed = engine.place(load_model("tiny")[0])
    assert {p.device.type for p in placed.parameters()} == {"meta"}
