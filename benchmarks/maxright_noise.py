"""How noisy are MAXRIGHT's comparisons? At each saved model of a finished study's MAXRIGHT runs
(``checkpoints/step-*`` and ``final``), the two weighted gaps λ(f_dpo − f*_dpo) and
(1 − λ)(f_sft − f*_sft) on the whole training set, against the same gaps on ``--batches`` batches
of the run's own size drawn as the run would draw them at later steps (f*: the rule's own optima).

Columns: the full-set difference D = gap_dpo − gap_sft; the standard deviation over batches of
each weighted gap and of their difference (an SFT batch and a DPO batch, as one step compares);
|D| in units of that deviation; the share of batches choosing SFT; and the share whose choice
differs from the full-set choice (what a noise-free MAXRIGHT would take). For example::

    python -m benchmarks.maxright_noise runs/exp-plain
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from benchmarks.common import table
from benchmarks.maxright_target import score


def models(run: Path, steps: int):
    """(label, model) of every saved model of ``run``: its checkpoints before the last step,
    then ``final``."""
    from transformers import AutoModelForCausalLM

    for ckpt in sorted(run.glob("checkpoints/step-*")):
        if int(ckpt.name.split("-")[1]) >= steps:
            continue
        model = AutoModelForCausalLM.from_pretrained(run / "final")
        model.load_state_dict(_load(ckpt / "trainable.pt"), strict=False)
        yield str(int(ckpt.name.split("-")[1])), model.eval()
    yield "final", AutoModelForCausalLM.from_pretrained(run / "final").eval()


def _load(path: Path):
    import torch

    return torch.load(path, weights_only=True)


def batch_values(run: Path, model, tok, n: int, start: int) -> dict[str, np.ndarray]:
    """Both objectives on the batches of steps start … start+n−1 (as ``values()`` computes them)."""
    import torch

    from toyopt.llm.backend import LMBackend
    from toyopt.llm.config import TrainConfig
    from toyopt.llm.prepare import prepare
    from toyopt.llm.setup import read_reference

    cfg = TrainConfig(**json.loads((run / "config.json").read_text()))
    data = prepare(cfg, tok, run)
    ref = read_reference(run / "ref_logps.pt")["train"]
    b = LMBackend(model, None, data.sft_train, data.pref_train, seed=cfg.seed,
                  batch_size=cfg.batch_size, beta=cfg.beta, pad_id=tok.pad_token_id,
                  ref_logps=ref)  # fmt: skip
    with torch.no_grad():
        return {k: np.array([float(b.compute(k, t)) for t in range(start, start + n)])
                for k in ("sft", "dpo")}  # fmt: skip


def main(argv=None) -> str:
    p = argparse.ArgumentParser(prog="python -m benchmarks.maxright_noise", description=__doc__)
    p.add_argument("study", type=Path, help="output directory of a finished tiny-model study")
    p.add_argument("--batches", type=int, default=200, help="batches per model (default 200)")
    a = p.parse_args(argv)
    import torch

    from toyopt.llm.models import load_model

    torch.set_num_threads(1)
    _, tok = load_model("tiny")
    rows = []
    for run in sorted(a.study.glob("seed-*/maxright-lam*")):
        lam, seed = float(run.name.rsplit("-lam", 1)[1]), int(run.parent.name.split("-")[1])
        cfg = json.loads((run / "config.json").read_text())
        star = json.loads((run / "optima.json").read_text())
        w = {"dpo": lam, "sft": 1.0 - lam}
        for label, model in models(run, cfg["steps"]):
            full = _full(run, model, tok)
            batch = batch_values(run, model, tok, a.batches, cfg["steps"])
            gap = {k: w[k] * (full[k] - star[k]) for k in w}
            bgap = {k: w[k] * (batch[k] - star[k]) for k in w}
            d, bd = gap["dpo"] - gap["sft"], bgap["dpo"] - bgap["sft"]
            rows.append([f"{lam:g}", seed, label, f"{gap['dpo']:.3f}", f"{gap['sft']:.3f}",
                         f"{d:+.3f}", f"{bgap['dpo'].std():.3f}", f"{bgap['sft'].std():.3f}",
                         f"{bd.std():.3f}", f"{abs(d) / bd.std():.2f}",
                         f"{np.mean(bd < 0):.2f}", f"{np.mean((bd < 0) != (d < 0)):.2f}"])  # fmt: skip
    head = ["λ", "seed", "model", "gap_dpo (full)", "gap_sft (full)", "D (full)",
            "sd gap_dpo (batch)", "sd gap_sft (batch)", "sd D (batch)", "|D| / sd",
            "batch picks SFT", "batch ≠ full choice"]  # fmt: skip
    return (
        f"Command: `python -m benchmarks.maxright_noise {a.study} --batches {a.batches}`."
        " Weighted gaps with the rule's f*; full: the whole training set.\n\n"
        + table(head, rows)
        + "\n"
    )


def _full(run: Path, model, tok) -> dict[str, float]:
    """Both objectives of ``model`` on the run's whole training set."""
    s = score(run, tok, model)["train"]
    return {"sft": s["eval_sft"], "dpo": s["eval_dpo"]}


if __name__ == "__main__":
    print(main())
