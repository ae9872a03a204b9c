"""Does MAXRIGHT reach its own target? Its weighted Chebyshev gap against the other rules', on the
training set (what its choices compare: batch losses of training rows) and on the held-out sets.

Reads a finished study (``toyopt-llm study --model tiny …``; every ``seed-S/RULE-lamL`` run and
the ``optima/`` runs), scores each run's final model on its whole training set (the precomputed
reference of the run), and prints per (λ, seed) the Chebyshev gap max{λ(f_dpo − f*_dpo),
(1 − λ)(f_sft − f*_sft)} of MAXRIGHT, the smallest other rule's, and their ratio, on both sets.
f* on the training set: the single-objective runs' training-set values; held out: the smallest
final held-out value of any run (as the study's report). A ratio ≤ 1.1 is the check's target.
``--fresh N`` scores every final model on N new rows and N new pairs of the synthetic tasks as
well (another data seed; reference: the starting model, as the runs'), with f* again the smallest
value of any run: a held-out set large enough that the luck of its rows no longer decides.
The last two columns say whether MAXRIGHT sits on the kink of its max (see :func:`choices`).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from benchmarks.common import table
from proofs_check.llm import chebyshev

RULES = ("sequential-sft-dpo", "sequential-dpo-sft", "alright", "maxright", "mix")


FRESH_SEED = 1000  # the data seed of --fresh (the runs' synthetic data use seed 0)


def fresh_set(tok, n: int, cfg) -> tuple[list, list, object]:
    """N new SFT rows and N new pairs (tokenized) and their reference log-probs."""
    import torch

    from toyopt.llm.data import PrefExample, SFTExample
    from toyopt.llm.encode import encode_pref, encode_sft
    from toyopt.llm.models import load_model
    from toyopt.llm.scoring import pair_logps, reference_fn
    from toyopt.llm.synthetic import make_rows

    sft = encode_sft(tok, [SFTExample(**r) for r in make_rows("sft_eval", FRESH_SEED, n)],
                     cfg.max_length).rows  # fmt: skip
    pref = encode_pref(tok, [PrefExample(**r) for r in make_rows("pref_eval", FRESH_SEED, n)],
                       cfg.max_length).rows  # fmt: skip
    start = load_model(cfg.model)[0].eval()
    ref = pair_logps(reference_fn(start, False), pref, tok.pad_token_id, 64, torch.device("cpu"))
    return sft, pref, ref


def score(run: Path, tok, model=None, fresh=None) -> dict[str, dict[str, float]]:
    """{'train': {...}, 'eval': {...}} objectives of the run's final model (or of ``model``);
    with ``fresh`` (:func:`fresh_set`) also 'fresh'."""
    from transformers import AutoModelForCausalLM

    from toyopt.llm.config import TrainConfig
    from toyopt.llm.prepare import prepare
    from toyopt.llm.scoring import evaluate
    from toyopt.llm.setup import read_reference

    cfg = TrainConfig(**json.loads((run / "config.json").read_text()))
    data = prepare(cfg, tok, run)
    ref = read_reference(run / "ref_logps.pt")
    model = model or AutoModelForCausalLM.from_pretrained(run / "final").eval()
    out = {}
    for split in ("train", "eval"):
        sft, pref = getattr(data, f"sft_{split}"), getattr(data, f"pref_{split}")
        out[split] = evaluate(model, sft, pref, ref[split], cfg.beta, tok.pad_token_id, 64)
    if fresh is not None:
        out["fresh"] = evaluate(model, *fresh, cfg.beta, tok.pad_token_id, 64)
    return out


def choices(run: Path) -> tuple[float, float]:
    """MAXRIGHT's choices over the second half of its run: the share of steps on SFT and the
    switches per step. Sitting on the kink of its max (the two weighted gaps equal), it picks
    each objective about half the time and switches at about every other step (a fair coin would
    give 0.5); away from it, it keeps to one objective."""
    rows = [json.loads(s) for s in (run / "metrics.jsonl").read_text().splitlines() if s]
    picked = [r["objective"] for r in rows if "objective" in r]
    late = picked[len(picked) // 2 :]
    switches = sum(a != b for a, b in zip(late, late[1:]))
    return late.count("sft") / len(late), switches / max(len(late) - 1, 1)


def _point(s: dict[str, float]) -> tuple[float, float]:
    return s["eval_sft"], s["eval_dpo"]


def main(argv=None) -> str:
    p = argparse.ArgumentParser(prog="python -m benchmarks.maxright_target", description=__doc__)
    p.add_argument("study", type=Path, help="output directory of a finished tiny-model study")
    p.add_argument("--fresh", type=int, default=0, metavar="N",
                   help="also score on N new rows and pairs of the synthetic tasks (0: no)")  # fmt: skip
    a = p.parse_args(argv)
    import torch

    from toyopt.llm.models import load_model

    torch.set_num_threads(1)
    _, tok = load_model("tiny")
    fresh = None
    if a.fresh:
        from toyopt.llm.config import TrainConfig

        first = next(a.study.glob("seed-*/*-lam*"))
        fresh = fresh_set(
            tok, a.fresh, TrainConfig(**json.loads((first / "config.json").read_text()))
        )
    scores = {}
    for seed_dir in sorted(a.study.glob("seed-*")):
        seed = int(seed_dir.name.split("-")[1])
        for run in sorted(seed_dir.glob("*-lam*")) + sorted((seed_dir / "optima").glob("optima-*")):
            name = run.name
            rule, lam = (name, None) if name.startswith("optima-") else name.rsplit("-lam", 1)
            scores[(seed, rule, None if lam is None else float(lam))] = score(run, tok, None, fresh)
    splits = ("eval", "fresh") if fresh else ("eval",)
    held = {split: {k: min(v[split][f"eval_{k}"] for v in scores.values()) for k in ("sft", "dpo")}
            for split in splits}  # fmt: skip
    rows = []
    for seed, lam in sorted({(s, la) for s, _, la in scores if la is not None}):
        fit = {k: scores[(seed, f"optima-{k}", None)]["train"][f"eval_{k}"] for k in ("sft", "dpo")}
        cells = []
        for split, star in (("train", fit), *((x, held[x]) for x in splits)):
            gaps = {r: chebyshev(lam, _point(scores[(seed, r, lam)][split]), star)
                    for r in RULES if (seed, r, lam) in scores}  # fmt: skip
            best = min((r for r in gaps if r != "maxright"), key=gaps.get)
            cells += [f"{gaps['maxright']:.3f}", f"{best} {gaps[best]:.3f}",
                      f"{gaps['maxright'] / gaps[best]:.2f}"]  # fmt: skip
        share, switches = choices(a.study / f"seed-{seed}" / f"maxright-lam{lam:g}")
        rows.append([f"{lam:g}", seed, *cells, f"{share:.2f}", f"{switches:.2f}"])
    names = {"train": "train", "eval": "held-out", "fresh": f"{a.fresh} fresh"}
    head = ["λ", "seed"]
    for split in ("train", *splits):
        head += [f"MAXRIGHT ({names[split]})", f"best other ({names[split]})",
                 f"ratio ({names[split]})"]  # fmt: skip
    head += ["MAXRIGHT's SFT steps (2nd half)", "its switches per step"]
    counts = ", ".join(
        f"{names[split]} {sum(float(r[4 + 3 * i]) <= 1.1 for r in rows)}/{len(rows)}"
        for i, split in enumerate(("train", *splits))
    )
    command = f"python -m benchmarks.maxright_target {a.study}" + (
        f" --fresh {a.fresh}" if a.fresh else ""
    )
    return (
        f"Command: `{command}`. MAXRIGHT's Chebyshev gap within 10 % of the best other rule's:"
        f" {counts}.\n\n" + table(head, rows) + "\n"
    )


if __name__ == "__main__":
    print(main())
