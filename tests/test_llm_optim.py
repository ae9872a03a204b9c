"""The trainer's optimizer and schedule options: every rule gets the optimizer and the step sizes
the config names."""

import json

import numpy as np
import pytest
import torch
from test_llm_trainer import config, make_backend  # tests/ is on sys.path

from toyopt.llm.config import TrainConfig
from toyopt.llm.models import load_model
from toyopt.llm.setup import build_optimizer, build_schedule
from toyopt.llm.train import run
from toyopt.loop import train
from toyopt.rules import make_rule

torch.set_num_threads(1)


def test_build_optimizer_follows_the_config():
    model, _ = load_model("tiny")
    sgd = build_optimizer(TrainConfig(optimizer="sgd", momentum=0.8, lr=0.1), model)
    assert isinstance(sgd, torch.optim.SGD) and sgd.defaults["momentum"] == 0.8
    adam = build_optimizer(TrainConfig(adam_beta1=0.5, adam_beta2=0.99), model)
    assert isinstance(adam, torch.optim.AdamW) and adam.defaults["betas"] == (0.5, 0.99)


def test_plain_sgd_steps_along_minus_lr_times_the_gradient():
    model, tok = load_model("tiny")
    cfg = TrainConfig(optimizer="sgd", momentum=0.0, lr=0.05, max_grad_norm=0.0)
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


@pytest.mark.parametrize(
    "field, value, message",
    [("optimizer", "adam", "unknown optimizer"), ("momentum", 1.0, "momentum"),
     ("warmup_steps", 8, "warmup_steps"), ("min_lr_ratio", -0.1, "min_lr_ratio")],
)  # fmt: skip
def test_bad_optimizer_options_are_refused(field, value, message):
    with pytest.raises(ValueError, match=message):
        TrainConfig(steps=8, **{field: value}).validate()
