"""``python -m figures [--out DIR] [--quick] [--llm-runs DIR] [--optima FILE] [--study DIR]``:
regenerate every figure as PNG and PDF plus the CSV data it was drawn from."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from tqdm.auto import tqdm

from figures import build
from toyopt.cli import OneLineParser
from toyopt.errors import handle, writable_dir

STEPS = ("toy_contours", "toy_grid", "rates", "k3", "llm", "study")


def parse(argv: list[str] | None) -> argparse.Namespace:
    p = OneLineParser(prog="python -m figures", description=__doc__)
    p.add_argument("--out", type=Path, default=build.DEFAULT_OUT, help="output directory")
    p.add_argument("--quick", action="store_true", help="small budgets (seconds): for tests")
    p.add_argument(
        "--llm-runs",
        type=Path,
        default=None,
        help="directory of toyopt.llm run directories (LLM figures skipped without)",
    )
    p.add_argument(
        "--optima",
        type=Path,
        default=None,
        help="optima.json for the LLM gaps (default: LLM_RUNS/optima.json if present)",
    )
    p.add_argument(
        "--study",
        type=Path,
        default=None,
        help="results directory of toyopt-llm study (runs.csv, curves.csv): the study's figures"
        " (skipped without)",
    )
    p.add_argument(
        "--k3-results",
        type=Path,
        default=None,
        help="results directory of python -m benchmarks.k3_tiny (finals.csv): the K = 3 trade-off"
        " of the tiny model (skipped without; docs/k3-tiny holds the committed one)",
    )
    p.add_argument(
        "--only",
        nargs="+",
        choices=STEPS,
        default=list(STEPS),
        help="draw only these steps (toy_grid = objective space and bars, k3 = K = 3 trade-off)",
    )
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    # a bad run directory, I/O, memory, Ctrl-C: one line (toyopt.errors)
    return handle("figures", lambda: draw(parse(argv)), reduce="the budgets (--quick)")


def draw(args: argparse.Namespace) -> int:
    writable_dir(args.out, "--out")  # before drawing, not after the first figure
    progress = not args.no_progress
    start = time.perf_counter()
    done: list[build.Built] = []
    bar = tqdm([s for s in STEPS if s in args.only], desc="figures", disable=not progress)
    for step in bar:
        bar.set_postfix_str(step)
        if step == "toy_contours":
            done.append(build.contours(args.out, args.quick, progress))
        elif step == "toy_grid":
            done += build.toy_grid(args.out, args.quick, progress)
        elif step == "rates":
            done.append(build.rates(args.out, args.quick))
        elif step == "k3":
            done.append(build.k3(args.out, args.quick))
            done.append(build.k3_llm(args.out, args.k3_results))
        elif step == "llm":
            done += build.llm(args.out, args.llm_runs, args.optima)
        else:
            done.append(build.study(args.out, args.study))
    bar.close()
    for b in done:
        status = f"{len(b.paths)} files" if b.paths else "not drawn"
        print(f"{b.name:22s} {status}" + (f"  ({b.note})" if b.note else ""))
    print(
        f"wrote {sum(len(b.paths) for b in done)} files to {args.out} "
        f"in {time.perf_counter() - start:.1f} s"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
