"""Hypothesis strategies for random toy instances, within documented ranges.

- log-linear: dimension 2–5, 1–3 prompts, 2–4 responses, β ∈ [0.1, 3], feature scale
  ∈ [0.5, 2]; SFT data weights Dirichlet and preference weights q, 1 − q with q ∈ [0.05, 0.95]
  (drawn by ``toyopt.problems.random_loglinear`` from a seed hypothesis chooses), so both optima
  are attained;
- quadratic: dimension 2–4, condition number ∈ [1, 100], DPO Hessian rank 1–d (singular when
  rank < d, so its minimisers form an affine set).
"""

from __future__ import annotations

import numpy as np
from hypothesis import strategies as st

from toyopt.problems import random_loglinear, random_quadratic
from toyopt.problems.base import Problem

DIMS = (2, 5)
BETAS = (0.1, 3.0)
SCALES = (0.5, 2.0)
CONDITIONS = (1.0, 100.0)


@st.composite
def loglinear_problems(draw, betas: tuple[float, float] = BETAS, max_dim: int = DIMS[1]) -> Problem:
    seed = draw(st.integers(0, 2**32 - 1))
    return random_loglinear(
        np.random.default_rng(seed),
        dim=draw(st.integers(DIMS[0], max_dim)),
        prompts=draw(st.integers(1, 3)),
        responses=draw(st.integers(2, 4)),
        beta=draw(st.floats(*betas)),
        scale=draw(st.floats(*SCALES)),
    )


@st.composite
def quadratic_problems(draw) -> Problem:
    seed = draw(st.integers(0, 2**32 - 1))
    dim = draw(st.integers(2, 4))
    return random_quadratic(
        np.random.default_rng(seed),
        dim=dim,
        condition=draw(st.floats(*CONDITIONS)),
        rank_dpo=draw(st.integers(1, dim)),
    )


def problems() -> st.SearchStrategy[Problem]:
    """A log-linear or a quadratic instance."""
    return st.one_of(loglinear_problems(), quadratic_problems())


lams = st.sampled_from((0.1, 0.25, 0.5, 0.75, 0.9))
orders = st.sampled_from(("sft", "dpo"))
