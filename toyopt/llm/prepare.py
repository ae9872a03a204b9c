"""Data for a run: resolve the sources, load and validate them, hold out eval rows, tokenize.

Missing sources fall back to the synthetic tasks (:mod:`toyopt.llm.synthetic`), written into the
run directory so the run is self-contained. Without an eval file, a fixed share of the training
rows is held out: row i goes to eval when uniform(0, i, SPLIT_STREAM) < eval_fraction, the same
rows for every run and seed. Everything skipped or truncated is counted and reported.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from toyopt.llm.checkpoint import sha256_file
from toyopt.llm.data import DataError, load_data
from toyopt.llm.encode import encode_pref, encode_sft
from toyopt.llm.synthetic import make_data
from toyopt.rng import uniform

SPLIT_STREAM = 99
Rows = list[tuple[list[int], list[int]]]


@dataclass
class Prepared:
    sft_train: Rows
    sft_eval: Rows
    pref_train: Rows
    pref_eval: Rows
    notes: list[str] = field(default_factory=list)
    fingerprint: dict = field(default_factory=dict)  # per split: source, sha256, rows


def sources(cfg, run: Path) -> dict[str, str]:
    """{split: source} for sft_train, sft_eval, pref_train, pref_eval ('' = split off train)."""
    synthetic = None
    if not cfg.sft_data or not cfg.pref_data:
        synthetic = make_data(run / "data", root=run)
    out = {}
    for kind, train, held in (
        ("sft", cfg.sft_data, cfg.sft_eval),
        ("pref", cfg.pref_data, cfg.pref_eval),
    ):
        if train:
            out[f"{kind}_train"], out[f"{kind}_eval"] = train, held
        else:
            if held:
                raise DataError(f"--{kind}-eval given without --{kind}-data")
            out[f"{kind}_train"] = str(synthetic[f"{kind}_train"])
            out[f"{kind}_eval"] = str(synthetic[f"{kind}_eval"])
    return out


def hold_out(examples: list, fraction: float) -> tuple[list, list]:
    """(train, eval) by the fixed counter-based split (see the module docstring)."""
    held = uniform(0, np.arange(len(examples)), SPLIT_STREAM) < fraction
    train = [e for e, h in zip(examples, held) if not h]
    evals = [e for e, h in zip(examples, held) if h]
    if not train or not evals:
        raise DataError(
            f"cannot hold out {fraction:.0%} of {len(examples)} rows: give an eval file"
        )
    return train, evals


def load(source: str, kind: str, cfg):
    """Load one source; ``max_rows`` keeps its first rows (counted and reported)."""
    loaded = load_data(source, kind, cfg.skip_bad_rows)
    if cfg.max_rows:
        loaded.examples = loaded.examples[: cfg.max_rows]
    return loaded


def fingerprint(source: str, examples: list) -> dict:
    """What a resumed run must find unchanged: the file's sha256 (None for hub data or a
    held-out split) and the number of rows used."""
    path = Path(source)
    return {"source": source, "sha256": sha256_file(path) if path.is_file() else None,
            "rows": len(examples)}  # fmt: skip


def prepare(cfg, tokenizer, run: Path) -> Prepared:
    """Load, validate, split and tokenize the four data sets named by ``cfg``."""
    src = sources(cfg, run)
    notes: list[str] = []
    examples = {}
    for kind in ("sft", "pref"):
        loaded = load(src[f"{kind}_train"], kind, cfg)
        parts = [(f"{kind}_train", loaded)]
        if src[f"{kind}_eval"]:
            parts.append((f"{kind}_eval", load(src[f"{kind}_eval"], kind, cfg)))
            examples[f"{kind}_train"] = loaded.examples
            examples[f"{kind}_eval"] = parts[1][1].examples
        else:
            examples[f"{kind}_train"], examples[f"{kind}_eval"] = hold_out(
                loaded.examples, cfg.eval_fraction
            )
        for name, part in parts:
            if part.skipped:
                notes.append(
                    f"{name}: skipped {part.skipped} bad rows (first: {part.skip_messages[0]})"
                )
    held = {f"{k}_eval": f"held out of {k}_train" for k in ("sft", "pref")}
    prints = {name: fingerprint(src[name] or held[name], exs) for name, exs in examples.items()}
    encoded = {}
    for name, exs in examples.items():
        encode = encode_sft if name.startswith("sft") else encode_pref
        enc = encode(tokenizer, exs, cfg.max_length)
        if enc.truncated:
            notes.append(
                f"{name}: truncated {enc.truncated} of {len(exs)} rows to {cfg.max_length} tokens"
            )
        encoded[name] = enc.rows
    if cfg.max_rows:
        notes.append(f"max_rows: each data file cut to its first {cfg.max_rows} rows")
    return Prepared(**encoded, notes=notes, fingerprint=prints)
