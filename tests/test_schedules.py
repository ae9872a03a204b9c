"""Step-size schedules: the theory's kinds unchanged, and the language-model decays equal to
transformers' own schedulers after the warmup (an independent implementation)."""

import math

import pytest
import torch

from toyopt.schedules import Schedule


def test_the_theory_kinds_are_unchanged():
    for t in (0, 1, 7, 99):
        assert Schedule("constant", 0.3)(t) == 0.3
        assert Schedule("invsqrt", 0.3)(t) == pytest.approx(0.3 / math.sqrt(t + 1))
        assert Schedule("inv", 0.3)(t) == pytest.approx(0.3 / (t + 1))


def hf_lrs(kind: str, steps: int, warmup: int, lr: float) -> list[float]:
    """The lr transformers' scheduler sets for optimizer steps 0 … steps−1."""
    from transformers import get_scheduler

    opt = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=lr)
    sched = get_scheduler(kind, opt, num_warmup_steps=warmup, num_training_steps=steps)
    out = []
    for _ in range(steps):
        out.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    return out


@pytest.mark.parametrize("kind", ["linear", "cosine"])
@pytest.mark.parametrize("warmup", [0, 5])
def test_decays_equal_transformers_after_the_warmup(kind, warmup):
    steps, lr = 40, 2e-3
    ours = Schedule(kind, lr, steps, warmup)
    theirs = hf_lrs(kind, steps, warmup, lr)
    assert [ours(t) for t in range(warmup, steps)] == pytest.approx(theirs[warmup:], rel=1e-12)
    # our warmup rises linearly from lr/(W+1) (transformers' starts at 0, a step that moves nothing)
    assert [ours(t) for t in range(warmup)] == pytest.approx(
        [lr * (t + 1) / (warmup + 1) for t in range(warmup)]
    )


@pytest.mark.parametrize("kind", ["linear", "cosine"])
def test_min_ratio_is_the_floor_the_decay_approaches(kind):
    s = Schedule(kind, 1.0, 100, 0, 0.1)
    values = [s(t) for t in range(100)]
    assert values[0] == 1.0 and all(a >= b for a, b in zip(values, values[1:]))
    assert 0.1 < values[-1] < 0.11


@pytest.mark.parametrize(
    "args, message",
    [(("linear", 1.0), "needs the budget"), (("cosine", 1.0, 10, 10), "warmup"),
     (("linear", 1.0, 10, 0, 1.5), "min_ratio"), (("step", 1.0), "unknown schedule")],
)  # fmt: skip
def test_bad_schedules_are_refused(args, message):
    with pytest.raises(ValueError, match=message):
        Schedule(*args)
