"""Problems stated as JSON, validated on load (the format: docs/toy-problems.md).

Every mistake raises :class:`ProblemFormatError` with one line naming the file and the field,
e.g. ``inst.json: field 'sft[2].prompt': index 5 out of range (the problem has 2 prompts)``.
"""

from __future__ import annotations

import difflib
import json
import math
from pathlib import Path
from typing import Any

import numpy as np

from toyopt.problems.base import Problem
from toyopt.problems.loglinear import LogLinearProblem, NamedLogLinearProblem
from toyopt.problems.quadratic import QuadraticProblem
from toyopt.userinput import DuplicateKey, loads_json


class ProblemFormatError(ValueError):
    """A problem file (or dict) that does not follow the documented format."""


class _Checker:
    def __init__(self, source: str):
        self.source = source

    def fail(self, field: str, what: str) -> None:
        where = f"field '{field}': " if field else ""
        raise ProblemFormatError(f"{self.source}: {where}{what}")

    def get(self, obj: Any, key: str, field: str) -> Any:
        if not isinstance(obj, dict):
            self.fail(field, f"expected an object, got {type(obj).__name__}")
        if key not in obj:
            near = difflib.get_close_matches(key, [str(k) for k in obj], n=1, cutoff=0.7)
            hint = f" (found {near[0]!r}: misspelled?)" if near else ""
            self.fail(f"{field}.{key}".lstrip("."), f"missing{hint}")
        return obj[key]

    def number(self, x: Any, field: str, minimum: float | None = None) -> float:
        if isinstance(x, bool) or not isinstance(x, (int, float)):
            self.fail(field, f"expected a number, got {json.dumps(x)[:40]}")
        if not math.isfinite(x):
            self.fail(field, f"expected a finite number, got {x}")
        if minimum is not None and x < minimum:
            self.fail(field, f"must be >= {minimum}, got {x}")
        return float(x)

    def index(self, x: Any, field: str, size: int, what: str) -> int:
        if isinstance(x, bool) or not isinstance(x, int):
            self.fail(field, f"expected an integer index, got {json.dumps(x)[:40]}")
        if not 0 <= x < size:
            self.fail(field, f"index {x} out of range (the problem has {size} {what})")
        return x

    def array(self, x: Any, field: str, ndim: int) -> np.ndarray:
        try:
            arr = np.array(x, dtype=float)
        except (TypeError, ValueError):
            self.fail(field, f"expected a {ndim}-D array of numbers with a regular shape")
        if arr.ndim != ndim or arr.size == 0:
            self.fail(field, f"expected a non-empty {ndim}-D array, got shape {arr.shape}")
        if not np.all(np.isfinite(arr)):
            self.fail(field, "contains a non-finite number")
        return arr

    def rows(self, x: Any, field: str) -> list:
        if not isinstance(x, list) or not x:
            self.fail(field, "expected a non-empty list of objects")
        return x

    def weights(self, w: list[float], field: str) -> None:
        if sum(w) <= 0:
            self.fail(field, "the weights must not all be zero")


def problem_from_dict(data: Any, source: str = "<problem>") -> Problem:
    """Build a problem from its JSON object, validating every field."""
    check = _Checker(source)
    kind = check.get(data, "kind", "")
    if kind == "quadratic":
        return check_finite(_quadratic(data, check), source)
    if kind == "loglinear":
        return check_finite(_loglinear(data, check), source)
    check.fail("kind", f"expected 'loglinear' or 'quadratic', got {json.dumps(kind)[:40]}")
    raise AssertionError  # unreachable


def check_finite(problem: Problem, source: str) -> Problem:
    """f, ∇f and ∇²f of both objectives are finite at the start (numbers that overflow double
    precision there would turn every metric into NaN), else one line naming the field."""
    for k in problem.objectives:
        field = "features" if problem.kind == "loglinear" else k
        with np.errstate(all="ignore"):
            parts = {"the value": problem.value(k, problem.start),
                     "the gradient": problem.grad(k, problem.start),
                     "the Hessian": problem.hessian(k, problem.start)}  # fmt: skip
        for name, value in parts.items():
            if not np.all(np.isfinite(value)):
                raise ProblemFormatError(
                    f"{source}: field '{field}': {name} of f_{k} at the start is not finite"
                    " (the numbers overflow double precision); rescale the problem"
                )
    return problem


def load_problem(path: str | Path) -> Problem:
    """Read and validate a problem JSON file."""
    path = Path(path)
    if path.is_dir():
        raise ProblemFormatError(f"{path} is a directory, not a problem JSON file")
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ProblemFormatError(f"{path}: no such file") from None
    except UnicodeDecodeError as e:
        raise ProblemFormatError(f"{path}: not UTF-8 text (byte {e.start})") from None
    except OSError as e:
        raise ProblemFormatError(f"{path}: cannot read ({e.strerror})") from None
    try:
        data = loads_json(text, str(path))
    except json.JSONDecodeError as e:
        raise ProblemFormatError(f"{path}: line {e.lineno}: invalid JSON ({e.msg})") from None
    except RecursionError:
        raise ProblemFormatError(f"{path}: nested too deeply to be a problem") from None
    except DuplicateKey as e:
        raise ProblemFormatError(str(e)) from None
    return problem_from_dict(data, str(path))


def save_problem(problem: Problem, path: str | Path) -> None:
    from toyopt.files import write_text

    write_text(Path(path), json.dumps(problem.to_json(), indent=1) + "\n")  # atomic, no link


def _quadratic(data: dict, check: _Checker) -> QuadraticProblem:
    """Two objectives ``sft`` and ``dpo`` at the top level, or K ≥ 2 named ones under
    ``objectives``: ``{"objectives": {NAME: {"hessian": H, "center": c}, ...}}``."""
    hessians, centers = {}, {}
    if "objectives" in data:
        named = data["objectives"]
        if not isinstance(named, dict) or len(named) < 2:
            check.fail("objectives", "expected an object naming two or more objectives")
        clash = [k for k in ("sft", "dpo") if k in data]
        if clash:
            check.fail(
                clash[0], "give the objectives either at the top level or under 'objectives'"
            )
        parts = {k: (named[k], f"objectives.{k}") for k in named}
    else:
        parts = {k: (check.get(data, k, ""), k) for k in ("sft", "dpo")}
    for k, (part, where) in parts.items():
        if not isinstance(k, str) or not k.strip() or k != k.strip() or k == "seeds":
            check.fail(where, "an objective's name must be a non-empty word")
        h = check.array(check.get(part, "hessian", where), f"{where}.hessian", 2)
        c = check.array(check.get(part, "center", where), f"{where}.center", 1)
        if h.shape != (len(c), len(c)):
            check.fail(
                f"{where}.hessian",
                f"expected shape ({len(c)}, {len(c)}) to match the center, got {h.shape}",
            )
        if not np.allclose(h, h.T, rtol=1e-9, atol=1e-12):
            check.fail(f"{where}.hessian", "must be symmetric")
        lowest = np.linalg.eigvalsh(h)[0]
        if lowest < -1e-10 * max(1.0, np.abs(h).max()):
            check.fail(
                f"{where}.hessian",
                f"must be positive semi-definite (smallest eigenvalue {lowest:.3g})",
            )
        hessians[k], centers[k] = h, c
    names = list(parts)
    first = names[0]
    for k in names[1:]:
        if len(centers[k]) != len(centers[first]):
            check.fail(
                f"{parts[k][1]}.center",
                f"dimension {len(centers[k])} differs from {first}'s {len(centers[first])}",
            )
    return QuadraticProblem(hessians, centers, _start(data, check, len(centers[first])))


def _start(data: dict, check: _Checker, dim: int) -> np.ndarray | None:
    """The optional initial iterate ``start`` (d numbers)."""
    if "start" not in data:
        return None
    start = check.array(data["start"], "start", 1)
    if len(start) != dim:
        check.fail("start", f"expected {dim} numbers, got {len(start)}")
    return start


def _loglinear(data: dict, check: _Checker) -> LogLinearProblem:
    beta = check.number(check.get(data, "beta", ""), "beta", minimum=0.0)
    if beta == 0:
        check.fail("beta", "must be > 0")
    theta_ref = check.array(check.get(data, "theta_ref", ""), "theta_ref", 1)
    dim = len(theta_ref)
    raw = check.rows(check.get(data, "features", ""), "features")
    prompts = []
    for p, block in enumerate(raw):
        arr = check.array(block, f"features[{p}]", 2)
        if arr.shape[1] != dim:
            check.fail(
                f"features[{p}]",
                f"each feature vector needs {dim} numbers (the length of theta_ref), got {arr.shape[1]}",
            )
        prompts.append(arr)
    width = max(len(a) for a in prompts)
    features = np.zeros((len(prompts), width, dim))
    mask = np.zeros((len(prompts), width), dtype=bool)
    for p, arr in enumerate(prompts):
        features[p, : len(arr)], mask[p, : len(arr)] = arr, True

    def response(row: dict, key: str, field: str, p: int) -> int:
        return check.index(
            check.get(row, key, field),
            f"{field}.{key}",
            len(prompts[p]),
            f"responses for prompt {p}",
        )

    def sft_rows(raw: Any, where: str) -> dict[str, list]:
        sft: dict[str, list] = {"prompt": [], "response": [], "weight": []}
        for i, row in enumerate(check.rows(raw, where)):
            f = f"{where}[{i}]"
            p = check.index(check.get(row, "prompt", f), f"{f}.prompt", len(prompts), "prompts")
            sft["prompt"].append(p)
            sft["response"].append(response(row, "response", f, p))
            sft["weight"].append(check.number(row.get("weight", 1.0), f"{f}.weight", minimum=0.0))
        check.weights(sft["weight"], where)
        return sft

    def preference_rows(raw: Any, where: str) -> dict[str, list]:
        prefs: dict[str, list] = {"prompt": [], "chosen": [], "rejected": [], "weight": []}
        for j, row in enumerate(check.rows(raw, where)):
            f = f"{where}[{j}]"
            p = check.index(check.get(row, "prompt", f), f"{f}.prompt", len(prompts), "prompts")
            c, r = response(row, "chosen", f, p), response(row, "rejected", f, p)
            if c == r:
                check.fail(f"{f}.rejected", "the chosen and rejected responses are the same")
            prefs["prompt"].append(p)
            prefs["chosen"].append(c)
            prefs["rejected"].append(r)
            prefs["weight"].append(check.number(row.get("weight", 1.0), f"{f}.weight", minimum=0.0))
        check.weights(prefs["weight"], where)
        return prefs

    if "objectives" in data:
        return _named_loglinear(data, check, sft_rows, preference_rows,
                                (features, mask, beta, theta_ref, dim))  # fmt: skip
    sft = sft_rows(check.get(data, "sft", ""), "sft")
    prefs = preference_rows(check.get(data, "preferences", ""), "preferences")
    start = _start(data, check, dim)
    return LogLinearProblem(features, mask, sft, prefs, beta, theta_ref, start)


def _named_loglinear(data: dict, check: _Checker, sft_rows, preference_rows, shared: tuple):
    """K ≥ 2 named objectives, each an SFT set or a preference set over the shared features:
    ``{"objectives": {NAME: {"sft": [rows]}, NAME: {"preferences": [rows]}, ...}}``."""
    named = data["objectives"]
    if not isinstance(named, dict) or len(named) < 2:
        check.fail("objectives", "expected an object naming two or more objectives")
    clash = [k for k in ("sft", "preferences") if k in data]
    if clash:
        check.fail(clash[0], "give the data sets either at the top level or under 'objectives'")
    sets = {}
    for name, part in named.items():
        where = f"objectives.{name}"
        if not name.strip() or name != name.strip() or name == "seeds":
            check.fail(where, "an objective's name must be a non-empty word")
        if (
            not isinstance(part, dict)
            or len(part) != 1
            or next(iter(part)) not in ("sft", "preferences")
        ):
            check.fail(where, 'expected {"sft": [rows]} or {"preferences": [rows]}')
        kind, rows = next(iter(part.items()))
        parse = sft_rows if kind == "sft" else preference_rows
        sets[name] = (kind, parse(rows, f"{where}.{kind}"))
    features, mask, beta, theta_ref, dim = shared
    start = _start(data, check, dim)
    return NamedLogLinearProblem(features, mask, sets, beta, theta_ref, start)
