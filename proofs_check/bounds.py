"""Last-iterate bounds of (stochastic) subgradient steps, evaluated with the run's own constants.

Setting (1-based, as in the references): x₁ = θ₀, x_{t+1} = x_t − η_t g_t with E[g_t | x_t] a
subgradient of a convex F, η_t > 0 non-increasing. For any u fixed at time s ≤ t, expanding
the square and using convexity gives the one-step inequality

    2η_t E[F(x_t) − F(u)] ≤ E‖x_t − u‖² − E‖x_{t+1} − u‖² + a_t,   a_t = η_t² E‖g_t‖².   (1)

a_t is what :func:`proofs_check.runs.run_snapshots` measures as ``moves``: the mean squared step
length E‖x_{t+1} − x_t‖² (the mean over seeds estimates the expectation; for a deterministic
rule it is exact). Using the measured a_t instead of a worst-case G²η_t² is what "the actual
gradient bounds along the path" means here.

Convex (Orabona 2020, "Last iterate of SGD converges (even in unbounded domains)", Lemma 1 with
(1) at u = x* and at u = x_{T−k}; Shamir & Zhang, ICML 2013, for the technique). With
A(j) = Σ_{t ≤ j} a_t and q_t = E F(x_t) − F*,

    q_T ≤ [½‖x₁ − x*‖² + ½A(T)] / (T η_T) + 1/(2η_T) Σ_{k=1}^{T−1} [A(T) − A(T−k−1)] / (k(k+1)).

No bounded domain and no projection is needed. Sums are evaluated exactly, not bounded by
logarithms; the bound still exceeds a locally quadratic F's gap by about 2(1 + ln T): that
factor is the price of assuming convexity only.

Strongly convex on the span (μ > 0 with ⟨∇F(x), x − x*⟩ ≥ μ‖x − x*‖² wherever the iterates
go, e.g. a quadratic F on the span of its iterates): from (1) at u = x*,
e_{t+1} ≤ max(1 − 2η_tμ, 0) e_t + a_t with e_t = E‖x_t − x*‖², and q_T ≤ (L/2) e_T for L-smooth
F with ∇F(x*) = 0. Equality holds throughout for ½h(x − c)² with noise independent of x.
"""

from __future__ import annotations

import numpy as np
from scipy.signal import fftconvolve


def convex_weights(budgets: np.ndarray, eta: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The convex bound at 0-based budgets n (x_T = θ_n, T = n + 1) as w0·D² + W @ m, with m_s
    the squared move of step s (0-based, s = 0 … len(eta) − 1) and eta[s] its step size.

    Summing Lemma 1's double sum by parts, a_t's coefficient is 1/(2η_T max(1, T − t)):

        q_n ≤ (1/(2η_n)) [D²/(n + 1) + Σ_{s=0}^{n} m_s / max(1, n − s)].
    """
    n = np.asarray(budgets)[:, None]
    s = np.arange(len(eta))[None, :]
    scale = 1.0 / (2.0 * np.asarray(eta, dtype=float)[np.asarray(budgets)])[:, None]
    return scale[:, 0] / (n[:, 0] + 1.0), np.where(s <= n, scale / np.maximum(1, n - s), 0.0)


def convex_bound_all(dist_sq: float, eta: np.ndarray, moves: np.ndarray) -> np.ndarray:
    """:func:`convex_weights`'s bound at every budget n = 0 … len(moves) − 1 at once (a
    convolution, by FFT: its rounding, ~1e-16 of the sum, is far below the bound's slack)."""
    n = np.arange(len(moves))
    weighted = fftconvolve(moves, 1.0 / np.maximum(1, n))[: len(moves)]
    return (dist_sq / (n + 1) + weighted) / (2 * np.asarray(eta, dtype=float)[: len(moves)])


def strong_weights(
    budgets: np.ndarray, eta: np.ndarray, mu: float
) -> tuple[np.ndarray, np.ndarray]:
    """The strongly convex distance bound e_n ≤ w0·D² + W @ m at 0-based budgets n, from
    e_{s+1} ≤ c_s e_s + m_s, c_s = max(1 − 2η_sμ, 0)."""
    c = np.maximum(1.0 - 2.0 * np.asarray(eta, dtype=float) * mu, 0.0)
    w0, weights = np.empty(len(budgets)), np.zeros((len(budgets), len(eta)))
    for r, b in enumerate(budgets):
        weights[r, :b] = np.cumprod(np.concatenate([c[1:b], [1.0]])[::-1])[::-1]  # Π c_{s+1…b−1}
        w0[r] = np.prod(c[:b])
    return w0, weights
