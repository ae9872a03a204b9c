"""The tiny model's pretraining: next-token training on generic copy text, before any fine-tuning.

Real fine-tuning starts from a pretrained model that already has the skills the fine-tuning data
leans on. The synthetic SFT task asks to copy a word list; a randomly initialised tiny model must
learn copying itself *during* fine-tuning, and that is where ALRIGHT and Mix part ways on it
(docs/llm-results.md, "ALRIGHT against Mix on the tiny model": from random weights, ALRIGHT
has not learned to copy when Mix has). So the default ``tiny`` model is pretrained first, like a
real base model, on text that teaches copying and nothing of the fine-tuning tasks: lines of 3
to 8 words of the synthetic vocabulary, a separator, and the same words again
(``red cat sun -> red cat sun``).
The corpus never contains the chat template, the instruction ``Repeat:`` or the preamble
``Sure!``. Line i of the corpus is a pure function of i (the counter-based generator), the
optimizer is deterministic, and the result is shipped with the package
(``toyopt/llm/tiny_pretrained.safetensors``) so every machine starts from the same weights;
``python -m toyopt.llm pretrain-tiny`` regenerates it (about 20 s on one core).
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import torch

from toyopt.llm.synthetic import WORDS
from toyopt.rng import hash64

SEPARATORS = (" |", " ;", " =", " ->", " and again", ".")
RECIPE = {"steps": 1500, "batch": 32, "lr": 3e-3, "betas": (0.9, 0.95), "clip": 1.0,
          "corpus_seed": 7, "words": (3, 8), "separators": SEPARATORS}  # fmt: skip
WEIGHTS = Path(__file__).with_name("tiny_pretrained.safetensors")
_STREAM = 5  # the corpus's stream of the counter-based generator


def copy_line(i: int, seed: int = RECIPE["corpus_seed"]) -> str:
    """Line i of the corpus: k words, a separator, the same k words."""
    h = hash64(seed, i, _STREAM, np.arange(12, dtype=np.uint64))
    low, high = RECIPE["words"]
    k = low + int(h[0] % np.uint64(high - low + 1))
    words = [WORDS[int(v % np.uint64(len(WORDS)))] for v in h[1 : 1 + k]]
    sep = SEPARATORS[int(h[11] % np.uint64(len(SEPARATORS)))]
    return " ".join(words) + sep + " " + " ".join(words)


def fingerprint(tokenizer) -> str:
    """sha256 of the recipe and the tokenizer's vocabulary: the shipped weights' identity."""
    text = json.dumps({"recipe": RECIPE, "vocab": sorted(tokenizer.get_vocab().items())})
    return hashlib.sha256(text.encode()).hexdigest()


def pretrain(model, tokenizer, steps: int = RECIPE["steps"], progress: bool = False) -> list[float]:
    """Train ``model`` in place on the copy corpus (all tokens count); the losses per step."""
    from tqdm.auto import tqdm

    opt = torch.optim.AdamW(model.parameters(), lr=RECIPE["lr"], betas=RECIPE["betas"])
    model.train()
    losses, batch = [], RECIPE["batch"]
    for s in tqdm(range(steps), desc="pretraining tiny", disable=not progress):
        enc = tokenizer([copy_line(s * batch + j) for j in range(batch)], return_tensors="pt",
                        padding=True)  # fmt: skip
        labels = enc["input_ids"].masked_fill(enc["attention_mask"] == 0, -100)
        loss = model(**enc, labels=labels).loss
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), RECIPE["clip"])
        opt.step()
        losses.append(float(loss))
    return losses


def write_weights(path: Path = WEIGHTS, progress: bool = True) -> list[float]:
    """Pretrain the randomly initialised tiny model and save it with its fingerprint (through
    :mod:`toyopt.files`: atomic, never through a link, and never over a file that is not such
    weights, checked before the 20 s of training)."""
    from safetensors.torch import save_model

    from toyopt.files import check_target, not_ours, write_with
    from toyopt.llm.models import load_model

    path = Path(path)
    check_target(path)
    if path.exists() and not ours(path):
        raise not_ours(path)

    with torch.random.fork_rng(devices=[]):
        torch.set_num_threads(1)  # one thread: the same float sums on every machine
        model, tok = load_model("tiny-random")
        losses = pretrain(model, tok, progress=progress)
    recipe = fingerprint(tok)
    write_with(path, lambda tmp: save_model(model, str(tmp), metadata={"recipe": recipe}))
    return losses


def ours(path: Path) -> bool:
    """Whether ``path`` holds tiny weights this command wrote (a recipe in its metadata)."""
    from safetensors import safe_open

    try:
        with safe_open(str(path), "pt") as f:
            return "recipe" in (f.metadata() or {})
    except Exception:  # not a safetensors file at all
        return False
