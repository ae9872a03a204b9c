"""The paper's theory setting: a log-linear (softmax) policy over a finite response set.

π_θ(y|x) = exp(θᵀφ(x,y)) / Σ_{y'} exp(θᵀφ(x,y')),  φ(x,y) ∈ R^d.

- f_sft(θ) = −Σ_i w_i log π_θ(y_i|x_i): log-sum-exp of affine maps, convex;
  ∇f_sft = Σ_i w_i (E_{y~π_θ(·|x_i)} φ(x_i,y) − φ(x_i,y_i)), ∇²f_sft = Σ_i w_i Cov_{π_θ(·|x_i)} φ.
- f_dpo(θ) = Σ_j w_j softplus(−m_j), m_j = β (θ − θ_ref)ᵀ Δφ_j, Δφ_j = φ(x_j,y_w) − φ(x_j,y_l):
  the normalisers cancel, so f_dpo is a logistic loss of an affine map (paper-brief §1);
  ∇f_dpo = −β Σ_j w_j σ(−m_j) Δφ_j, ∇²f_dpo = β² Σ_j w_j σ(m_j) σ(−m_j) Δφ_j Δφ_jᵀ.

Data weights are normalised within each data set. Prompts may have different numbers of
responses: ``features`` is padded and ``mask`` marks the real responses.
"""

from __future__ import annotations

import numpy as np
from scipy.special import expit, log_expit

from toyopt.problems.base import Problem, as_rows, orthonormal_basis
from toyopt.rng import STREAM_BATCH, uniform


class LogLinearProblem(Problem):
    kind = "loglinear"

    def __init__(
        self,
        features: np.ndarray,
        mask: np.ndarray,
        sft: dict[str, np.ndarray],
        preferences: dict[str, np.ndarray],
        beta: float,
        theta_ref: np.ndarray,
        start: np.ndarray | None = None,
    ):
        self.features = np.asarray(features, dtype=float)  # (P, R, d)
        self.mask = np.asarray(mask, dtype=bool)  # (P, R)
        self.beta = float(beta)
        self.theta_ref = np.asarray(theta_ref, dtype=float)
        self.dim = self.features.shape[2]
        # Training starts from the reference policy unless told otherwise, as in the LLM runs.
        self.start = self.theta_ref.copy() if start is None else np.asarray(start, dtype=float)
        self.sft_prompt = np.asarray(sft["prompt"], dtype=int)
        self.sft_response = np.asarray(sft["response"], dtype=int)
        self.sft_weight = _normalised(sft["weight"])
        self.pref_prompt = np.asarray(preferences["prompt"], dtype=int)
        self.pref_chosen = np.asarray(preferences["chosen"], dtype=int)
        self.pref_rejected = np.asarray(preferences["rejected"], dtype=int)
        self.pref_weight = _normalised(preferences["weight"])
        # Δφ_j for every preference triple, and the weight each prompt carries in f_sft.
        phi = self.features
        self.delta = (
            phi[self.pref_prompt, self.pref_chosen] - phi[self.pref_prompt, self.pref_rejected]
        )
        self.prompt_weight = np.bincount(
            self.sft_prompt, weights=self.sft_weight, minlength=len(phi)
        )
        self.sft_target = self.sft_weight @ phi[self.sft_prompt, self.sft_response]
        # Response-major constants of the batched kernels below; row r·P + p is φ(p, r) − t.
        self._shifted = (phi - self.sft_target).transpose(1, 0, 2).reshape(-1, self.dim)
        pad = np.where(self.mask.T, 0.0, -np.inf)[:, :, None]  # (R, P, 1)
        self._bias = pad if not self.mask.all() else None
        self._prompt_weight_col = self.prompt_weight[:, None]
        self._scaled_delta = self.beta * self.delta  # (J, d)
        self._ref_margin = (self._scaled_delta @ self.theta_ref)[:, None]  # (J, 1)
        self._neg_weight = -self.pref_weight[:, None]

    # -- policy --------------------------------------------------------------------------
    def _logits(self, theta: np.ndarray) -> np.ndarray:
        z = np.einsum("sd,prd->spr", as_rows(theta), self.features)
        return np.where(self.mask, z, -np.inf)

    def log_policy(self, theta: np.ndarray) -> np.ndarray:
        """log π_θ(y|x) for every prompt and response: shape (S, P, R)."""
        z = self._logits(theta)
        return z - _logsumexp(z)[..., None]

    def _mean_features(self, theta: np.ndarray) -> np.ndarray:
        """E_{y~π_θ(·|x)} φ(x,y) per row and prompt: (S, P, d)."""
        return np.einsum("spr,prd->spd", np.exp(self.log_policy(theta)), self.features)

    def _margins(self, theta: np.ndarray) -> np.ndarray:
        return self._margins_t(as_rows(theta)).T  # (S, m)

    # -- objectives ----------------------------------------------------------------------
    # The toy engine calls these once per step for up to thousands of rows, so they work on
    # response-major arrays (R, P, S), where reductions over the few responses are elementwise
    # operations between contiguous rows, and they make few numpy calls (each costs about a
    # microsecond whatever its size). The logits use φ(p, r) − t, t = Σ_i w_i φ(x_i, y_i) the
    # SFT target: softmax is unchanged (a shift per prompt) and, as Σ_p w_p = 1,
    #   f_sft = Σ_p w_p logsumexp_r θ·(φ(p, r) − t),   ∇f_sft = Σ_{p,r} w_p π_θ(r|p) (φ(p, r) − t).
    def _softmax_parts(self, theta: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """exp(z − max) (R, P, S), the max (P, S) and the normaliser Σ_r exp(z − max) (P, S)."""
        z = (self._shifted @ theta.T).reshape(self.mask.shape[1], self.mask.shape[0], -1)
        if self._bias is not None:
            z += self._bias  # −inf on padded responses
        top = z.max(axis=0)
        z -= top
        np.exp(z, out=z)
        return z, top, z.sum(axis=0)

    def _sft_value(self, top: np.ndarray, total: np.ndarray) -> np.ndarray:
        lse = np.log(total)
        lse += top
        return self.prompt_weight @ lse

    def _margins_t(self, theta: np.ndarray) -> np.ndarray:
        """m = β (θ − θ_ref)·Δφ_j, shape (J, S)."""
        m = self._scaled_delta @ theta.T
        m -= self._ref_margin
        return m

    def value(self, objective: str, theta: np.ndarray) -> np.ndarray:
        theta = as_rows(theta)
        if objective == "sft":
            return self._sft_value(*self._softmax_parts(theta)[1:])
        return self.pref_weight @ _softplus_neg(self._margins_t(theta))

    def grad(self, objective: str, theta: np.ndarray) -> np.ndarray:
        return self.grad_and_loss(objective, theta)[0]

    def grad_and_loss(self, objective: str, theta: np.ndarray):
        theta = as_rows(theta)
        if objective == "sft":
            e, top, total = self._softmax_parts(theta)
            e *= self._prompt_weight_col / total  # w_p π_θ(r|p), (R, P, S)
            grad = e.reshape(-1, len(theta)).T @ self._shifted
            return grad, lambda: self._sft_value(top, total)
        m = self._margins_t(theta)
        with np.errstate(over="ignore"):  # exp(m) = inf gives σ(−m) = 0, as it should
            sig = np.exp(m)
        sig += 1.0
        np.divide(self._neg_weight, sig, out=sig)  # −w_j σ(−m_j)
        return sig.T @ self._scaled_delta, lambda: self.pref_weight @ _softplus_neg(m)

    def hessian(self, objective: str, theta: np.ndarray) -> np.ndarray:
        theta = np.asarray(theta, dtype=float).reshape(1, -1)
        if objective == "sft":
            pi = np.exp(self.log_policy(theta))[0]  # (P, R)
            mean = np.einsum("pr,prd->pd", pi, self.features)
            second = np.einsum("pr,pri,prj->pij", pi, self.features, self.features)
            cov = second - np.einsum("pi,pj->pij", mean, mean)
            return np.einsum("p,pij->ij", self.prompt_weight, cov)
        m = self._margins(theta)[0]
        c = self.beta**2 * self.pref_weight * expit(m) * expit(-m)
        return np.einsum("j,ji,jk->ik", c, self.delta, self.delta)

    def sample_rows(self, objective: str, seeds: np.ndarray, step: int, batch: int) -> np.ndarray:
        """Indices (S, B) of ``batch`` data rows per seed, drawn with replacement with
        probability equal to their data weight, keyed by (seed, step)."""
        weights = self.sft_weight if objective == "sft" else self.pref_weight
        u = uniform(np.asarray(seeds)[:, None], step, STREAM_BATCH[objective], np.arange(batch))
        return np.minimum(np.searchsorted(np.cumsum(weights), u, side="right"), len(weights) - 1)

    def sample_grad(
        self, objective: str, theta: np.ndarray, seeds: np.ndarray, step: int, batch: int
    ) -> tuple[np.ndarray, np.ndarray]:
        """The mean per-row gradient and loss of the rows :meth:`sample_rows` draws: an unbiased
        estimate of ∇f."""
        theta = as_rows(theta)
        rows = self.sample_rows(objective, seeds, step, batch)
        idx = np.arange(len(theta))[:, None]
        if objective == "sft":
            p, y = self.sft_prompt[rows], self.sft_response[rows]  # (S, B)
            log_pi = self.log_policy(theta)  # (S, P, R)
            mean = np.einsum("spr,prd->spd", np.exp(log_pi), self.features)
            per_row = mean[idx, p] - self.features[p, y]
            return per_row.mean(axis=1), -log_pi[idx, p, y].mean(axis=1)
        m = self._margins(theta)[idx, rows]  # (S, B)
        per_row = -self.beta * expit(-m)[..., None] * self.delta[rows]
        return per_row.mean(axis=1), -log_expit(m).mean(axis=1)

    # -- geometry and constants ----------------------------------------------------------
    def _sft_differences(self) -> np.ndarray:
        """φ(x_i, y_i) − φ(x_i, r) for every SFT row i of positive weight and response r."""
        keep = self.sft_weight > 0
        p, y = self.sft_prompt[keep], self.sft_response[keep]
        diffs = self.features[p, y][:, None, :] - self.features[p]  # (n, R, d)
        return diffs[self.mask[p]]

    def span(self, objective: str) -> np.ndarray:
        rows = self._sft_differences() if objective == "sft" else self.delta[self.pref_weight > 0]
        return orthonormal_basis(rows, self.dim)

    def recession_rows(self, objective: str) -> np.ndarray:
        # f_sft recedes along v iff v·(φ(x_i,y_i) − φ(x_i,r)) ≥ 0 for all rows and responses;
        # f_dpo recedes along v iff v·Δφ_j ≥ 0 for all preference triples.
        return self._sft_differences() if objective == "sft" else self.delta[self.pref_weight > 0]

    def grad_bound(self, objective: str) -> float:
        """‖∇f_sft‖ ≤ max_{p,r,r'} ‖φ(p,r) − φ(p,r')‖ (a difference of a mean and a point of the
        same convex hull); ‖∇f_dpo‖ ≤ β max_j ‖Δφ_j‖ (since σ ≤ 1 and Σ w_j = 1)."""
        if objective == "sft":
            return max(self._prompt_diameters()[self.prompt_weight > 0], default=0.0)
        return self.beta * float(np.max(np.linalg.norm(self.delta, axis=1), initial=0.0))

    def smoothness(self, objective: str) -> float:
        """L_sft = max_p diam_p² / 4 (the variance of a variable confined to an interval of
        length D is at most D²/4); L_dpo = β²/4 ‖Σ_j w_j Δφ_j Δφ_jᵀ‖ (σ(m)σ(−m) ≤ 1/4)."""
        if objective == "sft":
            return max(self._prompt_diameters()[self.prompt_weight > 0], default=0.0) ** 2 / 4
        gram = np.einsum("j,ji,jk->ik", self.pref_weight, self.delta, self.delta)
        return self.beta**2 / 4 * float(np.linalg.eigvalsh(gram)[-1])

    def _prompt_diameters(self) -> np.ndarray:
        d = self.features[:, :, None, :] - self.features[:, None, :, :]
        both = self.mask[:, :, None] & self.mask[:, None, :]
        return np.where(both, np.linalg.norm(d, axis=-1), 0.0).max(axis=(1, 2))

    def to_json(self) -> dict:
        features = [self.features[p][self.mask[p]].tolist() for p in range(self.features.shape[0])]
        return {
            "kind": self.kind,
            "beta": self.beta,
            "theta_ref": self.theta_ref.tolist(),
            "start": self.start.tolist(),
            "features": features,
            "sft": [
                {"prompt": int(p), "response": int(r), "weight": float(w)}
                for p, r, w in zip(self.sft_prompt, self.sft_response, self.sft_weight)
            ],
            "preferences": [
                {"prompt": int(p), "chosen": int(c), "rejected": int(r), "weight": float(w)}
                for p, c, r, w in zip(
                    self.pref_prompt, self.pref_chosen, self.pref_rejected, self.pref_weight
                )
            ],
        }


def _softplus_neg(m: np.ndarray) -> np.ndarray:
    """softplus(−m) = −log σ(m) = log1p(exp(−m)); where exp(−m) would overflow (m < −700),
    max(−m, 0) + log1p(exp(−|m|)) instead (the value is then −m to double precision)."""
    if m.size and m.min() < -700.0:
        out = np.log1p(np.exp(-np.abs(m)))
        out += np.maximum(-m, 0.0)
        return out
    return np.log1p(np.exp(-m))


def _logsumexp(z: np.ndarray) -> np.ndarray:
    """log Σ exp over the last axis (masked entries are −inf); scipy's is slow on small arrays."""
    top = z.max(axis=-1, keepdims=True)
    return np.log(np.exp(z - top).sum(axis=-1)) + top[..., 0]


def _normalised(weights: np.ndarray) -> np.ndarray:
    weights = np.asarray(weights, dtype=float)
    return weights / weights.sum()


# A data set that contributes nothing: the unused half of a one-objective LogLinearProblem.
_NO_SFT = {"prompt": [0], "response": [0], "weight": [1.0]}
_NO_PREFERENCES = {"prompt": [0], "chosen": [0], "rejected": [0], "weight": [1.0]}


class NamedLogLinearProblem(Problem):
    """The log-linear policy with K ≥ 2 named objectives over the same features, β and θ_ref:
    each is an SFT set (f = −Σ_i w_i log π_θ(y_i|x_i)) or a preference set (DPO's loss), with
    its weights normalised within the set. Each objective is the matching half of a
    :class:`LogLinearProblem`, so values, gradients, Hessians, spans and constants are that
    class's, and the two-objective problem is unchanged."""

    kind = "loglinear"

    def __init__(
        self,
        features: np.ndarray,
        mask: np.ndarray,
        sets: dict[str, tuple[str, dict]],
        beta: float,
        theta_ref: np.ndarray,
        start: np.ndarray | None = None,
    ):
        if len(sets) < 2:
            raise ValueError("a named log-linear problem needs two or more objectives")
        self.objectives = tuple(sets)
        self.sets = dict(sets)
        self.parts: dict[str, tuple[LogLinearProblem, str]] = {}
        for name, (kind, rows) in sets.items():
            if kind == "sft":
                sub = LogLinearProblem(
                    features, mask, rows, _NO_PREFERENCES, beta, theta_ref, start
                )
                self.parts[name] = (sub, "sft")
            elif kind == "preferences":
                sub = LogLinearProblem(features, mask, _NO_SFT, rows, beta, theta_ref, start)
                self.parts[name] = (sub, "dpo")
            else:
                raise ValueError(f"objective {name!r}: kind must be 'sft' or 'preferences'")
        first = self.parts[self.objectives[0]][0]
        self.dim, self.start, self.beta = first.dim, first.start, first.beta
        self.features, self.mask, self.theta_ref = first.features, first.mask, first.theta_ref

    def _part(self, objective: str) -> tuple[LogLinearProblem, str]:
        return self.parts[objective]

    def value(self, objective: str, theta: np.ndarray) -> np.ndarray:
        sub, part = self._part(objective)
        return sub.value(part, theta)

    def grad(self, objective: str, theta: np.ndarray) -> np.ndarray:
        sub, part = self._part(objective)
        return sub.grad(part, theta)

    def grad_and_loss(self, objective: str, theta: np.ndarray):
        sub, part = self._part(objective)
        return sub.grad_and_loss(part, theta)

    def hessian(self, objective: str, theta: np.ndarray) -> np.ndarray:
        sub, part = self._part(objective)
        return sub.hessian(part, theta)

    def span(self, objective: str) -> np.ndarray:
        sub, part = self._part(objective)
        return sub.span(part)

    def recession_rows(self, objective: str) -> np.ndarray:
        sub, part = self._part(objective)
        return sub.recession_rows(part)

    def grad_bound(self, objective: str) -> float:
        sub, part = self._part(objective)
        return sub.grad_bound(part)

    def smoothness(self, objective: str) -> float:
        sub, part = self._part(objective)
        return sub.smoothness(part)

    def to_json(self) -> dict:
        out = self.parts[self.objectives[0]][0].to_json()
        del out["sft"], out["preferences"]
        out["objectives"] = {}
        for name in self.objectives:
            sub, part = self._part(name)
            key = "sft" if part == "sft" else "preferences"
            out["objectives"][name] = {key: sub.to_json()[key]}
        return out
