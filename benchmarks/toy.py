"""Toy side: wall time of the main job and the throughput of the vectorised rules.

- Main job: ``python -m proofs_check`` (the theorem table) and ``python -m figures`` (every toy
  figure), each timed once as a subprocess (wall time and peak RSS from ``getrusage`` of the
  child); they take minutes, so one run each is what the budget allows (``--quick`` in tests).
- Throughput: seed-steps per second of :func:`toyopt.simulate.simulate` on ``toy2d`` (1000 seeds
  × N steps, exact gradients, the vectorised NumpyBackend), every rule timed in-process,
  interleaved and repeated; plus the CLI command end to end.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time

import numpy as np

from benchmarks.common import ROOT, load_average, med_spread, table

RULES = ["sequential-sft-dpo", "alright", "maxright", "mix"]


def timed(cmd: list[str]) -> tuple[float, float]:
    """(wall seconds, peak RSS MiB) of one subprocess; wait4 gives that child's own rusage."""
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - t0
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed: {proc.stderr.read().decode()[-2000:]}")
    return wall, usage.ru_maxrss / 1024


def throughput(steps: int, seeds: int, repeats: int) -> dict[str, list[float]]:
    from toyopt.problems import get_problem
    from toyopt.rules import make_rule
    from toyopt.schedules import Schedule
    from toyopt.simulate import simulate

    problem = get_problem("toy2d")
    out: dict[str, list[float]] = {r: [] for r in RULES}
    for rep in range(repeats):
        for name in RULES[rep % 4 :] + RULES[: rep % 4]:
            optima = {"sft": 0.0, "dpo": 0.0} if name == "maxright" else None
            rule = make_rule(name, 0.5, steps, optima=optima)
            t0 = time.perf_counter()
            simulate(problem, rule, steps, Schedule("invsqrt", 0.5), seeds)
            out[name].append(steps * seeds / (time.perf_counter() - t0))
    return out


def main(argv=None) -> str:
    p = argparse.ArgumentParser(prog="python -m benchmarks.toy", description=__doc__)
    p.add_argument("--steps", type=int, default=10000)
    p.add_argument("--seeds", type=int, default=1000)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument(
        "--jobs",
        choices=["full", "quick", "none"],
        default="full",
        help="main job to time: as is, with --quick, or none (tests)",
    )
    a = p.parse_args(argv)
    quick = ["--quick"] if a.jobs == "quick" else []
    cli = f"toyopt run toy2d --rule alright --steps {a.steps} --seeds {a.seeds}"
    with tempfile.TemporaryDirectory() as tmp:
        jobs = {"proofs_check": ["proofs_check", *quick],
                "figures": ["figures", "--out", tmp, "--no-progress", *quick], cli: cli.split()}  # fmt: skip
        if a.jobs == "none":
            del jobs["proofs_check"], jobs["figures"]
        job_rows = []
        for args in jobs.values():
            wall, peak = timed([sys.executable, "-m", *args])
            shown = " ".join("DIR" if a == tmp else a for a in args)
            job_rows.append([f"`python -m {shown}`", f"{wall:.1f}", f"{peak:.0f}"])
    tp = throughput(a.steps, a.seeds, a.repeats)
    seq = np.array(tp["sequential-sft-dpo"])
    tp_rows = [[r, med_spread(np.array(v) / 1e6), med_spread(np.array(v) / seq)]
               for r, v in tp.items()]  # fmt: skip
    text = (
        "### Toy side: the main job\n\n"
        f"Command: `python -m benchmarks.toy --steps {a.steps} --seeds {a.seeds}`. One run each (minutes); load average at the end: "
        f"{load_average()}.\n\n"
        + table(["job", "wall s", "peak RSS MiB"], job_rows)
        + f"\n\n### Toy side: vectorised rules on toy2d ({a.seeds} seeds × {a.steps} steps, "
        f"exact gradients, invsqrt schedule)\n\nIn-process `simulate`, median [min–max] over "
        f"{a.repeats} interleaved repeats.\n\n"
        + table(["rule", "million seed-steps / s", "÷ sequential"], tp_rows)
        + "\n"
    )
    print(text)
    return text


if __name__ == "__main__":
    main()
