"""``python -m proofs_check``: run every check and print the table.

Exit status 1 when any record does not hold. Progress goes to stderr. ``--markdown`` prints the
table with notes and the median bound/measured per claim (the README's block); ``--write FILE``
replaces that block in FILE instead, between the markers ``<!-- proofs_check:NAME -->`` and
``<!-- /proofs_check:NAME -->`` (NAME: ``table`` or ``sensitivity``).
"""

from __future__ import annotations

import argparse
import json
import math
import re
import sys
import time
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

from proofs_check.record import CLAIMS, Record, format_table
from proofs_check.suite import jobs


def medians(records: list[Record]) -> str:
    """One line per claim: the median (and range) of bound/measured over its <= records."""
    lines = []
    for claim in CLAIMS:
        ratios = [r.ratio for r in records if r.claim == claim and r.relation == "<="]
        ratios = [x for x in ratios if not math.isnan(x)]
        if ratios:
            lines.append(f"- {claim}: median {np.median(ratios):.3g} (min {min(ratios):.3g}, "
                         f"max {max(ratios):.3g}, {len(ratios)} records)")  # fmt: skip
    return "bound/measured over the `<=` records:\n\n" + "\n".join(lines)


def replace_block(path: Path, name: str, text: str) -> None:
    """Put ``text`` between the ``proofs_check:name`` markers of the file."""
    start, end = f"<!-- proofs_check:{name} -->", f"<!-- /proofs_check:{name} -->"
    old = path.read_text(encoding="utf-8")
    pattern = re.compile(re.escape(start) + ".*?" + re.escape(end), re.S)
    if not pattern.search(old):
        raise SystemExit(f"proofs_check: error: {path} has no {start} ... {end} block")
    path.write_text(pattern.sub(lambda _: f"{start}\n{text}\n{end}", old), encoding="utf-8")


def emit(text: str, block: str, path: Path | None) -> None:
    """Print ``text``, or put it into the named block of ``path``."""
    if path is None:
        print(text)
    else:
        replace_block(path, block, text)


def run_all(quick: bool, only: str | None, parser: argparse.ArgumentParser) -> list[Record]:
    todo = jobs(quick=quick)
    if only:
        key = "L" if only.upper() in ("L1", "L2", "L3", "L4") else only.upper()  # one job: L1-L4
        todo = [j for j in todo if j[0].split()[0] == key]
        if not todo:
            parser.error(f"--only: unknown claim {only!r}; choose one of {', '.join(CLAIMS)}")
    records = []
    bar = tqdm(todo, desc="proofs_check", file=sys.stderr, leave=False)
    for label, run in bar:
        bar.set_postfix_str(label)
        records.extend(run())
    return records


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="proofs_check",
        description=(
            "Numerical checks of the paper's claims C1-C6 with explicit constants, and of its"
            " language-model claims L1-L4 on the tiny model."
        ),
        epilog="\n".join(f"{k}: {v}" for k, v in CLAIMS.items()),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--quick", action="store_true", help="reduced instances and budgets")
    parser.add_argument("--json", action="store_true", help="print the records as a JSON list")
    parser.add_argument(
        "--only", metavar="CLAIM", help="run only one claim, e.g. C2 (L: the language-model claims)"
    )
    parser.add_argument(
        "--markdown",
        action="store_true",
        help="print the table with notes and the median bound/measured per claim",
    )
    parser.add_argument(
        "--sensitivity",
        action="store_true",
        help="instead of the table: the smallest error each check detects, by "
        "bisection with the quick and the full budgets (minutes)",
    )
    parser.add_argument(
        "--write",
        metavar="FILE",
        type=Path,
        help="with --markdown or --sensitivity: replace that block of FILE",
    )
    args = parser.parse_args(argv)  # fmt: skip
    if args.write and not (args.markdown or args.sensitivity):
        parser.error("--write needs --markdown or --sensitivity")
    if args.sensitivity:
        from proofs_check.sensitivity import table

        emit(table(progress=lambda s: print(s, file=sys.stderr)), "sensitivity", args.write)
        return 0
    start = time.perf_counter()
    records = run_all(args.quick, args.only, parser)
    elapsed = time.perf_counter() - start
    failed = [r for r in records if not r.holds]
    summary = f"{len(records) - len(failed)}/{len(records)} hold; {elapsed:.0f} s"
    if args.json:
        print(json.dumps([r.to_json() for r in records], indent=1, ensure_ascii=False))
    elif args.markdown:
        emit(f"{format_table(records, notes=True)}\n\n{medians(records)}", "table", args.write)
        print(summary, file=sys.stderr)
    else:
        print(format_table(records))
        print(f"\n{summary}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
