"""Values, gradients, Hessians and constants of the toy problems."""

import numpy as np
import pytest
from helpers import finite_difference_grad
from hypothesis import given
from hypothesis import strategies as st

from toyopt.problems import get_problem, random_loglinear, random_quadratic
from toyopt.rules import OBJECTIVES

seeds = st.integers(0, 2**32 - 1)


def random_problem(seed: int, kind: str):
    rng = np.random.default_rng(seed)
    if kind == "quadratic":
        return random_quadratic(
            rng, dim=int(rng.integers(1, 6)), condition=float(rng.uniform(1, 100))
        )
    return random_loglinear(
        rng,
        dim=int(rng.integers(1, 6)),
        prompts=int(rng.integers(1, 4)),
        responses=int(rng.integers(2, 5)),
        beta=float(rng.uniform(0.05, 3)),
        scale=float(rng.uniform(0.2, 3)),
    )


@given(seeds, st.sampled_from(["loglinear", "quadratic"]))
def test_gradients_match_finite_differences(seed, kind):
    problem = random_problem(seed, kind)
    theta = np.random.default_rng(seed + 1).normal(size=(3, problem.dim))
    for k in OBJECTIVES:
        fd = finite_difference_grad(lambda t, k=k: problem.value(k, t), theta)
        np.testing.assert_allclose(problem.grad(k, theta), fd, atol=1e-6, rtol=1e-5)


@given(seeds, st.sampled_from(["loglinear", "quadratic"]))
def test_hessians_match_finite_differences_of_gradients(seed, kind):
    problem = random_problem(seed, kind)
    theta = np.random.default_rng(seed + 2).normal(size=problem.dim)
    for k in OBJECTIVES:
        eps = 1e-6
        cols = [
            (problem.grad(k, theta + eps * e) - problem.grad(k, theta - eps * e))[0] / (2 * eps)
            for e in np.eye(problem.dim)
        ]
        np.testing.assert_allclose(problem.hessian(k, theta), np.stack(cols, 1), atol=1e-6)


@given(seeds, st.sampled_from(["loglinear", "quadratic"]))
def test_gradients_lie_in_the_span_and_respect_the_constants(seed, kind):
    problem = random_problem(seed, kind)
    theta = np.random.default_rng(seed + 3).normal(scale=3, size=(20, problem.dim))
    for k in OBJECTIVES:
        g, q = problem.grad(k, theta), problem.span(k)
        np.testing.assert_allclose(g - g @ q @ q.T, 0, atol=1e-9)
        assert np.all(np.linalg.norm(g, axis=1) <= problem.grad_bound(k) + 1e-9)
        for t in theta[:3]:
            assert np.linalg.eigvalsh(problem.hessian(k, t))[-1] <= problem.smoothness(k) + 1e-9


def test_minibatch_gradients_are_unbiased():
    problem = get_problem("loglinear5d")
    theta = np.tile(np.random.default_rng(0).normal(size=problem.dim), (20000, 1))
    seeds = np.arange(20000)
    for k in OBJECTIVES:
        g, loss = problem.sample_grad(k, theta, seeds, step=7, batch=3)
        exact = problem.grad(k, theta[:1])[0]
        se = g.std(axis=0) / np.sqrt(len(g)) + 1e-12
        assert np.all(np.abs(g.mean(axis=0) - exact) < 5 * se)  # 5 standard errors
        assert abs(loss.mean() - problem.value(k, theta[:1])[0]) < 5 * loss.std() / np.sqrt(
            len(loss)
        )


def test_minibatches_are_keyed_by_seed_and_step():
    problem = get_problem("toy2d")
    theta = np.zeros((3, 2))
    a, _ = problem.sample_grad("sft", theta, np.array([1, 2, 1]), step=3, batch=2)
    b, _ = problem.sample_grad("sft", theta[:1], np.array([1]), step=3, batch=2)
    np.testing.assert_array_equal(a[0], a[2])
    np.testing.assert_array_equal(a[0], b[0])


def test_quadratic_has_no_minibatches():
    with pytest.raises(ValueError, match="no data"):
        get_problem("quad2d").sample_grad("sft", np.zeros((1, 2)), np.array([0]), 0, 1)
