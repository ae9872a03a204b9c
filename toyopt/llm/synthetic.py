"""Deterministic synthetic data whose two tasks pull a small model in opposite directions.

- **SFT (instruction following)**: the prompt asks to repeat a short list of words
  (``"Repeat: red cat blue dog"``); the completion is the list verbatim (``"red cat blue dog"``).
- **Preferences**: prompts of the same form; the *chosen* answer opens with a preamble,
  ``"Sure! red cat blue dog"``, the *rejected* answer is the bare copy that SFT teaches.

The conflict sits in the first response token: SFT wants the first listed word there, DPO wants
``"Sure"`` there rather than that word. Training on one therefore forgets the other (a DPO stage
makes the SFT answers unlikely, an SFT stage undoes the preamble), and any model must trade the
two objectives off along a Pareto front, which is what the paper's methods are about. A tiny
model learns both rules within a few hundred steps, so the trade-off shows on held-out rows. The words are drawn with the counter-based generator keyed by
(seed, split, row), so the files are a pure function of the seed.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from toyopt import files
from toyopt.rng import hash64

WORDS = (
    "red blue green black white cat dog bird fish cow sun moon star rain snow tree leaf rock "
    "sand sea hill road door lamp book cup pen box key ring"
).split()

PREAMBLE = "Sure!"
SIZES = {"sft_train": 512, "sft_eval": 64, "pref_train": 512, "pref_eval": 64}
_SPLIT_IDS = {"sft_train": 1, "sft_eval": 2, "pref_train": 3, "pref_eval": 4}


def _words(seed: int, split: str, row: int) -> list[str]:
    """3 to 5 distinct words; a pure function of (seed, split, row)."""
    h = hash64(seed, row, _SPLIT_IDS[split], np.arange(8, dtype=np.uint64))
    length = 3 + int(h[0] % np.uint64(3))
    picks: list[str] = []
    for v in h[1:]:
        word = WORDS[int(v % np.uint64(len(WORDS)))]
        if word not in picks:
            picks.append(word)
        if len(picks) == length:
            break
    return picks


def make_rows(
    split: str, seed: int = 0, n: int | None = None, sft_preamble: str = ""
) -> list[dict[str, str]]:
    """The rows of one split (see the module docstring for the tasks); ``sft_preamble`` opens
    every SFT completion (a second SFT style: ``"OK."`` conflicts with the bare copy of the
    default SFT set and with the preference set's ``"Sure!"``)."""
    rows = []
    for i in range(SIZES[split] if n is None else n):
        words = _words(seed, split, i)
        prompt = "Repeat: " + " ".join(words)
        copy = " ".join(words)
        if split.startswith("sft"):
            rows.append({"prompt": prompt, "completion": f"{sft_preamble} {copy}".lstrip()})
        else:
            rows.append({"prompt": prompt, "chosen": f"{PREAMBLE} {copy}", "rejected": copy})
    return rows


def make_data(
    out: str | Path,
    seed: int = 0,
    root: str | Path | None = None,
    sft_preamble: str = "",
    train_rows: int | None = None,
    eval_rows: int | None = None,
) -> dict[str, Path]:
    """Write the four JSONL files under ``out``; returns {split: path}. ``train_rows`` rows (and
    pairs) per training file and ``eval_rows`` per held-out file (default :data:`SIZES`); row i
    does not depend on the count, so a larger set begins with the default one.

    Every target is checked before any is written (:mod:`toyopt.files`): a file there that
    does not already hold exactly these rows (a user's own file), or a link, is refused in one
    line naming it, and nothing is written. ``root``: the directory the caller owns (links are
    refused anywhere below it)."""
    out = Path(out)
    if out.is_symlink() and root is not None:
        files.refuse_links(out, root)
    if out.exists() and not out.is_dir():
        raise ValueError(f"--out {out}: exists and is not a directory: choose a directory")
    for flag, n in (("--train-rows", train_rows), ("--eval-rows", eval_rows)):
        if n is not None and n < 1:
            raise ValueError(f"{flag} must be a positive number of rows, got {n}")
    counts = {split: train_rows if split.endswith("train") else eval_rows for split in SIZES}
    texts = {
        split: "".join(
            json.dumps(r) + "\n" for r in make_rows(split, seed, counts[split], sft_preamble)
        ).encode("utf-8")
        for split in SIZES
    }
    paths = {split: out / f"{split}.jsonl" for split in SIZES}
    hint = "move it or choose another --out"
    same = {
        s: files.check_target(paths[s], texts[s], root, replace=False, hint=hint) for s in SIZES
    }
    out.mkdir(parents=True, exist_ok=True)
    for split in SIZES:
        if not same[split]:
            files.write_bytes(paths[split], texts[split], root, replace=False, hint=hint)
    return paths
