"""From examples to token tensors: prompt template, truncation, padding, label masks.

Template: the tokenizer's chat template when it has one (the prompt becomes a user turn and the
generation prompt is appended), else ``"User: {prompt}\\nAssistant: "``.

Boundary (TRL's convention): the prompt text and the response text are tokenized *together*, and
the response starts where that tokenization first differs from the prompt's own tokenization
(:func:`split_at_boundary`). So the ids of a row are exactly the tokenizer's encoding of
``prompt_text + response`` (then the end-of-sequence token): with the fallback template the
prompt's trailing space merges into the response's first word (``"Assistant:" + " Sure"``), instead
of a lone space token ending the prompt and the word tokenized without its space (``"Su" "re"``),
a split no pretrained model saw. For a preference pair the boundary is the first position where
the prompt, chosen or rejected tokenization differ, so both rows share one prompt.

Truncation policy (``max_length`` tokens in all): the response keeps at most
``max_length − min(len(prompt), max_length // 2)`` tokens (cut at its end), then the prompt is cut
from the *left* (its end, nearest the answer, is kept) to fill the rest. So a long prompt never
pushes the response out, and a long response never removes more than half of the prompt. For a
preference pair the prompt is cut once, for the longer of the two responses.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from toyopt.llm.data import PrefExample, SFTExample

TEMPLATE = "User: {prompt}\nAssistant: "
IGNORE = -100


def prompt_text(tokenizer, prompt) -> str:
    """The prompt string the model sees (chat template if the tokenizer has one)."""
    if isinstance(prompt, str):
        messages = [{"role": "user", "content": prompt}]
    else:
        messages = [{"role": r, "content": c} for r, c in prompt]
    if getattr(tokenizer, "chat_template", None):
        return tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    turns = [m["content"] for m in messages]
    return TEMPLATE.format(prompt="\n".join(turns))


def _ids(tokenizer, text: str) -> list[int]:
    return list(tokenizer(text, add_special_tokens=False)["input_ids"])


def common_prefix(*seqs: list[int]) -> int:
    """Length of the longest common prefix of the sequences."""
    n = min(len(s) for s in seqs)
    return next((i for i in range(n) if len({s[i] for s in seqs}) > 1), n)


def split_at_boundary(
    tokenizer, prompt: str, responses: list[str]
) -> tuple[list[int], list[list[int]]]:
    """(prompt ids, [response ids, …]) with each prompt + response equal to the encoding of the
    concatenated text, the prompt ids being their common prefix with the prompt's own encoding
    (TRL's convention; the module docstring says why)."""
    alone = _ids(tokenizer, prompt)
    full = [_ids(tokenizer, prompt + r) for r in responses]
    start = common_prefix(alone, *full)
    return full[0][:start], [f[start:] for f in full]


def fit(prompt: list[int], responses: list[list[int]], max_length: int) -> tuple[list, list]:
    """Apply the truncation policy to one prompt and its response(s)."""
    if max_length < 2:
        raise ValueError(f"max_length must be at least 2 tokens, got {max_length}")
    keep_prompt_min = min(len(prompt), max_length // 2)
    responses = [r[: max_length - keep_prompt_min] for r in responses]
    room = max_length - max(len(r) for r in responses)
    return (prompt[len(prompt) - room :] if len(prompt) > room else prompt), responses


@dataclass
class Encoded:
    """Token ids of each row as (prompt ids, response ids) pairs; ``truncated`` rows counted."""

    rows: list[tuple[list[int], list[int]]]
    truncated: int


def encode_sft(tokenizer, examples: list[SFTExample], max_length: int) -> Encoded:
    rows, truncated = [], 0
    for ex in examples:
        prompt, (response,) = split_at_boundary(
            tokenizer, prompt_text(tokenizer, ex.prompt), [ex.completion]
        )
        response = response + [tokenizer.eos_token_id]
        p, (r,) = fit(prompt, [response], max_length)
        truncated += len(p) + len(r) < len(prompt) + len(response)
        rows.append((p, r))
    return Encoded(rows, truncated)


def encode_pref(tokenizer, examples: list[PrefExample], max_length: int) -> Encoded:
    """Rows 2i and 2i+1 are the chosen and rejected sequences of pair i."""
    rows, truncated = [], 0
    for ex in examples:
        text = prompt_text(tokenizer, ex.prompt)
        prompt, responses = split_at_boundary(tokenizer, text, [ex.chosen, ex.rejected])
        full = [r + [tokenizer.eos_token_id] for r in responses]
        p, (c, r) = fit(prompt, full, max_length)
        truncated += len(p) < len(prompt) or len(c) < len(full[0]) or len(r) < len(full[1])
        rows += [(p, c), (p, r)]
    return Encoded(rows, truncated)


def collate(rows: list[tuple[list[int], list[int]]], pad_id: int) -> dict[str, torch.Tensor]:
    """Right-padded ``input_ids``, ``attention_mask`` and ``labels`` (IGNORE on the prompt and
    on padding, so only response tokens count in a loss)."""
    width = max(len(p) + len(r) for p, r in rows)
    ids = torch.full((len(rows), width), pad_id, dtype=torch.long)
    labels = torch.full((len(rows), width), IGNORE, dtype=torch.long)
    mask = torch.zeros((len(rows), width), dtype=torch.long)
    for i, (p, r) in enumerate(rows):
        n = len(p) + len(r)
        ids[i, :n] = torch.tensor(p + r)
        labels[i, len(p) : n] = torch.tensor(r)
        mask[i, :n] = 1
    return {"input_ids": ids, "attention_mask": mask, "labels": labels}
