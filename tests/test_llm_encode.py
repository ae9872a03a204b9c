"""The prompt/response boundary (TRL's convention, toyopt.llm.encode): every encoded row is the
tokenizer's own encoding of the concatenated text, computed here independently."""

import copy

import pytest

from toyopt.llm.data import PrefExample, SFTExample
from toyopt.llm.encode import common_prefix, encode_pref, encode_sft, prompt_text
from toyopt.llm.models import tiny_tokenizer
from toyopt.llm.synthetic import make_rows

CHAT = (
    "{% for m in messages %}<|{{ m['role'] }}|>{{ m['content'] }}\n{% endfor %}"
    "{% if add_generation_prompt %}<|assistant|>{% endif %}"
)


@pytest.fixture(scope="module")
def tokenizers():
    plain = tiny_tokenizer()
    chat = copy.deepcopy(plain)
    chat.chat_template = CHAT
    return {"fallback": plain, "chat": chat}


def encoding(tok, text: str) -> list[int]:
    """The tokenizer's encoding of ``text`` followed by the end-of-sequence token."""
    return tok.encode(text, add_special_tokens=False) + [tok.eos_token_id]


@pytest.mark.parametrize("template", ["fallback", "chat"])
def test_sft_rows_are_the_encoding_of_prompt_plus_completion(tokenizers, template):
    tok = tokenizers[template]
    examples = [SFTExample(**r) for r in make_rows("sft_train", n=20)]
    rows = encode_sft(tok, examples, 128).rows
    for ex, (p, r) in zip(examples, rows):
        assert p + r == encoding(tok, prompt_text(tok, ex.prompt) + ex.completion)
        # the response is the completion: decoding it gives the completion's text back
        assert tok.decode(r[:-1]).strip() == ex.completion


@pytest.mark.parametrize("template", ["fallback", "chat"])
def test_pref_rows_share_one_prompt_and_are_the_encoding_of_the_text(tokenizers, template):
    tok = tokenizers[template]
    examples = [PrefExample(**r) for r in make_rows("pref_train", n=20)]
    rows = encode_pref(tok, examples, 128).rows
    for i, ex in enumerate(examples):
        (pc, c), (pr, r) = rows[2 * i], rows[2 * i + 1]
        text = prompt_text(tok, ex.prompt)
        assert pc == pr
        assert pc + c == encoding(tok, text + ex.chosen)
        assert pr + r == encoding(tok, text + ex.rejected)


def test_fallback_template_no_lone_space_and_whole_first_word(tokenizers):
    """The issue this convention fixes: "Assistant: " + "Sure!" used to give a lone "Ġ" token at
    the end of the prompt and "Su" "re" as the response's first tokens."""
    tok = tokenizers["fallback"]
    ex = PrefExample(prompt="Repeat: red cat", chosen="Sure! red cat", rejected="red cat")
    (p, c), (_, r) = encode_pref(tok, [ex], 128).rows
    names = tok.convert_ids_to_tokens
    assert names(p)[-2:] == ["Assistant", ":"]
    assert names(c)[:2] == ["ĠSure", "!"] and names(r)[:2] == ["Ġred", "Ġcat"]


def test_truncation_policy_applies_to_the_joint_encoding(tokenizers):
    tok = tokenizers["fallback"]
    long_prompt = SFTExample(prompt="Repeat: " + "red cat " * 40, completion="red cat")
    ((p, r),) = encode_sft(tok, [long_prompt], 16).rows
    full = encoding(tok, prompt_text(tok, long_prompt.prompt) + long_prompt.completion)
    assert len(p) + len(r) == 16 and p + r == full[-16:]  # the prompt is cut from the left
    long_answer = SFTExample(prompt="Repeat: red", completion="red cat " * 40)
    enc = encode_sft(tok, [long_answer], 16)
    ((p, r),) = enc.rows
    full = encoding(tok, prompt_text(tok, long_answer.prompt) + long_answer.completion)
    assert enc.truncated == 1 and len(r) == 16 - len(p) and p + r == full[:16]


def test_common_prefix():
    assert common_prefix([1, 2, 3], [1, 2, 4], [1, 2]) == 2
    assert common_prefix([5], [6]) == 0 and common_prefix([1, 2], [1, 2]) == 2
