"""``python -m toyopt``: run an update rule on a toy problem and report where it ends."""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

from toyopt.errors import available_memory, handle, writable_file
from toyopt.pareto import METRICS, Geometry, NamedGeometry
from toyopt.problems import BUILTINS, get_problem
from toyopt.rules import (
    RULE_NAMES,
    SEQUENTIAL,
    make_rule,
    make_weighted_rule,
    weights_from_text,
)
from toyopt.schedules import SCHEDULES, Schedule
from toyopt.simulate import log_spaced, simulate
from toyopt.userinput import DuplicateKey, loads_json


class OneLineParser(argparse.ArgumentParser):
    """Bad arguments are a user's mistake: one line on stderr and exit status 2, no usage dump."""

    def error(self, message: str) -> None:  # type: ignore[override]
        self.exit(2, f"{self.prog}: error: {message}\n")


def check_optima(values: dict, source: str) -> dict[str, float]:
    """f*_sft and f*_dpo as floats: real, finite and >= 0 (each objective is a loss that is never
    negative: a squared distance, a negative log-likelihood, a -log sigmoid), else one line."""
    optima = {}
    for k in ("sft", "dpo"):
        value = values[k]
        if isinstance(value, bool) or not isinstance(value, (int, float, str)):
            raise argparse.ArgumentTypeError(
                f"{source}: '{k}' must be a number, got {json.dumps(value)}"
            )
        try:
            number = float(value)
        except ValueError:
            raise argparse.ArgumentTypeError(
                f"expected 'sft=F,dpo=F' or a JSON file with keys sft and dpo, got {source!r}"
            ) from None
        if not np.isfinite(number):
            raise argparse.ArgumentTypeError(f"optima must be finite numbers, got {source!r}")
        if number < 0:
            raise argparse.ArgumentTypeError(
                f"{source}: '{k}' is {number:g}, but f*_{k} is the minimum of a loss that is never"
                " negative: give a value >= 0"
            )
        optima[k] = number
    return optima


def parse_optima(text: str) -> dict[str, float]:
    """``sft=0.9,dpo=0.5``, or a JSON file holding {"sft": …, "dpo": …}."""
    if Path(text).is_dir():
        raise argparse.ArgumentTypeError(f"{text} is a directory, not an optima JSON file")
    if Path(text).is_file():
        try:
            data = loads_json(Path(text).read_text(encoding="utf-8"), text)
        except (json.JSONDecodeError, UnicodeDecodeError, RecursionError) as e:
            raise argparse.ArgumentTypeError(f"{text}: not a JSON file ({e})") from None
        except DuplicateKey as e:
            raise argparse.ArgumentTypeError(str(e)) from None
        if not isinstance(data, dict) or "sft" not in data or "dpo" not in data:
            raise argparse.ArgumentTypeError(f"{text}: needs the fields 'sft' and 'dpo'")
        return check_optima(data, text)
    try:
        items = [item.split("=", 1) for item in text.split(",")]
        pairs = dict(items)
    except ValueError:
        items, pairs = [], {}
    if len(pairs) < len(items):
        raise argparse.ArgumentTypeError(f"{text!r}: a key is given twice")
    if "sft" not in pairs or "dpo" not in pairs:
        raise argparse.ArgumentTypeError(
            f"expected 'sft=F,dpo=F' or a JSON file with keys sft and dpo, got {text!r}"
        )
    return check_optima(pairs, text)


def parse_weights(text: str) -> dict[str, float]:
    """``sft=0.3,dpo=0.5,extra=0.2``: a weight per named objective, on the simplex."""
    try:
        return weights_from_text(text)
    except ValueError as e:
        raise argparse.ArgumentTypeError(str(e)) from None


def build_parser() -> argparse.ArgumentParser:
    rules = "\n".join(f"  {name:<20} {text}" for name, text in RULE_NAMES.items())
    problems = "\n".join(f"  {name:<20} {text}" for name, (text, _) in BUILTINS.items())
    parser = OneLineParser(
        prog="toyopt",
        description="Joint SFT + DPO training rules on toy problems with known optima.\n"
        "lam is always the weight of DPO: f_mix = lam * f_dpo + (1 - lam) * f_sft.",
        epilog=f"rules:\n{rules}\n\nbuilt-in problems:\n{problems}",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = parser.add_subparsers(dest="command", required=True, parser_class=OneLineParser)
    sub.add_parser("list", help="list the built-in problems")
    run = sub.add_parser(
        "run",
        help="run one rule and print where it ends",
        description="Run one rule on a problem; report objectives, gaps and evaluation counts.",
        epilog=f"rules:\n{rules}\n\nbuilt-in problems:\n{problems}",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    run.add_argument("problem", help="a built-in name (see 'toyopt list') or a problem JSON file")
    run.add_argument(
        "--rule",
        required=True,
        choices=[*RULE_NAMES, SEQUENTIAL],
        metavar="RULE",
        help="one of: " + ", ".join(RULE_NAMES) + f"; for K named objectives {SEQUENTIAL}"
        " (stages in the order of --weights, equal lengths) instead of the sequential-* rules",
    )
    run.add_argument("--lam", type=float, default=0.5, help="DPO weight in [0, 1] (default 0.5)")
    run.add_argument(
        "--weights",
        type=parse_weights,
        help="weights by objective name, e.g. sft=0.3,dpo=0.5,extra=0.2 (on the simplex; for a"
        " problem with K named objectives, default equal; for sft and dpo it sets --lam)",
    )
    run.add_argument(
        "--steps",
        type=int,
        required=True,
        help="total budget in optimizer steps (sequential: both stages together)",
    )
    run.add_argument("--switch", type=int, help="sequential: step of the switch (default steps/2)")
    run.add_argument(
        "--refresh-every",
        type=int,
        default=1,
        help="maxright: evaluate both objectives every K steps (1 = exact rule)",
    )
    run.add_argument(
        "--optima",
        type=parse_optima,
        help="maxright: f* values as 'sft=F,dpo=F' or a JSON file (default: exact)",
    )
    run.add_argument("--lr", type=float, default=1.0, help="base step size alpha_0 (default 1.0)")
    run.add_argument(
        "--schedule",
        choices=list(SCHEDULES),
        default="invsqrt",
        help="step sizes: " + "; ".join(SCHEDULES.values()),
    )
    run.add_argument(
        "--batch", type=int, help="minibatch size for sampled stochastic gradients (default: exact)"
    )
    run.add_argument("--seeds", type=int, default=1, help="number of runs (seeds) to average")
    run.add_argument("--seed", type=int, default=0, help="first seed (runs use seed … seed+M-1)")
    run.add_argument("--json", action="store_true", help="print one JSON object")
    run.add_argument("--out", type=Path, help="write the log-spaced trajectory here (JSON)")
    run.add_argument("--progress", action="store_true", help="show a progress bar")
    return parser


def summarise(metrics: dict[str, np.ndarray]) -> dict[str, float]:
    """Means over seeds, with standard errors as ``<name>_se`` when there are several seeds."""
    out = {}
    for k, v in metrics.items():
        out[k] = float(np.mean(v))
        if len(v) > 1:
            out[f"{k}_se"] = float(np.std(v, ddof=1) / np.sqrt(len(v)))
    return out


def finite_optima(geometry: Geometry, source: str) -> dict[str, float]:
    """f*_sft and f*_dpo, or one line when computing them overflows."""
    try:
        with np.errstate(all="ignore"):
            f_star = geometry.f_star
    except (np.linalg.LinAlgError, FloatingPointError) as e:
        raise ValueError(
            f"{source}: computing the optima failed ({e}); rescale the problem"
        ) from None
    bad = [k for k, v in f_star.items() if not np.isfinite(v)]
    if bad:
        raise ValueError(
            f"{source}: f*_{bad[0]} is {f_star[bad[0]]} (overflow); rescale the problem"
        )
    return f_star


def check_memory(args: argparse.Namespace, dim: int) -> None:
    """Refuse, before any work, a run whose arrays would not fit in the available memory: per
    seed the kept iterates (one d-vector per log-spaced snapshot) and the step's temporaries,
    about three times that (measured on the built-in problems, with margin)."""
    snapshots = len(log_spaced(max(args.steps, 1))) + 10
    need = args.seeds * 8 * 3 * dim * snapshots
    have = available_memory()
    if have is not None and need > have:
        raise ValueError(
            f"--seeds {args.seeds} needs about {need / 2**30:.3g} GiB for {args.steps} steps of a"
            f" {dim}-dimensional problem, more than the {have / 2**30:.3g} GiB available: use"
            " fewer seeds (or run them in several commands)"
        )


def run_command(args: argparse.Namespace) -> int:
    if args.seeds < 1 or args.seed < 0:
        raise ValueError("--seeds must be >= 1 and --seed >= 0")
    if args.out:
        writable_file(args.out, "--out")  # before the run, not after it
    problem = get_problem(args.problem)
    check_memory(args, problem.start.size)
    if problem.objectives != ("sft", "dpo"):
        return run_weighted(args, problem)
    if args.weights is not None:
        if set(args.weights) != {"sft", "dpo"}:
            raise ValueError(
                f"{args.problem}: --weights names {list(args.weights)}, the problem's objectives"
                " are ['sft', 'dpo']"
            )
        args.lam = args.weights["dpo"]
    geometry = Geometry(problem)
    optima = args.optima or finite_optima(geometry, args.problem)
    rule = make_rule(args.rule, args.lam, args.steps, args.switch, optima, args.refresh_every)
    seeds = np.arange(args.seed, args.seed + args.seeds)
    start = time.perf_counter()
    with np.errstate(over="ignore", invalid="ignore"):  # an overflow is reported below
        traj = simulate(problem, rule, args.steps, Schedule(args.schedule, args.lr, args.steps), seeds,
                        batch=args.batch, progress=args.progress)  # fmt: skip
        metrics = summarise(geometry.metrics(traj.final, args.lam))
    seconds = time.perf_counter() - start
    report = {
        "rule": args.rule,
        "lam": args.lam,
        "steps": args.steps,
        "seeds": args.seeds,
        "f_sft_star": geometry.f_star["sft"],
        "f_dpo_star": geometry.f_star["dpo"],
        **metrics,
        "grad_evals": traj.counters.grad_evals,
        "func_evals": traj.counters.func_evals,
        "seconds": seconds,
    }
    overflowed = [k for k, v in report.items() if isinstance(v, float) and not np.isfinite(v)]
    if overflowed:
        raise ValueError(
            f"{args.problem}: {overflowed[0]} is {report[overflowed[0]]} after {args.steps} steps:"
            " the run overflowed (lower --lr, or rescale the problem)"
        )
    if args.out:
        per_step = [summarise(geometry.metrics(theta, args.lam)) for theta in traj.theta]
        from toyopt.files import write_text

        write_text(
            args.out,
            json.dumps(
                {
                    "problem": args.problem,
                    "rule": args.rule,
                    "lam": args.lam,
                    "steps": traj.steps.tolist(),
                    "theta": traj.theta.tolist(),
                    "metrics": {m: [row[m] for row in per_step] for m in METRICS},
                }
            )
            + "\n",
        )
    _print_report(report, args.json)
    return 0


def _print_report(report: dict, as_json: bool) -> None:
    """The report as one JSON object, or as aligned ``name  value`` lines."""
    if as_json:
        print(json.dumps(report))
        return
    width = max(len(k) for k in report)
    for k, v in report.items():
        print(f"{k:<{width}}  {v:.6g}" if isinstance(v, float) else f"{k:<{width}}  {v}")


def run_weighted(args: argparse.Namespace, problem) -> int:
    """A run on a problem with K named objectives (a quadratic, or a log-linear problem with
    several SFT and preference sets). Reports f_k and f*_k for each objective, ``weighted_gap`` = Σ λ_k f_k − min Σ λ_k f_k and
    ``chebyshev_gap`` = max_k λ_k (f_k − f*_k) − its minimum (means and standard errors)."""
    names = problem.objectives
    weights = args.weights or {k: 1.0 / len(names) for k in names}
    if set(weights) != set(names):
        raise ValueError(
            f"{args.problem}: --weights names {list(weights)}, the problem's objectives are"
            f" {list(names)}"
        )
    if args.rule.startswith("sequential-"):
        raise ValueError(
            f"{args.problem} has the objectives {list(names)}: use --rule {SEQUENTIAL} (stages"
            " in the order of --weights)"
        )
    if args.optima is not None or args.switch is not None or args.batch is not None:
        raise ValueError(
            f"{args.problem}: --optima, --switch and --batch are for sft and dpo problems only"
        )
    geometry = NamedGeometry(problem)
    with np.errstate(all="ignore"):
        optima = geometry.f_star
        f_weighted, f_cheb = geometry.weighted(weights).value, geometry.chebyshev(weights).value
    bad = [k for k, v in optima.items() if not np.isfinite(v)]
    if bad:
        raise ValueError(f"{args.problem}: f*_{bad[0]} is {optima[bad[0]]} (overflow); rescale it")
    rule = make_weighted_rule(
        args.rule, weights, args.steps, optima=optima, refresh_every=args.refresh_every
    )
    seeds = np.arange(args.seed, args.seed + args.seeds)

    def metrics(theta: np.ndarray) -> dict[str, float]:
        f = {k: problem.value(k, theta) for k in names}
        return summarise({
            **{f"f_{k}": f[k] for k in names},
            "weighted_gap": sum(w * f[k] for k, w in weights.items()) - f_weighted,
            "chebyshev_gap": np.max([w * (f[k] - optima[k]) for k, w in weights.items()], axis=0)
            - f_cheb,
        })  # fmt: skip

    start = time.perf_counter()
    with np.errstate(over="ignore", invalid="ignore"):
        traj = simulate(problem, rule, args.steps, Schedule(args.schedule, args.lr, args.steps), seeds,
                        progress=args.progress)  # fmt: skip
        final = metrics(traj.final)
    report = {
        "rule": args.rule, "weights": weights, "steps": args.steps, "seeds": args.seeds,
        **{f"f_{k}_star": optima[k] for k in names}, **final,
        "grad_evals": traj.counters.grad_evals, "func_evals": traj.counters.func_evals,
        "seconds": time.perf_counter() - start,
    }  # fmt: skip
    overflowed = [k for k, v in report.items() if isinstance(v, float) and not np.isfinite(v)]
    if overflowed:
        raise ValueError(
            f"{args.problem}: {overflowed[0]} is {report[overflowed[0]]} after {args.steps} steps:"
            " the run overflowed (lower --lr, or rescale the problem)"
        )
    if args.out:
        from toyopt.files import write_text

        per_step = [metrics(theta) for theta in traj.theta]
        data = {"problem": args.problem, "rule": args.rule, "weights": weights,
                "steps": traj.steps.tolist(), "theta": traj.theta.tolist(),
                "metrics": {m: [row[m] for row in per_step] for m in per_step[0]}}  # fmt: skip
        write_text(args.out, json.dumps(data) + "\n")
    _print_report(report, args.json)
    return 0


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.command == "list":
        for name, (text, _) in BUILTINS.items():
            print(f"{name:<14} {text}")
        return 0
    # bad problem files and arguments, I/O, memory, Ctrl-C: one line (toyopt.errors)
    return handle("toyopt", lambda: run_command(args), reduce="--seeds or --steps")
