"""Named instances and seeded random-instance generators."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from toyopt.problems.base import Problem
from toyopt.problems.io import problem_from_dict
from toyopt.problems.loglinear import LogLinearProblem
from toyopt.problems.quadratic import QuadraticProblem

# One prompt, three responses with φ = (1,0), (0,1), (0,0), β = 1, θ_ref = 0.
# SFT imitates responses 0/1/2 with weights 0.6/0.3/0.1: θ*_sft = (log 6, log 3), so SFT wants
# response 0 over response 1. The preferences say the opposite, 1 ≻ 0 with weight 0.8 (and 0 ≻ 1
# with 0.2, so that f*_dpo is attained): f_dpo is minimised on the whole line θ₂ − θ₁ = log 4.
TOY2D = {
    "kind": "loglinear",
    "beta": 1.0,
    "theta_ref": [0.0, 0.0],
    "features": [[[1.0, 0.0], [0.0, 1.0], [0.0, 0.0]]],
    "sft": [
        {"prompt": 0, "response": 0, "weight": 0.6},
        {"prompt": 0, "response": 1, "weight": 0.3},
        {"prompt": 0, "response": 2, "weight": 0.1},
    ],
    "preferences": [
        {"prompt": 0, "chosen": 1, "rejected": 0, "weight": 0.8},
        {"prompt": 0, "chosen": 0, "rejected": 1, "weight": 0.2},
    ],
}

# Two 2-D quadratics; H_dpo is singular, so f_dpo's minimisers form the line θ₁ = −1.
QUAD2D = {
    "kind": "quadratic",
    "sft": {"hessian": [[2.0, 0.5], [0.5, 1.0]], "center": [1.0, 0.0]},
    "dpo": {"hessian": [[1.0, 0.0], [0.0, 0.0]], "center": [-1.0, 1.0]},
}


def random_loglinear(
    rng: np.random.Generator,
    dim: int = 4,
    prompts: int = 3,
    responses: int = 4,
    beta: float = 1.0,
    scale: float = 1.0,
) -> LogLinearProblem:
    """A random log-linear instance whose optima are attained.

    Features are N(0, scale²/d); SFT weights on every (prompt, response) are positive (Dirichlet),
    so f*_sft is attained; preferences come in both directions with weights q and 1 − q,
    q ~ U(0.05, 0.95), so f*_dpo is attained too (paper-brief §1: noisy preferences).
    """
    phi = rng.normal(scale=scale / np.sqrt(dim), size=(prompts, responses, dim))
    sft = [
        {"prompt": p, "response": r, "weight": float(w) / prompts}
        for p in range(prompts)
        for r, w in enumerate(rng.dirichlet(np.ones(responses)))
    ]
    prefs = []
    for p in range(prompts):
        a, b = rng.choice(responses, size=2, replace=False)
        q = float(rng.uniform(0.05, 0.95))
        prefs += [
            {"prompt": p, "chosen": int(a), "rejected": int(b), "weight": q},
            {"prompt": p, "chosen": int(b), "rejected": int(a), "weight": 1 - q},
        ]
    theta_ref = rng.normal(scale=0.5, size=dim)
    return problem_from_dict(
        {
            "kind": "loglinear",
            "beta": beta,
            "theta_ref": theta_ref.tolist(),
            "features": phi.tolist(),
            "sft": sft,
            "preferences": prefs,
        },
        "<random_loglinear>",
    )


def random_quadratic(
    rng: np.random.Generator, dim: int = 3, condition: float = 10.0, rank_dpo: int | None = None
) -> QuadraticProblem:
    """Two random quadratics; H_sft has eigenvalues log-spaced in [1/condition, 1]; H_dpo the
    same spectrum on a random ``rank_dpo``-dimensional subspace (singular when rank_dpo < d)."""

    def hessian(rank: int) -> np.ndarray:
        q, _ = np.linalg.qr(rng.normal(size=(dim, dim)))
        eig = np.zeros(dim)
        eig[:rank] = np.logspace(0, -np.log10(condition), rank)
        return (q * eig) @ q.T

    h_sft, h_dpo = hessian(dim), hessian(dim if rank_dpo is None else rank_dpo)
    centers = {k: rng.normal(size=dim) for k in ("sft", "dpo")}
    return QuadraticProblem({"sft": (h_sft + h_sft.T) / 2, "dpo": (h_dpo + h_dpo.T) / 2}, centers)


BUILTINS: dict[str, tuple[str, Callable[[], Problem]]] = {
    "toy2d": (
        "2-D log-linear policy: SFT wants response 0, preferences want response 1 (figures use it)",
        lambda: problem_from_dict(TOY2D, "toy2d"),
    ),
    "quad2d": (
        "two 2-D quadratics, DPO's minimisers a line (closed forms everywhere)",
        lambda: problem_from_dict(QUAD2D, "quad2d"),
    ),
    "loglinear5d": (
        "a fixed random 5-D log-linear instance: 4 prompts, 4 responses each (seed 0)",
        lambda: random_loglinear(np.random.default_rng(0), dim=5, prompts=4, responses=4),
    ),
}


def get_problem(name_or_path: str) -> Problem:
    """A built-in instance by name, else a JSON file by path."""
    if name_or_path in BUILTINS:
        return BUILTINS[name_or_path][1]()
    from toyopt.problems.io import load_problem

    return load_problem(name_or_path)
