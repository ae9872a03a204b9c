"""The trainer's optimizer and schedule options (every rule gets the optimizer and the step sizes
the config names) and ALRIGHT's step variants (toyopt.llm.optim): each computes one gradient per
step, resumes exactly, takes the step its docstring states, and with ``plain`` (or another rule)
the trainer is unchanged."""

import json

import numpy as np
import pytest
import torch
from test_llm_trainer import (  # tests/ is on sys.path
    assert_resume_equals_full_run,
    config,
    make_backend,
    rows_of,
)

from toyopt.llm.config import TrainConfig
from toyopt.llm.models import load_model
from toyopt.llm.setup import build_optimizer, build_schedule
from toyopt.llm.train import run
from toyopt.loop import train
from toyopt.rules import make_rule

torch.set_num_threads(1)


def test_build_optimizer_follows_the_config():
    model, _ = load_model("tiny-random")
    sgd = build_optimizer(TrainConfig(rule="mix", optimizer="sgd", momentum=0.8, lr=0.1), model)
    assert isinstance(sgd, torch.optim.SGD) and sgd.defaults["momentum"] == 0.8
    adam = build_optimizer(TrainConfig(rule="mix", adam_beta1=0.5, adam_beta2=0.99), model)
    assert isinstance(adam, torch.optim.AdamW) and adam.defaults["betas"] == (0.5, 0.99)


def test_plain_sgd_steps_along_minus_lr_times_the_gradient():
    model, tok = load_model("tiny-random")
    cfg = TrainConfig(
        rule="mix", optimizer="sgd", momentum=0.0, lr=0.05, max_grad_norm=0.0, schedule="constant"
    )
    backend = make_backend(model, tok, build_optimizer(cfg, model), seed=3)
    grads = torch.autograd.grad(backend.compute("sft", 0), list(model.parameters()))
    before = [p.detach().clone() for p in model.parameters()]
    rule = make_rule("sequential-sft-dpo", 0.5, 4)
    train(backend, rule, rule.init(np.array([3])), 1, build_schedule(cfg))
    for p0, p1, g in zip(before, model.parameters(), grads):
        torch.testing.assert_close(p1.detach(), p0 - 0.05 * g, rtol=1e-5, atol=1e-7)


def test_a_run_logs_the_scheduled_learning_rates(tmp_path):
    cfg = config(tmp_path, schedule="cosine", warmup_steps=2, min_lr_ratio=0.1, optimizer="sgd")
    out = run(cfg, log=lambda s: None)
    rows = [json.loads(s) for s in (out / "metrics.jsonl").read_text().splitlines()]
    lrs = [r["lr"] for r in rows if "objective" in r]
    assert lrs == pytest.approx([build_schedule(cfg)(t) for t in range(cfg.steps)])
    assert lrs[0] < lrs[2] and lrs[2] == pytest.approx(cfg.lr) and lrs[-1] < lrs[2]


def test_a_sequential_run_restarts_its_schedule_at_the_switch(tmp_path):
    """Each stage warms up and decays over its own steps, as two trainings one after the other
    would (8 steps, switch at 3, warmup 1, linear decay to 0); a joint rule's spans the budget."""
    cfg = config(tmp_path, rule="sequential-dpo-sft", schedule="linear", warmup_steps=1, switch=3)
    out = run(cfg, log=lambda s: None)
    rows = [json.loads(s) for s in (out / "metrics.jsonl").read_text().splitlines()]
    lrs = [r["lr"] for r in rows if "objective" in r]
    assert lrs == pytest.approx([cfg.lr * f for f in (0.5, 1, 0.5, 0.5, 1, 0.75, 0.5, 0.25)])
    joint = build_schedule(config(tmp_path, rule="mix", schedule="linear", warmup_steps=1))
    assert [joint(t) / cfg.lr for t in (0, 1, 3, 7)] == pytest.approx([0.5, 1, 5 / 7, 1 / 7])
    with pytest.raises(ValueError, match=r"shorter than each stage .* \(3 and 7 steps\)"):
        TrainConfig(rule="sequential-sft-dpo", steps=10, switch=3, warmup_steps=3).validate()


@pytest.mark.parametrize(
    "field, value, message",
    [("optimizer", "adam", "unknown optimizer"), ("momentum", 1.0, "momentum"),
     ("warmup_steps", 8, "warmup_steps"), ("min_lr_ratio", -0.1, "min_lr_ratio")],
)  # fmt: skip
def test_bad_optimizer_options_are_refused(field, value, message):
    with pytest.raises(ValueError, match=message):
        TrainConfig(steps=8, **{field: value}).validate()


# --- ALRIGHT's optimizer variants (toyopt.llm.optim) ---


def test_plain_is_the_unwrapped_optimizer_and_other_rules_ignore_the_option(tmp_path):
    model, _ = load_model("tiny-random")
    plain = TrainConfig(rule="alright", alright_step="plain")
    assert type(build_optimizer(plain, model)) is torch.optim.AdamW
    assert (
        type(build_optimizer(TrainConfig(rule="alright"), model)).__name__ == "MixClip"
    )  # default
    assert type(build_optimizer(TrainConfig(rule="mix", alright_step="memory"), model)) is (
        torch.optim.AdamW
    )
    a = run(config(tmp_path, "plain", rule="mix", steps=4), log=lambda s: None)
    b = run(
        config(tmp_path, "ignored", rule="mix", steps=4, alright_step="memory"), log=lambda s: None
    )
    assert rows_of(a) == rows_of(b)


def test_memory_steps_on_the_mixed_latest_gradients():
    """Step 0 samples SFT, step 1 DPO (λ = 0.5, seed 3): with plain SGD the second update is
    −lr·(λ·g_dpo(θ₁) + (1 − λ)·g_sft(θ₀)), one gradient computed per step."""
    model, tok = load_model("tiny-random")
    cfg = TrainConfig(rule="alright", lam=0.5, optimizer="sgd", momentum=0.0, lr=0.05, schedule="constant",
                      max_grad_norm=0.0, alright_step="memory")  # fmt: skip
    backend = make_backend(model, tok, build_optimizer(cfg, model), seed=3)
    rule = make_rule("alright", 0.5, 4)
    state, params = rule.init(np.array([3])), list(model.parameters())
    chosen = [rule.choose(state, t, None)[0] for t in (0, 1)]
    assert [float(w["dpo"][0]) for w in chosen] == [0.0, 1.0]  # the coin this test relies on
    g_sft = torch.autograd.grad(backend.compute("sft", 0), params)
    calls = []
    model.register_forward_hook(lambda *args: calls.append(1))
    train(backend, rule, state, 1, build_schedule(cfg))
    g_dpo = torch.autograd.grad(backend.compute("dpo", 1), params)
    before = [p.detach().clone() for p in params]
    calls.clear()
    train(backend, rule, state, 2, build_schedule(cfg), start=1)
    assert len(calls) == 1  # one forward (and one gradient) per step
    for p0, p1, gs, gd in zip(before, params, g_sft, g_dpo):
        torch.testing.assert_close(
            p1.detach(), p0 - 0.05 * (0.5 * gd + 0.5 * gs), atol=1e-7, rtol=1e-5
        )


def test_mix_clip_scales_both_objectives_by_the_factor_mix_would_use():
    """Step 0 samples SFT, step 1 DPO (seed 3); plain SGD, τ = 2: the DPO step is
    −lr·g_dpo·min(1, τ / (λ‖g_dpo‖ + (1 − λ)‖g_sft‖)), although ‖g_dpo‖ alone is below τ."""
    model, tok = load_model("tiny-random")
    cfg = TrainConfig(rule="alright", lam=0.5, optimizer="sgd", momentum=0.0, lr=0.05, schedule="constant",
                      max_grad_norm=2.0, alright_step="mix-clip")  # fmt: skip
    backend = make_backend(model, tok, build_optimizer(cfg, model), seed=3)
    backend.max_grad_norm = cfg.max_grad_norm
    rule, params = make_rule("alright", 0.5, 4), list(model.parameters())
    state = rule.init(np.array([3]))
    norm = lambda gs: float(torch.linalg.vector_norm(torch.stack([g.norm() for g in gs])))  # noqa: E731
    n_sft = norm(torch.autograd.grad(backend.compute("sft", 0), params))
    train(backend, rule, state, 1, build_schedule(cfg))
    g_dpo = torch.autograd.grad(backend.compute("dpo", 1), params)
    factor = min(1.0, 2.0 / (0.5 * norm(g_dpo) + 0.5 * n_sft))
    assert norm(g_dpo) < 2.0 and factor < 0.8  # plain clipping would leave this step alone
    before = [p.detach().clone() for p in params]
    train(backend, rule, state, 2, build_schedule(cfg), start=1)
    for p0, p1, g in zip(before, params, g_dpo):
        torch.testing.assert_close(p1.detach(), p0 - 0.05 * factor * g, atol=1e-7, rtol=1e-5)


@pytest.mark.parametrize("variant", ["memory", "mix-clip", "mix-adam", "split-state"])
def test_variants_cost_one_gradient_per_step_and_resume_exactly(tmp_path, variant):
    cfg = config(tmp_path, "full", rule="alright", steps=8, save_every=4, alright_step=variant)
    full = run(cfg, log=lambda s: None)
    summary = json.loads((full / "summary.json").read_text())
    assert summary["grad_sft_per_step"] + summary["grad_dpo_per_step"] == 1.0
    assert_resume_equals_full_run(cfg, full, tmp_path)


def test_split_state_moves_only_the_sampled_objectives_moments():
    model, tok = load_model("tiny-random")
    opt = build_optimizer(TrainConfig(rule="alright", alright_step="split-state"), model)
    backend = make_backend(model, tok, opt, seed=3)
    rule = make_rule("alright", 0.5, 4)
    train(backend, rule, rule.init(np.array([3])), 1, build_schedule(TrainConfig()))  # SFT
    assert opt.by_objective["sft"].state and not opt.by_objective["dpo"].state


def test_a_variant_refuses_a_step_it_was_not_told_about():
    model, _ = load_model("tiny-random")
    opt = build_optimizer(TrainConfig(rule="alright", alright_step="memory"), model)
    with pytest.raises(RuntimeError, match="single-process trainer"):
        opt.step()


def test_mix_adam_is_adamw_at_lam_zero_and_scales_by_the_mix_weight():
    """λ = 0: only SFT steps, v = v_sft, so mix-adam is AdamW (clipping included). λ = 0.5: the
    first (SFT) step moves each weight by lr/(1 − λ), not lr: Mix's √v would be (1 − λ)|g|."""
    ends = []
    for step in ("plain", "mix-adam"):
        model, tok = load_model("tiny-random")
        cfg = TrainConfig(rule="alright", lam=0.0, alright_step=step, max_grad_norm=1.0)
        backend = make_backend(model, tok, build_optimizer(cfg, model), seed=3)
        backend.max_grad_norm = cfg.max_grad_norm
        rule = make_rule("alright", 0.0, 5)
        train(backend, rule, rule.init(np.array([3])), 5, build_schedule(cfg))
        ends.append([p.detach().clone() for p in model.parameters()])
    for a, b in zip(*ends):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-7)
    model, tok = load_model("tiny-random")
    cfg = TrainConfig(rule="alright", lam=0.5, alright_step="mix-adam", max_grad_norm=0.0)
    backend = make_backend(model, tok, build_optimizer(cfg, model), seed=3)
    before = [p.detach().clone() for p in model.parameters()]
    rule = make_rule("alright", 0.5, 4)
    train(backend, rule, rule.init(np.array([3])), 1, build_schedule(cfg))  # step 0: SFT
    moved = torch.cat(
        [(p.detach() - b).abs().flatten() for p, b in zip(model.parameters(), before)]
    )
    # lr / (1 − λ) = 2e-3 where |g| >> eps (AdamW would move them by lr = 1e-3), never more
    assert float(moved.max()) <= 2e-3 * 1.001
    assert float(moved[moved > 0].median()) == pytest.approx(2e-3, rel=1e-3)
