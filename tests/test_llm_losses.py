"""The SFT and DPO losses against an independent computation on the tiny model: each sequence
run alone (no padding), log-softmax by hand, sums and the sigmoid in float64."""

import math

import pytest
import torch

from toyopt.llm.data import PrefExample, SFTExample
from toyopt.llm.encode import IGNORE, collate, encode_pref, encode_sft, fit, prompt_text
from toyopt.llm.losses import dpo_loss, sequence_logps, sft_loss
from toyopt.llm.models import load_model
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
