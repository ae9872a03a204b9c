"""The trainer on the tiny model: each rule's step moves the parameters along the gradient it
should, ALRIGHT with λ = 0 is SFT-only training, the choices are the toy rules' choices, MAXRIGHT
reuses the chosen objective's forward pass, and a resumed run equals an uninterrupted one."""

import dataclasses
import json
import shutil

import numpy as np
import pytest
import torch

from toyopt.backends import NumpyBackend
from toyopt.llm.backend import LMBackend
from toyopt.llm.config import TrainConfig
from toyopt.llm.data import PrefExample, SFTExample
from toyopt.llm.encode import encode_pref, encode_sft
from toyopt.llm.models import add_lora, load_model
from toyopt.llm.synthetic import make_rows
from toyopt.llm.train import run
from toyopt.loop import train
from toyopt.problems import get_problem
from toyopt.rules import larger_gap, make_rule, weighted_gaps
from toyopt.schedules import Schedule

torch.set_num_threads(1)
TIMING = ("wall_time", "step_seconds", "peak_rss_bytes", "peak_cuda_allocated_bytes")


def config(tmp_path, name="run", **kw) -> TrainConfig:
    base = dict(output_dir=str(tmp_path / name), steps=8, batch_size=4, max_length=32,
                eval_every=4, save_every=0, progress=False, threads=1, eval_batch_size=64)  # fmt: skip
    return TrainConfig(**{**base, **kw})


def rows_of(run_dir, drop=TIMING) -> list[dict]:
    rows = [json.loads(s) for s in (run_dir / "metrics.jsonl").read_text().splitlines()]
    return [{k: v for k, v in r.items() if k not in drop} for r in rows]


def final_params(run_dir) -> dict[str, torch.Tensor]:
    last = sorted((run_dir / "checkpoints").iterdir())[-1]
    return torch.load(last / "trainable.pt", weights_only=True)


def make_backend(model, tok, optimizer, seed=0):
    sft = encode_sft(tok, [SFTExample(**r) for r in make_rows("sft_train", n=16)], 32).rows
    pref = encode_pref(tok, [PrefExample(**r) for r in make_rows("pref_train", n=16)], 32).rows
    ref = torch.zeros(16, 2) - 20.0  # any fixed reference works for the update check
    return LMBackend(model, optimizer, sft, pref, seed=seed, batch_size=2, beta=0.1,
                     pad_id=tok.pad_token_id, ref_logps=ref)  # fmt: skip


@pytest.mark.parametrize(
    "name, expected",
    [("sequential-sft-dpo", {"sft": 1.0, "dpo": 0.0}), ("sequential-dpo-sft", {"sft": 0.0, "dpo": 1.0}),
     ("mix", {"sft": 0.7, "dpo": 0.3}), ("maxright", {"sft": 1.0, "dpo": 0.0}),  # f_sft ≈ 6 > f_dpo ≈ 0
     ("alright", None)],
)  # fmt: skip
def test_one_step_moves_along_the_chosen_weighted_gradient(name, expected):
    model, tok = load_model("tiny")
    lr = 0.05
    backend = make_backend(model, tok, torch.optim.SGD(model.parameters(), lr=lr), seed=5)
    rule = make_rule(name, 0.3, 10, optima={"sft": 0.0, "dpo": 0.0})
    state = rule.init(np.array([5]))
    weights, _ = rule.choose(state, 0, backend.values() if rule.wants_values(state, 0) else None)
    w = {k: float(v[0]) for k, v in weights.items()}
    if expected is not None:
        assert w == pytest.approx(expected)
    # the independent gradient of Σ_k w_k f_k on step 0's batches
    total = sum(w[k] * backend.compute(k, 0) for k in w if w[k] > 0)
    grads = torch.autograd.grad(total, list(model.parameters()))
    before = [p.detach().clone() for p in model.parameters()]
    train(backend, rule, state, 1, Schedule("constant", lr))
    for p0, p1, g in zip(before, model.parameters(), grads):
        torch.testing.assert_close(p1.detach(), p0 - lr * g, rtol=1e-5, atol=1e-7)
    assert any(not torch.equal(p0, p1) for p0, p1 in zip(before, model.parameters()))


def test_with_lora_a_step_changes_adapters_only():
    model, tok = load_model("tiny")
    model = add_lora(model, 4, 8.0, "all-linear")
    base = {n: p.detach().clone() for n, p in model.named_parameters() if not p.requires_grad}
    lora_b = {n: p.detach().clone() for n, p in model.named_parameters() if "lora_B" in n}
    params = [p for p in model.parameters() if p.requires_grad]
    backend = make_backend(model, tok, torch.optim.AdamW(params, lr=1e-2))
    rule = make_rule("mix", 0.5, 5)
    train(backend, rule, rule.init(np.array([0])), 1, Schedule("constant", 1e-2))
    now = dict(model.named_parameters())
    assert all(torch.equal(p, now[n]) for n, p in base.items())
    assert lora_b and all(not torch.equal(p, now[n]) for n, p in lora_b.items())


def test_alright_with_lam_zero_is_sft_only_training_step_for_step(tmp_path):
    a = run(config(tmp_path, "alright", rule="alright", lam=0.0), log=lambda s: None)
    b = run(config(tmp_path, "sft", rule="sequential-sft-dpo", switch=8), log=lambda s: None)
    assert rows_of(a) == rows_of(b)
    assert all(r.get("objective", "sft") == "sft" for r in rows_of(a))
    pa, pb = final_params(a), final_params(b)
    assert all(torch.equal(pa[k], pb[k]) for k in pa)


@pytest.mark.parametrize("name, lam", [("alright", 0.3), ("sequential-dpo-sft", 0.5), ("mix", 0.6)])
def test_choices_equal_the_toy_rules_choices_for_the_same_seed(tmp_path, name, lam):
    steps, seed = 30, 11
    out = run(config(tmp_path, rule=name, lam=lam, steps=steps, seed=seed, switch=13 if "seq" in name else None,
                     eval_every=steps), log=lambda s: None)  # fmt: skip
    llm = [r["objective"] for r in rows_of(out) if "objective" in r]
    toy_choices = []

    def record(t, weights, losses, values):
        on = [k for k in ("sft", "dpo") if weights[k][0] > 0]
        toy_choices.append(on[0] if len(on) == 1 else "mix")

    rule = make_rule(name, lam, steps, switch=13 if "seq" in name else None)
    backend = NumpyBackend(get_problem("toy2d"), np.array([seed]))
    train(
        backend, rule, rule.init(np.array([seed])), steps, Schedule("constant", 0.1), on_step=record
    )
    assert llm == toy_choices
    if name == "alright":
        assert {"sft", "dpo"} <= set(llm)  # the coin really varies


@pytest.mark.parametrize("refresh_every", [1, 3])
def test_maxright_follows_the_weighted_gaps_and_reuses_the_chosen_forward(tmp_path, refresh_every):
    optima = tmp_path / "optima.json"
    optima.write_text(json.dumps({"sft": 5.0, "dpo": 0.0}))
    out = run(config(tmp_path, rule="maxright", lam=0.5, steps=12, optima=str(optima),
                     refresh_every=refresh_every, lr=3e-3), log=lambda s: None)  # fmt: skip
    steps = [r for r in rows_of(out) if "objective" in r]
    refreshed = [r["step"] for r in steps if "value_sft" in r]
    assert refreshed == list(range(0, 12, refresh_every))
    for r in steps:
        if "value_sft" in r:
            values = {k: np.array([r[f"value_{k}"]]) for k in ("sft", "dpo")}
            w = larger_gap(0.5, weighted_gaps(0.5, {"sft": 5.0, "dpo": 0.0}, values))
            assert r["objective"] == ("dpo" if w["dpo"][0] > 0 else "sft")
            k = r["objective"]
            assert r[f"loss_{k}"] == r[f"value_{k}"]  # the same forward pass, reused
    assert {"sft", "dpo"} <= {r["objective"] for r in steps}


@pytest.mark.parametrize("save_every", [4, 3])  # resume between refreshes, and at a refresh
def test_a_resumed_run_equals_the_uninterrupted_run(tmp_path, save_every):
    cfg = config(
        tmp_path, "full", rule="maxright", optima="zero", steps=12, save_every=save_every,
        refresh_every=3,
    )  # fmt: skip
    assert_resume_equals_full_run(cfg, run(cfg, log=lambda s: None), tmp_path)


def assert_resume_equals_full_run(cfg, full, tmp_path) -> None:
    """A copy of the finished run ``full`` crashed after its last-but-one checkpoint (more steps
    logged, one row half-written) and resumed ends with the same metrics rows and parameters."""
    crashed = tmp_path / "crashed"
    shutil.copytree(full, crashed)
    shutil.rmtree(crashed / "checkpoints" / f"step-{cfg.steps:06d}")
    shutil.rmtree(crashed / "final")
    with open(crashed / "metrics.jsonl", "a") as f:
        f.write(f'{{"step": {cfg.steps - 1}, "objec')
    resumed = run(
        dataclasses.replace(cfg, output_dir=str(crashed), resume=True), log=lambda s: None
    )
    assert rows_of(resumed) == rows_of(full)
    pa, pb = final_params(full), final_params(resumed)
    assert all(torch.equal(pa[k], pb[k]) for k in pa)


def test_a_maxright_refresh_costs_one_extra_forward_pass():
    model, tok = load_model("tiny")
    backend = make_backend(model, tok, torch.optim.SGD(model.parameters(), lr=0.01))
    calls = []
    model.register_forward_hook(lambda *args: calls.append(torch.is_grad_enabled()))
    rule = make_rule("maxright", 0.3, 10, optima={"sft": 0.0, "dpo": 0.0})  # chooses SFT
    train(backend, rule, rule.init(np.array([0])), 2, Schedule("constant", 0.01))
    # per step: SFT with its graph (reused by the update) and DPO without gradients
    assert calls == [True, False, True, False]


@pytest.mark.parametrize("lora", [False, True])
def test_per_batch_reference_equals_the_precomputed_one(tmp_path, lora):
    kw = dict(rule="mix", lam=0.5, steps=4, lora=lora, lora_r=4, lr=1e-2)
    a = run(config(tmp_path, "pre", **kw), log=lambda s: None)
    b = run(config(tmp_path, "per-batch", precompute_ref=False, **kw), log=lambda s: None)
    for ra, rb in zip(rows_of(a), rows_of(b), strict=True):
        assert ra.keys() == rb.keys()
        for k in ra:
            if isinstance(ra[k], str):  # e.g. the objective label: pytest.approx refuses strings
                assert ra[k] == rb[k], k
            else:
                assert ra[k] == pytest.approx(rb[k], rel=1e-5, abs=1e-6), k


def test_lora_adapters_start_the_same_in_every_run():
    a = add_lora(load_model("tiny")[0], 4, 8.0, "all-linear")
    torch.rand(3)  # global generator state must not matter
    b = add_lora(load_model("tiny")[0], 4, 8.0, "all-linear")
    pb = dict(b.named_parameters())
    assert all(torch.equal(p, pb[n]) for n, p in a.named_parameters())


@pytest.mark.parametrize("separate", [True, False])
def test_a_mix_step_back_propagates_one_objective_at_a_time(separate):
    """By default the SFT graph is freed (its backward has run) before the DPO forward starts,
    so a Mix step holds one graph at a time; the summed backward holds both. Either way the
    update is the step along 0.7 ∇f_sft + 0.3 ∇f_dpo."""
    model, tok = load_model("tiny")
    lr = 0.05
    backend = make_backend(model, tok, torch.optim.SGD(model.parameters(), lr=lr), seed=5)
    assert backend.separate_backward  # the default on one process
    backend.separate_backward = separate
    total = 0.7 * backend.compute("sft", 0) + 0.3 * backend.compute("dpo", 0)
    grads = torch.autograd.grad(total, list(model.parameters()))
    before = [p.detach().clone() for p in model.parameters()]
    events = []
    model.register_forward_hook(lambda *args: events.append("forward"))
    backward = backend.engine.backward
    backend.engine.backward = lambda loss: (events.append("backward"), backward(loss))
    losses = backend.step({"sft": np.array([0.7]), "dpo": np.array([0.3])}, lr, 0)
    order = ["forward", "backward"] * 2 if separate else ["forward", "forward", "backward"]
    assert events == order
    for p0, p1, g in zip(before, model.parameters(), grads):
        torch.testing.assert_close(p1.detach(), p0 - lr * g, rtol=1e-5, atol=1e-7)
    assert sorted(losses) == ["dpo", "sft"]
