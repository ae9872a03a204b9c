"""Toy side: wall time of the main job and the throughput of the vectorised rules.

- Main job: ``python -m proofs_check`` (the theorem table) and ``python -m figures`` (every toy
  figure), each timed once as a subprocess (wall time and peak RSS from ``getrusage`` of the
  child); they take minutes, so one run each is what the budget allows (``--quick`` in tests).
- Throughput: seed-steps per second of ``python -m toyopt run toy2d --rule R --steps N --seeds S
  --json`` (its ``seconds``: the simulation alone, without start-up), every rule in a fresh
  process, interleaved and repeated; the engine's target is 10⁷ for every rule.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

import numpy as np

from benchmarks.common import ROOT, load_average, med_spread, table

RULES = {
    "sequential-sft-dpo": [],
    "sequential-dpo-sft": [],
    "alright": [],
    "maxright": [],
    "maxright K=10": ["--refresh-every", "10"],
    "mix": [],
}


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
    """Seed-steps per second of the CLI per rule, each run in a fresh process."""
    out: dict[str, list[float]] = {r: [] for r in RULES}
    names = list(RULES)
    for rep in range(repeats):
        for name in names[rep % len(names) :] + names[: rep % len(names)]:
            cmd = [sys.executable, "-m", "toyopt", "run", "toy2d", "--rule", name.split()[0],
                   "--steps", str(steps), "--seeds", str(seeds), "--json", *RULES[name]]  # fmt: skip
            done = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, check=True)
            out[name].append(steps * seeds / json.loads(done.stdout)["seconds"])
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
    tp_rows = [[r, med_spread(np.array(v) / 1e6), f"{min(v) / 1e7:.2f}"] for r, v in tp.items()]
    text = (
        "### Toy side: the main job\n\n"
        f"Command: `python -m benchmarks.toy --steps {a.steps} --seeds {a.seeds}`. One run each (minutes); load average at the end: "
        f"{load_average()}.\n\n"
        + table(["job", "wall s", "peak RSS MiB"], job_rows)
        + f"\n\n### Toy side: the engine on toy2d ({a.seeds} seeds × {a.steps} steps, exact "
        f"gradients, invsqrt schedule)\n\n`python -m toyopt run toy2d --rule R --steps {a.steps} "
        f"--seeds {a.seeds} --json`, seed-steps per second from its `seconds` (the simulation "
        f"alone), median [min–max] over {a.repeats} interleaved fresh processes; the slowest run "
        f"÷ 10⁷ (the target). Load average at the end: {load_average()}.\n\n"
        + table(["rule", "million seed-steps / s", "slowest ÷ 10⁷"], tp_rows)
        + "\n"
    )
    print(text)
    return text


if __name__ == "__main__":
    main()
