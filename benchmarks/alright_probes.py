"""The pieces of ``benchmarks.alright_gap`` that are not a plain trainer run.

- :func:`toy_table`: the torch backend on toy problems (exact gradients, so the coin is the only
  noise) with the trainer's optimizer (AdamW 0.9/0.95, constant step) with and without clipping
  that binds: is the gap the optimizer's, or the model's?
- :func:`hand_loop_gap`: ALRIGHT written out by hand (coin, batches, losses, clip, AdamW) against
  the trainer with the same coins: a defect in the trainer would show as a difference.
- :func:`pretrain_tiny`: the tiny model briefly pretrained (next-token loss on answers of both
  kinds, new word lists) and saved, for the from-scratch hypothesis.
- :func:`mild_data`: preference data whose rejected answer is *not* the SFT answer;
  :func:`shared_prompt_data`: preference pairs on the SFT prompts.
- :func:`first_token_split`: where a held-out SFT loss comes from: the first answer token (the
  conflict: P("Sure") there) or the rest (copying the list).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from benchmarks.common import table

# ---- toy problems through the torch backend ----------------------------------------------------


def toy_backend(problem, theta, optimizer, clip):
    """A :class:`TorchBackend` whose two losses are the toy problem's, with exact gradients."""
    import torch

    from toyopt.torch_backend import TorchBackend

    class Exact(torch.autograd.Function):
        @staticmethod
        def forward(ctx, th, k):
            x = th.detach().numpy()[None]
            ctx.grad = torch.from_numpy(problem.grad(k, x)[0])
            return torch.tensor(float(problem.value(k, x)[0]), dtype=th.dtype)

        @staticmethod
        def backward(ctx, out):
            return out * ctx.grad, None

    fns = {k: (lambda k=k: Exact.apply(theta, k)) for k in ("sft", "dpo")}
    return TorchBackend(fns, optimizer, clip)


def toy_run(problem, rule: str, lam: float, steps: int, clip, variant: str, seed: int):
    """Mean iterate over the last quarter of a run (the centre the constant step circles)."""
    import torch

    from toyopt.llm.optim import GradientMemory, MixClip
    from toyopt.loop import train
    from toyopt.rules import make_rule
    from toyopt.schedules import Schedule

    theta = torch.nn.Parameter(torch.tensor(problem.start, dtype=torch.float64))
    opt = torch.optim.AdamW([theta], lr=0.01, betas=(0.9, 0.95), weight_decay=0.0)
    if rule == "alright" and variant != "plain":
        opt = {"memory": GradientMemory, "mix-clip": MixClip}[variant](opt, lam)
    tail: list[np.ndarray] = []

    def keep(t, *_):
        if t >= steps * 3 // 4:
            tail.append(theta.detach().numpy().copy())

    r = make_rule(rule, lam, steps)
    backend = toy_backend(problem, theta, opt, clip)
    train(backend, r, r.init(np.array([seed])), steps, Schedule("constant", 0.01), on_step=keep)
    return np.mean(tail, axis=0)


VARIANTS = (("mix", "plain"), ("alright", "plain"), ("alright", "mix-clip"), ("alright", "memory"))


def toy_table(steps: int, seeds: int, bar) -> str:
    """ALRIGHT (plain, mix-clip, memory) against Mix on toy2d and loglinear5d, λ = 0.25 and 0.75, with
    no clipping and with a threshold τ = half the smaller gradient norm at θ*_λ (so it binds)."""
    from toyopt.pareto import Geometry
    from toyopt.problems import get_problem

    rows = []
    for name in ("toy2d", "loglinear5d"):
        problem = get_problem(name)
        geo = Geometry(problem)
        for lam in (0.25, 0.75):
            star = np.asarray(geo.mix(lam).point)[None]
            norms = [float(np.linalg.norm(problem.grad(k, star))) for k in ("sft", "dpo")]
            for clip in (None, min(norms) / 2):
                cells = []
                for rule, variant in VARIANTS:
                    ends = [
                        toy_run(problem, rule, lam, steps, clip, variant, s) for s in range(seeds)
                    ]
                    theta = np.mean(ends, axis=0)[None]
                    cells.append(f"{geo.metrics(theta, lam)['mix_gap'][0]:.2e}")
                    bar.update(1)
                tau = "off" if clip is None else f"{clip:.3f}"
                rows.append([name, lam, f"{norms[0]:.3f} / {norms[1]:.3f}", tau, *cells])
    header = ["problem", "λ", "‖∇f_sft‖ / ‖∇f_dpo‖ at θ*_λ", "clip τ", "Mix", "ALRIGHT",
              "ALRIGHT mix-clip", "ALRIGHT memory"]  # fmt: skip
    return table(header, rows)


# ---- ALRIGHT written out by hand ---------------------------------------------------------------


def hand_loop_gap(out: Path, steps: int, lam: float = 0.5, seed: int = 0) -> dict:
    """Max |θ_trainer − θ_hand| after ``steps`` ALRIGHT steps with the defaults, and the share of
    DPO steps over 10 000 coins (it should be λ)."""
    import torch

    from toyopt.llm.backend import batch_indices, pair_rows
    from toyopt.llm.config import TrainConfig
    from toyopt.llm.encode import collate
    from toyopt.llm.losses import dpo_loss, sequence_logps, sft_loss
    from toyopt.llm.models import load_model
    from toyopt.llm.prepare import prepare
    from toyopt.llm.train import run
    from toyopt.rng import STREAM_BATCH, STREAM_CHOICE, uniform

    cfg = TrainConfig(rule="alright", lam=lam, seed=seed, steps=steps, output_dir=str(out),
                      overwrite=True, progress=False, save_every=0, eval_every=steps,
                      alright_step="plain", schedule="constant")  # the paper's rule, by hand  # fmt: skip
    trained = run(cfg, log=lambda s: None)
    model, tok = load_model("tiny")
    data = prepare(cfg, tok, out / "hand")
    ref = torch.load(trained / "ref_logps.pt", weights_only=True)["train"]
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, betas=(0.9, 0.95), weight_decay=0.0)
    for t in range(steps):
        if uniform(seed, t, STREAM_CHOICE) < lam:  # the paper's coin: DPO with probability λ
            n = len(data.pref_train) // 2
            pairs = batch_indices(seed, t, n, cfg.batch_size, STREAM_BATCH["dpo"])
            batch = collate(pair_rows(data.pref_train, pairs), tok.pad_token_id)
            loss = dpo_loss(sequence_logps(model, batch).view(-1, 2), ref[pairs], cfg.beta)
        else:
            idx = batch_indices(seed, t, len(data.sft_train), cfg.batch_size, STREAM_BATCH["sft"])
            loss = sft_loss(model, collate([data.sft_train[i] for i in idx], tok.pad_token_id))
        opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.max_grad_norm)
        opt.step()
    final = torch.load(trained / "checkpoints" / f"step-{steps:06d}" / "trainable.pt")
    gap = max(float((p.detach() - final[n]).abs().max()) for n, p in model.named_parameters())
    share = float(np.mean(uniform(seed, np.arange(10_000), STREAM_CHOICE) < lam))
    return {"max_param_diff": gap, "dpo_share": share}


# ---- data and model variants -------------------------------------------------------------------


def mild_data(out: Path) -> dict[str, str]:
    """The synthetic files with each rejected answer replaced by the list reversed: DPO still
    prefers the "Sure!" opening, but what it pushes down is no longer the SFT answer."""
    from toyopt.llm.synthetic import make_data

    files = make_data(out)
    for split in ("pref_train", "pref_eval"):
        rows = [json.loads(s) for s in files[split].read_text().splitlines()]
        for r in rows:
            r["rejected"] = " ".join(reversed(r["rejected"].split()))
        files[split].write_text("".join(json.dumps(r) + "\n" for r in rows))
    names = {"sft_train": "sft_data", "sft_eval": "sft_eval", "pref_train": "pref_data",
             "pref_eval": "pref_eval"}  # fmt: skip
    return {names[k]: str(v) for k, v in files.items()}


def shared_prompt_data(out: Path) -> dict[str, str]:
    """The synthetic files with the preference pairs asked on the SFT prompts (train on train,
    held-out on held-out): a model can no longer serve both objectives on the training rows by
    telling the SFT prompts from the preference prompts."""
    from toyopt.llm.synthetic import PREAMBLE, make_data

    files = make_data(out)
    for sft, pref in (("sft_train", "pref_train"), ("sft_eval", "pref_eval")):
        rows = [json.loads(s) for s in files[sft].read_text().splitlines()]
        pairs = [{"prompt": r["prompt"], "chosen": f"{PREAMBLE} {r['completion']}",
                  "rejected": r["completion"]} for r in rows]  # fmt: skip
        files[pref].write_text("".join(json.dumps(r) + "\n" for r in pairs))
    names = {"sft_train": "sft_data", "sft_eval": "sft_eval", "pref_train": "pref_data",
             "pref_eval": "pref_eval"}  # fmt: skip
    return {names[k]: str(v) for k, v in files.items()}


def first_token_split(model_dir: Path) -> dict[str, float]:
    """On the held-out synthetic SFT rows: mean P("Sure") at the first answer position, the
    first token's NLL, and the NLL per token of the rest of the answer (the copy)."""
    import torch
    from transformers import AutoModelForCausalLM

    from toyopt.llm.data import SFTExample
    from toyopt.llm.encode import collate, encode_sft
    from toyopt.llm.losses import token_nll
    from toyopt.llm.models import tiny_tokenizer
    from toyopt.llm.synthetic import PREAMBLE, make_rows

    tok = tiny_tokenizer()
    rows = encode_sft(tok, [SFTExample(**r) for r in make_rows("sft_eval")], 128).rows
    batch = collate(rows, tok.pad_token_id)
    model = AutoModelForCausalLM.from_pretrained(model_dir).eval()
    with torch.no_grad():
        nll, mask = token_nll(model, batch)
        logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
    first, idx = torch.tensor([len(p) - 1 for p, _ in rows]), torch.arange(len(rows))
    sure = tok(" " + PREAMBLE.rstrip("!"), add_special_tokens=False)["input_ids"][0]
    head = nll[idx, first]
    rest = (nll.sum(1) - head) / (mask.sum(1) - 1)
    p_sure = torch.softmax(logits[idx, first].double(), -1)[:, sure]
    return {"p_sure": float(p_sure.mean()), "first_nll": float(head.mean()),
            "copy_nll": float(rest.mean())}  # fmt: skip
