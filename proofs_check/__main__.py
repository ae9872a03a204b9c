"""``python -m proofs_check [--quick] [--json]``: run every check and print the table.

Exit status 1 when any record does not hold. Progress goes to stderr.
"""

from __future__ import annotations

import argparse
import json
import sys
import time

from tqdm.auto import tqdm

from proofs_check.record import CLAIMS, format_table
from proofs_check.suite import jobs


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="proofs_check",
        description="Numerical checks of the paper's claims C1-C6 with explicit constants.",
        epilog="\n".join(f"{k}: {v}" for k, v in CLAIMS.items()),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--quick", action="store_true", help="reduced instances and budgets")
    parser.add_argument("--json", action="store_true", help="print the records as a JSON list")
    parser.add_argument("--only", metavar="CLAIM", help="run only one claim, e.g. C2")
    args = parser.parse_args(argv)
    todo = jobs(quick=args.quick)
    if args.only:
        todo = [j for j in todo if j[0].split()[0] == args.only.upper()]
        if not todo:
            parser.error(f"--only: unknown claim {args.only!r}; choose one of {', '.join(CLAIMS)}")
    start, records = time.perf_counter(), []
    bar = tqdm(todo, desc="proofs_check", file=sys.stderr, leave=False)
    for label, run in bar:
        bar.set_postfix_str(label)
        records.extend(run())
    elapsed = time.perf_counter() - start
    failed = [r for r in records if not r.holds]
    if args.json:
        print(json.dumps([r.to_json() for r in records], indent=1, ensure_ascii=False))
    else:
        print(format_table(records))
        print(f"\n{len(records) - len(failed)}/{len(records)} hold; {elapsed:.0f} s")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
