"""The loop and its backends: metamorphic relations, determinism, resumption, cost counting,
and the same rule giving the same iterates on the numpy and the torch backend."""

import numpy as np
import pytest
import torch
from helpers import SwappedProblem
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from toyopt.backends import NumpyBackend
from toyopt.loop import train
from toyopt.pareto import Geometry
from toyopt.problems import get_problem, random_loglinear, random_quadratic
from toyopt.rules import AlRight, MaxRight, Mix, Sequential, StaleMaxRight, make_rule
from toyopt.schedules import Schedule
from toyopt.simulate import simulate
from toyopt.torch_backend import TorchBackend

SCHEDULE = Schedule("invsqrt", 0.5)


def final(problem, rule, steps=60, seeds=4, **kw):
    return simulate(problem, rule, steps, SCHEDULE, seeds, **kw).final


def no_ties(problem, rule, steps, lam, optima):
    """True when no weighted-gap comparison along the run is within 1e-9 of a tie."""
    gaps = []

    def record(t, weights, losses, values):
        if values is not None:
            gaps.append(
                lam * (values["dpo"] - optima["dpo"]) - (1 - lam) * (values["sft"] - optima["sft"])
            )

    backend = NumpyBackend(problem, np.arange(2))
    train(backend, rule, rule.init(np.arange(2)), steps, SCHEDULE, on_step=record)
    return np.min(np.abs(gaps)) > 1e-9


@settings(deadline=None, max_examples=40)
@given(st.integers(0, 10_000), st.floats(0.05, 0.95))
def test_swapping_objectives_and_lam_leaves_iterates_unchanged(seed, lam):
    rng = np.random.default_rng(seed)
    problem = random_loglinear(rng, dim=3) if seed % 2 else random_quadratic(rng, dim=3)
    swapped = SwappedProblem(problem)
    optima = Geometry(problem).f_star
    swapped_optima = {"sft": optima["dpo"], "dpo": optima["sft"]}
    pairs = [
        (Mix(lam), Mix(1 - lam)),
        (Sequential("sft", 20), Sequential("dpo", 20)),
        (MaxRight(lam, optima), MaxRight(1 - lam, swapped_optima)),
    ]
    assume(no_ties(problem, pairs[2][0], 40, lam, optima))
    for rule, mirrored in pairs:
        np.testing.assert_allclose(
            final(problem, rule, 40, 2), final(swapped, mirrored, 40, 2), rtol=1e-12, atol=1e-12
        )


@pytest.mark.parametrize("lam, only", [(0.0, "sft"), (1.0, "dpo")])
def test_at_lam_0_and_1_alright_mix_and_single_objective_are_identical(lam, only):
    problem = get_problem("loglinear5d")
    single = final(problem, Sequential(only, switch=10**9))
    np.testing.assert_array_equal(final(problem, AlRight(lam)), single)
    np.testing.assert_array_equal(final(problem, Mix(lam)), single)


def test_same_seed_same_iterates_and_rows_are_independent():
    problem = get_problem("toy2d")
    rule = AlRight(0.5)
    a = simulate(problem, rule, 50, SCHEDULE, np.array([3, 7, 11]), batch=2).final
    b = simulate(problem, rule, 50, SCHEDULE, np.array([3, 7, 11]), batch=2).final
    alone = simulate(problem, rule, 50, SCHEDULE, np.array([7]), batch=2).final
    np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(a[1], alone[0])
    assert not np.allclose(a[0], a[1])


def test_a_resumed_run_equals_an_uninterrupted_one():
    problem = get_problem("loglinear5d")
    rule = StaleMaxRight(0.5, Geometry(problem).f_star, refresh_every=4)
    seeds = np.arange(3)
    whole = NumpyBackend(problem, seeds, batch=2)
    train(whole, rule, rule.init(seeds), 50, SCHEDULE)
    first = NumpyBackend(problem, seeds, batch=2)
    state, counters = train(first, rule, rule.init(seeds), 23, SCHEDULE)
    second = NumpyBackend(problem, seeds, batch=2, start=None)
    second.theta = first.theta.copy()
    train(second, rule, state, 50, SCHEDULE, start=23, counters=counters)
    np.testing.assert_array_equal(second.theta, whole.theta)


@pytest.mark.parametrize(
    "name, grads, funcs",
    [
        ("sequential-sft-dpo", {"sft": 50, "dpo": 50}, {"sft": 0, "dpo": 0}),
        ("mix", {"sft": 100, "dpo": 100}, {"sft": 0, "dpo": 0}),
        ("maxright", None, {"sft": 100, "dpo": 100}),
    ],
)
def test_counters_count_what_was_computed(name, grads, funcs):
    problem = get_problem("toy2d")
    rule = make_rule(name, 0.5, 100, optima=Geometry(problem).f_star)
    counters = simulate(problem, rule, 100, SCHEDULE, 1).counters
    if grads is not None:
        assert counters.grad_evals == grads
    assert sum(counters.grad_evals.values()) == (200 if name == "mix" else 100)
    assert counters.func_evals == funcs


def test_rows_that_do_not_need_an_objective_do_not_compute_it():
    class Counting:
        def __init__(self, problem):
            self.problem, self.rows = problem, []

        def __getattr__(self, name):
            return getattr(self.problem, name)

        def grad_and_loss(self, objective, theta):  # what a gradient step calls
            self.rows.append((objective, len(theta)))
            return self.problem.grad_and_loss(objective, theta)

    problem = Counting(get_problem("toy2d"))
    backend = NumpyBackend(problem, np.arange(8))
    weights = {
        "sft": np.array([1.0, 0, 0, 1, 0, 0, 0, 0]),
        "dpo": np.array([0.0, 1, 1, 0, 1, 1, 1, 1]),
    }
    backend.step(weights, 0.1, 0)
    assert sorted(problem.rows) == [("dpo", 6), ("sft", 2)]


def torch_quadratic_backend(problem):
    theta = torch.nn.Parameter(torch.tensor(problem.start, dtype=torch.float64))
    tensors = {
        k: (torch.tensor(problem.hessians[k]), torch.tensor(problem.centers[k]))
        for k in ("sft", "dpo")
    }

    def loss(k):
        h, c = tensors[k]
        return lambda: 0.5 * (theta - c) @ h @ (theta - c)

    backend = TorchBackend({k: loss(k) for k in tensors}, torch.optim.SGD([theta], lr=1.0))
    return backend, theta


@pytest.mark.parametrize(
    "name", ["sequential-sft-dpo", "sequential-dpo-sft", "alright", "mix", "maxright"]
)
def test_numpy_and_torch_backends_give_the_same_iterates(name):
    """The rules are backend-free: one rule object, two backends, one trajectory."""
    problem = random_quadratic(np.random.default_rng(1), dim=4, rank_dpo=2)
    rule = make_rule(name, 0.3, 80, optima={"sft": 0.0, "dpo": 0.0}, refresh_every=1)
    seed = np.array([5])
    numpy_backend = NumpyBackend(problem, seed)
    torch_backend, theta = torch_quadratic_backend(problem)
    state_n, state_t = rule.init(seed), rule.init(seed)
    for t in range(80):
        state_n, _ = train(numpy_backend, rule, state_n, t + 1, SCHEDULE, start=t)
        state_t, _ = train(torch_backend, rule, state_t, t + 1, SCHEDULE, start=t)
        np.testing.assert_allclose(
            theta.detach().numpy(), numpy_backend.theta[0], rtol=1e-12, atol=1e-13
        )


def test_torch_backend_runs_one_seed_at_a_time():
    backend, _ = torch_quadratic_backend(get_problem("quad2d"))
    with pytest.raises(ValueError, match="one seed"):
        backend.step({"sft": np.ones(2), "dpo": np.zeros(2)}, 0.1, 0)
