"""The SFT and preference losses against an independent computation on the tiny model: each
sequence run alone (no padding), log-softmax by hand, sums and the formulas in float64; and the
preference losses against TRL's own trainers on the same tokens."""

import math
import tempfile

import pytest
import torch
import torch.nn.functional as F

from toyopt.llm.data import PrefExample, SFTExample
from toyopt.llm.encode import IGNORE, collate, encode_pref, encode_sft, fit, prompt_text
from toyopt.llm.losses import (
    dpo_loss,
    dpo_losses,
    preference_losses,
    response_lengths,
    sequence_logps,
    sft_loss,
)
from toyopt.llm.models import load_model
from toyopt.llm.objectives import LENGTH_NORMALISED, PREFERENCE_LOSSES, REFERENCE_FREE
from toyopt.llm.synthetic import make_rows

torch.set_num_threads(1)


@pytest.fixture(scope="module")
def tiny():
    model, tok = load_model("tiny")
    return model.eval(), tok


def response_logps(model, prompt: list[int], response: list[int]) -> list[float]:
    """log π(y_t | x, y_<t) of each response token, from one unpadded forward pass."""
    ids = torch.tensor([prompt + response])
    with torch.no_grad():
        logits = model(input_ids=ids).logits[0].double()
    logp = logits - torch.logsumexp(logits, dim=-1, keepdim=True)
    return [float(logp[len(prompt) + i - 1, tok]) for i, tok in enumerate(response)]


def test_sft_loss_is_the_token_mean_over_response_tokens(tiny):
    model, tok = tiny
    rows = encode_sft(tok, [SFTExample(**r) for r in make_rows("sft_train", n=5)], 64).rows
    token_logps = [lp for p, r in rows for lp in response_logps(model, p, r)]
    expected = -sum(token_logps) / len(token_logps)
    with torch.no_grad():
        got = float(sft_loss(model, collate(rows, tok.pad_token_id)))
    assert got == pytest.approx(expected, rel=1e-5)


def test_dpo_loss_matches_the_sigmoid_formula_on_summed_logps(tiny):
    model, tok = tiny
    pairs = [PrefExample(**r) for r in make_rows("pref_train", n=4)]
    rows = encode_pref(tok, pairs, 64).rows
    seq = [sum(response_logps(model, p, r)) for p, r in rows]
    ref = torch.tensor(
        [[-3.0, -5.5], [-10.0, -2.0], [-7.0, -7.5], [-1.0, -4.0]], dtype=torch.float64
    )
    beta = 0.1
    margins = [
        beta * ((seq[2 * i] - ref[i, 0]) - (seq[2 * i + 1] - ref[i, 1])) for i in range(len(pairs))
    ]
    expected = sum(math.log1p(math.exp(-float(m))) for m in margins) / len(margins)
    with torch.no_grad():
        policy = sequence_logps(model, collate(rows, tok.pad_token_id)).view(-1, 2)
    assert policy.flatten().tolist() == pytest.approx(seq, rel=1e-5, abs=1e-4)
    assert float(dpo_loss(policy.double(), ref, beta)) == pytest.approx(expected, rel=1e-6)


def test_dpo_loss_is_log2_at_the_reference():
    policy = torch.tensor([[-4.0, -6.0], [-2.0, -3.0]])
    assert float(dpo_loss(policy, policy.clone(), 0.1)) == pytest.approx(math.log(2))


def test_labels_mask_the_prompt_and_padding(tiny):
    _, tok = tiny
    batch = collate([([1, 2, 3], [4, 5]), ([6], [7])], pad_id=0)
    assert batch["labels"].tolist() == [[IGNORE, IGNORE, IGNORE, 4, 5], [IGNORE, 7] + [IGNORE] * 3]
    assert batch["attention_mask"].tolist() == [[1] * 5, [1, 1, 0, 0, 0]]


def test_template_and_truncation_policy(tiny):
    _, tok = tiny
    assert prompt_text(tok, "hi") == "User: hi\nAssistant: "
    # a long prompt is cut from the left; the response is kept whole
    p, (r,) = fit(list(range(100)), [[7, 8]], 10)
    assert p == list(range(92, 100)) and r == [7, 8]
    # a long response keeps at most max_length - half the room for the prompt
    p, (r,) = fit(list(range(100)), [list(range(50))], 10)
    assert len(p) == 5 and r == list(range(5))
    # a pair shares one prompt cut, set by the longer response
    p, (c, r) = fit(list(range(8)), [[1, 2, 3], [1]], 8)
    assert len(p) == 5 and (c, r) == ([1, 2, 3], [1])


def test_logits_only_at_response_positions_equal_the_full_logits_path(tiny, monkeypatch):
    """token_nll projects only the positions whose next token is a label; the values and the
    gradients are those of the full (N, L, V) logits, on the model and on its LoRA wrapping."""
    from toyopt.llm import losses
    from toyopt.llm.models import add_lora

    model, tok = tiny
    rows = encode_sft(tok, [SFTExample(**r) for r in make_rows("sft_train", n=6)], 64).rows
    batch = collate(rows, tok.pad_token_id)
    for m in (model, add_lora(load_model("tiny")[0], 4, 8.0, "all-linear")):
        if not losses.keeps_logits(m):  # transformers < 5 slices logits_to_keep by index only
            pytest.skip("this transformers cannot project a boolean mask of positions")
        got = {}
        for compact in (True, False):
            monkeypatch.setattr(losses, "keeps_logits", lambda _, c=compact: c)
            m.zero_grad()
            nll, mask = losses.token_nll(m, batch)
            nll.sum().backward()
            grads = [p.grad.clone() for p in m.parameters() if p.requires_grad]
            got[compact] = (nll.detach(), mask, grads)
        monkeypatch.undo()
        torch.testing.assert_close(got[True][0], got[False][0], rtol=1e-5, atol=1e-6)
        assert torch.equal(got[True][1], got[False][1])
        for a, b in zip(got[True][2], got[False][2]):
            torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-7)


# (kind, keyword arguments): TRL's default beta 0.1 for the DPO family, 0.5 for the hinge so that
# some pairs are past its kink (|margin| < 6 here); SimPO at the paper's scale
CASES = [
    ("sigmoid", {"beta": 0.1}),
    ("ipo", {"beta": 0.1}),
    ("hinge", {"beta": 0.5}),
    ("robust", {"beta": 0.1, "label_smoothing": 0.1}),
    ("simpo", {"beta": 2.0, "simpo_gamma": 0.5}),
    ("simpo", {"beta": 2.0, "simpo_gamma": 0.5, "label_smoothing": 0.1}),
]
CASE_IDS = [kind + ("-smoothed" if "label_smoothing" in kw else "") for kind, kw in CASES]


def perturbed_tiny():
    """The tiny model with fixed noise on every weight: a reference that differs from it."""
    model, _ = load_model("tiny")
    gen = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.02 * torch.randn(p.shape, generator=gen))
    return model.eval()


@pytest.fixture(scope="module")
def pairs(tiny):
    """Three synthetic pairs and the same three swapped (so margins of both signs): their token
    triples, the independent float64 (chosen, rejected) sums of the policy and the reference and
    the response lengths, and the collated batch (rows 2i, 2i+1 the chosen and rejected of i)."""
    model, tok = tiny
    rows = encode_pref(tok, [PrefExample(**r) for r in make_rows("pref_train", n=3)], 64).rows
    triples = [(p, c, r) for (p, c), (_, r) in zip(rows[::2], rows[1::2])]
    triples += [(p, r, c) for p, c, r in triples]
    ref = perturbed_tiny()

    def sums(m):
        return [[sum(response_logps(m, p, y)) for y in (c, r)] for p, c, r in triples]

    return {
        "triples": triples,
        "policy": sums(model),
        "ref": sums(ref),
        "lengths": [[len(c), len(r)] for _, c, r in triples],
        "batch": collate([(p, y) for p, c, r in triples for y in (c, r)], tok.pad_token_id),
        "ref_model": ref,
    }


def nls(x: float) -> float:
    """−log σ(x) = log(1 + e^−x), without overflow."""
    return max(-x, 0.0) + math.log1p(math.exp(-abs(x)))


def expected_loss(kind, pol, ref, n, beta, label_smoothing=0.0, simpo_gamma=0.5) -> float:
    """One pair's loss in float64 from its (chosen, rejected) sums and lengths, written from the
    papers' forms (TRL's conventions: IPO and SimPO on per-token means)."""
    (pw, pl), (nw, nl), eps = pol, n, label_smoothing
    if kind == "simpo":  # −log σ(β (mean_w − mean_l) − γ), smoothed as conservative DPO
        x = beta * (pw / nw - pl / nl) - simpo_gamma
        return (1 - eps) * nls(x) + eps * nls(-x)
    rw, rl = pw - ref[0], pl - ref[1]
    if kind == "ipo":
        return (rw / nw - rl / nl - 1 / (2 * beta)) ** 2
    if kind == "hinge":
        return max(0.0, 1 - beta * (rw - rl))
    x = beta * (rw - rl)
    if kind == "sigmoid":
        return nls(x)
    assert kind == "robust"  # the unbiased estimator under flips with probability ε
    return ((1 - eps) * nls(x) - eps * nls(-x)) / (1 - 2 * eps)


def ours(tiny, pairs, kind, kw) -> torch.Tensor:
    """Our per-pair losses end to end: padded batch, sequence_logps, response_lengths."""
    model, _ = tiny
    batch = pairs["batch"]
    with torch.no_grad():
        policy = sequence_logps(model, batch).view(-1, 2)
        ref = None if kind in REFERENCE_FREE else sequence_logps(pairs["ref_model"], batch)
    lengths = response_lengths(batch).view(-1, 2)
    return preference_losses(kind, policy, None if ref is None else ref.view(-1, 2), lengths, **kw)


@pytest.mark.parametrize("kind, kw", CASES, ids=CASE_IDS)
def test_preference_losses_match_their_formulas_on_the_tiny_model(tiny, pairs, kind, kw):
    pol, ref, n = pairs["policy"], pairs["ref"], pairs["lengths"]
    expected = [expected_loss(kind, *a, **kw) for a in zip(pol, ref, n)]
    assert 0 < sum(expected) and (kind != "hinge" or 0 in expected)  # hinge: both sides of 0
    # the formula alone, on the same float64 sums
    ref64 = None if kind in REFERENCE_FREE else torch.tensor(ref, dtype=torch.float64)
    got = preference_losses(kind, torch.tensor(pol, dtype=torch.float64), ref64,
                            torch.tensor(n), **kw)  # fmt: skip
    assert got.dtype == torch.float64
    assert got.tolist() == pytest.approx(expected, rel=1e-12, abs=1e-12)
    # end to end in float32: padded batch, summed log-probs, lengths from the labels
    assert response_lengths(pairs["batch"]).view(-1, 2).tolist() == n
    assert ours(tiny, pairs, kind, kw).tolist() == pytest.approx(expected, rel=2e-5, abs=1e-6)


def test_sigmoid_is_dpo_losses_bit_for_bit(tiny, pairs):
    model, _ = tiny
    with torch.no_grad():
        policy = sequence_logps(model, pairs["batch"]).view(-1, 2)
        ref = sequence_logps(pairs["ref_model"], pairs["batch"]).view(-1, 2)
    lengths = response_lengths(pairs["batch"]).view(-1, 2)
    for p, r in ((policy, ref), (policy.double(), ref.double())):
        for beta in (0.1, 0.5, 3.0):
            dpo = dpo_losses(p, r, beta)
            assert torch.equal(
                dpo, -F.logsigmoid(beta * ((p[:, 0] - r[:, 0]) - (p[:, 1] - r[:, 1])))
            )
            assert torch.equal(preference_losses("sigmoid", p, r, lengths, beta=beta), dpo)
            assert torch.equal(preference_losses("robust", p, r, lengths, beta=beta), dpo)


def test_the_loss_tables():
    assert list(PREFERENCE_LOSSES) == ["sigmoid", "ipo", "hinge", "robust", "simpo"]
    assert all(h and "\n" not in h for h in PREFERENCE_LOSSES.values())
    assert REFERENCE_FREE == {"simpo"} and LENGTH_NORMALISED == {"ipo", "simpo"}


def test_preference_losses_refuse_in_one_line():
    p, n = torch.tensor([[-4.0, -6.0]]), torch.tensor([[4, 6]])
    refusals = {  # call: the message's start
        lambda: preference_losses("dpo", p, p, n, beta=0.1):
            "unknown preference loss 'dpo': choose one of sigmoid, ipo, hinge, robust, simpo",
        lambda: preference_losses("ipo", p, None, n, beta=0.1):
            "preference loss 'ipo' needs the reference log-probs",
        lambda: preference_losses("sigmoid", p, p, n, beta=0.1, label_smoothing=0.1):
            "label_smoothing is used by robust and simpo only",
        lambda: preference_losses("robust", p, p, n, beta=0.1, label_smoothing=0.5):
            "label_smoothing must lie in [0, 0.5) for 'robust'",
        lambda: preference_losses("hinge", p, p, n, beta=0.0): "beta must be positive",
        lambda: preference_losses("simpo", p, None, n[0], beta=2.0): "policy and lengths must",
    }  # fmt: skip
    for call, start in refusals.items():
        with pytest.raises(ValueError) as err:
            call()
        assert str(err.value).startswith(start) and "\n" not in str(err.value)
    # a reference-free loss reads no reference
    assert torch.equal(preference_losses("simpo", p, None, n, beta=2.0),
                       preference_losses("simpo", p, p - 1, n, beta=2.0))  # fmt: skip


def trl_losses(pairs, kind, kw) -> list[float]:
    """TRL's per-pair losses on our token triples, one pair per call of the trainer's own
    collator and ``compute_loss`` (its log-probs, reference pass and loss): DPOTrainer for the
    DPO family, CPOTrainer with cpo_alpha = 0 for SimPO. Fresh copies of the same weights (TRL
    patches its models' forward with a fused LM head)."""
    from datasets import Dataset

    model, tok = load_model("tiny")
    model.eval()
    # the trainers insist on a text data set, which they tokenize; we pass our tokens instead
    text = Dataset.from_list([
        {**r, "prompt": prompt_text(tok, r["prompt"])} for r in make_rows("pref_train", n=2)
    ])  # fmt: skip
    common = dict(report_to=[], use_cpu=True, bf16=False, fp16=False, disable_tqdm=True, **kw)
    with tempfile.TemporaryDirectory() as tmp:
        if kind == "simpo":
            from trl.experimental.cpo import CPOConfig, CPOTrainer

            args = CPOConfig(output_dir=tmp, loss_type="simpo", cpo_alpha=0.0, max_length=128,
                             **common)  # fmt: skip
            trainer = CPOTrainer(model=model, args=args, train_dataset=text, processing_class=tok)
            examples = [cpo_features(*t) for t in pairs["triples"]]
        else:
            from trl import DPOConfig, DPOTrainer

            args = DPOConfig(output_dir=tmp, loss_type=kind, max_length=None, **common)
            trainer = DPOTrainer(model=model, ref_model=perturbed_tiny(), args=args,
                                 train_dataset=text, processing_class=tok)  # fmt: skip
            examples = [{"prompt_ids": p, "chosen_ids": c, "rejected_ids": r}
                        for p, c, r in pairs["triples"]]  # fmt: skip
        with torch.no_grad():
            return [
                float(trainer.compute_loss(model, trainer.data_collator([x]))) for x in examples
            ]


def cpo_features(prompt, chosen, rejected) -> dict:
    """One pair in CPOTrainer.tokenize_row's form (labels IGNORE on the prompt)."""
    out = {"prompt_input_ids": prompt, "prompt_attention_mask": [1] * len(prompt)}
    for name, y in (("chosen", chosen), ("rejected", rejected)):
        out[f"{name}_input_ids"] = prompt + y
        out[f"{name}_attention_mask"] = [1] * (len(prompt) + len(y))
        out[f"{name}_labels"] = [IGNORE] * len(prompt) + y
    return out


@pytest.mark.parametrize("kind, kw", CASES, ids=CASE_IDS)
def test_trl_computes_the_same_losses_on_the_same_tokens(tiny, pairs, kind, kw):
    """TRL 1.16's own trainers agree with ours on the same token ids and weights. trl is in the
    dev extra (CI installs it); skipped where it is not installed."""
    pytest.importorskip("trl", minversion="1.16")
    theirs = trl_losses(pairs, kind, kw)
    assert ours(tiny, pairs, kind, kw).tolist() == pytest.approx(theirs, rel=1e-5, abs=1e-7)
