"""The toy engine's fast paths equal the straightforward ones, and the engine before them.

- ``tests/data/engine_reference.json`` holds final iterates and every one-hot choice of 3 seeds ×
  300 steps for every rule, on toy2d, loglinear5d and quad2d, exact and minibatch gradients,
  written by :func:`reference_runs` with the engine of commit bef25b4 (one hash call and one
  allocation per step, unfused kernels). The current engine must make the same choices (the
  same random streams) and reach the same iterates up to rounding.
- A block of choices equals the step-by-step choices; the blocked hash equals the per-key one.
- Fused kernels (``grad_and_loss``) equal ``grad`` and ``value``; the losses a step returns are
  the values at the pre-step iterate.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from toyopt.backends import NumpyBackend
from toyopt.loop import train
from toyopt.pareto import Geometry
from toyopt.problems import get_problem, problem_from_dict, random_loglinear
from toyopt.rng import STREAM_CHOICE, hash64, uniform
from toyopt.rules import AlRight, Mix, Sequential, make_rule
from toyopt.schedules import Schedule

REFERENCE = Path(__file__).parent / "data" / "engine_reference.json"
RULES = ("sequential-sft-dpo", "sequential-dpo-sft", "alright", "maxright", "mix")


def one_run(problem, rule, seeds, steps, lr, batch) -> dict:
    backend = NumpyBackend(problem, np.array(seeds), batch=batch)
    taken = []

    def keep(t, weights, losses, values):
        taken.append(np.asarray(weights["dpo"]))

    train(backend, rule, rule.init(np.array(seeds)), steps, Schedule("invsqrt", lr), on_step=keep)
    choices = None
    if rule.name != "mix":
        choices = ["".join("1" if x == 1.0 else "0" for x in row) for row in np.array(taken).T]
    return {"theta": backend.theta.tolist(), "choices": choices}


def reference_runs(seeds=(0, 1, 7), steps=300, lam=0.3, lr=0.7) -> dict:
    """Final iterates and one-hot choices ('1' = DPO, one string per seed) of every setting."""
    runs = {}
    for pname in ("toy2d", "loglinear5d", "quad2d"):
        problem = get_problem(pname)
        optima = Geometry(problem).f_star
        for name in RULES:
            for k in (1, 10) if name == "maxright" else (1,):
                for batch in (None,) if pname == "quad2d" else (None, 2):
                    rule = make_rule(name, lam, steps, optima=optima, refresh_every=k)
                    key = f"{pname} {name} K={k} B={batch}"
                    runs[key] = one_run(problem, rule, seeds, steps, lr, batch)
    return {"seeds": list(seeds), "steps": steps, "lam": lam, "lr": lr, "runs": runs}


def test_same_choices_and_iterates_as_the_reference_engine():
    want = json.loads(REFERENCE.read_text())
    got = reference_runs(want["seeds"], want["steps"], want["lam"], want["lr"])
    assert got["runs"].keys() == want["runs"].keys()
    for key, run in want["runs"].items():
        assert got["runs"][key]["choices"] == run["choices"], key
        np.testing.assert_allclose(got["runs"][key]["theta"], run["theta"], rtol=0, atol=1e-12,
                                   err_msg=key)  # fmt: skip


@pytest.mark.parametrize(
    "rule", [AlRight(0.37), Sequential("sft", 21), Sequential("dpo", 0), Mix(0.2)], ids=repr
)
def test_a_block_of_choices_equals_the_step_by_step_choices(rule):
    state = rule.init(np.array([0, 5, 123456789, 2**40]))
    block = rule.choose_block(state, 7, 50)
    for t in range(7, 50):
        weights, _ = rule.choose(state, t, None)
        for k in ("sft", "dpo"):
            assert np.array_equal(block[k][t - 7], weights[k])


def test_the_blocked_hash_equals_the_hash_of_each_key():
    seeds, steps = np.array([0, 3, 2**62 + 5]), np.arange(10, 14, dtype=np.uint64)
    block = hash64(seeds, steps[:, None], STREAM_CHOICE, 2)
    for i, t in enumerate(steps):
        for j, s in enumerate(seeds):
            assert block[i, j] == hash64(int(s), int(t), STREAM_CHOICE, 2)
    assert uniform(seeds, steps[:, None]).shape == (4, 3)


PADDED = {
    "kind": "loglinear", "beta": 0.7, "theta_ref": [0.1, -0.2, 0.3],
    "features": [[[1, 0, 0], [0, 1, 0]], [[0, 0, 1], [1, 1, 0], [0.5, -1, 2], [0, 0, 0]]],
    "sft": [{"prompt": 0, "response": 1, "weight": 1}, {"prompt": 1, "response": 2, "weight": 2},
            {"prompt": 1, "response": 0, "weight": 1}],
    "preferences": [{"prompt": 1, "chosen": 3, "rejected": 1, "weight": 1},
                    {"prompt": 0, "chosen": 0, "rejected": 1, "weight": 3}],
}  # fmt: skip


@pytest.mark.parametrize("which", ["padded", "random", "quad2d"])
def test_fused_gradient_and_loss_equal_grad_and_value(which):
    problem = {
        "padded": lambda: problem_from_dict(PADDED),
        "random": lambda: random_loglinear(np.random.default_rng(4), dim=3, prompts=2),
        "quad2d": lambda: get_problem("quad2d"),
    }[which]()
    theta = np.random.default_rng(0).normal(scale=30.0, size=(6, problem.dim))  # far out too
    for k in ("sft", "dpo"):
        grad, loss = problem.grad_and_loss(k, theta)
        np.testing.assert_allclose(grad, problem.grad(k, theta), rtol=1e-12, atol=1e-14)
        np.testing.assert_allclose(loss(), problem.value(k, theta), rtol=1e-12, atol=1e-14)
        assert np.all(np.isfinite(grad)) and np.all(np.isfinite(loss()))


def test_step_losses_are_values_at_the_pre_step_iterate():
    problem = get_problem("loglinear5d")
    backend = NumpyBackend(problem, np.arange(5))
    backend.theta = np.random.default_rng(1).normal(size=(5, problem.dim))
    before = backend.theta.copy()
    weights = {"sft": np.array([1.0, 0, 0.5, 1, 0]), "dpo": np.array([0.0, 1, 0.5, 0, 0])}
    losses = backend.step(weights, 0.3, 0)
    for k in ("sft", "dpo"):
        want = np.where(weights[k] > 0, problem.value(k, before), np.nan)
        np.testing.assert_allclose(losses[k], want, rtol=1e-13)
    assert np.array_equal(backend.theta[4], before[4])  # a row with no weight does not move
    direction = sum(weights[k][:, None] * problem.grad(k, before) for k in ("sft", "dpo"))
    np.testing.assert_allclose(backend.theta, before - 0.3 * direction, rtol=1e-13)


def test_dpo_value_far_out_has_no_overflow():
    """Margins below −700 take the overflow-free branch of softplus(−m) = −log σ(m)."""
    from scipy.special import log_expit

    problem = get_problem("toy2d")
    theta = np.array([[-800.0, 800.0], [800.0, -800.0], [0.3, 0.1]])
    margins = problem.beta * (theta - problem.theta_ref) @ problem.delta.T
    want = -log_expit(margins) @ problem.pref_weight
    np.testing.assert_allclose(problem.value("dpo", theta), want, rtol=1e-14)
    np.testing.assert_allclose(problem.value("dpo", theta[2:]), want[2:], rtol=1e-14)
